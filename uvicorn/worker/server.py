"""One worker: load the app, run lifespan, serve the listeners, drain and shut down."""

from __future__ import annotations

import asyncio
import faulthandler
import functools
import gc
import logging
import os
import signal
import socket
import ssl
from collections.abc import Callable
from typing import Any

from uvicorn.config import BOOT_MARGIN, Config
from uvicorn.exceptions import ClientDisconnected, StartupError
from uvicorn.logging import log_stream
from uvicorn.protocols.websocket_events import GOING_AWAY, SERVICE_RESTART
from uvicorn.worker import registries
from uvicorn.worker.allocator import keep_freed_memory
from uvicorn.worker.asgi import ASGICycle, ASGIWebSocket, TLSASGICycle, asgi2_to_asgi3
from uvicorn.worker.connection import HTTP2OnlyConnection, HTTPConnection
from uvicorn.worker.cycle import RequestCycle
from uvicorn.worker.lifespan import Lifespan
from uvicorn.worker.loading import load_app
from uvicorn.worker.messaging import MessagingCycle, MessagingWebSocket, TLSMessagingCycle
from uvicorn.worker.metrics import WorkerMetrics
from uvicorn.worker.state import ServerState, shared_local_address
from uvicorn.worker.supervised import Link, Supervised
from uvicorn.worker.tls_info import server_certificate
from uvicorn.worker.websocket import WebSocketSession

logger = logging.getLogger("uvicorn.error")

# Past --graceful-timeout, cancelled calls get up to half of this to unwind, and the lifespan
# shutdown what is left of it: a shutdown takes at most --graceful-timeout plus this.
FINAL_GRACE = 1.0


