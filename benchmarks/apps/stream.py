"""16 body messages of 1 KiB, no content-length: sent chunked (stream)."""

from __future__ import annotations

from typing import Any

from apps.hello import lifespan

CHUNK = b"x" * 1023 + b"\n"
COUNT = 16
BODY = CHUNK * COUNT
_START = {"type": "http.response.start", "status": 200,
          "headers": [(b"content-type", b"text/plain")]}  # fmt: skip
_PART = {"type": "http.response.body", "body": CHUNK, "more_body": True}
_END = {"type": "http.response.body", "body": b"", "more_body": False}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    await send(_START)
    for _ in range(COUNT):
        await send(_PART)
    await send(_END)


async def mi(message: dict[str, Any], channels: dict[str, Any]) -> None:
    reply = channels["reply"]
    await reply.send({"status": 200, "headers": [[b"content-type", b"text/plain"]],
                      "content": b"", "more_content": True})  # fmt: skip
    for _ in range(COUNT):
        await reply.send({"content": CHUNK, "more_content": True})
    await reply.send({"content": b"", "more_content": False})
