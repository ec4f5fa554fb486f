"""HTTP/1.1 response framing, sans I/O: the response state machine and the bytes it produces.

One ``Response`` per request. ``start()`` and ``body()`` return the bytes to write, or raise:
``TypeError``/``ValueError`` for a malformed message and ``RuntimeError`` for one sent in the
wrong state. Both application interfaces drive this one object, so framing (RFC 9112 section 6),
keep-alive and header validation (``http_fields``) are written once.
"""

from __future__ import annotations

import enum
import http
from typing import Any, Final

from uvicorn.protocols.http_defaults import HeaderDefaults
from uvicorn.protocols.http_fields import encode_headers

_STATUS_LINES: Final = {
    int(s): b"HTTP/1.1 %d %s\r\n" % (s, s.phrase.encode("ascii")) for s in http.HTTPStatus
}
# The content-length lines of small bodies, formatted once rather than per response.
_LENGTH_LINES_COUNT: Final = 2048
_LENGTH_LINES: Final = [b"content-length: %d\r\n" % length for length in range(_LENGTH_LINES_COUNT)]


class ResponseState(enum.Enum):
    IDLE = "idle"  # nothing sent yet (1xx interim responses leave it here)
    STREAMING = "streaming"  # head sent, more body to come
    DONE = "done"  # complete, or abandoned after an error


_IDLE: Final = ResponseState.IDLE
_STREAMING: Final = ResponseState.STREAMING
_DONE: Final = ResponseState.DONE


class BodyFraming:
    """What a response's body pieces become, and the checks they get (the state, a declared
    content-length): shared by HTTP/1.1's ``Response`` and HTTP/2's ``H2Response``, whose
    bodies are never chunked (the stream frames them) and whose ``keep_alive`` nobody reads."""

    __slots__ = ("state", "status", "keep_alive", "_remaining", "_no_body")

    state: ResponseState
    status: int  # once started (0 before)
    keep_alive: bool
    _chunked: bool  # (a slot of Response's; H2Response's is False for good)
    _remaining: int
    _no_body: bool

    def body(self, content: bytes, more: bool) -> bytes:
        """The next piece of the body: the bytes that carry it (nothing for a HEAD, 204 or
        304), chunked when the response is."""
        state = self.state
        if state is not _STREAMING:
            if state is _IDLE:
                raise RuntimeError(
                    "response body sent before the response started "
                    "(the first message needs a 'status')"
                )
            raise RuntimeError("response already completed: nothing more can be sent")
        if not more:
            self.state = _DONE
        if self._no_body:
            return b""
        if self._remaining >= 0:
            remaining = self._remaining - len(content)
            if remaining < 0 or (not more and remaining > 0):
                self.state = _DONE
                self.keep_alive = False
                sent = self._remaining
                raise RuntimeError(
                    f"response body does not match its content-length: "
                    f"{sent} bytes were still owed, {len(content)} sent"
                    + ("" if remaining < 0 else " in the last message")
                )
            self._remaining = remaining
            return content
        if self._chunked:
            if not content:
                return b"" if more else b"0\r\n\r\n"  # a zero-size chunk would end the body
            if more:
                return b"%x\r\n%b\r\n" % (len(content), content)
            return b"%x\r\n%b\r\n0\r\n\r\n" % (len(content), content)
        return content


