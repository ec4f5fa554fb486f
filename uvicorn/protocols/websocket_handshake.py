"""The opening handshake as websockets' ``ServerProtocol`` reads and writes it, for
``WebSocketCore``: the request rebuilt from our parsed head, the app's fields checked, and
the differences of WebSockets over HTTP/2 (RFC 8441).

Over HTTP/2 the request is an extended CONNECT (``:protocol websocket``) on a stream, and the
answer a 200 on that stream: no ``Upgrade``, ``Connection``, ``Sec-WebSocket-Key`` or
``-Accept`` (section 5). Everything else (version, subprotocols, extensions, then the frames,
carried in DATA) is RFC 6455's, so the handshake is given to websockets' ``ServerProtocol`` as
the HTTP/1.1 request it stands for, and its answer is taken apart into the fields of an HTTP/2
response head.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from websockets.datastructures import Headers
from websockets.http11 import Response

from uvicorn.protocols.http_events import RequestHead
from uvicorn.protocols.http_fields import check_headers

# Any valid key will do: the accept value computed from it is never sent (section 5).
_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
_STANDING_IN = [
    (b"upgrade", b"websocket"), (b"connection", b"Upgrade"), (b"sec-websocket-key", _KEY),
]  # fmt: skip
# Fields of the HTTP/1.1 answer that HTTP/2 does not carry (RFC 9113 section 8.2.2, RFC 8441
# section 5).
_NOT_CARRIED = frozenset(["upgrade", "connection", "sec-websocket-accept", "content-length"])


def handshake_fields(head: RequestHead) -> tuple[str, list[list[bytes]]]:
    """The method and header fields of the HTTP/1.1 handshake an extended CONNECT stands for."""
    return "GET", [list(field) for field in _STANDING_IN] + head.headers


def response_head(response: Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """websockets' answer as an HTTP/2 response: status (101 becomes 200), fields, body."""
    status = 200 if response.status_code == 101 else response.status_code
    fields = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers.raw_items()
        if name.lower() not in _NOT_CARRIED
    ]
    return status, fields, bytes(response.body or b"")


# The header fields the handshake reads (RFC 6455 section 4.2.1) and websockets checks.
_HANDSHAKE_FIELDS = frozenset({b"host", b"upgrade", b"connection", b"origin", b"content-length"})


def request_bytes(head: RequestHead, h2: bool = False) -> bytes:
    """The request as ``ServerProtocol`` reads it, rebuilt from the parsed head (the HTTP parser
    already validated and consumed the original bytes). ``h2``: an extended CONNECT on an
    HTTP/2 stream (RFC 8441), given as the HTTP/1.1 handshake it stands for."""
    target = head.raw_path + (b"?" + head.query_string if head.query_string else b"")
    method, headers = handshake_fields(head) if h2 else (head.method, head.headers)
    lines = [b"%s %s HTTP/1.1\r\n" % (method.encode(), target)]
    # Only the fields the handshake needs: websockets reads at most 128 fields of at most 8 KiB
    # (a line), smaller limits than --limit-request-fields/--limit-request-field-size allow, so a
    # browser sending a large cookie would otherwise be refused. (The app gets every field
    # from the head.)
    lines += [
        b"%s: %s\r\n" % (name, value)
        for name, value in headers
        if name in _HANDSHAKE_FIELDS or name.startswith(b"sec-websocket-")
    ]
    lines.append(b"\r\n")
    return b"".join(lines)


def offered_subprotocols(headers: Headers) -> list[str]:
    offered = []
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        offered += [item.strip() for item in value.split(",") if item.strip()]
    return offered


def header_texts(headers: Iterable[Any]) -> list[tuple[str, str]]:
    """The app's headers checked as for any HTTP response, as websockets' ``Headers`` takes
    them. Checked here, not left to websockets: its versions that setup.cfg allows differ in
    what they refuse (13.x takes CR/LF in names and values alike, later ones still in names),
    and a CR or LF would end the header line and start one the app did not mean."""
    if not isinstance(headers, (list, tuple)):
        headers = list(headers)
    pairs = check_headers(headers)
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in pairs]
