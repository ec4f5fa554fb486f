"""A client that goes away: ``send()`` raises ``ClientDisconnected`` (an ``OSError``), so that a
streaming app ends with its client, and the server logs nothing alarming."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
from typing import Any

import h2.config
import h2.connection
import h2.settings
import pytest

from tests.helpers import UNIT, get, running_server
from uvicorn import ClientDisconnected
from uvicorn.worker.http2 import H2Connection


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_client_disconnected_ends_a_streaming_loop(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    first_sent = asyncio.Event()
    ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        await reply.send({"status": 200, "more_content": True})
        try:
            # An endless stream that yields to the loop only through send().
            for _ in range(1_000_000):
                await reply.send({"content": b"tick " * 200, "more_content": True})
                first_sent.set()
        except BaseException as exc:
            ended.set_result(exc)
            raise
        ended.set_result(AssertionError("send() never noticed the client left"))

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get())
        await client.reader.readexactly(100)
        client.writer.transport.abort()  # gone, with unread data: the server's writes fail
        exc = await asyncio.wait_for(ended, 5 * UNIT)
    assert isinstance(exc, ClientDisconnected) and isinstance(exc, OSError), exc
    alarming = [r for r in errors(caplog) if r.name.startswith("uvicorn")]
    assert alarming == []


async def test_client_disconnected_on_a_slow_stream(caplog: pytest.LogCaptureFixture) -> None:
    # The README's tick pattern: a task that sends now and then until its client is gone.
    ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        await reply.send({"status": 200, "more_content": True})
        try:
            while True:
                await reply.send({"content": b"tick", "more_content": True})
                await asyncio.sleep(0.01 * UNIT)  # the app's pace, not synchronisation
        except BaseException as exc:
            ended.set_result(exc)
            raise

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get())
        assert (await client.reader.readuntil(b"tick")).startswith(b"HTTP/1.1 200")
        client.close()
        exc = await asyncio.wait_for(ended, 5 * UNIT)
    assert isinstance(exc, ClientDisconnected)
    assert errors(caplog) == []


def read_then_reset(port: int, nbytes: int) -> None:
    """A blocking client (in a thread): read ``nbytes`` of the response, then reset."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(get())
    received = 0
    while received < nbytes:
        received += len(sock.recv(65536))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST


async def test_tight_streaming_loop_ends_when_the_client_resets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The client reads fast, so send() never waits on back-pressure and the app never yields
    # to the loop: the reset is only visible as a failed write (transport closing).
    ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        await reply.send({"status": 200, "more_content": True})
        try:
            for _ in range(300_000):  # 30 MB: far more than the client reads
                await reply.send({"content": b"x" * 100, "more_content": True})
        except BaseException as exc:
            ended.set_result(exc)
            raise
        ended.set_result(AssertionError("send() never noticed the client left"))

    async with running_server(app) as server:
        thread = threading.Thread(target=read_then_reset, args=(server.port, 1_000_000))
        thread.start()
        try:
            exc = await asyncio.wait_for(ended, 10 * UNIT)
        finally:
            thread.join()
    assert isinstance(exc, ClientDisconnected), exc
    assert [r for r in errors(caplog) if r.name.startswith("uvicorn")] == []


async def test_send_after_disconnect_asgi() -> None:
    ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        assert await receive() == {"type": "http.request", "body": b"", "more_body": False}
        assert await receive() == {"type": "http.disconnect"}
        try:
            while True:
                await send({"type": "http.response.body", "body": b"more", "more_body": True})
                await asyncio.sleep(0.01 * UNIT)  # the app's pace
        except BaseException as exc:
            ended.set_result(exc)
            raise

    async with running_server(app, lifespan="off") as server:
        client = await server.connect()
        await client.send(get())
        await client.reader.readuntil(b"first")
        client.close()
        assert isinstance(await asyncio.wait_for(ended, 5 * UNIT), ClientDisconnected)


@pytest.mark.parametrize("interface", ["messaging", "asgi3"])
async def test_an_http2_write_that_fails_tells_every_stream_first(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Two streams: /wait's app waits for the connection's write room (its client reads
    # nothing); then a write on the connection fails: the transport closes, and
    # connection_lost() is only scheduled. Whatever runs before it must already see every
    # stream's client gone: /write's app, which returns at once without an answer, and any
    # app whose send() raises ClientDisconnected on the closed connection, must count as
    # left by their clients, not as failing (h2load ending its timed runs produced such
    # tracebacks). The failed write is made as uvloop makes one: the transport aborted, then
    # a write to it.
    waiting, ended = asyncio.Event(), asyncio.get_running_loop().create_future()
    big = b"x" * (8 * 1024 * 1024)  # far beyond the socket's and the transport's buffers

    async def write_fails() -> None:  # /write: nothing sent before, so nothing waits
        await waiting.wait()
        (conn,) = server.server.state.connections
        assert isinstance(conn, H2Connection) and conn.write_paused
        conn.transport.abort()
        conn.write(b"", True)  # what the next frame's write would meet

    async def wait_for_room(send: Any) -> None:
        waiting.set()
        try:
            await send(big)
        except BaseException as exc:
            ended.set_result(exc)
            raise

    async def messaging(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["path"] == "/write":
            return await write_fails()
        reply = channels["reply"]
        await reply.send({"status": 200, "more_content": True})
        await wait_for_room(lambda data: reply.send({"content": data, "more_content": True}))

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/write":
            return await write_fails()
        await send({"type": "http.response.start", "status": 200})
        body = {"type": "http.response.body", "more_body": True}
        await wait_for_room(lambda data: send({**body, "body": data}))

    app = messaging if interface == "messaging" else asgi
    client = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    client.initiate_connection()
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
    client.increment_flow_control_window(2**31 - 1 - 65535)
    for stream_id, path in ((1, "/wait"), (3, "/write")):
        fields = [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "t")]
        client.send_headers(stream_id, fields, end_stream=True)
    async with running_server(app, interface=interface, lifespan="off") as server:
        raw = await server.connect()  # which then reads nothing
        await raw.send(client.data_to_send())
        exc = await asyncio.wait_for(ended, 5 * UNIT)
        assert isinstance(exc, ClientDisconnected), exc
        raw.close()
    assert [r for r in errors(caplog) if r.name.startswith("uvicorn")] == []
