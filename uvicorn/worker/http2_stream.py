"""The ``Stream`` (``stream.py``) of one request on an HTTP/2 connection: the same request
cycles run on it as on HTTP/1.1.

Back-pressure both ways follows the app. A request body's window is given back as it is
received while the app keeps up, and only as the app reads once 64 KiB wait unread (the
HTTP/1.1 rule, where reading pauses). A response is sent within the client's windows; what they
do not let through waits on its stream, and the app's next ``send`` waits with it. A failure
ends the stream (RST_STREAM), never the connection.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from uvicorn.exceptions import ClientDisconnected
from uvicorn.protocols import http2_frames as frames
from uvicorn.protocols.http2 import H2Core
from uvicorn.protocols.http2_response import H2Response, interim_block, refusal
from uvicorn.protocols.http_response import ResponseState
from uvicorn.worker.cycle import BODY_HIGH_WATER, RequestCycle
from uvicorn.worker.files import send_chunks
from uvicorn.worker.state import ServerState
from uvicorn.worker.stream import Stream

_IDLE = ResponseState.IDLE
_DONE = ResponseState.DONE


class H2Host(Protocol):
    """What a stream needs of its connection (``http2.H2Connection``)."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    state: ServerState
    server: list[Any] | None
    tls: dict[str, Any] | None
    core: H2Core
    write_paused: bool

    def output(self) -> None: ...  # send what the core queued

    async def drain(self) -> None: ...  # wait while the socket's buffer is full

    def finished(self, stream: H2Stream, cycle: RequestCycle) -> None: ...

    def forget_stream(self, stream: Any) -> None: ...  # its body is sent: it is gone


