"""The README's WebSocket examples, unchanged, on a real loop with the ``websockets`` client;
and graceful shutdown with WebSockets open."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus

from examples.echo import echo
from examples.tick import tick
from tests.helpers import UNIT, listen, running_server
from tests.worker.wshelpers import RawWebSocket, Recorder, url
from uvicorn.config import Config
from uvicorn.worker.server import Server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
Message = dict[str, Any]
Channels = dict[str, Any]


def alarming(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_echo_example(caplog: pytest.LogCaptureFixture) -> None:
    async with running_server(echo) as server, connect(url(server)) as ws:
        for text in ("hello", "", "ünïcode ✓", "x" * 100_000):
            await ws.send(text)
            assert await ws.recv() == text
    assert alarming(caplog) == []


async def test_tick_example_ends_quietly_with_its_client(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_server(tick) as server:
        async with connect(url(server)) as ws:
            first = await ws.recv()
            assert isinstance(first, str)
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", first)
            (task,) = [t for t in asyncio.all_tasks() if "send_times" in repr(t.get_coro())]
        # The client left: the task's next send() raises ClientDisconnected, within a second.
        await asyncio.wait({task}, timeout=5 * UNIT)
        assert task.done()
        del task
        gc.collect()  # the never-retrieved exception is reported when the task is collected
        await asyncio.sleep(0)
        assert any("ended with its client" in r.getMessage() for r in caplog.records)
    assert alarming(caplog) == []  # no "Task exception was never retrieved" error


def load_chat(monkeypatch: pytest.MonkeyPatch) -> Any:
    """examples/chat/app.py, imported as ``uvicorn app:chat_server`` would from its folder."""
    monkeypatch.chdir(EXAMPLES / "chat")
    spec = importlib.util.spec_from_file_location("chat_example", EXAMPLES / "chat" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_chat_example(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    chat = load_chat(monkeypatch)
    async with running_server(chat.chat_server) as server:
        page = await server.request(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert page.status == 200 and b"new WebSocket(" in page.body
        assert page.header(b"content-type") == b"text/html"
        async with connect(url(server)) as alice, connect(url(server)) as bob:
            await alice.send("hi from alice")
            assert await alice.recv() == "hi from alice"
            assert await bob.recv() == "hi from alice"
            await bob.send("hi from bob")
            assert await alice.recv() == "hi from bob"
            assert await bob.recv() == "hi from bob"
            assert len(chat.clients) == 2
        # Each disconnect removed its client.
        async with connect(url(server)) as carol:
            await carol.send("alone")
            assert await carol.recv() == "alone"
    assert chat.clients == set()
    assert alarming(caplog) == []


async def test_sending_to_a_client_that_left_does_not_close_the_sender(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The chat example's race: a message is broadcast to a client whose connection is gone but
    # whose disconnect handler has not run yet. ClientDisconnected from *that* client's channel
    # ends the sender's handler; the sender's own connection must not be closed for it (1011).
    gone: list[Any] = []
    left = asyncio.Event()

    async def app(message: Message, channels: Channels) -> None:
        if message["channel"] == "websocket.connect" and message["path"] == "/gone":
            gone.append(channels["reply"])
        elif message["channel"] == "websocket.disconnect" and message["path"] == "/gone":
            left.set()  # ... and forgets to remove it
        elif message["channel"] == "websocket.receive":
            await channels["reply"].send({"text": "sending"})
            await gone[0].send({"text": message["text"]})  # raises ClientDisconnected

    async with running_server(app) as server:
        async with connect(url(server, "/gone")):
            pass
        await asyncio.wait_for(left.wait(), 5 * UNIT)
        async with connect(url(server, "/sender")) as sender:
            await sender.send("one")
            assert await sender.recv() == "sending"
            await sender.send("two")
            assert await sender.recv() == "sending"  # still open
    assert alarming(caplog) == []


# Graceful shutdown.


async def start(app: Any, **options: Any) -> tuple[Server, int]:
    options.setdefault("access_log", False)
    sock = listen()
    server = Server(Config(app=app, **options), [sock])
    await server.start()
    return server, sock.getsockname()[1]


@pytest.mark.parametrize(("restart", "code"), [(False, 1001), (True, 1012)])
async def test_shutdown_closes_websockets(restart: bool, code: int) -> None:
    recorder = Recorder()

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)

    server, port = await start(app)
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send("hello")
        await recorder.wait_for("websocket.receive")
        server.stop()
        shutting_down = asyncio.ensure_future(server.shutdown(restart=restart))
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        # RFC 6455 section 7.4.1: 1001 "going away", such as a server going down; 1012 (IANA
        # registry) service restart.
        assert info.value.rcvd is not None and info.value.rcvd.code == code
    await asyncio.wait_for(shutting_down, 5 * UNIT)
    disconnect = await recorder.wait_for("websocket.disconnect")
    assert disconnect["code"] == code


async def test_shutdown_closes_websockets_at_once_while_requests_finish() -> None:
    release = asyncio.Event()
    started = asyncio.Event()
    recorder = Recorder()

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)
        if message["channel"] == "http.request":
            started.set()
            await release.wait()
            await channels["reply"].send({"status": 200, "content": b"done"})

    server, port = await start(app)
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.wait_for(started.wait(), 5 * UNIT)
        server.stop()
        shutting_down = asyncio.ensure_future(server.shutdown())
        # A WebSocket has no request to finish: its closing handshake starts at once, within
        # the deadline the requests in flight share.
        with pytest.raises(ConnectionClosedOK) as info:
            await asyncio.wait_for(ws.recv(), 5 * UNIT)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert (await recorder.wait_for("websocket.disconnect"))["code"] == 1001
        assert not shutting_down.done()
        release.set()
        assert (await asyncio.wait_for(reader.read(), 5 * UNIT)).endswith(b"done")
        writer.close()
    await asyncio.wait_for(shutting_down, 5 * UNIT)


async def test_shutdown_cuts_off_a_peer_that_does_not_close() -> None:
    recorder = Recorder()

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)

    server, port = await start(app, graceful_timeout=0.1 * UNIT)
    raw = await RawWebSocket.connect(port)
    await raw.handshake()
    server.stop()
    shutting_down = asyncio.ensure_future(server.shutdown())
    frames = await raw.until_closed()  # never answering the close frame
    assert raw.protocol.close_rcvd is not None and raw.protocol.close_rcvd.code == 1001
    assert len(frames) == 1
    await asyncio.wait_for(shutting_down, 5 * UNIT)
    assert (await recorder.wait_for("websocket.disconnect"))["code"] == 1006


async def test_shutdown_refuses_a_handshake_still_pending() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def app(message: Message, channels: Channels) -> None:
        if message["channel"] == "websocket.connect":
            started.set()
            await release.wait()  # undecided when the shutdown comes

    server, port = await start(app)
    opening = asyncio.ensure_future(connect(f"ws://127.0.0.1:{port}/"))
    await asyncio.wait_for(started.wait(), 5 * UNIT)
    server.stop()
    shutting_down = asyncio.ensure_future(server.shutdown())
    with pytest.raises(InvalidStatus) as info:
        await asyncio.wait_for(opening, 5 * UNIT)
    assert info.value.response.status_code == 503
    release.set()
    await asyncio.wait_for(shutting_down, 5 * UNIT)
