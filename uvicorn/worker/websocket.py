"""One WebSocket connection, after the HTTP connection handed its socket over.

``WebSocketSession`` is to WebSockets what ``RequestCycle`` is to HTTP: written once, it owns the
``WebSocketCore`` (bytes in, events out), the handshake decision, delivering the peer's messages
to the app in order, back-pressure both ways, keep-alive pings, the closing handshake and its
timeout, and shutdown (1001, or 1012 when a restart replaces the worker). The messaging
interface (``messaging.py``) and ASGI (``asgi.py``) subclass it and translate messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any, Final

from uvicorn.channels import DECLINED, Declined, Shared
from uvicorn.exceptions import ClientDisconnected
from uvicorn.protocols.http_parser import RequestHead
from uvicorn.protocols.http_response import simple_response
from uvicorn.protocols.websocket import Message, WebSocketCore
from uvicorn.protocols.websocket_events import (
    INTERNAL_ERROR,
    Closed,
    Event,
    Failing,
    HandshakeState,
)
from uvicorn.protocols.websocket_frames import BINARY_FIN, TEXT_FIN, unmasked_frame
from uvicorn.worker.state import ServerState
from uvicorn.worker.transport import TransportProtocol

logger = logging.getLogger("uvicorn.error")

# How long the peer has to answer our close frame before the TCP connection is dropped.
CLOSE_TIMEOUT = 10.0
# How long the app has, after the peer broke the protocol, to answer the messages that came
# before (the connection is failed once it asks for the next event; see _fail_now()).
FAIL_TIMEOUT = CLOSE_TIMEOUT
# Stop reading while this many bytes of received messages wait for the app.
INBOX_HIGH_WATER: Final = 1024 * 1024
_PENDING: Final = HandshakeState.PENDING


class WebSocketSession(TransportProtocol):
    """Subclasses implement ``call_app()``: the app's whole part in the connection."""

    tls: dict[str, Any] | None = None  # the connection's (tls_info.py), set by its handover

    def __init__(
        self,
        state: ServerState,
        transport: asyncio.Transport,
        head: RequestHead,
        client: list[Any] | None,
        server: list[Any] | None,
        scheme: str,
    ) -> None:
        super().__init__(state.loop)
        self.transport = transport
        self.state = state
        self.head = head
        self.client = client
        self.server = server
        self.scheme = "wss" if scheme == "https" else "ws"
        self.core = WebSocketCore(
            head,
            state.config.ws_max_size,
            state.config.ws_per_message_deflate,
            state.config.server_header,
            state.config.date_header,
            defer_failures=True,
            window_bits=state.config.ws_deflate_window_bits,
            h2=head.http_version == "2",
        )
        self.task: asyncio.Task[None] | None = None
        self.inbox: deque[Message | Closed | Failing] = deque()
        self.inbox_bytes = 0
        self.disconnect: Closed | None = None  # how the connection ended, once it has
        self._waiter: asyncio.Future[None] | None = None
        self._last_heard = self.loop.time()
        self._ping_sent_at: float | None = None
        self._close_deadline: float | None = None
        self._opened_at: float | None = None  # accepted, and to be logged as it ends

    # The HTTP connection's side.

    def start(self, data: bytes) -> None:
        """Take over the transport; ``data`` is what followed the upgrade request."""
        state = self.state
        if self.core.handshake_failed:
            logger.info(
                "Invalid WebSocket handshake for %s: %s",
                self._target(),
                self.core.protocol.handshake_exc,
            )
            self._log(self.core.status)
            self.flush_core()
            return
        if state.limit_concurrency is not None and state.at_capacity():
            logger.warning("Too many in flight (--limit-concurrency %d): 503",
                           state.limit_concurrency)  # fmt: skip
            if self.core.h2:
                self.transport.send_head(503, [], b"Service Unavailable\n")  # type: ignore[attr-defined]
            else:
                self.write(simple_response(state.defaults, 503), True)
            self._log(503)
            self.close()
            return
        state.websockets.add(self)
        self.task = self.loop.create_task(self._run())
        if state.config.ws_ping_interval:
            self._arm(self._last_heard + state.config.ws_ping_interval)
        if data:
            self.data_received(data)

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        self._last_heard = self.loop.time()
        self._ping_sent_at = None
        self._receive(self.core.receive_data(data))
        self.flush_core()  # pongs, close frames

    def eof_received(self) -> bool | None:
        self._receive(self.core.receive_eof())
        self.flush_core()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        state = self.state
        if self._opened_at is not None and state.access_format is not None:
            took = time.monotonic() - self._opened_at
            state.access_format.log(self.client, self.head, 101, None, took)
        state.websockets.discard(self)
        self._cancel_timer()
        self._lost()
        self._receive(self.core.connection_lost())

    def _receive(self, events: list[Event]) -> None:
        for event in events:
            if type(event) is Message:
                self.inbox.append(event)
                self.inbox_bytes += len(event.text or event.data or b"")
            elif type(event) is Closed:
                self.disconnect = event
                self.inbox.append(event)
                self._cancel_timer()
            elif type(event) is Failing:
                # The connection is failed when the app has handled what came before (its
                # answers leave before the close frame), or after FAIL_TIMEOUT at the latest.
                self.inbox.append(event)
                self._close_deadline = self.loop.time() + FAIL_TIMEOUT
                self._arm(self._close_deadline)
            # A Pong: data_received() already noted that the peer is alive.
        if events:
            self._wake()
            self._update_reading()

    def _update_reading(self) -> None:
        self._pause_reading(self.inbox_bytes > INBOX_HIGH_WATER)

    # Writing what the core produced.

    def flush_core(self) -> None:
        core = self.core
        if not core.has_output:
            # Nothing to write: nothing changed either (a close sent or answered, a failure,
            # a refusal all queue bytes), as after a read that held only data frames.
            return
        if core.h2_head is not None:  # (RFC 8441) the handshake's answer, in a HEADERS frame
            self.transport.send_head(*core.h2_head)  # type: ignore[attr-defined]
            core.h2_head = None
        data, eof = core.data_to_send()
        if data:
            self.write(data, True)
        if eof:
            self.close()  # the server closes the TCP connection (RFC 6455 section 7.1.1)
        elif self.core.close_expected and self._close_deadline is None:
            self._close_deadline = self.loop.time() + CLOSE_TIMEOUT
            self._arm(self._close_deadline)

    # The app's side, through the interface subclasses.

    async def call_app(self) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        try:
            await self.call_app()
        except asyncio.CancelledError:
            self._app_failed(None)
            raise
        except BaseException as exc:
            self._app_failed(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self.state.websockets.discard(self)
            if self.core.state is _PENDING:
                self.reject(500)

    def handler_failed(self, exc: BaseException) -> None:
        """A handler raised after the handshake: log it, close with 1011 (internal error)."""
        if isinstance(exc, ClientDisconnected):
            # SPEC: when ClientDisconnected ends an app call, nothing alarming is logged. It may
            # come from another connection's reply channel (the README's chat sends to every
            # client, one of which may have just left): this connection stays open.
            logger.debug("WebSocket app for %s: %s", self._target(), exc or "client disconnected")
            return
        logger.error("Exception in WebSocket app for %s", self._target(), exc_info=exc)
        if self.core.is_open:
            self.core.close(INTERNAL_ERROR, "")
            self.flush_core()

    def _app_failed(self, exc: BaseException | None) -> None:
        if self.core.state is _PENDING:
            if exc is not None:
                logger.error("Exception in WebSocket app for %s", self._target(), exc_info=exc)
            self.reject(500)  # SPEC: a connect handler that raises gets the client 500
            return
        if exc is not None:
            self.handler_failed(exc)
        if self.core.is_open:
            # The app's part is over (cancelled, or an ASGI app ended by ClientDisconnected
            # from another connection's send): nothing would answer this connection any more.
            self.core.close(INTERNAL_ERROR, "")
            self.flush_core()

    async def next_event(self) -> Message | Closed:
        """The next message from the peer, or how the connection ended."""
        while not self.inbox:
            waiter = self._waiter = self.loop.create_future()
            await waiter
        event = self.inbox.popleft()
        if type(event) is Message:
            self.inbox_bytes -= len(event.text or event.data or b"")
            if self.read_paused:
                self._update_reading()
            return event
        if isinstance(event, Failing):
            self._fail_now()
            return await self.next_event()  # the Closed event
        self.inbox.appendleft(event)  # the end stays the end for later calls
        return event

    def _fail_now(self) -> None:
        """Fail the connection the peer broke (RFC 6455 section 7.1.7), now that the app has
        answered the messages received before: Autobahn's cases 3.2, 4.1.3, 5.15... expect
        those answers before the close frame."""
        self._close_deadline = None
        events = self.core.fail_now()
        self.flush_core()
        self._receive(events)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def accept(self, subprotocol: str | None = None, headers: Any = ()) -> None:
        if self.core.state is _PENDING:
            self.core.accept(subprotocol, headers)
            self._log(self.core.status)
            self.flush_core()

    def reject(self, status: int = 403, headers: Any = (), body: bytes = b"") -> None:
        self.core.reject(status, headers, body)
        self._log(status)
        self.flush_core()

    def check_open(self) -> None:
        """Raise ``ClientDisconnected`` once nothing more can be sent."""
        if self.closed or not self.core.is_open:
            raise ClientDisconnected("the WebSocket is closed")

    async def send_message(self, text: str | None, data: bytes | None, close: int | None) -> None:
        """Send a message and/or start the closing handshake; wait while the peer is slow."""
        core = self.core
        if core.state is _PENDING:
            self.accept()
        self.check_open()
        if close is None and (text is not None or data is not None):
            frame = core.frame_data(text, data)  # made here: no websockets Frame, no join
            if frame is not None:
                self.write(frame, True)
                if self.write_paused:
                    await self.drain()
                return
        if text is not None:
            core.send_text(text)
        elif data is not None:
            core.send_bytes(data)
        if close is not None:
            core.close(close, "")
        self.flush_core()
        if self.write_paused:
            await self.drain()

    def send_shared(self, shared: Shared) -> Awaitable[None] | Declined | None:
        """A group's message on its way to many members here (the broadcast fan-out): its
        frame is made once (``shared_frame()``) and written to each member's transport, as
        ``send_message()`` writes it (the same state checks, ``WebSocketCore.shares_frames``,
        and the same back-pressure: what is left is waiting for the peer to read). DECLINED
        for a connection that must frame it itself (not open yet or any more, compressing)
        or a message that is not one plain data message: ``send_message()`` then does."""
        if self.closed or not self.core.shares_frames:
            return DECLINED
        frame = shared.frame
        if frame is None:
            frame = shared.frame = shared_frame(shared.message)
        if not frame:
            return DECLINED
        self.write(frame, True)
        if self.write_paused:
            return self.drain()
        return None

    def close_with(self, code: int) -> None:
        """Shutdown: start the closing handshake with ``code`` (1001 or 1012)."""
        if self.core.state is _PENDING:
            self.reject(503)
        elif self.core.is_open:
            self.core.close(code, "")
            self.flush_core()

    # Timers: keep-alive pings and the closing handshake's deadline, one per connection.

    def _on_timer(self) -> None:
        if self.closed:
            return
        now = self.loop.time()
        if self._close_deadline is not None:
            if now >= self._close_deadline:
                if self.core.failing:
                    self._fail_now()  # the app has not asked for the next event in time
                    return
                self.transport.close()  # the peer never finished the closing handshake
                return
            self._arm(self._close_deadline)
            return
        interval = self.state.config.ws_ping_interval
        if self._ping_sent_at is not None:
            if now >= self._ping_sent_at + self.state.config.ws_ping_timeout:
                logger.info("WebSocket %s did not answer a ping: closing", self._target())
                self.transport.close()  # the app gets a disconnect with 1006
                return
            self._arm(self._ping_sent_at + self.state.config.ws_ping_timeout)
        elif now >= self._last_heard + interval:
            timeout = self.state.config.ws_ping_timeout
            if self.core.is_open:
                # --ws-ping-timeout 0: ping the silent peer, but never close for its silence.
                self._ping_sent_at = now if timeout else None
                self.core.send_ping()
                self.flush_core()
                # Quiet both ways since the last ping too: no zlib compressor held meanwhile.
                self.core.release_compressor()
            self._arm(now + (min(interval, timeout) if timeout else interval))
        else:
            self._arm(self._last_heard + interval)

    # Logging.

    def _target(self) -> str:
        head = self.head
        query = b"?" + head.query_string if head.query_string else b""
        return (head.raw_path + query).decode("latin-1")

    def _log(self, status: int) -> None:
        """One access-log line per handshake: 101, or the status that refused it. With
        --access-log-format, an accepted session's line is written as it ends, with the time
        it was open (``connection_lost``)."""
        state = self.state
        if state.access_format is not None and state.access_log:
            if status == 101:
                self._opened_at = time.monotonic()
            else:
                state.access_format.log(self.client, self.head, status, None, 0.0)
        elif state.access_log:
            head = self.head
            self.state.log_request(
                self.client, head.method, self._target(), head.http_version, status
            )


def shared_frame(message: Any) -> bytes:
    """The frame of a group message (SPEC's reply message, which both interfaces' group
    channels take) that is one text or binary message and nothing else; b"" for any other
    (a close, both kinds, other types: what the ordinary path checks, or refuses, per member)."""
    text, data, close = message.get("text"), message.get("bytes"), message.get("close")
    if close is not None and close is not False:
        return b""
    if type(text) is str and data is None:
        return unmasked_frame(TEXT_FIN, text.encode("utf-8"))
    if type(data) is bytes and text is None:
        return unmasked_frame(BINARY_FIN, data)
    return b""
