"""A WebSocket on an HTTP/2 stream (RFC 8441): ``H2Tunnel`` is the transport a
``WebSocketSession`` (``websocket.py``) writes to, as it would to a TCP connection's.

The session is the one HTTP/1.1 WebSockets use, unchanged: frames go in DATA frames within the
stream's windows (the session's writes pause while they do not let them through), what the
client sends in DATA comes to the session as bytes (its window given back while the session
reads), the session's "close the connection" ends the stream (END_STREAM: section 5, "orderly
TCP-level closures are represented as END_STREAM flags") and a reset is a lost connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http2_response import H2Response
from uvicorn.worker.http2_stream import H2Host


class H2Tunnel:
    __slots__ = ("conn", "stream_id", "session", "pending", "pending_end", "gone",
                 "closing", "owed", "read_paused", "_lost_called")  # fmt: skip

    def __init__(self, conn: H2Host, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.session: asyncio.Protocol | None = None
        self.pending = b""  # frames the windows did not let through yet
        self.pending_end = False  # ... and the END_STREAM after them
        self.gone = False  # reset, or the connection lost
        self.closing = False  # the session closed its "transport"
        self.owed = 0  # received bytes whose window was not given back yet
        self.read_paused = False
        self._lost_called = False

    @property
    def done(self) -> bool:
        """The session is over: the stream can be forgotten."""
        return self._lost_called

    # The transport the session sees.

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.conn.transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self.closing or self.gone

    def send_head(self, status: int, fields: list[tuple[bytes, bytes]], body: bytes) -> None:
        """The handshake's answer: 200 (accepted: the stream stays open) or a refusal."""
        if self.gone:
            return
        accepted = 200 <= status < 300
        response = H2Response(self.conn.state.defaults, False)
        block, end = response.start(status, fields, body, accepted)
        self.conn.core.send_headers(self.stream_id, block, end)
        if body and not end:
            self._send(body, True)
        elif not accepted:
            self.closing = True
        self.conn.output()

    def write(self, data: bytes) -> None:
        if self.closing or self.gone:
            return
        self._send(data, False)
        self.conn.output()

    def _send(self, data: bytes, end: bool) -> None:
        if self.pending:
            self.pending += data
            self.pending_end = self.pending_end or end
            return
        sent = self.conn.core.send_data(self.stream_id, data, end)
        if sent < len(data):
            self.pending = data[sent:]
            self.pending_end = end
            if self.session is not None:
                self.session.pause_writing()

    def close(self) -> None:
        """The session is done with the stream: END_STREAM, after what waits for window."""
        if self.closing or self.gone:
            self._lose_soon()
            return
        self.closing = True
        if self.pending:
            self.pending_end = True
        elif self.stream_id in self.conn.core.streams:
            self._send(b"", True)
            self.conn.output()
        self._lose_soon()

    def pause_reading(self) -> None:
        self.read_paused = True

    def resume_reading(self) -> None:
        self.read_paused = False
        if self.owed and not self.gone:
            owed, self.owed = self.owed, 0
            self.conn.core.consumed(self.stream_id, owed)
            self.conn.output()

    # The connection's side.

    def received(self, data: bytes) -> None:
        if self.read_paused:
            self.owed += len(data)
        else:
            self.conn.core.consumed(self.stream_id, len(data))
        if self.session is not None and not self._lost_called:
            self.session.data_received(data)

    def ended(self) -> None:
        """The client ended its side of the stream: the WebSocket's EOF."""
        session = self.session
        if session is not None and not self._lost_called and not session.eof_received():
            self.close()

    def window_opened(self) -> None:
        if not self.pending or self.gone:
            return
        data, end = self.pending, self.pending_end
        self.pending = b""
        self.pending_end = False
        self._send(data, end)
        self.conn.output()
        if not self.pending:
            if self._lost_called:
                self.conn.forget_stream(self)  # (its END_STREAM is out)
            elif self.session is not None:
                self.session.resume_writing()

    def lost(self) -> None:
        """The stream was reset, or the connection lost."""
        self.gone = True
        self.pending = b""
        self._lose()

    def _lose_soon(self) -> None:
        # As a transport does: connection_lost() is called from the loop, not from close().
        self.conn.loop.call_soon(self._lose)

    def _lose(self) -> None:
        if not self._lost_called:
            self._lost_called = True
            session, self.session = self.session, None  # (it keeps this stream as its transport)
            if session is not None:
                session.connection_lost(None)
            if not self.pending:
                self.conn.forget_stream(self)
