"""WebSockets (RFC 6455), sans I/O, on the ``websockets`` library's ``ServerProtocol``.

``WebSocketCore`` is handed a request head that asked to upgrade. It feeds the request to
``ServerProtocol`` (never websockets' asyncio server), validates the handshake, and then turns
bytes into events (``Message``, ``Closed``) and app messages into bytes. The caller writes
``data_to_send()`` after every ``receive_data()`` and every ``send_*()``, and closes the
transport when it says so.

What this module adds to ``ServerProtocol``: the handshake is answered only when the app
decides (accept with a subprotocol and headers, reject with 403, or any HTTP response).
``websocket_frames.py`` reassembles fragmented messages, checks text for UTF-8 as it arrives
(1007), and can hold a failure back until the caller has answered what came before it.
"""

from __future__ import annotations

import http
import logging
from collections.abc import Iterable
from typing import Any, Final

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.http11 import Response as HandshakeResponse
from websockets.protocol import Protocol, State

from uvicorn.logging import TRACE
from uvicorn.protocols.http_parser import RequestHead
from uvicorn.protocols.websocket_deflate import DEFLATE_WINDOW_BITS, LazyDeflate, deflate_factory
from uvicorn.protocols.websocket_events import (
    ABNORMAL_CLOSURE,
    GOING_AWAY,
    INTERNAL_ERROR,
    NORMAL_CLOSURE,
    SERVICE_RESTART,
    Closed,
    Event,
    Failing,
    HandshakeState,
    Pong,
)
from uvicorn.protocols.websocket_frames import (
    BINARY_FIN,
    TEXT_FIN,
    Message,
    StrictServerProtocol,
    unmasked_frame,
)
from uvicorn.protocols.websocket_handshake import (
    header_texts,
    offered_subprotocols,
    request_bytes,
    response_head,
)


