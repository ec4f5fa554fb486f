"""HTTP/2 wire format (RFC 9113 sections 4, 6 and 7): frame types, flags, settings, error codes,
and the serializers of the frames a server sends. No state: ``http2.py`` holds the connection.
"""

from __future__ import annotations

from struct import Struct

# RFC 9113 section 3.4: the client's connection preface.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (section 6).
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Settings (section 6.5.2; 8: RFC 8441 section 3).
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6
ENABLE_CONNECT_PROTOCOL = 0x8

# Error codes (section 7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xA
ENHANCE_YOUR_CALM = 0xB
INADEQUATE_SECURITY = 0xC
HTTP_1_1_REQUIRED = 0xD

DEFAULT_WINDOW = 65535  # section 6.9.2
MAX_WINDOW = 2**31 - 1  # section 6.9.1
DEFAULT_FRAME_SIZE = 16384  # section 4.2
MAX_FRAME_SIZE_LIMIT = 2**24 - 1

# The frame header: 24-bit length (as 16 + 8 bits), type, flags, stream id (with its reserved
# bit, which receivers ignore: section 4.1).
HEADER = Struct(">HBBBL")
unpack_header = HEADER.unpack_from
pack_header = HEADER.pack
unpack_u32 = Struct(">L").unpack_from
SETTING = Struct(">HL")

SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


class H2ConnectionError(Exception):
    """A connection error (section 5.4.1): GOAWAY with ``code``, then close."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class H2StreamError(Exception):
    """A stream error (section 5.4.2): RST_STREAM with ``code``; the connection goes on."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return pack_header(n >> 8, n & 0xFF, kind, flags, stream_id) + payload


def settings(values: list[tuple[int, int]]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(SETTING.pack(k, v) for k, v in values))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, code.to_bytes(4, "big"))


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, increment.to_bytes(4, "big"))


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, last_stream_id.to_bytes(4, "big") + code.to_bytes(4, "big") + debug)


def header_frames(stream_id: int, block: bytes, end_stream: bool, max_size: int) -> list[bytes]:
    """A header block as one HEADERS frame, or HEADERS and CONTINUATION frames when it is larger
    than the peer's SETTINGS_MAX_FRAME_SIZE (section 6.10)."""
    n = len(block)
    flags = END_STREAM if end_stream else 0
    if n <= max_size:
        return [pack_header(n >> 8, n & 0xFF, HEADERS, flags | END_HEADERS, stream_id), block]
    frames = []
    kind = HEADERS
    for start in range(0, n, max_size):
        chunk = block[start : start + max_size]
        last = start + max_size >= n
        frames.append(frame(kind, flags | (END_HEADERS if last else 0), stream_id, chunk))
        kind, flags = CONTINUATION, 0
    return frames
