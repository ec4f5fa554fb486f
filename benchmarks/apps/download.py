"""1 MiB in one body message with a content-length (h2-download). The bytes are a known pattern
(0, 1, ..., 255 repeated) so that the runner's check can tell a truncated or mixed-up body."""

from __future__ import annotations

from typing import Any

from apps.hello import lifespan

SIZE = 2**20
BODY = bytes(range(256)) * (SIZE // 256)
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/octet-stream"),
                (b"content-length", str(SIZE).encode())],
}  # fmt: skip
_BODY = {"type": "http.response.body", "body": BODY}
_REPLY = {"status": 200, "headers": [[b"content-type", b"application/octet-stream"]],
          "content": BODY}  # fmt: skip


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    await send(_START)
    await send(_BODY)


async def mi(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await channels["reply"].send(_REPLY)
