"""What must hold for ``H2Core`` (uvicorn/protocols/http2.py) whatever a client sends: the
oracle of tests/protocols/test_properties_http2.py (streams Hypothesis builds) and of
fuzz/fuzz_http2.py (the fuzzer's).

A client stream is the connection preface and a SETTINGS frame, then frames built from
``FrameSpec``: any type, flags and stream, with a payload as given, or, for HEADERS and
CONTINUATION, a header block the ``hpack`` package encodes from ``FIELD_SETS`` (on one encoder
per connection, as a client's) then perhaps cut. ``H2Run`` feeds such bytes to a core, as the
worker does, and checks at each read:

- only ``H2ConnectionError`` escapes ``receive_data``; then the core is closed, has queued one
  GOAWAY of the same code, last, and takes nothing more (RFC 9113 section 5.4.1);
- every event is of a kind the core documents, on a client stream (odd), WINDOW alone on 0;
- what it sends is whole frames (``hyperframe`` reads them back), none longer than the
  client's SETTINGS_MAX_FRAME_SIZE in force (section 4.2), no more DATA than the windows the
  client opened, the connection's and each stream's (section 6.9), no HEADERS or DATA on an even
  stream (no push) or on a stream after its END_STREAM or RST_STREAM (section 5.1), and each
  answered body whole before its END_STREAM;
- its state stays bounded: open streams within SETTINGS_MAX_CONCURRENT_STREAMS, the partial
  frame within a frame's size, a header block within the header list size, and the caches
  (validated blocks, reset streams) within their caps.

``respond``: the app answers every request at once (a response head, and a body), so that the
sending side and the streams' ends are driven too. Without it, ``compare_h2_runs`` checks that
the events and frames do not depend on how the bytes were split (up to a connection error,
whose read's events are dropped with the exception: ``receive_data``'s contract).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import hpack
from hyperframe.frame import DataFrame, HeadersFrame, RstStreamFrame

from tests.protocols.h2frames import PREFACE, describe, kinds, parse_frames, raw, settings
from uvicorn.protocols import http2_control
from uvicorn.protocols.hpack import Encoder as OurEncoder
from uvicorn.protocols.http2 import (
    BODY,
    END,
    GOAWAY,
    KEPT_SIZE,
    MALFORMED,
    PONG,
    REQUEST,
    RESET,
    WINDOW,
    H2Core,
    H2Settings,
)
from uvicorn.protocols.http2_frames import H2ConnectionError

GET = [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "a")]
FIELD_SETS: list[list[tuple[str, str]]] = [
    GET,
    [(":method", "POST"), (":scheme", "https"), (":path", "/u"), (":authority", "a"),
     ("content-length", "5")],
    [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
     (":path", "/chat"), (":authority", "a"), ("sec-websocket-version", "13")],
    [(":method", "GET"), (":path", "/")],  # malformed: no :scheme
    [("x-trailer", "1")],  # trailers
    [*GET, ("te", "trailers"), ("cookie", "a=1"), ("cookie", "b=2"), ("x-long", "v" * 300)],
    [*GET, ("connection", "close")],  # malformed: a connection-specific field
]  # fmt: skip
EVENT_KINDS = {REQUEST, MALFORMED, BODY, END, RESET, WINDOW, GOAWAY, PONG}
STREAM_EVENTS = {REQUEST, MALFORMED, BODY, END, RESET}
BODY_SIZE = 20_000  # of each response (respond): more than a frame, and than small windows


@dataclass(frozen=True)
class FrameSpec:
    kind: int
    flags: int
    stream_id: int
    payload: bytes = b""
    fields: int | None = None  # HEADERS/CONTINUATION: FIELD_SETS[fields], encoded
    cut: int = 0  # then, of that block: > 0 only its first `cut` octets, < 0 its last
    continuations: int = 0  # the block spread over this frame and as many CONTINUATIONs
    repeat: int = 1  # sent this many times, the stream id 2 higher each time (a burst of streams)


def client_bytes(specs: list[FrameSpec], client_settings: dict[int, int] | None = None) -> bytes:
    encoder = hpack.Encoder()
    out = [PREFACE, settings(client_settings)]
    for one in specs:
        for i in range(max(one.repeat, 1)):
            spec = one if i == 0 else replace(one, stream_id=one.stream_id + 2 * i, repeat=1)
            out += _frames(spec, encoder)
    return b"".join(out)


def _frames(spec: FrameSpec, encoder: hpack.Encoder) -> list[bytes]:
    """One spec's frames: the frame, and the CONTINUATIONs its header block was spread over."""
    payload, flags, stream_id = spec.payload, spec.flags, spec.stream_id & 0x7FFFFFFF
    pieces: list[bytes] = []
    if spec.fields is not None:
        block = encoder.encode(FIELD_SETS[spec.fields % len(FIELD_SETS)])
        block = block[: spec.cut] if spec.cut > 0 else block[spec.cut :] if spec.cut else block
        if spec.continuations:
            step = -(-len(block) // (spec.continuations + 1)) or 1
            block, pieces = block[:step], [block[i : i + step] for i in
                                           range(step, len(block), step)]  # fmt: skip
            flags &= ~0x04  # END_HEADERS: on the last CONTINUATION
        payload += block
    out = [raw(spec.kind, flags, stream_id, payload)]
    for i, piece in enumerate(pieces):
        out.append(raw(9, 0x04 if i == len(pieces) - 1 else 0, stream_id, piece))
    if spec.continuations and not pieces:
        out.append(raw(9, 0x04, stream_id))
    return out


@dataclass
class H2Run:
    config: H2Settings = field(default_factory=H2Settings)
    respond: bool = False
    core: H2Core = field(init=False)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    sent: list[tuple[Any, ...]] = field(default_factory=list)
    error: int | None = None
    ended: set[int] = field(default_factory=set)  # streams we sent END_STREAM or RST_STREAM on
    pending: dict[int, bytes] = field(default_factory=dict)  # respond: bodies still to send
    bodies: dict[int, int] = field(default_factory=dict)  # octets of DATA sent, by stream
    # The connection's send window as the client gave it (section 6.9.2: 65,535, and each
    # WINDOW_UPDATE on stream 0), from the client's bytes: an upper bound of what the core may
    # send (it refuses some updates), never exceeded.
    credit: int = 65_535
    # A stream's, bounded the same way: SETTINGS_INITIAL_WINDOW_SIZE as the client's first
    # SETTINGS gave it (65,535 if it did not; that frame comes before any stream: section
    # 3.4), or the largest it gave since, and the WINDOW_UPDATEs on the stream.
    initial: int | None = None
    updates: dict[int, int] = field(default_factory=dict)
    client: bytes = b""  # the client's bytes not read yet, from `at` (past the preface)
    at: int = len(PREFACE)

    def __post_init__(self) -> None:
        self.core = H2Core(self.config)
        self.core.initiate()
        self._take()

    def feed(self, data: bytes) -> None:
        core = self.core
        if self.error is not None:
            assert core.receive_data(data) == [], "events after a connection error"
            assert core.data_to_send() == b"", "frames after a connection error"
            return
        self._count_credit(data)
        try:
            events = core.receive_data(data)
        except H2ConnectionError as exc:
            self.error = exc.code
            assert core.closed, "a connection error left the core open"
            frames = self._take()
            goaways = [f for f in frames if f[0] == "GOAWAY"]
            assert frames and frames[-1] == goaways[-1] and goaways[-1][2] == exc.code, frames
            return
        for event in events:
            self._check_event(event)
        self.events += events
        if self.respond:
            for event in events:
                if event[0] in (REQUEST, MALFORMED) and event[1] in core.streams:
                    self._answer(event[1])
            self._send_pending()
        self._take()
        self._check_bounds()

    def _count_credit(self, data: bytes) -> None:
        client = self.client + data
        while len(client) - self.at >= 9:
            at = self.at
            length = int.from_bytes(client[at : at + 3], "big")
            if len(client) - at < 9 + length:
                break
            kind, payload = client[at + 3], client[at + 9 : at + 9 + length]
            stream_id = int.from_bytes(client[at + 5 : at + 9], "big") & 0x7FFFFFFF
            if kind == 8 and length == 4:
                increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
                if stream_id:
                    self.updates[stream_id] = self.updates.get(stream_id, 0) + increment
                else:
                    self.credit += increment
            elif kind == 4 and not stream_id and not length % 6:
                first = self.initial is None
                for i in range(0, length, 6):
                    if payload[i : i + 2] == b"\0\x04":  # SETTINGS_INITIAL_WINDOW_SIZE
                        value = int.from_bytes(payload[i + 2 : i + 6], "big")
                        self.initial = value if first else max(self.initial or 0, value)
                if self.initial is None:
                    self.initial = 65_535
            self.at = at + 9 + length
        if self.at <= len(client):  # (past the preface) only a frame begun is kept
            client, self.at = client[self.at :], 0
        self.client = client

    def _check_event(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        assert kind in EVENT_KINDS, f"an unknown event {event!r}"
        if kind in STREAM_EVENTS:
            assert event[1] > 0 and event[1] & 1, f"{event!r} on a stream a client cannot open"
        elif kind == WINDOW:
            assert event[1] >= 0, event

    def _answer(self, stream_id: int) -> None:
        """A response head, then a body of ``BODY_SIZE`` octets, sent as the windows allow (the rest
        at each read, as a worker sends it once the client opens them)."""
        block = OurEncoder().encode([(b":status", b"200")])
        self.core.send_headers(stream_id, block, end_stream=False)
        self.pending[stream_id] = b"x" * BODY_SIZE

    def _send_pending(self) -> None:
        core = self.core
        for stream_id, body in list(self.pending.items()):
            if stream_id not in core.streams:  # reset by the client, or by the core
                del self.pending[stream_id]
                continue
            sent = core.send_data(stream_id, body, end_stream=True)
            assert 0 <= sent <= len(body), sent
            if sent == len(body):
                del self.pending[stream_id]
            else:
                self.pending[stream_id] = body[sent:]

    def _take(self) -> list[tuple[Any, ...]]:
        core = self.core
        frames = parse_frames(core.data_to_send())
        for frame in frames:
            length = len(frame.serialize()) - 9
            assert length <= core.peer_max_frame, f"a {length}-octet {frame!r}"
            if isinstance(frame, HeadersFrame | DataFrame):
                stream_id = frame.stream_id
                assert stream_id & 1, f"{frame!r} on a stream the server may not open"
                assert stream_id not in self.ended, f"{frame!r} after the stream ended"
                if isinstance(frame, DataFrame):
                    self.bodies[stream_id] = self.bodies.get(stream_id, 0) + len(frame.data)
                    self.credit -= len(frame.data)
                    assert self.credit >= 0, "DATA past the connection's window"
                    window = (self.initial or 0) + self.updates.get(stream_id, 0)
                    assert self.bodies[stream_id] <= window, "DATA past the stream's window"
                if "END_STREAM" in frame.flags:
                    self.ended.add(stream_id)
                    got = self.bodies.get(stream_id, 0)
                    assert got == BODY_SIZE, f"a {got}-octet body ended stream {stream_id}"
            elif isinstance(frame, RstStreamFrame):  # (also the answer to a bad PRIORITY
                assert frame.stream_id, frame  # frame on any stream: section 6.3)
                self.ended.add(frame.stream_id)
        described = [describe(frame) for frame in frames]
        self.sent += described
        return described

    def _check_bounds(self) -> None:
        core, config = self.core, self.config
        assert len(core.streams) <= config.max_concurrent_streams, len(core.streams)
        assert core._held <= 9 + config.max_frame_size, core._held
        assert len(core._block) <= config.max_header_list_size, len(core._block)
        assert len(core._requests) <= 32 and all(len(b) <= KEPT_SIZE for b in core._requests)
        assert len(core._reset) <= http2_control.RESET_MEMORY, len(core._reset)


def compare_h2_runs(whole: H2Run, split: H2Run) -> None:
    """The same bytes, whole and split: the same frames sent and the same error; the same
    events, except that the read that met a connection error returned none."""
    assert whole.error == split.error, (whole.error, split.error)
    assert whole.sent == split.sent, (whole.sent, split.sent)
    one, other = kinds(whole.events), kinds(split.events)
    if whole.error is None:
        assert one == other, (one, other)
    else:
        assert other[: len(one)] == one, (one, other)
