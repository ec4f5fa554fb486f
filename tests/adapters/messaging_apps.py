"""Messaging-interface apps behind WSGIAdapter, for wsgiref (in-process) and gunicorn
(``gunicorn tests.adapters.messaging_apps:wsgi``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from uvicorn.utils import WSGIAdapter

TEXT = [b"content-type", b"text/plain"]


async def read_body(message: dict[str, Any], channels: dict[str, Any]) -> tuple[bytes, int]:
    """The whole body, and how many chunks came through the body channel."""
    body = message.get("body", b"")
    reads = 0
    if "body" in channels:
        while True:
            chunk = await channels["body"].receive()
            reads += 1
            body += chunk["content"]
            if not chunk.get("more_content", False):
                break
    return body, reads


async def echo(message: dict[str, Any], channels: dict[str, Any]) -> None:
    body, reads = await read_body(message, channels)
    summary = {
        key: value.decode("latin-1") if isinstance(value, bytes) else value
        for key, value in message.items()
        if key not in ("body", "headers")
    }
    summary["headers"] = [[n.decode(), v.decode()] for n, v in message["headers"]]
    summary["first_body"] = len(message["body"])
    summary["size"] = len(body)
    summary["sha256"] = hashlib.sha256(body).hexdigest()
    summary["reads"] = reads
    content = json.dumps(summary).encode()
    await channels["reply"].send(
        {"status": 200, "headers": [[b"content-type", b"application/json"]], "content": content}
    )


async def stream(message: dict[str, Any], channels: dict[str, Any]) -> None:
    reply = channels["reply"]
    await reply.send({"status": 200, "headers": [TEXT], "content": b"", "more_content": True})
    for i in range(5):
        await reply.send({"content": b"chunk %d\n" % i, "more_content": True})
    await reply.send({"content": b"", "more_content": False})


async def duplex(message: dict[str, Any], channels: dict[str, Any]) -> None:
    """Answers 'ready' before reading the rest of the upload."""
    reply = channels["reply"]
    await reply.send(
        {"status": 200, "headers": [TEXT], "content": b"ready\n", "more_content": True}
    )
    body, _ = await read_body(message, channels)
    await reply.send({"content": b"got %d bytes\n" % len(body), "more_content": False})


async def fail(message: dict[str, Any], channels: dict[str, Any]) -> None:
    raise RuntimeError("failed before responding")


async def fail_mid_stream(message: dict[str, Any], channels: dict[str, Any]) -> None:
    reply = channels["reply"]
    await reply.send(
        {"status": 200, "headers": [TEXT], "content": b"partial", "more_content": True}
    )
    raise RuntimeError("failed mid-stream")


ROUTES = {
    "/echo": echo,
    "/stream": stream,
    "/duplex": duplex,
    "/fail": fail,
    "/fail-mid-stream": fail_mid_stream,
}


async def router(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await ROUTES[message["path"]](message, channels)


wsgi = WSGIAdapter(router)
