"""``ServerState`` is read on every request: its attributes must stay fewer than 30. With a
30th, CPython 3.11 stops sharing the keys of its instance dict and every attribute read costs
more (measured: ~240 instructions per request under ``benchmarks/micro.py --callgrind``)."""

from __future__ import annotations

import asyncio

import pytest

from uvicorn.compiled import COMPILED
from uvicorn.config import Config
from uvicorn.worker.messaging import MessagingCycle
from uvicorn.worker.state import ServerState


@pytest.mark.skipif(COMPILED, reason="mypyc: a compiled ServerState keeps its fields in C")
@pytest.mark.parametrize("http", ["auto", "1.1"])
async def test_server_state_has_fewer_than_30_attributes(http: str) -> None:
    state = ServerState(
        Config(app="app:app", http=http), None, MessagingCycle, asyncio.get_running_loop()
    )
    assert len(vars(state)) < 30, sorted(vars(state))
