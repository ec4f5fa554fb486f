"""Invariants of the sans-I/O protocol cores, checked on any input.

One set of checks, two drivers: the Hypothesis property tests (``test_properties_*.py``) and the
atheris fuzz harnesses (``fuzz/``). Each checker drives a core the way the worker does and raises
``Violation`` (an ``AssertionError``) the moment a promise is broken:

* ``ParserRun``: ``RequestParser`` fed in pieces. Events follow the grammar of a connection,
  every ``RequestHead`` obeys the limits and RFC 9112's rules, buffers stay bounded, nothing
  comes after a ``BadRequest``, an ``Upgrade`` or the last request; ``compare_splits`` says
  whether two ways of splitting the same bytes gave the same events.
* ``ResponseRun``: ``Response`` driven by app messages; the bytes are read back by
  ``read_response``, a strict client written here (no llhttp, no h11), and must frame exactly the
  body the app sent, with only the header lines the app or the server meant.
* ``WebSocketRun``: a ``WebSocketCore`` after an accepted handshake fed client bytes; only
  Message/Closed/Pong events, nothing after Closed, messages within max_size, and every byte it
  writes is a well-formed server frame (read back by ``ServerFrameReader``, written here too).

Known defects that a fix is under way for are listed in ``KNOWN_DEFECTS``; their checks are
skipped while they are listed, and each has a strict xfail reproducer in the property tests.
"""

from __future__ import annotations

import itertools
import re
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols import http_parser
from uvicorn.protocols.http_parser import (
    END_OF_REQUEST,
    BadRequest,
    Body,
    Limits,
    ParserState,
    RequestHead,
    RequestParser,
    Upgrade,
)
from uvicorn.protocols.http_response import (
    HeaderDefaults,
    Response,
    ResponseState,
    simple_response,
)
from uvicorn.protocols.websocket import Closed, Message, Pong, WebSocketCore

# Defects found by fuzzing, reported, not fixed yet: their invariant is not checked while listed
# here (so that the fuzzer can look for the next one). Remove an entry once its fix lands; its
# xfail(strict) reproducer in tests/protocols/test_properties_http.py fails until then.
KNOWN_DEFECTS: set[str] = {
    # A bare CR before a request line is skipped like an empty line (b"\rGET / HTTP/1.1...", or
    # b"\r\r", b"\n\r" between pipelined requests; llhttp skips them too). RFC 9112 section 2.2
    # allows ignoring empty lines (CRLF) only, and says a bare CR MUST be taken as invalid: 400.
    "bare-cr-before-request-line",
}
# The two answers such a request line gets.
HTTP09_REASONS = frozenset({"no HTTP version in the request line", "HTTP/0.9 is not supported"})
# The most requests one receive_data() call may complete.
PIPELINE_BATCH: int = getattr(http_parser, "PIPELINE_BATCH", 2**31)
# The reasons the parser gives for a method llhttp refused.
METHOD_REASONS = frozenset({"malformed request line", "unsupported method"})


class Violation(AssertionError):
    """A protocol core broke one of its promises."""


def fail(message: str) -> None:
    raise Violation(message)


# RFC 9110 section 5.6.2 and 5.5.
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
HOST = re.compile(
    rb"(?:\[[0-9A-Za-z:.\-_~!$&'()*+,;=%]+\]|[0-9A-Za-z.\-_~!$&'()*+,;=%]*)(?::[0-9]*)?"
)
FIELD_VALUE = re.compile(
    rb"(?:[\x21-\x7e\x80-\xff](?:[\x20\x09\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
)
TARGET_BYTES = re.compile(rb"[\x21-\x7e\x80-\xff]*")

# Reasons for refusing a request whose size is judged by how it arrived: a field or a head, or a
# chunk extension, is measured as the bytes accumulate across reads (so that a trickled one is
# refused early), and in one read only once llhttp hands it over (or never, for an extension
# llhttp skips). The same bytes may then be refused when split and accepted when whole; or, when
# they break two rules, refused for either (a target both too long and with a bad byte further on
# is 414 when the pieces before that byte already pass the limit, 400 when llhttp sees the byte
# first).
ACCUMULATION_LIMITS = frozenset(
    {
        "request target too long",
        "request head too large",
        "header field too large",
        "chunk extension or trailer field too large",
    }
)


