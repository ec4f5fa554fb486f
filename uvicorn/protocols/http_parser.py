"""HTTP/1.1 request parsing, sans I/O: bytes in, events out.

``RequestParser.receive_data(data)`` feeds bytes to httptools (llhttp) and returns the events they
completed: ``RequestHead``, ``Body``, ``END_OF_REQUEST``, ``Upgrade`` or, when the peer broke the
protocol, one final ``BadRequest`` naming the status to answer (RFC 9112). After a ``BadRequest``
the connection must be closed: the parser accepts nothing more. A head of the simplest kind that
arrives whole, and alone, is read without llhttp (http_simple.py), which is then made only when
a connection first needs it.

llhttp is strict by default and already rejects what request smuggling relies on (duplicate or
invalid Content-Length, Content-Length with Transfer-Encoding, bare CR or LF, obs-fold, invalid
characters). This module adds what llhttp leaves to the server: size limits, the Host rules, the
HTTP versions we serve, and trailers that never reach the request headers.

Bytes received after the last request of a connection (one that is not keep-alive) are ignored,
and after an ``Upgrade`` event the parser takes nothing more: the caller hands what follows to
the new protocol.
"""

from __future__ import annotations

from typing import Final

import httptools

from uvicorn.compiled import COMPILED
from uvicorn.protocols.http_chunks import ChunkedBody
from uvicorn.protocols.http_events import (
    END_OF_REQUEST,
    BadRequest,
    Body,
    EndOfRequest,
    Event,
    Limits,
    ParserState,
    Preface,
    RequestHead,
    Upgrade,
    new_head,
)
from uvicorn.protocols.http_restart import ChunkedFollows, HoldTheRest, Restarts, parsed_to
from uvicorn.protocols.http_rules import (
    EXPECT_CONTINUE,
    HOST,
    METHOD_PEEK,
    Reject,
    check_transfer_coding,
    expectation,
    method_error,
    no_version,
    split_target,
    status_for,
)
from uvicorn.protocols.http_simple import SIMPLE_MAX, simple_head

__all__ = [  # the events are re-exported: callers import them from the parser
    "END_OF_REQUEST", "BadRequest", "Body", "EndOfRequest", "Event", "Limits", "ParserState",
    "Preface", "RequestHead", "RequestParser", "Upgrade",
]  # fmt: skip

# bytes -> str, so a request's method is not decoded each time
_METHODS: Final[dict[bytes, str]] = {}
# The end of a request line, for the versions served (see on_headers_complete).
_VERSIONS: Final = {b" HTTP/1.1": "1.1", b" HTTP/1.0": "1.0"}

_OWS: Final = b" \t"
_HASH: Final = ord("#")
_QUESTION: Final = ord("?")
# Request header fields the parser acts on, by lower-case name.
_HOST_FIELD: Final = 0
_EXPECT_FIELD: Final = 1
_UPGRADE_FIELD: Final = 2
_TE_FIELD: Final = 3
_PROXY_FIELD: Final = 4
_LENGTH_FIELD: Final = 5
_REQUEST_SPECIAL: Final = {
    b"content-length": _LENGTH_FIELD,
    b"host": _HOST_FIELD,
    b"expect": _EXPECT_FIELD,
    b"upgrade": _UPGRADE_FIELD,
    b"transfer-encoding": _TE_FIELD,
    b"x-forwarded-for": _PROXY_FIELD,
    b"x-forwarded-proto": _PROXY_FIELD,
    b"forwarded": _PROXY_FIELD,
}
_HOSTS: Final[set[bytes]] = set()  # Host values seen valid, so each is checked once
_BODY_FIELD_TOO_LARGE: Final = "chunk extension or trailer field too large"


