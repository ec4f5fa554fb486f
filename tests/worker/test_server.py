"""The worker's server: graceful shutdown, and the ASGI lifespan protocol."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.helpers import UNIT, get, listen, running_server
from uvicorn.config import Config
from uvicorn.exceptions import StartupError
from uvicorn.worker.server import Server


async def start(app: Any, **options: Any) -> tuple[Server, int]:
    options.setdefault("access_log", False)
    sock = listen()
    server = Server(Config(app=app, **options), [sock])
    await server.start()
    return server, sock.getsockname()[1]


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def test_graceful_shutdown() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["path"] == "/slow":
            started.set()
            await release.wait()
        await channels["reply"].send({"status": 200, "content": message["path"].encode()})

    server, port = await start(app)
    # An idle keep-alive connection, and a request in flight.
    idle_reader, idle_writer = await connect(port)
    idle_writer.write(get("/quick"))
    assert (await idle_reader.readuntil(b"/quick")).startswith(b"HTTP/1.1 200")
    busy_reader, busy_writer = await connect(port)
    busy_writer.write(get("/slow"))
    await asyncio.wait_for(started.wait(), 5 * UNIT)

    server.stop()
    shutting_down = asyncio.ensure_future(server.shutdown())
    # The idle connection is closed at once.
    assert await asyncio.wait_for(idle_reader.read(), 5 * UNIT) == b""
    # New connections are refused.
    with pytest.raises(OSError):
        await connect(port)
    assert not shutting_down.done()
    # The request in flight completes, then the connection closes.
    release.set()
    answer = await asyncio.wait_for(busy_reader.read(), 5 * UNIT)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"/slow")
    assert b"connection: close" in answer.lower()
    await asyncio.wait_for(shutting_down, 5 * UNIT)
    idle_writer.close()
    busy_writer.close()


async def test_graceful_shutdown_lets_a_stream_finish() -> None:
    step = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        await reply.send({"status": 200, "content": b"one,", "more_content": True})
        await step.wait()
        await reply.send({"content": b"two"})

    server, port = await start(app)
    reader, writer = await connect(port)
    writer.write(get())
    await reader.readuntil(b"one,")
    server.stop()
    shutting_down = asyncio.ensure_future(server.shutdown())
    await asyncio.sleep(0)
    step.set()
    rest = await asyncio.wait_for(reader.read(), 5 * UNIT)
    assert rest == b"\r\n3\r\ntwo\r\n0\r\n\r\n"
    await asyncio.wait_for(shutting_down, 5 * UNIT)
    writer.close()


async def test_graceful_timeout_cancels_the_app() -> None:
    outcome: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
    started = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # forever
        except BaseException as exc:
            outcome.set_result(exc)
            raise

    server, port = await start(app, graceful_timeout=0.1 * UNIT)
    reader, writer = await connect(port)
    writer.write(get())
    await asyncio.wait_for(started.wait(), 5 * UNIT)
    server.stop()
    await asyncio.wait_for(server.shutdown(), 5 * UNIT)
    assert isinstance(await asyncio.wait_for(outcome, 5 * UNIT), asyncio.CancelledError)
    # The response had not started: the client is told, and the connection closed.
    answer = await asyncio.wait_for(reader.read(), 5 * UNIT)
    assert answer.startswith(b"HTTP/1.1 500 ") and b"connection: close" in answer
    writer.close()


# Lifespan


def lifespan_app(events: list[str], startup: str = "complete", shutdown: str = "complete") -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            assert scope["asgi"]["version"] == "3.0"
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["ready"] = True
                    await send({"type": f"lifespan.startup.{startup}", "message": "db is down"})
                    if startup == "failed":
                        return
                else:
                    await send({"type": f"lifespan.shutdown.{shutdown}", "message": "oops"})
                    return
        events.append(f"http {scope['state'].get('ready')}")
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"up"})

    return app


async def test_lifespan_startup_and_shutdown() -> None:
    events: list[str] = []
    async with running_server(lifespan_app(events)) as server:
        assert events == ["lifespan.startup"]
        assert (await server.request(get())).body == b"up"
    assert events == ["lifespan.startup", "http True", "lifespan.shutdown"]


async def test_lifespan_startup_failed() -> None:
    events: list[str] = []
    with pytest.raises(StartupError, match="db is down"):
        async with running_server(lifespan_app(events, startup="failed")):
            raise AssertionError("the server must not start")
    assert events == ["lifespan.startup"]


async def test_lifespan_shutdown_failed_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []
    async with running_server(lifespan_app(events, shutdown="failed")):
        pass
    assert any("oops" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def raising_on_lifespan(calls: list[str]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append(scope["type"])
        if scope["type"] != "http":
            raise ValueError(f"unsupported scope {scope['type']}")
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"served"})

    return app


async def test_lifespan_auto_with_an_app_that_raises_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    calls: list[str] = []
    async with running_server(raising_on_lifespan(calls), lifespan="auto") as server:
        assert (await server.request(get())).body == b"served"
    assert calls == ["lifespan", "http"]  # no second lifespan call for shutdown
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_lifespan_on_with_an_app_that_raises_is_an_error() -> None:
    with pytest.raises(StartupError, match="unsupported scope lifespan"):
        async with running_server(raising_on_lifespan([]), lifespan="on"):
            raise AssertionError("the server must not start")


async def test_lifespan_off() -> None:
    calls: list[str] = []
    async with running_server(raising_on_lifespan(calls), lifespan="off") as server:
        assert (await server.request(get())).body == b"served"
    assert calls == ["http"]


async def test_lifespan_auto_with_an_app_that_returns() -> None:
    calls: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204})
            await send({"type": "http.response.body"})

    async with running_server(app) as server:
        assert (await server.request(get())).status == 204
    assert calls == ["lifespan", "http"]


async def test_no_lifespan_for_the_messaging_interface() -> None:
    calls: list[dict[str, Any]] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        calls.append(message)
        await channels["reply"].send({"status": 200})

    async with running_server(app, lifespan="on") as server:
        await server.request(get())
    assert [m["channel"] for m in calls] == ["http.request"]
