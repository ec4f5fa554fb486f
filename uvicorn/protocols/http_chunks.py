"""The framing of one chunked request body (RFC 9112 section 7.1), followed ahead of llhttp, sans
I/O: it finds where the body ends (so that whatever follows is parsed as the next request), and
rewrites the one kind of chunk-size line llhttp refuses though it is valid.

RFC 9112 section 7.1.1: ``chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val
] )``, and RFC 9110 section 5.6.3: a recipient "MUST parse for such bad whitespace and remove it
before interpreting the protocol element". llhttp takes no whitespace there, so a chunk-size line
with a valid extension and whitespace in it (``5 ; name = value``) is handed to llhttp without
its extensions (which a server MUST ignore when it does not know them: section 7.1.1).

Every other byte goes to llhttp unchanged, and llhttp keeps the last word: a size line with
extensions this module's grammar does not take goes as it came (and its chunk is followed all
the same); on a size line without a size, or a chunk not followed by CRLF, it stops looking and
passes the rest through as it came, for llhttp to refuse. A line (chunk size, trailer field)
longer than the limit is refused here, however it arrives (``too_long``).
"""

from __future__ import annotations

import re
from typing import Final

from uvicorn.protocols.http_rules import TOKEN

_TOKEN = TOKEN.pattern  # RFC 9110 section 5.6.2, within the size line's pattern
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_SIZE_LINE: Final = re.compile(
    rb"([0-9A-Fa-f]+)((?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|"
    + _QUOTED + rb"))?)*)\r\n"
)  # fmt: skip
_SIZE_DIGITS: Final = re.compile(rb"[0-9A-Fa-f]+")
_MAX_SIZE: Final = 2**64 - 1  # llhttp's: a larger chunk size is an overflow, which it refuses

# Where in the body the next byte falls.
_SIZE: Final = 0
_DATA: Final = 1
_DATA_CR: Final = 2
_DATA_LF: Final = 3
_TRAILERS: Final = 4
_PASSING: Final = 5
_REFUSED: Final = 6


class ChunkedBody:
    """Feed it the bytes received after the head, in order: ``feed()`` returns the bytes for
    llhttp, and the bytes past the end of this body (the next request's), if it ended."""

    __slots__ = ("_state", "_line", "_left", "_limit", "too_long")

    def __init__(self, limit: int) -> None:
        self._state = _SIZE
        self._line = b""  # a line (chunk size, trailer field) received in part, until whole
        self._left = 0  # chunk data bytes still to come
        self._limit = limit  # the longest line held
        # A chunk-size line or a trailer field was longer than the limit: RFC 9112 section
        # 7.1.1, a server ought to limit chunk extensions "and generate an appropriate 4xx
        # (Client Error) response if that amount is exceeded". Nothing more is returned.
        self.too_long = False

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        out: list[bytes] = []
        at = 0
        end = len(data)
        while at < end:
            state = self._state
            if state is _PASSING:
                out.append(data[at:])
                break
            if state is _REFUSED:
                break
            if state == _DATA:
                take = min(self._left, end - at)
                out.append(data[at : at + take])
                at += take
                self._left -= take
                if not self._left:
                    self._state = _DATA_CR
            elif state in (_DATA_CR, _DATA_LF):
                if data[at] != (13 if state == _DATA_CR else 10):
                    self._pass(out, data, at)  # no CRLF after the data: llhttp refuses it
                    break
                out.append(data[at : at + 1])
                at += 1
                self._state = _DATA_LF if state == _DATA_CR else _SIZE
            else:  # a line: a chunk size, or a trailer field
                lf = data.find(b"\n", at)
                if lf < 0:
                    self._line += data[at:]
                    if len(self._line) > self._limit:
                        self._refuse()
                    break
                line = self._line + data[at : lf + 1]
                if len(line) > self._limit:
                    self._refuse()
                    break
                self._line = b""
                at = lf + 1
                if state == _SIZE:
                    self._size_line(line, out)
                else:  # trailer fields pass as they are; the empty line ends the body
                    out.append(line)
                    if line == b"\r\n":
                        self._state = _PASSING
                        return b"".join(out), data[at:]
        return b"".join(out), b""

    def _size_line(self, line: bytes, out: list[bytes]) -> None:
        match = _SIZE_LINE.fullmatch(line)
        if match is not None:
            size = int(match.group(1), 16)
            extensions = match.group(2)
            if b" " in extensions or b"\t" in extensions:
                line = match.group(1) + b"\r\n"  # valid, but not to llhttp: without them
        else:
            # Not the grammar we rewrite: llhttp judges the line as it came (it takes some
            # extensions this module's grammar does not), and the chunk it announces is still
            # followed, so that the body's end is found all the same.
            digits = _SIZE_DIGITS.match(line)
            size = int(digits.group(), 16) if digits is not None else -1
        if size < 0 or size > _MAX_SIZE:
            self._pass(out, line, 0)
            return
        out.append(line)
        if size:
            self._left = size
            self._state = _DATA
        else:
            self._state = _TRAILERS

    def _refuse(self) -> None:
        self.too_long = True
        self._line = b""
        self._state = _REFUSED

    def _pass(self, out: list[bytes], data: bytes, at: int) -> None:
        """Stop looking: what is held, and everything from now on, goes to llhttp as it came."""
        if self._line:
            out.append(self._line)
            self._line = b""
        out.append(data[at:])
        self._state = _PASSING

