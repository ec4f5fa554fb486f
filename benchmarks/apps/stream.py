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
# The messaging app's messages are made once too, as the ASGI app's are (a reply never changes
# the dict it is given: SPEC), so that the two interfaces are compared on the server's work.
_REPLY_START = {"status": 200, "headers": [[b"content-type", b"text/plain"]],
                "content": b"", "more_content": True}  # fmt: skip
_REPLY_PART = {"content": CHUNK, "more_content": True}
_REPLY_END = {"content": b"", "more_content": False}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    await send(_START)
    for _ in range(COUNT):
        await send(_PART)
    await send(_END)


async def mi(message: dict[str, Any], channels: dict[str, Any]) -> None:
    send = channels["reply"].send
    await send(_REPLY_START)
    for _ in range(COUNT):
        await send(_REPLY_PART)
    await send(_REPLY_END)
