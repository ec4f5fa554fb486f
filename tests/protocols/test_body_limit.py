"""--limit-request-body in the sans-I/O cores: a declared content-length above the limit is
refused with 413 (RFC 9110 section 15.5.14) before any request reaches an app, by the HTTP/1.1
parser (a BadRequest: answered in its turn, then the connection closes) and by the HTTP/2 core
(a MALFORMED event: answered on its stream, the connection goes on). Bodies without a declared
length are counted by the request cycle (tests/worker/test_body_limit.py)."""

from __future__ import annotations

from tests.protocols.h2frames import Client, data, kinds, post
from tests.protocols.parsing import END, HOST, Head, bad, body, feed_all
from uvicorn.protocols.http2 import BODY, MALFORMED, REQUEST, H2Settings
from uvicorn.protocols.http2 import END as H2_END
from uvicorn.protocols.http_events import Limits

LIMIT = Limits(body=100)


def request(length: int, extra: bytes = b"", content: bytes | None = None) -> bytes:
    head = b"POST / HTTP/1.1\r\nHost: example.com\r\ncontent-length: %d\r\n%s\r\n"
    return head % (length, extra) + (b"x" * length if content is None else content)


def posted(length: int) -> Head:
    return Head(method="POST", headers=[*HOST, [b"content-length", b"%d" % length]])


def test_http11_content_length_at_the_limit_is_parsed() -> None:
    assert feed_all(request(100), limits=LIMIT) == [posted(100), body(b"x" * 100), END]
    assert feed_all(request(0), limits=Limits(body=0)) == [posted(0), END]


def test_http11_content_length_above_the_limit_is_413_before_the_head() -> None:
    assert feed_all(request(101), limits=LIMIT) == [bad(413)]
    assert feed_all(request(1), limits=Limits(body=0)) == [bad(413)]
    # Whatever the other fields, and however the bytes arrive (feed_all splits them).
    assert feed_all(request(10**12, b"expect: 100-continue\r\n", b""), limits=LIMIT) == [bad(413)]
    # Without a limit, nothing changes.
    assert feed_all(request(101))[0] == posted(101)


def test_http11_a_request_refused_in_a_pipeline_is_answered_in_its_turn() -> None:
    first = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    events = feed_all(first + request(101), limits=LIMIT)
    assert events == [Head(), END, bad(413)]


def test_http11_a_chunked_body_is_not_the_parser_s_to_count() -> None:
    chunked = (b"POST / HTTP/1.1\r\nHost: example.com\r\ntransfer-encoding: chunked\r\n\r\n"
               b"c8\r\n" + b"y" * 200 + b"\r\n0\r\n\r\n")  # fmt: skip
    events = feed_all(chunked, limits=LIMIT)
    assert events[-2:] == [body(b"y" * 200), END]


def h2_client(limit: int | None) -> Client:
    return Client(H2Settings(limits=Limits(body=limit)))


def test_http2_content_length_above_the_limit_is_answered_413() -> None:
    client = h2_client(100)
    (event,) = client.request(1, post(101), end_stream=False)
    assert event[:3] == (MALFORMED, 1, 413)
    assert client.sent() == []  # answered by the worker, which then resets the stream
    # The connection goes on, and a body within the limit is served.
    assert kinds(client.request(3, post(100), end_stream=False)) == [(REQUEST, 3)]
    assert kinds(client.send(data(3, b"z" * 100, end_stream=True))) == [(BODY, 3, 100), (H2_END, 3)]


def test_http2_content_length_at_the_limit_or_none_is_a_request() -> None:
    client = h2_client(100)
    assert kinds(client.request(1, post(100), end_stream=False)) == [(REQUEST, 1)]
    assert kinds(client.request(3, post(), end_stream=False)) == [(REQUEST, 3)]
    # Without a limit, any length is a request.
    assert kinds(h2_client(None).request(1, post(10**12), end_stream=False)) == [(REQUEST, 1)]
