"""Echo apps for the Autobahn|Testsuite's fuzzing client: every message is sent back as it came
(text as text, binary as binary), and the connection is closed only by the peer or the server.

``messaging_echo`` uses the messaging interface (README.md), ``asgi_echo`` ASGI 3; the same app
also runs on the published uvicorn, for comparison (``asgi_echo`` only)."""

from __future__ import annotations

from typing import Any


async def messaging_echo(message: dict[str, Any], channels: dict[str, Any]) -> None:
    # websocket.connect: returning accepts (SPEC.md's implicit accept).
    if message["channel"] == "websocket.receive":
        if message["text"] is not None:
            await channels["reply"].send({"text": message["text"]})
        else:
            await channels["reply"].send({"bytes": message["bytes"]})


async def asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    while True:
        event = await receive()
        kind = event["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind == "websocket.receive":
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event["bytes"]})
        else:  # websocket.disconnect
            return