class H2Stream(Stream):
    """The ``Stream`` (``stream.py``) of one request on an HTTP/2 connection."""

    __slots__ = ("conn", "stream_id", "cycle", "response", "pending", "pending_end", "gone",
                 "owed", "trailers", "loop", "state", "server", "tls", "_waiter")  # fmt: skip

    def __init__(self, conn: H2Host, stream_id: int, is_head: bool) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.cycle: RequestCycle | None = None
        self.response: H2Response = H2Response(conn.state.defaults, is_head)
        self.pending: bytes = b""  # response body the windows did not let through yet
        self.pending_end = False  # ... and whether it ends the stream
        self.trailers = b""  # the trailers' header block, to send once the pending body went
        self.gone = False  # reset, or the connection lost: nothing more is sent
        self.owed = 0  # received body bytes whose window was not given back yet
        # The connection's, set before its first stream (plain attributes: stream.py says why).
        self.loop = conn.loop
        self.state = conn.state
        self.server = conn.server
        self.tls = conn.tls
        self._waiter: asyncio.Future[None] | None = None

    @property
    def done(self) -> bool:
        """The app's call is over (or there was none)."""
        return self.cycle is None or self.cycle.finished

    @property
    def peer_eof(self) -> bool:
        return False  # the end of a request is not the client leaving: a reset is

    @property
    def write_blocked(self) -> bool:
        return bool(self.pending) or self.conn.write_paused

    # Sending.

    def send_start(self, status: Any, headers: Any, content: bytes, more: bool) -> None:
        if self.gone:
            raise ClientDisconnected()
        response = self.response
        block, end = response.start(status, headers, content, more)
        conn = self.conn
        if response.state is _IDLE:  # an interim (1xx) response
            conn.core.send_headers(self.stream_id, block, False)
        else:
            conn.core.send_headers(self.stream_id, block, end)
            if content and not end and not response.no_body:
                self._send(content, not more)
        conn.output()

    def send_body(self, content: bytes, more: bool) -> None:
        if self.gone:
            raise ClientDisconnected()
        try:
            data = self.response.body(content, more)
        except RuntimeError:
            if self.response.state is _DONE:
                self.abort()  # the body broke its declared length: never half sent
            raise
        if data or not more:
            self._send(data, not more)
            self.conn.output()

    def send_trailers(self, fields: list[tuple[bytes, bytes]]) -> None:
        if self.gone:
            raise ClientDisconnected()
        try:
            block = self.response.trailers(fields)
        except RuntimeError:
            if self.response.state is _DONE:
                self.abort()  # the body broke its declared length: never half sent
            raise
        if not block:
            self._send(b"", True)  # no field: the stream ends with an empty DATA frame
        elif self.pending:
            self.trailers = block  # sent once the body has gone (window_opened)
        else:
            self.conn.core.send_headers(self.stream_id, block, True)
        self.conn.output()

    async def send_file(self, fd: int, offset: int, count: int, more: bool) -> None:
        await send_chunks(self, fd, offset, count, more)  # in DATA frames, within the windows

    def _send(self, data: bytes, end: bool) -> None:
        if self.pending:
            self.pending += data
            self.pending_end = end
            return
        sent = self.conn.core.send_data(self.stream_id, data, end)
        if sent < len(data):
            self.pending = data[sent:]
            self.pending_end = end

    def window_opened(self) -> None:
        """The windows let more of the pending body through."""
        if self.pending and not self.gone:
            data = self.pending
            self.pending = b""
            self._send(data, self.pending_end)
            if not self.pending:
                if self.trailers:
                    self.conn.core.send_headers(self.stream_id, self.trailers, True)
                    self.trailers = b""
                self._wake()
                if self.cycle is None or self.cycle.finished:
                    self.conn.forget_stream(self)

    def send_continue(self) -> None:
        if not self.gone:
            self.conn.core.send_headers(self.stream_id, interim_block(100), False)
            self.conn.output()

    def send_refusal(self, status: int) -> None:
        if self.gone:
            return
        response = self.response
        response.status = status
        response.abandon()
        block, body = refusal(self.state.defaults, status)
        core = self.conn.core
        if response.no_body:
            core.send_headers(self.stream_id, block, True)
        else:
            core.send_headers(self.stream_id, block, False)
            self._send(body, True)
        self.conn.output()

    def abort(self) -> None:
        """RST_STREAM (INTERNAL_ERROR): the client learns the response is incomplete; the
        connection and its other streams go on."""
        self.response.abandon()
        if not self.gone:
            self.gone = True
            self.pending = b""
            self.conn.core.reset(self.stream_id, frames.INTERNAL_ERROR)
            self.conn.output()
        self._wake()

    def refuse_body(self, status: int) -> None:
        if self.gone:
            return
        response = self.response
        if response.state is _IDLE:
            self.send_refusal(status)
        elif response.state is not _DONE:
            self.abort()  # a response cut short: the client must not take it for whole
            return
        if self.pending:
            return  # (a window too small for even the answer: the stream ends as usual)
        # RFC 9113 section 8.1: a complete response before the whole request; the client is
        # asked to stop sending, without error. The window of what waited unread goes back
        # to the connection (the stream's is gone with it).
        self.gone = True
        conn = self.conn
        conn.core.reset(self.stream_id, frames.NO_ERROR)
        if self.owed:
            conn.core.consumed(self.stream_id, self.owed)
            self.owed = 0
        conn.output()
        self._wake()

    async def drain(self) -> None:
        while True:
            if self.gone:
                raise ClientDisconnected()
            if self.pending:
                waiter = self._waiter = self.loop.create_future()
                await waiter
            elif self.conn.write_paused:
                await self.conn.drain()
            else:
                return

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # Receiving.

    def received(self, data: bytes) -> None:
        cycle = self.cycle
        if cycle is None or cycle.finished or cycle.unread + len(data) <= BODY_HIGH_WATER:
            self.conn.core.consumed(self.stream_id, len(data))
        else:
            self.owed += len(data)
        if cycle is not None:
            cycle.feed_body(data)

    def ended(self) -> None:
        """The request's body is complete (unless its cycle refused it: refuse_body)."""
        cycle = self.cycle
        if cycle is not None and not cycle.disconnected:
            cycle.end_body()

    def update_reading(self) -> None:
        """The app read what waited: give the window back."""
        owed = self.owed
        cycle = self.cycle
        if owed and not self.gone and (cycle is None or cycle.unread <= BODY_HIGH_WATER):
            self.owed = 0
            self.conn.core.consumed(self.stream_id, owed)
            self.conn.output()

    def lost(self) -> None:
        """The stream was reset, or the connection lost."""
        self.gone = True
        self.pending = b""
        self._wake()
        if self.cycle is not None:
            self.cycle.connection_lost()

    def finished(self, cycle: RequestCycle) -> None:
        self.conn.finished(self, cycle)
