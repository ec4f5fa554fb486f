"""uvloop's registry of transports and asyncio's of tasks, once a worker has replaced what fills
them (worker/registries.py): what reads them sees what it saw before, and nothing they hold
outlives its object. (Every other test of a running server runs with them replaced too.)"""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from typing import Any

import pytest

from tests.helpers import each_turn_until, get, only_connection, running_server
from uvicorn.worker import registries

TASKS_IN_WEAKSET = sys.version_info < (3, 12)


async def hello(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await channels["reply"].send({"status": 200, "content": b"hi"})


def transport_registry(loop: asyncio.AbstractEventLoop) -> Any:
    (found,) = [r for r in gc.get_referents(loop) if isinstance(r, weakref.WeakValueDictionary)]
    return found


async def test_a_transports_socket_is_still_refused_to_add_reader() -> None:
    loop = asyncio.get_running_loop()
    async with running_server(hello) as server:
        assert registries.lighten(loop)[0]  # (done by the server already: said again)
        registry = transport_registry(loop)
        state = server.server.state
        assert state is not None
        assert type(registry).__name__ == "TransportRegistry"
        client = await server.connect()
        await client.send(get())
        assert (await client.read_response()).status == 200
        conn = only_connection(server)
        fd = conn.transport.get_extra_info("socket").fileno()
        assert registry[fd] is conn.transport
        # uvloop's own check, which the registry is for.
        with pytest.raises(RuntimeError, match="used by transport"):
            loop.add_reader(fd, lambda: None)
        freed = weakref.ref(conn.transport)
        del conn
        client.close()
        await each_turn_until(lambda: gc.collect() >= 0 and freed() is None)
        # The entry is dead, not a reference that kept the transport: it reads as missing.
        with pytest.raises(KeyError):
            registry[fd]


def test_an_asyncio_loop_is_left_alone() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert registries.lighten(loop)[0] is False
    finally:
        loop.close()


@pytest.mark.skipif(not TASKS_IN_WEAKSET, reason="Python 3.12+ registers tasks otherwise")
async def test_all_tasks_lists_the_running_ones_and_forgets_the_freed() -> None:
    async with running_server(hello):
        assert "add" in vars(asyncio.tasks._all_tasks)  # type: ignore[attr-defined]
    release = asyncio.Event()
    task = asyncio.create_task(release.wait())
    assert task in asyncio.all_tasks()
    freed = weakref.ref(task)
    release.set()
    await task
    del task
    await each_turn_until(lambda: gc.collect() >= 0 and freed() is None)
    assert all(t() is not None for t in asyncio.tasks._all_tasks.data)  # type: ignore[attr-defined]


@pytest.mark.skipif(not TASKS_IN_WEAKSET, reason="Python 3.12+ registers tasks otherwise")
async def test_a_task_freed_while_the_set_is_iterated_is_removed_after() -> None:
    registries.lighten(asyncio.get_running_loop())
    tasks: Any = asyncio.tasks._all_tasks  # type: ignore[attr-defined]
    task: asyncio.Task[None] | None = asyncio.create_task(asyncio.sleep(0))
    assert task is not None
    await task
    await asyncio.sleep(0)  # (the loop lets go of it: the test holds the last reference)
    ref = weakref.ref(task)
    iterating = iter(tasks)
    while next(iterating) is not asyncio.current_task():  # (holds the last it gave)
        pass
    task = None
    assert ref() is None
    # Held back while the set is iterated (a set cannot change size then), removed after.
    assert any(r() is None for r in tasks.data)
    list(iterating)
    assert all(r() is not None for r in tasks.data)
