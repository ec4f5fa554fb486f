"""Invariants of ``RequestParser`` (uvicorn/protocols/http_parser.py), checked on any input.

``ParserRun`` feeds the parser in pieces, as the connection does, and checks after every
``receive_data``: events follow the grammar of a connection, every ``RequestHead`` obeys the
limits and RFC 9112's rules (``check_head``), buffers stay bounded, nothing comes after a
``BadRequest``, an ``Upgrade``, HTTP/2's ``Preface`` or the last request. ``compare_splits``
says whether two ways of splitting the same bytes gave the same events;
``check_request_stream`` does all of it for one input. The parser is what stands between the
network and the app: a head that breaks the RFC's rules, or a request framed differently
depending on how its bytes arrived, is what request smuggling is made of, and unbounded buffers
let a client hold the server's memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.protocols.invariants import KNOWN_DEFECTS, chunks_at, fail
from uvicorn.protocols import http_parser
from uvicorn.protocols.http_parser import (
    END_OF_REQUEST,
    BadRequest,
    Body,
    Limits,
    ParserState,
    Preface,
    RequestHead,
    RequestParser,
    Upgrade,
)

# The two answers a request line llhttp reads as HTTP/0.9 gets (505 for "HTTP/0.9", 400
# without a version): compare_splits lets them differ by split while that is a known defect.
HTTP09_REASONS = frozenset({"no HTTP version in the request line", "HTTP/0.9 is not supported"})
# The most requests one receive_data() call may complete.
PIPELINE_BATCH: int = getattr(http_parser, "PIPELINE_BATCH", 2**31)
# The reasons the parser gives for a method llhttp refused.
METHOD_REASONS = frozenset({"malformed request line", "unsupported method"})


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
    if isinstance(event, Preface):
        return ("preface", event.data)
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
    # (A class mypyc compiled has no __slots__: its fields are its __mypyc_attrs__.)
    for name in getattr(RequestHead, "__slots__", None) or RequestHead.__mypyc_attrs__:
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
    (or HTTP/2's Preface) added to its data, as the connection hands them to the new
    protocol."""

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
            if self.phase == "upgraded":  # (an Upgrade's or a Preface's)
                kind, data = self.events[-1]
                self.events[-1] = (kind, data + chunk)
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
        elif isinstance(event, Preface):
            # HTTP/2's preface where a request may begin (RFC 9113 section 3.4): the parser
            # hands the connection over with what followed it.
            if phase != "head" or following:
                fail(f"a Preface while in {phase}, or not last")
            if type(event.data) is not bytes:
                fail("Preface data is not bytes")
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
