"""http_simple.simple_head: the heads it reads are read exactly as llhttp reads them (the same
bytes fed in pieces go through llhttp), and it declines everything else, which llhttp then
reads or refuses as before."""

from __future__ import annotations

import pytest

from tests.protocols.invariants_http import check_request_stream, normalize
from uvicorn.compiled import COMPILED
from uvicorn.protocols.http_events import Limits
from uvicorn.protocols.http_parser import (
    _HOSTS,
    _METHODS,
    _NO_PARSER,
    _REQUEST_SPECIAL,
    RequestParser,
)
from uvicorn.protocols.http_simple import _FIELDS, SIMPLE_MAX, simple_head

H = b"Host: example.com\r\n"
GET = b"GET / HTTP/1.1\r\n" + H  # (and the fields that follow)


@pytest.fixture(autouse=True)
def learned() -> None:
    """What a worker knows after its first requests: these methods and Host values passed
    llhttp and the parser's rules (simple_head reads no other)."""
    for method in (b"GET", b"HEAD", b"DELETE", b"OPTIONS", b"M-SEARCH"):
        for host in (b"example.com", b"127.0.0.1:8000", b"[::1]:80"):
            request = method + b" / HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 0\r\n\r\n"
            RequestParser().receive_data(request)
    assert {b"GET", b"M-SEARCH"} <= _METHODS.keys() and b"[::1]:80" in _HOSTS


READ = [
    b"GET / HTTP/1.1\r\n" + H + b"\r\n",
    b"GET /a/b%20c?x=1&y=%2F?z HTTP/1.1\r\n" + H + b"\r\n",
    b"HEAD /? HTTP/1.1\r\n" + H + b"\r\n",
    b"GET /p HTTP/1.0\r\n" + H + b"\r\n",
    b"GET /p HTTP/1.0\r\n" + H + b"Connection: Keep-Alive\r\n\r\n",
    b"GET /p HTTP/1.1\r\n" + H + b"Connection: CLOSE\r\n\r\n",
    b"OPTIONS /~user/x;p=1,2@:$&'()*+=-._ HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
    b"M-SEARCH / HTTP/1.1\r\nHOST:127.0.0.1:8000\r\n\r\n",
    b"DELETE /x HTTP/1.1\r\n" + H + b"X-Empty:\r\nX-Spaces: \t a  b \t\r\nAccept: */*\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + H + b"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + H + b'!#$%&\'*+-.^_`|~09Az: "quoted" (x) {y} <z>\r\n\r\n',
]


@pytest.mark.parametrize("data", READ)
def test_reads_as_llhttp_does(data: bytes) -> None:
    head = simple_head(data, Limits(), _METHODS, _HOSTS)
    assert head is not None, "declined a head of the simplest kind"
    # Fed whole, the parser reads it here; cut before its last byte, llhttp reads it.
    whole, split = check_request_stream(data, [len(data) - 1])
    assert whole.events == split.events == [normalize(head), ("end",)]


DECLINED = {
    "a body follows": b"GET / HTTP/1.1\r\n" + H + b"\r\nxyz",
    "a pipelined request follows": GET + b"\r\n" + GET + b"\r\n",
    "content-length": b"GET / HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n",
    "transfer-encoding": b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "expect": b"GET / HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\n\r\n",
    "upgrade": b"GET / HTTP/1.1\r\n" + H + b"Connection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    "proxy-connection": b"GET / HTTP/1.1\r\n" + H + b"Proxy-Connection: close\r\n\r\n",
    "connection list": b"GET / HTTP/1.1\r\n" + H + b"Connection: close, x\r\n\r\n",
    "two connection fields": GET + b"Connection: close\r\nConnection: close\r\n\r\n",
    "a method not yet seen": b"UNLINK / HTTP/1.1\r\n" + H + b"\r\n",
    "CONNECT": b"CONNECT example.com:443 HTTP/1.1\r\n" + H + b"\r\n",
    "lower-case method": b"get / HTTP/1.1\r\n" + H + b"\r\n",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\n",
    "HTTP/1.2": b"GET / HTTP/1.2\r\n" + H + b"\r\n",
    "no version": b"GET /\r\n" + H + b"\r\n",
    "no version, no fields": b"GET / \r\n\r\n",
    "a version cut short": b"GET / HTTP/1.\r\n\r\n",
    "no fields": b"GET / HTTP/1.1\r\n\r\n",
    "HTTP/1.1 and not CRLF": b"GET / HTTP/1.1\r\r\n\r\n",
    "two spaces": b"GET  / HTTP/1.1\r\n" + H + b"\r\n",
    "space in target": b"GET /a b HTTP/1.1\r\n" + H + b"\r\n",
    "absolute-form": b"GET http://example.com/ HTTP/1.1\r\n" + H + b"\r\n",
    "asterisk-form": b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n",
    "fragment": b"GET /a#b HTTP/1.1\r\n" + H + b"\r\n",
    "a quote in the target": b'GET /a"b HTTP/1.1\r\n' + H + b"\r\n",
    "obs-text": b"GET / HTTP/1.1\r\n" + H + b"X-A: caf\xc3\xa9\r\n\r\n",
    "DEL": b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x7fb\r\n\r\n",
    "NUL": b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n",
    "bare LF": b"GET / HTTP/1.1\n" + H + b"\r\n",
    "bare CR": b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n",
    "space before colon": b"GET / HTTP/1.1\r\nHost : example.com\r\n\r\n",
    "no colon": b"GET / HTTP/1.1\r\n" + H + b"X-A\r\n\r\n",
    "empty name": b"GET / HTTP/1.1\r\n" + H + b": a\r\n\r\n",
    "separator in name": b"GET / HTTP/1.1\r\n" + H + b"X(A): a\r\n\r\n",
    "no host": b"GET / HTTP/1.1\r\n\r\n",
    "no host, HTTP/1.0": b"GET / HTTP/1.0\r\n\r\n",
    "two hosts": b"GET / HTTP/1.1\r\n" + H + H + b"\r\n",
    "a host not yet seen": b"GET / HTTP/1.1\r\nHost: unseen.http-simple.example\r\n\r\n",
    "invalid host": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
}


