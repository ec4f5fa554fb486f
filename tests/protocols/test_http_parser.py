"""RequestParser on valid input: bytes in, events out, independent of how the bytes are split."""

from __future__ import annotations

import pytest

from tests.protocols.parsing import END, HOST, Head, bad, body, feed_all, upgrade
from uvicorn.protocols.http_parser import (
    END_OF_REQUEST,
    Body,
    ParserState,
    RequestHead,
    RequestParser,
    Upgrade,
)

H = b"Host: example.com\r\n"
WS = frozenset({b"websocket"})


def test_simple_get() -> None:
    assert feed_all(b"GET / HTTP/1.1\r\n" + H + b"\r\n") == [Head(), END]


def test_query_string_is_split_off_and_kept_raw() -> None:
    events = feed_all(b"GET /search?q=a%20b&x=1?2 HTTP/1.1\r\n" + H + b"\r\n")
    assert events == [Head(raw_path=b"/search", query_string=b"q=a%20b&x=1?2"), END]


def test_percent_encoded_path_is_kept_raw() -> None:
    events = feed_all(b"GET /a%20b/%2F%00/caf%C3%A9 HTTP/1.1\r\n" + H + b"\r\n")
    assert events == [Head(raw_path=b"/a%20b/%2F%00/caf%C3%A9"), END]


