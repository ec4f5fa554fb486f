"""WebSocket echo load client: N connections, each sends one masked text frame and waits for its
echo before sending the next. Standard library only (uvloop when the interpreter has it); the
runner starts it under the published uvicorn's venv, pinned to the client core:

    python ws_client.py --port 8000 --connections 64 --size 64 --warmup 2 --duration 10

It prints ``MEASURE_START`` and ``MEASURE_END`` around the measured window (so that the runner
can sample the server's CPU at the same moments) and then one ``RESULT {json}`` line: round trips
per second, latency percentiles, client CPU%, wrong echoes and lost connections.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from collections import deque
from typing import Any

HOST = "127.0.0.1"


class Stats:
    def __init__(self, frame: bytes, payload: bytes) -> None:
        self.frame, self.payload = frame, payload
        self.sending = self.measuring = False
        self.count = self.bad = self.lost = 0
        self.latencies: list[float] = []


class Connection(asyncio.Protocol):
    def __init__(self, stats: Stats, handshake: bytes) -> None:
        self.stats, self.handshake = stats, handshake
        self.buffer = b""
        self.upgraded = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent_at: deque[float] = deque()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.handshake)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection closed during the handshake"))
        elif self.stats.sending:
            self.stats.lost += 1

    def send(self) -> None:
        self.sent_at.append(time.perf_counter())
        self.transport.write(self.stats.frame)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buf
                return
            if buf[9:12] != b"101":
                self.opened.set_exception(ConnectionError(buf[:120].decode("latin-1")))
                self.transport.close()
                return
            self.upgraded = True
            self.opened.set_result(None)
            buf = buf[end + 4 :]
        stats, pos, size = self.stats, 0, len(buf)
        while size - pos >= 2:
            length, start = buf[pos + 1] & 0x7F, pos + 2
            if length == 126:
                length, start = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
            elif length == 127:
                length, start = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
            if start + length > size:
                break
            opcode = buf[pos] & 0x0F
            pos = start + length
            if opcode not in (1, 2):  # ping, pong, close: not an echo
                continue
            now = time.perf_counter()
            sent = self.sent_at.popleft() if self.sent_at else now
            if stats.measuring:
                stats.count += 1
                stats.latencies.append(now - sent)
                if buf[start:pos] != stats.payload:
                    stats.bad += 1
            if stats.sending:
                self.send()
        self.buffer = buf[pos:]


def masked_text_frame(payload: bytes, mask: bytes) -> bytes:
    if len(payload) < 126:
        head = bytes((0x81, 0x80 | len(payload)))
    else:
        head = bytes((0x81, 0x80 | 126)) + len(payload).to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    payload = b"w" * args.size
    mask = os.urandom(4)
    stats = Stats(masked_text_frame(payload, mask), payload)
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (
        f"GET {args.path} HTTP/1.1\r\nHost: {HOST}:{args.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(args.connections):
        _, conn = await loop.create_connection(
            lambda: Connection(stats, handshake), HOST, args.port
        )
        conns.append(conn)
    await asyncio.wait_for(asyncio.gather(*(c.opened for c in conns)), 30)
    stats.sending = True
    for conn in conns:
        conn.send()
    await asyncio.sleep(args.warmup)
    print("MEASURE_START", flush=True)
    cpu0, t0 = time.process_time(), time.perf_counter()
    stats.measuring = True
    await asyncio.sleep(args.duration)
    stats.measuring = False
    cpu1, t1 = time.process_time(), time.perf_counter()
    print("MEASURE_END", flush=True)
    stats.sending = False
    for conn in conns:
        conn.transport.write(b"\x88\x80" + mask)  # close frame, empty masked payload
        conn.transport.close()
    await asyncio.sleep(0.1)
    lat = sorted(stats.latencies) or [0.0]
    elapsed = t1 - t0

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000

    return {
        "rps": stats.count / elapsed, "requests": stats.count,
        "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": lat[-1] * 1000,
        "errors": stats.bad + stats.lost, "bad_echoes": stats.bad, "lost": stats.lost,
        "client_cpu_pct": 100 * (cpu1 - cpu0) / elapsed,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/ws")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(args))
        result["client_loop"] = "asyncio"
    else:
        result = uvloop.run(run(args))
        result["client_loop"] = "uvloop"
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
