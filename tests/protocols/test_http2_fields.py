"""RFC 9113 sections 8.1 to 8.3 (and RFC 8441): what a request's fields must be, with header
blocks fed to ``H2Core``. A malformed request is a stream error of type PROTOCOL_ERROR (8.1.1);
one refused by a limit or as unsupported is answered (MALFORMED: 431, 414, 501)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.protocols.h2frames import GET, PROTOCOL_ERROR, Client, data, headers, kinds, post
from uvicorn.protocols.http2 import BODY, END, MALFORMED, REQUEST, RESET, H2Settings
from uvicorn.protocols.http_events import Limits

SCHEME, PATH, AUTHORITY = GET[1], GET[2], GET[3]


def malformed(fields: list[tuple[str, str]], config: H2Settings | None = None) -> None:
    """The request is malformed: RST_STREAM PROTOCOL_ERROR, no request, and the connection
    goes on (8.1.1)."""
    client = Client(config)
    assert client.request(1, fields) == []
    assert client.sent() == [("RST_STREAM", 1, PROTOCOL_ERROR)]
    client.still_serves(3)


def served(fields: list[tuple[str, str]], config: H2Settings | None = None) -> Any:
    client = Client(config)
    events = client.request(1, fields)
    assert kinds(events) == [(REQUEST, 1)], events
    return events[0][2]


def refused(fields: list[tuple[str, str]], config: H2Settings | None = None) -> tuple[Any, ...]:
    """Answered with a status, not reset: (status, reason)."""
    client = Client(config)
    (event,) = client.request(1, fields)
    assert event[0] == MALFORMED and client.sent() == []
    return event[2:]


# Section 8.3: pseudo-header fields.


@pytest.mark.parametrize("missing", [":method", ":scheme", ":path"])
def test_a_missing_request_pseudo_header_is_malformed(missing: str) -> None:
    """8.3.1: :method, :scheme and :path are required (CONNECT aside)."""
    malformed([field for field in GET if field[0] != missing])


@pytest.mark.parametrize("twice", [":method", ":scheme", ":path", ":authority"])
def test_a_duplicated_pseudo_header_is_malformed(twice: str) -> None:
    """8.3: each pseudo-header field at most once."""
    malformed([*GET[:1], *[field for field in GET if field[0] == twice], *GET[1:]])


@pytest.mark.parametrize("name", [":status", ":unknown", ":protocol"])
def test_an_unknown_or_response_pseudo_header_is_malformed(name: str) -> None:
    """8.3: only the pseudo-header fields defined for requests (:status is a response's;
    :protocol only with RFC 8441 enabled)."""
    malformed([*GET, (name, "200")])


def test_a_pseudo_header_after_a_regular_field_is_malformed() -> None:
    """8.3: pseudo-header fields come before every regular field."""
    malformed([*GET[:3], ("accept", "*/*"), AUTHORITY])


@pytest.mark.parametrize("path", ["", "index.html", "http://example.com/", "/a b", "/\x7f"])
def test_an_empty_or_not_origin_form_path_is_malformed(path: str) -> None:
    """8.3.1: :path must not be empty, and is origin-form (or '*' for OPTIONS)."""
    malformed([GET[0], SCHEME, (":path", path), AUTHORITY])


def test_options_asterisk_is_served() -> None:
    """8.3.1: '*' as :path, for OPTIONS only."""
    request = served([(":method", "OPTIONS"), SCHEME, (":path", "*"), AUTHORITY])
    assert request.method == "OPTIONS" and request.raw_path == b"*"
    malformed([GET[0], SCHEME, (":path", "*"), AUTHORITY])


def test_the_request_made_of_the_fields() -> None:
    """8.3.1: method, path and query, :authority as host first, fields in order."""
    request = served([(":method", "PATCH"), SCHEME, (":path", "/a/b?x=1&y"), AUTHORITY,
                      ("accept", "*/*"), ("x-b", "2")])  # fmt: skip
    assert (request.method, request.raw_path, request.query_string) == ("PATCH", b"/a/b", b"x=1&y")
    assert request.fields == ((b"host", b"example.com"), (b"accept", b"*/*"), (b"x-b", b"2"))
    assert request.head().http_version == "2"


@pytest.mark.parametrize("method", ["", "GE T", "G\x00T"])
def test_a_malformed_method_is_malformed(method: str) -> None:
    """8.3.1, RFC 9110 9.1: a method is a token."""
    malformed([(":method", method), SCHEME, PATH, AUTHORITY])


# Section 8.2: fields.


@pytest.mark.parametrize("name", ["Accept", "X-Upper", "a b", "a:b", "", "x\x00"])
def test_a_field_name_in_upper_case_or_not_a_token_is_malformed(name: str) -> None:
    """8.2.1: field names are lower case, and tokens."""
    malformed([*GET, (name, "v")])


@pytest.mark.parametrize("value", [" lead", "trail\t", "a\x00b", "a\rb", "a\nb"])
def test_a_field_value_with_nul_cr_lf_or_edge_whitespace_is_malformed(value: str) -> None:
    """8.2.1: no NUL, CR or LF; no leading or trailing whitespace."""
    malformed([*GET, ("x-v", value)])


CONNECTION_SPECIFIC = [
    ("connection", "keep-alive"), ("keep-alive", "timeout=5"), ("proxy-connection", "x"),
    ("transfer-encoding", "chunked"), ("upgrade", "websocket"), ("te", "gzip"),
    ("te", "trailers, gzip"),
]  # fmt: skip


@pytest.mark.parametrize("field", CONNECTION_SPECIFIC)
def test_connection_specific_fields_are_malformed(field: tuple[str, str]) -> None:
    """8.2.2: connection-specific fields, and TE with anything but "trailers"."""
    malformed([*GET, field])


def test_te_trailers_is_allowed() -> None:
    """8.2.2: TE: trailers is the one TE allowed (a token: in any case)."""
    assert (b"te", b"trailers") in served([*GET, ("te", "trailers")]).fields
    assert (b"te", b"Trailers") in served([*GET, ("te", "Trailers")]).fields


def test_cookies_are_joined_with_semicolons() -> None:
    """8.2.3: cookie fields split for compression are joined with "; "."""
    request = served([*GET, ("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2")])
    assert request.fields[-1] == (b"cookie", b"a=1; b=2")
    assert [name for name, _ in request.fields].count(b"cookie") == 1


def test_host_without_authority_and_authority_without_host() -> None:
    """8.3.1: :authority or Host; :authority becomes host for the app."""
    assert served([*GET[:3], ("host", "h.example")]).fields[0] == (b"host", b"h.example")
    assert served(GET).fields[0] == (b"host", b"example.com")
    assert served([*GET, ("host", "example.com")]).fields == ((b"host", b"example.com"),)


def test_a_host_that_differs_from_authority_is_malformed() -> None:
    """8.3.1: a Host field that differs from :authority makes the request malformed."""
    malformed([*GET, ("host", "other.example")])


# Section 8.1.1: content-length.


def test_a_body_longer_than_its_content_length_is_malformed() -> None:
    """8.1.1 (h2spec 8.1.2.6): DATA beyond content-length, a stream error at once."""
    client = Client()
    client.request(1, post(4), end_stream=False)
    assert kinds(client.send(data(1, b"abc"), data(1, b"de"))) == [
        (BODY, 1, 3), (RESET, 1, PROTOCOL_ERROR)
    ]  # fmt: skip
    assert client.sent() == [("RST_STREAM", 1, PROTOCOL_ERROR)]
    client.still_serves(3)


def test_a_body_shorter_than_its_content_length_is_malformed() -> None:
    """8.1.1: END_STREAM before content-length bytes (in DATA, or in trailers)."""
    client = Client()
    client.request(1, post(10), end_stream=False)
    assert kinds(client.send(data(1, b"abc", True))) == [(BODY, 1, 3), (RESET, 1, PROTOCOL_ERROR)]
    client.request(3, post(10), end_stream=False)
    trailers = headers(3, client.block([("x-t", "1")]))
    assert kinds(client.send(data(3, b"abc"), trailers)) == [
        (BODY, 3, 3), (RESET, 3, PROTOCOL_ERROR)
    ]  # fmt: skip
    assert client.sent() == [("RST_STREAM", 1, PROTOCOL_ERROR), ("RST_STREAM", 3, PROTOCOL_ERROR)]
    client.still_serves(5)


def test_content_length_with_end_stream_on_headers_is_malformed() -> None:
    """8.1.1: a content-length above 0 with no body at all; 0 is fine."""
    malformed(post(5))
    assert served(post(0)).content_length == 0


@pytest.mark.parametrize("values", [["abc"], ["-1"], ["1", "2"], ["\u0661"]])
def test_an_invalid_or_conflicting_content_length_is_malformed(values: list[str]) -> None:
    """8.1.1, RFC 9110 8.6: digits only, and one value."""
    malformed(post() + [("content-length", value) for value in values])


def test_a_body_matching_its_content_length() -> None:
    client = Client()
    client.request(1, post(5), end_stream=False)
    assert kinds(client.send(data(1, b"ab"), data(1, b"cde", True))) == [
        (BODY, 1, 2), (BODY, 1, 3), (END, 1)
    ]  # fmt: skip


# Section 8.1: trailers.


def test_trailers_end_the_request() -> None:
    """8.1: a trailer section, a HEADERS frame with END_STREAM, ends the request."""
    client = Client()
    client.request(1, post(), end_stream=False)
    block = client.block([("x-checksum", "abc")])
    assert kinds(client.send(data(1, b"x"), headers(1, block))) == [(BODY, 1, 1), (END, 1)]


@pytest.mark.parametrize("field", [(":path", "/x"), ("connection", "close"), ("Upper", "x")])
def test_malformed_trailers_are_a_stream_error(field: tuple[str, str]) -> None:
    """8.1 (h2spec 8.1.2.1): trailers hold no pseudo-header field, nor a malformed field."""
    client = Client()
    client.request(1, post(), end_stream=False)
    block = client.block([field])
    assert kinds(client.send(headers(1, block))) == [(RESET, 1, PROTOCOL_ERROR)]
    assert client.sent() == [("RST_STREAM", 1, PROTOCOL_ERROR)]
    client.still_serves(3)


# Limits: answered, not reset.


def test_too_many_or_too_large_fields_are_431() -> None:
    """8.2, 10.5.1: beyond the limits (the HTTP/1.1 ones), 431 on the stream."""
    limits = Limits(fields=5, field_size=100)
    config = H2Settings(limits=limits)
    assert refused([*GET, *[(f"x-{n}", "v") for n in range(6)]], config)[0] == 431
    assert refused([*GET, ("x-big", "v" * 100)], config)[0] == 431
    assert refused([*GET, ("cookie", "v" * 100)], config)[0] == 431


def test_a_header_list_beyond_max_header_list_size_is_431() -> None:
    """6.5.2, 10.5.1: beyond the SETTINGS_MAX_HEADER_LIST_SIZE we announced: 431."""
    config = H2Settings(limits=Limits(request_line=100, fields=2, field_size=100))
    assert config.max_header_list_size == 100 + 2 * 132
    assert refused([*GET, ("x-a", "v" * 90), ("x-b", "v" * 90), ("x-c", "v" * 90)], config)[0] \
        == 431  # fmt: skip


def test_a_path_beyond_the_request_line_limit_is_414() -> None:
    config = H2Settings(limits=Limits(request_line=50))
    assert refused([GET[0], SCHEME, (":path", "/" + "a" * 60), AUTHORITY], config)[0] == 414


# Section 8.5 and RFC 8441: CONNECT.


def test_a_plain_connect_is_501() -> None:
    """8.5: CONNECT asks for a tunnel, which an origin server does not offer (501)."""
    assert refused([(":method", "CONNECT"), AUTHORITY])[0] == 501


def test_extended_connect_when_enabled() -> None:
    """RFC 8441 section 4: with SETTINGS_ENABLE_CONNECT_PROTOCOL, CONNECT with :protocol, and
    the :scheme, :path and :authority of the resource."""
    config = H2Settings(extended_connect=True)
    fields = [(":method", "CONNECT"), (":protocol", "websocket"), SCHEME, (":path", "/chat"),
              AUTHORITY, ("sec-websocket-version", "13")]  # fmt: skip
    request = served(fields, config)
    assert request.method == "CONNECT" and request.raw_path == b"/chat"
    assert request.protocol == b"websocket"
    malformed(fields, None)  # disabled: :protocol is unknown
    malformed([field for field in fields if field[0] != ":authority"], config)
    malformed([field for field in fields if field[0] != ":path"], config)
    malformed([(":method", "GET"), *fields[1:]], config)  # :protocol without CONNECT
