"""The frames the server sends for an app's messages, read by a raw client: on a connection
without an extension they are made by ``WebSocketCore.frame_data()`` (not websockets'
``send_text()``), so every length boundary of RFC 6455 section 5.2 is checked byte for byte,
on both interfaces, and with permessage-deflate (websockets' frames) for comparison; and a
quiet deflating connection, whose compressor is let go and made again."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.frames import Opcode

from tests.helpers import UNIT, Watch, running_server
from tests.worker.wshelpers import RawWebSocket, sessions
from uvicorn.protocols.websocket import WebSocketCore
from uvicorn.protocols.websocket_deflate import LazyDeflate

LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 100_000]


async def echo(message: dict[str, Any], channels: dict[str, Any]) -> None:
    """Answers ``<length> text|bytes`` with a message of that length and kind."""
    if message["channel"] == "websocket.receive":
        length, kind = message["text"].split()
        payload = "é" * (int(length) // 2) + "x" * (int(length) % 2)  # UTF-8: length bytes
        if kind == "text":
            await channels["reply"].send({"text": payload})
        else:
            await channels["reply"].send({"bytes": payload.encode()})


async def asgi_echo(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return  # (lifespan: not supported, which is fine)
    await receive()
    await send({"type": "websocket.accept"})
    while (event := await receive())["type"] == "websocket.receive":
        length, kind = event["text"].split()
        payload = "é" * (int(length) // 2) + "x" * (int(length) % 2)
        if kind == "text":
            await send({"type": "websocket.send", "text": payload})
        else:
            await send({"type": "websocket.send", "bytes": payload.encode()})


def expected(length: int) -> bytes:
    return ("é" * (length // 2) + "x" * (length % 2)).encode()


@pytest.mark.parametrize("app", [echo, asgi_echo], ids=["messaging", "asgi"])
async def test_every_length_boundary_without_an_extension(app: Any) -> None:
    async with running_server(app) as server:
        client = await RawWebSocket.connect(server.port)
        await client.handshake()
        assert "Sec-WebSocket-Extensions" not in client.response.headers  # type: ignore[union-attr]
        for length in LENGTHS:
            for kind, opcode in (("text", Opcode.TEXT), ("bytes", Opcode.BINARY)):
                client.send_text(f"{length} {kind}")
                frame = await client.next_frame()
                assert frame is not None
                assert (frame.opcode, frame.fin, frame.rsv1) == (opcode, True, False)
                assert bytes(frame.data) == expected(length)
        client.close()


@pytest.mark.parametrize("app", [echo, asgi_echo], ids=["messaging", "asgi"])
async def test_the_same_messages_with_permessage_deflate(app: Any) -> None:
    async with running_server(app) as server, connect(f"ws://127.0.0.1:{server.port}/") as client:
        assert client.protocol.extensions  # negotiated: websockets compresses
        for length in LENGTHS:
            await client.send(f"{length} text")
            assert (await client.recv()).encode() == expected(length)
            await client.send(f"{length} bytes")
            assert await client.recv() == expected(length)


async def test_a_quiet_connection_lets_its_compressor_go_and_compresses_on(
    monkeypatch: Any,
) -> None:
    # With each keep-alive ping (the peer quiet), the compressor is let go when nothing was
    # compressed since the last ping (websocket_deflate.LazyDeflate).
    watch = Watch(monkeypatch, (WebSocketCore, "release_compressor"))
    async with (
        running_server(echo, ws_ping_interval=0.05 * UNIT, ws_ping_timeout=10 * UNIT) as server,
        connect(f"ws://127.0.0.1:{server.port}/") as client,
    ):
        (session,) = sessions(server)
        (extension,) = session.core.protocol.extensions
        assert isinstance(extension, LazyDeflate)
        assert extension.holds == (False, False)  # nothing made at the handshake
        await client.send("300 text")
        assert (await client.recv()).encode() == expected(300)
        assert extension.holds == (True, True)
        await watch.until(lambda: not extension.holds[0])
        for _ in range(2):  # a new compressor; the client's window carries on
            await client.send("300 text")
            assert (await client.recv()).encode() == expected(300)
