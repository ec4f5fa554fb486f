"""Apps the supervisor's end-to-end tests serve."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

logger = logging.getLogger("uvicorn.error")


# What /grow keeps for good: a leak, for --worker-max-rss.
HOARD: list[bytes] = []
GROWTH = 64 * 1024 * 1024


async def whoami(message: dict[str, Any], channels: dict[str, Any]) -> None:
    """Answers with the worker's pid; ``/block`` blocks the event loop (a bug --timeout
    catches); ``/slow`` answers after a pause; ``/grow`` keeps 64 MiB more (written, so
    resident)."""
    if message["path"] == "/grow":
        HOARD.append(b"x" * GROWTH)
    if message["path"] == "/block":
        logger.info("blocking the event loop")
        time.sleep(60)
    if message["path"] == "/slow":
        logger.info("slow request started")
        await asyncio.sleep(0.5)
    await channels["reply"].send({"status": 200, "content": str(os.getpid()).encode()})


async def crash_after_start(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Starts, serves, then dies at once: a worker that keeps dying."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        asyncio.get_running_loop().call_later(0.05, os._exit, 1)
        await receive()
