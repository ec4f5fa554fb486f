"""Apps the end-to-end tests serve through the real command line."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from typing import Any

logger = logging.getLogger("uvicorn.error")
not_callable = 42


async def slow(message: dict[str, Any], channels: dict[str, Any]) -> None:
    """Answers after a pause: the request in flight during a graceful shutdown."""
    logger.info("slow request started")
    await asyncio.sleep(0.5)
    await channels["reply"].send({"status": 200, "content": b"finished"})


async def describe(message: dict[str, Any], channels: dict[str, Any]) -> None:
    """Answers with the request message's scheme, client, server and root_path."""
    text = repr(
        {k: message[k] for k in ("scheme", "client", "server", "root_path", "path", "headers")}
    )
    await channels["reply"].send({"status": 200, "content": text.encode()})


async def gc_frozen(message: dict[str, Any], channels: dict[str, Any]) -> None:
    """Answers with the number of objects the worker set apart from the garbage collector."""
    await channels["reply"].send({"status": 200, "content": b"%d" % gc.get_freeze_count()})


async def lifespan_fails(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return


def factory() -> Any:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200, "content": b"from factory"})

    return app


async def hangs_in_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A lifespan startup that never completes (waiting for a database that never answers)."""
    if scope["type"] == "lifespan":
        await receive()
        await wait_for_the_database()


async def wait_for_the_database() -> None:
    await asyncio.Event().wait()


async def hangs_in_shutdown(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Starts and serves; its lifespan shutdown never completes."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        logger.warning("app: shutdown asked")
        await asyncio.Event().wait()
        return
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"up"})


async def malloc_keeps(message: dict[str, Any], channels: dict[str, Any]) -> None:
    """Answers with the KiB the worker's RSS keeps after it freed 8 MiB in 512 KiB blocks:
    about all of it once glibc's thresholds are raised (worker/allocator.py), none with glibc's
    defaults (such blocks are mapped on their own, and unmapped when freed)."""
    before = _rss_kib()
    blocks = [b"x" * (512 * 1024) for _ in range(16)]  # written: resident
    del blocks
    await channels["reply"].send({"status": 200, "content": b"%d" % (_rss_kib() - before)})


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
