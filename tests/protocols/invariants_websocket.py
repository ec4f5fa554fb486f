"""Invariants of ``WebSocketCore`` (uvicorn/protocols/websocket.py), checked on any client
bytes.

``WebSocketRun`` is a core after an accepted handshake, fed client bytes as the worker feeds it,
with the app sending between reads: only Message/Closed/Pong events, nothing after Closed,
messages within max_size, buffers bounded by max_size, no parser error hidden behind a 1011,
and every byte it writes is a well-formed server frame (read back by ``ServerFrameReader``, from
``invariants_websocket_frames``). ``compare_ws_runs`` says whether two ways of splitting the
same bytes gave the same events and frames. ``WsOp`` and ``build_client_stream`` build a
client's stream together with the events a correct server reports for it, so that valid
messages can be checked for exact delivery. A client controls every byte the core reads: it
must neither crash the worker, nor make it hold more than max_size, nor see its messages
depend on how TCP split them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.protocols.invariants import fail
from tests.protocols.invariants_websocket_frames import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    SENDABLE_CODES,
    TEXT,
    Deflater,
    ServerFrameReader,
    client_frame,
)
from uvicorn.protocols.http_parser import RequestHead, RequestParser, Upgrade
from uvicorn.protocols.websocket import Closed, Message, Pong, WebSocketCore

WS_HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def open_websocket(
    max_size: int = 2**20, deflate: bool = False, offer_deflate: bool = False
) -> tuple[WebSocketCore, bool]:
    """A ``WebSocketCore`` after an accepted handshake, its 101 already written; and whether
    permessage-deflate was negotiated."""
    data = WS_HANDSHAKE
    if offer_deflate:
        data += b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
    events = RequestParser(upgrades=frozenset({b"websocket"})).receive_data(data + b"\r\n")
    head = events[0]
    assert isinstance(head, RequestHead) and isinstance(events[-1], Upgrade), events
    core = WebSocketCore(head, max_size, deflate)
    core.accept()
    response, eof = core.data_to_send()
    if not response.startswith(b"HTTP/1.1 101 ") or eof:
        fail(f"handshake not accepted: {response!r}")
    negotiated = b"permessage-deflate" in response.lower()
    if negotiated and not (deflate and offer_deflate):
        fail("permessage-deflate negotiated though not offered and enabled")
    return core, negotiated


def ws_event(event: Any) -> tuple[Any, ...]:
    if type(event) is Message:
        return ("text", event.text) if event.text is not None else ("data", event.data)
    if type(event) is Closed:
        return ("closed", event.code, event.reason)
    if type(event) is Pong:
        return ("pong",)
    fail(f"unexpected WebSocket event {event!r}")
    raise AssertionError


# websockets' parser turns these into a close frame (1002, 1009, 1007, 1006); anything else it
# caught is a bug it hid behind a 1011.
_EXPECTED_PARSER_ERRORS = ("ProtocolError", "PayloadTooBig", "UnicodeDecodeError", "EOFError")


@dataclass
class WebSocketRun:
    """A WebSocketCore fed client bytes as the worker feeds it: after every read, its output
    is written; once it says to close the transport, nothing more is read."""

    max_size: int = 2**20
    deflate: bool = False
    offer_deflate: bool = False
    core: WebSocketCore = field(init=False)
    negotiated: bool = field(init=False)
    reader: ServerFrameReader = field(init=False)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    server_closed: bool = False  # the app started the closing handshake
    sent: list[tuple[int, bytes]] = field(default_factory=list)  # what the app sent

    def __post_init__(self) -> None:
        self.core, self.negotiated = open_websocket(self.max_size, self.deflate, self.offer_deflate)
        self.reader = ServerFrameReader(self.negotiated)

    @property
    def transport_closed(self) -> bool:
        return self.reader.eof

    def feed(self, data: bytes) -> None:
        if self.transport_closed:
            return  # the worker closed the transport: nothing more is read
        self._events(self.core.receive_data(data))
        self._flush()

    def feed_eof(self) -> None:
        if not self.transport_closed:
            self._events(self.core.receive_eof())
            self._flush()

    def connection_lost(self) -> None:
        self._events(self.core.connection_lost())
        if not any(e[0] == "closed" for e in self.events):
            fail("the connection was lost without a Closed event")

    def app_send(self, kind: int, payload: bytes) -> None:
        """The app sends a message (TEXT or BINARY), pings (PING) or closes (CLOSE, payload
        the code), as the session does: only while the connection is open."""
        core = self.core
        if not core.is_open:
            return
        if kind == TEXT:
            text = payload.decode("utf-8", "replace")
            core.send_text(text)
            self.sent.append((TEXT, text.encode()))
        elif kind == BINARY:
            core.send_bytes(payload)
            self.sent.append((BINARY, payload))
        elif kind == PING:
            core.send_ping(payload[:125])
        else:
            code = int.from_bytes(payload[:2].rjust(2, b"\0"), "big")
            core.close(code if code in SENDABLE_CODES else 1000)
            self.server_closed = True
        self._flush()

    def _events(self, events: Any) -> None:
        if type(events) is not list:
            fail(f"the core returned {events!r}")
        for event in events:
            if self.events and self.events[-1][0] == "closed":
                fail(f"{event!r} after Closed")
            item = ws_event(event)
            if item[0] in ("text", "data"):
                payload = item[1].encode("utf-8") if item[0] == "text" else item[1]
                if type(payload) is not bytes:
                    fail(f"a Message of {type(payload)}")
                if len(payload) > self.max_size:
                    fail(f"a message of {len(payload)} bytes, max_size {self.max_size}")
            elif item[0] == "closed":
                code, reason = item[1], item[2]
                if not isinstance(code, int) or type(reason) is not str:
                    fail(f"Closed({code!r}, {reason!r})")
                if code not in SENDABLE_CODES | {1005, 1006}:
                    fail(f"Closed with code {code}")
            self.events.append(item)
        # Memory: what the core holds between reads is bounded by max_size.
        core = self.core
        held = sum(len(f) for f in core._fragments)
        if held > self.max_size:
            fail(f"{held} bytes of fragments held, max_size {self.max_size}")
        buffered = len(core.protocol.reader.buffer)
        if buffered > self.max_size + 14:
            fail(f"{buffered} bytes buffered, max_size {self.max_size}")
        exc = core.protocol.parser_exc
        if exc is not None and type(exc).__name__ not in _EXPECTED_PARSER_ERRORS:
            fail(f"websockets' parser hid {exc!r}")

    def _flush(self) -> None:
        data, eof = self.core.data_to_send()
        if type(data) is not bytes or type(eof) is not bool:
            fail(f"data_to_send returned {(data, eof)!r}")
        self.reader.feed(data, eof)
        closed = [e for e in self.events if e[0] == "closed"]
        if eof and not closed and not self.reader.close:
            fail("the transport closes without a close frame and without a Closed event")
        if closed and not self.server_closed and self.reader.close is not None:
            code = closed[0][1]
            if code != 1006 and self.reader.close[0] != code:
                fail(f"Closed({code}) reported but close frame {self.reader.close} sent")

    def check_sent(self) -> None:
        """The app's messages reached the client intact, in order."""
        if self.reader.messages != self.sent:
            fail(f"sent {self.sent!r}, the client read {self.reader.messages!r}")


