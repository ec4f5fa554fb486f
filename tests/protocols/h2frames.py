"""A tiny HTTP/2 client for the ``H2Core`` conformance tests (tests/protocols/test_http2_*.py):
frames built by ``hyperframe`` (raw bytes for what it refuses to build), header blocks by the
``hpack`` package's encoder (one per connection, as its dynamic table is), and what the server
sends parsed back by ``hyperframe`` into tuples that a test compares exactly. ``hyperframe``,
``hpack`` and ``h2`` are test oracles only: uvicorn never imports them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import hpack
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from uvicorn.protocols.hpack import Encoder as OurEncoder
from uvicorn.protocols.http2 import (
    BODY,
    GOAWAY,
    MALFORMED,
    PONG,
    REQUEST,
    RESET,
    H2Core,
    H2Settings,
)
from uvicorn.protocols.http2_control import Event
from uvicorn.protocols.http2_frames import H2ConnectionError

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 section 3.4
MAX_WINDOW = 2**31 - 1  # RFC 9113 section 6.9.1


class T:
    """Frame types (RFC 9113 section 6), for ``raw`` frames."""

    DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
    WINDOW_UPDATE, CONTINUATION = 8, 9


# Error codes (RFC 9113 section 7), as h2 names them (an IntEnum: failures read well).
NO_ERROR = ErrorCodes.NO_ERROR
PROTOCOL_ERROR = ErrorCodes.PROTOCOL_ERROR
FLOW_CONTROL_ERROR = ErrorCodes.FLOW_CONTROL_ERROR
STREAM_CLOSED = ErrorCodes.STREAM_CLOSED
FRAME_SIZE_ERROR = ErrorCodes.FRAME_SIZE_ERROR
REFUSED_STREAM = ErrorCodes.REFUSED_STREAM
CANCEL = ErrorCodes.CANCEL
COMPRESSION_ERROR = ErrorCodes.COMPRESSION_ERROR
ENHANCE_YOUR_CALM = ErrorCodes.ENHANCE_YOUR_CALM

GET = [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "example.com")]
Fields = Sequence[tuple[str | bytes, str | bytes]]


def post(length: int | None = None) -> list[tuple[str, str]]:
    fields = [(":method", "POST"), (":scheme", "https"), (":path", "/upload"),
              (":authority", "example.com")]  # fmt: skip
    if length is not None:
        fields.append(("content-length", str(length)))
    return fields


# Frames.


def raw(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """A frame exactly as given (RFC 9113 section 4.1), for what hyperframe will not build."""
    n = len(payload)
    return n.to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big") + payload


def settings(values: dict[int, int] | None = None) -> bytes:
    return SettingsFrame(0, values or {}).serialize()


def settings_ack() -> bytes:
    return SettingsFrame(0, flags=["ACK"]).serialize()


def headers(
    stream_id: int,
    block: bytes,
    end_stream: bool = True,
    end_headers: bool = True,
    **options: Any,
) -> bytes:
    """A HEADERS frame; ``options`` are hyperframe's (``pad_length``, ``depends_on``...),
    with the PADDED and PRIORITY flags set when they are given."""
    flags = []
    if end_stream:
        flags.append("END_STREAM")
    if end_headers:
        flags.append("END_HEADERS")
    if "pad_length" in options:
        flags.append("PADDED")
    if "depends_on" in options:
        flags.append("PRIORITY")
        options.setdefault("stream_weight", 15)
    return HeadersFrame(stream_id, block, flags=flags, **options).serialize()


def continuation(stream_id: int, block: bytes, end_headers: bool = True) -> bytes:
    return ContinuationFrame(
        stream_id, block, flags=["END_HEADERS"] if end_headers else []
    ).serialize()


def data(stream_id: int, payload: bytes = b"", end_stream: bool = False, **options: Any) -> bytes:
    flags = ["END_STREAM"] if end_stream else []
    if "pad_length" in options:
        flags.append("PADDED")
    return DataFrame(stream_id, payload, flags=flags, **options).serialize()


def ping(payload: bytes = b"12345678", ack: bool = False) -> bytes:
    return PingFrame(0, payload, flags=["ACK"] if ack else []).serialize()


def rst_stream(stream_id: int, code: int = CANCEL) -> bytes:
    return RstStreamFrame(stream_id, code).serialize()


def window_update(stream_id: int, increment: int) -> bytes:
    return WindowUpdateFrame(stream_id, increment).serialize()


def goaway(last_stream_id: int = 0, code: int = NO_ERROR, debug: bytes = b"") -> bytes:
    return GoAwayFrame(0, last_stream_id, code, debug).serialize()


def parse_frames(data: bytes) -> list[Frame]:
    """Every frame in ``data``, which must hold whole frames only."""
    frames = []
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 9, f"a truncated frame header: {data[pos:]!r}"
        frame, length = Frame.parse_frame_header(view[pos : pos + 9])
        assert pos + 9 + length <= len(data), "a truncated frame"
        frame.parse_body(view[pos + 9 : pos + 9 + length])
        frames.append(frame)
        pos += 9 + length
    return frames


def _code(code: int) -> int:
    try:
        return ErrorCodes(code)
    except ValueError:
        return code


def describe(frame: Frame) -> tuple[Any, ...]:
    """A frame as a tuple to compare exactly: its type, stream and what matters of it."""
    flags = frame.flags
    if isinstance(frame, RstStreamFrame):
        return ("RST_STREAM", frame.stream_id, _code(frame.error_code))
    if isinstance(frame, GoAwayFrame):
        return ("GOAWAY", frame.last_stream_id, _code(frame.error_code))
    if isinstance(frame, SettingsFrame):
        return ("SETTINGS", "ACK") if "ACK" in flags else ("SETTINGS", dict(frame.settings))
    if isinstance(frame, PingFrame):
        return ("PING", "ACK" if "ACK" in flags else "", bytes(frame.opaque_data))
    if isinstance(frame, WindowUpdateFrame):
        return ("WINDOW_UPDATE", frame.stream_id, frame.window_increment)
    if isinstance(frame, HeadersFrame | ContinuationFrame):
        kind = "HEADERS" if isinstance(frame, HeadersFrame) else "CONTINUATION"
        return (kind, frame.stream_id, "END_STREAM" in flags, "END_HEADERS" in flags)
    if isinstance(frame, DataFrame):
        return ("DATA", frame.stream_id, len(frame.data), "END_STREAM" in flags)
    return (type(frame).__name__, frame.stream_id)


def kinds(events: Iterable[Event]) -> list[tuple[int, ...]]:
    """Events without their objects: (kind, stream) for most, whole for RESET and GOAWAY."""
    out: list[tuple[int, ...]] = []
    for event in events:
        if event[0] in (RESET, GOAWAY, MALFORMED):
            out.append(event[:3])
        elif event[0] == BODY:
            out.append((BODY, event[1], len(event[2])))
        elif event[0] == PONG:
            out.append((PONG,))
        else:
            out.append(event[:2])
    return out


class Client:
    """An H2Core, and the client side of its connection: ``send`` feeds the core bytes and
    returns its events, ``sent`` returns what it sent back (as ``describe`` tuples). By default
    the connection is established: the preface and the client's SETTINGS are sent, and the
    server's preface and SETTINGS ACK are read (``server_preface`` keeps them)."""

    def __init__(
        self,
        config: H2Settings | None = None,
        *,
        client_settings: dict[int, int] | None = None,
        handshake: bool = True,
    ) -> None:
        self.core = H2Core(config or H2Settings())
        self.encoder = hpack.Encoder()
        self.core.initiate()
        self.server_preface = self.sent()
        if handshake:
            assert self.send(PREFACE + settings(client_settings)) == []
            assert self.sent() == [("SETTINGS", "ACK")]

    def send(self, *chunks: bytes) -> list[Event]:
        events: list[Event] = []
        for chunk in chunks:
            events += self.core.receive_data(chunk)
        return events

    def frames(self) -> list[Frame]:
        return parse_frames(self.core.data_to_send())

    def sent(self) -> list[tuple[Any, ...]]:
        return [describe(frame) for frame in self.frames()]

    def block(self, fields: Fields = GET, huffman: bool = True) -> bytes:
        return self.encoder.encode(list(fields), huffman=huffman)

    def request(
        self, stream_id: int, fields: Fields = GET, end_stream: bool = True, **options: Any
    ) -> list[Event]:
        return self.send(headers(stream_id, self.block(fields), end_stream, **options))

    def connection_error(self, *chunks: bytes) -> tuple[Any, ...]:
        """Feed ``chunks`` expecting a connection error: the core raises, closes, and has
        queued one GOAWAY (section 5.4.1) of the same code, after any other frame; the GOAWAY is
        returned, described."""
        with pytest.raises(H2ConnectionError) as info:
            self.send(*chunks)
        frames = self.sent()
        assert frames and frames[-1][0] == "GOAWAY", frames
        assert [f for f in frames if f[0] == "GOAWAY"] == [frames[-1]]
        assert frames[-1][2] == info.value.code
        assert self.core.closed
        assert self.core.receive_data(ping()) == [] and self.sent() == []  # nothing more
        return frames[-1]

    def respond(self, stream_id: int, body: bytes = b"", status: int = 200) -> None:
        """The app's answer: a response head, and the body if any, ending the stream."""
        block = OurEncoder().encode([(b":status", str(status).encode())])
        self.core.send_headers(stream_id, block, end_stream=not body)
        if body:
            assert self.core.send_data(stream_id, body, True) == len(body)

    def still_serves(self, stream_id: int) -> None:
        """The connection goes on: a new request on ``stream_id`` is served, and a PING is
        answered."""
        events = self.request(stream_id)
        assert kinds(events) == [(REQUEST, stream_id)], events
        self.respond(stream_id)
        assert self.send(ping(b"goes on!")) == []
        assert self.sent() == [("HEADERS", stream_id, True, True), ("PING", "ACK", b"goes on!")]
