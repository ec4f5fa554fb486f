"""WebSockets over HTTP/2 (RFC 8441): the handshake's differences, for ``WebSocketCore``.

The request is an extended CONNECT (``:protocol websocket``) on a stream, and the answer a 200
on that stream: no ``Upgrade``, ``Connection``, ``Sec-WebSocket-Key`` or ``-Accept`` (section
5). Everything else (version, subprotocols, extensions, then the frames, carried in DATA) is RFC
6455's, so the handshake is given to websockets' ``ServerProtocol`` as the HTTP/1.1 request it
stands for, and its answer is taken apart into the fields of an HTTP/2 response head.
"""

from __future__ import annotations

from websockets.http11 import Response

from uvicorn.protocols.http_events import RequestHead

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