class Server:
    """``start()``, then ``wait()`` until ``stop()`` (or a signal), then ``shutdown()``."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        self.config = config
        self.sockets = sockets
        self.state: ServerState | None = None
        self.metrics: WorkerMetrics | None = None  # --metrics: this worker's counts
        self.lifespan: Lifespan | None = None
        self._listeners: list[asyncio.AbstractServer] = []
        self._stop = asyncio.Event()
        self._forced = asyncio.Event()
        self._date_timer: asyncio.TimerHandle | None = None
        # Set by retire() (supervisor): a new worker replaces this one.
        self.restart = False
        self.linger = False
        self._linger_end = asyncio.Event()
        # Called once the listeners are closed (supervisor: the master's reload is complete
        # only when no retiring worker can take a new connection).
        self.listeners_closed: Callable[[], None] | None = None

    async def start(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        registries.lighten(loop)
        app, interface = load_app(config)
        if interface == "asgi2":
            app = asgi2_to_asgi3(app)
        cycle_class: type[RequestCycle] = MessagingCycle
        websocket_class: type[WebSocketSession] = MessagingWebSocket
        if interface != "messaging":
            cycle_class, websocket_class = ASGICycle, ASGIWebSocket
        if config.is_ssl:  # requests get their connection's tls (a class apart: HTTP pays nothing)
            cycle_class = TLSMessagingCycle if cycle_class is MessagingCycle else TLSASGICycle
        state_class = ServerState
        if config.metrics:
            self.metrics = WorkerMetrics()
            state_class = self.metrics.state_class(config)
        state = self.state = state_class(config, app, cycle_class, loop, websocket_class)
        if state.access_format is not None:
            state.cycle_class = state.access_format.cycle_class(cycle_class)
        if self.metrics is not None:  # before the listeners: every request cycle is timed
            self.metrics.install(state)
        if interface != "messaging" and config.lifespan != "off":
            self.lifespan = Lifespan(app, config.lifespan)
            await self.lifespan.startup()
            if self.lifespan.supported:
                state.lifespan_state = self.lifespan.state
        context = make_ssl_context(config) if config.is_ssl else None
        if config.ssl_certfile:
            server_certificate(config.ssl_certfile)  # (read now, for the tls extension)
        connection = HTTP2OnlyConnection if config.http == "2" else HTTPConnection
        for sock in self.sockets:
            corked = context is None and _corked(sock)
            factory = functools.partial(connection, state, corked, shared_local_address(sock))
            listener = await loop.create_server(
                factory, sock=sock, ssl=context, backlog=config.backlog
            )
            self._listeners.append(listener)
        loop.set_exception_handler(_quiet_disconnects)
        self._tick_date()
        scheme = "https" if context else "http"
        for sock in self.sockets:
            logger.info("Uvicorn running on %s (Press CTRL+C to quit)", _describe(sock, scheme))

    def _tick_date(self) -> None:
        # The date header changes once a second: encode it once a second, not per response.
        assert self.state is not None
        self.state.refresh_date()
        self._date_timer = self.state.loop.call_later(1.0, self._tick_date)

    async def wait(self) -> None:
        await self._stop.wait()

    def stop(self, force: bool = False) -> None:
        """Begin a graceful shutdown; a second call (a second Ctrl-C) makes it immediate.
        During a retirement's linger, a call only ends the linger."""
        if self.linger and not force:
            self.linger = False
            self._linger_end.set()
            return
        if force or self._stop.is_set():
            self._forced.set()
        self._stop.set()

    def retire(self, linger: bool = True) -> None:
        """Stop because a new worker replaces this one (supervisor): WebSockets close with
        1012. ``linger``: other workers go on serving, so idle keep-alive connections are
        answered once more rather than cut (see ``_linger``)."""
        if self._stop.is_set():
            return
        self.restart = True
        self.linger = linger
        self._stop.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop)
        loop.add_signal_handler(signal.SIGQUIT, self.stop, True)

    async def shutdown(self, restart: bool = False) -> None:
        """Stop accepting, close WebSockets (1001 going away, or 1012 service restart when
        ``restart`` says a new worker replaces this one), let in-flight requests finish, then
        cut what is left and run the lifespan shutdown.

        One deadline, --graceful-timeout from now, is shared by every step (a retirement's
        linger, the requests, the WebSockets' closing handshakes); past it, cancelled calls get
        what is left of a short grace to unwind (a 500 for a response not started) and the
        lifespan shutdown the rest of it. A second stop() (a second signal) ends every wait."""
        state = self.state
        if state is None:
            return
        logger.info("Shutting down")
        loop = state.loop
        deadline = loop.time() + self.config.graceful_timeout
        final = deadline + FINAL_GRACE
        state.shutting_down = True
        for listener in self._listeners:
            listener.close()
        if self.listeners_closed is not None:
            self.listeners_closed()
        if self.linger:
            await self._linger(deadline)
            state.all_closed = None  # the linger is over (ServerState.lingering)
        for conn in list(state.connections):
            conn.shutdown()
        # WebSockets have no request to finish: their closing handshakes start now, so that
        # they end cleanly within the deadline, and their clients reconnect elsewhere sooner.
        sessions = list(state.websockets)
        for session in sessions:
            session.close_with(SERVICE_RESTART if restart else GOING_AWAY)
        sockets = [session.task for session in sessions if session.task is not None]
        if (state.active or sockets) and not self._forced.is_set():
            logger.info("Waiting for %d request(s) and %d WebSocket(s) to finish",
                        state.active, len(sockets))  # fmt: skip
            drained = loop.create_task(state.wait_drained())
            await self._wait([drained, *sockets], deadline)
            drained.cancel()
        # Past the deadline (or all done): cut what is left. A request's app is cancelled; a
        # WebSocket's app is given its disconnect (1006), then cancelled if it goes on.
        for session in sessions:
            session.transport.close()
        requests = [task for conn in state.connections for task in conn.tasks]
        for task in requests:
            task.cancel()
        tasks = [task for task in requests + sockets if not task.done()]
        if tasks:
            # Let the calls unwind: a client whose response had not started gets its 500
            # rather than a bare close, an app its WebSocket's disconnect. Half the grace at
            # most: the lifespan shutdown is not left without time by an app that goes on.
            until = min(final, loop.time() + FINAL_GRACE / 2)
            await self._wait(tasks, until, at_least_one_turn=True)
            for task in sockets:
                task.cancel()
        for conn in list(state.connections):
            conn.close()
        if self._date_timer is not None:
            self._date_timer.cancel()
        if self.lifespan is not None:
            remaining = 0.0 if self._forced.is_set() else final - loop.time()
            await self.lifespan.shutdown(remaining, self._forced)
        for listener in self._listeners:
            waiter = loop.create_task(listener.wait_closed())
            await self._wait([waiter], final, at_least_one_turn=True)
            waiter.cancel()
        logger.info("Finished server process [%d]", os.getpid())

    async def _wait(
        self, tasks: list[asyncio.Task[Any]], until: float, at_least_one_turn: bool = False
    ) -> None:
        """Wait until every task is done, the loop's clock reaches ``until``, or a second stop()
        (``_forced``): whichever comes first. ``at_least_one_turn``: even when out of time,
        let the tasks run once (a cancelled task unwinds in one turn)."""
        loop = asyncio.get_running_loop()
        pending = {task for task in tasks if not task.done()}
        if pending and at_least_one_turn:
            await asyncio.sleep(0)
            pending = {task for task in pending if not task.done()}
        forced = loop.create_task(self._forced.wait())
        try:
            while pending and not forced.done():
                remaining = until - loop.time()
                if remaining <= 0:
                    return
                done, _ = await asyncio.wait(
                    pending | {forced}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                pending -= done
        finally:
            forced.cancel()

    async def _linger(self, deadline: float) -> None:
        """A retiring worker, while others go on serving: a request may already be on its
        way on any idle keep-alive connection, and closing that connection would lose it. So
        every connection closes after its next response (which says ``connection: close``),
        or when its keep-alive timer fires, within --graceful-timeout."""
        state = self.state
        assert state is not None
        connections = state.connections
        state.all_closed = asyncio.Event()
        for conn in list(connections):
            conn.linger()
        if not connections and not state.handshakes:
            return
        # (Counting the TLS handshakes in progress: each is answered once too.)
        logger.info("Retiring: answering %d open connection(s) once more",
                    len(connections) + len(state.handshakes))  # fmt: skip
        loop = state.loop
        closed = loop.create_task(state.all_closed.wait())
        ended = loop.create_task(self._linger_end.wait())
        # The linger ends early when every connection closed, or when a TERM ends it.
        await self._wait([loop.create_task(_first(closed, ended))], deadline)
        closed.cancel()
        ended.cancel()


async def _first(*tasks: asyncio.Task[Any]) -> None:
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)


