"""Property tests of the HTTP/1.1 cores, on inputs Hypothesis builds: valid requests parse into
exactly what was built, however the bytes are split; broken ones get a 4xx/5xx BadRequest and
never an exception; responses framed by ``Response`` read back as exactly what the app sent.
The invariants are those of ``invariants.py``, which the fuzz harnesses (fuzz/) check too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.protocols.invariants import Violation
from tests.protocols.invariants_http import ParserRun, check_request_stream, compare_splits
from tests.protocols.invariants_response import AppMessage, ResponseRun, header_defaults
from uvicorn.protocols.http_parser import Limits, RequestParser

# Deterministic (the same examples on every run, in CI too) and quick: the whole module stays
# within a few seconds.
settings.register_profile(
    "uvicorn-protocols",
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("uvicorn-protocols")

# Requests.

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
SPECIAL = {
    b"host",
    b"content-length",
    b"transfer-encoding",
    b"connection",
    b"expect",
    b"upgrade",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"forwarded",
}
PCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@"
field_names = (
    st.text(TCHARS, min_size=1, max_size=12)
    .map(lambda s: s.encode())
    .filter(lambda n: n.lower() not in SPECIAL)
)
# field-value = *field-content: visible characters and obs-text, inner SP/HTAB.
VCHARS = [*range(0x21, 0x7F), 0x80, 0xE9, 0xFF]
words = st.lists(st.sampled_from(VCHARS), min_size=1, max_size=6).map(bytes)
field_values = st.just(b"") | st.lists(
    st.tuples(words, st.sampled_from([b" ", b"\t", b" \t "])), min_size=1, max_size=3
).map(lambda pairs: b"".join(w + sep for w, sep in pairs[:-1]) + pairs[-1][0])
ows = st.sampled_from([b"", b" ", b"\t", b" \t "])
segments = st.lists(
    st.text(PCHARS, max_size=6).map(lambda s: s.encode())
    | st.sampled_from([b"%20", b"%2F", b"%C3%A9", b"%00"]),
    max_size=4,
)
queries = st.none() | st.text(PCHARS + "/?", max_size=12).map(lambda s: s.encode())
hosts = st.sampled_from(
    [b"example.com", b"example.com:8000", b"127.0.0.1", b"[::1]:80", b"a_b.example.", b""]
)


# RFC 9112 section 7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
CHUNK_EXTENSIONS = [b"", b";a", b";name=value", b';q="x; y"', b" ; a = b", b";\tq"]


@dataclass
class Built:
    data: bytes
    expected: list[tuple[Any, ...]]
    last: bool  # the request ends the connection


@st.composite
def requests(draw: st.DrawFn, version: str | None = None) -> Built:
    """One valid request, and the events it must give."""
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]))
    version = version or draw(st.sampled_from(["1.0", "1.1"]))
    path = b"/" + b"/".join(draw(segments))
    query = draw(queries)
    target = path + (b"?" + query if query is not None else b"")
    lines = [b"%s %s HTTP/%s" % (method.encode(), target, version.encode())]
    headers: list[tuple[bytes, bytes]] = []
    fields = draw(st.lists(st.tuples(field_names, field_values, ows, ows), max_size=5))
    if version == "1.1" or draw(st.booleans()):
        at = draw(st.integers(0, len(fields)))
        fields.insert(
            at, (draw(st.sampled_from([b"Host", b"host", b"HOST"])), draw(hosts), b" ", b"")
        )
    connection = draw(st.sampled_from([None, b"close", b"keep-alive", b"Keep-Alive, x-other"]))
    if connection is not None:
        fields.append((b"Connection", connection, b" ", b""))
    framing = draw(
        st.sampled_from(["none", "length", "chunked"] if version == "1.1" else ["none", "length"])
    )
    content = draw(st.binary(max_size=40)) if framing != "none" else b""
    body_bytes = b""
    if framing == "length":
        fields.append((b"Content-Length", b"%d" % len(content), b" ", b""))
        body_bytes = content
    elif framing == "chunked":
        fields.append((b"Transfer-Encoding", b"chunked", b" ", b""))
        cuts = sorted(draw(st.lists(st.integers(0, len(content)), max_size=3)))
        pieces = [content[a:b] for a, b in zip([0, *cuts], [*cuts, len(content)], strict=False)]
        for piece in pieces:
            if piece:
                ext = draw(st.sampled_from(CHUNK_EXTENSIONS))
                size = draw(st.sampled_from([b"%x", b"%X", b"0%x"])) % len(piece)
                body_bytes += size + ext + b"\r\n" + piece + b"\r\n"
        body_bytes += b"0\r\n"
        for name, value, _, _ in draw(
            st.lists(st.tuples(field_names, field_values, ows, ows), max_size=2)
        ):
            body_bytes += name + b": " + value + b"\r\n"  # trailers: never in the headers
        body_bytes += b"\r\n"
    for name, value, before, after in fields:
        lines.append(name + b":" + before + value + after)
        headers.append((name.lower(), value))
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body_bytes
    options = {o.strip().lower() for o in (connection or b"").split(b",")}
    keep_alive = b"close" not in options and (version == "1.1" or b"keep-alive" in options)
    head = (
        "head",
        method,
        path,
        query or b"",
        version,
        tuple(headers),
        keep_alive,
        False,
        None,
        False,
    )
    expected = [head] + ([("body", content)] if content else []) + [("end",)]
    return Built(data, expected, not keep_alive)


@st.composite
def pipelines(draw: st.DrawFn) -> Built:
    """Up to three pipelined requests (what follows one that closes is never parsed)."""
    data, expected = b"", []
    for _ in range(draw(st.integers(1, 3))):
        built = draw(requests())
        data += draw(st.sampled_from([b"", b"", b"\r\n"])) + built.data
        expected += built.expected
        if built.last:
            data += draw(st.sampled_from([b"", b"GET / HTTP/1.1\r\n\r\n", b"garbage"]))
            break
    return Built(data, expected, False)


cut_lists = st.lists(st.integers(0, 4096), max_size=12)


@PROFILE
@given(pipelines(), cut_lists)
def test_valid_requests_parse_into_what_was_built(built: Built, cuts: list[int]) -> None:
    whole, split = check_request_stream(built.data, cuts)
    assert whole.events == built.expected
    assert split.events == built.expected


@PROFILE
@given(requests(), st.data())
def test_valid_request_fed_byte_by_byte(built: Built, data: st.DataObject) -> None:
    limits = data.draw(
        st.sampled_from([Limits(), Limits(request_line=512, fields=8, field_size=256)])
    )
    whole, split = check_request_stream(built.data, range(len(built.data)), limits)
    assert whole.events == split.events == built.expected


NASTY = [b"\r", b"\n", b"\r\n", b"\0", b" ", b"\t", b":", b"\x7f", b"\xff", b"0", b";", b","]


@st.composite
def broken(draw: st.DrawFn) -> bytes:
    """A valid pipeline with a few bytes inserted, deleted or replaced."""
    data = bytearray(draw(pipelines()).data)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        nasty = draw(st.sampled_from(NASTY) | st.binary(min_size=1, max_size=3))
        if action == "insert":
            data[at:at] = nasty
        elif action == "delete":
            del data[at : at + len(nasty)]
        else:
            data[at : at + len(nasty)] = nasty
    return bytes(data)


@PROFILE
@given(broken(), cut_lists, st.sampled_from([frozenset(), frozenset({b"websocket"})]))
def test_broken_requests_never_raise_and_keep_the_invariants(
    data: bytes, cuts: list[int], upgrades: frozenset[bytes]
) -> None:
    whole, _ = check_request_stream(data, cuts, Limits(), upgrades)
    if whole.phase == "failed":
        assert whole.events[-1][0] == "bad" and 400 <= whole.events[-1][1] <= 599


@PROFILE
@given(st.binary(max_size=300), cut_lists, st.sampled_from([Limits(), Limits(16, 2, 24)]))
def test_any_bytes_never_raise(data: bytes, cuts: list[int], limits: Limits) -> None:
    check_request_stream(data, cuts, limits, frozenset({b"websocket"}))


# Invalid requests with a known answer.

H = b"Host: example.com\r\n"


@PROFILE
@given(requests(version="1.1"), st.data())
def test_invalid_framing_fields_are_refused(built: Built, data: st.DataObject) -> None:
    head, sep, rest = built.data.partition(b"\r\n\r\n")
    extra, status = data.draw(
        st.sampled_from(
            [
                (b"Content-Length: 1\r\nContent-Length: 2", 400),
                (b"Content-Length: -1", 400),
                (b"Transfer-Encoding: gzip", 501),
                (b"Host: a b", 400),
                (b"X Y: 1", 400),
                (b"X-A: a\x01b", 400),
            ]
        )
    )
    if extra.startswith(b"Transfer") and b"Content-Length" in head:
        status = 400  # both framings
    request = head + b"\r\n" + extra + sep + rest
    whole, _ = check_request_stream(request, data.draw(cut_lists))
    assert whole.events == [("bad", status)]


@PROFILE
@given(st.sampled_from([b"2.0", b"1.2", b"3.0", b"0.9"]), cut_lists)
def test_unsupported_versions_are_505(version: bytes, cuts: list[int]) -> None:
    whole, _ = check_request_stream(b"GET / HTTP/" + version + b"\r\n" + H + b"\r\n", cuts)
    assert whole.events == [("bad", 505)]


# Defects: each a minimal reproducer; the known ones fail until their fix lands.


# Fixed while this was written (they were refused with 400, and answered 505).


@pytest.mark.parametrize(
    "ext", [b"; name=value", b";name = value", b" ;name=value", b";name\t=\tv"]
)
def test_chunk_extension_with_bws_is_accepted(ext: bytes) -> None:
    data = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
    data += b"5" + ext + b"\r\nhello\r\n0\r\n\r\n"
    whole, _ = check_request_stream(data, [len(data) - 9])
    assert whole.events[1:] == [("body", b"hello"), ("end",)]


def test_request_line_without_version_is_400() -> None:
    whole, _ = check_request_stream(b"GET /\r\n" + H + b"\r\n", [3])
    assert whole.events == [("bad", 400)]


@pytest.mark.parametrize("size", [400, 4000, 65536])
def test_an_unfinished_head_holds_no_more_fields_than_the_limit(size: int) -> None:
    limits = Limits()
    parser = RequestParser(limits)
    parser.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n")
    for _ in range(12):
        assert parser.receive_data(b"a:\r\n" * (size // 4)) == []  # within head_size
        # Beyond `fields` fields the request can only be refused: holding more is waste (but
        # one, which says so).
        assert len(parser._headers) <= limits.fields + 1
    events = parser.receive_data(b"\r\n")
    assert [(type(e).__name__, e.status) for e in events] == [("BadRequest", 431)]


def test_refused_method_status_does_not_depend_on_the_split() -> None:
    whole = ParserRun().feed_all([b"j,"])
    split = ParserRun().feed_all([b"j", b","])
    assert whole.events == split.events


@pytest.mark.xfail(strict=True, reason="a bare CR before a request line is skipped like an "
                   "empty line; RFC 9112 2.2: a bare CR is invalid")  # fmt: skip
@pytest.mark.parametrize("before", [b"\r", b"\r\r", b"\n\r"])
def test_a_bare_cr_before_a_request_line_is_refused(before: bytes) -> None:
    request = b"GET / HTTP/1.1\r\n" + H + b"\r\n"
    whole, _ = check_request_stream(before + request, [])
    assert whole.events == [("bad", 400)]
    whole, _ = check_request_stream(request + before + request, [])  # pipelined
    assert whole.events[2:] == [("bad", 400)]


def test_one_bad_request_at_most() -> None:
    parser = RequestParser(Limits(request_line=64, fields=4, field_size=64))
    data = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
    events = parser.receive_data(data + b"0\r\nX-A: a\x00b\r\n" + b"v" * 200)
    assert [type(e).__name__ for e in events] == ["RequestHead", "BadRequest"]


@pytest.mark.parametrize("pipelined", [False, True])
def test_http09_status_does_not_depend_on_the_split(pipelined: bool) -> None:
    request = b"GET /" + b"a" * 40 + b" HTTP/0.9\r\n\r\n"
    before = b"GET / HTTP/1.1\r\n" + H + b"\r\n" if pipelined else b""
    whole = ParserRun().feed_all([before + request])
    split = ParserRun().feed_all([before + request[:10], request[10:]])
    assert whole.events[-1] == split.events[-1] == ("bad", 505)


@given(st.binary(max_size=40), st.lists(st.integers(0, 120), max_size=6), st.booleans())
@settings(max_examples=60, deadline=None, derandomize=True)
def test_http2_preface_hands_the_connection_over(
    after: bytes, cuts: list[int], pipelined: bool
) -> None:
    # RFC 9113 section 3.4, prior knowledge: the invariants know the Preface event (the fuzz
    # harness's seeds hold the preface; until they did, its first seed failed on it).
    before = b"GET / HTTP/1.1\r\n" + H + b"\r\n" if pipelined else b""
    data = before + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + after
    whole, split = check_request_stream(data, cuts)
    assert whole.events[-1] == split.events[-1] == ("preface", after)
    assert whole.phase == split.phase == "upgraded"


def test_the_checks_catch_a_split_dependence() -> None:
    # The comparison itself: a difference that is no accumulation limit is reported.
    whole, split = ParserRun(), ParserRun()
    whole.events, split.events = [("bad", 400)], [("bad", 505)]
    whole.phase = split.phase = "failed"
    with pytest.raises(Violation):
        compare_splits(whole, split)


# Responses.

safe_names = st.sampled_from([b"content-type", b"X-A", b"set-cookie", b"etag", b"vary"])
safe_values = st.binary(max_size=10).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F))
statuses = st.sampled_from([200, 201, 204, 206, 299, 301, 304, 404, 418, 500, 503, 599])


@st.composite
def app_responses(draw: st.DrawFn) -> tuple[ResponseRun, list[AppMessage]]:
    run = ResponseRun(
        method=draw(st.sampled_from(["GET", "HEAD", "POST"])),
        version=draw(st.sampled_from(["1.0", "1.1"])),
        keep_alive=draw(st.booleans()),
        defaults=draw(
            st.sampled_from([header_defaults(), header_defaults(False, False, [(b"x-e", b"1")])])
        ),
    )
    messages = [
        AppMessage(True, status=status, headers=[[b"link", b"</a>"]])
        for status in draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2))
    ]
    chunks = draw(st.lists(st.binary(max_size=20), min_size=1, max_size=4))
    headers = [[n, v] for n, v in draw(st.lists(st.tuples(safe_names, safe_values), max_size=4))]
    choice = draw(st.sampled_from(["none", "length", "close", "keep-alive"]))
    if choice == "length":
        headers.append([b"Content-Length", b"%d" % sum(map(len, chunks))])
    elif choice != "none":
        headers.append([b"connection", choice.encode()])
    status = draw(statuses)
    messages.append(AppMessage(True, chunks[0], len(chunks) > 1, status, headers))
    messages += [AppMessage(False, c, i < len(chunks) - 2) for i, c in enumerate(chunks[1:])]
    return run, messages


def httptools_reading(run: ResponseRun, close_delimited: bool) -> tuple[int, bytes, bool]:
    """The final response as httptools (llhttp) reads it: status, body, complete. (httptools
    cannot be told of the end of the stream: a close-delimited body is complete at the end.)"""
    got: dict[str, Any] = {"body": b"", "complete": False, "status": 0}

    class Callbacks:
        def on_headers_complete(self) -> None:
            got["status"] = parser.get_status_code()

        def on_body(self, body: bytes) -> None:
            got["body"] += body

        def on_message_complete(self) -> None:
            if got["status"] >= 200:
                got["complete"] = True

    parser = httptools.HttpResponseParser(Callbacks())
    parser.feed_data(b"".join(run.wire))
    return got["status"], got["body"], got["complete"] or close_delimited


@PROFILE
@given(app_responses())
def test_responses_read_back_as_what_the_app_sent(
    case: tuple[ResponseRun, list[AppMessage]],
) -> None:
    run, messages = case
    for message in messages:
        run.send(message)
    assert not run.errors, run.errors
    final = run.check()[-1]
    sent = b"".join(m.content for m in messages if m.status >= 200 or not m.start)
    no_body = run.method == "HEAD" or final.status in (204, 304)
    assert final.complete and final.body == (b"" if no_body else sent)
    if run.method != "HEAD":
        reading = httptools_reading(run, final.framing == "close")
        assert reading == (final.status, final.body, True)


odd_names = st.sampled_from(
    [b"content-length", b"Connection", b"transfer-encoding", b"date", b"x-a", "str", None, 1]
) | st.binary(max_size=5)
odd_values = st.sampled_from([b"close", b"5", b"0", b"chunked", "text", None, bytearray(b"x")]) | (
    st.binary(max_size=8)
)
odd_headers = st.lists(st.tuples(odd_names, odd_values).map(list), max_size=4) | st.sampled_from(
    [None, "x", [[b"a"]], [(b"a", b"1", b"2")]]
)
odd_messages = st.builds(
    AppMessage,
    st.booleans(),
    st.binary(max_size=12),
    st.booleans(),
    st.sampled_from([200, 204, 304, 100, 103, 101, 99, 600, True, "200", 200.0]) | st.integers(),
    odd_headers,
)


@PROFILE
@given(st.sampled_from(["GET", "HEAD"]), st.sampled_from(["1.0", "1.1"]), st.booleans(),
       st.lists(odd_messages, min_size=1, max_size=6))  # fmt: skip
def test_any_app_messages_raise_the_documented_errors_or_frame_correctly(
    method: str, version: str, keep_alive: bool, messages: list[AppMessage]
) -> None:
    run = ResponseRun(method, version, keep_alive)
    for message in messages:
        run.send(message)  # raises Violation for any other exception or a wrong state
    run.check()


def test_a_response_body_that_breaks_its_content_length_reads_as_truncated() -> None:
    run = ResponseRun()
    run.send(AppMessage(True, b"abc", True, 200, [[b"content-length", b"5"]]))
    run.send(AppMessage(False, b"def", False))
    assert run.broken and isinstance(run.errors[0], RuntimeError)
    final = run.check()[-1]
    assert not final.complete and final.body == b"abc"


def test_the_checks_catch_an_injected_header_line() -> None:
    run = ResponseRun()
    run.send(AppMessage(True, b"hi", False, 200, [[b"x-a", b"1"]]))
    run.wire[0] = run.wire[0].replace(b"x-a: 1\r\n", b"x-a: 1\r\nx-injected: 1\r\n")
    with pytest.raises(Violation, match="neither the app's nor the server's"):
        run.check()


def test_too_many_fields_then_another_error_is_the_same_whatever_the_split() -> None:
    # The first error in the head wins, as fed whole: a field count over the limit is reported
    # when the head is whole, not when a piece of it happens to end (found by fuzzing).
    head = b"GET / HTTP/1.1\r\n" + H + b"a: b\r\n" * 150 + b"Host: bad host\r\n\r\n"
    whole, _ = check_request_stream(head, list(range(1, len(head))))
    assert whole.events == [("bad", 400)]


def test_a_refused_method_that_began_right_after_a_request_in_the_same_read() -> None:
    # The request's first byte came with the end of the one before; its start is found where
    # that one's head ended, not where the bytes after it end (found by fuzzing).
    data = b"GET /1 HTTP/1.1\r\n" + H + b"\r\nPOST\r\x07GET /1 HTTP/1.1\r\n"
    end = data.index(b"POST")
    whole, _ = check_request_stream(data, [end - 1, end + 1, end + 9])
    assert whole.events[-1] == ("bad", 400)


@pytest.mark.parametrize(
    "fields, expected",
    [
        (b"Expect: 100-continue\r\n", True),
        (b"Expect: 100-Continue\r\nExpect: 100-continue\r\n", True),
        (b"Expect: 100-continue\r\nExpect: 100-continum\r\n", False),  # found by fuzzing
        (b"Expect: 100-continum\r\nExpect: 100-continue\r\n", False),  # either order
        (b"Expect: 100-continue, x-other\r\n", False),
    ],
)
def test_100_continue_only_when_it_is_the_only_expectation(fields: bytes, expected: bool) -> None:
    # RFC 9110 section 10.1.1: Expect = #expectation; we know 100-continue only.
    head = b"POST / HTTP/1.1\r\n" + H + fields + b"Content-Length: 1\r\n\r\nx"
    (request, *_) = RequestParser().receive_data(head)
    assert request.expect_continue is expected  # type: ignore[union-attr]
