"""The WebSocket wire format both ways, written here rather than taken from websockets, whose
parser the core under test uses and so cannot be its own judge.

``client_frame`` builds any client frame exactly as given, invalid ones included (unmasked,
non-minimal lengths, reserved bits), and ``Deflater`` is the client side of permessage-deflate
(RFC 7692), so that the checks can send what a real or a hostile client would.
``ServerFrameReader`` reads back what the server writes and fails on anything a server may not
send (RFC 6455: masked frames, non-minimal lengths, reserved opcodes and bits, bad
control frames and close payloads, text that is not UTF-8, bytes after the close frame),
reassembling and inflating the messages so that they can be compared with what the app sent.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from tests.protocols.invariants import fail

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
# Close codes an endpoint may send (RFC 6455 section 7.4, and the IANA registry).
SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)})


def client_frame(
    opcode: int,
    payload: bytes = b"",
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x37\xfa\x21\x3d",
    long_length: bool = False,
) -> bytes:
    """One client frame exactly as given (``mask`` None: unmasked; ``long_length``: the 64-bit
    length form, whatever the length)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0 if mask is None else 0x80
    length = len(payload)
    if long_length:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    elif length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if mask is None:
        return head + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class Deflater:
    """The client side of permessage-deflate (RFC 7692), context takeover on."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(wbits=-15)

    def compress(self, data: bytes) -> bytes:
        out = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        if not out.endswith(b"\x00\x00\xff\xff"):
            fail("no sync flush marker")
        return out[:-4]


@dataclass
class ServerFrame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes


class ServerFrameReader:
    """Reads what the server writes after the handshake, checking that each frame is one a
    server may send (RFC 6455 section 5; RFC 7692 for compressed messages)."""

    def __init__(self, deflate: bool) -> None:
        self.deflate = deflate
        self.buffer = b""
        self.frames: list[ServerFrame] = []
        self.messages: list[tuple[int, bytes]] = []  # (opcode, payload), reassembled
        self.close: tuple[int, str] | None = None  # the close frame's (code, reason); 1005
        self._fragments: list[bytes] | None = None
        self._message_opcode = 0
        self._compressed = False
        self._inflater = zlib.decompressobj(wbits=-15)
        self.eof = False

    def feed(self, data: bytes, eof: bool) -> None:
        if self.eof and (data or eof):
            fail(f"the server wrote {data!r} after closing the TCP connection")
        if self.close is not None and data:
            fail(f"the server wrote {data!r} after its close frame")
        self.buffer += data
        while self._one_frame():
            pass
        if eof:
            if self.buffer:
                fail(f"the server closed TCP inside a frame: {self.buffer!r}")
            self.eof = True

    def _one_frame(self) -> bool:
        data = self.buffer
        if len(data) < 2:
            return False
        first, second = data[0], data[1]
        if second & 0x80:
            fail("a masked server frame (RFC 6455 section 5.1)")
        length, at = second & 0x7F, 2
        if length == 126:
            if len(data) < 4:
                return False
            (length,) = struct.unpack("!H", data[2:4])
            at = 4
            if length < 126:
                fail("a non-minimal 16-bit length")
        elif length == 127:
            if len(data) < 10:
                return False
            (length,) = struct.unpack("!Q", data[2:10])
            at = 10
            if length < 65536 or length >= 2**63:
                fail("a non-minimal or too large 64-bit length")
        if len(data) < at + length:
            return False
        frame = ServerFrame(
            bool(first & 0x80), (first >> 4) & 7, first & 0x0F, data[at : at + length]
        )
        self.buffer = data[at + length :]
        self.frames.append(frame)
        self._check(frame)
        return True

    def _check(self, frame: ServerFrame) -> None:
        if self.close is not None:
            fail("a frame after the close frame")
        opcode = frame.opcode
        if opcode not in (CONT, TEXT, BINARY, CLOSE, PING, PONG):
            fail(f"reserved opcode {opcode}")
        if frame.rsv & 0b011 or (frame.rsv & 0b100 and not self.deflate):
            fail(f"RSV bits {frame.rsv:03b} without an extension that defines them")
        if opcode >= CLOSE:
            if not frame.fin or len(frame.payload) > 125 or frame.rsv:
                fail(f"bad control frame {frame!r}")
            if opcode == CLOSE:
                payload = frame.payload
                if len(payload) == 1:
                    fail("a 1-byte close payload")
                if payload:
                    (code,) = struct.unpack("!H", payload[:2])
                    if code not in SENDABLE_CODES:
                        fail(f"close code {code} may not be sent")
                    try:
                        reason = payload[2:].decode("utf-8")
                    except UnicodeDecodeError:
                        fail(f"close reason {payload[2:]!r} is not UTF-8")
                        raise
                    self.close = (code, reason)
                else:
                    self.close = (1005, "")
            return
        if opcode == CONT:
            if self._fragments is None:
                fail("a continuation frame with nothing to continue")
                raise AssertionError
            if frame.rsv:
                fail("RSV1 on a continuation frame")
        else:
            if self._fragments is not None:
                fail("a new data message inside a fragmented one")
            self._fragments, self._message_opcode = [], opcode
            self._compressed = bool(frame.rsv & 0b100)
        self._fragments.append(frame.payload)
        if frame.fin:
            payload = b"".join(self._fragments)
            self._fragments = None
            if self._compressed:
                try:
                    payload = self._inflater.decompress(payload + b"\x00\x00\xff\xff")
                except zlib.error as exc:
                    fail(f"a compressed message does not inflate: {exc}")
            if self._message_opcode == TEXT:
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    fail(f"a text message that is not UTF-8: {payload[:80]!r}")
            self.messages.append((self._message_opcode, payload))
