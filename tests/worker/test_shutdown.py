"""One deadline for the whole shutdown: draining requests, WebSocket closing handshakes and the
lifespan shutdown all share --graceful-timeout (plus the short FINAL_GRACE for cancelled calls
to unwind), and a second stop() ends every wait at once."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import UNIT, get, listen
from uvicorn.config import Config
from uvicorn.worker.server import FINAL_GRACE, Server


async def start(app: Any, **options: Any) -> tuple[Server, int]:
    sock = listen()
    server = Server(Config(app=app, access_log=False, **options), [sock])
    await server.start()
    return server, sock.getsockname()[1]


class Stubborn:
    """An ASGI app where everything hangs: a request that never answers, a WebSocket that
    waits on a feed (never on receive()), a lifespan shutdown that never completes."""

    def __init__(self) -> None:
        self.request_started = asyncio.Event()
        self.shutdown_asked = asyncio.Event()
        self.outcomes: dict[str, BaseException] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            self.shutdown_asked.set()
        elif kind == "http":
            self.request_started.set()
        else:
            await receive()
            await send({"type": "websocket.accept"})
        try:
            await asyncio.Event().wait()  # the feed that never comes
        except BaseException as exc:
            self.outcomes[kind] = exc
            raise


async def test_one_deadline_for_requests_websockets_and_lifespan(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Stubborn()
    graceful = 0.5 * UNIT
    server, port = await start(app, graceful_timeout=graceful)
    loop = asyncio.get_running_loop()
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get())
        await asyncio.wait_for(app.request_started.wait(), 5 * UNIT)
        began = loop.time()
        server.stop()
        shutting_down = asyncio.ensure_future(server.shutdown())
        # The WebSocket's closing handshake starts at once, not after the requests drained.
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), graceful)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        await asyncio.wait_for(shutting_down, 5 * (graceful + FINAL_GRACE))
        elapsed = loop.time() - began
    # The request ran until the deadline, and no step took a deadline of its own.
    assert graceful <= elapsed < graceful + FINAL_GRACE + 0.5 * UNIT
    answer = await asyncio.wait_for(reader.read(), 5 * UNIT)
    assert answer.startswith(b"HTTP/1.1 500 ")
    writer.close()
    assert app.shutdown_asked.is_set()
    assert isinstance(app.outcomes["http"], asyncio.CancelledError)
    assert isinstance(app.outcomes["websocket"], asyncio.CancelledError)
    assert any("did not complete within --graceful-timeout" in r.getMessage()
               for r in caplog.records if r.levelno == logging.ERROR)  # fmt: skip


async def test_a_second_stop_ends_a_hanging_lifespan_shutdown_at_once() -> None:
    app = Stubborn()
    server, _ = await start(app, graceful_timeout=60)
    server.stop()
    shutting_down = asyncio.ensure_future(server.shutdown())
    await asyncio.wait_for(app.shutdown_asked.wait(), 5 * UNIT)
    assert not shutting_down.done()
    server.stop()  # the second Ctrl-C
    await asyncio.wait_for(shutting_down, 5 * UNIT)
    assert isinstance(app.outcomes["lifespan"], asyncio.CancelledError)


async def test_a_second_stop_ends_the_drain_at_once() -> None:
    app = Stubborn()
    server, port = await start(app, graceful_timeout=60)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(get())
    await asyncio.wait_for(app.request_started.wait(), 5 * UNIT)
    server.stop()
    shutting_down = asyncio.ensure_future(server.shutdown())
    await asyncio.sleep(0)
    assert not shutting_down.done()
    server.stop()
    await asyncio.wait_for(shutting_down, 5 * UNIT)
    assert isinstance(app.outcomes["http"], asyncio.CancelledError)
    assert (await asyncio.wait_for(reader.read(), 5 * UNIT)).startswith(b"HTTP/1.1 500 ")
    writer.close()


async def test_a_retiring_worker_says_it_stopped_accepting_before_it_drains() -> None:
    """The master's reload is complete once no retiring worker can take a new connection: the
    worker says so as soon as its listeners are closed, not after its requests drained."""
    app = Stubborn()
    server, port = await start(app, graceful_timeout=60)
    closed = asyncio.Event()
    serving_then: list[bool] = []

    def listeners_closed() -> None:
        serving_then.extend(listener.is_serving() for listener in server._listeners)
        closed.set()

    server.listeners_closed = listeners_closed
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(get())
    await asyncio.wait_for(app.request_started.wait(), 5 * UNIT)
    server.retire()
    shutting_down = asyncio.ensure_future(server.shutdown(restart=True))
    await asyncio.wait_for(closed.wait(), 5 * UNIT)
    assert serving_then == [False]  # (closed first)
    assert "http" not in app.outcomes and not shutting_down.done()  # still draining
    server.stop(force=True)
    await asyncio.wait_for(shutting_down, 5 * UNIT)
    writer.close()
