"""The header fields of a response as an app gives them, sans I/O: validated, classified and
encoded as HTTP/1.1 header lines (``encode_headers``, for ``http_response.Response``), or only
validated (``check_headers``, for the responses framed elsewhere).

A field is a ``(name, value)`` pair of bytes. Its name must be a token (RFC 9110 section 5.1)
and its value must not hold CR, LF or NUL, which would smuggle in a line of its own (RFC 9112
section 2.2). The fields the server frames itself are told apart by name: content-length and
transfer-encoding (framing, RFC 9112 section 6), connection (keep-alive), date and server (the
defaults the app may replace).
"""

from __future__ import annotations

import re
from typing import Any, Final

from uvicorn.protocols.http_rules import TOKEN

_BAD_VALUE: Final = re.compile(rb"[\r\n\0]")

ORDINARY: Final = 0
CONTENT_LENGTH: Final = 1
CONNECTION: Final = 2
TRANSFER_ENCODING: Final = 3
DATE: Final = 4
SERVER: Final = 5
_SPECIAL: Final = {
    b"content-length": CONTENT_LENGTH,
    b"connection": CONNECTION,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"date": DATE,
    b"server": SERVER,
}
_NAME_KINDS_MAX: Final = 4096

# The fields apps sent before, keyed by their (name, value) pair: (kind, the header line, the
# content-length or -1). Apps send mostly the same few fields (content-type, a content-length
# of their usual size, cache-control), each then one lookup per response instead of its checks
# and four pieces to join. Only short lines are kept, and only so many: when full, the cache
# starts over, so fields unique to a response (a cookie, an ETag) cannot crowd out the others
# for good.
_LINES_MAX: Final = 1024
_LINE_LIMIT: Final = 256
_LINES: Final[dict[tuple[Any, ...], tuple[int, bytes, int]]] = {}


class _NameKinds(dict[bytes, int]):
    """Header names an app used before (as it spells them), mapped to their kind: names are
    nearly always constants, so each is validated and classified once, even where its values
    vary. A name not seen yet is validated on lookup (raising TypeError or ValueError)."""

    def __missing__(self, name: Any) -> int:
        return _learn_name(name)


_NAME_KINDS: Final = _NameKinds()


def encode_headers(
    headers: Any, parts: list[bytes], keep_length: bool
) -> tuple[int, int, set[bytes] | None]:
    """Append the app's header lines to ``parts``; return (content-length or -1, date/server
    flags, the lower-case connection options or None). ``keep_length`` False leaves out the
    app's content-length line (its value is still returned).

    The fast path trusts the shape and finds each field in ``_LINES``; anything odd is
    diagnosed slowly, by ``_diagnose()``. (This loop runs for every header of every response:
    it is written for few operations.)
    """
    content_length = -1
    has = 0  # 1: the app set 'date'; 2: the app set 'server'
    connection: set[bytes] | None = None
    try:
        for item in headers:
            pair = item if type(item) is tuple else tuple(item)
            try:
                known = _LINES.get(pair)
            except TypeError:  # (a bytearray value: valid, but no key)
                known = None
            if known is None:
                known = _learn_field(pair)
            kind = known[0]
            if kind:
                if kind == CONTENT_LENGTH:
                    length = known[2]
                    if content_length >= 0:
                        if length != content_length:
                            raise ValueError(
                                f"conflicting content-length headers: {content_length} and {length}"
                            )
                        continue  # sent once: a client MAY reject duplicates (RFC 9110 8.6)
                    content_length = length
                    if not keep_length:
                        continue
                elif kind == CONNECTION:
                    # RFC 9110 section 7.6.1: Connection = #connection-option, each a token
                    # ("x-closed" is no "close").
                    value = bytes(pair[1])
                    options = {o.strip(b" \t") for o in value.lower().split(b",")}
                    connection = options if connection is None else connection | options
                elif kind == TRANSFER_ENCODING:
                    continue  # framing is the server's job (RFC 9112 section 6.1)
                elif kind == DATE:
                    has |= 1
                else:
                    has |= 2
            parts.append(known[1])
    except (TypeError, ValueError, AttributeError) as exc:
        raise _diagnose(headers) or exc from None
    return content_length, has, connection


def _learn_field(pair: tuple[Any, ...]) -> tuple[int, bytes, int]:
    """Validate a field not in ``_LINES`` (raising TypeError or ValueError); encode it, and
    keep it there if it can be a key."""
    name, value = pair
    kind = _NAME_KINDS[name]
    cacheable = type(value) is bytes
    if not cacheable:
        value = bytes(value) if isinstance(value, (bytearray, memoryview)) else None
    # CR, LF or NUL would smuggle in a header line of its own. (Ints: bytes.__contains__
    # tries its argument as an int first; three memchr scans cost less than a translate.)
    if 13 in value or 10 in value or 0 in value:  # type: ignore[operator]
        raise ValueError
    line = b"%b: %b\r\n" % (name, value)
    field = (kind, line, _parse_content_length(value) if kind == CONTENT_LENGTH else -1)
    if cacheable and len(line) <= _LINE_LIMIT:
        if len(_LINES) >= _LINES_MAX:
            _LINES.clear()
        _LINES[pair] = field
    return field


def _learn_name(name: Any) -> int:
    """Validate a header name the app has not used before; cache and return its kind."""
    if not isinstance(name, bytes):
        raise TypeError(f"invalid header name {name!r}: must be bytes, got {type(name).__name__}")
    if not TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}: not an HTTP token (RFC 9110 5.1)")
    kind = _SPECIAL.get(name.lower(), ORDINARY)
    if len(_NAME_KINDS) < _NAME_KINDS_MAX:
        _NAME_KINDS[name] = kind
    return kind


def _parse_content_length(value: bytes) -> int:
    if not value.isdigit():
        raise ValueError(f"invalid content-length header {value!r}: must be digits")
    return int(value)


def check_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    """``headers`` as (name, value) byte pairs, or the TypeError or ValueError that
    ``Response.start`` raises for them: for responses framed elsewhere (a WebSocket handshake's
    answer), so that no header line an app sends can smuggle in another (CR, LF, NUL)."""
    error = _diagnose(headers)
    if error is not None:
        raise error
    return [(bytes(name), bytes(value)) for name, value in headers]


def _diagnose(headers: Any) -> Exception | None:
    """A precise error for headers that failed the fast path, naming the bad item."""
    if not isinstance(headers, (list, tuple)):
        return TypeError(f"invalid headers {headers!r}: must be a list of [name, value] pairs")
    for item in headers:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            return TypeError(f"invalid header {item!r}: must be a [name, value] pair")
        name, value = item
        try:
            _learn_name(name)
        except (TypeError, ValueError) as exc:
            return exc
        if not isinstance(value, (bytes, bytearray, memoryview)):
            return TypeError(
                f"invalid value {value!r} for header {name!r}: must be bytes, "
                f"got {type(value).__name__}"
            )
        if _BAD_VALUE.search(bytes(value)):
            return ValueError(
                f"invalid value {bytes(value)!r} for header {name!r}: CR, LF and NUL are not "
                "allowed"
            )
    return None
