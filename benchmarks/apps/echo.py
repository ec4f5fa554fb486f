"""Reads the whole request body and sends it back with a content-length (echo)."""

from __future__ import annotations

from typing import Any

from apps.hello import lifespan


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    parts = []
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            return
        parts.append(event.get("body", b""))
        if not event.get("more_body", False):
            break
    body = b"".join(parts)
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/octet-stream"),
                    (b"content-length", str(len(body)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


async def mi(message: dict[str, Any], channels: dict[str, Any]) -> None:
    parts = [message.get("body", b"")]
    if "body" in channels:
        while True:
            chunk = await channels["body"].receive()
            parts.append(chunk["content"])
            if not chunk.get("more_content", False):
                break
    await channels["reply"].send({
        "status": 200,
        "headers": [[b"content-type", b"application/octet-stream"]],
        "content": b"".join(parts),
    })  # fmt: skip
