"""Reading frames: websockets' sans-I/O ``ServerProtocol``, with what RFC 6455 asks of a server
that websockets leaves to its own asyncio layer or decides otherwise.

``StrictServerProtocol`` reassembles data frames into ``Message`` events inside websockets'
parser, so that text is checked for UTF-8 frame by frame, in order with everything else it
parses. On top of ``ServerProtocol``:

* **UTF-8 fails fast** (RFC 6455 section 8.1): each fragment of a text message goes through an
  incremental decoder as it arrives, and so does the part of a text frame already received
  (``check_partial_frame()``), so invalid UTF-8 fails the connection (1007) when its bytes
  arrive, not when the message ends (Autobahn 6.4.x).
* **A failure can wait for the app** (``defer_failures``): the connection is then failed
  (close frame, then TCP close, section 7.1.7) only when ``fail_deferred()`` is called, so that
  the app can first answer the messages received before the bad frame (Autobahn 3.2, 4.x,
  5.15). Meanwhile what the peer sends is discarded, as after any failure.
* **A close frame may end a fragmented message** (section 5.4: control frames "MAY be injected
  in the middle of a fragmented message"): the unfinished message is dropped and the close
  answered as any other (websockets fails such a connection with 1002; Autobahn 7.1.5).
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Generator
from typing import Any

from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover (websockets without its C extension)
    from websockets.utils import apply_mask

_TEXT, _BINARY, _CONT, _CLOSE = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.CLOSE
_OPEN = State.OPEN
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")
# The same reason whether the bytes came whole or in pieces: the reason is in the close frame.
INVALID_UTF8 = "invalid UTF-8"
# The code objects of the generators websockets' parser is suspended in while a frame's payload
# is still arriving (see check_partial_frame()).
_FRAME_PARSE = Frame.parse.__code__
_READ_EXACT = StreamReader.read_exact.__code__
# ... and the one it waits in between frames (see take_whole_frames()).
_PROTOCOL_PARSE = Protocol.parse.__code__
_AT_EOF = StreamReader.at_eof.__code__


# The first byte of a final, uncompressed text or binary frame (RFC 6455 section 5.2: FIN, no
# RSV bits, the opcode).
TEXT_FIN = 0x80 | _TEXT
BINARY_FIN = 0x80 | _BINARY
_LENGTH_16 = struct.Struct("!BBH").pack
_LENGTH_64 = struct.Struct("!BBQ").pack


def unmasked_frame(first: int, payload: bytes) -> bytes:
    """A server's frame (RFC 6455 section 5.2): ``first`` its first byte, then the payload's
    length in 7, 7+16 or 7+64 bits and the payload, unmasked (section 5.1: a server MUST NOT
    mask what it sends). Without an extension (no RSV bit) it is the same bytes for any peer."""
    length = len(payload)
    if length < 126:
        return bytes((first, length)) + payload
    if length < 65536:
        return _LENGTH_16(first, 126, length) + payload
    return _LENGTH_64(first, 127, length) + payload


class Message:
    """A complete data message: ``text`` or ``data``, exactly one not None."""

    __slots__ = ("text", "data")

    def __init__(self, text: str | None, data: bytes | None) -> None:
        self.text = text
        self.data = data


class StrictServerProtocol(ServerProtocol):
    """``ServerProtocol`` whose ``events_received()`` holds ``Message`` objects in place of data
    frames (control frames, the request, stay as they are)."""

    # Whether fail() waits for fail_deferred() (see the module's docstring).
    defer_failures = False
    # A failure waiting for fail_deferred(): (code, reason).
    failure: tuple[int, str] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fragments: list[Any] = []  # of the fragmented message: str if text, else bytes
        self._decoder: codecs.IncrementalDecoder | None = None  # if that message is text
        # The frame check_partial_frame() last looked at: its parser (which also keeps its id
        # from being reused), the decoder (None: not a text frame), mask, bytes checked.
        self._partial: tuple[Any, codecs.IncrementalDecoder | None, bytes, int] | None = None

    def recv_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        events: list[Any] = self.events
        try:
            if frame.fin and self.current_size is None and (opcode is _TEXT or opcode is _BINARY):
                # A whole message, not inside a fragmented one: websockets' recv_frame() would
                # only append it to the events (the hot path: one frame, one message).
                if opcode is _TEXT:
                    events.append(Message(str(frame.data, "utf-8"), None))
                else:
                    events.append(Message(None, bytes(frame.data)))
                return
            if opcode is _CLOSE:
                # RFC 6455 section 5.4: "Control frames ... MAY be injected in the middle of a
                # fragmented message"; the close ends the connection, and the message with it.
                self.current_size = None
                self.fragments = []
            super().recv_frame(frame)  # checks the frame's place in a message, answers controls
            if opcode is _TEXT:  # the first fragment of a message
                self._decoder = _Utf8Decoder()
                self.fragments = [self._decoder.decode(frame.data, False)]
                events.pop()
            elif opcode is _BINARY:
                self._decoder = None
                self.fragments = [bytes(frame.data)]
                events.pop()
            elif opcode is _CONT:
                decoder = self._decoder
                if decoder is not None:
                    self.fragments.append(decoder.decode(frame.data, frame.fin))
                else:
                    self.fragments.append(bytes(frame.data))
                if frame.fin:
                    parts, self.fragments = self.fragments, []
                    if decoder is not None:
                        events[-1] = Message("".join(parts), None)
                    else:
                        events[-1] = Message(None, b"".join(parts))
                else:
                    events.pop()
        except UnicodeDecodeError as exc:
            # Section 8.1: invalid UTF-8 in a text message fails the connection; section
            # 7.4.1: 1007 is for "data within a message that was not consistent with the type
            # of the message". fail() discards what follows, so parsing stops here.
            if events and events[-1] is frame:
                events.pop()
            self.fragments = []
            self.parser_exc = exc  # as websockets' parser records its own failures
            self.fail(CloseCode.INVALID_DATA, INVALID_UTF8)

    # Whole data frames ahead of websockets' parser.

    def take_whole_frames(self, data: bytes) -> int:
        """Take the whole data frames at the start of ``data`` that are one message each
        (FIN, no RSV bit, text or binary, masked, at most 65,535 bytes: nearly every frame a
        client sends) as ``Message`` events, without websockets' parser, which costs a
        generator step per header and a ``Frame`` per frame; return how many bytes they took
        (0: none), for that parser to be given the rest. Only on a connection without an
        extension whose parser waits between two frames with nothing buffered (checked in its
        suspended generators; if another version of websockets lays them out differently, it
        takes nothing), and not inside a fragmented message. Stops at anything else (a
        control frame, a fragment, a frame not whole yet, one over the size limit, invalid
        UTF-8, a length not in its shortest form): the parser answers those as it would."""
        if self.extensions or self.current_size is not None or self.reader.buffer:
            return 0
        if self.state is not _OPEN or self.debug:
            return 0
        parse: Any = self.parser
        while parse is not None and parse.gi_code is not _PROTOCOL_PARSE:
            parse = parse.gi_yieldfrom
        waiting = parse.gi_yieldfrom if parse is not None else None
        if waiting is None or waiting.gi_code is not _AT_EOF:
            return 0  # inside a frame, failing (_discard_until_failed), or unknown
        limit = getattr(self, "max_message_size", None) or getattr(self, "max_size", None)
        fragment_limit = getattr(self, "max_fragment_size", None)
        if fragment_limit is not None and (limit is None or fragment_limit < limit):
            limit = fragment_limit
        events: list[Any] = self.events
        at, end = 0, len(data)
        while end - at >= 6:
            first, second = data[at], data[at + 1]
            if (first != TEXT_FIN and first != BINARY_FIN) or second < 0x80:
                break  # a control frame, a fragment, RSV bits, or not masked (section 5.1)
            length = second & 0x7F
            start = at + 6
            if length == 126:
                length = (data[at + 2] << 8) | data[at + 3] if end - at >= 8 else 0
                start = at + 8
                if length < 126:
                    break  # not whole yet, or not in its shortest form (section 5.2)
            elif length == 127:
                break
            stop = start + length
            if stop > end or (limit is not None and length > limit):
                break
            payload = apply_mask(data[start:stop], data[start - 4 : start])
            if first == TEXT_FIN:
                try:
                    events.append(Message(str(payload, "utf-8"), None))
                except UnicodeDecodeError:
                    break  # the parser fails it (1007), after what came before
            else:
                events.append(Message(None, payload))
            at = stop
        return at

    # Failing the connection (section 7.1.7), once the app has answered what came before.

    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        if self.defer_failures and self.state is _OPEN and code != CloseCode.ABNORMAL_CLOSURE:
            if self.failure is None:
                self.failure = (int(code), reason)
                # Section 7.1.7: an endpoint "MUST NOT continue to attempt to process data
                # ... from the remote endpoint after being instructed to _Fail the WebSocket
                # Connection_": what comes is discarded, as websockets' own fail() does.
                self.parser = self._discard_until_failed()
                next(self.parser)
            return
        super().fail(code, reason)

    def fail_deferred(self) -> None:
        """Fail the connection as ``fail()`` was asked to: the close frame, then the end of
        the stream (the caller then closes the transport). Does nothing if already done."""
        failure = self.failure
        if failure is not None:
            self.failure = None
            super().fail(*failure)

    def _discard_until_failed(self) -> Generator[None]:
        while not (yield from self.reader.at_eof()):
            self.reader.discard()
        self.fail_deferred()  # the peer ended the stream: nothing to wait for
        yield

    # UTF-8 of a text frame still arriving.

    def check_partial_frame(self) -> None:
        """Call when a frame is still arriving (the reader's buffer holds part of it). If it is
        a text frame (or the continuation of a text message), check the UTF-8 of what arrived.

        websockets only hands over whole frames, so the frame's header is read from the
        parser's own state: the ``Frame.parse()`` generator waiting for the payload. If that is
        not what is found (another version of websockets), nothing is checked: the frame's
        text is then checked when it is whole, as any other."""
        if self.state is not _OPEN or self.failure is not None:
            return
        parse: Any = self.parser  # generators, read through their gi_* attributes
        while parse is not None and parse.gi_code is not _FRAME_PARSE:
            parse = parse.gi_yieldfrom
        read = parse.gi_yieldfrom if parse is not None else None
        if parse is None or read is None or read.gi_code is not _READ_EXACT:
            return
        partial = self._partial
        if partial is not None and partial[0] is parse:
            _, decoder, mask, seen = partial
            if decoder is None:
                return
        else:
            header = parse.gi_frame.f_locals
            mask = header.get("mask_bytes")
            length = header.get("length")
            reading = read.gi_frame.f_locals.get("n")
            if not isinstance(mask, (bytes, bytearray)) or reading != length:
                return  # still reading the header
            opcode = header.get("opcode")
            if header.get("rsv1") or header.get("rsv2") or header.get("rsv3"):
                decoder = None  # compressed (checked once inflated), or a protocol error
            elif opcode is _TEXT and self.current_size is None:
                decoder = _Utf8Decoder()
            elif (
                opcode is _CONT
                and self.current_size is not None
                and self._decoder is not None
                and not self._inflating()
            ):
                decoder = _Utf8Decoder()
                decoder.setstate(self._decoder.getstate())
            else:
                decoder = None  # binary, or a frame out of place (websockets fails it, 1002)
            mask, seen = bytes(mask), 0
            if decoder is None:
                self._partial = (parse, None, mask, 0)  # nothing to check as the rest comes
                return
        buffer = self.reader.buffer
        if len(buffer) <= seen:
            return
        shift = seen % 4  # the mask's bytes apply from the payload's start (section 5.3)
        try:
            decoder.decode(apply_mask(bytes(buffer[seen:]), mask[shift:] + mask[:shift]), False)
        except UnicodeDecodeError as exc:
            self._partial = None
            self.parser_exc = exc
            self.fail(CloseCode.INVALID_DATA, INVALID_UTF8)
            return
        self._partial = (parse, decoder, mask, len(buffer))

    def _inflating(self) -> bool:
        """A compressed fragmented message is in progress (its fragments are checked once
        decompressed, when whole)."""
        return any(getattr(extension, "decode_cont_data", False) for extension in self.extensions)


if not hasattr(ServerProtocol(), "current_size"):
    # websockets 13 (which setup.cfg allows) calls it cur_size: the size of the fragmented
    # message in progress, None between messages.
    def _get_size(self: ServerProtocol) -> int | None:
        return self.cur_size  # type: ignore[attr-defined,no-any-return]

    def _set_size(self: ServerProtocol, size: int | None) -> None:
        self.cur_size = size  # type: ignore[attr-defined]

    StrictServerProtocol.current_size = property(_get_size, _set_size)  # type: ignore[assignment]
