"""Apps for tests/e2e/test_metrics.py."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any


async def statuses(message: dict[str, Any], channels: dict[str, Any]) -> None:
    """``/status/NNN`` answers NNN; ``/hold`` answers after 3 s (a request in flight);
    ``/block`` blocks the event loop for 1.2 s (longer than a heartbeat's interval, so the
    next heartbeat is late); anything else 200, with the worker's pid."""
    path = message["path"]
    status = 200
    if path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
    elif path == "/hold":
        await asyncio.sleep(3)
    elif path == "/block":
        time.sleep(1.2)
    await channels["reply"].send({"status": status, "content": str(os.getpid()).encode()})
