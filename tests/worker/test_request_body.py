"""Request bodies: ``message['body']``, the body channel, back-pressure, disconnects,
``Expect: 100-continue``, and ASGI's ``receive()``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from examples.echo_body import read_body  # the README's pattern (tests/test_readme.py)
from tests.helpers import UNIT, Watch, get, only_connection, running_server, skip_if_compiled
from uvicorn.worker.connection import HTTPConnection
from uvicorn.worker.cycle import BODY_HIGH_WATER, DISCARD_LIMIT


async def echo_body(message, channels):  # type: ignore[no-untyped-def]
    body = await read_body(message, channels)
    response = {
        "status": 200,
        "headers": [
            [b"content-type", b"text/plain"],
        ],
        "content": body,
    }
    await channels["reply"].send(response)


def post(body: bytes, *headers: str) -> bytes:
    return get("/", f"content-length: {len(body)}", *headers, method="POST") + body


async def test_read_body_small_and_empty() -> None:
    async with running_server(echo_body) as server:
        assert (await server.request(post(b"small"))).body == b"small"
        assert (await server.request(post(b""))).body == b""
        assert (await server.request(get())).body == b""


async def test_read_body_large() -> None:
    body = bytes(range(256)) * 4096  # 1 MiB
    async with running_server(echo_body) as server:
        response = await server.request(post(body))
    assert response.status == 200
    assert response.body == body


async def test_chunked_upload_arrives_dechunked() -> None:
    called = asyncio.get_running_loop().create_future()
    chunks: list[dict[str, Any]] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        called.set_result(message["body"])
        body = message["body"]
        while "body" in channels:
            chunk = await channels["body"].receive()
            assert set(chunk) == {"content", "more_content"}
            chunks.append(chunk)
            body += chunk["content"]
            if not chunk["more_content"]:
                break
        await channels["reply"].send({"status": 200, "content": body})

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get("/", "transfer-encoding: chunked", method="POST") + b"5\r\nHello\r\n")
        first = await asyncio.wait_for(called, 5 * UNIT)
        await client.send(b"2\r\n, \r\n")
        await client.send(b"6\r\nworld!\r\n0\r\n\r\n")
        response = await client.read_response()
        client.close()
    assert response.body == b"Hello, world!"
    assert first in (b"", b"Hello")
    assert chunks[-1]["more_content"] is False
    assert all(chunk["more_content"] for chunk in chunks[:-1])
    assert all(type(chunk["content"]) is bytes for chunk in chunks)


async def test_body_channel_present_only_while_more_is_to_come() -> None:
    seen: list[tuple[bytes, bool]] = []
    called = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        seen.append((message["body"], "body" in channels))
        called.set()
        await channels["reply"].send({"status": 200, "content": await read_body(message, channels)})

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(post(b"0123456789")[:-4])  # head and 6 of 10 bytes
        await asyncio.wait_for(called.wait(), 5 * UNIT)
        await client.send(b"6789")
        assert (await client.read_response()).body == b"0123456789"
        client.close()
    assert seen[0][1] is True
    assert b"0123456789".startswith(seen[0][0])


async def test_reading_pauses_past_64k_unread_and_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    watch = Watch(monkeypatch, (HTTPConnection, "update_reading"))
    body = b"x" * (1024 * 1024)
    go = asyncio.Event()
    called = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        called.set()
        await go.wait()
        await channels["reply"].send({"status": 200, "content": await read_body(message, channels)})

    async with running_server(app) as server:
        client = await server.connect()
        sending = asyncio.ensure_future(client.send(post(body)))
        await asyncio.wait_for(called.wait(), 5 * UNIT)
        conn = only_connection(server)
        await watch.until(lambda: conn.read_paused)
        assert not conn.transport.is_reading()
        cycle = conn.h1.current
        # Paused soon after the high-water mark: at most one socket read past it.
        assert BODY_HIGH_WATER < cycle.unread <= BODY_HIGH_WATER + 512 * 1024
        before = cycle.unread
        for _ in range(10):
            await asyncio.sleep(0)  # let the loop poll the socket: nothing more is read
        assert cycle.unread == before and conn.read_paused
        go.set()
        response = await client.read_response()
        await sending
        assert response.body == body
        assert not conn.read_paused and conn.transport.is_reading()
        client.close()


async def test_client_gone_while_reading() -> None:
    received: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
    called = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        called.set()
        chunks = []
        while True:
            chunk = await channels["body"].receive()
            chunks.append(chunk)
            if not chunk["more_content"]:
                break
        received.set_result(chunks)

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get("/", "content-length: 100", method="POST"))
        await asyncio.wait_for(called.wait(), 5 * UNIT)
        client.close()
        chunks = await asyncio.wait_for(received, 5 * UNIT)
    assert chunks[-1] == {"content": b"", "closed": True, "more_content": False}


async def test_unread_body_is_discarded_and_the_connection_reused() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200, "content": b"ignored the body"})

    async with running_server(app) as server:
        client = await server.connect()
        body = b"y" * 200_000
        await client.send(post(body)[:-150_000])
        assert (await client.read_response()).body == b"ignored the body"
        await client.send(body[-150_000:] + get())
        assert (await client.read_response()).body == b"ignored the body"
        client.close()


async def test_unread_body_past_the_discard_limit_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    watch = Watch(monkeypatch, (HTTPConnection, "close"), (HTTPConnection, "connection_lost"))

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200, "content": b"no"})

    size = DISCARD_LIMIT * 3
    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get("/", f"content-length: {size}", method="POST"))
        assert (await client.read_response()).status == 200
        conn = only_connection(server)
        assert not conn.closed
        client.writer.write(b"z" * size)  # more than the server discards
        await watch.until(lambda: conn.closed)
        client.close()


# Expect: 100-continue


async def test_100_continue_only_when_the_app_first_receives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    skip_if_compiled(HTTPConnection)
    writes: list[bytes] = []
    original = HTTPConnection.write

    def recording(self: HTTPConnection, data: bytes, flush: bool) -> None:
        writes.append(data)
        original(self, data, flush)

    monkeypatch.setattr(HTTPConnection, "write", recording)
    called = asyncio.Event()
    go = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        assert message["body"] == b"" and "body" in channels
        called.set()
        await go.wait()
        await echo_body(message, channels)

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get("/", "content-length: 4", "expect: 100-continue", method="POST"))
        await asyncio.wait_for(called.wait(), 5 * UNIT)
        assert writes == []  # not before the app asks for the body
        go.set()
        interim = await client.read_response()
        assert interim.status == 100
        assert client.raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        await client.send(b"data")
        response = await client.read_response()
        assert response.status == 200 and response.body == b"data"
        client.close()


async def test_413_without_reading_sends_no_100_and_closes() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 413, "content": b"too big"})

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(
            get("/", "content-length: 99999999", "expect: 100-continue", method="POST")
        )
        response = await client.read_response()
        raw = await client.read_until_closed()
        client.close()
    assert response.status == 413
    assert b"100 Continue" not in raw
    # RFC 9110 section 10.1.1: a final answer before the body says whether it closes.
    assert response.header(b"connection") == b"close"


# ASGI receive()


async def test_asgi_receive_chunks_then_disconnect() -> None:
    events: list[dict[str, Any]] = []
    called = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        called.set()
        body = b""
        while True:
            event = await receive()
            events.append(event)
            body += event["body"]
            if not event["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        # After the response, receive() says the request is over.
        events.append(await asyncio.wait_for(receive(), 5 * UNIT))

    async with running_server(app, lifespan="off") as server:
        client = await server.connect()
        await client.send(get("/", "transfer-encoding: chunked", method="POST") + b"3\r\nabc\r\n")
        await asyncio.wait_for(called.wait(), 5 * UNIT)
        await client.send(b"3\r\ndef\r\n0\r\n\r\n")
        assert (await client.read_response()).body == b"abcdef"
        client.close()
    assert all(e["type"] == "http.request" for e in events[:-1])
    assert events[-2]["more_body"] is False
    assert events[-1] == {"type": "http.disconnect"}


async def test_asgi_receive_disconnect_when_client_leaves() -> None:
    result: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        first = await receive()
        assert first == {"type": "http.request", "body": b"", "more_body": False}
        result.set_result(await receive())  # waits until the client goes away

    async with running_server(app, lifespan="off") as server:
        client = await server.connect()
        await client.send(get())
        await asyncio.sleep(0)
        assert not result.done()
        client.close()
        assert await asyncio.wait_for(result, 5 * UNIT) == {"type": "http.disconnect"}
