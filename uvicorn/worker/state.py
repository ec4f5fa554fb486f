"""What every connection of one worker shares: settings in hot-path form, and bookkeeping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from uvicorn.config import Config
from uvicorn.protocols.http_parser import Limits, RequestHead
from uvicorn.protocols.http_response import HeaderDefaults
from uvicorn.worker.proxy import ProxyHeaders

if TYPE_CHECKING:
    from uvicorn.worker.connection import HTTPConnection
    from uvicorn.worker.cycle import RequestCycle
    from uvicorn.worker.websocket import WebSocketSession

access_logger = logging.getLogger("uvicorn.access")


class ServerState:
    def __init__(
        self,
        config: Config,
        app: Any,
        cycle_class: Callable[[HTTPConnection, Any], RequestCycle],
        loop: asyncio.AbstractEventLoop,
        websocket_class: type[WebSocketSession] | None = None,
    ) -> None:
        self.loop = loop
        self.app = app
        self.cycle_class = cycle_class
        # WebSockets: the session class of the app's interface, None when they are off.
        self.websocket_class = websocket_class if config.ws != "none" else None
        self.ws_max_size = config.ws_max_size
        self.ws_per_message_deflate = config.ws_per_message_deflate
        self.ws_deflate_window_bits = config.ws_deflate_window_bits
        self.ws_ping_interval = config.ws_ping_interval
        self.ws_ping_timeout = config.ws_ping_timeout
        self.websockets: set[WebSocketSession] = set()
        self.server_header = config.server_header
        self.date_header = config.date_header
        self.defaults = HeaderDefaults(
            config.server_header, config.date_header, config.encoded_headers()
        )
        self.limits = Limits(
            config.limit_request_line, config.limit_request_fields, config.limit_request_field_size
        )
        self.upgrades = frozenset({b"websocket"} if self.websocket_class else ())
        self.scheme = "https" if config.is_ssl else "http"
        self.root_path = config.root_path
        self.timeout_keep_alive = config.timeout_keep_alive
        self.timeout_request_head = config.timeout_request_head
        self.limit_concurrency = config.limit_concurrency
        self.proxy = ProxyHeaders(config.forwarded_allow_ips) if config.proxy_headers else None
        self.access_log = config.access_log and access_logger.isEnabledFor(logging.INFO)
        self.lifespan_state: dict[str, Any] | None = None
        self.connections: set[HTTPConnection] = set()
        # Set when the last HTTP connection has gone, once a retiring worker waits for that.
        self.all_closed: asyncio.Event | None = None
        self.active = 0  # app calls in flight
        self.shutting_down = False
        self._drained: asyncio.Event = asyncio.Event()
        self.refresh_date()

    def refresh_date(self) -> None:
        self.defaults.set_date(formatdate(usegmt=True).encode("ascii"))

    @staticmethod
    def addresses(transport: asyncio.BaseTransport) -> tuple[list[Any] | None, list[Any] | None]:
        """(client, server) as SPEC.md spells them: ``[host, port]``, or for a Unix socket
        ``None`` and ``[path, None]``."""
        local = transport.get_extra_info("sockname")
        if type(local) is tuple or local is None:  # IP (None: the socket is already gone)
            peer = transport.get_extra_info("peername")
            client = [peer[0], peer[1]] if peer else None
            return client, [local[0], local[1]] if local else None
        return None, [local or "", None]  # AF_UNIX: a path (str, or bytes if abstract)

    def log_access(self, cycle: RequestCycle) -> None:
        head = cycle.head
        target = head.raw_path.decode("latin-1")
        if head.query_string:
            target += "?" + head.query_string.decode("latin-1")
        status = cycle.status
        self.log_request(cycle.client, head.method, target, head.http_version, status)

    @staticmethod
    def log_request(
        client: list[Any] | None, method: str, target: str, version: str, status: int
    ) -> None:
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            f"{client[0]}:{client[1]}" if client else "unix",
            method,
            target,
            version,
            status,
        )

    def upgrade(
        self,
        conn: HTTPConnection,
        head: RequestHead,
        data: bytes,
        client: list[Any] | None,
        scheme: str,
    ) -> None:
        """Hand the connection's socket to a WebSocket session (RFC 6455 section 4)."""
        assert self.websocket_class is not None
        self.forget(conn)
        session = self.websocket_class(self, conn.transport, head, client, conn.server, scheme)
        conn.transport.set_protocol(session)
        if conn.read_paused:
            conn.transport.resume_reading()
        session.start(data)

    def forget(self, conn: HTTPConnection) -> None:
        """``conn`` no longer serves HTTP (it closed, or became a WebSocket)."""
        conn.parser.close()
        connections = self.connections
        connections.discard(conn)
        if not connections and self.all_closed is not None:
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
