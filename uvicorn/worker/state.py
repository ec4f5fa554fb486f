"""What every connection of one worker shares: settings in hot-path form, and bookkeeping."""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from collections.abc import Callable
from email.utils import formatdate
from typing import Any, Final, Protocol

from uvicorn.compiled import mypyc_attr
from uvicorn.config import Config
from uvicorn.protocols.http2 import H2Settings
from uvicorn.protocols.http_defaults import HeaderDefaults
from uvicorn.protocols.http_parser import Limits
from uvicorn.worker.access_log import AccessFormat
from uvicorn.worker.proxy import ProxyHeaders

access_logger = logging.getLogger("uvicorn.access")

# A new connection's first timer (its keep-alive deadline) is armed by a sweep that runs at
# most this long after it opened (and never after the deadline), unless it closed or armed one
# by then: most connections send their request at once, and those closed after it (clients
# that send `Connection: close`) never need one. A timer made and cancelled per connection
# was about 7% of our instructions for such a request (benchmarks/micro.py close).
FRESH_SWEEP: Final = 0.25

_WILDCARDS: Final = ("0.0.0.0", "::")
# (level, option) of IP_TRANSPARENT, ip(7), and IPV6_TRANSPARENT, ipv6(7), on Linux. (Where
# either means another option, a true value of it only costs the saving below.)
_TRANSPARENT: Final = {
    socket.AF_INET: (socket.IPPROTO_IP, 19),
    socket.AF_INET6: (socket.IPPROTO_IPV6, 75),
}


def shared_local_address(sock: socket.socket) -> Any:
    """The local address of every connection that the listening ``sock`` accepts, where it
    is the listener's own: a TCP socket bound to one IP address, whose connections are all to
    that address and port, or a Unix socket, whose connections carry its path (unix(7)). Then
    a connection need not ask for it: uvloop formats the address it asks for with snprintf
    (~2,400 instructions a connection under callgrind, 3% of a `Connection: close`
    request). ``None`` where connections must be asked: a wildcard address (each
    connection has the address the client reached), a transparent socket (it accepts
    connections to any address), or a socket that cannot be asked."""
    try:
        local = sock.getsockname()
        if sock.family == socket.AF_UNIX:
            return local or None
        if sock.family not in _TRANSPARENT or local[0] in _WILDCARDS:
            return None
        level, option = _TRANSPARENT[sock.family]
        if sock.getsockopt(level, option):
            return None
    except OSError:
        return None
    return local


class Connection(Protocol):
    """What the server needs of an open HTTP connection (``connection.HTTPConnection``), to
    shut it down."""

    @property
    def tasks(self) -> list[asyncio.Task[None]]: ...  # the app calls in flight

    def shutdown(self) -> None: ...  # close now if idle, else after the response in flight

    def linger(self) -> None: ...  # close after its next response (a retiring worker)

    def close(self) -> None: ...

    def arm_put_off(self) -> None: ...  # arm the timer put off at its opening, if still due


class Session(Protocol):
    """What the server needs of an open WebSocket (``websocket.WebSocketSession``)."""

    task: asyncio.Task[None] | None
    transport: asyncio.Transport

    def close_with(self, code: int) -> None: ...