# HTTP/1.1 request parser.


def normalize(event: Any) -> tuple[Any, ...]:
    """An event as a comparable tuple (a BadRequest by its status)."""
    if isinstance(event, RequestHead):
        return (
            "head",
            event.method,
            event.raw_path,
            event.query_string,
            event.http_version,
            tuple(tuple(pair) for pair in event.headers),
            event.keep_alive,
            event.expect_continue,
            event.upgrade,
            event.proxied,
        )
    if isinstance(event, Body):
        return ("body", event.data)
    if event is END_OF_REQUEST:
        return ("end",)
    if isinstance(event, Upgrade):
        return ("upgrade", event.data)
    if isinstance(event, BadRequest):
        return ("bad", event.status)
    fail(f"unexpected event {event!r}")
    raise AssertionError  # (unreachable)


def _options(headers: Sequence[Sequence[bytes]], name: bytes) -> set[bytes]:
    """The comma-separated, lower-cased options of every ``name`` field."""
    options: set[bytes] = set()
    for key, value in headers:
        if key == name:
            options |= {o.strip(b" \t").lower() for o in value.split(b",")}
    return options


def check_head(head: RequestHead, limits: Limits, upgrades: frozenset[bytes]) -> None:
    """What every RequestHead promises (RFC 9112, RFC 9110 and our Limits)."""
    for name in RequestHead.__slots__:
        if not hasattr(head, name):
            fail(f"RequestHead without {name}")
    method = head.method
    if type(method) is not str or not TOKEN.fullmatch(method.encode("latin-1")):
        fail(f"method {method!r} is not a token")
    if method == "CONNECT":
        fail("CONNECT reached the app")
    if head.http_version not in ("1.0", "1.1"):
        fail(f"version {head.http_version!r} served")
    path, query = head.raw_path, head.query_string
    if type(path) is not bytes or type(query) is not bytes:
        fail("raw_path and query_string must be bytes")
    if not (path.startswith(b"/") or (path == b"*" and method == "OPTIONS")):
        fail(f"raw_path {path!r} is neither origin-form nor OPTIONS *")
    if b"?" in path or b"#" in path or b"#" in query:
        fail(f"raw_path {path!r} / query {query!r} keep a '?' or a fragment")
    if not TARGET_BYTES.fullmatch(path) or not TARGET_BYTES.fullmatch(query):
        fail(f"raw_path {path!r} / query {query!r} hold whitespace or controls")
    if len(path) + len(query) > limits.request_line:
        fail(f"target of {len(path) + len(query)} bytes beyond request_line={limits.request_line}")
    headers = head.headers
    if len(headers) > limits.fields:
        fail(f"{len(headers)} fields beyond fields={limits.fields}")
    hosts = []
    lengths = []
    codings = []
    for pair in headers:
        if type(pair) is not list or len(pair) != 2:
            fail(f"header {pair!r} is not a [name, value] list")
        name, value = pair
        if type(name) is not bytes or type(value) is not bytes:
            fail(f"header {pair!r} is not bytes")
        if not TOKEN.fullmatch(name) or name != name.lower():
            fail(f"header name {name!r} is not a lower-case token")
        if not FIELD_VALUE.fullmatch(value):
            fail(f"header value {value!r} has controls or surrounding whitespace")
        if len(name) + len(value) > limits.field_size:
            fail(f"field of {len(name) + len(value)} bytes beyond field_size={limits.field_size}")
        if name == b"host":
            hosts.append(value)
        elif name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            codings.append(value)
    if len(hosts) > 1 or (head.http_version == "1.1" and not hosts):
        fail(f"{len(hosts)} Host fields in an HTTP/{head.http_version} request")
    for host in hosts:
        if not HOST.fullmatch(host):
            fail(f"invalid Host {host!r} accepted")
    if lengths and (len(lengths) > 1 or not lengths[0].isdigit() or codings):
        fail(f"ambiguous framing accepted: content-length {lengths}, transfer-encoding {codings}")
    if codings:
        if head.http_version != "1.1":
            fail("Transfer-Encoding accepted in an HTTP/1.0 request")
        if b",".join(codings).strip(b" \t").lower() != b"chunked":
            fail(f"transfer coding {codings} accepted: only chunked is decoded")
    connection = _options(headers, b"connection")
    if head.keep_alive and b"close" in connection:
        fail("keep_alive despite Connection: close")
    if head.keep_alive and head.http_version == "1.0" and b"keep-alive" not in connection:
        fail("keep_alive for an HTTP/1.0 request without Connection: keep-alive")
    if head.expect_continue and (
        head.http_version != "1.1" or _options(headers, b"expect") != {b"100-continue"}
    ):
        fail("expect_continue without an HTTP/1.1 Expect: 100-continue")
    if head.upgrade is not None:
        content = codings or any(int(length) for length in lengths)
        if head.upgrade not in upgrades or head.http_version != "1.1" or content:
            fail(f"upgrade {head.upgrade!r} offered that cannot be taken")
        if b"upgrade" not in connection or head.upgrade not in _options(headers, b"upgrade"):
            fail("upgrade without Connection: upgrade and an Upgrade field")
    if head.proxied != any(
        name in (b"x-forwarded-for", b"x-forwarded-proto", b"forwarded") for name, _ in headers
    ):
        fail("proxied does not match the X-Forwarded-*/Forwarded fields")


