"""The connection frames each response with one ``Response`` it reuses, reset for each request
it starts: the reset is inlined there (a call fewer per request), so it must set every field."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from uvicorn.compiled import COMPILED
from uvicorn.config import Config
from uvicorn.protocols.http_parser import RequestHead, RequestParser
from uvicorn.protocols.http_response import Response, ResponseState
from uvicorn.worker.connection import HTTPConnection
from uvicorn.worker.messaging import MessagingCycle
from uvicorn.worker.state import ServerState

# Every field of a Response, its base class's included: its __slots__, or where mypyc compiled
# it, the attributes of the native class (which has no __slots__).
SLOTS = [name for cls in Response.__mro__
         for name in getattr(cls, "__slots__", getattr(cls, "__mypyc_attrs__", ()))]  # fmt: skip
assert "state" in SLOTS and "_chunked" in SLOTS


def other_than(value: Any) -> Any:
    """A value of the same type as ``value`` but not equal to it: a compiled Response refuses a
    value of another type (mypyc checks each attribute's declared type)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 12345
    if isinstance(value, ResponseState):
        return ResponseState.DONE if value is not ResponseState.DONE else ResponseState.IDLE
    raise AssertionError(f"a field of a type this test does not know: {value!r}")


class Unconnected(asyncio.Transport):
    """A transport with no socket behind it (connection_made reads its addresses)."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Waiting(MessagingCycle):
    __slots__ = ()

    async def call_app(self) -> None:
        await asyncio.Event().wait()


async def test_starting_a_request_resets_every_field_of_the_response() -> None:
    loop = asyncio.get_running_loop()
    head = RequestParser().receive_data(b"HEAD / HTTP/1.0\r\n\r\n")[0]
    assert isinstance(head, RequestHead)
    state = ServerState(Config(app="app:app"), None, Waiting, loop)
    conn = HTTPConnection(state)
    conn.connection_made(Unconnected())
    reference = Response(state.defaults, True, "1.0", False)
    for name in SLOTS:  # what a request before may have left
        if name != "_defaults":
            setattr(conn.response, name, other_than(getattr(reference, name)))
    cycle = Waiting(conn, conn.response, head, None, "http")
    conn._start_cycle(cycle)
    try:
        for name in SLOTS:
            assert getattr(conn.response, name) == getattr(reference, name), name
    finally:
        assert cycle.task is not None
        cycle.task.cancel()
        await asyncio.gather(cycle.task, return_exceptions=True)


@pytest.mark.skipif(COMPILED, reason="mypyc: a compiled class's __new__ runs its __init__")
def test_reset_sets_every_field_init_does() -> None:
    fresh: Any = Response.__new__(Response)
    fresh._defaults = None
    fresh.reset(False, "1.1", True)
    for name in SLOTS:
        getattr(fresh, name)  # set, or AttributeError
