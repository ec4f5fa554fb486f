"""HTTP/1.1 request parsing, sans I/O: bytes in, events out.

``RequestParser.receive_data(data)`` feeds bytes to httptools (llhttp) and returns the events they
completed: ``RequestHead``, ``Body``, ``END_OF_REQUEST``, ``Upgrade`` or, when the peer broke the
protocol, one final ``BadRequest`` naming the status to answer (RFC 9112). After a ``BadRequest``
the connection must be closed: the parser accepts nothing more.

llhttp is strict by default and already rejects what request smuggling relies on (duplicate or
invalid Content-Length, Content-Length with Transfer-Encoding, bare CR or LF, obs-fold, invalid
characters). This module adds what llhttp leaves to the server: size limits, the Host rules, the
HTTP versions we serve, and trailers that never reach the request headers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import httptools

# llhttp's error texts that deserve a more precise status than 400.
_NOT_IMPLEMENTED = ("Request has invalid `Transfer-Encoding`",)
_VERSION_ERRORS = ("Invalid HTTP version", "Pause on PRI/Upgrade")

_METHODS: dict[bytes, str] = {}  # bytes -> str, so a request's method is not decoded each time


@dataclass(frozen=True)
class Limits:
    """Request head limits; beyond them the request is answered 414 or 431 and the connection
    closed, so a hostile head costs at most this much memory."""

    request_line: int = 8190
    fields: int = 100
    field_size: int = 8190

    @property
    def head_size(self) -> int:
        return self.request_line + self.fields * (self.field_size + 4) + 4


class ParserState(enum.Enum):
    IDLE = "idle"  # between requests: no byte of the next one received
    HEAD = "head"  # part of a request head received
    BODY = "body"  # head complete, body (or trailers) arriving
    UPGRADED = "upgraded"  # the connection now speaks another protocol
    FAILED = "failed"  # the peer broke the protocol; nothing more is parsed


class RequestHead:
    """A complete request head. ``headers`` are ``[lower-case name, value]`` pairs in order."""

    __slots__ = (
        "method",
        "raw_path",
        "query_string",
        "http_version",
        "headers",
        "keep_alive",
        "expect_continue",
        "upgrade",
    )

    def __init__(
        self,
        method: str,
        raw_path: bytes,
        query_string: bytes,
        http_version: str,
        headers: list[list[bytes]],
        keep_alive: bool,
        expect_continue: bool,
        upgrade: bytes | None,
    ) -> None:
        self.method = method
        self.raw_path = raw_path
        self.query_string = query_string
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.upgrade = upgrade

    def __repr__(self) -> str:
        return f"<RequestHead {self.method} {self.raw_path!r} HTTP/{self.http_version}>"


class Body:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class EndOfRequest:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END_OF_REQUEST"


END_OF_REQUEST = EndOfRequest()


class Upgrade:
    """The request asked to switch protocols and was complete; ``data`` is what followed it."""

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


Event = RequestHead | Body | EndOfRequest | Upgrade | BadRequest


class _Reject(Exception):
    """Raised inside an httptools callback to stop parsing with a given answer."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason


