"""Clients that try to make the server hold too much: a long pipeline that is never read, and a
pipeline cut between batches. What they cost stays bounded, and nothing is lost."""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from typing import Any

import pytest

from tests.helpers import UNIT, Watch, running_server
from uvicorn.protocols.http_parser import PIPELINE_BATCH
from uvicorn.worker.connection import HTTPConnection

REQUEST = b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n"


async def numbered(message: dict[str, Any], channels: dict[str, Any]) -> None:
    # 2 KiB answers: 10,000 of them are more than the kernel's socket buffers take.
    body = message["path"].encode().ljust(2048, b".")
    await channels["reply"].send({"status": 200, "content": body})


def uvicorn_memory(snapshot: tracemalloc.Snapshot) -> int:
    return sum(
        stat.size for stat in snapshot.statistics("filename")
        if "/uvicorn/" in stat.traceback[0].filename
    )  # fmt: skip


async def test_ten_thousand_pipelined_requests_from_a_client_that_never_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watch = Watch(monkeypatch, (HTTPConnection, "pause_writing"), (HTTPConnection, "data_received"))
    count = 10_000
    tracemalloc.start()
    try:
        async with running_server(numbered) as server:
            loop = asyncio.get_running_loop()
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", server.port))
            before = uvicorn_memory(tracemalloc.take_snapshot())
            sending = asyncio.ensure_future(
                loop.sock_sendall(sock, b"".join(REQUEST % i for i in range(count)))
            )
            state = server.server.state
            assert state is not None
            await watch.until(lambda: bool(state.connections))
            (conn,) = state.connections
            await watch.until(lambda: conn.write_paused and conn.read_paused)
            # Stalled: the client reads nothing. A batch of requests is parsed at a time, the
            # rest held as the bytes they came in; the answers wait in about the transport's
            # high-water mark.
            assert len(conn.h1.pipeline) < PIPELINE_BATCH  # type: ignore[attr-defined]
            assert conn.transport.get_write_buffer_size() < 256 * 1024
            grown = uvicorn_memory(tracemalloc.take_snapshot()) - before
            assert grown < 1024 * 1024, grown
            # Then it reads: every answer comes, in order.
            received = bytearray()
            size = 0  # every answer has the same length: a head of fixed fields, 2 KiB of body
            while not size or len(received) < count * size:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 10 * UNIT)
                assert chunk, "closed early"
                received += chunk
                if not size and b"\r\n\r\n" in received:
                    size = received.index(b"\r\n\r\n") + 4 + 2048
            bodies = [part.split(b".", 1)[0] for part in bytes(received).split(b"\r\n\r\n")[1:]]
            assert bodies == [b"/%d" % i for i in range(count)]
            await asyncio.wait_for(sending, 5 * UNIT)
            sock.close()
    finally:
        tracemalloc.stop()


async def test_a_pipeline_longer_than_a_batch_with_a_partial_request_at_the_end() -> None:
    """The bytes held after a batch end in the middle of a request: its rest, sent later, is
    read once the held requests are answered."""
    async with running_server(numbered) as server:
        client = await server.connect()
        count = 3 * PIPELINE_BATCH + 5
        pipeline = b"".join(REQUEST % i for i in range(count))
        await client.send(pipeline + b"GET /last HT")
        for i in range(count):
            response = await client.read_response()
            assert response.body.split(b".", 1)[0] == b"/%d" % i
        await client.send(b"TP/1.1\r\nHost: x\r\n\r\n")
        response = await client.read_response()
        assert response.body.split(b".", 1)[0] == b"/last"
        client.close()