# Subclassed at run time by an interpreted class (--metrics: metrics.py), which mypyc allows
# only where it is told.
@mypyc_attr(allow_interpreted_subclasses=True)
class ServerState:
    def __init__(
        self,
        config: Config,
        app: Any,
        cycle_class: Callable[..., Any],
        loop: asyncio.AbstractEventLoop,
        websocket_class: Callable[..., Any] | None = None,
    ) -> None:
        self.loop = loop
        self.app = app
        self.cycle_class = cycle_class
        # WebSockets: the session class of the app's interface, None when they are off.
        self.websocket_class = websocket_class if config.ws != "none" else None
        self.websockets: set[Session] = set()
        # The settings read only now and then (a WebSocket's), from here: each attribute of
        # this object is one more in its dict (see h2 below).
        self.config = config
        self.defaults = HeaderDefaults(
            config.server_header, config.date_header, config.encoded_headers()
        )
        self.limits = Limits(
            config.limit_request_line, config.limit_request_fields, config.limit_request_field_size,
            config.limit_request_body,
        )  # fmt: skip
        self.upgrades = frozenset({b"websocket"} if self.websocket_class else ())
        # HTTP/2's settings (None: --http 1.1). (Fewer than 30 attributes in all: with a 30th,
        # CPython 3.11 reads them more slowly, ~240 instructions a request under callgrind.
        # tests/worker/test_state.py keeps it so.)
        self.h2 = None
        if config.http != "1.1":
            self.h2 = H2Settings(
                config.h2_max_concurrent_streams,
                config.h2_initial_window_size,
                config.h2_max_frame_size,
                extended_connect=self.websocket_class is not None,
                limits=self.limits,
            )
            self.upgrades |= {b"h2c"}
        self.scheme = "https" if config.is_ssl else "http"
        self.root_path = config.root_path
        self.timeout_keep_alive = config.timeout_keep_alive
        self.timeout_request_head = config.timeout_request_head
        self.limit_concurrency = config.limit_concurrency
        self.proxy = ProxyHeaders(config.forwarded_allow_ips) if config.proxy_headers else None
        self.access_log = config.access_log and access_logger.isEnabledFor(logging.INFO)
        # --access-log-format (None: the default line, below); its cycle class keeps what a
        # line needs (server.py), so that without it requests keep nothing more.
        self.access_format = (
            AccessFormat(config.access_log_format)
            if self.access_log and config.access_log_format
            else None
        )
        self.lifespan_state: dict[str, Any] | None = None
        self.connections: set[Connection] = set()
        self.fresh: set[Connection] = set()  # their first timer put off (put_off_timer())
        self._sweep: asyncio.TimerHandle | None = None
        # TLS connections accepted whose handshake is not done: their protocol is made at
        # accept, but told of its connection only once the handshake ends, and never if it
        # fails. A retiring worker waits for them too. Weak references, dropped when the
        # handshake ends (see HTTPConnection) or the protocol of a failed one is freed.
        self.handshakes: set[weakref.ref[Any]] = set()
        # Set when the last HTTP connection has gone; it exists only while a retiring worker
        # lingers (Server._linger) and waits for that.
        self.all_closed: asyncio.Event | None = None
        self.active = 0  # app calls in flight
        self.shutting_down = False
        self._drained: asyncio.Event = asyncio.Event()
        self.refresh_date()

    @property
    def lingering(self) -> bool:
        """A retiring worker's linger is under way (see ``all_closed``)."""
        return self.all_closed is not None

    def refresh_date(self) -> None:
        self.defaults.set_date(formatdate(usegmt=True).encode("ascii"))

    @staticmethod
    def addresses(
        transport: asyncio.BaseTransport, local: Any = None
    ) -> tuple[list[Any] | None, list[Any] | None]:
        """(client, server) as SPEC.md spells them: ``[host, port]``, or for a Unix socket
        ``None`` and ``[path, None]``. ``local``: the connection's own address where its
        listener knows it (``shared_local_address``), else asked of the socket."""
        if local is None:
            local = transport.get_extra_info("sockname")
        if type(local) is tuple or local is None:  # IP (None: the socket is already gone)
            peer = transport.get_extra_info("peername")
            client = [peer[0], peer[1]] if peer else None
            return client, [local[0], local[1]] if local else None
        return None, [local or "", None]  # AF_UNIX: a path (str, or bytes if abstract)

    def log_access(self, cycle: Any, status: int) -> None:
        """The access-log line of a request cycle (its ``head`` and ``client``)."""
        head = cycle.head
        if self.access_format is not None:
            self.access_format.log_cycle(cycle, status)
            return
        target = head.raw_path.decode("latin-1")
        if head.query_string:
            target += "?" + head.query_string.decode("latin-1")
        self.log_request(cycle.client, head.method, target, head.http_version, status)

    def log_request(
        self, client: list[Any] | None, method: str, target: str, version: str, status: int
    ) -> None:
        # (A method, not a staticmethod: --metrics's state overrides it, and a compiled caller
        # calls a staticmethod of the class it knows, never a subclass's.)
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            f"{client[0]}:{client[1]}" if client else "unix",
            method,
            target,
            version,
            status,
        )

    def refused(self, status: int) -> None:
        """A request answered without an app (400, 408, 413, 414, 431, 505...): not in the
        access log, as before; counted by --metrics (``worker/metrics.py``)."""

    def put_off_timer(self, conn: Connection, deadline: float) -> None:
        """A new connection's timer, due at ``deadline``, is armed by the next sweep
        (FRESH_SWEEP), which runs by then."""
        self.fresh.add(conn)
        if self._sweep is None:
            loop = self.loop
            self._sweep = loop.call_at(min(loop.time() + FRESH_SWEEP, deadline), self._sweep_fresh)

    def _sweep_fresh(self) -> None:
        self._sweep = None
        fresh = self.fresh
        self.fresh = set()
        for conn in fresh:
            conn.arm_put_off()

    def forget(self, conn: Connection) -> None:
        """``conn`` no longer serves HTTP (it closed, or became a WebSocket)."""
        self.fresh.discard(conn)
        connections = self.connections
        connections.discard(conn)
        if not connections and not self.handshakes and self.all_closed is not None:
            self.all_closed.set()

    def handshake_ended(self, ref: weakref.ref[Any]) -> None:
        """A TLS handshake of ``handshakes`` completed, or its protocol was freed (it failed)."""
        self.handshakes.discard(ref)
        if not self.connections and not self.handshakes and self.all_closed is not None:
            self.all_closed.set()

    def at_capacity(self) -> bool:
        """--limit-concurrency is reached: HTTP requests in flight and open WebSockets (each in
        flight until it closes) count alike, for a new request as for a new WebSocket."""
        limit = self.limit_concurrency
        return limit is not None and self.active + len(self.websockets) >= limit

    # Graceful shutdown.

    def drained(self) -> None:
        self._drained.set()

    async def wait_drained(self) -> None:
        if self.active:
            self._drained.clear()
            await self._drained.wait()
