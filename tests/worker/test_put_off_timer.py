"""A new connection does not arm its keep-alive timer when it opens: a sweep arms it, no later
than the deadline (``ServerState.put_off_timer()``), for the connections still open without
one. A client that sends `Connection: close` is gone by then and never costs a timer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import UNIT, running_server
from uvicorn.config import Config
from uvicorn.worker.connection import HTTPConnection
from uvicorn.worker.messaging import MessagingCycle
from uvicorn.worker.state import FRESH_SWEEP, ServerState


class Quiet(asyncio.Transport):
    """A connected transport that nothing is ever received on."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def opened(state: ServerState) -> HTTPConnection:
    conn = HTTPConnection(state)
    conn.connection_made(Quiet())
    return conn


def sweep_now(state: ServerState) -> None:
    """Run the sweep that is due (its time is checked by the caller): no wait on the clock."""
    sweep = state._sweep
    assert sweep is not None
    sweep.cancel()
    state._sweep_fresh()


@pytest.mark.parametrize("keep_alive", [30.0, FRESH_SWEEP / 5])
async def test_the_sweep_arms_the_timer_of_an_open_connection_for_its_deadline(
    keep_alive: float,
) -> None:
    loop = asyncio.get_running_loop()
    state = ServerState(
        Config(app="app:app", timeout_keep_alive=keep_alive), None, MessagingCycle, loop
    )
    before = loop.time()
    waiting, leaving = opened(state), opened(state)
    after = loop.time()
    assert waiting._timer is None and leaving._timer is None
    assert state.fresh == {waiting, leaving}
    deadline = waiting._timer_at
    assert before + keep_alive <= deadline <= after + keep_alive
    sweep = state._sweep
    assert sweep is not None
    # Due a sweep's delay after the first connection opened, or at its deadline if sooner.
    due = min(before + FRESH_SWEEP, deadline)
    assert sweep.when() == pytest.approx(due, abs=after - before + 1e-3)
    assert sweep.when() <= deadline + 1e-3

    leaving.connection_lost(None)  # gone before the sweep: forgotten, never armed
    assert state.fresh == {waiting}
    sweep_now(state)
    assert state._sweep is None and not state.fresh
    assert leaving._timer is None
    assert waiting._timer is not None and waiting._timer_at == deadline
    waiting.connection_lost(None)
    assert waiting._timer is None


async def test_a_connection_that_armed_its_timer_meanwhile_keeps_it() -> None:
    loop = asyncio.get_running_loop()
    state = ServerState(Config(app="app:app", timeout_request_head=5), None, MessagingCycle, loop)
    conn = opened(state)
    conn.data_received(b"GET / HTTP/1.1\r\nHost: ")  # a head begun: its own, earlier deadline
    timer = conn._timer
    assert timer is not None
    sweep_now(state)
    assert conn._timer is timer
    conn.connection_lost(None)


async def test_a_new_connection_that_sends_nothing_is_closed_at_its_deadline() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        raise AssertionError("never called")

    timeout = FRESH_SWEEP / 5 * UNIT  # due before the sweep would run otherwise
    async with running_server(app, timeout_keep_alive=timeout) as server:
        loop = asyncio.get_running_loop()
        start = loop.time()
        idle = await server.connect()
        assert await idle.read_until_closed() == b""
        waited = loop.time() - start
        idle.close()
    assert waited >= timeout * 0.8
