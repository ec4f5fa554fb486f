"""Connections leave no reference cycles behind: under load, every cycle left to the garbage
collector makes its full collections more frequent, and each one pauses every request (the
p99 latency of short connections doubled before the parser's cycle was broken)."""

from __future__ import annotations

import gc
from typing import Any

from tests.helpers import get, running_server


async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await channels["reply"].send({"status": 200, "content": b"ok"})


async def test_connections_leave_no_reference_cycles() -> None:
    async with running_server(app) as server:
        await server.request(get())  # warm up: what the first request creates for good
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(3):
                await server.request(get())  # a connection each
                await server.request(get("/", "connection: close"))
            client = await server.connect()
            for _ in range(3):
                await client.send(get())
                await client.read_response()
            client.close()
            await server.request(get())  # the server has seen the previous ones close
            gc.collect()
            ours = [o for o in gc.garbage if type(o).__module__.startswith("uvicorn")]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert ours == []
