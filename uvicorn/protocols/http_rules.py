"""What RFC 9110 and RFC 9112 say about requests that llhttp leaves to the server: the status
to answer for each kind of malformed request, and the forms of a request target.

The parser's helpers (``http_parser.py``), kept apart so that it holds only the parsing."""

from __future__ import annotations

import re
from typing import Any, Final

import httptools

# llhttp's error texts that deserve a more precise status than 400.
_NOT_IMPLEMENTED: Final = ("Request has invalid `Transfer-Encoding`",)
_VERSION_ERRORS: Final = ("Invalid HTTP version", "Pause on PRI/Upgrade")

# RFC 9110 section 5.6.2: token = 1*tchar.
TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 section 7.2: Host = uri-host [ ":" port ], uri-host being an IP-literal or a reg-name
# (RFC 3986 section 3.2.2; an IPv4 address is a valid reg-name). Empty is allowed.
HOST: Final = re.compile(
    rb"(?:\[[0-9A-Za-z:.\-_~!$&'()*+,;=%]+\]|[0-9A-Za-z.\-_~!$&'()*+,;=%]*)(?::[0-9]*)?"
)
# Bytes kept of each request's start, to tell a bad request line from a method.
METHOD_PEEK: Final = 32


H2_PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Reject(Exception):
    """Raised inside an httptools callback to stop parsing with a given answer."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason


def status_for(error: str) -> tuple[int, str]:
    if error.startswith(_VERSION_ERRORS):
        return 505, "HTTP version not supported"
    if error.startswith(_NOT_IMPLEMENTED):
        # RFC 9112 section 6.1: an unknown transfer coding gets 501 (Not Implemented).
        return 501, "unsupported transfer coding"
    return 400, error.lower().replace("`", "")


def method_error(start: bytes, error: str) -> tuple[int, str]:
    """llhttp knows only the methods it knows. RFC 9110 section 9.1: "An origin server that
    receives a request method that is unrecognized or not implemented SHOULD respond with the
    501"; but a request line whose method is not even a token does not match the grammar: 400
    (RFC 9112 section 2.2). Judged on the bytes llhttp read before it stopped, so that the
    answer does not depend on how many more had arrived (b"j," whole or byte by byte)."""
    method = _read_by_llhttp(start[:METHOD_PEEK]).partition(b" ")[0]
    if method and TOKEN.fullmatch(method):
        return 501, "unsupported method"
    return 400, "malformed request line"


def _read_by_llhttp(start: bytes) -> bytes:
    """``start`` up to the byte at which llhttp stops, found by feeding a fresh parser one byte
    at a time (only for a request being refused)."""
    parser = httptools.HttpRequestParser(_NoCallbacks())
    for end in range(1, len(start) + 1):
        try:
            parser.feed_data(start[end - 1 : end])
        except httptools.HttpParserError:
            return start[:end]
    return start


class _NoCallbacks:
    pass


def no_version(start: bytes) -> Reject:
    """llhttp reads both "GET / HTTP/0.9" and a request line without a version ("GET /") as
    HTTP/0.9: the first is of a version we do not serve (505), the second is malformed (400: RFC
    9112 section 3, request-line = method SP request-target SP HTTP-version). ``start`` holds
    the whole request line (a target has no space in it)."""
    line = start.partition(b"\n")[0]
    if b" HTTP/" in line.partition(b" ")[2]:
        return Reject(505, "HTTP/0.9 is not supported")
    return Reject(400, "no HTTP version in the request line")


def body_framing(headers: list[list[bytes]]) -> bytes | None:
    """The header line that declares the content of a (validated) request head, if any."""
    for name, value in headers:
        if name == b"content-length":
            return b"content-length: %d\r\n" % int(value) if int(value) else None
        if name == b"transfer-encoding":
            return b"transfer-encoding: chunked\r\n"
    return None


def split_target(target: bytes, method: str) -> tuple[bytes, bytes]:
    """Split a request target into the path and the query string (RFC 9112 section 3.2)."""
    if target[:1] == b"/":
        if b"#" in target:
            # A fragment is no part of a request target (RFC 9112 section 3.2): drop it, as
            # clients should have.
            target = target.partition(b"#")[0]
        path, _, query = target.partition(b"?")
        return path, query
    if target[:1] == b"*":
        # RFC 9112 section 3.2.4: the asterisk-form "is only used for a server-wide OPTIONS
        # request".
        if target == b"*" and method == "OPTIONS":
            return target, b""
        raise Reject(400, "invalid request target")
    # absolute-form (RFC 9112 section 3.2.2): the server MUST accept it; use its path.
    try:
        # (Any: httptools' stub says bytes for fields that are None when absent, and mypyc
        # would check that claim, refusing the None.)
        url: Any = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        raise Reject(400, "invalid request target") from None
    if url.userinfo is not None:
        # RFC 9110 section 4.2.4: a recipient SHOULD "treat its presence as an error".
        raise Reject(400, "invalid request target: userinfo")
    return url.path or b"/", url.query or b""


# What the Expect fields of a head make: none, 100-continue alone, or another expectation. Ints
# (the two last truthy, so that one check per head sees either), not False/True/2: mypyc holds
# a ``bool | int`` as an int, and True comes back 1 (``is True`` then fails).
NO_EXPECTATION: Final = 0
EXPECT_CONTINUE: Final = 1
OTHER_EXPECTATION: Final = 2
_OWS: Final = b" \t"


def expectation(value: bytes, seen: int) -> int:
    """What an Expect field's ``value`` makes of the expectations ``seen`` so far in the head:
    EXPECT_CONTINUE if only 100-continue, OTHER_EXPECTATION once another one came. RFC 9110 section
    10.1.1: Expect = #expectation; 100-continue is the one we know, and with any other, in any
    Expect field, no 100 Continue is sent."""
    members = {member.strip(_OWS) for member in value.lower().split(b",")}
    if members != {b"100-continue"}:
        return OTHER_EXPECTATION
    return OTHER_EXPECTATION if seen == OTHER_EXPECTATION else EXPECT_CONTINUE


def check_transfer_coding(te: bytes, version: str) -> None:
    """Raises ``Reject`` for a Transfer-Encoding (all its fields, joined) that we do not serve."""
    if version == "1.0":
        # RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
        raise Reject(400, "Transfer-Encoding in an HTTP/1.0 request")
    if te.strip(_OWS).lower() != b"chunked":
        # RFC 9112 section 6.1: "A server that receives a request message with a transfer
        # coding it does not understand SHOULD respond with 501". llhttp accepts any coding
        # before a final chunked one, which would hand the app a body still encoded; chunked
        # alone is what we decode.
        raise Reject(501, "unsupported transfer coding")
