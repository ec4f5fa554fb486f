"""The life of an HTTP/2 connection in a worker: a graceful shutdown (GOAWAY, the streams in
flight complete), the keep-alive timeout (GOAWAY, close), and hostile peers, whose floods cost
their own connection only (ENHANCE_YOUR_CALM) while a well-behaved one is served."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.helpers import UNIT, listen, running_server
from tests.worker.h2client import H2Client
from uvicorn.config import Config
from uvicorn.worker.server import Server

NO_ERROR, CANCEL, ENHANCE_YOUR_CALM = 0x0, 0x8, 0xB
LARGEST_STREAM = 2**31 - 1


async def test_graceful_shutdown_sends_goaway_and_completes_the_streams_in_flight() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    cancelled = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        await reply.send({"status": 200, "content": b"begun, ", "more_content": True})
        started.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.append(message["path"])
            raise
        await reply.send({"content": b"and finished"})

    sock = listen()
    server = Server(Config(app=app, access_log=False, graceful_timeout=10 * UNIT), [sock])
    await server.start()
    port = sock.getsockname()[1]
    try:
        client = await H2Client.open(port)
        stream = client.request("/slow")
        await asyncio.wait_for(started.wait(), 5 * UNIT)
        late: list[int] = []
        # A request sent before the client could know of the shutdown: after the first
        # GOAWAY is read, but before the PING that follows it is answered.
        client.on_goaway = lambda code, last: late.append(client.request("/late")) if not late \
            else None  # fmt: skip
        server.stop()
        shutting_down = asyncio.ensure_future(server.shutdown())
        # RFC 9113 section 6.8: GOAWAY with the largest stream id first (requests already on
        # their way are not lost), a PING, then GOAWAY with the last stream opened.
        await client.until(lambda: len(client.goaways) == 2)
        assert client.goaways == [(NO_ERROR, LARGEST_STREAM), (NO_ERROR, late[0])]
        assert not shutting_down.done() and not client.streams[stream].done
        release.set()
        for path, sid in (("/slow", stream), ("/late", late[0])):
            result = await client.response(sid)
            assert result.status == 200 and result.data == b"begun, and finished", path
            assert result.reset is None
        await client.closed()  # then the server closes the connection
        await asyncio.wait_for(shutting_down, 5 * UNIT)
        client.close()
    finally:
        server.stop(force=True)
        await server.shutdown()
        sock.close()
    assert cancelled == []


async def test_the_keep_alive_timeout_closes_an_idle_connection_with_goaway() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200, "content": b"ok"})

    timeout = 0.3 * UNIT
    async with running_server(app, timeout_keep_alive=timeout) as server:
        loop = asyncio.get_running_loop()
        client = await H2Client.open(server.port)
        stream = client.request("/")
        assert (await client.response(stream)).status == 200
        idle_since = loop.time()
        await client.closed(timeout=10 * timeout)
        assert loop.time() - idle_since >= timeout * 0.9
        assert client.goaways == [(NO_ERROR, stream)]
        client.close()


async def test_a_ping_flood_is_calmed_and_costs_only_its_connection() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200, "content": message["path"].encode()})

    async with (
        running_server(app) as server,
        httpx.AsyncClient(http1=False, http2=True, base_url=f"http://127.0.0.1:{server.port}")
        as polite,
    ):  # fmt: skip
        assert (await polite.get("/before")).content == b"/before"
        flood = await H2Client.open(server.port)
        for i in range(5000):
            flood.conn.ping(b"%08d" % i)
        flood.flush()
        await flood.closed()
        assert flood.goaways and flood.goaways[-1][0] == ENHANCE_YOUR_CALM, flood.goaways
        assert flood.pongs < 5000  # not every PING was answered
        flood.close()
        for path in ("/during", "/after"):
            answer = await polite.get(path)
            assert answer.http_version == "HTTP/2" and answer.content == path.encode()


async def test_rapid_reset_is_calmed_and_costs_only_its_connection() -> None:
    """CVE-2023-44487: streams opened and reset at once, before any answer."""
    started = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        started.append(message["path"])
        await channels["reply"].send({"status": 200, "content": message["path"].encode()})

    async with running_server(app) as server:
        polite = await H2Client.open(server.port)
        assert (await polite.response(polite.request("/before"))).data == b"/before"
        hostile = await H2Client.open(server.port)
        for _ in range(3000):
            stream = hostile.request("/reset")
            hostile.reset(stream, CANCEL)
        await hostile.closed()
        assert hostile.goaways and hostile.goaways[-1][0] == ENHANCE_YOUR_CALM, hostile.goaways
        hostile.close()
        assert (await polite.response(polite.request("/after"))).data == b"/after"
        polite.close()
    assert started.count("/reset") < 3000
