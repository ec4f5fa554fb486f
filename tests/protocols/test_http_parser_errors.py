"""RequestParser on bad input: every violation gets its RFC 9112 status, and nothing after it."""

from __future__ import annotations

import pytest

from tests.protocols.parsing import END, HOST, Head, bad, body, feed, feed_all, reason, split
from uvicorn.protocols.http_parser import BadRequest, Limits, ParserState, RequestParser

H = b"Host: example.com\r\n"
GET = b"GET / HTTP/1.1\r\n"
POST = b"POST / HTTP/1.1\r\n" + H


def expect_bad(data: bytes, status: int, **kw: object) -> None:
    """``data`` gets exactly one BadRequest(status), before any other event."""
    assert feed_all(data, **kw) == [bad(status)]
    # Whatever follows is not parsed.
    parser = RequestParser(**kw)  # type: ignore[arg-type]
    parser.receive_data(data)
    assert parser.state is ParserState.FAILED
    assert parser.receive_data(GET + H + b"\r\n") == []


BAD_REQUESTS = {
    # Malformed request lines (RFC 9112 section 3).
    "no space after method": (b"GET/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    "tab after method": (b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    "leading space": (b" GET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    "no method": (b"/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    "control in method": (b"G\x01T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    "tls handshake": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
    "space in target": (b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    "no target": (b"GET  HTTP/1.1\r\n" + H + b"\r\n", 400),
    "lower-case protocol": (b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    "junk after version": (b"GET / HTTP/1.1x\r\n" + H + b"\r\n", 400),
    "version without dot": (b"GET / HTTP/11\r\n" + H + b"\r\n", 400),
    "relative target": (b"GET index.html HTTP/1.1\r\n" + H + b"\r\n", 400),
    "authority form without CONNECT": (b"GET example.com:80 HTTP/1.1\r\n" + H + b"\r\n", 400),
    "asterisk without OPTIONS": (b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    "asterisk with more": (b"OPTIONS *x HTTP/1.1\r\n" + H + b"\r\n", 400),
    "absolute form bad port": (b"GET http://x:99999/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    "absolute form no host": (b"GET http:///p HTTP/1.1\r\n" + H + b"\r\n", 400),
    "absolute form unclosed ipv6": (b"GET http://[::1/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    "absolute form userinfo": (b"GET http://user:pw@x/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    "NUL in target": (b"GET /\x00 HTTP/1.1\r\n" + H + b"\r\n", 400),
    "DEL in target": (b"GET /\x7f HTTP/1.1\r\n" + H + b"\r\n", 400),
    # Invalid header fields (RFC 9112 section 5, RFC 9110 section 5).
    "control in name": (GET + H + b"X\x01Y: 1\r\n\r\n", 400),
    "space in name": (GET + H + b"X Y: 1\r\n\r\n", 400),
    "space before colon": (GET + H + b"X-A : 1\r\n\r\n", 400),
    "tab before colon": (GET + H + b"X-A\t: 1\r\n\r\n", 400),
    "empty name": (GET + H + b": 1\r\n\r\n", 400),
    "no colon": (GET + H + b"X-A\r\n\r\n", 400),
    "control in value": (GET + H + b"X-A: a\x01b\r\n\r\n", 400),
    "DEL in value": (GET + H + b"X-A: a\x7fb\r\n\r\n", 400),
    "NUL in value": (GET + H + b"X-A: a\x00b\r\n\r\n", 400),
    "whitespace before first field": (GET + b" Host: example.com\r\n\r\n", 400),
    "obs-fold": (GET + H + b"X-A: a\r\n b\r\n\r\n", 400),
    "obs-fold with tab": (GET + H + b"X-A: a\r\n\tb\r\n\r\n", 400),
    # Line endings (RFC 9112 section 2.2): no bare LF, no bare CR.
    "bare LF after request line": (b"GET / HTTP/1.1\n" + H + b"\r\n", 400),
    "bare LF everywhere": (b"GET / HTTP/1.1\nHost: example.com\n\n", 400),
    "bare LF after field": (GET + b"Host: example.com\n\r\n", 400),
    "bare LF ending head": (GET + H + b"\n", 400),
    "bare CR after request line": (b"GET / HTTP/1.1\rHost: example.com\r\n\r\n", 400),
    "bare CR in value": (GET + b"Host: example.com\rX: 1\r\n\r\n", 400),
    # Host (RFC 9112 section 3.2).
    "missing Host": (GET + b"\r\n", 400),
    "duplicate Host": (GET + H + b"Host: other.example\r\n\r\n", 400),
    "duplicate Host, same value": (GET + H + H + b"\r\n", 400),
    "duplicate Host in HTTP/1.0": (b"GET / HTTP/1.0\r\n" + H + H + b"\r\n", 400),
    "Host with space": (GET + b"Host: a b\r\n\r\n", 400),
    "Host with path": (GET + b"Host: example.com/x\r\n\r\n", 400),
    "Host with userinfo": (GET + b"Host: u@example.com\r\n\r\n", 400),
    "Host with bad port": (GET + b"Host: example.com:8o\r\n\r\n", 400),
    # Content-Length and Transfer-Encoding (RFC 9112 section 6).
    "conflicting Content-Length": (POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    "duplicate Content-Length": (POST + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\na", 400),
    "Content-Length list": (POST + b"Content-Length: 1, 1\r\n\r\na", 400),
    "signed Content-Length": (POST + b"Content-Length: +1\r\n\r\na", 400),
    "hex Content-Length": (POST + b"Content-Length: 0x1\r\n\r\na", 400),
    "Content-Length overflow": (POST + b"Content-Length: 99999999999999999999999\r\n\r\n", 400),
    "Content-Length and chunked": (
        POST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "chunked and Content-Length": (
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        400,
    ),
    "Transfer-Encoding in HTTP/1.0": (
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "chunked not final": (POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    "chunked twice": (
        POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    "unknown transfer coding": (POST + b"Transfer-Encoding: gzip\r\n\r\n", 501),
    "identity transfer coding": (POST + b"Transfer-Encoding: identity\r\n\r\n", 501),
    "unknown coding before chunked": (
        POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "unknown coding in another field": (
        POST + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    # Versions (RFC 9110 section 15.6.6): only HTTP/1.0 and HTTP/1.1 are served.
    "HTTP/0.9 (no version)": (b"GET /\r\n\r\n", 400),
    "HTTP/0.9 spelled out": (b"GET / HTTP/0.9\r\n\r\n", 505),
    "HTTP/1.2": (b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505),
    "HTTP/2.0 request line": (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    "HTTP/2 preface, then a header": (b"PRI * HTTP/2.0\r\nfoo: bar\r\n\r\n", 400),
    "HTTP/3.0": (b"GET / HTTP/3.0\r\n" + H + b"\r\n", 505),
    # Methods (RFC 9110 section 9.1): a well-formed method we do not implement gets 501.
    "unknown method": (b"BREW /pot HTTP/1.1\r\n" + H + b"\r\n", 501),
    "lower-case method": (b"get / HTTP/1.1\r\n" + H + b"\r\n", 501),
    "longer method": (b"GETS / HTTP/1.1\r\n" + H + b"\r\n", 501),
    "CONNECT": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
}


@pytest.mark.parametrize(("data", "status"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_request(data: bytes, status: int) -> None:
    expect_bad(data, status)


def test_reasons_name_the_problem() -> None:
    assert reason(GET + b"\r\n") == "missing Host header"
    assert reason(GET + H + H + b"\r\n") == "duplicate Host header"
    assert reason(GET + b"Host: a b\r\n\r\n") == "invalid Host header"
    assert reason(b"GET/ HTTP/1.1\r\n") == "malformed request line"
    assert reason(b"BREW / HTTP/1.1\r\n") == "unsupported method"
    assert reason(b"GET / HTTP/2.0\r\n\r\n") == "HTTP/2.0 is not supported"
    assert reason(POST + b"Transfer-Encoding: gzip\r\n\r\n") == "unsupported transfer coding"
    assert reason(b"GET * HTTP/1.1\r\n" + H + b"\r\n") == "invalid request target"


CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"
CHUNKED_HEAD = Head(method="POST", headers=[*HOST, [b"transfer-encoding", b"chunked"]])

BAD_BODIES = {
    "bad chunk size": (b"zz\r\nab\r\n0\r\n\r\n", b""),
    "space after chunk size": (b"3 \r\nabc\r\n0\r\n\r\n", b""),
    "negative chunk size": (b"-3\r\nabc\r\n0\r\n\r\n", b""),
    "chunk size overflow": (b"fffffffffffffffffff\r\n", b""),
    "chunk longer than its size": (b"3\r\nabcd\r\n0\r\n\r\n", b"abc"),
    "bare LF after chunk size": (b"3\nabc\r\n0\r\n\r\n", b""),
    "bare LF after chunk": (b"3\r\nabc\n0\r\n\r\n", b"abc"),
    "control in chunk extension": (b"1;\x01\r\na\r\n0\r\n\r\n", b""),
    "obs-fold in trailer": (b"0\r\nX-A: 1\r\n 2\r\n\r\n", b""),
}


@pytest.mark.parametrize(("chunks", "received"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_chunked_body_after_the_head(chunks: bytes, received: bytes) -> None:
    # The head was valid and was emitted; the body breaks the framing: 400, nothing after.
    expected = [CHUNKED_HEAD] + ([body(received)] if received else []) + [bad(400)]
    assert feed_all(CHUNKED + chunks + GET + H + b"\r\n") == expected


# Limits: 414 for the target, 431 for fields (RFC 9112 section 3, RFC 6585 section 5).

SMALL = Limits(request_line=64, fields=4, field_size=64)


def test_request_target_too_long() -> None:
    ok = b"GET /" + b"a" * 63 + b" HTTP/1.1\r\n" + H + b"\r\n"
    assert feed_all(ok, limits=SMALL) == [Head(raw_path=b"/" + b"a" * 63), END]
    expect_bad(b"GET /" + b"a" * 64 + b" HTTP/1.1\r\n" + H + b"\r\n", 414, limits=SMALL)
    assert reason(b"GET /" + b"a" * 64, limits=SMALL) == "request target too long"


def test_too_many_header_fields() -> None:
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(3))
    assert feed_all(GET + H + fields + b"\r\n", limits=SMALL)[-1] == END
    expect_bad(GET + H + fields + b"X-3: v\r\n\r\n", 431, limits=SMALL)
    assert reason(GET + H + fields + b"X-3: v\r\n\r\n", limits=SMALL) == "too many header fields"


def test_header_field_too_large() -> None:
    ok = GET + H + b"X-Name: " + b"v" * (64 - 6) + b"\r\n\r\n"
    assert feed_all(ok, limits=SMALL)[-1] == END
    too_large = GET + H + b"X-Name: " + b"v" * (64 - 5) + b"\r\n\r\n"
    expect_bad(too_large, 431, limits=SMALL)
    assert reason(too_large, limits=SMALL) == "header field too large"


def test_trailer_field_too_large() -> None:
    trailer = b"0\r\nX-Name: " + b"v" * 100 + b"\r\n\r\n"
    head = Head(method="POST", headers=[*HOST, [b"transfer-encoding", b"chunked"]])
    assert feed_all(CHUNKED + trailer, limits=SMALL) == [head, bad(400)]


def fed_before_failure(data: bytes, **kw: object) -> int:
    """How many bytes fed one at a time it takes the parser to answer BadRequest."""
    parser = RequestParser(**kw)  # type: ignore[arg-type]
    for i, chunk in enumerate(split(data, "bytewise")):
        events = parser.receive_data(chunk)
        if events:
            assert len(events) == 1 and isinstance(events[0], BadRequest), events
            return i + 1
    raise AssertionError("no BadRequest")


def test_field_trickled_byte_by_byte_is_refused_early() -> None:
    # httptools concatenates a field arriving piecemeal at quadratic cost, and buffers it until
    # it is complete: the parser must give up once it is longer than a field may be.
    data = GET + H + b"X-Big: " + b"v" * 1_000_000
    assert fed_before_failure(data) < len(GET + H) + Limits().field_size + 100
    assert feed(data[:20_000], "odd") == [bad(431)]


@pytest.mark.parametrize("rest", [b"0\r\nX-Big: ", b"1;ext="], ids=["trailer", "extension"])
def test_chunk_metadata_trickled_byte_by_byte_is_refused_early(rest: bytes) -> None:
    # A trailer field is buffered by httptools like a header field. (A chunk extension is not
    # buffered at all, llhttp skips it; one trickled past the same bound is refused too.)
    parser = RequestParser()
    assert len(parser.receive_data(CHUNKED)) == 1
    fed = 0
    for chunk in split(rest + b"v" * 1_000_000, "bytewise"):
        fed += 1
        if parser.receive_data(chunk):
            break
    assert parser.state is ParserState.FAILED
    assert fed < Limits().field_size + 100


def test_oversized_head_sent_slowly() -> None:
    # Each field is within the limits, but padding makes the head as a whole too large: 431 as
    # soon as it passes head_size, without buffering more.
    padded = b"X-Pad:" + b" " * 100 + b"v\r\n"
    data = GET + H + padded * 3
    head_size = SMALL.head_size
    assert len(data) > head_size
    assert feed_all(data, limits=SMALL) == [bad(431)]
    assert reason(data, limits=SMALL) == "request head too large"
    assert fed_before_failure(data, limits=SMALL) == head_size + 1


def test_endless_empty_lines_start_no_request() -> None:
    parser = RequestParser(limits=SMALL)
    for _ in range(1000):
        assert parser.receive_data(b"\r\n" * 100) == []
    assert parser.state is ParserState.IDLE
    assert len(parser.receive_data(GET + H + b"\r\n")) == 2


def test_bad_input_after_a_good_request() -> None:
    data = GET + H + b"\r\n" + b"GET / HTTP/1.1\r\nX-A : 1\r\n\r\n"
    assert feed_all(data) == [Head(), END, bad(400)]


def test_many_empty_lines_before_a_bad_request_after_a_good_one() -> None:
    # More empty lines than the bytes kept of a request's start (found by fuzzing): the
    # method is still judged on its own bytes, fed whole as in pieces.
    data = GET + H + b"\r\n" + b"\n" * 100 + b"BREW /pot HTTP/1.1\r\n" + H + b"\r\n"
    assert feed_all(data, limits=Limits(request_line=16)) == [Head(), END, bad(501)]


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def test_the_http2_preface_is_handed_over_with_what_follows() -> None:
    # RFC 9113 section 3.4 (prior knowledge): the connection decides whether to switch.
    assert feed_all(PREFACE + SETTINGS) == [("preface", SETTINGS)]
    assert feed_all(PREFACE) == [("preface", b"")]


def test_a_preface_after_requests_is_handed_over_too() -> None:
    # (The connection refuses it with 505: HTTP/2 begins a connection, RFC 9113 section 3.4.)
    events = feed_all(b"GET / HTTP/1.1\r\n" + H + b"\r\n" + PREFACE + SETTINGS)
    assert events[-1] == ("preface", SETTINGS)