# The longest head http_simple.py reads: none in the pure-Python build, where its loops run
# as bytecode and cost more than llhttp (1.5x on a 70-byte head).
_SIMPLE_LIMIT: Final = SIMPLE_MAX if COMPILED else 0
_DEFAULT_LIMITS = Limits()
# What a RequestParser holds for llhttp's parser before it first needs one (a connection whose
# requests http_simple.py reads never does: ~3,000 instructions saved) and once closed.
_NO_PARSER: Final = httptools.HttpRequestParser(object())
# The most requests one receive_data() call completes; the bytes after them are held (see
# HoldTheRest in http_restart.py). Each becomes a request cycle waiting its turn.
PIPELINE_BATCH: Final = 64
_BATCH_EVENTS: Final = 2 * PIPELINE_BATCH
_SPENT: Final[list[Event]] = []  # receive_data()'s events list between calls (callbacks run in it)

# Module globals are found faster than enum attributes, on the path of every request.
_IDLE: Final = ParserState.IDLE
_HEAD: Final = ParserState.HEAD
_BODY: Final = ParserState.BODY
_CLOSED: Final = ParserState.CLOSED


class RequestParser(Restarts):
    """Parses the requests of one connection. ``upgrades`` names the protocols (lower-case
    bytes) the caller can switch to; other upgrade requests are served as plain HTTP."""

    def __init__(
        self, limits: Limits = _DEFAULT_LIMITS, upgrades: frozenset[bytes] = frozenset()
    ) -> None:
        self.limits = limits
        self.upgrades = upgrades
        self._request_line = limits.request_line
        self._field_size = limits.field_size
        self._max_fields = limits.fields
        self.state = _IDLE
        self._parser = _NO_PARSER  # made by receive_data() when needed
        self._events: list[Event] = []
        self._url = b""
        self._headers: list[list[bytes]] = []
        self._head_bytes = 0  # bytes fed since the current head started
        # Bytes fed since the parser was last idle at the start of a feed: no header or trailer
        # field completing now can be longer.
        self._fed = 0
        # Bytes fed since llhttp last handed us something (URL, field, body). httptools buffers a
        # header or trailer field until it is complete, concatenating the pieces at quadratic
        # cost: a field trickled in is refused once this passes what a field may be, rather than
        # when it completes.
        self._pending = 0
        self._pending_limit = limits.field_size + 64
        self._body_limit = limits.body  # --limit-request-body (None: no limit)
        # The first bytes of the request in progress, at least its request line (bounded), for
        # what llhttp does not say: the version as written, where a refused method ends.
        self._start: bytes | None = b""
        self._start_limit = limits.request_line + METHOD_PEEK
        self._hosts = 0
        self._expect_continue = 0  # (NO_EXPECTATION: see http_rules.expectation)
        self._upgrade: bytes | None = None
        self._proxied = False
        self._transfer_encoding: bytes | None = None
        self._keep_alive = True
        # A chunked body is followed by ``ChunkedBody`` ahead of llhttp (see http_chunks.py),
        # from its first byte: a head that announces one stops llhttp (``ChunkedFollows``),
        # and parsing goes on from where the head ended (http_restart.py).
        self._chunked: ChunkedBody | None = None
        self._priming = False  # feeding a primer head: its framing is set up, not followed
        # Bytes after a batch of requests, held unparsed until the caller answered those.
        self.held = b""
        self._tail = b""  # the last bytes of a head received in part (its end may straddle)

    # The caller's side.

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completed, in order. Once the parser is
        CLOSED, UPGRADED or FAILED, it returns []."""
        events = self._events = []
        fed_from = 0  # the first event of the current feed of llhttp
        held = self.held
        if held:
            self.held = b""
            data = held + data
        while True:
            state = self.state
            rest = None  # for a chunked body: what follows its end
            if state is _IDLE:
                if data[:1] <= b"\r":  # empty, or starting with CR, LF (or another CTL)
                    # RFC 9112 section 2.2: a server SHOULD ignore at least one empty line (CRLF)
                    # received prior to the request-line. Until a request begins, none has.
                    data = data.lstrip(b"\r\n")
                    if not data:
                        break
                if not events and len(data) <= _SIMPLE_LIMIT and data.endswith(b"\r\n\r\n"):
                    # A whole head, maybe of the simplest kind: read without llhttp.
                    head = simple_head(data, self.limits, _METHODS, _HOSTS)
                    if head is not None:
                        events.append(head)
                        events.append(END_OF_REQUEST)
                        # Left as llhttp's callbacks leave them after a whole request.
                        self._keep_alive = head.keep_alive
                        self.state = _IDLE if head.keep_alive else _CLOSED
                        self._fed = len(data)
                        self._head_bytes = self._pending = 0
                        self._start = None
                        self._tail = b""
                        break
                self.state = _HEAD
                self._start = data  # kept until the head completes; only its start is read
                # No field was in progress: whatever completes in this feed lies within it.
                self._head_bytes = self._fed = len(data)
                self._tail = b""
            elif state is _HEAD:
                self._head_bytes += len(data)
                self._fed += len(data)
                start = self._start
                if start is not None and len(start) < self._start_limit and b"\n" not in start:
                    # Until the request line is whole (its version, or the method llhttp
                    # refused, is judged on its bytes, whatever the split).
                    self._start = start + data[: self._start_limit - len(start)]
            elif state is _BODY:
                self._fed += len(data)  # (a trailer field may be in progress)
                if self._chunked is not None:
                    data, rest = self._chunked.feed(data)
            else:
                break  # CLOSED, UPGRADED or FAILED: nothing more is parsed
            self._pending += len(data)
            parser = self._parser
            if parser is _NO_PARSER:  # (never after close(): the state stops it above)
                parser = self._parser = httptools.HttpRequestParser(self)
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade as exc:
                data = data[exc.args[0] :]
                if self._on_upgrade(data) and data:
                    fed_from = len(events)
                    continue  # served as plain HTTP: parse what followed the request
            except httptools.HttpParserCallbackError as exc:
                reject = exc.__context__
                if isinstance(reject, (HoldTheRest, ChunkedFollows, Reject)):
                    # httptools keeps a callback's exception on its parser, and the traceback
                    # holds the callback's frame, which holds this parser: a reference cycle
                    # (with the connection behind it) left to the garbage collector. These
                    # are ours, raised to stop llhttp: their traceback says nothing.
                    reject.__traceback__ = None
                if isinstance(reject, HoldTheRest):
                    # A chunked body was fed (by ChunkedBody) up to its end: ``rest`` follows.
                    if rest is None:
                        rest = data[parsed_to(data, state, self._tail, events[fed_from:]) :]
                    self._parser = httptools.HttpRequestParser(self)  # llhttp's stays stopped
                    if self.state is _IDLE:
                        self.held = rest
                    break
                if isinstance(reject, ChunkedFollows):
                    data = data[parsed_to(data, state, self._tail, events[fed_from:]) :]
                    self._follow_chunked()
                    if data:
                        fed_from = len(events)
                        continue
                    break
                if not isinstance(reject, Reject):
                    raise
                if reject.status == 0:  # an HTTP/0.9 request line, begun in this feed
                    reject = no_version(self._request_start(data, state, events[fed_from:]))
                self._fail(reject.status, reject.reason)
            except httptools.HttpParserInvalidMethodError as exc:
                start = self._start
                if start is None:  # it began in this feed, after others
                    start = self._request_start(data, state, events[fed_from:])
                self._fail(*method_error(start, str(exc)))
            except httptools.HttpParserInvalidURLError:
                self._fail(400, "invalid request target")
            except httptools.HttpParserError as exc:
                if not self._on_preface(str(exc), data, state, events[fed_from:]):
                    self._fail(*status_for(str(exc)))
            if rest is not None and state is _BODY:
                if self._chunked is not None and self._chunked.too_long:
                    self._fail(400, _BODY_FIELD_TOO_LARGE)
                elif rest and self.state is not ParserState.FAILED:
                    data = rest  # the next request
                    fed_from = len(events)
                    continue
            break
        fed_state, state = state, self.state
        if state is _HEAD:
            self._head_in_part(data, fed_state, events[fed_from:])
        elif state is _BODY and self._pending > self._pending_limit:
            # RFC 9112 section 7.1.1: a server ought to limit the length of chunk extensions
            # "and generate an appropriate 4xx (Client Error) response if that amount is
            # exceeded"; trailer fields are bounded the same way.
            self._fail(400, _BODY_FIELD_TOO_LARGE)
        # Not kept once returned: an idle keep-alive connection would hold its last request
        # (its head, fields and events: ~0.7 KB) until the next one.
        self._events = _SPENT
        return events

    # httptools callbacks. They run inside feed_data().

    def on_message_begin(self) -> None:
        # A pipelined request can begin in the same chunk that ended the previous one (where in
        # the chunk is unknown: ``_start`` stays None).
        self.state = _HEAD

    def on_url(self, url: bytes) -> None:
        self._pending = 0
        self._url += url
        if len(self._url) > self._request_line:
            # RFC 9112 section 3: a server that receives a request-target longer than any URI
            # it wishes to parse MUST respond with a 414 (URI Too Long).
            raise Reject(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        # This runs for every field of every request: written for few bytecodes.
        self._pending = 0
        if value and value[-1] <= 32:  # ends with SP or HTAB (llhttp rejects other CTLs)
            # RFC 9112 section 5: field-line = field-name ":" OWS field-value OWS; llhttp
            # strips the leading OWS only.
            value = value.rstrip(_OWS)
        # A field is no longer than the bytes fed since it could have begun (_fed), so most
        # requests skip the measuring.
        if self._fed > self._field_size and len(name) + len(value) > self._field_size:
            if self.state is _BODY:
                raise Reject(400, _BODY_FIELD_TOO_LARGE)
            raise Reject(431, "header field too large")
        if self.state is _BODY:
            # A trailer section: never merged into the request headers (RFC 9112 section 7.1.2).
            return
        name = name.lower()
        kind = _REQUEST_SPECIAL.get(name)
        if kind is not None:
            if kind == _HOST_FIELD:
                self._hosts += 1
                if value not in _HOSTS:
                    if not HOST.fullmatch(value):
                        # RFC 9112 section 3.2: a server MUST respond with 400 to any request
                        # message that contains [...] a Host header field with an invalid value.
                        raise Reject(400, "invalid Host header")
                    if len(_HOSTS) < 64:
                        _HOSTS.add(value)
            elif kind == _PROXY_FIELD:
                self._proxied = True
            elif kind == _EXPECT_FIELD:
                self._expect_continue = expectation(value, self._expect_continue)
            elif kind == _UPGRADE_FIELD:
                self._upgrade = value.lower()
            elif kind == _LENGTH_FIELD:
                # RFC 9110 section 15.5.14: 413 (Content Too Large), before the app is called.
                limit = self._body_limit
                if limit is not None and value.isdigit() and int(value) > limit:
                    raise Reject(413, "request body larger than --limit-request-body")
            else:
                te = self._transfer_encoding
                self._transfer_encoding = value if te is None else te + b"," + value
        self._headers.append([name, value])

    def on_headers_complete(self) -> None:
        # This runs for every request: written for few calls and bytecodes.
        parser = self._parser
        method_bytes = parser.get_method()
        url = self._url
        version = None
        start = self._start
        if start is not None:
            # The request line ends with " HTTP/x.y" right after the target: read the version
            # there when this chunk holds the line (httptools' get_http_version() formats a new
            # string for every request). llhttp validated the line; where the bytes are not
            # laid out so (extra spaces, a line longer than the chunk), nothing matches here.
            at = len(method_bytes) + 1 + len(url)
            version = _VERSIONS.get(start[at : at + 9])
        if version is None:
            version = parser.get_http_version()
            if version != "1.1" and version != "1.0":
                if version == "0.9":  # written so, or no version at all: see no_version()
                    raise Reject(0, "") if start is None else no_version(start)
                raise Reject(505, f"HTTP/{version} is not supported")
        headers = self._headers
        if len(headers) > self._max_fields:
            raise Reject(431, "too many header fields")
        if self._hosts != 1 and (self._hosts or version == "1.1"):
            # RFC 9112 section 3.2: 400 for an HTTP/1.1 request without a Host header, and
            # for any request with more than one.
            raise Reject(
                400, "missing Host header" if not self._hosts else "duplicate Host header"
            )
        method = _METHODS.get(method_bytes)
        if method is None:
            method = method_bytes.decode("ascii")
            if method == "CONNECT":
                raise Reject(501, "CONNECT is not supported")
            if len(_METHODS) < 64:
                _METHODS[method_bytes] = method
        te = self._transfer_encoding
        if te is not None:
            self._transfer_encoding = None
            check_transfer_coding(te, version)
            if self._priming:
                self._chunked = ChunkedBody(self._pending_limit)
        # origin-form, as nearly every request has it. (Ints tested for membership: CPython
        # tries bytes.__contains__'s argument as an int first, and a bytes one costs a raised
        # and cleared TypeError.)
        if url[:1] == b"/" and _HASH not in url:
            if _QUESTION in url:
                raw_path, _, query_string = url.partition(b"?")
            else:
                raw_path, query_string = url, b""
        else:
            raw_path, query_string = split_target(url, method)
        keep_alive = self._keep_alive = parser.should_keep_alive()
        # Every field set here, without a call to __init__ (a class call costs more than the
        # whole of the rest of this function's bookkeeping).
        head = new_head(RequestHead)
        head.method = method
        head.raw_path = raw_path
        head.query_string = query_string
        head.http_version = version
        head.headers = headers
        head.keep_alive = keep_alive
        head.expect_continue = False
        head.upgrade = None
        head.proxied = False
        # The rarely set ones are reset only when set.
        if self._expect_continue:
            head.expect_continue = self._expect_continue == EXPECT_CONTINUE and version == "1.1"
            self._expect_continue = 0
        if self._upgrade is not None:
            if parser.should_upgrade():
                head.upgrade = self._upgrade
            self._upgrade = None
        if self._proxied:
            head.proxied = True
            self._proxied = False
        self._events.append(head)
        self.state = _BODY
        self._url = b""
        self._headers = []
        self._hosts = 0
        self._head_bytes = 0
        self._start = None
        if te is not None and not self._priming:
            raise ChunkedFollows  # see receive_data()

    def on_body(self, body: bytes) -> None:
        self._pending = 0
        self._events.append(Body(body))

    def on_message_complete(self) -> None:
        self._pending = 0
        self._chunked = None
        events = self._events
        events.append(END_OF_REQUEST)
        # RFC 9112 section 9.6: after a request with the "close" connection option (or an
        # HTTP/1.0 one without keep-alive), the server "MUST NOT process any further requests
        # received on that connection".
        self.state = _IDLE if self._keep_alive else _CLOSED
        # (Counted by the events of this call, at least two a request: a length costs less
        # than a counter of its own.)
        if len(events) >= _BATCH_EVENTS and not self._parser.should_upgrade():
            raise HoldTheRest  # see receive_data()

    def close(self) -> None:
        """Nothing more will be parsed on this connection. Lets go of llhttp's parser, which
        holds this object's callbacks: left to the cyclic garbage collector, one such cycle per
        connection makes for frequent full collections, each pausing every request."""
        if self.state is _IDLE or self.state is _HEAD or self.state is _BODY:
            self.state = _CLOSED
        self._parser = _NO_PARSER
