"""A peer that breaks the protocol: the app first answers what came before, then the connection
is failed (RFC 6455 section 7.1.7; the Autobahn|Testsuite's cases 3.2, 4.1.3, 5.15...)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.frames import Opcode

from tests.helpers import UNIT, running_server
from tests.protocols.wsclient import frame
from tests.worker.wshelpers import RawWebSocket, Recorder
from uvicorn.worker import websocket as session_module

TEXT, PING = 0x1, 0x9


async def messaging_echo(message: dict[str, Any], channels: dict[str, Any]) -> None:
    if message["channel"] == "websocket.receive":
        await channels["reply"].send({"text": message["text"]})


async def asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": event["text"]})
        else:
            return


@pytest.mark.parametrize("app", [messaging_echo, asgi_echo], ids=["messaging", "asgi"])
async def test_messages_before_a_protocol_error_are_answered_first(app: Any) -> None:
    async with running_server(app, lifespan="off") as server:
        raw = await RawWebSocket.connect(server.port)
        await raw.handshake()
        # One write: the bad frame (RSV2 without an extension) is read with the message.
        raw.writer.write(frame(TEXT, b"Hello") + frame(TEXT, b"x", rsv=0b010) + frame(PING))
        frames = await raw.until_closed()
    assert [(f.opcode, bytes(f.data)) for f in frames[:1]] == [(Opcode.TEXT, b"Hello")]
    assert [f.opcode for f in frames[1:]] == [Opcode.CLOSE]  # no pong: the ping was not read
    assert raw.protocol.close_rcvd is not None and raw.protocol.close_rcvd.code == 1002


async def test_the_app_is_told_the_failure() -> None:
    recorder = Recorder()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        recorder.record(message)

    async with running_server(app) as server:
        raw = await RawWebSocket.connect(server.port)
        await raw.handshake()
        raw.writer.write(frame(TEXT, b"ok") + frame(TEXT, b"\xff"))
        await raw.until_closed()
        disconnect = await recorder.wait_for("websocket.disconnect")
    assert recorder.channels()[1:] == ["websocket.receive", "websocket.disconnect"]
    assert disconnect["code"] == 1007


async def test_an_app_busy_for_too_long_does_not_hold_the_failure_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(session_module, "FAIL_TIMEOUT", 0.2 * UNIT)
    release = asyncio.Event()
    recorder = Recorder()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        recorder.record(message)
        if message["channel"] == "websocket.receive":
            await release.wait()

    async with running_server(app) as server:
        raw = await RawWebSocket.connect(server.port)
        await raw.handshake()
        raw.writer.write(frame(TEXT, b"slow") + frame(0x3))
        await recorder.wait_for("websocket.receive")
        frames = await raw.until_closed()  # while the handler still waits
        assert [f.opcode for f in frames] == [Opcode.CLOSE]
        release.set()
        disconnect = await recorder.wait_for("websocket.disconnect")
    assert disconnect["code"] == 1002
