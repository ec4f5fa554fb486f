"""An HTTP/2 client for the tests: the h2 library over asyncio streams, so that a test decides
every frame (when window is given back, resets, PINGs, floods) and sees every event, per stream.

A reader task feeds what arrives to h2 and wakes ``until()``; nothing is waited for by time."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from h2.connection import ConnectionState

from tests.helpers import UNIT

Headers = Iterable[tuple[str | bytes, str | bytes]]


class StreamResult:
    """What arrived on one stream."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.interim: list[int] = []  # statuses of 1xx responses, in order
        self.data = bytearray()
        self.data_frames = 0  # DATA frames that carried bytes
        self.ended = False  # END_STREAM received
        self.trailers: list[tuple[bytes, bytes]] | None = None  # a trailing HEADERS' fields
        self.reset: int | None = None  # the RST_STREAM error code, if reset

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def __repr__(self) -> str:
        return (f"<StreamResult {self.status} {self.headers} {bytes(self.data[:80])!r} "
                f"ended={self.ended} reset={self.reset}>")  # fmt: skip


class H2Client:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, auto_ack: bool
    ) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.reader = reader
        self.writer = writer
        self.auto_ack = auto_ack  # give window back for every DATA frame received
        self.streams: dict[int, StreamResult] = {}
        self.events: list[h2.events.Event] = []
        self.goaways: list[tuple[int, int]] = []  # (error code, last stream id)
        self.pongs = 0
        self.eof = False
        self.error: Exception | None = None  # h2 refused what the server sent
        # Called at each GOAWAY, before the frames after it are read (e.g. to send a request
        # "already on its way").
        self.on_goaway: Callable[[int, int], None] | None = None
        self._buffer = b""
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, port: int, auto_ack: bool = True, preface: bool = True) -> H2Client:
        """Connect and send the client preface (not waiting for the server's: a request may
        follow at once, as real clients do)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer, auto_ack)
        if preface:
            client.conn.initiate_connection()
            client.flush()
        client.start_reading()
        return client

    @classmethod
    async def upgrade(
        cls, port: int, path: str = "/", extra: bytes = b""
    ) -> tuple[H2Client, bytes]:
        """An HTTP/1.1 request with ``Upgrade: h2c`` (RFC 7540 section 3.2); returns the
        client and the HTTP/1.1 response head (101 when switched). Stream 1 carries the
        response to the request."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer, True)
        settings = client.conn.initiate_upgrade_connection()
        assert settings is not None
        writer.write(
            b"GET %s HTTP/1.1\r\nhost: test\r\nconnection: Upgrade, HTTP2-Settings\r\n"
            b"upgrade: h2c\r\nhttp2-settings: %s\r\n%s\r\n" % (path.encode(), settings, extra)
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5 * UNIT)
        if head.startswith(b"HTTP/1.1 101 "):
            client.streams[1] = StreamResult()
            client.flush()  # our preface, after the 101 (RFC 7540 section 3.5)
            client.start_reading()
        return client, head

    def start_reading(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read())

    # Sending.

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def request(
        self,
        path: str = "/",
        method: str = "GET",
        headers: Headers = (),
        body: bytes = b"",
        end_stream: bool = True,
        authority: str | None = "test",
    ) -> int:
        """Open a stream with a request; ``body`` (within the windows) follows the head;
        ``end_stream``: the request is complete."""
        stream_id = self.conn.get_next_available_stream_id()
        fields: list[tuple[str | bytes, str | bytes]] = [
            (":method", method), (":scheme", "http"), (":path", path)
        ]  # fmt: skip
        if authority is not None:
            fields.append((":authority", authority))
        fields += list(headers)
        self.streams[stream_id] = StreamResult()
        self.conn.send_headers(stream_id, fields, end_stream=end_stream and not body)
        if body:
            sent = self.send_body(stream_id, body, end_stream)
            assert sent == len(body), "the body did not fit in the windows"
        self.flush()
        return stream_id

    def send_body(self, stream_id: int, data: bytes, end_stream: bool = False) -> int:
        """As much of ``data`` as the windows allow, in frames h2 accepts; END_STREAM with
        its last byte if all of it went. Returns how many bytes went."""
        sent = 0
        while sent < len(data):
            room = min(
                self.conn.local_flow_control_window(stream_id),
                self.conn.max_outbound_frame_size,
                len(data) - sent,
            )
            if room <= 0:
                break
            last = sent + room == len(data)
            self.conn.send_data(stream_id, data[sent : sent + room], end_stream and last)
            sent += room
        if not data and end_stream:
            self.conn.end_stream(stream_id)
        self.flush()
        return sent

    def reset(self, stream_id: int, code: int) -> None:
        self.conn.reset_stream(stream_id, code)
        self.flush()

    def ping(self, payload: bytes = b"h2client") -> None:
        self.conn.ping(payload)
        self.flush()

    def give_window(self, size: int, stream_id: int = 0) -> None:
        self.conn.increment_flow_control_window(size, stream_id or None)
        self.flush()

    # Receiving.

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    self.eof = True
                    return
                self._buffer += data
                # One frame at a time, so that a GOAWAY is handled (see _event) before the
                # frames that follow it in the same read.
                while len(self._buffer) >= 9:
                    end = 9 + int.from_bytes(self._buffer[:3], "big")
                    if len(self._buffer) < end:
                        break
                    frame, self._buffer = self._buffer[:end], self._buffer[end:]
                    try:
                        events = self.conn.receive_data(frame)
                    except h2.exceptions.ProtocolError as exc:
                        self.error = exc
                        return
                    for event in events:
                        self._event(event)
                self.flush()
                self._changed.set()
        except (ConnectionError, OSError):
            self.eof = True
        finally:
            self._changed.set()

    def _event(self, event: h2.events.Event) -> None:
        self.events.append(event)
        stream_id = getattr(event, "stream_id", None)
        result = self.streams.setdefault(stream_id, StreamResult()) if stream_id else None
        if isinstance(event, h2.events.ResponseReceived):
            assert result is not None
            result.headers = list(event.headers)  # type: ignore[arg-type]
            result.status = int(dict(result.headers)[b":status"])
        elif isinstance(event, h2.events.InformationalResponseReceived):
            assert result is not None
            result.interim.append(int(dict(event.headers)[b":status"]))  # type: ignore[arg-type]
        elif isinstance(event, h2.events.DataReceived):
            assert result is not None and event.data is not None
            result.data += event.data
            result.data_frames += bool(event.data)
            if self.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            assert result is not None
            result.trailers = list(event.headers)  # type: ignore[arg-type]
        elif isinstance(event, h2.events.StreamEnded):
            assert result is not None
            result.ended = True
        elif isinstance(event, h2.events.StreamReset):
            assert result is not None
            result.reset = int(event.error_code)  # type: ignore[arg-type]
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaways.append((int(event.error_code), event.last_stream_id))  # type: ignore[arg-type]
            # h2 closes its whole state machine on any GOAWAY, but RFC 9113 section 6.8
            # lets the streams up to its last stream id complete: go on receiving them.
            self.conn.state_machine.state = ConnectionState.CLIENT_OPEN
            if self.on_goaway is not None:
                self.on_goaway(*self.goaways[-1])
        elif isinstance(event, h2.events.PingAckReceived):
            self.pongs += 1

    async def until(self, predicate: Callable[[], Any], timeout: float = 5) -> None:
        """Wait until ``predicate()`` holds (checked after each read); fail on timeout, or when
        the connection ended without it."""

        async def wait() -> None:
            while not predicate():
                if self.error is not None:
                    raise AssertionError(f"h2 refused what the server sent: {self.error!r}")
                if self.eof or (self._task is not None and self._task.done()):
                    raise AssertionError(f"connection closed; events: {self.events[-10:]}")
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(wait(), timeout * UNIT)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out; last events: {self.events[-10:]}") from None

    async def response(self, stream_id: int, timeout: float = 5) -> StreamResult:
        """The stream, once it ended or was reset."""
        result = self.streams[stream_id]
        await self.until(lambda: result.done, timeout)
        return result

    async def round_trip(self) -> None:
        """A PING answered: the server has handled everything sent before it, and what it
        sent in answer has been read."""
        pongs = self.pongs
        self.ping()
        await self.until(lambda: self.pongs > pongs)

    async def closed(self, timeout: float = 5) -> None:
        """Wait until the server closes the connection."""

        async def wait() -> None:
            while not self.eof and self.error is None:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout * UNIT)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.writer.close()


def settings_header(payload: bytes) -> bytes:
    """An HTTP2-Settings field value (base64url, no padding)."""
    return base64.urlsafe_b64encode(payload).rstrip(b"=")
