"""Chunked request bodies (RFC 9112 section 7.1): chunk extensions with the whitespace the grammar
allows (BWS, which llhttp refuses) are accepted, whatever the split; invalid ones still are not;
each request is framed alone, so a chunked one that follows another in the same read is too."""

from __future__ import annotations

import pytest

from tests.protocols.parsing import END, HOST, Head, bad, body, feed_all
from uvicorn.protocols.http_chunks import ChunkedBody
from uvicorn.protocols.http_parser import Limits

H = b"Host: example.com\r\n"
CHUNKED = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
CHUNKED_HEAD = Head(method="POST", headers=[*HOST, [b"transfer-encoding", b"chunked"]])


@pytest.mark.parametrize(
    "extension",
    [b"; name=value", b";name = value", b" ;name=value", b"\t;\tname\t=\tv", b' ; a = "b; c" ; d',
     b"  ;  a  ;  b  =  c"],
)  # fmt: skip
def test_whitespace_around_the_separators_is_accepted(extension: bytes) -> None:
    data = CHUNKED + b"5" + extension + b"\r\nhello\r\n0" + extension + b"\r\n\r\n"
    assert feed_all(data) == [CHUNKED_HEAD, body(b"hello"), END]


@pytest.mark.parametrize(
    "extension",
    [b"; =value", b"; name value", b";na me", b';a="unterminated', b"; a=b c",
     b";a=\x01", b"; ", b";", b" "],
)  # fmt: skip
def test_invalid_extensions_are_still_refused(extension: bytes) -> None:
    data = CHUNKED + b"5" + extension + b"\r\nhello\r\n0\r\n\r\n"
    assert feed_all(data) == [CHUNKED_HEAD, bad(400)]


def test_a_chunked_request_after_others_in_the_same_read() -> None:
    data = (
        b"POST /1 HTTP/1.1\r\n" + H + b"Content-Length: 11\r\n\r\n5 ; x=y\r\nab"
        + CHUNKED.replace(b"POST / ", b"POST /2 ") + b"3 ;a=b\r\nxyz\r\n0\r\nT: 1\r\n\r\n"
        + b"GET /3 HTTP/1.1\r\n" + H + b"\r\n"
    )  # fmt: skip
    assert feed_all(data) == [
        Head(method="POST", raw_path=b"/1", headers=[*HOST, [b"content-length", b"11"]]),
        body(b"5 ; x=y\r\nab"),  # a body's bytes are never taken for chunk framing
        END,
        Head(method="POST", raw_path=b"/2", headers=[*HOST, [b"transfer-encoding", b"chunked"]]),
        body(b"xyz"),
        END,
        Head(raw_path=b"/3"),
        END,
    ]


def test_chunk_data_that_looks_like_framing_is_data() -> None:
    data = CHUNKED + b"E\r\n0 ; a=b\r\n\r\nGET\r\n0\r\n\r\n"
    assert feed_all(data) == [CHUNKED_HEAD, body(b"0 ; a=b\r\n\r\nGET"), END]


@pytest.mark.parametrize("line", [b"5 ;" + b"a" * 500, b"5;" + b"a" * 500, b"0" * 500 + b"5"])
def test_a_size_line_longer_than_a_field_is_refused_however_it_arrives(line: bytes) -> None:
    data = CHUNKED + line + b"\r\nhello\r\n0\r\n\r\n"
    assert feed_all(data, limits=Limits(field_size=100)) == [CHUNKED_HEAD, bad(400)]


def test_a_trailer_field_longer_than_a_field_is_refused_however_it_arrives() -> None:
    data = CHUNKED + b"5\r\nhello\r\n0\r\nX-Long: " + b"a" * 500 + b"\r\n\r\n"
    assert feed_all(data, limits=Limits(field_size=100)) == [CHUNKED_HEAD, body(b"hello"), bad(400)]


def test_a_line_is_never_held_past_the_limit() -> None:
    framing = ChunkedBody(limit=100)
    for i in range(0, 600, 7):
        framing.feed((b"5 ;" + b"a" * 600)[i : i + 7])
        assert len(framing._line) <= 100
    assert framing.too_long


def test_without_extensions_nothing_is_rewritten() -> None:
    framing = ChunkedBody(limit=100)
    data = b"5\r\nhello\r\n3;a=b\r\nxyz\r\n0\r\n\r\nrest"
    assert framing.feed(data) == (data[:-4], b"rest")


def test_a_chunk_line_llhttp_takes_but_the_grammar_does_not_is_still_followed() -> None:
    # llhttp takes 'a=n"quoted; string"' (not a token nor a quoted-string): the line goes to it
    # as it came, and the body's end is still found, so what follows is judged alone, the same
    # whatever the split (found by fuzzing).
    data = CHUNKED + b'1;a=n"quoted; string";b\r\n \r\n0\r\n\r\n\xab\xab\xab'
    assert feed_all(data) == [CHUNKED_HEAD, body(b" "), END, bad(400)]
