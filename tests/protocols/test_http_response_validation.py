"""Response: malformed statuses and headers get a TypeError or ValueError naming the value,
and nothing is sent (the response stays IDLE, so a 500 can still be)."""

from __future__ import annotations

import http
from typing import Any

import pytest

from uvicorn.protocols.http_defaults import HeaderDefaults
from uvicorn.protocols.http_response import Response, ResponseState

DEFAULTS = HeaderDefaults(date_header=False)


def start(status: Any = 200, headers: Any = ()) -> Response:
    r = Response(DEFAULTS, False, "1.1", True)
    try:
        r.start(status, headers, b"", False)
    finally:
        assert r.state is ResponseState.IDLE or r.status == status
    return r


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (True, "invalid status True: must be an int, got bool"),
        (False, "invalid status False: must be an int, got bool"),
        ("200", "invalid status '200': must be an int, got str"),
        (200.0, "invalid status 200.0: must be an int, got float"),
        (None, "invalid status None: must be an int, got NoneType"),
        (b"200", "invalid status b'200': must be an int, got bytes"),
    ],
)
def test_status_of_the_wrong_type(status: Any, message: str) -> None:
    with pytest.raises(TypeError) as info:
        start(status)
    assert str(info.value) == message


@pytest.mark.parametrize("status", [101, 99, 600, 0, -1, 1000])
def test_status_out_of_range(status: int) -> None:
    with pytest.raises(ValueError) as info:
        start(status)
    assert str(info.value) == f"invalid status {status}: must be 100-599, other than 101"


def test_int_subclass_status() -> None:
    r = Response(DEFAULTS, False, "1.1", True)
    assert r.start(http.HTTPStatus.CREATED, [], b"", False).startswith(b"HTTP/1.1 201 Created\r\n")
    assert r.status == 201 and type(r.status) is int


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([["content-type", b"text/plain"]], "invalid header name 'content-type': must be bytes"),
        (
            [[b"content-type", "text/plain"]],
            "invalid value 'text/plain' for header b'content-type'",
        ),
        ([[b"x-a", 5]], "invalid value 5 for header b'x-a': must be bytes, got int"),
        ([[None, b"v"]], "invalid header name None: must be bytes, got NoneType"),
        ([[b"x"]], r"invalid header \[b'x'\]: must be a \[name, value\] pair"),
        ([(b"x", b"y", b"z")], r"invalid header \(b'x', b'y', b'z'\): must be a \[name, value\]"),
        ([b"xy"], r"invalid header b'xy': must be a \[name, value\] pair"),
        ([[[b"x"], b"y"]], r"invalid header name \[b'x'\]: must be bytes, got list"),
        ("abc", r"invalid headers 'abc': must be a list of \[name, value\] pairs"),
        (None, r"invalid headers None: must be a list of \[name, value\] pairs"),
        ({b"x": b"y"}, r"invalid headers \{b'x': b'y'\}: must be a list"),
        (5, r"invalid headers 5: must be a list"),
    ],
)
def test_headers_of_the_wrong_type(headers: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        start(headers=headers)


@pytest.mark.parametrize(
    "value", [b"a\r\nb", b"a\nb", b"a\rb", b"a\x00b", b"\r\n", b"x\r\nset-cookie: evil=1"]
)
def test_header_value_with_cr_lf_or_nul(value: bytes) -> None:
    message = f"invalid value {value!r} for header b'x-a': CR, LF and NUL are not allowed"
    with pytest.raises(ValueError) as info:
        start(headers=[[b"ok", b"fine"], [b"x-a", value]])
    assert str(info.value) == message


@pytest.mark.parametrize(
    "name", [b"x a", b"x:", b"", b"x\r\ny", b"(x)", b"caf\xc3\xa9", b"x\x00", b"x/y", b"x\t"]
)
def test_header_name_not_a_token(name: bytes) -> None:
    with pytest.raises(ValueError) as info:
        start(headers=[[name, b"v"]])
    assert str(info.value) == f"invalid header name {name!r}: not an HTTP token (RFC 9110 5.1)"


def test_valid_name_is_still_checked_for_values_after_caching() -> None:
    start(headers=[[b"x-cached", b"v"]])
    with pytest.raises(ValueError, match="CR, LF and NUL are not allowed"):
        start(headers=[[b"x-cached", b"v\r\nx: y"]])


@pytest.mark.parametrize("value", [b"abc", b"-1", b"+1", b" 1", b"1 ", b"1.0", b"", b"0x10"])
def test_invalid_content_length(value: bytes) -> None:
    with pytest.raises(ValueError) as info:
        start(headers=[[b"content-length", value]])
    assert str(info.value) == f"invalid content-length header {value!r}: must be digits"


def test_bytes_like_values_are_accepted() -> None:
    r = Response(DEFAULTS, False, "1.1", True)
    data = r.start(200, [(b"x-a", bytearray(b"1")), [b"x-b", memoryview(b"2")]], b"", False)
    assert data == (
        b"HTTP/1.1 200 OK\r\nserver: uvicorn\r\nx-a: 1\r\nx-b: 2\r\ncontent-length: 0\r\n\r\n"
    )


def test_a_rejected_start_can_be_followed_by_a_valid_one() -> None:
    r = Response(DEFAULTS, False, "1.1", True)
    with pytest.raises(ValueError):
        r.start(200, [[b"x", b"a\nb"]], b"", False)
    assert r.state is ResponseState.IDLE
    assert r.start(500, [], b"", False).startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
