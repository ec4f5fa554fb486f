"""Flow control and timers: back-pressure on send(), keep-alive and request-head timeouts,
slow clients, and --limit-concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import UNIT, Watch, get, only_connection, running_server
from uvicorn.worker.connection import HTTPConnection

CHUNK = b"z" * 65536
CHUNKS = 256  # 16 MiB: more than the socket buffers hold


def streaming_app(progress: list[int]) -> Any:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        await reply.send({"status": 200, "more_content": True})
        for _ in range(CHUNKS):
            await reply.send({"content": CHUNK, "more_content": True})
            progress.append(1)
        await reply.send({"content": b""})

    return app


async def test_send_waits_while_the_client_does_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    watch = Watch(
        monkeypatch, (HTTPConnection, "pause_writing"), (HTTPConnection, "resume_writing")
    )
    progress: list[int] = []
    async with running_server(streaming_app(progress)) as server:
        client = await server.connect()
        await client.send(get())
        await watch.until(lambda: bool(server.server.state and server.server.state.connections))
        conn = only_connection(server)
        await watch.until(lambda: conn.write_paused)
        sent = len(progress)
        assert 0 < sent < CHUNKS
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(progress) == sent  # the app is held in send()
        # The transport holds about its high-water mark, not everything the app produced.
        assert conn.transport.get_write_buffer_size() < 4 * len(CHUNK)
        response = await client.read_response()  # reading lets the app go on
        client.close()
    assert len(response.body) == len(CHUNK) * CHUNKS
    assert len(progress) == CHUNKS


async def test_asgi_send_waits_too(monkeypatch: pytest.MonkeyPatch) -> None:
    watch = Watch(monkeypatch, (HTTPConnection, "pause_writing"))
    progress: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        for _ in range(CHUNKS):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            progress.append(1)
        await send({"type": "http.response.body"})

    async with running_server(app, lifespan="off") as server:
        client = await server.connect()
        await client.send(get())
        await watch.until(lambda: len(progress) > 0 and only_connection(server).write_paused)
        sent = len(progress)
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(progress) == sent < CHUNKS
        response = await client.read_response()
        client.close()
    assert len(response.body) == len(CHUNK) * CHUNKS


async def test_keep_alive_timeout_closes_idle_connections() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200, "content": b"ok"})

    timeout = 0.2 * UNIT
    async with running_server(app, timeout_keep_alive=timeout) as server:
        loop = asyncio.get_running_loop()
        client = await server.connect()
        await client.send(get())
        assert (await client.read_response()).body == b"ok"
        answered = loop.time()
        assert await client.read_until_closed() == client.raw  # nothing more, then closed
        waited = loop.time() - answered
        client.close()
        # A connection that never sends a request is closed as well.
        idle = await server.connect()
        assert await idle.read_until_closed() == b""
        idle.close()
    assert waited >= timeout * 0.8


async def test_keep_alive_timeout_spares_a_request_in_progress() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await asyncio.sleep(0.4 * UNIT)  # the app's own work, longer than the keep-alive timeout
        await channels["reply"].send({"status": 200, "content": b"late but fine"})

    async with running_server(app, timeout_keep_alive=0.1 * UNIT) as server:
        client = await server.connect()
        await client.send(get())
        assert (await client.read_response()).body == b"late but fine"
        client.close()


async def test_request_head_timeout_answers_408() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        raise AssertionError("never called")

    async with running_server(app, timeout_request_head=0.2 * UNIT) as server:
        client = await server.connect()
        await client.send(b"GET / HTTP/1.1\r\nHost: ")  # and nothing more
        response = await asyncio.wait_for(client.read_response(), 2 * UNIT)
        await client.read_until_closed()
        client.close()
    assert response.status == 408
    assert response.header(b"connection") == b"close"


async def test_request_head_timeout_after_a_keep_alive_request() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200})

    async with running_server(app, timeout_request_head=0.2 * UNIT) as server:
        client = await server.connect()
        await client.send(get())
        assert (await client.read_response()).status == 200
        await client.send(b"GET /second HT")
        response = await asyncio.wait_for(client.read_response(), 2 * UNIT)
        client.close()
    assert response.status == 408


async def test_a_trickled_head_gets_408_and_holds_up_no_one() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200, "content": message["path"].encode()})

    head = get("/slow", "x-padding: " + "p" * 100)
    async with running_server(app, timeout_request_head=0.3 * UNIT) as server:
        slow = await server.connect()

        async def trickle() -> None:
            for byte in head:
                await slow.send(bytes([byte]))
                await asyncio.sleep(0.01 * UNIT)  # the client's pace: 150 bytes in 1.5 s

        trickling = asyncio.ensure_future(trickle())
        for i in range(5):
            response = await server.request(get(f"/fast{i}"))
            assert response.body == f"/fast{i}".encode()
        assert not trickling.done()  # the others were served while the slow head trickled
        response = await asyncio.wait_for(slow.read_response(), 3 * UNIT)
        trickling.cancel()
        slow.close()
    assert response.status == 408


async def test_limit_concurrency_answers_503() -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["path"] == "/hold":
            started.set()
            await release.wait()
        await channels["reply"].send({"status": 200, "content": b"done"})

    async with running_server(app, limit_concurrency=1) as server:
        held = await server.connect()
        await held.send(get("/hold"))
        await asyncio.wait_for(started.wait(), 5 * UNIT)
        busy = await server.connect()
        await busy.send(get("/other"))
        rejected = await busy.read_response()
        await busy.read_until_closed()
        busy.close()
        head = await server.connect()
        await head.send(get("/other", method="HEAD"))
        head_raw = await head.read_until_closed()
        head.close()
        release.set()
        assert (await held.read_response()).body == b"done"
        held.close()
        assert (await server.request(get("/after"))).status == 200
    assert rejected.status == 503
    assert rejected.header(b"connection") == b"close"
    assert head_raw.startswith(b"HTTP/1.1 503 ") and head_raw.endswith(b"\r\n\r\n")
