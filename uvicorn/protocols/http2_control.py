"""The HTTP/2 connection's state and its own frames (RFC 9113 sections 5, 6.5 to 6.9): settings,
flow-control windows, PING, RST_STREAM, GOAWAY, and everything the server sends. The frames
that carry requests are ``http2.py``'s, whose ``H2Core`` builds on this.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols import http2_frames as f
from uvicorn.protocols.hpack import Decoder
from uvicorn.protocols.http2_frames import H2ConnectionError, unpack_u32
from uvicorn.protocols.http2_request import Malformed, Request
from uvicorn.protocols.http2_state import H2Settings, StreamState

# Events, as tuples with their kind first (see ``http2.py``).
REQUEST, MALFORMED, BODY, END, RESET, WINDOW, GOAWAY, PONG = range(8)
Event = tuple[Any, ...]

CALM_BUDGET = 1000  # frames of no use before ENHANCE_YOUR_CALM
CALM_REFUND = 8  # given back by each response completed
CONNECTION_WINDOW_CAP = 16 * 1024 * 1024
PING_PAYLOAD = b"uvicorn!"
# What ``_preface`` holds once the preface's 24 octets are in and the SETTINGS frame that must
# follow them (RFC 9113 section 3.4) is not yet recognized.
SETTINGS_NEXT = b"(SETTINGS next)"
RESET_MEMORY = 256  # streams we reset whose late frames are ignored (section 5.1, "closed")
DEFAULTS = H2Settings()


class H2Control:
    """State and control frames; ``H2Core`` (``http2.py``) adds the request frames."""

    def __init__(self, settings: H2Settings = DEFAULTS) -> None:
        self.settings = settings
        self.streams: dict[int, StreamState] = {}
        self.last_stream = 0  # the highest stream the client opened
        self.decoder = Decoder(4096, settings.max_header_list_size)
        # Validated requests by header block, while the decoder's table is as it was.
        self._requests: dict[bytes, tuple[int, Request | Malformed]] = {}
        # Frames to send. A body larger than a frame is cut into views of its bytes (no copy),
        # and ``large`` says so: the worker then hands them to the socket as they are.
        self.out: list[bytes | memoryview] = []
        self.large = False
        self._buffer = b""  # the start of a frame not yet whole, and what followed it
        self._parts: list[bytes] = []  # (not yet joined), their size, and the frame's (9
        self._held = self._wanted = 0  # while its header is not whole)
        self._preface = f.PREFACE  # what of the client preface is still to come
        self._settings_seen = False
        # A new stream's receive window. Section 6.9.2: a client may send up to the default
        # before it processes our SETTINGS: a smaller one is in force once acknowledged.
        self.local_window = max(settings.initial_window_size, f.DEFAULT_WINDOW)
        self._acks_due = 0  # our SETTINGS frames not yet acknowledged
        self.peer_window = f.DEFAULT_WINDOW  # the client's SETTINGS_INITIAL_WINDOW_SIZE
        self.peer_max_frame = f.DEFAULT_FRAME_SIZE
        self.conn_send = f.DEFAULT_WINDOW
        self.conn_recv = f.DEFAULT_WINDOW
        self._conn_size = f.DEFAULT_WINDOW
        self._conn_credit = 0
        self._calm = CALM_BUDGET
        self._continued = 0  # the stream of a header block awaiting CONTINUATION
        self._block = b""
        self._block_end_stream = False
        self._continuations = 0
        self._reset: dict[int, None] = {}  # (ordered: the oldest forgotten first)
        self.goaway_sent = False
        self.accept_until = f.MAX_WINDOW  # streams above this (our last GOAWAY's) are ignored
        self.closed = False

    # Output.

    def initiate(self, preface_seen: bool = False) -> None:
        """Queue the server's connection preface (section 3.4): SETTINGS, and the connection
        window. ``preface_seen``: the client's preface was read already (by the HTTP/1.1
        parser, which recognized it)."""
        s = self.settings
        values = [
            (f.MAX_CONCURRENT_STREAMS, s.max_concurrent_streams),
            (f.MAX_HEADER_LIST_SIZE, s.max_header_list_size),
            (f.ENABLE_PUSH, 0),
        ]
        if s.initial_window_size != f.DEFAULT_WINDOW:
            values.append((f.INITIAL_WINDOW_SIZE, s.initial_window_size))
        if s.max_frame_size != f.DEFAULT_FRAME_SIZE:
            values.append((f.MAX_FRAME_SIZE, s.max_frame_size))
        if s.extended_connect:
            values.append((f.ENABLE_CONNECT_PROTOCOL, 1))
        self.out.append(f.settings(values))
        self._acks_due += 1
        size = min(s.max_concurrent_streams * s.initial_window_size, CONNECTION_WINDOW_CAP)
        if size > f.DEFAULT_WINDOW:
            self.out.append(f.window_update(0, size - f.DEFAULT_WINDOW))
            self.conn_recv = self._conn_size = size
        if preface_seen:
            self._preface = SETTINGS_NEXT  # (its SETTINGS frame is still to come)

    def data_to_send(self) -> bytes:
        out = self.out
        if not out:
            return b""
        data = b"".join(out)
        out.clear()
        self.large = False
        return data

    def take_frames(self) -> list[bytes | memoryview]:
        """What ``data_to_send`` would join, as it is (a large body's frames are views of it,
        for a gathering write: one copy of the body fewer)."""
        out = self.out
        self.out = []
        self.large = False
        return out

    def send_headers(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        stream = self.streams[stream_id]
        self.out += f.header_frames(stream_id, block, end_stream, self.peer_max_frame)
        stream.answered = True
        if end_stream:
            self._local_end(stream_id, stream)

    def room(self, stream_id: int) -> int:
        """How many body bytes the windows let through now."""
        stream = self.streams.get(stream_id)
        if stream is None or not stream.local_open:
            return 0
        room = min(stream.send_window, self.conn_send)
        return room if room > 0 else 0  # (a window may be negative: section 6.9.2)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> int:
        """DATA frames for as much of ``data`` as the windows allow; END_STREAM with its last
        byte, if all of it went. Returns how many bytes went."""
        stream = self.streams[stream_id]
        total = len(data)
        room = min(self.conn_send, stream.send_window, total)
        if room <= 0:  # (a window may be negative: section 6.9.2)
            if total:
                return 0  # no window: nothing, not even an empty frame
            room = 0
        size = self.peer_max_frame
        out = self.out
        flags = f.END_STREAM if end_stream and room == total else 0
        if room <= size:  # nearly always: one frame
            out.append(f.pack_header(room >> 8, room & 0xFF, f.DATA, flags, stream_id))
            out.append(data if room == total else data[:room])
        else:
            # Views of the bytes, not copies: a 1 MiB body copied into 64 frames, then joined,
            # cost two copies and, by glibc's heap trimming, page faults on every response.
            # (Bytes only: a view would pin a bytearray the app may grow once send() returned.)
            view = memoryview(data if type(data) is bytes else bytes(data))
            for start in range(0, room, size):
                n = min(size, room - start)
                last = start + n == room
                out.append(f.pack_header(n >> 8, n & 0xFF, f.DATA, flags if last else 0, stream_id))
                out.append(view[start : start + n])
            self.large = True
        self.conn_send -= room
        stream.send_window -= room
        if flags:
            self._local_end(stream_id, stream)
        return room

    def _local_end(self, stream_id: int, stream: StreamState) -> None:
        stream.local_open = False
        if not stream.remote_open:
            del self.streams[stream_id]
        calm = self._calm + CALM_REFUND
        self._calm = calm if calm < CALM_BUDGET else CALM_BUDGET

    def reset(self, stream_id: int, code: int) -> None:
        """RST_STREAM (section 6.4): the stream ends here, whatever its state. Before its
        answer (refused: the apps still running are at the limit), it draws on the calm
        budget, checked at the next read, as a rapid reset does."""
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            self.out.append(f.rst_stream(stream_id, code))
            self._remember_reset(stream_id)
            if not stream.answered:
                self._calm -= 1

    def _remember_reset(self, stream_id: int) -> None:
        reset = self._reset
        reset[stream_id] = None
        if len(reset) > RESET_MEMORY:
            del reset[next(iter(reset))]

    def consumed(self, stream_id: int, n: int) -> None:
        """``n`` bytes of a request body were taken: give their window back, by halves."""
        credit = self._conn_credit + n
        if credit >= self._conn_size >> 1:
            self.out.append(f.window_update(0, credit))
            self.conn_recv += credit
            credit = 0
        self._conn_credit = credit
        stream = self.streams.get(stream_id)
        if stream is not None and stream.remote_open:
            credit = stream.credit + n
            if credit >= self.local_window >> 1:
                self.out.append(f.window_update(stream_id, credit))
                stream.recv_window += credit
                credit = 0
            stream.credit = credit

    def goaway(self, code: int = f.NO_ERROR, last_stream: int | None = None) -> None:
        """GOAWAY (section 6.8): no stream above ``last_stream`` (by default, the last the
        client opened) will be served. A graceful shutdown sends it twice: first with the
        largest stream id (no new stream is refused yet, but the client is told), then, a
        round trip later, with the real last one."""
        if last_stream is None:
            # Section 6.8: a later GOAWAY never raises the last stream id (the streams ignored
            # after ours were never ours to serve).
            last_stream = min(self.last_stream, self.accept_until)
        last = last_stream
        self.accept_until = last
        self.goaway_sent = True
        self.out.append(f.goaway(last, code))

    def ping(self) -> None:
        """A PING whose ACK is reported as a PONG event: a round trip measured."""
        self.out.append(f.frame(f.PING, 0, 0, PING_PAYLOAD))

    def _junk(self) -> None:
        """A frame of no use to anyone: draw on the budget."""
        self._calm -= 1
        if self._calm < 0:
            raise H2ConnectionError(f.ENHANCE_YOUR_CALM, "too many frames of no use")

    def _stream_error(self, stream_id: int, code: int, events: list[Event]) -> None:
        if self.streams.pop(stream_id, None) is not None:
            events.append((RESET, stream_id, code))
        self.out.append(f.rst_stream(stream_id, code))
        self._remember_reset(stream_id)
        self._junk()

    def _on_other(
        self,
        kind: int,
        data: bytes,
        start: int,
        stop: int,
        flags: int,
        stream_id: int,
        events: list[Event],
    ) -> None:
        length = stop - start
        if kind == f.WINDOW_UPDATE:
            if length != 4:
                raise H2ConnectionError(f.FRAME_SIZE_ERROR, "WINDOW_UPDATE of a wrong size")
            self._on_window_update(unpack_u32(data, start)[0] & 0x7FFFFFFF, stream_id, events)
        elif kind == f.SETTINGS:
            self._on_settings(data, start, stop, flags, stream_id, events)
        elif kind == f.RST_STREAM:
            if length != 4:
                raise H2ConnectionError(f.FRAME_SIZE_ERROR, "RST_STREAM of a wrong size")
            if not stream_id or stream_id > self.last_stream:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                events.append((RESET, stream_id, unpack_u32(data, start)[0]))
                if not stream.answered:
                    self._junk()  # reset before an answer: the "rapid reset" pattern
            else:
                self._junk()
        elif kind == f.PING:
            if length != 8:
                raise H2ConnectionError(f.FRAME_SIZE_ERROR, "PING of a wrong size")
            if stream_id:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "PING on a stream")
            if not flags & f.ACK:
                self.out.append(f.frame(f.PING, f.ACK, 0, data[start:stop]))
            elif data[start:stop] == PING_PAYLOAD:
                events.append((PONG,))
                return
            self._junk()
        elif kind == f.CONTINUATION:
            self._on_continuation(data, start, stop, flags, stream_id, events)
        elif kind == f.PRIORITY:
            # Section 5.3.2: priority signals are deprecated, and ignored here.
            if not stream_id:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "PRIORITY on stream 0")
            if length != 5:
                self._stream_error(stream_id, f.FRAME_SIZE_ERROR, events)
                return
            if unpack_u32(data, start)[0] & 0x7FFFFFFF == stream_id:
                # Section 5.3.1: a stream cannot depend on itself, a stream error.
                self._stream_error(stream_id, f.PROTOCOL_ERROR, events)
                return
            self._junk()
        elif kind == f.GOAWAY:
            if stream_id:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "GOAWAY on a stream")
            if length < 8:  # section 4.2: too small to hold the frame's fields
                raise H2ConnectionError(f.FRAME_SIZE_ERROR, "GOAWAY too short")
            last = unpack_u32(data, start)[0] & 0x7FFFFFFF
            events.append((GOAWAY, last, unpack_u32(data, start + 4)[0]))
        elif kind == f.PUSH_PROMISE:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "PUSH_PROMISE from a client")
        else:
            self._junk()  # section 5.5: unknown frame types are ignored

    def _on_continuation(
        self, data: bytes, start: int, stop: int, flags: int, stream_id: int, events: list[Event]
    ) -> None:
        raise NotImplementedError  # H2Core's

    def _on_window_update(self, increment: int, stream_id: int, events: list[Event]) -> None:
        if not stream_id:
            if not increment:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            opened = self.conn_send <= 0
            self.conn_send += increment
            if self.conn_send > f.MAX_WINDOW:
                raise H2ConnectionError(f.FLOW_CONTROL_ERROR, "connection window overflow")
            if opened:  # (else no body waits for it, only for its stream's: a flood of
                events.append((WINDOW, 0))  # tiny updates must not visit every stream)
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.last_stream:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
            self._junk()  # closed: in flight (section 6.9), or of no use
            return
        if not increment:
            self._stream_error(stream_id, f.PROTOCOL_ERROR, events)
            return
        stream.send_window += increment
        if stream.send_window > f.MAX_WINDOW:
            self._stream_error(stream_id, f.FLOW_CONTROL_ERROR, events)
            return
        events.append((WINDOW, stream_id))

    def _acknowledged(self) -> None:
        """Our SETTINGS are in force (section 6.5.3): a receive window smaller than the default
        now applies, to the streams already open too (section 6.9.2: by the difference)."""
        delta = self.settings.initial_window_size - self.local_window
        if delta:
            self.local_window += delta
            for stream in self.streams.values():
                stream.recv_window += delta

    def _on_settings(
        self, data: bytes, start: int, stop: int, flags: int, stream_id: int, events: list[Event]
    ) -> None:
        if stream_id:
            raise H2ConnectionError(f.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & f.ACK:
            if stop != start:
                raise H2ConnectionError(f.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            if self._acks_due:
                self._acks_due -= 1
                self._acknowledged()
            else:
                self._junk()  # an ACK of nothing: of no use
            return
        if (stop - start) % 6:
            raise H2ConnectionError(f.FRAME_SIZE_ERROR, "SETTINGS of a wrong size")
        if self._settings_seen:
            self._junk()
        self._settings_seen = True
        for at in range(start, stop, 6):
            key, value = f.SETTING.unpack_from(data, at)
            if key == f.INITIAL_WINDOW_SIZE:
                if value > f.MAX_WINDOW:
                    raise H2ConnectionError(f.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large")
                delta = value - self.peer_window
                self.peer_window = value
                # Section 6.9.2: every stream's window moves by the change.
                for sid, stream in self.streams.items():
                    stream.send_window += delta
                    if stream.send_window > f.MAX_WINDOW:
                        raise H2ConnectionError(f.FLOW_CONTROL_ERROR, "window overflow")
                    if delta > 0:
                        events.append((WINDOW, sid))
            elif key == f.MAX_FRAME_SIZE:
                if not f.DEFAULT_FRAME_SIZE <= value <= f.MAX_FRAME_SIZE_LIMIT:
                    raise H2ConnectionError(f.PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range")
                self.peer_max_frame = value
            elif key in (f.ENABLE_PUSH, f.ENABLE_CONNECT_PROTOCOL) and value > 1:
                raise H2ConnectionError(f.PROTOCOL_ERROR, "a boolean setting above 1")
            # HEADER_TABLE_SIZE: our blocks never use the dynamic table. The others are the
            # client's own limits, or advisory (MAX_HEADER_LIST_SIZE).
        self.out.append(f.SETTINGS_ACK)
