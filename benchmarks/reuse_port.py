"""Shared listening socket (the default) against ``--reuse-port``: how evenly new connections
spread across the workers, and how many connections are lost while workers exit (each
SIGHUP retires every worker once its replacement serves).

    .venv/bin/python benchmarks/reuse_port.py [--workers 4] [--seconds 5] [--hups 10]

Each client opens a new connection per request (``connection: close``), so the kernel's
choice of worker is what is measured, not keep-alive stickiness. A connection is lost when it
is reset, refused, or closed without a complete ``200`` response.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


async def whoami(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await channels["reply"].send({"status": 200, "content": str(os.getpid()).encode()})


async def client(port: int, stop: float, counts: collections.Counter[str], lost: list[str]) -> None:
    request = b"GET / HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n"
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            response = await asyncio.wait_for(reader.read(), 10)
            writer.close()
        except (OSError, asyncio.TimeoutError) as exc:
            lost.append(type(exc).__name__)
            continue
        if response.startswith(b"HTTP/1.1 200 "):
            counts[response.rsplit(b"\r\n\r\n", 1)[1].decode()] += 1
        else:
            lost.append("incomplete response")


async def load(
    port: int, seconds: float, clients: int
) -> tuple[collections.Counter[str], list[str]]:
    counts: collections.Counter[str] = collections.Counter()
    lost: list[str] = []
    stop = time.monotonic() + seconds
    await asyncio.gather(*(client(port, stop, counts, lost) for _ in range(clients)))
    return counts, lost


def measure(reuse_port: bool, workers: int, seconds: float, hups: int, clients: int) -> None:
    # --log-level warning keeps the output quiet: the port is chosen here instead.
    port = _free_port()
    args = [sys.executable, "-m", "uvicorn", "reuse_port:whoami",
            "--app-dir", str(REPO / "benchmarks"), "--port", str(port), "--workers", str(workers),
            "--no-access-log", "--log-level", "warning"]  # fmt: skip
    if reuse_port:
        args.append("--reuse-port")
    master = subprocess.Popen(args, cwd=REPO)
    try:
        _wait_serving(port)
        counts, lost = asyncio.run(load(port, seconds, clients))
        spread = sorted(counts.values(), reverse=True)
        total = sum(spread)
        shares = ", ".join(f"{100 * n / total:.0f}%" for n in spread)
        print(
            f"  spread over {len(spread)} workers ({total} connections): {shares}; lost {len(lost)}"
        )
        # Now workers exit while connections keep arriving: SIGHUP retires every worker.
        stop_hups = time.monotonic() + seconds

        async def hupper() -> None:
            for _ in range(hups):
                await asyncio.sleep(seconds / (hups + 1))
                master.send_signal(signal.SIGHUP)

        async def both() -> tuple[collections.Counter[str], list[str]]:
            _, result = await asyncio.gather(
                hupper(), load(port, stop_hups - time.monotonic(), clients)
            )
            return result

        counts, lost = asyncio.run(both())
        kinds = collections.Counter(lost)
        served = sum(counts.values())
        print(f"  during {hups} SIGHUPs: {served} served, {len(lost)} lost {dict(kinds)}")
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(30)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_serving(port: int) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            time.sleep(0.5)  # let every worker come up (a benchmark, not a test)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--hups", type=int, default=10)
    parser.add_argument("--clients", type=int, default=64)
    options = parser.parse_args()
    for reuse_port in (False, True):
        print("--reuse-port" if reuse_port else "shared socket (default)")
        measure(reuse_port, options.workers, options.seconds, options.hups, options.clients)


if __name__ == "__main__":
    main()