def _quiet_disconnects(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A task of the app's own that ended because its client left (the README's ``tick``
    example: ``send()`` raised ``ClientDisconnected``) is no error worth a traceback."""
    if isinstance(context.get("exception"), ClientDisconnected):
        logger.debug("An app task ended with its client: %s", context.get("message"))
        return
    loop.default_exception_handler(context)


async def serve(config: Config, sockets: list[socket.socket], link: Link | None = None) -> None:
    """Serve until SIGINT or SIGTERM (or, under a master, its signals: ``supervised.py``),
    then shut down gracefully."""
    server = Server(config, sockets)
    supervised = Supervised(server, link) if link is not None else None
    if link is not None and supervised is not None:
        supervised.install()
        server.listeners_closed = link.stopped_accepting
    else:
        server.install_signal_handlers()
    try:
        await boot(server, config.boot_timeout, watchdog=supervised is None)
        # What exists now (the app, its modules, what its startup made) lives as long as the
        # worker: set it apart from the cyclic garbage collector, whose full collections would
        # otherwise walk all of it again and again, each one pausing every request.
        gc.freeze()
        if supervised is not None:
            supervised.serving()
        await server.wait()
    finally:
        await server.shutdown(restart=server.restart)
        if supervised is not None:
            supervised.close()


async def boot(server: Server, timeout: float, watchdog: bool) -> None:
    """``server.start()`` (the app's import and its lifespan startup) within --boot-timeout:
    past it, log where the app waits and raise ``StartupError``. An import that blocks the
    event loop cannot be interrupted from it: the master aborts such a worker (SIGABRT, its
    traceback dumped); without a master, ``watchdog`` makes faulthandler's thread dump every
    traceback and end the process a moment later."""
    if not timeout:
        await server.start()
        return
    if watchdog:
        faulthandler.dump_traceback_later(timeout + BOOT_MARGIN, exit=True, file=log_stream())
    try:
        await asyncio.wait_for(server.start(), timeout)
    except asyncio.TimeoutError:
        message = f"worker timed out while booting (longer than --boot-timeout {timeout:g}s)"
        lifespan = server.lifespan
        if lifespan is not None and lifespan.task is not None and not lifespan.task.done():
            logger.error("%s: the app's lifespan startup has not completed; it waits in:\n%s",
                         message, lifespan.where())  # fmt: skip
        else:
            logger.error("%s", message)
        raise StartupError(message) from None
    finally:
        if watchdog:
            faulthandler.cancel_dump_traceback_later()


def make_ssl_context(config: Config) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(
            config.ssl_certfile,  # type: ignore[arg-type]
            config.ssl_keyfile,
            config.ssl_keyfile_password,
        )
        if config.ssl_ca_certs:
            context.load_verify_locations(config.ssl_ca_certs)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cannot load TLS certificate or key: {exc}") from None
    context.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if config.ssl_min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    if config.ssl_ciphers is not None:
        context.set_ciphers(config.ssl_ciphers)  # (Config tried it: it selects some cipher)
    # RFC 9113 section 3.3 (and RFC 7301): h2 first, as the client's order is ours to override.
    context.set_alpn_protocols(
        {"auto": ["h2", "http/1.1"], "1.1": ["http/1.1"], "2": ["h2"]}[config.http]
    )
    return context


def _corked(sock: socket.socket) -> bool:
    """Whether the connections that ``sock`` accepts start corked (TCP_CORK, which they
    inherit: ``supervisor/sockets.py``). Asked of the socket, not of the settings: whoever
    corked it, its connections must uncork before their first write that is not their last
    (``transport.py``), or wait up to 200 ms."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not hasattr(socket, "TCP_CORK"):
        return False
    try:
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK))
    except OSError:
        return False


def _describe(sock: socket.socket, scheme: str) -> str:
    if sock.family == socket.AF_UNIX:
        return f"{scheme}+unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return (
        f"{scheme}://[{host}]:{port}"
        if sock.family == socket.AF_INET6
        else (f"{scheme}://{host}:{port}")
    )


def run_worker(config: Config, sockets: list[socket.socket], link: Link | None = None) -> None:
    """Run one worker's event loop (uvloop) until it is told to stop; ``link``: a master
    supervises this worker."""
    import uvloop

    logger.debug("%s", keep_freed_memory())
    uvloop.run(serve(config, sockets, link))
