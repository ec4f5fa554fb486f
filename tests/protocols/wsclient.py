"""Helpers for the WebSocket core tests: real client bytes from websockets' sans-I/O
``ClientProtocol``, hand-made frames for what a well-behaved client never sends, and the server's
output parsed back into frames."""

from __future__ import annotations

import base64
import struct
from typing import Any

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from uvicorn.protocols.http_parser import RequestHead, RequestParser, Upgrade
from uvicorn.protocols.websocket import Closed, Event, Message, WebSocketCore

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # ... and its Sec-WebSocket-Accept
MASK = b"\x37\xfa\x21\x3d"


def handshake(
    *headers: str, method: str = "GET", key: str | None = KEY, version: str = "13"
) -> bytes:
    lines = [f"{method} /chat?room=1 HTTP/1.1", "Host: example.com", "Upgrade: websocket",
             "Connection: Upgrade"]  # fmt: skip
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version:
        lines.append(f"Sec-WebSocket-Version: {version}")
    lines += headers
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(data: bytes) -> tuple[RequestHead, bytes]:
    """The upgrade request's head as the HTTP connection hands it over, and what followed it."""
    parser = RequestParser(upgrades=frozenset({b"websocket"}))
    events = parser.receive_data(data)
    head = next(e for e in events if isinstance(e, RequestHead))
    upgrade = next(e for e in events if isinstance(e, Upgrade))
    return head, upgrade.data


def core_for(data: bytes, max_size: int = 2**20, deflate: bool = True) -> WebSocketCore:
    head, rest = parse_head(data)
    assert rest == b""
    return WebSocketCore(head, max_size, deflate)


def response_of(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of the handshake's HTTP answer."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"duplicate {name}"
        headers[name.lower()] = value.strip()
    return status, headers, body


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0,
          masked: bool = True) -> bytes:  # fmt: skip
    """One frame exactly as given, masked with ``MASK`` (RFC 6455 section 5.2)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not masked:
        return head + payload
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return head + MASK + body


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


class Pair:
    """A ``WebSocketCore`` and a websockets ``ClientProtocol`` talking to each other."""

    def __init__(
        self,
        max_size: int = 2**20,
        deflate: bool = True,
        client_deflate: bool = False,
        subprotocols: list[str] | None = None,
        accept: bool = True,
    ) -> None:
        extensions = [ClientPerMessageDeflateFactory()] if client_deflate else None
        self.client = ClientProtocol(
            parse_uri("ws://example.com/chat"),
            extensions=extensions,
            subprotocols=subprotocols,  # type: ignore[arg-type]
            max_size=None,
        )
        self.client.send_request(self.client.connect())
        (request,) = self.client.data_to_send()
        self.core = core_for(request, max_size, deflate)
        if accept:
            self.accept()

    def accept(self, *args: Any, **kwargs: Any) -> Response:
        self.core.accept(*args, **kwargs)
        data, eof = self.core.data_to_send()
        assert not eof
        self.client.receive_data(data)
        (response,) = self.client.events_received()
        assert isinstance(response, Response)
        assert self.client.state is State.OPEN, self.client.handshake_exc
        return response

    def send(self, *data: bytes) -> list[Event]:
        """Raw bytes to the core; its events."""
        events: list[Event] = []
        for chunk in data:
            events += self.core.receive_data(chunk)
        return events

    def client_out(self) -> bytes:
        return b"".join(self.client.data_to_send())

    def server_out(self) -> tuple[list[Frame], bool]:
        """The frames the core wrote, as the client read them, and whether it closed the TCP
        connection."""
        data, eof = self.core.data_to_send()
        if data:
            self.client.receive_data(data)
        frames = [e for e in self.client.events_received() if isinstance(e, Frame)]
        return frames, eof

    def close_frame(self) -> tuple[int, str]:
        """The one close frame the core sent: (code, reason); it must then close TCP."""
        frames, eof = self.server_out()
        closes = [f for f in frames if f.opcode is Opcode.CLOSE]
        assert len(closes) == 1, frames
        assert eof, "the server closes the TCP connection after failing it (RFC 6455 7.1.7)"
        close = self.client.close_rcvd
        assert close is not None
        return close.code, close.reason


def messages(events: list[Event]) -> list[str | bytes | None]:
    return [e.text if e.text is not None else e.data for e in events if isinstance(e, Message)]


def closed(events: list[Event]) -> list[tuple[int, str]]:
    return [(e.code, e.reason) for e in events if isinstance(e, Closed)]


def key(raw: bytes = b"0123456789abcdef") -> str:
    return base64.b64encode(raw).decode()