@dataclass
class ParserRun:
    """A ``RequestParser`` fed chunk by chunk, checked after every ``receive_data``.

    ``events`` are normalized: consecutive Body events merged, and bytes fed after an Upgrade
    added to its data, as the connection hands them to the new protocol."""

    limits: Limits = field(default_factory=Limits)
    upgrades: frozenset[bytes] = frozenset()
    parser: RequestParser = field(init=False)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    reason: str | None = None  # of the BadRequest, if any
    # Where the connection is: "head" (between requests), "body" (a head was emitted),
    # "closed" (the last request is complete), "upgraded" or "failed".
    phase: str = "head"
    head: RequestHead | None = None
    body_length: int = 0
    fed: int = 0

    def __post_init__(self) -> None:
        self.parser = RequestParser(self.limits, self.upgrades)

    def feed_all(self, chunks: Iterable[bytes]) -> ParserRun:
        for chunk in chunks:
            self.feed(chunk)
        return self

    def feed(self, chunk: bytes) -> None:
        """Feed ``chunk``, then what the parser held back (a long pipeline is parsed a batch at
        a time: the connection calls again once a batch is answered)."""
        self._feed(chunk)
        while getattr(self.parser, "held", b""):
            if self.parser.state is not ParserState.IDLE:
                fail(f"bytes held in state {self.parser.state}")
            self._feed(b"")

    def _feed(self, chunk: bytes) -> None:
        self.fed += len(chunk)
        events = self.parser.receive_data(chunk)
        if type(events) is not list:
            fail(f"receive_data returned {events!r}")
        if self.phase in ("closed", "upgraded", "failed"):
            if events:
                fail(f"events after the connection was {self.phase}: {events!r}")
            if self.phase == "upgraded":
                self.events[-1] = ("upgrade", self.events[-1][1] + chunk)
            return
        completed = sum(1 for event in events if event is END_OF_REQUEST)
        if completed > PIPELINE_BATCH:
            fail(f"{completed} requests completed by one call, batches of {PIPELINE_BATCH}")
        for i, event in enumerate(events):
            if self.phase == "failed" and "bad-request-twice" in KNOWN_DEFECTS:
                break
            self._event(event, events[i + 1 :])
        self._check_state()

    def _event(self, event: Any, following: list[Any]) -> None:
        phase = self.phase
        if phase in ("closed", "upgraded", "failed"):
            fail(f"{event!r} after the connection was {phase}")
        if isinstance(event, RequestHead):
            if phase != "head":
                fail(f"a head while in {phase}")
            check_head(event, self.limits, self.upgrades)
            self.head, self.body_length, self.phase = event, 0, "body"
        elif isinstance(event, Body):
            if phase != "body" or self.head is None:
                fail(f"a Body while in {phase}")
                raise AssertionError
            if type(event.data) is not bytes or not event.data:
                fail(f"empty or non-bytes Body {event.data!r}")
            self.body_length += len(event.data)
            fields = {name for name, _ in self.head.headers}
            if b"transfer-encoding" not in fields:
                if b"content-length" not in fields:
                    fail("a Body for a request without content")
                declared = int(dict(self.head.headers)[b"content-length"])
                if self.body_length > declared:
                    fail(f"{self.body_length} body bytes for content-length {declared}")
        elif event is END_OF_REQUEST:
            if phase != "body" or self.head is None:
                fail(f"END_OF_REQUEST while in {phase}")
                raise AssertionError
            length = dict(self.head.headers).get(b"content-length")
            if length is not None and int(length) != self.body_length:
                fail(f"request complete after {self.body_length} of {int(length)} bytes")
            if self.head.upgrade is not None and not (
                following and isinstance(following[0], Upgrade)
            ):
                fail("a head offering an upgrade not followed by Upgrade")
            self.phase = "head" if self.head.keep_alive else "closed"
        elif isinstance(event, Upgrade):
            head = self.head
            if phase != "head" or head is None or head.upgrade is None or not self.events:
                fail("Upgrade not right after a complete upgrade request")
                raise AssertionError
            if self.events[-1] != ("end",) or following:
                fail("Upgrade not right after END_OF_REQUEST, or not last")
            if type(event.data) is not bytes:
                fail("Upgrade data is not bytes")
            self.phase = "upgraded"
        elif isinstance(event, BadRequest):
            if type(event.status) is not int or not 400 <= event.status <= 599:
                fail(f"BadRequest status {event.status!r}")
            if type(event.reason) is not str or not event.reason:
                fail(f"BadRequest reason {event.reason!r}")
            twice = "bad-request-twice" in KNOWN_DEFECTS
            if following and not (twice and all(isinstance(e, BadRequest) for e in following)):
                fail(f"events after {event!r}: {following!r}")
            self.reason = event.reason
            self.phase = "failed"
        else:
            fail(f"unexpected event {event!r}")
        item = normalize(event)
        if item[0] == "body" and self.events and self.events[-1][0] == "body":
            self.events[-1] = ("body", self.events[-1][1] + item[1])
        else:
            self.events.append(item)

    def _check_state(self) -> None:
        parser, limits, state = self.parser, self.limits, self.parser.state
        expected = {
            "head": (ParserState.IDLE, ParserState.HEAD),
            "body": (ParserState.BODY,),
            "closed": (ParserState.CLOSED,),
            "upgraded": (ParserState.UPGRADED,),
            "failed": (ParserState.FAILED,),
        }[self.phase]
        if state not in expected:
            fail(f"parser state {state} after the events said {self.phase}")
        # Buffers: what a connection holds between reads is bounded by the limits.
        if state is ParserState.HEAD:
            if parser._head_bytes > limits.head_size:
                fail(f"{parser._head_bytes} head bytes held, head_size {limits.head_size}")
            if len(parser._url) > limits.request_line:
                fail(f"{len(parser._url)} target bytes held, request_line {limits.request_line}")
            if len(parser._headers) > limits.fields + 1:  # (one more says there are too many)
                fail(f"{len(parser._headers)} fields held for an unfinished head")
        pending = state is ParserState.HEAD or state is ParserState.BODY
        if pending and parser._pending > parser._pending_limit:
            fail(f"{parser._pending} bytes pending in llhttp, limit {parser._pending_limit}")
        if parser._start is not None and state is ParserState.BODY:
            fail("the start of a completed head is still held")