class RequestParser:
    """Parses the requests of one connection. ``upgrades`` names the protocols (lower-case
    bytes) the caller can switch to; other upgrade requests are served as plain HTTP."""

    def __init__(self, limits: Limits = Limits(), upgrades: frozenset[bytes] = frozenset()) -> None:
        self.limits = limits
        self.upgrades = upgrades
        self.state = ParserState.IDLE
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[Event] = []
        self._url = b""
        self._headers: list[list[bytes]] = []
        self._head_bytes = 0  # bytes fed since the current head started
        self._hosts = 0
        self._expect_continue = False
        self._upgrade: bytes | None = None

    # The caller's side.

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completed, in order."""
        state = self.state
        if state is ParserState.FAILED or state is ParserState.UPGRADED:
            return []
        if state is not ParserState.BODY:
            if state is ParserState.IDLE:
                self.state = ParserState.HEAD
            self._head_bytes += len(data)
        events = self._events = []
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._on_upgrade(data[exc.args[0] :])
        except httptools.HttpParserCallbackError as exc:
            reject = exc.__context__
            if not isinstance(reject, _Reject):
                raise
            self._fail(reject.status, reject.reason)
        except httptools.HttpParserInvalidMethodError:
            # RFC 9110 section 9.1: an unrecognized method gets 501 (Not Implemented).
            self._fail(501, "unsupported or invalid method")
        except httptools.HttpParserInvalidURLError:
            self._fail(400, "invalid request target")
        except httptools.HttpParserError as exc:
            self._fail(*_status_for(str(exc)))
        if self.state is ParserState.HEAD and self._head_bytes > self.limits.head_size:
            self._fail(431, "request head too large")
        return events

    # httptools callbacks. They run inside feed_data().

    def on_message_begin(self) -> None:
        # A pipelined request can begin in the same chunk that ended the previous one.
        self.state = ParserState.HEAD

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.request_line:
            # RFC 9112 section 3: a server that receives a request-target longer than any URI
            # it wishes to parse MUST respond with a 414 (URI Too Long).
            raise _Reject(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > self.limits.field_size:
            raise _Reject(431, "header field too large")
        if self.state is ParserState.BODY:
            # A trailer section: never merged into the request headers (RFC 9112 section 7.1.2).
            return
        if len(self._headers) >= self.limits.fields:
            raise _Reject(431, "too many header fields")
        name = name.lower()
        if name == b"host":
            self._hosts += 1
        elif name == b"expect":
            self._expect_continue = value.lower() == b"100-continue"
        elif name == b"upgrade":
            self._upgrade = value.lower()
        self._headers.append([name, value])

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise _Reject(505, f"HTTP/{version} is not supported")
        if version == "1.1" and self._hosts != 1:
            # RFC 9112 section 3.2: 400 for an HTTP/1.1 request without exactly one Host.
            raise _Reject(
                400, "missing Host header" if not self._hosts else "duplicate Host header"
            )
        method_bytes = parser.get_method()
        method = _METHODS.get(method_bytes)
        if method is None:
            method = method_bytes.decode("ascii")
            if len(_METHODS) < 64:
                _METHODS[method_bytes] = method
        if method == "CONNECT":
            raise _Reject(501, "CONNECT is not supported")
        if version == "1.0" and any(name == b"transfer-encoding" for name, _ in self._headers):
            # RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
            raise _Reject(400, "Transfer-Encoding in an HTTP/1.0 request")
        raw_path, query_string = _split_target(self._url)
        keep_alive = parser.should_keep_alive()
        self._events.append(
            RequestHead(
                method,
                raw_path,
                query_string,
                version,
                self._headers,
                keep_alive,
                self._expect_continue and version == "1.1",
                self._upgrade if parser.should_upgrade() else None,
            )
        )
        self.state = ParserState.BODY
        self._url = b""
        self._headers = []
        self._hosts = 0
        self._head_bytes = 0
        self._expect_continue = False
        self._upgrade = None

    def on_body(self, body: bytes) -> None:
        self._events.append(Body(body))

    def on_message_complete(self) -> None:
        self._events.append(END_OF_REQUEST)
        self.state = ParserState.IDLE

    # Internals.

    def _on_upgrade(self, rest: bytes) -> None:
        """llhttp stops at a complete request that asked to upgrade, leaving ``rest`` unparsed."""
        head = next((e for e in reversed(self._events) if isinstance(e, RequestHead)), None)
        if head is not None and head.upgrade in self.upgrades:
            self.state = ParserState.UPGRADED
            self._events.append(Upgrade(rest))
            return
        # Not an upgrade we speak: the request was plain HTTP; go on parsing what follows it
        # with a fresh parser, since llhttp's stays stopped.
        if head is not None:
            head.upgrade = None
        self._parser = httptools.HttpRequestParser(self)
        self.state = ParserState.IDLE
        self._head_bytes = 0
        if rest:
            events = self._events
            events.extend(self.receive_data(rest))
            self._events = events

    def _fail(self, status: int, reason: str) -> None:
        self.state = ParserState.FAILED
        self._events.append(BadRequest(status, reason))


def _status_for(error: str) -> tuple[int, str]:
    if error.startswith(_VERSION_ERRORS):
        return 505, "HTTP version not supported"
    if error.startswith(_NOT_IMPLEMENTED):
        # RFC 9112 section 6.1: an unknown transfer coding gets 501 (Not Implemented).
        return 501, "unsupported transfer coding"
    return 400, error.lower().replace("`", "")


def _split_target(target: bytes) -> tuple[bytes, bytes]:
    """Split a request target into the path and the query string (RFC 9112 section 3.2)."""
    if target[:1] != b"/" and target != b"*":
        # absolute-form (RFC 9112 section 3.2.2): the server MUST accept it; use its path.
        url = httptools.parse_url(target)
        return url.path or b"/", url.query or b""
    path, _, query = target.partition(b"?")
    return path, query
