"""Trailer fields, sans I/O: which fields may be trailers (RFC 9110 section 6.5.1), whether a
client accepts them (``TE: trailers``, RFC 9110 section 10.1.4), and how each protocol's
response ends with them (RFC 9112 section 7.1.2; RFC 9113 section 8.1)."""

from __future__ import annotations

import pytest
from hpack import Decoder

from uvicorn.protocols.http2_response import H2Response
from uvicorn.protocols.http_defaults import HeaderDefaults
from uvicorn.protocols.http_response import Response
from uvicorn.protocols.http_trailers import accepts_trailers, check_trailers, trailer_section

DEFAULTS = HeaderDefaults(date_header=False)


def test_trailer_names_go_lower_case_and_values_stay() -> None:
    assert check_trailers([(b"X-Sum", b"AbC"), [b"grpc-status", b"0"]]) == [
        (b"x-sum", b"AbC"),
        (b"grpc-status", b"0"),
    ]


@pytest.mark.parametrize(
    "name", [b"Content-Length", b"transfer-encoding", b"host", b"authorization", b"set-cookie",
             b"content-type", b"trailer", b"cache-control", b"location"],
)  # fmt: skip
def test_fields_that_must_not_be_trailers_are_refused(name: bytes) -> None:
    with pytest.raises(ValueError, match="cannot be a trailer field"):
        check_trailers([(b"x-ok", b"1"), (name, b"1")])


@pytest.mark.parametrize(
    ("fields", "error"),
    [([(b"x-a", b"1\r\nx-b: 2")], ValueError), ([(b"bad name", b"1")], ValueError),
     ([("x-a", "1")], TypeError), (b"x-a: 1", TypeError)],
)  # fmt: skip
def test_trailers_get_the_checks_of_a_head(fields: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_trailers(fields)


@pytest.mark.parametrize(
    ("value", "accepts"),
    [(b"trailers", True), (b"gzip, Trailers", True), (b"trailers;q=0.5", True),
     (b"gzip", False), (b"x-trailers", False)],
)  # fmt: skip
def test_te_trailers_says_the_client_accepts_them(value: bytes, accepts: bool) -> None:
    assert accepts_trailers([[b"host", b"x"], [b"te", value]]) is accepts
    assert accepts_trailers([[b"host", b"x"]]) is False


def test_http11_chunked_body_ends_with_the_trailer_section() -> None:
    response = Response(DEFAULTS, False, "1.1", True)
    head = response.start(200, [], b"ab", True)
    assert b"transfer-encoding: chunked" in head
    section = trailer_section(check_trailers([(b"X-Sum", b"1")]))
    assert response.end_with_trailers(section) == b"0\r\nx-sum: 1\r\n\r\n"
    assert response.keep_alive


def test_http11_trailers_dropped_end_the_chunked_body() -> None:
    response = Response(DEFAULTS, False, "1.1", True)
    response.start(200, [], b"ab", True)
    assert response.end_with_trailers(b"") == b"0\r\n\r\n"


def test_http11_body_of_declared_length_has_no_room_for_trailers() -> None:
    response = Response(DEFAULTS, False, "1.1", True)
    response.start(200, [(b"content-length", b"2")], b"ab", True)
    assert response.end_with_trailers(b"0\r\nx-sum: 1\r\n\r\n") == b""  # dropped
    response = Response(DEFAULTS, False, "1.1", True)
    response.start(200, [(b"content-length", b"3")], b"ab", True)
    with pytest.raises(RuntimeError, match="content-length"):
        response.end_with_trailers(b"")
    assert not response.keep_alive


def test_trailers_before_the_start_or_after_the_end_are_refused() -> None:
    response = Response(DEFAULTS, False, "1.1", True)
    with pytest.raises(RuntimeError, match="trailers sent before"):
        response.end_with_trailers(b"")
    response.start(200, [], b"ab", False)
    with pytest.raises(RuntimeError, match="after it completed"):
        response.end_with_trailers(b"")


def test_http2_trailers_are_a_header_block_without_pseudo_headers() -> None:
    response = H2Response(DEFAULTS, False)
    response.start(200, [], b"ab", True)
    block = response.trailers(check_trailers([(b"X-Sum", b"1"), (b"grpc-status", b"0")]))
    assert Decoder().decode(block, raw=True) == [(b"x-sum", b"1"), (b"grpc-status", b"0")]
    with pytest.raises(RuntimeError):
        response.trailers([])
