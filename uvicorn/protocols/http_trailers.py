"""Trailer fields (RFC 9110 section 6.5): what an app may send after a response's body, and how
each protocol carries them, sans I/O.

HTTP/1.1 carries them in the trailer section of a chunked body (RFC 9112 section 7.1.2), and
only to a client that said it accepts them (``TE: trailers``, RFC 9110 section 10.1.4): to any
other, and in a body that is not chunked, they are dropped, as the section allows ("a recipient
MAY discard"). HTTP/2 carries them in a last HEADERS frame (RFC 9113 section 8.1).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http_fields import check_headers

# RFC 9110 section 6.5.1: fields that must not be trailers, since a recipient needs them before
# the content or to route, frame, authenticate or control the message (its list, plus the
# connection-specific fields, which are never forwarded, and the trailer's own declarations).
PROHIBITED = frozenset(
    [
        # framing
        b"content-length", b"transfer-encoding", b"trailer", b"te",
        # routing and connection
        b"host", b"connection", b"keep-alive", b"proxy-connection", b"upgrade",
        # request modifiers and controls
        b"expect", b"max-forwards", b"range", b"if-match", b"if-none-match",
        b"if-modified-since", b"if-unmodified-since", b"if-range", b"cache-control",
        b"pragma",
        # authentication and cookies
        b"authorization", b"proxy-authorization", b"www-authenticate",
        b"proxy-authenticate", b"set-cookie", b"cookie",
        # response control data (RFC 9110 section 15) and content processing
        b"age", b"expires", b"date", b"location", b"retry-after", b"vary", b"warning",
        b"content-encoding", b"content-type", b"content-range",
    ]
)  # fmt: skip


def check_trailers(fields: Any) -> list[tuple[bytes, bytes]]:
    """``fields`` as lower-case (name, value) byte pairs, or the TypeError or ValueError a
    response head's fields would raise, or a ValueError for a field that must not be a
    trailer."""
    pairs = [(name.lower(), value) for name, value in check_headers(fields)]
    for name, _ in pairs:
        if name in PROHIBITED:
            raise ValueError(
                f"{name.decode('latin-1')!r} cannot be a trailer field (RFC 9110 section 6.5.1)"
            )
    return pairs


def accepts_trailers(headers: list[list[bytes]]) -> bool:
    """Whether a request's fields say its client accepts trailers (``TE: trailers``)."""
    for name, value in headers:
        if name == b"te" and b"trailers" in [
            member.split(b";")[0].strip() for member in value.lower().split(b",")
        ]:
            return True
    return False


def trailer_section(fields: list[tuple[bytes, bytes]]) -> bytes:
    """The end of a chunked body with these (checked) trailer fields (RFC 9112 section 7.1)."""
    return b"0\r\n" + b"".join(b"%s: %s\r\n" % field for field in fields) + b"\r\n"
