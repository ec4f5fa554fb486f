"""Invariants of the response framing (``Response`` in uvicorn/protocols/http_response.py),
checked on any sequence of app messages.

``ResponseRun`` drives a ``Response`` the way the request cycle does: a start, then body chunks,
well-formed or not. Every message either raises the exception its contract names or produces
bytes, and the state moves only as the contract says. ``ResponseRun.check`` reads the bytes back
with ``read_response``, a strict RFC 9112 client written here (no llhttp, no h11, so that the
check shares no parser's leniency), and they must frame exactly the body the app sent (none for
HEAD, 204 and 304), with only the header lines the app or the server meant, and keep the
connection alive only when the framing allows it. A body framed otherwise than the app sent it
makes the client misread every later response on the connection, and a header line nobody sent
is an injected one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.protocols.invariants import fail
from uvicorn.protocols.http_defaults import HeaderDefaults
from uvicorn.protocols.http_response import (
    Response,
    ResponseState,
    simple_response,
)


class BadResponse(Exception):
    """The bytes are not a well-formed HTTP/1.1 response."""


@dataclass
class ParsedResponse:
    status: int
    headers: list[tuple[bytes, bytes]]  # (lower-case name, value without surrounding OWS)
    body: bytes = b""
    framing: str = "none"  # "none", "length", "chunked" or "close"
    complete: bool = False

    def values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]


_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([0-9]{3}) ([\t\x20-\x7e\x80-\xff]*)")
_FIELD_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*")
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]+")


def read_response(data: bytes, method: str, eof: bool) -> tuple[list[ParsedResponse], bytes]:
    """Parse the responses to one request (interim ones, then the final one, the last of the
    list), as a strict RFC 9112 client that sent ``method`` would; ``eof``: the connection was
    closed after ``data``. Returns them and the bytes after the final response. Raises
    BadResponse on anything malformed, and on framing that a server must not send (both
    Content-Length and Transfer-Encoding, duplicate or invalid lengths, codings other than
    chunked)."""
    responses: list[ParsedResponse] = []
    rest = data
    while True:
        end = rest.find(b"\r\n\r\n")
        if end < 0:
            if rest:
                responses.append(ParsedResponse(0, []))  # an incomplete head
            return responses, b""
        lines = rest[:end].split(b"\r\n")
        rest = rest[end + 4 :]
        match = _STATUS_LINE.fullmatch(lines[0])
        if not match:
            raise BadResponse(f"bad status line {lines[0]!r}")
        response = ParsedResponse(int(match[1]), [])
        for line in lines[1:]:
            field_match = _FIELD_LINE.fullmatch(line)
            if not field_match or b"\r" in line or b"\n" in line or b"\0" in line:
                raise BadResponse(f"bad field line {line!r}")
            response.headers.append((field_match[1].lower(), field_match[2]))
        responses.append(response)
        if response.status >= 200:
            break
        if response.values(b"content-length") or response.values(b"transfer-encoding"):
            raise BadResponse("a 1xx response with framing fields")
        response.complete = True
    lengths = response.values(b"content-length")
    codings = response.values(b"transfer-encoding")
    if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
        raise BadResponse(f"content-length {lengths}")
    if lengths and codings:
        raise BadResponse("both content-length and transfer-encoding")
    if codings and (codings != [b"chunked"] or response.status == 204):
        raise BadResponse(f"transfer-encoding {codings}")
    if response.status == 204 and lengths:
        raise BadResponse("content-length in a 204")
    if method == "HEAD" or response.status in (204, 304):
        response.complete = True
        return responses, rest
    if codings:
        response.framing = "chunked"
        parts = []
        while True:
            line_end = rest.find(b"\r\n")
            if line_end < 0:
                return responses, b""
            size_text = rest[:line_end]
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise BadResponse(f"bad chunk size line {size_text!r}")
            size = int(size_text, 16)
            if size == 0:
                if rest[line_end : line_end + 4] == b"\r\n\r\n":
                    response.body, response.complete = b"".join(parts), True
                    return responses, rest[line_end + 4 :]
                if len(rest) >= line_end + 4:
                    raise BadResponse(f"bad last chunk {rest[: line_end + 4]!r}")
                return responses, b""
            chunk_end = line_end + 2 + size
            if len(rest) < chunk_end + 2:
                return responses, b""
            if rest[chunk_end : chunk_end + 2] != b"\r\n":
                raise BadResponse("a chunk not followed by CRLF")
            parts.append(rest[line_end + 2 : chunk_end])
            response.body = b"".join(parts)
            rest = rest[chunk_end + 2 :]
    if lengths:
        response.framing = "length"
        length = int(lengths[0])
        response.body = rest[:length]
        response.complete = len(rest) >= length
        return responses, rest[length:]
    response.framing = "close"
    response.body = rest
    response.complete = eof
    return responses, b""


@dataclass
class AppMessage:
    """One message from the app: a start (status, headers) or a body chunk."""

    start: bool
    content: bytes = b""
    more: bool = False
    status: Any = 200
    headers: Any = ()


DATE = b"Thu, 01 Jan 1970 00:00:00 GMT"


def header_defaults(server: bool = True, date: bool = True, extra: Sequence[Any] = ()) -> Any:
    defaults = HeaderDefaults(server_header=server, date_header=date, extra=extra)
    defaults.set_date(DATE)
    return defaults


@dataclass
class ResponseRun:
    """A ``Response`` driven by app messages the way the request cycle drives it."""

    method: str = "GET"
    version: str = "1.1"
    keep_alive: bool = True
    defaults: Any = None
    response: Response = field(init=False)
    wire: list[bytes] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    final: AppMessage | None = None  # the start that began the final response
    content: list[bytes] = field(default_factory=list)  # body bytes the app sent, accepted
    broken: bool = False  # the app broke its content-length mid-body: the connection closes

    def __post_init__(self) -> None:
        if self.defaults is None:
            self.defaults = header_defaults()
        self.response = Response(
            self.defaults, self.method == "HEAD", self.version, self.keep_alive
        )

    def send(self, message: AppMessage) -> None:
        r = self.response
        state = r.state
        try:
            if message.start:
                out = r.start(message.status, message.headers, message.content, message.more)
            else:
                out = r.body(message.content, message.more)
        except (TypeError, ValueError) as exc:
            if not message.start:
                fail(f"body() raised {exc!r}: only RuntimeError is expected there")
            if r.state is not state:
                fail(f"start() raised {exc!r} but left state {state} for {r.state}")
            self.errors.append(exc)
            return
        except RuntimeError as exc:
            self.errors.append(exc)
            if message.start or state is not ResponseState.STREAMING:
                if r.state is not state:
                    fail(f"RuntimeError {exc!r} changed the state from {state} to {r.state}")
                return
            # A body that broke the app's content-length: the response is abandoned.
            if r.state is not ResponseState.DONE or r.keep_alive:
                fail("a broken content-length left the connection reusable")
            self.broken = True
            return
        if type(out) is not bytes:
            fail(f"{'start' if message.start else 'body'}() returned {out!r}")
        if message.start:
            if state is not ResponseState.IDLE:
                fail(f"start() accepted in state {state}")
            status = int(message.status)
            if status < 200:
                if r.state is not ResponseState.IDLE:
                    fail("an interim response left IDLE")
                if self.version == "1.0" and out:
                    fail("a 1xx response sent to an HTTP/1.0 client")
            else:
                self.final = message
                self.content.append(message.content)
        else:
            if state is not ResponseState.STREAMING:
                fail(f"body() accepted in state {state}")
            self.content.append(message.content)
        expected = ResponseState.STREAMING if message.more else ResponseState.DONE
        if self.final is not None and r.state is not expected:
            fail(f"state {r.state} after a message with more={message.more}")
        self.wire.append(out)

    def check(self) -> list[ParsedResponse]:
        """Read the bytes back as the client would, and check them against what the app
        sent. Returns the parsed responses (interim ones, then the final one)."""
        r = self.response
        data = b"".join(self.wire)
        done = r.state is ResponseState.DONE and not self.broken
        if self.final is None:
            if r.state is not ResponseState.IDLE:
                fail(f"state {r.state} without a final response")
            # The cycle answers 500 (an app error, or no response at all).
            data += simple_response(self.defaults, 500, head=self.method == "HEAD")
            done = True
        # The worker closes the connection unless the response completed and keeps it alive.
        eof = not (done and r.keep_alive)
        try:
            responses, rest = read_response(data, self.method, eof)
        except BadResponse as exc:
            fail(f"malformed response ({exc}):\n{data!r}")
            raise
        if not responses:
            fail(f"no response in {data!r}")
        final = responses[-1]
        interims = responses[:-1]
        if self.version == "1.0" and interims:
            fail("interim responses sent to an HTTP/1.0 client")
        if rest:
            fail(f"bytes after the response: {rest[:100]!r}")
        if self.final is None:
            if final.status != 500 or not final.complete:
                fail(f"the cycle's 500 did not parse: {data!r}")
            return responses
        if final.status != int(self.final.status):
            fail(f"status {final.status}, the app sent {self.final.status!r}")
        self._check_fields(final, data)
        no_body = self.method == "HEAD" or final.status in (204, 304)
        sent = b"" if no_body else b"".join(self.content)
        if done and not final.complete:
            fail(f"a completed response reads as incomplete ({final.framing}):\n{data!r}")
        if final.complete and final.body != sent:
            fail(f"body {final.body[:80]!r} framed, the app sent {sent[:80]!r}:\n{data!r}")
        if not final.complete and not sent.startswith(final.body):
            fail(f"body {final.body[:80]!r} is no prefix of what the app sent {sent[:80]!r}")
        lengths = final.values(b"content-length")
        if lengths and not no_body and done and int(lengths[0]) != len(sent):
            fail(f"content-length {lengths[0]!r} for {len(sent)} bytes")
        if final.framing == "chunked" and self.version == "1.0":
            fail("chunked sent to an HTTP/1.0 client")
        connection = {
            o.strip(b" \t").lower() for v in final.values(b"connection") for o in v.split(b",")
        }
        if done and r.keep_alive:
            if not self.keep_alive:
                fail("keep_alive although the request did not allow it")
            if final.framing == "close":
                fail("keep_alive with a close-delimited body")
            if b"close" in connection:
                fail("keep_alive while saying Connection: close")
            if self.version == "1.0" and b"keep-alive" not in connection:
                fail("keep_alive to an HTTP/1.0 client without Connection: keep-alive")
        elif done and b"close" not in connection:
            fail("the connection closes after the response without Connection: close")
        return responses

    def _check_fields(self, final: ParsedResponse, data: bytes) -> None:
        """Every header line is one the app sent or one the server adds; nothing injected,
        nothing of the app's lost (but Transfer-Encoding, and Content-Length where forbidden)."""
        assert self.final is not None
        status = int(self.final.status)
        wanted: list[tuple[bytes, bytes]] = []
        app_names = set()
        length_seen = False
        for name, value in self.final.headers:
            lower = bytes(name).lower()
            app_names.add(lower)
            if lower == b"transfer-encoding":
                continue
            if lower == b"content-length":
                if status == 204 or length_seen:
                    continue
                length_seen = True
            wanted.append((lower, bytes(value).strip(b" \t")))
        seen = list(final.headers)
        for item in wanted:
            if item not in seen:
                fail(f"the app's header {item!r} is missing:\n{data!r}")
            seen.remove(item)
        allowed = {
            (b"transfer-encoding", b"chunked"),
            (b"connection", b"close"),
            (b"connection", b"keep-alive"),
        }
        if b"date" not in app_names:
            allowed.add((b"date", DATE))
        if b"server" not in app_names:
            allowed.add((b"server", b"uvicorn"))
        if not length_seen:
            allowed.add((b"content-length", b"%d" % len(self.final.content)))
        for name, _, value in self.defaults._extra:
            if name not in (b"date", b"server") or name not in app_names:
                allowed.add((name, value))
        for item in seen:
            if item not in allowed:
                fail(f"header line {item!r} neither the app's nor the server's:\n{data!r}")
            allowed.discard(item)