def compare_ws_runs(whole: WebSocketRun, split: WebSocketRun) -> None:
    """Events and frames must not depend on how the client's bytes were split."""
    if whole.events != split.events:
        fail(f"events depend on the split:\n whole: {whole.events!r}\n split: {split.events!r}")
    frames = [[(f.opcode, f.payload) for f in run.reader.frames] for run in (whole, split)]
    if frames[0] != frames[1] or whole.reader.eof != split.reader.eof:
        fail(f"server frames depend on the split:\n whole: {frames[0]!r}\n split: {frames[1]!r}")


@dataclass
class WsOp:
    """One thing a client sends: a data message (TEXT or BINARY) in ``fragments`` frames,
    possibly compressed; a PING, PONG or CLOSE frame; or ``raw`` bytes (anything)."""

    kind: int
    payload: bytes = b""
    fragments: int = 1
    compress: bool = False
    code: int | None = 1000  # CLOSE: None for an empty close frame
    raw: bytes = b""
    mask: bytes | None = b"\x37\xfa\x21\x3d"
    long_length: bool = False


RAW = -1


def build_client_stream(
    ops: Sequence[WsOp], negotiated: bool, max_size: int
) -> tuple[bytes, list[tuple[Any, ...]] | None]:
    """The client's bytes for ``ops``, and the events a correct server reports for them (None
    when some op is not a valid message: raw bytes, invalid UTF-8, a message over max_size,
    a control payload over 125 bytes or a close code that may not be sent)."""
    deflater = Deflater() if negotiated else None
    parts: list[bytes] = []
    expected: list[tuple[Any, ...]] | None = []
    for op in ops:
        if op.mask is None:
            expected = None  # a client MUST mask its frames (RFC 6455 section 5.1)
        if op.kind == RAW:
            parts.append(op.raw)
            expected = None
            continue
        if op.kind in (TEXT, BINARY):
            payload = op.payload
            if len(payload) > max_size:
                expected = None
            if op.kind == TEXT:
                try:
                    item: tuple[Any, ...] = ("text", payload.decode("utf-8"))
                except UnicodeDecodeError:
                    expected = None
            else:
                item = ("data", payload)
            compress = op.compress and deflater is not None
            if compress:
                assert deflater is not None
                size = len(payload)
                payload = deflater.compress(payload)
                if size + len(payload) > max_size:
                    # websockets checks each compressed frame's length against what max_size
                    # leaves after the bytes inflated so far: a message near max_size may be
                    # refused (1009) for its compressed frames.
                    expected = None
            count = max(1, op.fragments)
            size = -(-len(payload) // count) if payload else 0
            pieces = [payload[i * size : (i + 1) * size] for i in range(count)] if size else [b""]
            for i, piece in enumerate(pieces):
                opcode = op.kind if i == 0 else CONT
                rsv = 0b100 if compress and i == 0 else 0
                last = i == len(pieces) - 1
                parts.append(client_frame(opcode, piece, last, rsv, op.mask, op.long_length))
            if expected is not None and (not expected or expected[-1][0] != "closed"):
                expected.append(item)
            continue
        payload = op.payload
        if op.kind == CLOSE:
            if op.code is None:
                payload = b""  # an empty close frame: no code, no reason
            else:
                payload = struct.pack("!H", op.code) + op.payload
                try:
                    reason = op.payload.decode("utf-8")
                except UnicodeDecodeError:
                    expected = None
                if op.code not in SENDABLE_CODES:
                    expected = None
        if len(payload) > 125 or len(payload) > max_size:
            expected = None  # (websockets applies max_size to control frames too)
        parts.append(client_frame(op.kind, payload, True, 0, op.mask, op.long_length))
        if expected is None or (expected and expected[-1][0] == "closed"):
            continue
        if op.kind == PONG:
            expected.append(("pong",))
        elif op.kind == CLOSE:
            expected.append(
                ("closed", 1005, "") if op.code is None else ("closed", op.code, reason)
            )
    return b"".join(parts), expected
