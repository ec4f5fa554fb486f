"""'Hello, world' as 200 text/plain with a content-length (hello-ka, hello-close)."""

from __future__ import annotations

from typing import Any

BODY = b"Hello, world"
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"12")],
}
_BODY = {"type": "http.response.body", "body": BODY}
_REPLY = {"status": 200, "headers": [[b"content-type", b"text/plain"]], "content": BODY}


async def lifespan(receive: Any, send: Any) -> None:
    """Answer the ASGI lifespan protocol (shared by every ASGI app here)."""
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    await send(_START)
    await send(_BODY)


async def mi(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await channels["reply"].send(_REPLY)
