"""WebSocket echo of every text or binary message (ws); plain HTTP gets 200 'ok', which the
runner's readiness probe uses."""

from __future__ import annotations

from typing import Any

from apps.hello import lifespan

_OK_START = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]}  # fmt: skip
_OK_BODY = {"type": "http.response.body", "body": b"ok"}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await lifespan(receive, send)
        return
    if kind == "http":
        await send(_OK_START)
        await send(_OK_BODY)
        return
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] != "websocket.receive":
            return
        if event.get("text") is not None:
            await send({"type": "websocket.send", "text": event["text"]})
        else:
            await send({"type": "websocket.send", "bytes": event.get("bytes") or b""})


async def mi(message: dict[str, Any], channels: dict[str, Any]) -> None:
    kind = message["channel"]
    if kind == "websocket.receive":
        if message["text"] is not None:
            await channels["reply"].send({"text": message["text"]})
        else:
            await channels["reply"].send({"bytes": message["bytes"]})
    elif kind == "http.request":
        await channels["reply"].send({"status": 200, "headers": [[b"content-type", b"text/plain"]],
                                      "content": b"ok"})  # fmt: skip
