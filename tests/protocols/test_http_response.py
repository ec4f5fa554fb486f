"""Response framing: start()/body() in, exact bytes out (RFC 9112 section 6, RFC 9110)."""

from __future__ import annotations

import pytest

from uvicorn.protocols.http_defaults import HeaderDefaults
from uvicorn.protocols.http_response import (
    Response,
    ResponseState,
    simple_response,
)

DATE = b"Thu, 01 Jan 1970 00:00:00 GMT"
DEFAULTS = HeaderDefaults()
DEFAULTS.set_date(DATE)
STD = b"date: " + DATE + b"\r\nserver: uvicorn\r\n"
OK = b"HTTP/1.1 200 OK\r\n"


def response(
    method: str = "GET",
    version: str = "1.1",
    keep_alive: bool = True,
    defaults: HeaderDefaults = DEFAULTS,
) -> Response:
    return Response(defaults, method == "HEAD", version, keep_alive)


def test_complete_response_gets_content_length() -> None:
    r = response()
    data = r.start(200, [[b"content-type", b"text/plain"]], b"Hello, world!", False)
    assert data == OK + STD + b"content-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, world!"
    assert r.state is ResponseState.DONE and r.keep_alive and r.status == 200


def test_empty_complete_response() -> None:
    assert response().start(404, [], b"", False) == (
        b"HTTP/1.1 404 Not Found\r\n" + STD + b"content-length: 0\r\n\r\n"
    )


def test_unknown_status_has_an_empty_reason() -> None:
    assert response().start(299, [], b"", False).startswith(b"HTTP/1.1 299 \r\n")


def test_app_content_length_is_used_as_given() -> None:
    r = response()
    data = r.start(200, [[b"Content-Length", b"3"]], b"abc", False)
    assert data == OK + STD + b"Content-Length: 3\r\n\r\nabc"
    r = response()
    assert r.start(200, [[b"content-length", b"6"]], b"abc", True).endswith(b"\r\n\r\nabc")
    assert r.body(b"de", True) == b"de"
    assert r.body(b"", True) == b""
    assert r.body(b"f", False) == b"f"
    assert r.state is ResponseState.DONE and r.keep_alive


def test_duplicate_content_length_is_sent_once() -> None:
    headers = [[b"content-length", b"1"], [b"Content-Length", b"1"]]
    assert response().start(200, headers, b"a", False) == OK + STD + b"content-length: 1\r\n\r\na"
    with pytest.raises(ValueError, match="conflicting content-length headers: 1 and 2"):
        response().start(200, [[b"content-length", b"1"], [b"content-length", b"2"]], b"a", False)


@pytest.mark.parametrize(
    ("length", "content", "more", "message"),
    [
        (b"5", b"abc", False, "content-length is 5 but the response has 3 bytes"),
        (b"2", b"abc", False, "content-length is 2 but the response has 3 bytes"),
        (b"2", b"abc", True, "content-length is 2 but the response starts with 3 bytes"),
        (b"0", b"a", False, "content-length is 0 but the response has 1 bytes"),
    ],
)
def test_content_length_mismatch_at_start(
    length: bytes, content: bytes, more: bool, message: str
) -> None:
    r = response()
    with pytest.raises(ValueError, match=message):
        r.start(200, [[b"content-length", length]], content, more)
    assert r.state is ResponseState.IDLE  # nothing was sent: a 500 can still be


def test_content_length_too_many_bytes_in_body() -> None:
    r = response()
    r.start(200, [[b"content-length", b"5"]], b"abc", True)
    with pytest.raises(RuntimeError, match="2 bytes were still owed, 3 sent"):
        r.body(b"def", True)
    assert r.state is ResponseState.DONE and not r.keep_alive
    with pytest.raises(RuntimeError, match="already completed"):
        r.body(b"", False)


def test_content_length_too_few_bytes_at_the_end() -> None:
    r = response()
    r.start(200, [[b"content-length", b"5"]], b"abc", True)
    with pytest.raises(RuntimeError, match="2 bytes were still owed, 1 sent in the last message"):
        r.body(b"d", False)
    assert r.state is ResponseState.DONE and not r.keep_alive


def test_streamed_response_is_chunked_under_http11() -> None:
    r = response()
    head = OK + STD + b"transfer-encoding: chunked\r\n\r\n"
    assert r.start(200, [], b"Hello", True) == head + b"5\r\nHello\r\n"
    assert r.state is ResponseState.STREAMING
    assert r.body(b"", True) == b""  # a zero-length chunk would end the body
    assert r.body(b"0123456789abcdefg", True) == b"11\r\n0123456789abcdefg\r\n"
    assert r.body(b"!", False) == b"1\r\n!\r\n0\r\n\r\n"
    assert r.state is ResponseState.DONE and r.keep_alive


def test_streamed_response_starting_empty_and_ending_empty() -> None:
    r = response()
    assert r.start(200, [], b"", True) == OK + STD + b"transfer-encoding: chunked\r\n\r\n"
    assert r.body(b"", True) == b""
    assert r.body(b"", False) == b"0\r\n\r\n"


