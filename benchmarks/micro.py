"""Per-request CPU cost of the HTTP path without sockets: requests fed to a connection whose
transport only counts bytes. Shows what our Python costs per request, with no syscall noise.

    .venv/bin/python benchmarks/micro.py [messaging|asgi|stream|asgi-stream|close] [requests]
    .venv/bin/python benchmarks/micro.py --callgrind [messaging|asgi|stream|asgi-stream|close]
    (either with ``--metrics`` last: requests counted as ``--metrics`` counts them)

``proxied`` is ``messaging`` with the headers a reverse proxy adds (X-Forwarded-For and -Proto,
from a trusted peer). Per WebSocket message (``micro_ws.py``): ``ws`` / ``ws-asgi`` (a 64-byte
text echo), ``fanout`` / ``fanout-asgi`` (a group message delivered to 1,000 members: per
delivery).

``--callgrind`` counts instructions per request under valgrind instead of timing: the count for
12,000 requests minus the count for 2,000, over 10,000, with a fixed hash seed. It does not move
with the machine's load, so a change to the hot path can be measured to the hundred
instructions on a shared machine (the figures in the commit messages were made so).

It measures the uvicorn it imports: this tree's .py files (an editable install), or the build
compiled by mypyc with ``PYTHONPATH=.build/mypyc`` after ``./scripts/compiled-tree``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import subprocess
import sys
import time
from typing import Any

import micro_ws
import uvloop

from uvicorn.config import Config
from uvicorn.worker import registries
from uvicorn.worker.asgi import ASGICycle
from uvicorn.worker.connection import HTTPConnection
from uvicorn.worker.messaging import MessagingCycle
from uvicorn.worker.metrics import WorkerMetrics
from uvicorn.worker.state import ServerState

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
# As a reverse proxy on this host forwards it (a trusted peer: --forwarded-allow-ips' default).
PROXIED = REQUEST.replace(
    b"\r\n\r\n", b"\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.2\r\nX-Forwarded-Proto: https\r\n\r\n"
)
CHUNK = b"x" * 1023 + b"\n"


async def mi_hello(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await channels["reply"].send(
        {"status": 200, "headers": [[b"content-type", b"text/plain"]], "content": b"Hello, world"}
    )


REPLY_START = {"status": 200, "headers": [[b"content-type", b"text/plain"]],
               "content": b"", "more_content": True}  # fmt: skip
REPLY_PART = {"content": CHUNK, "more_content": True}
REPLY_END = {"content": b"", "more_content": False}


async def mi_stream(message: dict[str, Any], channels: dict[str, Any]) -> None:
    send = channels["reply"].send  # the messages made once, as apps/stream.py does
    await send(REPLY_START)
    for _ in range(16):
        await send(REPLY_PART)
    await send(REPLY_END)


START = {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"text/plain"), (b"content-length", b"12")]}  # fmt: skip
BODY = {"type": "http.response.body", "body": b"Hello, world"}


async def asgi_hello(scope: Any, receive: Any, send: Any) -> None:
    await send(START)
    await send(BODY)


STREAM_START = {"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]}  # fmt: skip
STREAM_PART = {"type": "http.response.body", "body": CHUNK, "more_body": True}
STREAM_END = {"type": "http.response.body", "body": b"", "more_body": False}


async def asgi_stream(scope: Any, receive: Any, send: Any) -> None:
    await send(STREAM_START)
    for _ in range(16):
        await send(STREAM_PART)
    await send(STREAM_END)


class NoSocket:
    """The transport's socket, where a connection sets options (TCP_CORK before a close)."""

    def setsockopt(self, *args: Any) -> None: ...


_EXTRA = {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000), "socket": NoSocket()}


class CountingTransport:
    def __init__(self) -> None:
        self.written = 0
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return _EXTRA.get(name, default)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...