def test_fragment_is_no_part_of_the_target() -> None:
    events = feed_all(b"GET /a?b=1#frag?x HTTP/1.1\r\n" + H + b"\r\n")
    assert events == [Head(raw_path=b"/a", query_string=b"b=1"), END]


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"http://example.com/a%2Fb?q=1", b"/a%2Fb", b"q=1"),
        (b"https://example.com:8443/x", b"/x", b""),
        (b"http://example.com", b"/", b""),
        (b"http://example.com?q", b"/", b"q"),
        (b"http://[::1]:8000/p?q", b"/p", b"q"),
    ],
)
def test_absolute_form_target_uses_its_path(target: bytes, path: bytes, query: bytes) -> None:
    events = feed_all(b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n")
    assert events == [Head(raw_path=path, query_string=query), END]


def test_options_asterisk() -> None:
    events = feed_all(b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n")
    assert events == [Head(method="OPTIONS", raw_path=b"*"), END]


def test_header_names_lower_cased_order_and_duplicates_kept() -> None:
    data = (
        b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Dup: 1\r\nAccept: */*\r\nx-dup: 2\r\n"
        b"X-DUP: 3\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n"
    )
    headers = [
        *HOST,
        [b"x-dup", b"1"],
        [b"accept", b"*/*"],
        [b"x-dup", b"2"],
        [b"x-dup", b"3"],
        [b"cookie", b"a=1"],
        [b"cookie", b"b=2"],
    ]
    assert feed_all(data) == [Head(headers=headers), END]


def test_header_values_lose_surrounding_whitespace_only() -> None:
    # RFC 9112 section 5: field-line = field-name ":" OWS field-value OWS
    data = b"GET / HTTP/1.1\r\nHost:   example.com \t\r\nX-A: \t a \t b \t\r\nX-E:\r\nX-F: \r\n\r\n"
    headers = [*HOST, [b"x-a", b"a \t b"], [b"x-e", b""], [b"x-f", b""]]
    assert feed_all(data) == [Head(headers=headers), END]


def test_header_values_keep_obs_text() -> None:
    data = b"GET / HTTP/1.1\r\n" + H + b"X-Name: caf\xc3\xa9 \xff\r\n\r\n"
    assert feed_all(data) == [Head(headers=[*HOST, [b"x-name", b"caf\xc3\xa9 \xff"]]), END]


@pytest.mark.parametrize(
    "host", [b"example.com:8000", b"[::1]:8000", b"127.0.0.1", b"a_b.example.", b"xn--caf-dma", b""]
)
def test_valid_host_values(host: bytes) -> None:
    events = feed_all(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert events == [Head(headers=[[b"host", host]]), END]


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.1", b"", True),
        (b"1.1", b"Connection: keep-alive\r\n", True),
        (b"1.1", b"Connection: close\r\n", False),
        (b"1.1", b"Connection: Close\r\n", False),
        (b"1.1", b"Connection: keep-alive, close\r\n", False),
        (b"1.0", b"", False),
        (b"1.0", b"Connection: keep-alive\r\n", True),
        (b"1.0", b"Connection: Keep-Alive\r\n", True),
        (b"1.0", b"Connection: close\r\n", False),
    ],
)
def test_keep_alive_rules(version: bytes, connection: bytes, keep_alive: bool) -> None:
    data = b"GET / HTTP/" + version + b"\r\n" + H + connection + b"\r\n"
    headers = HOST + ([[b"connection", connection[12:-2]]] if connection else [])
    head = Head(http_version=version.decode(), headers=headers, keep_alive=keep_alive)
    # A second request follows: after a request that is not keep-alive it is never processed
    # (RFC 9112 section 9.6), whatever it is.
    for following in (b"GET /next HTTP/1.1\r\n" + H + b"\r\n", b"\r\n", b"garbage\r\n\r\n"):
        events = feed_all(data + following)
        if keep_alive and following.startswith(b"GET"):
            assert events == [head, END, Head(raw_path=b"/next"), END]
        elif keep_alive and following == b"garbage\r\n\r\n":
            assert events == [head, END, bad(501)]
        else:
            assert events == [head, END]


def test_content_length_body() -> None:
    data = b"POST /upload HTTP/1.1\r\n" + H + b"Content-Length: 11\r\n\r\nhello world"
    headers = [*HOST, [b"content-length", b"11"]]
    head = Head(method="POST", raw_path=b"/upload", headers=headers)
    assert feed_all(data) == [head, body(b"hello world"), END]


def test_zero_content_length_has_no_body() -> None:
    data = b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n"
    assert feed_all(data) == [Head(method="POST", headers=[*HOST, [b"content-length", b"0"]]), END]


def test_body_bytes_are_never_parsed_as_a_request() -> None:
    smuggled = b"GET /admin HTTP/1.1\r\n" + H + b"\r\n"
    data = b"POST / HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(smuggled) + smuggled
    headers = [*HOST, [b"content-length", b"%d" % len(smuggled)]]
    assert feed_all(data) == [Head(method="POST", headers=headers), body(smuggled), END]


def test_chunked_body_with_extensions() -> None:
    data = (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n"
        b'1;a="quoted; string";b\r\n \r\n'
        b"A\r\n0123456789\r\n"
        b"0;last\r\n\r\n"
    )
    headers = [*HOST, [b"transfer-encoding", b"chunked"]]
    assert feed_all(data) == [Head(method="POST", headers=headers), body(b"hello 0123456789"), END]


def test_chunked_is_case_insensitive() -> None:
    data = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    headers = [*HOST, [b"transfer-encoding", b"Chunked"]]
    assert feed_all(data) == [Head(method="POST", headers=headers), body(b"abc"), END]


def test_trailers_are_never_merged_into_headers() -> None:
    data = (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nHost: evil.example\r\nX-A: 1\r\n\r\n"
        b"GET /next HTTP/1.1\r\n" + H + b"\r\n"
    )
    headers = [*HOST, [b"transfer-encoding", b"chunked"]]
    events = feed_all(data)
    assert events == [
        Head(method="POST", headers=headers),
        body(b"abc"),
        END,
        Head(raw_path=b"/next"),
        END,
    ]
    # A framing field in the trailer section is refused (llhttp), never applied.
    data = data.replace(b"X-A: 1", b"Content-Length: 5")
    assert feed_all(data) == [Head(method="POST", headers=headers), body(b"abc"), bad(400)]


def test_pipelined_requests_in_one_chunk() -> None:
    data = (
        b"GET /1 HTTP/1.1\r\n" + H + b"\r\n"
        b"POST /2 HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"
        b"\r\n"  # an empty line before a request is ignored (RFC 9112 section 2.2)
        b"PUT /3 HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
        b"HEAD /4?x HTTP/1.1\r\n" + H + b"\r\n"
    )
    events = feed_all(data)
    assert events == [
        Head(raw_path=b"/1"),
        END,
        Head(method="POST", raw_path=b"/2", headers=[*HOST, [b"content-length", b"3"]]),
        body(b"abc"),
        END,
        Head(method="PUT", raw_path=b"/3", headers=[*HOST, [b"transfer-encoding", b"chunked"]]),
        body(b"de"),
        END,
        Head(method="HEAD", raw_path=b"/4", query_string=b"x"),
        END,
    ]


def test_leading_empty_lines_are_ignored() -> None:
    assert feed_all(b"\r\n\r\nGET / HTTP/1.1\r\n" + H + b"\r\n") == [Head(), END]


@pytest.mark.parametrize(
    ("version", "value", "expected"),
    [
        (b"1.1", b"100-continue", True),
        (b"1.1", b"100-Continue", True),
        (b"1.1", b"something-else", False),
        (b"1.0", b"100-continue", False),  # only an HTTP/1.1 client waits for 100 Continue
    ],
)
def test_expect_100_continue(version: bytes, value: bytes, expected: bool) -> None:
    data = b"POST / HTTP/" + version + b"\r\n" + H + b"Expect: " + value + b"\r\n"
    data += b"Content-Length: 2\r\n\r\nok"
    headers = [*HOST, [b"expect", value], [b"content-length", b"2"]]
    head = Head(
        method="POST",
        http_version=version.decode(),
        headers=headers,
        keep_alive=version == b"1.1",
        expect_continue=expected,
    )
    assert feed_all(data) == [head, body(b"ok"), END]


UPGRADE = b"GET /chat HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: WebSocket\r\n"
UPGRADE_HEADERS = [*HOST, [b"connection", b"Upgrade"], [b"upgrade", b"WebSocket"]]


def test_upgrade_we_speak_hands_over_the_following_bytes() -> None:
    data = UPGRADE + b"\r\n\x81\x85frame bytes"
    events = feed_all(data, upgrades=WS)
    head = Head(raw_path=b"/chat", headers=UPGRADE_HEADERS, upgrade=b"websocket")
    assert events == [head, END, upgrade(b"\x81\x85frame bytes")]


def test_upgrade_state_takes_nothing_more() -> None:
    parser = RequestParser(upgrades=WS)
    events = parser.receive_data(UPGRADE + b"\r\nrest")
    assert [type(e) for e in events] == [RequestHead, type(END_OF_REQUEST), Upgrade]
    assert isinstance(events[2], Upgrade) and events[2].data == b"rest"
    assert parser.state is ParserState.UPGRADED
    assert parser.receive_data(b"GET / HTTP/1.1\r\n" + H + b"\r\n") == []


def test_upgrade_we_do_not_speak_is_plain_http_and_parsing_goes_on() -> None:
    data = UPGRADE + b"\r\nGET /next HTTP/1.1\r\n" + H + b"\r\n"
    for upgrades in (frozenset(), frozenset({b"h2c"})):
        events = feed_all(data, upgrades=upgrades)
        head = Head(raw_path=b"/chat", headers=UPGRADE_HEADERS)
        assert events == [head, END, Head(raw_path=b"/next"), END]


def test_upgrade_without_connection_upgrade_is_plain_http() -> None:
    data = (
        b"GET / HTTP/1.1\r\n" + H + b"Upgrade: websocket\r\n\r\nGET /2 HTTP/1.1\r\n" + H + b"\r\n"
    )
    headers = [*HOST, [b"upgrade", b"websocket"]]
    events = feed_all(data, upgrades=WS)
    assert events == [Head(headers=headers), END, Head(raw_path=b"/2"), END]


def test_upgrade_in_http10_is_ignored() -> None:
    # RFC 9110 section 7.8: a server MUST ignore an Upgrade header field in an HTTP/1.0 request.
    data = b"GET / HTTP/1.0\r\nConnection: Upgrade, keep-alive\r\nUpgrade: websocket\r\n\r\n"
    headers = [[b"connection", b"Upgrade, keep-alive"], [b"upgrade", b"websocket"]]
    events = feed_all(data + b"GET /2 HTTP/1.0\r\n\r\n", upgrades=WS)
    assert events == [
        Head(http_version="1.0", headers=headers),
        END,
        Head(raw_path=b"/2", http_version="1.0", headers=[], keep_alive=False),
        END,
    ]


@pytest.mark.parametrize("upgrades", [frozenset(), WS])
@pytest.mark.parametrize(
    ("framing", "payload"),
    [
        (b"Content-Length: 32\r\n", b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"[:32]),
        (b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ],
)
def test_upgrade_request_body_is_read_as_body(
    upgrades: frozenset[bytes], framing: bytes, payload: bytes
) -> None:
    # httptools makes llhttp treat an upgrade request as bodyless; its body must still not be
    # parsed as the next request (request smuggling). A request with content is not upgraded.
    data = b"POST /up HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
    data += framing + b"\r\n" + payload + b"GET /next HTTP/1.1\r\n" + H + b"\r\n"
    name, _, value = framing[:-2].partition(b": ")
    headers = [*HOST, [b"connection", b"Upgrade"], [b"upgrade", b"websocket"]]
    headers.append([name.lower(), value])
    expected_body = payload if b"Content-Length" in framing else b"hello"
    events = feed_all(data, upgrades=upgrades)
    assert events == [
        Head(method="POST", raw_path=b"/up", headers=headers),
        body(expected_body),
        END,
        Head(raw_path=b"/next"),
        END,
    ]


def test_many_pipelined_upgrade_requests_we_do_not_speak() -> None:
    one = b"GET /u HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
    events = RequestParser().receive_data(one * 3000)
    assert len(events) == 6000
    assert all(isinstance(e, RequestHead) and e.upgrade is None for e in events[::2])


def test_parser_state_transitions() -> None:
    parser = RequestParser()
    assert parser.state is ParserState.IDLE
    assert parser.receive_data(b"") == []
    assert parser.receive_data(b"\r\n") == []
    assert parser.state is ParserState.IDLE  # an empty line starts no request
    assert parser.receive_data(b"POST / HT") == []
    assert parser.state is ParserState.HEAD
    events = parser.receive_data(b"TP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nab")
    assert [type(e) for e in events] == [RequestHead, Body]
    assert parser.state is ParserState.BODY
    # The end of one request and the start of the next, pipelined, in one chunk.
    events = parser.receive_data(b"cGET /2 HTTP/1.1\r\nHo")
    assert [type(e) for e in events] == [Body, type(END_OF_REQUEST)]
    assert parser.state is ParserState.HEAD
    events = parser.receive_data(b"st: x\r\n\r\n")
    assert isinstance(events[0], RequestHead) and events[0].raw_path == b"/2"
    assert events[1:] == [END_OF_REQUEST]
    assert parser.state is ParserState.IDLE
    events = parser.receive_data(b"GET /3 HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    assert len(events) == 2 and parser.state is ParserState.CLOSED
    assert parser.receive_data(b"GET /4 HTTP/1.1\r\n" + H + b"\r\n") == []
    assert parser.state is ParserState.CLOSED


def test_failed_parser_takes_nothing_more() -> None:
    parser = RequestParser()
    assert feed_all(b"GET / HTTP/1.1\r\n\r\n") == [bad(400)]
    parser.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    assert parser.state is ParserState.FAILED
    assert parser.receive_data(b"GET / HTTP/1.1\r\n" + H + b"\r\n") == []
    assert parser.state is ParserState.FAILED


def test_unknown_but_valid_method_in_a_pipeline() -> None:
    data = b"GET / HTTP/1.1\r\n" + H + b"\r\n"
    assert feed_all(data + b"BREW /pot HTTP/1.1\r\n" + H + b"\r\n") == [Head(), END, bad(501)]
    assert feed_all(data + b"GET/ HTTP/1.1\r\n" + H + b"\r\n") == [Head(), END, bad(400)]


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET / HTTP/1.0",
        b"DELETE /x HTTP/1.1",
        # Longer than the 32 bytes the parser keeps of a request split across chunks.
        b"GET /" + b"a" * 100 + b"?q=" + b"b" * 50 + b" HTTP/1.0",
        b"OPTIONS * HTTP/1.0",
        b"GET http://example.com/abs?q HTTP/1.1",
    ],
)
def test_version_however_the_request_line_arrives(request_line: bytes) -> None:
    # The version is read from the request line where the chunk holds it, and asked of llhttp
    # otherwise (split heads, requests that begin mid-chunk): the answers must agree.
    version = request_line[-3:].decode()
    request = request_line + b"\r\n" + H + b"\r\n"
    pipelined = b"GET /first HTTP/1.1\r\n" + H + b"\r\n" + request
    for data in (request, pipelined):
        heads = [e for e in feed_all(data) if isinstance(e, Head)]
        assert heads[-1].http_version == version
        assert heads[-1].keep_alive is (version == "1.1")


def test_every_field_of_a_head_is_set() -> None:
    # The parser sets RequestHead's fields itself, without an __init__ that would default any.
    requests = [
        b"GET / HTTP/1.1\r\n" + H + b"\r\n",
        b"POST /?a HTTP/1.0\r\nX-Forwarded-For: 1.2.3.4\r\nContent-Length: 0\r\n\r\n",
        b"PUT / HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
        b"GET / HTTP/1.1\r\n" + H + b"Connection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    ]
    for data in requests:
        head = RequestParser(upgrades=WS).receive_data(data)[0]
        assert isinstance(head, RequestHead)
        # (A class mypyc compiled has no __slots__: its fields are its __mypyc_attrs__.)
        for name in getattr(RequestHead, "__slots__", None) or RequestHead.__mypyc_attrs__:
            assert hasattr(head, name), name
