"""Connections leave no reference cycles behind: under load, every cycle left to the garbage
collector makes its full collections more frequent, and each one pauses every request (the
p99 latency of short connections doubled before the parser's cycle was broken)."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from tests.helpers import Watch, get, running_server
from uvicorn.worker.state import ServerState


async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await channels["reply"].send({"status": 200, "content": b"ok"})


async def test_connections_leave_no_reference_cycles(monkeypatch: pytest.MonkeyPatch) -> None:
    forgotten = Watch(monkeypatch, (ServerState, "forget"))
    async with running_server(app) as server:
        state = server.server.state
        assert state is not None
        await server.request(get())  # warm up: what the first request creates for good
        await forgotten.until(lambda: not state.connections)
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
            # Every connection is over on the server's side too before anything is counted.
            await forgotten.until(lambda: not state.connections)
            gc.collect()
            ours = [o for o in gc.garbage if type(o).__module__.startswith("uvicorn")]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert ours == []
