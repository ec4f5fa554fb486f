"""An HTTP/2 server connection, sans I/O (RFC 9113): bytes in, events out, bytes to send queued.

``H2Core.receive_data()`` parses frames and returns events as tuples, the kind first:
    (REQUEST, stream, Request, end_stream)    a new request (``http2_request.Request``)
    (MALFORMED, stream, status, reason)       a request to refuse (answer it, then it is reset)
    (BODY, stream, data)                      request body bytes
    (END, stream)                             the request is complete
    (RESET, stream, code)                     the stream is gone: stop working on it
    (WINDOW, stream)                          send window opened (stream 0: the connection's)
    (GOAWAY, last_stream, code)               the client is going away
    (PONG,)                                   the client answered our ``ping()``
A connection error queues GOAWAY and raises ``H2ConnectionError``: send what is queued, close.

Flow control (RFC 9113 section 5.2) is the caller's to pace: ``consumed()`` returns receive
window as the app takes the body, ``send_data()`` sends what the windows allow and says how
much. The connection's receive window is as large as all its streams' windows together (capped),
so one stream whose app does not read cannot stall the others.

Abuse costs the abuser: frames that carry no request and no response (PINGs, SETTINGS, empty
DATA, PRIORITY, streams reset before they are answered, the "rapid reset" of CVE-2023-44487)
draw on a budget that answered requests refill; past it the connection is closed with
ENHANCE_YOUR_CALM. Header blocks are bounded whole, CONTINUATION frames included.
"""

from __future__ import annotations

from uvicorn.protocols import http2_frames as f
from uvicorn.protocols.hpack import HPACKError
from uvicorn.protocols.http2_control import (
    BODY,
    END,
    GOAWAY,
    MALFORMED,
    PONG,
    REQUEST,
    RESET,
    SETTINGS_NEXT,
    WINDOW,
    Event,
    H2Control,
)
from uvicorn.protocols.http2_frames import H2ConnectionError, unpack_header, unpack_u32
from uvicorn.protocols.http2_request import Malformed, Request, trailers_valid, validate
from uvicorn.protocols.http2_state import H2Settings, StreamState

__all__ = [
    "BODY", "END", "GOAWAY", "MALFORMED", "PONG", "REQUEST", "RESET", "WINDOW", "H2Core",
    "H2Settings",
]  # fmt: skip

MAX_CONTINUATIONS = 64
KEPT_SIZE = 8192  # the largest header block (and list) whose validated request is kept