def _is_prefix(prefix: list[tuple[Any, ...]], events: list[tuple[Any, ...]]) -> bool:
    if len(prefix) > len(events):
        return False
    for i, item in enumerate(prefix):
        other = events[i]
        if item == other:
            continue
        last = i == len(prefix) - 1
        if last and item[0] == "body" and other[0] == "body" and other[1].startswith(item[1]):
            continue
        return False
    return True


def compare_splits(whole: ParserRun, split: ParserRun) -> None:
    """The events must not depend on how the bytes were split. The one exception: a run refused
    for a size measured as bytes accumulate (ACCUMULATION_LIMITS) may stop earlier than the
    other; what it emitted before must then be a prefix of the other's events."""
    if whole.events == split.events:
        return
    if (
        "method-status-depends-on-split" in KNOWN_DEFECTS
        and whole.events[:-1] == split.events[:-1]
        and whole.reason in METHOD_REASONS
        and split.reason in METHOD_REASONS
    ):
        return
    if (
        "http09-status-depends-on-split" in KNOWN_DEFECTS
        and whole.events[:-1] == split.events[:-1]
        and whole.reason in HTTP09_REASONS
        and split.reason in HTTP09_REASONS
    ):
        return
    for stopped, other in ((split, whole), (whole, split)):
        limited = stopped.phase == "failed" and stopped.reason in ACCUMULATION_LIMITS
        if limited and _is_prefix(stopped.events[:-1], other.events):
            return
    fail(f"events depend on the split:\n whole: {whole.events!r}\n split: {split.events!r}")