class _QuietLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets logs each connection's open and close at INFO, and every frame at DEBUG. Our
    access log already says what happened, so the INFO lines are dropped and the frames go to
    the TRACE level; warnings and errors go to uvicorn.error."""

    def info(self, *args: Any, **kwargs: Any) -> None:
        pass

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(TRACE, msg, *args, **kwargs)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging's name)
        return bool(self.logger.isEnabledFor(TRACE if level == logging.DEBUG else level))


_LOGGER = _QuietLogger(logging.getLogger("uvicorn.error"), {})
# The protocol's state is read as websockets' own methods read it, from its attribute (set only
# by the ``state`` property's setter, websockets 13 to 17): the property is a Python call, and
# the broadcast fan-out asks every member's connection whether it is open for every message
# (the call was a quarter of a delivery's instructions). A test checks that they agree.
_OPEN: Final = State.OPEN
_CLOSED: Final = State.CLOSED
_MESSAGE: Final = Message  # (an imported name is a dict lookup to compiled code; this, a C static)
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}


class _DeferringProtocol(StrictServerProtocol):
    defer_failures = True


class WebSocketCore:
    def __init__(
        self,
        head: RequestHead,
        max_size: int,
        per_message_deflate: bool,
        server_header: bool = True,
        date_header: bool = True,
        defer_failures: bool = False,
        window_bits: int = DEFLATE_WINDOW_BITS,
        h2: bool = False,
    ) -> None:
        self.h2 = h2  # on an HTTP/2 stream (RFC 8441)
        # (h2) The response head to send on the stream: (status, fields, body).
        self.h2_head: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None
        self._server_header = server_header
        self._date_header = date_header
        self._method = head.method
        extensions = [deflate_factory(window_bits)] if per_message_deflate else None
        # (A class attribute: set on the instance, it cost ~1.3 KB a connection, websockets'
        # protocol's attributes no longer sharing their keys with its class's other instances.)
        protocol_class = _DeferringProtocol if defer_failures else StrictServerProtocol
        self.protocol = protocol_class(extensions=extensions, max_size=max_size, logger=_LOGGER)
        self.protocol.receive_data(request_bytes(head, h2))
        request = next((e for e in self.protocol.events_received() if isinstance(e, Request)), None)
        if request is not None:
            # websockets' parser would hold the request (~2.5 KB with its Headers) in its
            # frame for the connection's life. ServerProtocol.parse() goes on with
            # Protocol.parse(), the frames' parser: started afresh, as nothing followed the
            # request, it parses them the same.
            self.protocol.parser = Protocol.parse(self.protocol)
            next(self.protocol.parser)
        else:
            # websockets could not read it even so (a Sec-WebSocket-* field over its limits):
            # it queued an answer or a bare close. Answer 400 from a fresh protocol instead.
            exc = self.protocol.handshake_exc
            self.protocol = StrictServerProtocol(logger=_LOGGER)
            self.protocol.handshake_exc = exc
            request = Request(head.raw_path.decode("latin-1"), Headers())
        # The handshake's request and answer are let go once it is answered (~3 KB a
        # connection, their fields in websockets' Headers).
        self.request: Request | None = request
        self.subprotocols = offered_subprotocols(request.headers)
        self.state = HandshakeState.PENDING
        self.status = 0  # of the handshake's answer, once sent
        self._closed = False  # a Closed event was reported
        self._failure: tuple[int, str] | None = None  # reported as Failing
        # Accepted with no extension and frames not traced: data frames may be made here
        # (``frame_data()``, ``shares_frames``) rather than by websockets' send_text().
        self._plain = False
        # ``shares_frames`` held when it was last read, and nothing that could change it was
        # asked of websockets' protocol since (each such call clears it): a group message's
        # delivery to each member reads one flag here rather than three attributes of that
        # object, whose dict is cold by the next message (broadcast fan-out).
        self._sharing = False
        self._response: HandshakeResponse | None = self._check_handshake(request)

    def _check_handshake(self, request: Request) -> HandshakeResponse | None:
        """The 101 response to send on acceptance, or answer an invalid handshake now (None)."""
        protocol = self.protocol
        version = request.headers.get_all("Sec-WebSocket-Version")
        if protocol.handshake_exc is not None:  # unreadable (see __init__)
            text = f"Invalid WebSocket handshake: {protocol.handshake_exc}\n"
            response = protocol.reject(400, text)
        elif self._method != ("CONNECT" if self.h2 else "GET"):
            # RFC 6455 section 4.1: the handshake "MUST be a valid HTTP request [...] the
            # method of the request MUST be GET"; anything else is a bad handshake (SPEC: 400).
            response = protocol.reject(400, "A WebSocket handshake is a GET request.\n")
        elif version and version != ["13"]:
            # RFC 6455 section 4.4: a version the server does not understand gets "an
            # appropriate HTTP error code (such as 426 Upgrade Required) and a
            # |Sec-WebSocket-Version| header field indicating the version(s) the server is
            # capable of understanding".
            response = protocol.reject(426, "Unsupported WebSocket version: use 13.\n")
            response.headers["Sec-WebSocket-Version"] = "13"
        else:
            response = protocol.accept(request)
        if response.status_code != 101:
            self._refuse(response)
            return None
        return response

    @property
    def handshake_failed(self) -> bool:
        return self.state is HandshakeState.REFUSED

    # The app's decision.

    def accept(self, subprotocol: str | None = None, headers: Iterable[Any] = ()) -> None:
        """Answer ``101 Switching Protocols``. Raises TypeError or ValueError for headers an HTTP
        response would refuse (the handshake stays unanswered)."""
        if self.state is not HandshakeState.PENDING:
            raise RuntimeError(f"the handshake was already answered ({self.state.value})")
        extra = header_texts(headers)
        response = self._response
        assert response is not None  # (PENDING)
        if subprotocol is not None:
            if subprotocol not in self.subprotocols:
                raise ValueError(
                    f"subprotocol {subprotocol!r} was not offered by the client "
                    f"(it offered {self.subprotocols})"
                )
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
            self.protocol.subprotocol = subprotocol  # type: ignore[assignment]
        for name, value in extra:
            response.headers[name] = value
        self._server_defaults(response)
        self.state = HandshakeState.ACCEPTED
        self._plain = not self.protocol.extensions and not self.protocol.debug
        self.status = 200 if self.h2 else 101
        self._send_response(response)

    def reject(self, status: int = 403, headers: Iterable[Any] = (), body: bytes = b"") -> None:
        """Refuse the handshake with an HTTP response (403 unless told otherwise). Raises
        TypeError or ValueError for invalid headers, as ``accept()`` does."""
        if self.state is not HandshakeState.PENDING:
            raise RuntimeError(f"the handshake was already answered ({self.state.value})")
        extra = header_texts(headers)
        response = self.protocol.reject(403, "")
        # Any status, not only those Python's HTTPStatus names (which reject() insists on):
        # the ASGI websocket.http.response extension lets the app choose, e.g. 499.
        response.status_code = status
        response.reason_phrase = _REASONS.get(status, "")
        response.body = body
        del response.headers["Content-Length"]
        response.headers["Content-Length"] = str(len(body))
        if body:
            del response.headers["Content-Type"]
        for name, value in extra:
            if name.lower() not in ("content-length", "connection"):
                response.headers[name] = value
        self._refuse(response)

    def _server_defaults(self, response: HandshakeResponse) -> None:
        """The server's own headers, as on every HTTP response: ``server`` unless the app set
        one or --no-server-header, and websockets' ``Date`` only without --no-date-header."""
        if not self._date_header:
            del response.headers["Date"]
        if self._server_header and "server" not in response.headers:
            response.headers["server"] = "uvicorn"

    def _refuse(self, response: HandshakeResponse) -> None:
        self._server_defaults(response)
        self.state = HandshakeState.REFUSED
        self.status = response.status_code
        self._send_response(response)

    def _send_response(self, response: HandshakeResponse) -> None:
        self._sharing = False
        writes = self.protocol.writes
        at = len(writes)
        self.protocol.send_response(response)
        self.request = self._response = None
        if self.h2:  # the head goes in a HEADERS frame: see ``h2_head``
            del writes[at]
            self.h2_head = response_head(response)

    # Data.

    def receive_data(self, data: bytes) -> list[Event]:
        self._sharing = False
        protocol = self.protocol
        if self._plain:
            # Whole one-frame messages first, without websockets' parser (websocket_frames).
            taken = protocol.take_whole_frames(data)
            if taken == len(data):
                return protocol.events_received()  # type: ignore[return-value]  # Messages
            if taken:
                data = data[taken:]
        protocol.receive_data(data)
        if protocol.reader.buffer:  # a frame is still arriving: fail fast on its UTF-8
            protocol.check_partial_frame()
        return self._events()

    def receive_eof(self) -> list[Event]:
        self._sharing = False
        self.protocol.receive_eof()
        return self._events()

    @property
    def closed(self) -> bool:
        """A ``Closed`` event was reported: nothing more will come."""
        return self._closed

    @property
    def _fragments(self) -> list[Any]:
        """What is held of a fragmented message (str parts if text): bounded by max_size."""
        return self.protocol.fragments

    def _events(self) -> list[Event]:
        events: list[Event] = []
        protocol = self.protocol
        received: list[Any] = protocol.events_received()  # Message objects among the frames
        for frame in received:
            if type(frame) is _MESSAGE:  # data frames come reassembled (websocket_frames.py)
                events.append(frame)
                continue
            if not isinstance(frame, Frame):
                continue
            opcode = frame.opcode
            if opcode is Opcode.CLOSE:
                # websockets answered it already; Close.parse() gave 1005 for an empty frame.
                close = protocol.close_rcvd
                assert close is not None
                self._report(events, close.code, close.reason)
            elif opcode is Opcode.PONG:
                events.append(Pong())
        if protocol.parser_exc is not None or protocol._state is _CLOSED:
            if protocol.parser_exc is not None:
                # The parser keeps its failure (EOFError for a peer gone without a close
                # frame), whose traceback holds the parser's frame, which holds the protocol:
                # a reference cycle, its buffers and zlib streams freed only when the garbage
                # collector finds it. Nothing reads that traceback.
                protocol.parser_exc.__traceback__ = None
            if protocol.failure is not None:  # deferred: the caller calls fail_now()
                if self._failure is None:
                    self._failure = protocol.failure
                    events.append(Failing(*protocol.failure))
                return events
            if self._failure is not None:  # done meanwhile: the peer ended the stream
                self._report(events, *self._failure)
                return events
            # We failed the connection (1002 protocol error, 1007, 1009...), or it ended.
            # We failed it: the app is told the code we sent (1002, 1007, 1009). Not when the
            # peer just went away (EOFError), even after our close frame: RFC 6455 section
            # 7.1.5, with no close frame received the code "is considered to be 1006".
            sent = protocol.close_sent
            exc = protocol.parser_exc
            if sent is not None and exc is not None and not isinstance(exc, EOFError):
                self._report(events, sent.code, sent.reason)
            self._report(events, ABNORMAL_CLOSURE, "")
        return events

    def connection_lost(self) -> list[Event]:
        """The transport is gone: the last events (1006 unless a close handshake happened)."""
        # websockets' parser is a generator that holds its protocol, and the protocol holds it
        # (suspended for good once the stream ends): a reference cycle with the protocol's
        # buffers and zlib streams (~40 KiB compressed) that only the garbage collector would
        # free. Nothing is parsed from now on: end it.
        self.protocol.parser.close()
        events: list[Event] = []
        if self._failure is not None and self.protocol.failure is None:
            self._report(events, *self._failure)  # its close frame was sent
        self._report(events, ABNORMAL_CLOSURE, "")
        return events

    @property
    def failing(self) -> bool:
        """A ``Failing`` event was reported and ``fail_now()`` not called yet."""
        return self.protocol.failure is not None

    def fail_now(self) -> list[Event]:
        """Fail the connection reported ``Failing``: the close frame, then the end of the
        stream; returns its ``Closed`` event (unless reported already)."""
        events: list[Event] = []
        self._sharing = False
        self.protocol.fail_deferred()
        if self._failure is not None:
            self._report(events, *self._failure)
        return events

    def _report(self, events: list[Event], code: int, reason: str) -> None:
        if not self._closed:
            self._closed = True
            events.append(Closed(code, reason))

    def send_text(self, text: str) -> None:
        self._sharing = False
        self.protocol.send_text(text.encode("utf-8"))

    def send_bytes(self, data: bytes) -> None:
        self._sharing = False
        self.protocol.send_binary(data)

    def send_ping(self, data: bytes = b"") -> None:
        self._sharing = False
        self.protocol.send_ping(data)

    def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (RFC 6455 section 7.1.2), if not already closing. With
        a failure pending, fail the connection instead: its code is the one that counts."""
        self._sharing = False
        protocol = self.protocol
        if protocol.failure is not None:
            protocol.fail_deferred()
        elif protocol._state is _OPEN:
            protocol.send_close(code, reason)

    @property
    def is_open(self) -> bool:
        return self.protocol._state is _OPEN

    @property
    def shares_frames(self) -> bool:
        """The next data frame may be bytes made once for many peers (``unmasked_frame()``;
        the caller writes them), bypassing ``send_text()``, whose checks these are: open (a
        closing connection gets no data frame: RFC 6455 section 5.5.1), no extension
        (permessage-deflate compresses with this connection's own context: RFC 7692 section
        7.2.1), not in the middle of a fragmented message, nothing queued to go before it,
        and frames not traced (websockets logs each frame it sends at TRACE)."""
        if self._sharing:
            return True
        protocol = self.protocol
        sharing = self._sharing = (
            self._plain
            and protocol._state is _OPEN
            and not protocol.writes
            and not protocol.expect_continuation_frame
        )
        return sharing

    def frame_data(self, text: str | None, data: bytes | None) -> bytes | None:
        """The frame of a data message (``text``, else ``data``) for the caller to write
        now, made here as ``send_text()`` / ``send_binary()`` would make it, when the
        connection ``shares_frames``; else None (use ``send_text()`` / ``send_bytes()``)."""
        if not self.shares_frames:
            return None
        if text is not None:
            return unmasked_frame(TEXT_FIN, text.encode("utf-8"))
        return unmasked_frame(BINARY_FIN, data or b"")

    def release_compressor(self) -> bool:
        """Let permessage-deflate's compressor go if nothing was compressed since the last
        call (``LazyDeflate``): a quiet connection holds no zlib compressor. Whether it did."""
        for extension in self.protocol.extensions:
            if isinstance(extension, LazyDeflate):
                return extension.release_compressor()
        return False

    @property
    def close_expected(self) -> bool:
        return self.protocol.close_expected()

    @property
    def has_output(self) -> bool:
        """Something for ``data_to_send()`` (or ``h2_head``) to give the caller."""
        return bool(self.protocol.writes) or self.h2_head is not None

    def data_to_send(self) -> tuple[bytes, bool]:
        """(bytes to write, whether the transport should then be closed)."""
        writes = self.protocol.data_to_send()
        if not writes:
            return b"", False
        eof = writes[-1] == b""
        return b"".join(writes), eof


__all__ = [  # (the events and codes are re-exported: callers may import them from here)
    "ABNORMAL_CLOSURE", "GOING_AWAY", "INTERNAL_ERROR", "NORMAL_CLOSURE", "SERVICE_RESTART",
    "Closed", "Event", "Failing", "HandshakeState", "Message", "Pong", "WebSocketCore",
]  # fmt: skip
