"""Helpers for the WebSocket worker tests: an app that records what it is given, and a raw
client for what the ``websockets`` client will not do (stay silent, drop the connection, send
an empty close frame, pipeline an upgrade behind a request)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from tests.helpers import UNIT, RunningServer
from uvicorn.worker.websocket import WebSocketSession


def url(server: RunningServer, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def sessions(server: RunningServer) -> list[WebSocketSession]:
    state = server.server.state
    assert state is not None
    return list(state.websockets)


class Recorder:
    """Every message the app was called with, in order; ``wait_for(channel)`` returns the next
    one of that channel."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def record(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self._changed.set()

    def channels(self) -> list[str]:
        return [m.get("channel") or m.get("type") for m in self.messages]  # type: ignore[misc]

    async def wait_for(self, channel: str, count: int = 1) -> dict[str, Any]:
        """The ``count``-th message of ``channel``, once it has come."""

        async def wait() -> dict[str, Any]:
            while True:
                found = [m for m in self.messages if channel in (m.get("channel"), m.get("type"))]
                if len(found) >= count:
                    return found[count - 1]
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), 5 * UNIT)


class RawWebSocket:
    """A WebSocket client on a plain TCP stream. websockets' sans-I/O ``ClientProtocol`` frames
    the bytes, but nothing is written unless the test says so: a pong the protocol queued in
    answer to a ping goes out only with ``flush()``."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: ClientProtocol
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self.response: Response | None = None
        self.eof = False
        self._pending: list[Any] = []  # events read past the frame returned

    @classmethod
    async def connect(
        cls, port: int, path: str = "/", before: bytes = b"", headers: Any = (), small: bool = False
    ) -> RawWebSocket:
        """Open the connection and send the handshake (after ``before``, pipelined); call
        ``handshake()`` to read the answer. ``small``: tiny receive buffers, so that a client
        that stops reading soon fills the server's write buffer."""
        if small:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls.start(reader, writer, port, path, before, headers)

    @classmethod
    def start(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        port: int,
        path: str = "/",
        before: bytes = b"",
        headers: Any = (),
    ) -> RawWebSocket:
        """Send the handshake on a connection already open."""
        protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
        request = protocol.connect()
        for name, value in headers:
            request.headers[name] = value
        protocol.send_request(request)
        writer.write(before + b"".join(protocol.data_to_send()))
        return cls(reader, writer, protocol)

    async def handshake(self) -> Response:
        """The server's answer to the handshake (101 or an HTTP response)."""
        while self.response is None:
            events = await self._read()
            for i, event in enumerate(events):
                if isinstance(event, Response):
                    self.response = event
                    self._pending = events[i + 1 :]  # frames that came with it
                    break
            if self.eof and self.response is None:
                raise ConnectionError("closed before the handshake's answer")
        return self.response

    async def next_frame(self) -> Frame | None:
        """The next frame from the server; None once it closed the connection."""
        while True:
            events = await self._read()
            for event in events:
                if isinstance(event, Frame):
                    self._pending = events[events.index(event) + 1 :]
                    return event
            if self.eof:
                return None

    async def until_closed(self, answer: bool = False) -> list[Frame]:
        """Every frame until the server closes the TCP connection; ``answer``: write what the
        protocol answers (pongs, the closing handshake's close frame)."""
        frames = []
        while (frame := await self.next_frame()) is not None:
            frames.append(frame)
            if answer:
                self.flush()
        return frames

    async def _read(self) -> list[Any]:
        if self._pending:
            events, self._pending = self._pending, []
            return events
        events = self.protocol.events_received()
        if events or self.eof:
            return events
        data = await asyncio.wait_for(self.reader.read(65536), 10 * UNIT)
        if data:
            self.protocol.receive_data(data)
        else:
            self.eof = True
            self.protocol.receive_eof()
        return self.protocol.events_received()

    def send_text(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        self.flush()

    def send_frame(self, opcode: Opcode, data: bytes = b"") -> None:
        """One frame as given, whatever the protocol's state (even before the handshake's
        answer, or invalid UTF-8 in a text frame)."""
        self.flush()
        self.writer.write(Frame(opcode, data).serialize(mask=True, extensions=[]))

    def flush(self) -> None:
        """Write whatever the protocol queued (pongs included)."""
        for data in self.protocol.data_to_send():
            if data:
                self.writer.write(data)

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        self.writer.transport.abort()

    def close(self) -> None:
        self.writer.close()