async def measure_ws(kind: str, count: int) -> None:
    """``count`` WebSocket messages (``micro_ws.py``): for ``fanout``, count deliveries."""
    registries.lighten(asyncio.get_running_loop())  # as a worker does (server.py)
    one, transports, per_one = await micro_ws.setup(kind)
    rounds = max(count // per_one, 1)
    for _ in range(max(2000 // per_one, 2)):  # warm up
        await one()
    # As a serving worker does (server.py): what setup made is set apart from the collector,
    # whose passes over 1,000 connections' objects would otherwise land in some runs only.
    gc.collect()
    gc.freeze()
    writes = sum(t.writes for t in transports)
    started = time.perf_counter()
    cpu = time.process_time()
    for _ in range(rounds):
        await one()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    done = rounds * per_one
    writes = sum(t.writes for t in transports) - writes
    assert writes >= done, f"{writes} writes for {done} messages: see the log above"
    print(f"{kind}: {done / elapsed:,.0f} messages/s, {cpu / done * 1e6:.2f} us CPU per message, "
          f"{writes / done:.2f} writes per message")  # fmt: skip


async def measure(kind: str, count: int, metrics: bool = False) -> None:
    if kind in micro_ws.KINDS:
        await measure_ws(kind, count)
        return
    loop = asyncio.get_running_loop()
    registries.lighten(loop)  # as a worker does (server.py)
    app, cycle = {"messaging": (mi_hello, MessagingCycle), "asgi": (asgi_hello, ASGICycle),
                  "stream": (mi_stream, MessagingCycle), "asgi-stream": (asgi_stream, ASGICycle),
                  "close": (mi_hello, MessagingCycle),
                  "proxied": (mi_hello, MessagingCycle)}[kind]  # fmt: skip
    counts = WorkerMetrics() if metrics else None  # as a worker makes them (server.py)
    config = Config(app=app, access_log=False)
    state_class = ServerState if counts is None else counts.state_class(config)
    state = state_class(config, app, cycle, loop)
    if counts is not None:
        counts.install(state)
    if kind in ("asgi", "asgi-stream"):
        state.lifespan_state = {}  # as for an app that speaks the lifespan protocol
    transport = CountingTransport()
    if kind == "close":
        # A new connection per request, as 'Connection: close' clients do.
        request = REQUEST.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")

        async def one() -> None:
            conn = HTTPConnection(state, True)  # from a corked listener, as the master binds
            conn.connection_made(transport)  # type: ignore[arg-type]
            conn.data_received(request)
            await asyncio.sleep(0)
            conn.connection_lost(None)
    else:
        conn = HTTPConnection(state)
        conn.connection_made(transport)  # type: ignore[arg-type]
        request = PROXIED if kind == "proxied" else REQUEST

        async def one() -> None:
            conn.data_received(request)
            await asyncio.sleep(0)

    for _ in range(2000):  # warm up
        await one()
    started = time.perf_counter()
    cpu = time.process_time()
    for _ in range(count):
        await one()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    assert transport.writes >= count, "the app failed: see the log above"
    print(f"{kind}: {count / elapsed:,.0f} req/s, {cpu / count * 1e6:.2f} us CPU per request, "
          f"{transport.writes / (count + 2000):.2f} writes per request")  # fmt: skip


def instructions(kind: str, count: int, extra: list[str]) -> int:
    """Instructions valgrind counts for a whole run of ``count`` requests."""
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, kind, str(count), *extra],
        env=dict(os.environ, PYTHONHASHSEED="0"), capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", run.stderr)
    assert found is not None, run.stderr[-2000:]
    return int(found.group(1))


def callgrind(kind: str, extra: list[str]) -> None:
    per_request = (instructions(kind, 12_000, extra) - instructions(kind, 2_000, extra)) / 10_000
    unit = "message" if kind in micro_ws.KINDS else "request"
    print(f"{kind}{' '.join(['', *extra])}: {per_request:,.0f} instructions per {unit} "
          "(callgrind)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--callgrind"]:
        callgrind(sys.argv[2] if len(sys.argv) > 2 else "messaging", sys.argv[3:4])
    else:
        uvloop.run(measure(sys.argv[1] if len(sys.argv) > 1 else "messaging",
                           int(sys.argv[2]) if len(sys.argv) > 2 else 200_000,
                           sys.argv[3:4] == ["--metrics"]))  # fmt: skip
