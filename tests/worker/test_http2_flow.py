"""HTTP/2 flow control and multiplexing in a worker, with the h2 library as the client: a request
body's window follows the app, a response waits for the client's windows (the app's ``send``
with it, memory bounded), streams run at once, and one stream's trouble (a reset, a refusal
beyond --h2-max-concurrent-streams) is its own."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import pytest

from tests.helpers import UNIT, running_server
from tests.worker.h2client import H2Client
from uvicorn import ClientDisconnected
from uvicorn.worker.cycle import BODY_HIGH_WATER
from uvicorn.worker.http2 import H2Connection

REFUSED_STREAM, CANCEL = 0x7, 0x8
DEFAULT_WINDOW = 65535


def h2_connection(server: Any) -> H2Connection:
    (conn,) = [c for c in server.server.state.connections if isinstance(c, H2Connection)]
    return conn


async def test_a_request_body_window_follows_the_app() -> None:
    window = 128 * 1024  # --h2-initial-window-size
    size = 1024 * 1024
    release = asyncio.Event()
    started = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["path"] == "/other":
            await channels["reply"].send({"status": 200, "content": b"other"})
            return
        started.set()
        await release.wait()  # reads nothing until then
        digest = hashlib.sha256(message["body"])
        total = len(message["body"])
        while True:
            chunk = await channels["body"].receive()
            digest.update(chunk["content"])
            total += len(chunk["content"])
            if not chunk["more_content"]:
                break
        await channels["reply"].send({"status": 200, "content": b"%d %s" % (
            total, digest.hexdigest().encode())})  # fmt: skip

    body = bytes(range(256)) * (size // 256)
    async with running_server(app, h2_initial_window_size=window) as server:
        client = await H2Client.open(server.port)
        await client.round_trip()  # the server's SETTINGS are in force
        stream = client.request("/upload", "POST", end_stream=False)
        await asyncio.wait_for(started.wait(), 5 * UNIT)
        sent = 0
        while True:
            sent += client.send_body(stream, body[sent:])
            # Whatever window the server gives back has come once a PING is answered.
            await client.round_trip()
            if not client.conn.local_flow_control_window(stream):
                await client.round_trip()
                if not client.conn.local_flow_control_window(stream):
                    break
        # Stalled: the window, and the 64 KiB received while the app "kept up", no more.
        assert window <= sent <= window + BODY_HIGH_WATER, sent
        assert client.conn.outbound_flow_control_window > 0  # the stream's window, not the
        # connection's: other streams on the same connection go on meanwhile.
        other = client.request("/other")
        assert (await client.response(other)).data == b"other"
        upload = client.request("/other", "POST", body=b"x" * 1000)
        assert (await client.response(upload)).status == 200
        # The server holds no more than what it let the client send.
        assert h2_connection(server).streams[stream].cycle.unread <= sent  # type: ignore[union-attr]
        release.set()
        while sent < size:  # the app reads: the window comes back as it does
            await client.until(lambda: client.conn.local_flow_control_window(stream) > 0)
            sent += client.send_body(stream, body[sent:], end_stream=True)
        result = await client.response(stream)
        client.close()
    assert result.data == b"%d %s" % (size, hashlib.sha256(body).hexdigest().encode())


@pytest.mark.parametrize("interface", ["messaging", "asgi3"])
async def test_a_response_waits_for_the_client_window_and_so_does_send(interface: str) -> None:
    chunk, count = 64 * 1024, 32  # 2 MiB, against the client's 64 KiB windows
    sends = []  # bytes queued each time a send() returned

    async def messaging(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        await reply.send({"status": 200, "more_content": True})
        for i in range(count):
            await reply.send({"content": bytes([i]) * chunk, "more_content": i < count - 1})
            sends.append((i + 1) * chunk)

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        for i in range(count):
            await send({"type": "http.response.body", "body": bytes([i]) * chunk,
                        "more_body": i < count - 1})  # fmt: skip
            sends.append((i + 1) * chunk)

    app = messaging if interface == "messaging" else asgi
    async with running_server(app, interface=interface, lifespan="off") as server:
        client = await H2Client.open(server.port, auto_ack=False)
        stream = client.request("/")
        result = client.streams[stream]
        await client.until(lambda: len(result.data) == DEFAULT_WINDOW)
        await client.round_trip()  # the server handled everything; nothing more came
        assert len(result.data) == DEFAULT_WINDOW
        conn = h2_connection(server)
        h2_stream = conn.streams[stream]
        # The app waits in send(): no more than the window and one chunk went through it,
        # and the server holds one chunk at most.
        waiter = h2_stream._waiter
        assert waiter is not None and not waiter.done(), "the app's send() does not wait"
        assert not sends or sends[-1] <= DEFAULT_WINDOW + chunk, sends
        assert 0 < len(h2_stream.pending) <= chunk
        assert conn.transport.get_write_buffer_size() < chunk
        assert not result.done
        # The client gives window: the rest arrives.
        client.auto_ack = True
        client.give_window(len(result.data), 0)
        client.give_window(len(result.data), stream)
        result = await client.response(stream, timeout=10)
        client.close()
    assert result.ended and result.reset is None
    assert bytes(result.data) == b"".join(bytes([i]) * chunk for i in range(count))
    assert sends[-1] == chunk * count


async def test_many_concurrent_streams_on_one_connection() -> None:
    count = 60
    arrived: list[int] = []
    all_there = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        arrived.append(message["client"][1])
        if len(arrived) == count:
            all_there.set()
        await all_there.wait()  # every request is in flight at once
        await channels["reply"].send({"status": 200, "content": message["path"].encode() * 100})

    async with running_server(app) as server:
        client = await H2Client.open(server.port)
        await client.round_trip()
        streams = [client.request(f"/{i}") for i in range(count)]
        for i, stream in enumerate(streams):
            result = await client.response(stream)
            assert result.status == 200 and result.data == f"/{i}".encode() * 100
        async with httpx.AsyncClient(
            http1=False, http2=True, base_url=f"http://127.0.0.1:{server.port}"
        ) as h:
            arrived.clear()
            all_there.clear()
            answers = await asyncio.gather(*(h.get(f"/{i}") for i in range(count)))
        client.close()
    assert [a.content for a in answers] == [f"/{i}".encode() * 100 for i in range(count)]
    assert len(set(arrived)) == 1  # httpx used one connection for all


@pytest.mark.parametrize("interface", ["messaging", "asgi3"])
async def test_a_stream_reset_by_the_client_is_a_disconnect(interface: str) -> None:
    outcomes: dict[str, Any] = {}
    waiting = asyncio.Event()
    done = asyncio.Event()

    async def messaging(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        if message["path"] == "/other":
            await reply.send({"status": 200, "content": b"other"})
            return
        if message["path"] == "/upload":  # waits for the rest of its body
            waiting.set()
            outcomes["upload"] = await channels["body"].receive()
        else:  # streams until its client is gone
            await reply.send({"status": 200, "content": b"tick", "more_content": True})
            waiting.set()
            try:
                while True:
                    await reply.send({"content": b"tick" * 1000, "more_content": True})
            except ClientDisconnected as exc:
                outcomes["stream"] = exc
        done.set()

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/other":
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"other"})
            return
        waiting.set()
        outcomes[scope["path"].strip("/")] = [await receive(), await receive()]
        done.set()

    app = messaging if interface == "messaging" else asgi
    async with running_server(app, interface=interface, lifespan="off") as server:
        client = await H2Client.open(server.port)
        for path in ("/upload", "/stream"):
            waiting.clear()
            done.clear()
            stream = client.request(path, "POST", body=b"part", end_stream=False)
            await asyncio.wait_for(waiting.wait(), 5 * UNIT)
            other = client.request("/other")  # meanwhile, on the same connection
            assert (await client.response(other)).data == b"other"
            client.reset(stream, CANCEL)
            await asyncio.wait_for(done.wait(), 5 * UNIT)
        after = client.request("/other")
        assert (await client.response(after)).data == b"other"
        assert client.goaways == []
        client.close()
    if interface == "messaging":
        assert outcomes["upload"] == {"content": b"", "closed": True, "more_content": False}
        assert isinstance(outcomes["stream"], ClientDisconnected)
    else:
        for path in ("upload", "stream"):
            first, second = outcomes[path]
            assert first == {"type": "http.request", "body": b"part", "more_body": True}
            assert second == {"type": "http.disconnect"}


async def test_streams_beyond_max_concurrent_streams_are_refused() -> None:
    release = asyncio.Event()
    started: list[str] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        started.append(message["path"])
        if message["path"] != "/free":
            await release.wait()
        await channels["reply"].send({"status": 200, "content": b"ok"})

    async with running_server(app, h2_max_concurrent_streams=2) as server:
        # Three requests with the preface, before the server's SETTINGS could be known (h2
        # would otherwise hold the third back itself).
        client = await H2Client.open(server.port)
        first, second, third = (client.request(f"/{i}") for i in range(3))
        refused = await client.response(third)
        assert refused.reset == REFUSED_STREAM and refused.status == 0
        release.set()
        for stream in (first, second):
            assert (await client.response(stream)).data == b"ok"
        fourth = client.request("/free")  # the slots are free again
        assert (await client.response(fourth)).data == b"ok"
        assert client.goaways == []
        client.close()
    assert started == ["/0", "/1", "/free"]


async def test_streams_at_the_limit_still_get_their_window() -> None:
    """Every stream allowed open, each sending a response larger than the client's window:
    the client's WINDOW_UPDATEs must still be read."""
    size = 4 * DEFAULT_WINDOW

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200, "content": b"x" * size})

    async with running_server(app, h2_max_concurrent_streams=2) as server:
        client = await H2Client.open(server.port)
        await client.round_trip()
        streams = [client.request("/"), client.request("/")]
        for stream in streams:
            try:
                result = await client.response(stream, timeout=2)
            except AssertionError:
                conn = h2_connection(server)
                raise AssertionError(
                    f"stalled: {len(client.streams[stream].data)} of {size} bytes; the server "
                    f"{'stopped' if conn.read_paused else 'goes on'} reading the connection"
                ) from None
            assert result.ended and len(result.data) == size
        client.close()
