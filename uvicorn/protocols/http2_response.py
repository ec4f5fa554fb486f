"""HTTP/2 response heads, sans I/O: what an app's response becomes on a stream (RFC 9113 section
8.2 and 8.3.2), with the same checks HTTP/1.1's ``Response`` makes of it.

The differences from HTTP/1.1 are of form, not meaning: names go lower case (RFC 9113 section
8.2.1), connection-specific fields are dropped (section 8.2.2), and the framing is the
protocol's (the stream ends with its last DATA frame). A declared content-length is held to, as
on HTTP/1.1. Header blocks are HPACK without the dynamic table: each field is encoded once for
the process (``_FIELDS``), since apps send the same few fields again and again.
"""

from __future__ import annotations

import http
from typing import Any, Final

from uvicorn.protocols.hpack import Encoder
from uvicorn.protocols.http_defaults import HeaderDefaults
from uvicorn.protocols.http_fields import check_headers
from uvicorn.protocols.http_response import BodyFraming, ResponseState, check_status

_IDLE: Final = ResponseState.IDLE
_STREAMING: Final = ResponseState.STREAMING
_DONE: Final = ResponseState.DONE
_ENCODER: Final = Encoder()
_CONNECTION_SPECIFIC: Final = frozenset(
    [b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"]
)

# Encoded fields and their kinds, by (name as the app spells it, value).
_ORDINARY: Final = 0
_LENGTH: Final = 1
_DATE: Final = 2
_SERVER: Final = 3
_DROPPED: Final = 4
_KINDS: Final = {b"content-length": _LENGTH, b"date": _DATE, b"server": _SERVER}
_FIELDS: Final[dict[tuple[bytes, bytes], tuple[bytes, int]]] = {}
_FIELDS_MAX: Final = 4096
_STATUSES: Final[dict[int, bytes]] = {}
_DEFAULT_BLOCKS: Final[dict[tuple[tuple[bytes, bytes], ...], bytes]] = {}
_LENGTHS: Final[dict[bytes, int]] = {}


def encode_field(name: bytes, value: bytes) -> tuple[bytes, int]:
    """One field of a response head as HPACK bytes, and its kind, after the checks HTTP/1.1's
    ``Response`` makes (raising the same TypeError or ValueError)."""
    key = (name, value)
    found = _FIELDS.get(key)
    if found is not None:
        return found
    check_headers([key])
    lower = bytes(name).lower()
    if lower in _CONNECTION_SPECIFIC:
        found = (b"", _DROPPED)
    else:
        found = (_ENCODER.encode([(lower, bytes(value))]), _KINDS.get(lower, _ORDINARY))
    if len(_FIELDS) >= _FIELDS_MAX:
        _FIELDS.clear()
    _FIELDS[key] = found
    return found


def _status_field(status: int) -> bytes:
    encoded = _STATUSES.get(status)
    if encoded is None:
        encoded = _STATUSES[status] = _ENCODER.encode([(b":status", b"%d" % status)])
    return encoded


def interim_block(status: int) -> bytes:
    """The header block of an interim response without fields (100 Continue)."""
    return _status_field(status)


def _defaults_block(fields: tuple[tuple[bytes, bytes], ...]) -> bytes:
    block = _DEFAULT_BLOCKS.get(fields)
    if block is None:
        if len(_DEFAULT_BLOCKS) > 16:  # (a new date every second)
            _DEFAULT_BLOCKS.clear()
        block = _DEFAULT_BLOCKS[fields] = _ENCODER.encode(list(fields))
    return block


class H2Response(BodyFraming):
    """The response on one stream: ``start()`` gives the header block, ``body()``
    (``BodyFraming``'s) what of a piece of the body goes into DATA frames; both raise as
    HTTP/1.1's ``Response`` does. ``keep_alive`` is not read: a response ends its stream, never
    the connection."""

    __slots__ = ("_defaults",)  # (and BodyFraming's)
    _chunked = False  # (DATA frames carry the body as it is)

    def __init__(self, defaults: HeaderDefaults, is_head: bool) -> None:
        self._defaults = defaults
        self.state = _IDLE
        self.status = 0
        self.keep_alive = True
        self._no_body = is_head
        self._remaining = -1  # bytes owed under the app's content-length, -1 if none

    def start(self, status: Any, headers: Any, content: bytes, more: bool) -> tuple[bytes, bool]:
        """The header block, and whether the head ends the stream (no body follows at all). An
        interim (1xx) head leaves the response IDLE."""
        if self.state is not _IDLE:
            raise RuntimeError(
                f"response already started (state {self.state.value}): "
                "only 'content' and 'more_content' may follow"
            )
        status = check_status(status)
        interim = status < 200
        parts = [_status_field(status)]
        content_length = -1
        has = 0  # 1: the app set 'date'; 2: the app set 'server'
        fields = _FIELDS
        try:
            for name, value in headers:
                if type(value) is not bytes and isinstance(value, (bytearray, memoryview)):
                    value = bytes(value)
                found = fields.get((name, value))
                if found is None:
                    found = encode_field(name, value)
                encoded, kind = found
                if kind:
                    if kind == _LENGTH:
                        length = _content_length(value)
                        if content_length >= 0:
                            if length != content_length:
                                raise ValueError(
                                    "conflicting content-length headers: "
                                    f"{content_length} and {length}"
                                )
                            continue  # sent once
                        content_length = length
                        if interim or status == 204:
                            continue  # RFC 9110 section 8.6: none on a 1xx or 204
                    elif kind == _DATE:
                        has |= 1
                    elif kind == _SERVER:
                        has |= 2
                    else:
                        continue  # RFC 9113 section 8.2.2: connection-specific
                parts.append(encoded)
        except (TypeError, ValueError, AttributeError) as exc:
            raise check_headers_error(headers) or exc from None
        if interim:
            return b"".join(parts), False
        defaults = self._defaults
        parts.append(
            _defaults_block(defaults.fields_without(bool(has & 1), bool(has & 2)) if has
                            else defaults.fields)
        )  # fmt: skip
        if status == 204 or status == 304:
            self._no_body = True
        if content_length >= 0 and not self._no_body:
            length = len(content)
            if length > content_length or (not more and length < content_length):
                raise ValueError(
                    f"content-length is {content_length} but the response "
                    f"{'has' if not more else 'starts with'} {length} bytes"
                )
            self._remaining = content_length - length
        elif content_length < 0 and not more and not self._no_body:
            parts.append(_ENCODER.encode([(b"content-length", b"%d" % len(content))]))
        self.status = status
        self.state = _STREAMING if more else _DONE
        return b"".join(parts), not more and (self._no_body or not content)

    def trailers(self, fields: list[tuple[bytes, bytes]]) -> bytes:
        """The header block of the trailer ``fields`` (``http_trailers.check_trailers``'s), for
        a response whose last body piece said more would come: it ends the stream (RFC 9113
        section 8.1)."""
        if self.state is not _STREAMING:
            raise RuntimeError(
                "trailers sent before the response started or after it completed"
            )
        self.body(b"", False)  # (checks a declared content-length is met)
        return _ENCODER.encode(fields) if fields else b""

    @property
    def no_body(self) -> bool:
        return self._no_body

    def abandon(self) -> None:
        self.state = _DONE


def refusal(defaults: HeaderDefaults, status: int, text: str = "") -> tuple[bytes, bytes]:
    """A complete plain-text response (an error): its header block and body."""
    body = (text or http.HTTPStatus(status).phrase).encode("utf-8") + b"\n"
    block = b"".join(
        [
            _status_field(status),
            _defaults_block(defaults.fields),
            _ENCODER.encode(
                [(b"content-type", b"text/plain; charset=utf-8"),
                 (b"content-length", b"%d" % len(body))]
            ),
        ]
    )  # fmt: skip
    return block, body


def _content_length(value: bytes) -> int:
    length = _LENGTHS.get(value)
    if length is None:
        # (encode_field has checked the value for CR, LF and NUL.)
        if not value.isdigit() or not value.isascii():
            raise ValueError(f"invalid content-length header {value!r}: must be digits")
        length = int(value)
        if len(_LENGTHS) < 4096:
            _LENGTHS[value] = length
    return length


def check_headers_error(headers: Any) -> Exception | None:
    try:
        check_headers(headers)
    except (TypeError, ValueError) as exc:
        return exc
    return None
