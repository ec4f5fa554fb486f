"""The header fields of a response (http_fields.py): a field an app sent before is found by its
(name, value) pair, and answers as it did the first time; what cannot be a key, or should not
be kept, is checked and encoded each time."""

from __future__ import annotations

from typing import Any

import pytest

from uvicorn.protocols import http_fields
from uvicorn.protocols.http_defaults import HeaderDefaults
from uvicorn.protocols.http_fields import encode_headers
from uvicorn.protocols.http_response import Response

DEFAULTS = HeaderDefaults(date_header=False, server_header=False)


def encoded(headers: Any, keep_length: bool = True) -> tuple[bytes, tuple[Any, ...]]:
    parts: list[bytes] = []
    result = encode_headers(headers, parts, keep_length)
    return b"".join(parts), result


def response(headers: Any, content: bytes) -> bytes:
    return Response(DEFAULTS, False, "1.1", True).start(200, headers, content, False)


def test_a_field_answers_the_same_from_the_cache() -> None:
    field = (b"X-Cached", b"once")
    http_fields._LINES.pop(field, None)
    first = encoded([field])
    assert field in http_fields._LINES
    assert encoded([field]) == first == (b"X-Cached: once\r\n", (-1, 0, None))
    # The same field as a list (the messaging interface's examples) is the same key.
    assert encoded([[b"X-Cached", b"once"]]) == first


def test_special_fields_from_the_cache_keep_their_meaning() -> None:
    headers = [
        (b"content-length", b"5"),
        (b"Connection", b"close"),
        (b"transfer-encoding", b"chunked"),
        (b"date", b"today"),
        (b"server", b"ours"),
    ]
    for _ in range(2):  # learnt, then from the cache
        assert encoded(headers) == (
            b"content-length: 5\r\nConnection: close\r\ndate: today\r\nserver: ours\r\n",
            (5, 3, {b"close"}),
        )
        assert encoded(headers, keep_length=False)[0].startswith(b"Connection: close\r\n")
    with pytest.raises(ValueError, match="conflicting content-length headers: 5 and 6"):
        encoded([(b"content-length", b"5"), (b"content-length", b"6")])
    # A declared length still binds the body (the cache holds the length, not a verdict).
    with pytest.raises(ValueError, match="content-length is 5 but the response has 4 bytes"):
        response([(b"content-length", b"5")], b"four")
    assert response([(b"content-length", b"5")], b"fives").endswith(b"\r\n\r\nfives")


@pytest.mark.parametrize("value", [bytearray(b"kept"), memoryview(b"kept")])
def test_a_value_that_cannot_be_a_key_is_encoded_each_time(value: Any) -> None:
    size = len(http_fields._LINES)
    for _ in range(2):
        assert encoded([(b"x-view", value)])[0] == b"x-view: kept\r\n"
    assert len(http_fields._LINES) == size


def test_long_lines_are_not_kept() -> None:
    value = b"v" * (http_fields._LINE_LIMIT - len(b"x-long: \r\n") + 1)
    assert encoded([(b"x-long", value)])[0] == b"x-long: " + value + b"\r\n"
    assert (b"x-long", value) not in http_fields._LINES
    encoded([(b"x-long", value[1:])])  # (the longest line kept)
    assert (b"x-long", value[1:]) in http_fields._LINES


def test_a_full_cache_starts_over() -> None:
    for n in range(http_fields._LINES_MAX + 10):
        encoded([(b"etag", b"%d" % n)])
        assert len(http_fields._LINES) <= http_fields._LINES_MAX
    assert (b"etag", b"%d" % (http_fields._LINES_MAX + 9)) in http_fields._LINES


@pytest.mark.parametrize("value", [b"a\r\nx-injected: 1", b"a\nb", b"a\0b"])
def test_a_bad_value_is_refused_though_its_name_is_known(value: bytes) -> None:
    encoded([(b"x-known", b"fine")])
    with pytest.raises(ValueError, match="CR, LF and NUL are not allowed"):
        encoded([(b"x-known", value)])
    assert (b"x-known", value) not in http_fields._LINES