def test_streamed_response_is_close_delimited_under_http10() -> None:
    for keep_alive in (True, False):
        r = response(version="1.0", keep_alive=keep_alive)
        assert r.start(200, [], b"Hello", True) == OK + STD + b"connection: close\r\n\r\nHello"
        assert not r.keep_alive
        assert r.body(b"", True) == b""
        assert r.body(b" world", False) == b" world"
        assert r.state is ResponseState.DONE and not r.keep_alive


def test_http10_keep_alive_response_says_so() -> None:
    r = response(version="1.0", keep_alive=True)
    data = r.start(200, [], b"hi", False)
    assert data == OK + STD + b"content-length: 2\r\nconnection: keep-alive\r\n\r\nhi"
    assert r.keep_alive
    # The app's own keep-alive is not repeated.
    r = response(version="1.0", keep_alive=True)
    data = r.start(200, [[b"Connection", b"Keep-Alive"]], b"hi", False)
    assert data == OK + STD + b"Connection: Keep-Alive\r\ncontent-length: 2\r\n\r\nhi"
    # The app's content-length keeps the connection under HTTP/1.0 even when streamed.
    r = response(version="1.0", keep_alive=True)
    data = r.start(200, [[b"content-length", b"2"]], b"h", True)
    assert data == OK + STD + b"content-length: 2\r\nconnection: keep-alive\r\n\r\nh"
    assert r.body(b"i", False) == b"i" and r.keep_alive


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_request_without_keep_alive_gets_connection_close(version: str) -> None:
    r = response(version=version, keep_alive=False)
    assert (
        r.start(200, [], b"", False) == OK + STD + b"content-length: 0\r\nconnection: close\r\n\r\n"
    )
    assert not r.keep_alive
    r = response(version=version, keep_alive=False)
    data = r.start(200, [[b"Connection", b"close"]], b"", False)
    assert data == OK + STD + b"Connection: close\r\ncontent-length: 0\r\n\r\n"
    assert not r.keep_alive


@pytest.mark.parametrize(
    ("value", "keep_alive"),
    [
        (b"close", False),
        (b"Close", False),
        (b"keep-alive, close", False),
        (b"upgrade ,\tCLOSE", False),
        (b"x-closed", True),
        (b"keep-alive", True),
    ],
)
def test_app_connection_close(value: bytes, keep_alive: bool) -> None:
    r = response()
    data = r.start(200, [[b"connection", value]], b"", False)
    # The app's header is sent as given, and never doubled.
    assert data == OK + STD + b"connection: " + value + b"\r\ncontent-length: 0\r\n\r\n"
    assert r.keep_alive is keep_alive


def test_head_response_has_no_body() -> None:
    r = response("HEAD")
    assert r.start(200, [], b"Hello", False) == OK + STD + b"content-length: 5\r\n\r\n"
    r = response("HEAD")
    assert r.start(200, [], b"", False) == OK + STD + b"\r\n"  # the length is unknown
    r = response("HEAD")
    data = r.start(200, [[b"content-length", b"1000"]], b"", False)
    assert data == OK + STD + b"content-length: 1000\r\n\r\n"
    assert r.keep_alive


def test_streamed_head_response() -> None:
    r = response("HEAD")
    assert r.start(200, [], b"abc", True) == OK + STD + b"transfer-encoding: chunked\r\n\r\n"
    assert r.body(b"def", True) == b""
    assert r.body(b"", False) == b""
    assert r.state is ResponseState.DONE and r.keep_alive
    r = response("HEAD", version="1.0", keep_alive=True)
    assert r.start(200, [], b"abc", True) == OK + STD + b"connection: keep-alive\r\n\r\n"
    assert r.body(b"def", False) == b""
    assert r.keep_alive  # nothing to close-delimit


def test_204_has_no_body_and_no_content_length() -> None:
    line = b"HTTP/1.1 204 No Content\r\n"
    assert response().start(204, [], b"ignored", False) == line + STD + b"\r\n"
    # RFC 9110 section 8.6: a server MUST NOT send Content-Length in a 204.
    headers = [[b"Content-Length", b"0"], [b"x-a", b"1"]]
    assert response().start(204, headers, b"", False) == line + STD + b"x-a: 1\r\n\r\n"
    r = response(version="1.0", keep_alive=True)
    assert r.start(204, [], b"", True) == line + STD + b"connection: keep-alive\r\n\r\n"
    assert r.body(b"ignored", False) == b""
    assert r.keep_alive


def test_304_has_no_body_and_no_content_length_added() -> None:
    line = b"HTTP/1.1 304 Not Modified\r\n"
    etag = [[b"etag", b'"x"']]
    assert response().start(304, etag, b"", False) == line + STD + b'etag: "x"\r\n\r\n'
    # The length of the representation, from the app, is kept (RFC 9110 section 8.6).
    data = response().start(304, [[b"content-length", b"10"]], b"", False)
    assert data == line + STD + b"content-length: 10\r\n\r\n"
    r = response()
    assert r.start(304, [], b"", True) == line + STD + b"\r\n"
    assert r.body(b"", False) == b""
    assert r.state is ResponseState.DONE and r.keep_alive


