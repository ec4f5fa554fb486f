"""One worker: load the app, run lifespan, serve the listeners, drain and shut down."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import ssl
from typing import Any

from uvicorn.config import Config
from uvicorn.exceptions import ClientDisconnected, StartupError
from uvicorn.protocols.websocket import GOING_AWAY, SERVICE_RESTART
from uvicorn.worker.asgi import ASGICycle, ASGIWebSocket, asgi2_to_asgi3
from uvicorn.worker.connection import HTTPConnection
from uvicorn.worker.cycle import RequestCycle
from uvicorn.worker.lifespan import Lifespan
from uvicorn.worker.loading import load_app
from uvicorn.worker.messaging import MessagingCycle, MessagingWebSocket
from uvicorn.worker.state import ServerState
from uvicorn.worker.supervised import Link, Supervised
from uvicorn.worker.websocket import CLOSE_TIMEOUT, WebSocketSession

logger = logging.getLogger("uvicorn.error")


class Server:
    """``start()``, then ``wait()`` until ``stop()`` (or a signal), then ``shutdown()``."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        self.config = config
        self.sockets = sockets
        self.state: ServerState | None = None
        self.lifespan: Lifespan | None = None
        self._listeners: list[asyncio.AbstractServer] = []
        self._stop = asyncio.Event()
        self._forced = asyncio.Event()
        self._date_timer: asyncio.TimerHandle | None = None
        # Set by retire() (supervisor): a new worker replaces this one.
        self.restart = False
        self.linger = False
        self._linger_end = asyncio.Event()

    async def start(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        app, interface = load_app(config)
        if interface == "asgi2":
            app = asgi2_to_asgi3(app)
        cycle_class: type[RequestCycle] = MessagingCycle
        websocket_class: type[WebSocketSession] = MessagingWebSocket
        if interface != "messaging":
            cycle_class, websocket_class = ASGICycle, ASGIWebSocket
        state = self.state = ServerState(config, app, cycle_class, loop, websocket_class)
        if interface != "messaging" and config.lifespan != "off":
            self.lifespan = Lifespan(app, config.lifespan)
            await self.lifespan.startup()
            if self.lifespan.supported:
                state.lifespan_state = self.lifespan.state
        context = make_ssl_context(config) if config.is_ssl else None
        for sock in self.sockets:
            listener = await loop.create_server(
                lambda: HTTPConnection(state), sock=sock, ssl=context, backlog=config.backlog
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
        """Stop accepting, let in-flight requests finish (up to --graceful-timeout), then
        close WebSockets with 1001 (going away), or 1012 (service restart) when ``restart``
        says a new worker replaces this one."""
        state = self.state
        if state is None:
            return
        logger.info("Shutting down")
        state.shutting_down = True
        for listener in self._listeners:
            listener.close()
        deadline = state.loop.time() + self.config.graceful_timeout
        if self.linger:
            await self._linger(deadline)
        for conn in list(state.connections):
            conn.shutdown()
        if state.active and not self._forced.is_set():
            logger.info("Waiting for %d request(s) to finish", state.active)
            drained = asyncio.ensure_future(state.wait_drained())
            stopped = asyncio.ensure_future(self._forced.wait())
            await asyncio.wait(
                [drained, stopped],
                timeout=max(0.0, deadline - state.loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            drained.cancel()
            stopped.cancel()
        await self._close_websockets(SERVICE_RESTART if restart else GOING_AWAY)
        tasks = [
            conn.cycle.task
            for conn in state.connections
            if conn.cycle is not None and conn.cycle.task is not None
        ]
        for task in tasks:
            task.cancel()
        if tasks:
            # Let the cancelled calls unwind before closing, so that a client whose response
            # had not started gets its 500 rather than a bare close. Bounded: an app that
            # ignores cancellation does not hold the shutdown.
            await asyncio.wait(tasks, timeout=1.0)
        for conn in list(state.connections):
            conn.close()
        if self._date_timer is not None:
            self._date_timer.cancel()
        if self.lifespan is not None:
            await self.lifespan.shutdown()
        for listener in self._listeners:
            await listener.wait_closed()
        logger.info("Finished server process [%d]", os.getpid())

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
            if conn.cycle is None:
                conn.closing = True
            else:
                conn.shutdown()
        if not connections:
            return
        logger.info("Retiring: answering %d open connection(s) once more", len(connections))
        waiters = [
            asyncio.ensure_future(event.wait())
            for event in (state.all_closed, self._forced, self._linger_end)
        ]
        await asyncio.wait(
            waiters,
            timeout=max(0.0, deadline - state.loop.time()),
            return_when=asyncio.FIRST_COMPLETED,
        )
        for waiter in waiters:
            waiter.cancel()

    async def _close_websockets(self, code: int) -> None:
        """Start each WebSocket's closing handshake and give the apps their disconnect; a
        peer that does not answer in time is cut off."""
        state = self.state
        assert state is not None
        sessions = list(state.websockets)
        if not sessions:
            return
        for session in sessions:
            session.close_with(code)
        tasks = [session.task for session in sessions if session.task is not None]
        if tasks and not self._forced.is_set():
            await asyncio.wait(tasks, timeout=min(CLOSE_TIMEOUT, self.config.graceful_timeout))
        for session in sessions:
            session.transport.close()  # the app then gets its disconnect (1006)
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        for task in tasks:
            task.cancel()


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
    if supervised is not None:
        supervised.install()
    else:
        server.install_signal_handlers()
    try:
        await server.start()
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
    context.set_alpn_protocols(["http/1.1"])
    return context


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

    uvloop.run(serve(config, sockets, link))
