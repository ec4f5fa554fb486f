"""What an HTTP/2 request's header fields must be (RFC 9113 sections 8.2 and 8.3), and the
``RequestHead`` they make: the same head an HTTP/1.1 request makes, so that everything after the
protocol (the request cycle, both app interfaces, the access log) is shared.

A verdict on a field depends on the field alone, so it is kept for the whole process
(``_VERDICTS``); a header block the connection has seen before decodes to the same request while
the HPACK dynamic table is unchanged, so the connection keeps validated requests by block
(``http2.py``). Each request still gets a head, and a header list, of its own.
"""

from __future__ import annotations

import base64
from typing import Any

from uvicorn.protocols.http_events import Limits, RequestHead, new_head

# RFC 9113 section 8.2.2: fields a connection-specific header would carry in HTTP/1.1.
CONNECTION_SPECIFIC = frozenset(
    [b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"]
)
# RFC 9110 section 5.6.2 tchar, upper case excluded (RFC 9113 section 8.2.1).
_NAME_BYTES = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")
# What a request target may hold (RFC 3986 section 2 and the '%' of its escapes): visible
# ASCII, as the HTTP/1.1 parser admits.
_PATH_BYTES = frozenset(range(0x21, 0x7F))
_TOKEN_BYTES = _NAME_BYTES | frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")

# Field verdicts.
BAD, REGULAR, PSEUDO, COOKIE, HOST, LENGTH, EXPECT, PROXY = range(8)
_SPECIAL = {
    b"cookie": COOKIE,
    b"host": HOST,
    b"expect": EXPECT,
    b"x-forwarded-for": PROXY,
    b"x-forwarded-proto": PROXY,
    b"forwarded": PROXY,
}
_VERDICTS: dict[tuple[bytes, bytes], int] = {}
_VERDICTS_MAX = 4096
_METHODS: dict[bytes, str] = {}


class Malformed(Exception):
    """The request is malformed (RFC 9113 section 8.1.1): answered ``status``, then the stream
    is reset."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Request:
    """A validated request, shared by every request of the connection with the same header
    block; ``head()`` makes each its own ``RequestHead``."""

    __slots__ = (
        "method",
        "raw_path",
        "query_string",
        "fields",
        "content_length",
        "expect_continue",
        "protocol",
        "proxied",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        fields: tuple[tuple[bytes, bytes], ...],
        content_length: int,
        expect_continue: bool,
        protocol: bytes | None,
        proxied: bool,
    ) -> None:
        self.method = method
        raw_path, _, query_string = target.partition(b"?")
        self.raw_path = raw_path
        self.query_string = query_string
        self.fields = fields  # lower-case names, host first, cookies joined
        self.content_length = content_length  # -1 if none was given
        self.expect_continue = expect_continue
        self.protocol = protocol  # RFC 8441: the :protocol of an extended CONNECT
        self.proxied = proxied

    def head(self) -> RequestHead:
        # Every field set here, without a call to __init__ (as the HTTP/1.1 parser does).
        head = new_head(RequestHead)
        head.method = self.method
        head.raw_path = self.raw_path
        head.query_string = self.query_string
        head.http_version = "2"
        head.headers = [[name, value] for name, value in self.fields]
        head.keep_alive = True
        head.expect_continue = self.expect_continue
        head.upgrade = self.protocol
        head.proxied = self.proxied
        return head


def verdict(field: tuple[bytes, bytes]) -> int:
    """What ``field`` is, or BAD (RFC 9113 section 8.2.1 and 8.2.2)."""
    name, value = field
    if value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"):
        kind = BAD  # leading or trailing whitespace
    elif 0 in value or 10 in value or 13 in value:
        kind = BAD
    elif name[:1] == b":":
        kind = PSEUDO
    elif not name or not _NAME_BYTES.issuperset(name):
        kind = BAD  # not a token, or not lower case
    elif name in CONNECTION_SPECIFIC or (name == b"te" and value.lower() != b"trailers"):
        # (Section 8.2.2: TE holds "trailers" alone; its value is a token, matched without
        # regard to case, RFC 9110 section 10.1.4.)
        kind = BAD
    elif name == b"content-length":
        kind = LENGTH if value.isdigit() and value.isascii() else BAD
    else:
        kind = _SPECIAL.get(name, REGULAR)
    if len(_VERDICTS) >= _VERDICTS_MAX:
        _VERDICTS.clear()
    _VERDICTS[field] = kind
    return kind


def validate(
    fields: list[tuple[bytes, bytes]], limits: Limits, extended_connect: bool
) -> Request:
    """The request ``fields`` make, or ``Malformed``. ``limits`` are the HTTP/1.1 ones: as many
    fields, each as long (431 beyond them); a :path as long as a request line (414)."""
    if len(fields) > limits.fields + 4:  # (the pseudo-header fields are not headers)
        raise Malformed(431, "too many header fields")
    method = path = scheme = authority = protocol = None
    headers: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    host = None
    content_length = -1
    expect_continue = False
    proxied = False
    regular = False
    verdicts = _VERDICTS
    field_size = limits.field_size
    for field in fields:
        kind = verdicts.get(field)
        if kind is None:
            kind = verdict(field)
        if kind == REGULAR:
            regular = True
            headers.append(field)
            if len(field[1]) + len(field[0]) > field_size:
                raise Malformed(431, "header field too large")
            continue
        if kind == PSEUDO:
            # RFC 9113 section 8.3: pseudo-header fields come first, each once, and only
            # those defined for requests.
            if regular:
                raise Malformed(400, "pseudo-header field after a regular one")
            name, value = field
            if name == b":method" and method is None:
                method = value
            elif name == b":path" and path is None:
                path = value
            elif name == b":scheme" and scheme is None:
                scheme = value
            elif name == b":authority" and authority is None:
                authority = value
            elif name == b":protocol" and protocol is None and extended_connect:
                protocol = value
            else:
                raise Malformed(400, f"unknown or repeated pseudo-header field {name!r}")
            continue
        if kind == BAD:
            raise Malformed(400, f"malformed header field {field[0]!r}")
        regular = True
        if len(field[1]) + len(field[0]) > field_size:
            raise Malformed(431, "header field too large")
        if kind == COOKIE:
            cookies.append(field[1])  # RFC 9113 section 8.2.3: joined below
            continue
        if kind == HOST:
            if host is not None:
                raise Malformed(400, "duplicate Host header")
            host = field[1]
            continue
        if kind == LENGTH:
            length = int(field[1])
            if content_length >= 0 and length != content_length:
                raise Malformed(400, "conflicting content-length fields")
            content_length = length
        elif kind == EXPECT:
            # As on HTTP/1.1: 100 Continue only for an expectation of that alone.
            expect_continue = field[1].lower() == b"100-continue"
        else:
            proxied = True
        headers.append(field)
    if method is None:
        raise Malformed(400, "no :method")
    if not _TOKEN_BYTES.issuperset(method) or not method:
        raise Malformed(400, "malformed :method")
    if method == b"CONNECT":
        # RFC 9113 section 8.5: a plain CONNECT asks for a tunnel, which an origin server does
        # not offer (501, as on HTTP/1.1). RFC 8441 section 4: an extended CONNECT (with
        # :protocol) has the :scheme, :path and :authority of the resource.
        if protocol is None:
            raise Malformed(501, "CONNECT is not supported")
        if authority is None:
            raise Malformed(400, "extended CONNECT without :authority")
    elif protocol is not None:
        raise Malformed(400, ":protocol without CONNECT")
    if scheme is None or path is None:
        raise Malformed(400, "no :scheme or no :path")
    if not path or not _PATH_BYTES.issuperset(path):
        raise Malformed(400, "malformed :path")
    # RFC 9113 section 8.3.1: origin-form, or "*" for OPTIONS.
    if path[:1] != b"/" and not (path == b"*" and method == b"OPTIONS"):
        raise Malformed(400, ":path is not origin-form")
    if len(path) > limits.request_line:
        raise Malformed(414, "request target too long")
    if authority is not None:
        # RFC 9113 section 8.3.1: a Host field that differs from :authority is malformed.
        if host is not None and host != authority:
            raise Malformed(400, "Host differs from :authority")
        host = authority
    if host is not None:
        headers.insert(0, (b"host", host))
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    method_name = _METHODS.get(method)
    if method_name is None:
        method_name = method.decode("ascii")
        if len(_METHODS) < 64:
            _METHODS[method] = method_name
    return Request(
        method_name,
        path.partition(b"#")[0],
        tuple(headers),
        content_length,
        expect_continue,
        protocol.lower() if protocol is not None else None,
        proxied,
    )


def trailers_valid(fields: list[tuple[bytes, bytes]]) -> bool:
    """RFC 9113 section 8.1: trailers hold no pseudo-header field (and are otherwise dropped:
    neither interface has request trailers)."""
    verdicts = _VERDICTS
    for field in fields:
        kind: Any = verdicts.get(field)
        if kind is None:
            kind = verdict(field)
        if kind in (PSEUDO, BAD):
            return False
    return True


# The fields of an h2c upgrade request that were HTTP/1.1's alone (RFC 9113 section 8.2.2).
_UPGRADE_FIELDS = frozenset([b"connection", b"upgrade", b"http2-settings", b"keep-alive"])


def h2c_settings(head: RequestHead) -> bytes | None:
    """The SETTINGS payload an h2c upgrade request carries: exactly one HTTP2-Settings field,
    base64url (RFC 7540 section 3.2.1); None if it has not that."""
    values = [value for name, value in head.headers if name == b"http2-settings"]
    if len(values) != 1:
        return None
    value = values[0].strip()
    try:
        payload = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    except ValueError:
        return None
    return payload if len(payload) % 6 == 0 else None


def as_stream_one(head: RequestHead) -> RequestHead:
    """The h2c upgrade request ``head`` made HTTP/2 stream 1's (RFC 7540 section 3.2): its
    HTTP/1.1-only fields gone."""
    head.http_version = "2"
    head.upgrade = None
    head.headers = [field for field in head.headers if field[0] not in _UPGRADE_FIELDS]
    return head
