"""The connection around the request cycles: half-closed clients, bad requests after good
ones, several senders on one reply channel."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import UNIT, Watch, get, only_connection, running_server
from uvicorn.worker.connection import HTTPConnection


async def path_app(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await channels["reply"].send({"status": 200, "content": message["path"].encode()})


async def test_half_closed_client_gets_its_answers() -> None:
    async with running_server(path_app) as server:
        client = await server.connect()
        client.writer.write(get("/a") + get("/b") + get("/c"))
        client.writer.write_eof()
        raw = await client.read_until_closed()
        client.close()
    assert raw.count(b"HTTP/1.1 200 OK") == 3
    assert raw.endswith(b"/c")


async def test_half_closed_client_of_a_slow_app() -> None:
    release = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await release.wait()
        await channels["reply"].send({"status": 200, "content": b"worth the wait"})

    async with running_server(app) as server:
        client = await server.connect()
        client.writer.write(get())
        client.writer.write_eof()
        await asyncio.sleep(0)
        release.set()
        raw = await client.read_until_closed()
        client.close()
    assert raw.endswith(b"worth the wait")


async def test_a_bad_request_after_good_ones_is_answered_in_turn() -> None:
    async with running_server(path_app) as server:
        client = await server.connect()
        await client.send(get("/one") + get("/two") + b"NOT HTTP AT ALL\r\n\r\n")
        first = await client.read_response()
        second = await client.read_response()
        rest = await client.read_until_closed()
        client.close()
    assert (first.body, second.body) == (b"/one", b"/two")
    assert rest.split(b"/two", 1)[1].startswith(b"HTTP/1.1 4") or b"HTTP/1.1 5" in rest


async def test_a_broken_chunked_body_while_the_app_reads() -> None:
    outcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    called = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        called.set()
        while True:
            chunk = await channels["body"].receive()
            if not chunk["more_content"]:
                outcome.set_result(chunk)
                return

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get("/", "transfer-encoding: chunked", method="POST") + b"3\r\nabc\r\n")
        await asyncio.wait_for(called.wait(), 5 * UNIT)
        await client.send(b"zz-not-hex\r\n")
        raw = await client.read_until_closed()
        client.close()
    assert (await asyncio.wait_for(outcome, 5 * UNIT)).get("closed") is True
    assert raw.startswith(b"HTTP/1.1 400 ")


async def test_unread_chunked_body_is_discarded() -> None:
    async with running_server(path_app) as server:
        client = await server.connect()
        await client.send(
            get("/x", "transfer-encoding: chunked", method="POST") + b"5\r\nhello\r\n"
        )
        assert (await client.read_response()).body == b"/x"
        await client.send(b"0\r\n\r\n" + get("/y"))
        assert (await client.read_response()).body == b"/y"
        client.close()


async def test_asgi_100_continue() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        event = await receive()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": event["body"].upper()})

    async with running_server(app, lifespan="off") as server:
        client = await server.connect()
        await client.send(get("/", "content-length: 3", "expect: 100-continue", method="PUT"))
        assert (await client.read_response()).status == 100
        await client.send(b"abc")
        response = await client.read_response()
        client.close()
    assert response.body == b"ABC"


async def test_two_senders_one_cancelled_while_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both senders wait in send() while the client does not read; cancelling one of them
    # must leave the other waiting, not cancel it too.
    watch = Watch(monkeypatch, (HTTPConnection, "pause_writing"))
    chunk = b"w" * 65536
    waiting: list[asyncio.Task[None]] = []
    finished = asyncio.get_running_loop().create_future()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        await reply.send({"status": 200, "more_content": True})

        async def sender() -> None:
            while True:
                await reply.send({"content": chunk, "more_content": True})

        waiting.extend([asyncio.ensure_future(sender()), asyncio.ensure_future(sender())])
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            finished.set_result([t.cancelled() for t in waiting])
            for task in waiting:
                task.cancel()
            await reply.send({"content": b""})

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get())
        await watch.until(lambda: len(waiting) == 2 and only_connection(server).write_paused)
        for _ in range(5):
            await asyncio.sleep(0)
        waiting[0].cancel()
        assert await asyncio.wait_for(finished, 5 * UNIT) == [True, False]
        client.close()