class H2Core(H2Control):
    """The frames that carry requests: HEADERS, CONTINUATION and DATA."""

    def upgraded(self, settings_payload: bytes) -> None:
        """RFC 7540 section 3.2: the HTTP/1.1 request that asked for h2c is stream 1, half
        closed (remote). Its HTTP2-Settings apply as a SETTINGS frame would, acknowledged by
        the 101 response itself (section 3.2.1). Values a SETTINGS frame may not hold are a
        connection error, as they would be in one (the 101 is sent: this is HTTP/2 now)."""
        try:
            if len(settings_payload) % 6:
                raise H2ConnectionError(f.FRAME_SIZE_ERROR, "malformed HTTP2-Settings")
            self._on_settings(settings_payload, 0, len(settings_payload), 0, 0, [])
        except H2ConnectionError as exc:
            self._fail(exc.code, f"HTTP2-Settings: {exc}")
        self.out.pop()  # (its ACK)
        self._settings_seen = False  # the client's preface still brings its SETTINGS
        self.last_stream = 1
        self.streams[1] = StreamState(self.local_window, self.peer_window, False, -1)

    # Input.

    def receive_data(self, data: bytes) -> list[Event]:
        if self.closed:
            return []
        if self._calm < 0:  # (spent by our own resets since the last read: see reset())
            self._fail(f.ENHANCE_YOUR_CALM, "too many streams refused")
        if self._preface:
            data = self._handshake(data)
            if self._preface:
                return []
        if self._buffer:
            held = self._held + len(data)
            if held < self._wanted:
                # The frame begun is still not whole: held, not joined. Joined at each read,
                # a large frame in many small reads would cost its size squared in copies.
                self._parts.append(data)
                self._held = held
                return []
            parts = self._parts
            data = self._buffer + (b"".join(parts) + data if parts else data)
            self._buffer = b""
            parts.clear()
        events: list[Event] = []
        pos = 0
        end = len(data)
        max_frame = self.settings.max_frame_size
        try:
            while end - pos >= 9:
                high, low, kind, flags, stream_id = unpack_header(data, pos)
                length = high << 8 | low
                if length > max_frame:
                    raise H2ConnectionError(f.FRAME_SIZE_ERROR, "frame larger than allowed")
                start = pos + 9
                stop = start + length
                if stop > end:
                    break
                pos = stop
                stream_id &= 0x7FFFFFFF
                if self._continued and kind != f.CONTINUATION:
                    raise H2ConnectionError(f.PROTOCOL_ERROR, "CONTINUATION expected")
                if kind == f.DATA:
                    self._on_data(data, start, stop, flags, stream_id, events)
                elif kind == f.HEADERS:
                    self._on_headers(data, start, stop, flags, stream_id, events)
                else:
                    self._on_other(kind, data, start, stop, flags, stream_id, events)
        except H2ConnectionError as exc:
            self._fail(exc.code, str(exc))
        except HPACKError as exc:
            self._fail(f.COMPRESSION_ERROR, f"HPACK: {exc}")
        if pos < end:
            rest = self._buffer = data[pos:]
            self._held = len(rest)
            self._wanted = 9 + (rest[0] << 16 | rest[1] << 8 | rest[2] if len(rest) >= 9 else 0)
        return events

    def _handshake(self, data: bytes) -> bytes:
        """The client's connection preface (RFC 9113 section 3.4): the 24 octets, then a SETTINGS
        frame, which must come first ("MUST be followed by a SETTINGS frame"; an invalid preface
        is a PROTOCOL_ERROR). What follows them is returned once the first frame's type and
        flags are known to be those of a SETTINGS frame without ACK."""
        want = self._preface
        if want is not SETTINGS_NEXT:
            got = data[: len(want)]
            if not want.startswith(got):
                self._fail(f.PROTOCOL_ERROR, "invalid connection preface")
            self._preface = want = want[len(got) :] or SETTINGS_NEXT
            data = data[len(got) :]
            if want is not SETTINGS_NEXT:
                return b""
        data = self._buffer + data
        self._buffer = b""
        if len(data) < 5:
            self._buffer = data
            return b""
        if data[3] != f.SETTINGS or data[4] & f.ACK:
            self._fail(f.PROTOCOL_ERROR, "the connection preface is not followed by SETTINGS")
        self._preface = b""
        return data

    def _fail(self, code: int, reason: str) -> None:
        self.goaway(code)
        self.closed = True
        raise H2ConnectionError(code, reason)

    def _on_headers(
        self, data: bytes, start: int, stop: int, flags: int, stream_id: int, events: list[Event]
    ) -> None:
        if not stream_id or not stream_id & 1:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "HEADERS on an even stream id")
        if flags & f.PADDED:
            # Section 6.2: padding as long as the rest of the payload (the PRIORITY fields
            # included) or longer is a PROTOCOL_ERROR, whatever else is wrong with it.
            if start == stop:
                raise H2ConnectionError(f.FRAME_SIZE_ERROR, "HEADERS too short")
            if data[start] >= stop - start:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "padding longer than the frame")
            stop -= data[start]
            start += 1
        if flags & f.PRIORITY_FLAG:
            if stop - start < 5:
                raise H2ConnectionError(f.FRAME_SIZE_ERROR, "HEADERS too short")
            if unpack_u32(data, start)[0] & 0x7FFFFFFF == stream_id:
                # Section 5.3.1: a stream depending on itself is a stream error. The stream is
                # reset, and its field block, still to be decoded (section 4.3: the HPACK
                # context is the connection's), goes the way of a late one: no request.
                self._stream_error(stream_id, f.PROTOCOL_ERROR, events)
                if stream_id > self.last_stream:
                    self.last_stream = stream_id
            start += 5
        block = data[start:stop]
        if not flags & f.END_HEADERS:
            self._continued = stream_id
            self._block = block
            self._block_end_stream = bool(flags & f.END_STREAM)
            self._continuations = 0
            return
        self._header_block(stream_id, block, bool(flags & f.END_STREAM), events)

    def _on_continuation(
        self, data: bytes, start: int, stop: int, flags: int, stream_id: int, events: list[Event]
    ) -> None:
        if not self._continued or stream_id != self._continued:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "unexpected CONTINUATION")
        self._continuations += 1
        block = self._block + data[start:stop]
        if start == stop and not flags & f.END_HEADERS:
            self._junk()
        # Bounded whole: a block no larger than the largest head allowed, in few frames.
        if (
            len(block) > self.settings.max_header_list_size
            or self._continuations > MAX_CONTINUATIONS
        ):
            raise H2ConnectionError(f.ENHANCE_YOUR_CALM, "header block too large")
        if not flags & f.END_HEADERS:
            self._block = block
            return
        self._continued = 0
        self._block = b""
        self._header_block(stream_id, block, self._block_end_stream, events)

    def _header_block(
        self, stream_id: int, block: bytes, end_stream: bool, events: list[Event]
    ) -> None:
        if stream_id <= self.last_stream:
            self._trailers(stream_id, block, end_stream, events)
            return
        decoder = self.decoder
        found = self._requests.get(block)
        if found is not None and found[0] == decoder.generation:
            request = found[1]
        else:
            generation = decoder.generation
            fields, too_large = decoder.decode(block)
            if too_large:
                request = Malformed(431, "request header fields too large")
            else:
                try:
                    request = validate(
                        fields, self.settings.limits, self.settings.extended_connect
                    )
                except Malformed as exc:
                    request = exc
            # Kept for reuse: a block that leaves the table unchanged, and small. A large one
            # would be held for the connection's life (with a cookie field joined from many,
            # megabytes from a few hundred octets of references to the table).
            if (
                decoder.generation == generation
                and decoder.list_size <= KEPT_SIZE
                and len(block) <= KEPT_SIZE
            ):
                requests = self._requests
                if len(requests) >= 32:
                    requests.clear()
                requests[block] = (generation, request)
        # Only now: a block that cannot be decoded is a connection error whose GOAWAY must not
        # count its stream as one we acted on (section 6.8: the client may retry it).
        self.last_stream = stream_id
        if stream_id > self.accept_until:
            self._junk()
            return  # after our GOAWAY: ignored (section 6.8)
        if len(self.streams) >= self.settings.max_concurrent_streams:
            # Section 5.1.2: beyond the limit we announced. REFUSED_STREAM: safe to retry.
            self.out.append(f.rst_stream(stream_id, f.REFUSED_STREAM))
            self._remember_reset(stream_id)
            self._junk()
            return
        if type(request) is Request:
            length = request.content_length
            limit = self.settings.limits.body if length > 0 else None
            if limit is not None and length > limit:
                # RFC 9110 section 15.5.14: 413 (Content Too Large), before the app is called;
                # answered, then the stream is reset (NO_ERROR: RFC 9113 section 8.1).
                request = Malformed(413, "request body larger than --limit-request-body")
            elif not end_stream or length <= 0:
                self.streams[stream_id] = StreamState(
                    self.local_window, self.peer_window, not end_stream, length
                )
                events.append((REQUEST, stream_id, request, end_stream))
                return
            else:
                request = Malformed(400, "content-length without a body")
        assert type(request) is Malformed
        self._junk()
        if request.status == 400:
            # Section 8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR.
            self.out.append(f.rst_stream(stream_id, f.PROTOCOL_ERROR))
            self._remember_reset(stream_id)
            return
        # Well formed, but refused by a limit or as unsupported (431, 414, 413, 501): answered.
        self.streams[stream_id] = StreamState(
            self.local_window, self.peer_window, not end_stream, -1
        )
        events.append((MALFORMED, stream_id, request.status, request.reason))

    def _trailers(
        self, stream_id: int, block: bytes, end_stream: bool, events: list[Event]
    ) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or not stream.remote_open:
            if stream is not None:
                # Section 5.1, half-closed (remote): a stream error of type STREAM_CLOSED; the
                # block is still decoded (section 4.3: the HPACK context is the connection's).
                self.decoder.decode(block)
                self._stream_error(stream_id, f.STREAM_CLOSED, events)
                return
            if stream_id in self._reset or stream_id > self.accept_until:
                # Late, after our RST_STREAM (section 5.1), or on a stream our GOAWAY ignores
                # (section 6.8): the block only keeps the HPACK context in step.
                self.decoder.decode(block)
                self._junk()
                return
            raise H2ConnectionError(f.STREAM_CLOSED, "HEADERS on a closed stream")
        fields, _ = self.decoder.decode(block)
        if not end_stream or not trailers_valid(fields):
            # Section 8.1: trailers end the stream and hold no pseudo-header field.
            self._stream_error(stream_id, f.PROTOCOL_ERROR, events)
            return
        self._remote_end(stream_id, stream, events)

    def _remote_end(self, stream_id: int, stream: StreamState, events: list[Event]) -> None:
        if stream.length >= 0 and stream.received != stream.length:
            # Section 8.1.1: a body that does not match its content-length is malformed.
            self._stream_error(stream_id, f.PROTOCOL_ERROR, events)
            return
        stream.remote_open = False
        events.append((END, stream_id))
        if not stream.local_open:
            del self.streams[stream_id]

    def _on_data(
        self, data: bytes, start: int, stop: int, flags: int, stream_id: int, events: list[Event]
    ) -> None:
        if not stream_id:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "DATA on stream 0")
        length = stop - start
        if length > self.conn_recv:
            raise H2ConnectionError(f.FLOW_CONTROL_ERROR, "connection window exceeded")
        self.conn_recv -= length
        if flags & f.PADDED:
            if not length or data[start] >= length:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "padding longer than the frame")
            stop -= data[start]
            start += 1
        stream = self.streams.get(stream_id)
        if stream is None or not stream.remote_open:
            if stream_id > self.last_stream:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "DATA on an idle stream")
            self.consumed(0, length)  # the connection's window back; nobody reads it
            if stream is None and (stream_id in self._reset or stream_id > self.accept_until):
                # Late, after our RST_STREAM (section 5.1), or on a stream our GOAWAY ignores
                # (section 6.8): ignored.
                self._junk()
            else:
                self._stream_error(stream_id, f.STREAM_CLOSED, events)
            return
        if length > stream.recv_window:
            self.consumed(0, length)
            self._stream_error(stream_id, f.FLOW_CONTROL_ERROR, events)
            return
        stream.recv_window -= length
        payload = data[start:stop]
        size = stop - start
        if size < length:
            self.consumed(stream_id, length - size)  # padding: nobody reads it
        end_stream = flags & f.END_STREAM
        if size:
            stream.received += size
            if 0 <= stream.length < stream.received:
                self._stream_error(stream_id, f.PROTOCOL_ERROR, events)  # section 8.1.1
                return
            events.append((BODY, stream_id, payload))
        elif not end_stream:
            self._junk()
        if end_stream:
            self._remote_end(stream_id, stream, events)

