"""Headers in a WebSocket handshake's answer. Those an app puts there (an accept, or an ASGI
denial response) are checked as for any HTTP response: an invalid one is the app's error (500,
logged), never a header line smuggled onto the wire (response splitting), whatever websockets
version is installed; the bytes on the wire are read raw, as a client library might hide what it
parsed. And the server's permessage-deflate answer follows --ws-deflate-window-bits."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.helpers import UNIT, running_server

HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
INJECTIONS = {
    "value-crlf": [(b"x-a", b"1\r\nX-Injected: yes")],
    "value-lf": [(b"x-a", b"1\nX-Injected: yes")],
    "name-crlf": [(b"X-Injected: yes\r\nx-a", b"1")],
}


async def answer_head(port: int) -> bytes:
    """The head of the server's answer to a valid handshake, as sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(HANDSHAKE)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5 * UNIT)
    finally:
        writer.close()


def app_errors(caplog: pytest.LogCaptureFixture) -> list[BaseException]:
    return [
        r.exc_info[1]
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.exc_info and r.exc_info[1] is not None
    ]


async def refused(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    async with running_server(app) as server:
        head = await answer_head(server.port)
    assert head.startswith(b"HTTP/1.1 500 "), head
    assert b"injected" not in head.lower()
    (error,) = app_errors(caplog)
    assert isinstance(error, ValueError) and "header" in str(error)


@pytest.mark.parametrize("headers", INJECTIONS.values(), ids=INJECTIONS.keys())
async def test_messaging_accept(headers: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["channel"] == "websocket.connect":
            await channels["reply"].send({"accept": True, "headers": headers})

    await refused(app, caplog)


@pytest.mark.parametrize("headers", INJECTIONS.values(), ids=INJECTIONS.keys())
@pytest.mark.parametrize("how", ["accept", "denial"])
async def test_asgi(headers: Any, how: str, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        if how == "accept":
            await send({"type": "websocket.accept", "headers": headers})
        else:
            await send({"type": "websocket.http.response.start", "status": 401,
                        "headers": headers})  # fmt: skip
            await send({"type": "websocket.http.response.body", "body": b"no"})

    await refused(app, caplog)


async def test_an_app_that_catches_the_error_may_answer_again() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["channel"] == "websocket.connect":
            try:
                await channels["reply"].send({"accept": True, "headers": [(b"x-a", b"\r\n")]})
            except ValueError:
                await channels["reply"].send({"accept": True, "headers": [(b"x-a", b"ok")]})

    async with running_server(app) as server:
        head = await answer_head(server.port)
    assert head.startswith(b"HTTP/1.1 101 ") and b"\r\nx-a: ok\r\n" in head


@pytest.mark.parametrize("bits", [9, 15])
async def test_ws_deflate_window_bits(bits: int) -> None:
    from websockets.asyncio.client import connect

    async def echo(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["channel"] == "websocket.receive":
            await channels["reply"].send({"text": message["text"]})

    async with (
        running_server(echo, ws_deflate_window_bits=bits) as server,
        connect(f"ws://127.0.0.1:{server.port}/") as ws,
    ):
        assert ws.response is not None
        offer = ws.response.headers["Sec-WebSocket-Extensions"]
        assert f"server_max_window_bits={bits}" in offer
        assert f"client_max_window_bits={bits}" in offer
        text = "".join(f"{i:06d} some text to compress " for i in range(2000))
        await ws.send(text)
        assert await ws.recv() == text
