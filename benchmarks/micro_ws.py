"""WebSocket modes of ``benchmarks/micro.py``: CPU per message without sockets, on connections
whose transport only counts bytes.

* ``fanout`` / ``fanout-asgi``: the broadcast chat's delivery loop. ``MEMBERS`` (1,000)
  WebSockets, upgraded through ``HTTPConnection`` as a client's are, join one group of the
  README's broadcast chat (``BroadcastMiddleware``, ``memory://``); each message is a group
  message as the backend hands it over (``Groups.deliver_local``, a fresh dict per message, as
  decoded from Redis), delivered to every member. Counted per delivery.
* ``ws`` / ``ws-asgi``: an echo of 64-byte text messages, each fed as a masked client frame
  (RFC 6455 section 5.3) to one connection, answered by a messaging-interface app (``ws``) or
  an ASGI app (``ws-asgi``). Counted per message.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from uvicorn.broadcast import BroadcastMiddleware, Groups
from uvicorn.config import Config
from uvicorn.worker.asgi import ASGICycle, ASGIWebSocket
from uvicorn.worker.connection import HTTPConnection
from uvicorn.worker.messaging import MessagingCycle, MessagingWebSocket
from uvicorn.worker.state import ServerState

MEMBERS = 1000
TEXT = "x" * 64
UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: localhost:8000\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
MASK = b"\x1f\x2e\x3d\x4c"


def client_frame(text: str) -> bytes:
    """A masked, final text frame (RFC 6455 section 5.2), as a client sends it."""
    payload = text.encode()
    assert len(payload) < 126
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + MASK + masked


class Transport:
    """Counts what is written; takes the protocol a WebSocket upgrade hands the socket to."""

    def __init__(self) -> None:
        self.written = 0
        self.writes = 0
        self.protocol: Any = None

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.writes += 1

    def writelines(self, pieces: Any) -> None:
        for piece in pieces:
            self.write(piece)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...


async def _chat(message: dict[str, Any], channels: dict[str, Any]) -> None:
    """The README's broadcast chat (examples/broadcast_chat), without its page."""
    kind = message["channel"]
    if kind == "websocket.connect":
        await channels["groups"].send({"group": "chat", "add": channels["reply"].name})
    elif kind == "websocket.receive":
        await channels["groups"].send({"group": "chat", "send": {"text": message["text"]}})


async def _chat_asgi(scope: Any, receive: Any, send: Any) -> None:
    """The same chat as an ASGI app, through the ``uvicorn.groups`` extension."""
    groups = scope["extensions"]["uvicorn.groups"]
    await receive()
    await send({"type": "websocket.accept"})
    await groups["send"]({"group": "chat", "add": groups["channel"]})
    while (await receive())["type"] == "websocket.receive":
        pass


async def _echo(message: dict[str, Any], channels: dict[str, Any]) -> None:
    if message["channel"] == "websocket.receive":
        await channels["reply"].send({"text": message["text"]})


async def _echo_asgi(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] != "websocket.receive":
            return
        await send({"type": "websocket.send", "text": event["text"]})


def _state(app: Any, asgi: bool) -> ServerState:
    config = Config(app=app, access_log=False, ws_ping_interval=0)
    cycle, session = (ASGICycle, ASGIWebSocket) if asgi else (MessagingCycle, MessagingWebSocket)
    state = ServerState(config, app, cycle, asyncio.get_running_loop(), session)
    state.lifespan_state = {}
    return state


async def _connect(state: ServerState) -> Transport:
    transport = Transport()
    conn = HTTPConnection(state)
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(UPGRADE)
    for _ in range(10):  # the app's connect handler runs in the session's task
        await asyncio.sleep(0)
    assert transport.protocol is not None, "the upgrade failed: see the log above"
    return transport


async def setup(kind: str) -> tuple[Callable[[], Awaitable[None]], list[Transport], int]:
    """``(one, transports, per_one)``: ``one()`` does one round (a group message delivered to
    every member, or one message echoed); ``per_one`` deliveries per round."""
    asgi = kind.endswith("-asgi")
    if kind.startswith("fanout"):
        middleware = BroadcastMiddleware(_chat_asgi if asgi else _chat, url="memory://")
        state = _state(middleware, asgi)
        transports = [await _connect(state) for _ in range(MEMBERS)]
        groups: Groups = middleware.groups
        assert len(groups.groups["chat"]) == MEMBERS

        async def one() -> None:
            groups.deliver_local("chat", {"text": TEXT})  # decoded from Redis: a new dict
            await asyncio.sleep(0)

        return one, transports, MEMBERS
    state = _state(_echo_asgi if asgi else _echo, asgi)
    transport = await _connect(state)
    session = transport.protocol
    frame = client_frame(TEXT)

    async def echo() -> None:
        session.data_received(frame)
        await asyncio.sleep(0)

    return echo, [transport], 1


KINDS = ("ws", "ws-asgi", "fanout", "fanout-asgi")