@pytest.mark.parametrize("data", DECLINED.values(), ids=DECLINED.keys())
def test_declines_the_rest(data: bytes) -> None:
    _METHODS.pop(b"UNLINK", None)  # (learned by an earlier test, maybe)
    _HOSTS.discard(b"unseen.http-simple.example")
    assert simple_head(data, Limits(), _METHODS, _HOSTS) is None
    # ...which llhttp reads, or refuses, whole as in pieces.
    check_request_stream(data, [len(data) // 2])


def test_declines_past_the_limits() -> None:
    data = b"GET /abcdefgh HTTP/1.1\r\n" + H + b"X-A: 12345678\r\nX-B: 1\r\n\r\n"
    assert simple_head(data, Limits(), _METHODS, _HOSTS) is not None
    for limits in (
        Limits(request_line=8),  # the target
        Limits(field_size=14),  # "host" and "example.com"
        Limits(fields=2),
    ):
        assert simple_head(data, limits, _METHODS, _HOSTS) is None
        whole, split = check_request_stream(data, [5], limits)
        assert whole.events == split.events and whole.events[-1][0] == "bad"
    ok = Limits(request_line=9, field_size=15, fields=3)
    assert simple_head(data, ok, _METHODS, _HOSTS) is not None


def test_keeps_the_parser_where_llhttp_would() -> None:
    """After a head read here, the parser goes on with llhttp: a chunked request, then one
    more read here, and the last request (close) ends it."""
    parser = RequestParser()
    first = parser.receive_data(b"GET /1 HTTP/1.1\r\n" + H + b"\r\n")
    chunked = parser.receive_data(
        b"POST /2 HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    last = parser.receive_data(b"GET /3 HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    after = parser.receive_data(b"GET /4 HTTP/1.1\r\n" + H + b"\r\n")
    end = ("end",)
    assert [normalize(e)[:3] for e in first] == [("head", "GET", b"/1"), end]
    assert [normalize(e)[:3] for e in chunked] == [("head", "POST", b"/2"), ("body", b"abc"), end]
    assert [normalize(e)[:3] for e in last] == [("head", "GET", b"/3"), end]
    assert after == []


def test_reads_every_field_the_parser_acts_on() -> None:
    """A field that RequestParser (or llhttp) acts on must be known here too, to be acted on
    the same way or declined: one added there alone would pass through here unread."""
    assert _REQUEST_SPECIAL.keys() <= _FIELDS.keys()
    assert {b"connection", b"proxy-connection"} <= _FIELDS.keys()  # llhttp's


def test_the_parser_reads_short_heads_here_and_long_ones_through_llhttp() -> None:
    """Up to SIMPLE_MAX bytes, a head of the simplest kind is read here (compiled: in pure
    Python llhttp reads every head): the connection never makes llhttp's parser. A longer one
    (a long cookie, say) goes to llhttp, which reads long runs of bytes faster."""
    short = GET + b"Cookie: " + b"c" * (SIMPLE_MAX - len(GET) - 12) + b"\r\n\r\n"
    assert len(short) == SIMPLE_MAX and simple_head(short, Limits(), _METHODS, _HOSTS) is not None
    parser = RequestParser()
    for _ in range(3):
        assert [normalize(e)[:3] for e in parser.receive_data(short)] == [
            ("head", "GET", b"/"),
            ("end",),
        ]
    assert (parser._parser is _NO_PARSER) is COMPILED
    long = short.replace(b"Cookie: ", b"Cookie: c")
    whole, split = check_request_stream(long, [len(long) - 1])
    assert whole.events == split.events and whole.events[0][0] == "head"
    parser.receive_data(long)
    assert parser._parser is not _NO_PARSER
