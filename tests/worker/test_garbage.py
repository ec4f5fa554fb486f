"""Connections leave no reference cycles behind: under load, every cycle left to the garbage
collector makes its full collections more frequent, and each one pauses every request (the
p99 latency of short connections doubled before the parser's cycle was broken). And what a
cycle holds stays in memory until a collection finds it: an HTTP/2 stream's cycle held its
connection, and over TLS that is the TLS layer's buffers, a quarter of a MiB each (a worker
went from 29 to 90 MiB under h2load, where HTTP/1.1 over TLS stays at 37); a WebSocket's
protocol and its parser (a generator) held each other, with their zlib streams.

Each test runs its traffic with the collector off and counts the live objects of ours and of
websockets before and after: what a cycle keeps is still alive then, including cycles through
generators, which a collection breaks by closing them and so never reports as garbage."""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.helpers import each_turn_until, get, running_server
from tests.protocols.wsclient import close_payload, frame, handshake
from tests.worker.h2client import H2Client


async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
    if message["channel"] == "http.request":
        if message["path"] == "/boom":
            raise RuntimeError("the app fails")
        if "body" in channels:  # (README, "Reading the request body")
            while (await channels["body"].receive()).get("more_content"):
                pass
        await channels["reply"].send({"status": 200, "content": b"ok"})
    elif message["channel"] == "websocket.receive":
        await channels["reply"].send({"text": message["text"]})


def _alive() -> collections.Counter[str]:
    """The live objects of uvicorn and websockets (websockets' parser generators included)."""
    counts: collections.Counter[str] = collections.Counter()
    for o in gc.get_objects():
        kind = type(o)
        if str(getattr(kind, "__module__", "")).startswith(("uvicorn", "websockets")):
            counts[kind.__qualname__] += 1
        elif kind.__name__ == "generator" and "websockets" in o.gi_code.co_filename:
            counts[f"generator {o.gi_code.co_name}"] += 1
    return counts


@contextmanager
def _collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, traffic: Callable[[int], Awaitable[None]]
) -> None:
    """The server is done with ``traffic(port)`` when it has no connection, no WebSocket and
    no app call left, and every task the traffic started has ended (a WebSocket's app may end
    after its connection, an HTTP app's after its response). Asked at every turn of the loop:
    the compiled build's methods cannot be patched to say when (``tests.helpers.Watch``)."""
    # pytest keeps every log record, and the record of an app's failure its frames: not to
    # pytest (the server's own handlers still write them).
    monkeypatch.setattr(logging.getLogger("uvicorn.error"), "propagate", False)
    async with running_server(app) as server:
        state = server.server.state
        assert state is not None
        tasks = asyncio.all_tasks()  # (this test's and the server's own)

        def over() -> bool:
            return (
                not state.connections
                and not state.websockets
                and not state.active
                and asyncio.all_tasks() - {asyncio.current_task()} <= tasks  # (the wait's own)
            )

        await traffic(server.port)  # warm up: what the first ones create for good
        await each_turn_until(over)
        with _collector_off():
            before = _alive()
            await traffic(server.port)
            await traffic(server.port)
            await each_turn_until(over)
            grown = dict(_alive() - before)
    assert grown == {}


async def _http1(port: int) -> None:
    """Keep-alive requests, ``Connection: close`` ones (one with a chunked body), a bad request,
    an app that fails, a client gone halfway through its body, and WebSockets over HTTP/1.1: one
    ended with the closing handshake, one whose client vanishes."""
    client = await _connect(port)
    for _ in range(3):
        writer, reader = client
        writer.write(get())
        await reader.readuntil(b"ok")
    client[0].close()
    for request, answer in [
        (get("/", "connection: close"), b"ok"),
        (b"POST / HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\nconnection: close\r\n"
         b"\r\n3\r\nabc\r\n0\r\n\r\n", b"ok"),
        (b"GET / HTTP/1.1\r\nhost: test\r\nno colon\r\n\r\n", b"HTTP/1.1 400 "),
        (get("/boom", "connection: close"), b"HTTP/1.1 500 "),
    ]:  # fmt: skip
        writer, reader = await _connect(port)
        writer.write(request)
        assert answer in await reader.read()
        writer.close()
    writer, reader = await _connect(port)
    writer.write(b"POST / HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\nabc")
    await writer.drain()
    writer.close()
    await _websocket_session(port, closing=True)
    await _websocket_session(port, closing=False)


async def _connect(port: int) -> tuple[asyncio.StreamWriter, asyncio.StreamReader]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return writer, reader


async def test_http1_connections_and_websockets_leave_no_reference_cycles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _leaves_nothing(monkeypatch, _http1)


async def test_http2_connections_leave_no_reference_cycles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _leaves_nothing(monkeypatch, _h2_connection)


async def _websocket_session(port: int, closing: bool) -> None:
    """A WebSocket over HTTP/1.1 that echoes once, then ends with the closing handshake, or
    with the client gone without one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(handshake())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    writer.write(frame(0x1, b"hi"))
    assert await reader.readexactly(4) == b"\x81\x02hi"
    if not closing:
        writer.close()
        return
    writer.write(frame(0x8, close_payload(1000)))
    assert await reader.readexactly(4) == b"\x88\x02\x03\xe8"
    assert await reader.read() == b""  # the server closes the TCP connection first
    writer.close()


async def _h2_connection(port: int) -> None:
    """Streams answered (one with a body, one whose app fails), one reset by the client before
    its answer, a WebSocket over HTTP/2 (RFC 8441) that echoes once and is closed by the client,
    and a body the connection's end cuts short."""
    client = await H2Client.open(port)
    await client.until(lambda: client.conn.remote_settings.enable_connect_protocol)
    for stream_id in [client.request() for _ in range(3)]:
        assert (await client.response(stream_id)).status == 200
    posted = client.request(method="POST", body=b"abc")
    assert (await client.response(posted)).status == 200
    assert (await client.response(client.request("/boom"))).status == 500
    reset = client.request(end_stream=False)
    client.reset(reset, 8)  # CANCEL
    tunnel = client.request(
        method="CONNECT",
        end_stream=False,
        headers=[(":protocol", "websocket"), ("sec-websocket-version", "13")],
    )
    await client.until(lambda: client.streams[tunnel].status == 200)
    client.send_body(tunnel, frame(0x1, b"hi"))
    client.flush()
    await client.until(lambda: bytes(client.streams[tunnel].data) == b"\x81\x02hi")
    client.send_body(tunnel, frame(0x8, close_payload(1000)))
    client.flush()
    await client.until(lambda: client.streams[tunnel].done)
    client.request(method="POST", body=b"abc", end_stream=False)  # its app waits for the rest
    await client.round_trip()  # (the server has seen it)
    client.close()
