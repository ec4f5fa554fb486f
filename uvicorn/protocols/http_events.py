"""What the HTTP/1.1 request parser produces: its events, its states and its limits.

Kept apart from the parser itself (``http_parser.py``) so that the parser module holds only the
parsing; the parser re-exports these names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Limits:
    """Request head limits; beyond them the request is answered 414 or 431 and the connection
    closed, so a hostile head costs at most this much memory. ``body``: the largest request
    body (``--limit-request-body``; None: any), whose declared content-length the cores check
    (413) and whose received bytes the request cycle counts."""

    request_line: int = 8190
    fields: int = 100
    field_size: int = 8190
    body: int | None = None

    @property
    def head_size(self) -> int:
        return self.request_line + self.fields * (self.field_size + 4) + 4


class ParserState(enum.Enum):
    IDLE = "idle"  # between requests: no byte of the next one received
    HEAD = "head"  # part of a request head received
    BODY = "body"  # head complete, body (or trailers) arriving
    CLOSED = "closed"  # the last request (not keep-alive) is complete; later bytes are ignored
    UPGRADED = "upgraded"  # the connection now speaks another protocol
    FAILED = "failed"  # the peer broke the protocol; nothing more is parsed


class RequestHead:
    """A complete request head. ``headers`` are ``[lower-case name, value]`` pairs in order.

    Made only by the parser, which sets every field itself rather than through an
    ``__init__``: it makes one per request, and a class call costs about as much as the rest
    of that step together."""

    __slots__ = (
        "method",
        "raw_path",
        "query_string",
        "http_version",
        "headers",
        "keep_alive",
        "expect_continue",
        "upgrade",
        "proxied",
    )
    method: str
    raw_path: bytes
    query_string: bytes
    http_version: str
    headers: list[list[bytes]]
    keep_alive: bool
    expect_continue: bool  # Expect: 100-continue, on an HTTP/1.1 request
    upgrade: bytes | None  # the (lower-case) protocol of an upgrade we may switch to
    proxied: bool  # it carries X-Forwarded-* or Forwarded fields

    def __repr__(self) -> str:
        return f"<RequestHead {self.method} {self.raw_path!r} HTTP/{self.http_version}>"


# A RequestHead made without __init__ (the parsers set every field themselves): RequestHead's
# own __new__, not object.__new__ (the same function in pure Python), which refuses a class
# that mypyc compiled ("not safe").
new_head: Final = RequestHead.__new__


class Body:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class EndOfRequest:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END_OF_REQUEST"


END_OF_REQUEST: Final = EndOfRequest()


class Upgrade:
    """The request asked to switch protocols and was complete; ``data`` is what followed it."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class Preface:
    """The connection opened with HTTP/2's preface (RFC 9113 section 3.4: prior knowledge);
    ``data`` is what followed it."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class BadRequest:
    """The peer broke the protocol: answer ``status`` (if nothing was answered yet) and close."""

    __slots__ = ("status", "reason")

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"<BadRequest {self.status} {self.reason!r}>"


Event = RequestHead | Body | EndOfRequest | Upgrade | Preface | BadRequest