class Response(BodyFraming):
    """Frames one response. ``keep_alive`` says, once done, whether the connection may be
    reused: the request allowed it, the app did not ask to close, and the framing was kept."""

    # (state, status, keep_alive, _remaining, _no_body: BodyFraming's slots)
    __slots__ = ("_is_head", "_http10", "_chunked", "_defaults")

    _is_head: bool
    _http10: bool
    _chunked: bool

    def __init__(
        self, defaults: HeaderDefaults, is_head: bool, http_version: str, keep_alive: bool
    ) -> None:
        self._defaults = defaults
        self.reset(is_head, http_version, keep_alive)

    def start(self, code: Any, headers: Any, content: bytes, more: bool) -> bytes:
        """The head (and first body bytes) of the response (status ``code``)."""
        if self.state is not _IDLE:
            raise RuntimeError(
                f"response already started (state {self.state.value}): "
                "only 'content' and 'more_content' may follow"
            )
        # (An int of its own: compiled, what follows compares it in C, not as an object.)
        status: int = code if type(code) is int else _check_status_type(code)
        if status < 200 or status > 599:
            if status < 100 or status > 599 or status == 101:
                raise ValueError(f"invalid status {status!r}: must be 100-599, other than 101")
            return self._interim(status, headers)
        # The response in pieces, joined once: status line, the server's defaults (replaced
        # below if the app set its own date or server), the app's headers, framing, body.
        parts = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status, self._defaults.block]
        # RFC 9110 section 8.6: "A server MUST NOT send a Content-Length header field in any
        # response with a status code of 1xx (Informational) or 204 (No Content)."
        content_length, has, connection = encode_headers(headers, parts, status != 204)
        keep_alive = self.keep_alive
        close = False
        if connection is not None:
            close = b"close" in connection
            if close:
                keep_alive = False
        no_body = self._no_body  # a HEAD response has none
        if status == 204 or status == 304:
            no_body = self._no_body = True
            if status == 204:
                content_length = -1
        chunked = False
        if content_length >= 0:
            if not no_body:
                length = len(content)
                if length > content_length or (not more and length < content_length):
                    raise ValueError(
                        f"content-length is {content_length} but the response "
                        f"{'has' if not more else 'starts with'} {length} bytes"
                    )
                self._remaining = content_length - length
        elif not more:
            # (A HEAD answered without its body: the length is unknown, so none is sent.)
            if not no_body or (content and status != 204 and status != 304):
                length = len(content)
                parts.append(
                    _LENGTH_LINES[length]
                    if length < _LENGTH_LINES_COUNT
                    else b"content-length: %d\r\n" % length
                )
        elif no_body:
            # Nothing follows the head, whatever the app streams: no need to close-delimit.
            # A HEAD response announces the framing its GET would have had.
            if self._is_head and not self._http10 and status != 204 and status != 304:
                parts.append(b"transfer-encoding: chunked\r\n")
        elif self._http10:
            keep_alive = False  # close-delimited (RFC 9112 section 6.3, rule 8)
        else:
            parts.append(b"transfer-encoding: chunked\r\n")
            chunked = self._chunked = True
        if not keep_alive:
            if not close:
                parts.append(b"connection: close\r\n")
        elif self._http10 and (connection is None or b"keep-alive" not in connection):
            parts.append(b"connection: keep-alive\r\n")
        self.keep_alive = keep_alive
        self.status = status
        self.state = _STREAMING if more else _DONE
        if has:
            parts[1] = self._defaults.without(bool(has & 1), bool(has & 2))
        if chunked and content:  # (chunked only while more is to come)
            parts += (b"\r\n%x\r\n" % len(content), content, b"\r\n")
        elif content and not no_body:
            parts += (b"\r\n", content)
        else:
            parts.append(b"\r\n")
        return b"".join(parts)

    def end_with_trailers(self, section: bytes) -> bytes:
        """The end of a response whose last body piece said more would come (see
        ``http_trailers``): the chunked body's last chunk and the trailer ``section`` (b"" to
        drop them)."""
        if self.state is not _STREAMING:
            raise RuntimeError(
                "trailers sent before the response started or after it completed"
            )
        self.body(b"", False)  # (checks a declared content-length is met)
        if not self._chunked or self._no_body:
            return b""  # already ended by the length, or no body: trailers are dropped
        return section or b"0\r\n\r\n"

    def abandon(self) -> None:
        """The response cannot be completed: the connection must be closed."""
        self.state = _DONE
        self.keep_alive = False

    def reset(self, is_head: bool, http_version: str, keep_alive: bool) -> None:
        """Frame the next response on the connection (the fields of ``__init__``)."""
        self.state = _IDLE
        self.keep_alive = keep_alive
        self.status = 0
        self._is_head = is_head
        self._http10 = http_version == "1.0"
        self._chunked = False
        self._remaining = -1  # bytes still owed under the app's content-length, -1 if none
        self._no_body = is_head

    def refuse(self, status: int) -> bytes:
        """A complete plain-text response in place of the one not started (an app that failed
        before answering: 500); the connection closes after it."""
        self.status = status
        self.abandon()
        return simple_response(self._defaults, status, head=self._is_head)

    def _interim(self, status: int, headers: Any) -> bytes:
        parts = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
        encode_headers(headers, parts, False)  # no content-length: RFC 9110 section 8.6
        # RFC 9110 section 15.2: a server MUST NOT send a 1xx response to an HTTP/1.0 client.
        if self._http10:
            return b""
        parts.append(b"\r\n")
        return b"".join(parts)


def simple_response(
    defaults: HeaderDefaults, status: int, text: str = "", head: bool = False
) -> bytes:
    """A complete plain-text response that closes the connection (errors, 503s); ``head``
    leaves out the body, as the answer to a HEAD request must."""
    body = (text or http.HTTPStatus(status).phrase).encode("utf-8") + b"\n"
    return (
        _STATUS_LINES[status]
        + defaults.block
        + b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        + b"content-length: %d\r\n\r\n" % len(body)
        + (b"" if head else body)
    )


def _check_status_type(status: Any) -> int:
    if isinstance(status, int) and not isinstance(status, bool):
        return int(status)
    raise TypeError(f"invalid status {status!r}: must be an int, got {type(status).__name__}")


def check_status(status: Any, interim: bool = True) -> int:
    """``status`` as an int, or the TypeError/ValueError that ``Response.start`` would raise;
    ``interim`` False also refuses 1xx."""
    if type(status) is not int:
        status = _check_status_type(status)
    low = 100 if interim else 200
    if status < low or status > 599 or status == 101:
        raise ValueError(f"invalid status {status!r}: must be {low}-599, other than 101")
    return int(status)
