"""Apps the HTTP/2 end-to-end tests serve (test_http2_cli.py, test_http2_supervisor.py)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger("uvicorn.error")


async def asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI 3: the request body back, or 'Hello, world' for none (a fixed size, so that
    h2load's byte counts can be checked)."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body or b"Hello, world"})


async def held(message: dict[str, Any], channels: dict[str, Any]) -> None:
    """Answers with the worker's pid, or 1 MB for ``/big``. ``/hold?FILE`` logs that it
    started, then holds its answer until FILE exists: a request in flight for exactly as long
    as a test needs (the test creates FILE once it has seen what it waits for in the log)."""
    if message["path"] == "/hold":
        release = Path(message["query_string"].decode())
        logger.info("held request started")
        while not release.exists():
            await asyncio.sleep(0.01)
    if message["path"] == "/big":  # more than a client's first window (64 KiB)
        await channels["reply"].send({"status": 200, "content": b"x" * 1_000_000})
        return
    await channels["reply"].send({"status": 200, "content": str(os.getpid()).encode()})


async def echo(message: dict[str, Any], channels: dict[str, Any]) -> None:
    """The messaging interface's asgi_echo: the README's echo_body, or 'Hello, world'."""
    from examples.echo_body import read_body

    body = await read_body(message, channels)
    await channels["reply"].send({"status": 200, "content": body or b"Hello, world"})