def chunks_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets (clamped, sorted, deduplicated)."""
    points = sorted({min(max(c, 0), len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def check_request_stream(
    data: bytes,
    cuts: Iterable[int],
    limits: Limits | None = None,
    upgrades: frozenset[bytes] = frozenset(),
) -> tuple[ParserRun, ParserRun]:
    """Feed ``data`` whole and cut at ``cuts``; check both runs and compare them."""
    limits = limits or Limits()
    whole = ParserRun(limits, upgrades).feed_all([data])
    split = ParserRun(limits, upgrades).feed_all(chunks_at(data, cuts))
    compare_splits(whole, split)
    return whole, split


# HTTP/1.1 responses: a strict client.


class BadResponse(Exception):
    """The bytes are not a well-formed HTTP/1.1 response."""


@dataclass
class ParsedResponse:
    status: int
    headers: list[tuple[bytes, bytes]]  # (lower-case name, value without surrounding OWS)
    body: bytes = b""
    framing: str = "none"  # "none", "length", "chunked" or "close"
    complete: bool = False

    def values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]


_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([0-9]{3}) ([\t\x20-\x7e\x80-\xff]*)")
_FIELD_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*")
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]+")


def read_response(data: bytes, method: str, eof: bool) -> tuple[list[ParsedResponse], bytes]:
    """Parse the responses to one request (interim ones, then the final one, the last of the
    list), as a strict RFC 9112 client that sent ``method`` would; ``eof``: the connection was
    closed after ``data``. Returns them and the bytes after the final response. Raises
    BadResponse on anything malformed, and on framing that a server must not send (both
    Content-Length and Transfer-Encoding, duplicate or invalid lengths, codings other than
    chunked)."""
    responses: list[ParsedResponse] = []
    rest = data
    while True:
        end = rest.find(b"\r\n\r\n")
        if end < 0:
            if rest:
                responses.append(ParsedResponse(0, []))  # an incomplete head
            return responses, b""
        lines = rest[:end].split(b"\r\n")
        rest = rest[end + 4 :]
        match = _STATUS_LINE.fullmatch(lines[0])
        if not match:
            raise BadResponse(f"bad status line {lines[0]!r}")
        response = ParsedResponse(int(match[1]), [])
        for line in lines[1:]:
            field_match = _FIELD_LINE.fullmatch(line)
            if not field_match or b"\r" in line or b"\n" in line or b"\0" in line:
                raise BadResponse(f"bad field line {line!r}")
            response.headers.append((field_match[1].lower(), field_match[2]))
        responses.append(response)
        if response.status >= 200:
            break
        if response.values(b"content-length") or response.values(b"transfer-encoding"):
            raise BadResponse("a 1xx response with framing fields")
        response.complete = True
    lengths = response.values(b"content-length")
    codings = response.values(b"transfer-encoding")
    if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
        raise BadResponse(f"content-length {lengths}")
    if lengths and codings:
        raise BadResponse("both content-length and transfer-encoding")
    if codings and (codings != [b"chunked"] or response.status == 204):
        raise BadResponse(f"transfer-encoding {codings}")
    if response.status == 204 and lengths:
        raise BadResponse("content-length in a 204")
    if method == "HEAD" or response.status in (204, 304):
        response.complete = True
        return responses, rest
    if codings:
        response.framing = "chunked"
        parts = []
        while True:
            line_end = rest.find(b"\r\n")
            if line_end < 0:
                return responses, b""
            size_text = rest[:line_end]
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise BadResponse(f"bad chunk size line {size_text!r}")
            size = int(size_text, 16)
            if size == 0:
                if rest[line_end : line_end + 4] == b"\r\n\r\n":
                    response.body, response.complete = b"".join(parts), True
                    return responses, rest[line_end + 4 :]
                if len(rest) >= line_end + 4:
                    raise BadResponse(f"bad last chunk {rest[: line_end + 4]!r}")
                return responses, b""
            chunk_end = line_end + 2 + size
            if len(rest) < chunk_end + 2:
                return responses, b""
            if rest[chunk_end : chunk_end + 2] != b"\r\n":
                raise BadResponse("a chunk not followed by CRLF")
            parts.append(rest[line_end + 2 : chunk_end])
            response.body = b"".join(parts)
            rest = rest[chunk_end + 2 :]
    if lengths:
        response.framing = "length"
        length = int(lengths[0])
        response.body = rest[:length]
        response.complete = len(rest) >= length
        return responses, rest[length:]
    response.framing = "close"
    response.body = rest
    response.complete = eof
    return responses, b""


@dataclass
class AppMessage:
    """One message from the app: a start (status, headers) or a body chunk."""

    start: bool
    content: bytes = b""
    more: bool = False
    status: Any = 200
    headers: Any = ()


DATE = b"Thu, 01 Jan 1970 00:00:00 GMT"


def header_defaults(server: bool = True, date: bool = True, extra: Sequence[Any] = ()) -> Any:
    defaults = HeaderDefaults(server_header=server, date_header=date, extra=extra)
    defaults.set_date(DATE)
    return defaults


@dataclass
class ResponseRun:
    """A ``Response`` driven by app messages the way the request cycle drives it."""

    method: str = "GET"
    version: str = "1.1"
    keep_alive: bool = True
    defaults: Any = None
    response: Response = field(init=False)
    wire: list[bytes] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    final: AppMessage | None = None  # the start that began the final response
    content: list[bytes] = field(default_factory=list)  # body bytes the app sent, accepted
    broken: bool = False  # the app broke its content-length mid-body: the connection closes

    def __post_init__(self) -> None:
        if self.defaults is None:
            self.defaults = header_defaults()
        self.response = Response(
            self.defaults, self.method == "HEAD", self.version, self.keep_alive
        )

    def send(self, message: AppMessage) -> None:
        r = self.response
        state = r.state
        try:
            if message.start:
                out = r.start(message.status, message.headers, message.content, message.more)
            else:
                out = r.body(message.content, message.more)
        except (TypeError, ValueError) as exc:
            if not message.start:
                fail(f"body() raised {exc!r}: only RuntimeError is expected there")
            if r.state is not state:
                fail(f"start() raised {exc!r} but left state {state} for {r.state}")
            self.errors.append(exc)
            return
        except RuntimeError as exc:
            self.errors.append(exc)
            if message.start or state is not ResponseState.STREAMING:
                if r.state is not state:
                    fail(f"RuntimeError {exc!r} changed the state from {state} to {r.state}")
                return
            # A body that broke the app's content-length: the response is abandoned.
            if r.state is not ResponseState.DONE or r.keep_alive:
                fail("a broken content-length left the connection reusable")
            self.broken = True
            return
        if type(out) is not bytes:
            fail(f"{'start' if message.start else 'body'}() returned {out!r}")
        if message.start:
            if state is not ResponseState.IDLE:
                fail(f"start() accepted in state {state}")
            status = int(message.status)
            if status < 200:
                if r.state is not ResponseState.IDLE:
                    fail("an interim response left IDLE")
                if self.version == "1.0" and out:
                    fail("a 1xx response sent to an HTTP/1.0 client")
            else:
                self.final = message
                self.content.append(message.content)
        else:
            if state is not ResponseState.STREAMING:
                fail(f"body() accepted in state {state}")
            self.content.append(message.content)
        expected = ResponseState.STREAMING if message.more else ResponseState.DONE
        if self.final is not None and r.state is not expected:
            fail(f"state {r.state} after a message with more={message.more}")
        self.wire.append(out)

    def check(self) -> list[ParsedResponse]:
        """Read the bytes back as the client would, and check them against what the app
        sent. Returns the parsed responses (interim ones, then the final one)."""
        r = self.response
        data = b"".join(self.wire)
        done = r.state is ResponseState.DONE and not self.broken
        if self.final is None:
            if r.state is not ResponseState.IDLE:
                fail(f"state {r.state} without a final response")
            # The cycle answers 500 (an app error, or no response at all).
            data += simple_response(self.defaults, 500, head=self.method == "HEAD")
            done = True
        # The worker closes the connection unless the response completed and keeps it alive.
        eof = not (done and r.keep_alive)
        try:
            responses, rest = read_response(data, self.method, eof)
        except BadResponse as exc:
            fail(f"malformed response ({exc}):\n{data!r}")
            raise
        if not responses:
            fail(f"no response in {data!r}")
        final = responses[-1]
        interims = responses[:-1]
        if self.version == "1.0" and interims:
            fail("interim responses sent to an HTTP/1.0 client")
        if rest:
            fail(f"bytes after the response: {rest[:100]!r}")
        if self.final is None:
            if final.status != 500 or not final.complete:
                fail(f"the cycle's 500 did not parse: {data!r}")
            return responses
        if final.status != int(self.final.status):
            fail(f"status {final.status}, the app sent {self.final.status!r}")
        self._check_fields(final, data)
        no_body = self.method == "HEAD" or final.status in (204, 304)
        sent = b"" if no_body else b"".join(self.content)
        if done and not final.complete:
            fail(f"a completed response reads as incomplete ({final.framing}):\n{data!r}")
        if final.complete and final.body != sent:
            fail(f"body {final.body[:80]!r} framed, the app sent {sent[:80]!r}:\n{data!r}")
        if not final.complete and not sent.startswith(final.body):
            fail(f"body {final.body[:80]!r} is no prefix of what the app sent {sent[:80]!r}")
        lengths = final.values(b"content-length")
        if lengths and not no_body and done and int(lengths[0]) != len(sent):
            fail(f"content-length {lengths[0]!r} for {len(sent)} bytes")
        if final.framing == "chunked" and self.version == "1.0":
            fail("chunked sent to an HTTP/1.0 client")
        connection = {
            o.strip(b" \t").lower() for v in final.values(b"connection") for o in v.split(b",")
        }
        if done and r.keep_alive:
            if not self.keep_alive:
                fail("keep_alive although the request did not allow it")
            if final.framing == "close":
                fail("keep_alive with a close-delimited body")
            if b"close" in connection:
                fail("keep_alive while saying Connection: close")
            if self.version == "1.0" and b"keep-alive" not in connection:
                fail("keep_alive to an HTTP/1.0 client without Connection: keep-alive")
        elif done and b"close" not in connection:
            fail("the connection closes after the response without Connection: close")
        return responses

    def _check_fields(self, final: ParsedResponse, data: bytes) -> None:
        """Every header line is one the app sent or one the server adds; nothing injected,
        nothing of the app's lost (but Transfer-Encoding, and Content-Length where forbidden)."""
        assert self.final is not None
        status = int(self.final.status)
        wanted: list[tuple[bytes, bytes]] = []
        app_names = set()
        length_seen = False
        for name, value in self.final.headers:
            lower = bytes(name).lower()
            app_names.add(lower)
            if lower == b"transfer-encoding":
                continue
            if lower == b"content-length":
                if status == 204 or length_seen:
                    continue
                length_seen = True
            wanted.append((lower, bytes(value).strip(b" \t")))
        seen = list(final.headers)
        for item in wanted:
            if item not in seen:
                fail(f"the app's header {item!r} is missing:\n{data!r}")
            seen.remove(item)
        allowed = {
            (b"transfer-encoding", b"chunked"),
            (b"connection", b"close"),
            (b"connection", b"keep-alive"),
        }
        if b"date" not in app_names:
            allowed.add((b"date", DATE))
        if b"server" not in app_names:
            allowed.add((b"server", b"uvicorn"))
        if not length_seen:
            allowed.add((b"content-length", b"%d" % len(self.final.content)))
        for item in self.defaults._extra:
            name, line = item
            if name not in (b"date", b"server") or name not in app_names:
                allowed.add((name, line.partition(b": ")[2][:-2]))
        for item in seen:
            if item not in allowed:
                fail(f"header line {item!r} neither the app's nor the server's:\n{data!r}")
            allowed.discard(item)


# WebSocket.

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
WS_HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)
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