def test_interim_responses() -> None:
    r = response()
    assert r.start(100, [], b"", False) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert r.state is ResponseState.IDLE
    headers = [[b"link", b"</style.css>; rel=preload"], [b"content-length", b"0"]]
    data = r.start(103, headers, b"", False)
    assert data == b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
    assert r.state is ResponseState.IDLE
    assert r.start(200, [], b"ok", False) == OK + STD + b"content-length: 2\r\n\r\nok"


def test_interim_responses_are_not_sent_to_http10() -> None:
    # RFC 9110 section 15.2: a server MUST NOT send a 1xx response to an HTTP/1.0 client.
    r = response(version="1.0", keep_alive=True)
    assert r.start(100, [], b"", False) == b""
    assert r.state is ResponseState.IDLE
    with pytest.raises(ValueError, match="invalid header name"):
        r.start(103, [[b"bad name", b"x"]], b"", False)  # still validated


def test_app_date_and_server_replace_the_defaults() -> None:
    data = response().start(200, [[b"Date", b"then"]], b"", False)
    assert data == OK + b"server: uvicorn\r\nDate: then\r\ncontent-length: 0\r\n\r\n"
    data = response().start(200, [[b"server", b"mine"]], b"", False)
    assert data == OK + b"date: " + DATE + b"\r\nserver: mine\r\ncontent-length: 0\r\n\r\n"
    data = response().start(200, [[b"server", b"mine"], [b"date", b"then"]], b"", False)
    assert data == OK + b"server: mine\r\ndate: then\r\ncontent-length: 0\r\n\r\n"


def test_header_defaults_extras_and_switches() -> None:
    extra = HeaderDefaults(extra=[(b"x-extra", b"1"), (b"x-other", b"two words")])
    extra.set_date(DATE)
    data = response(defaults=extra).start(200, [], b"", False)
    assert data == OK + STD + b"x-extra: 1\r\nx-other: two words\r\ncontent-length: 0\r\n\r\n"
    data = response(defaults=extra).start(200, [[b"server", b"me"]], b"", False)
    assert data == OK + b"date: " + DATE + b"\r\nx-extra: 1\r\nx-other: two words\r\n" + (
        b"server: me\r\ncontent-length: 0\r\n\r\n"
    )
    none = HeaderDefaults(server_header=False, date_header=False, extra=[(b"x-a", b"1")])
    none.set_date(DATE)
    assert response(defaults=none).start(200, [], b"", False) == (
        OK + b"x-a: 1\r\ncontent-length: 0\r\n\r\n"
    )


def test_set_date_replaces_the_date() -> None:
    defaults = HeaderDefaults()
    assert response(defaults=defaults).start(200, [], b"", False) == (
        OK + b"server: uvicorn\r\ncontent-length: 0\r\n\r\n"
    )
    defaults.set_date(b"Fri, 02 Jan 1970 00:00:00 GMT")
    defaults.set_date(DATE)
    assert response(defaults=defaults).start(200, [], b"", False) == (
        OK + STD + b"content-length: 0\r\n\r\n"
    )


def test_app_transfer_encoding_is_dropped() -> None:
    te = [[b"Transfer-Encoding", b"chunked"], [b"x-a", b"1"]]
    assert response().start(200, te, b"abc", False) == (
        OK + STD + b"x-a: 1\r\ncontent-length: 3\r\n\r\nabc"
    )
    r = response()
    assert r.start(200, te, b"abc", True) == (
        OK + STD + b"x-a: 1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"
    )
    r = response(version="1.0")
    assert r.start(200, [[b"transfer-encoding", b"gzip"]], b"a", True) == (
        OK + STD + b"connection: close\r\n\r\na"
    )


def test_out_of_order_calls() -> None:
    r = response()
    with pytest.raises(RuntimeError, match="body sent before the response started"):
        r.body(b"x", False)
    r.start(200, [], b"", True)
    with pytest.raises(RuntimeError, match=r"response already started \(state streaming\)"):
        r.start(200, [], b"", False)
    r.body(b"", False)
    with pytest.raises(RuntimeError, match=r"response already started \(state done\)"):
        r.start(200, [], b"", False)
    with pytest.raises(RuntimeError, match="response already completed"):
        r.body(b"", False)


def test_abandon() -> None:
    r = response()
    r.start(200, [], b"a", True)
    r.abandon()
    assert r.state is ResponseState.DONE and not r.keep_alive


def test_simple_response() -> None:
    data = simple_response(DEFAULTS, 400, "invalid Host header")
    assert data == (
        b"HTTP/1.1 400 Bad Request\r\n" + STD + b"content-type: text/plain; charset=utf-8\r\n"
        b"connection: close\r\ncontent-length: 20\r\n\r\ninvalid Host header\n"
    )
    data = simple_response(DEFAULTS, 503)
    assert data.endswith(b"content-length: 20\r\n\r\nService Unavailable\n")
    data = simple_response(DEFAULTS, 500, head=True)
    assert data == (
        b"HTTP/1.1 500 Internal Server Error\r\n" + STD + b"content-type: text/plain; "
        b"charset=utf-8\r\nconnection: close\r\ncontent-length: 22\r\n\r\n"
    )
