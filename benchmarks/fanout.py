"""Fan-out benchmark: N WebSocket clients (default 1,000) in one chat group, connected across
one server instance with 4 workers; a publisher client sends messages stamped with the send time;
every client receives every message. Reports deliveries per second and delivery latency (p50,
p99, max), for

- ours: the README's broadcast chat (examples/broadcast_chat, unchanged) on this uvicorn;
- baseline: the same chat written with Starlette + the ``broadcaster`` library
  (benchmarks/broadcaster_chat.py) on the published uvicorn, from a virtual environment of its
  own under /tmp (created on first use: ``pip install 'broadcaster[redis]' 'redis<8' starlette
  'uvicorn[standard]'``; never the project's .venv, whose ``uvicorn`` is this one),

in the same run, on the same Redis (a redis-server of its own on a free port, or --redis-url).

    .venv/bin/python benchmarks/fanout.py
    .venv/bin/python benchmarks/fanout.py --clients 200 --burst 50 --only ours

Two phases per server: a burst (--burst messages sent back to back: throughput, and latency
under load) and a paced phase (--rate messages per second for --seconds: latency at a steady
load). The clients are a minimal WebSocket client (no compression) spread over --client-procs
processes, so that the client side costs both servers the same. Every process shares the
machine: on a small one the clients take a good part of the CPU, so the figures compare the two
servers with each other rather than measure either alone.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import faulthandler
import multiprocessing
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BASELINE_VENV = Path("/tmp/uvicorn-bench-baseline")
# broadcaster 0.3.1 receives nothing with redis-py 8 (its listener starts before its first
# subscription is recorded, finds none and stops for good): the baseline keeps redis-py 7.
BASELINE_PACKAGES = ["broadcaster[redis]", "redis<8", "starlette", "uvicorn[standard]"]


# A minimal WebSocket client: enough to count and time text messages, cheap per message.


class Client(asyncio.Protocol):
    KEY = base64.b64encode(b"fanout-benchmark").decode()

    def __init__(self, host: str, port: int, on_text: Any) -> None:
        self.request = (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.KEY}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.on_text = on_text
        self.buffer = bytearray()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.opened.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(bytes(buffer[:end]).decode()))
                return
            del buffer[: end + 4]
            self.opened.set_result(None)
        position, size = 0, len(buffer)
        while size - position >= 2:
            opcode, length, header = buffer[position] & 0x0F, buffer[position + 1] & 0x7F, 2
            if length == 126:
                if size - position < 4:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 4], "big"), 4
            elif length == 127:
                if size - position < 10:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 10], "big"), 10
            end = position + header + length
            if end > size:
                break
            payload = bytes(buffer[position + header : end])
            position = end
            if opcode == 1:
                self.on_text(payload)
            elif opcode == 9:
                self.send(payload, opcode=0xA)  # pong
            elif opcode == 8 and self.transport is not None:
                self.transport.close()
        del buffer[:position]

    def send(self, payload: bytes, opcode: int = 1) -> None:
        key = os.urandom(4)
        size = len(payload)
        if size < 126:
            head = bytes([0x80 | opcode, 0x80 | size])
        else:
            head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
        mask = int.from_bytes((key * (size // 4 + 1))[:size], "big")
        masked = (int.from_bytes(payload, "big") ^ mask).to_bytes(size, "big")
        assert self.transport is not None
        self.transport.write(head + key + masked)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))


async def connect(host: str, port: int, on_text: Any) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(host, port, on_text), host, port)
    await asyncio.wait_for(client.opened, 60)
    return client


# The client processes: each holds its share of the clients and times what they receive.


def client_process(port: int, count: int, commands: Connection, conn: Connection) -> None:
    import uvloop

    uvloop.run(_client_main(port, count, commands, conn))


async def _client_main(port: int, count: int, commands: Connection, conn: Connection) -> None:
    """Results go out on ``conn`` (blocking writes); ``commands`` come in on a pipe of their own,
    since the event loop makes the file descriptor it watches non-blocking."""
    loop = asyncio.get_running_loop()
    warmed: set[int] = set()
    expected: dict[str, int] = {}
    latencies: dict[str, list[int]] = {}
    last: dict[str, int] = {}
    reported: set[str] = set()
    finished = loop.create_future()

    def report(phase: str) -> None:
        if phase not in reported:
            reported.add(phase)
            conn.send(("done", phase, latencies.get(phase, []), last.get(phase, 0)))

    def on_text_of(index: int) -> Any:
        def on_text(payload: bytes) -> None:
            if payload[:2] == b"m ":  # "m <phase> <seq> <send time, ns>"
                now = time.monotonic_ns()
                _, phase_bytes, _, sent = payload.split(b" ")
                phase = phase_bytes.decode()
                received = latencies.setdefault(phase, [])
                received.append(now - int(sent))
                last[phase] = now
                if len(received) == expected.get(phase, -1):
                    report(phase)
            elif payload == b"w" and index not in warmed:  # warm-up: each client once
                warmed.add(index)
                if len(warmed) == count:
                    conn.send(("warm",))

        return on_text

    def on_command() -> None:
        command = commands.recv()
        if command[0] == "expect":  # ("expect", phase, messages per client)
            phase = command[1]
            expected[phase] = command[2] * count
            if len(latencies.get(phase, ())) >= expected[phase]:
                report(phase)
        elif command[0] == "report":  # the coordinator stopped waiting: what arrived
            report(command[1])
        elif command[0] == "exit" and not finished.done():
            finished.set_result(None)

    loop.add_reader(commands.fileno(), on_command)
    clients: list[Client] = []
    for start in range(0, count, 50):  # 50 handshakes at a time: no listen backlog overflow
        batch = range(start, min(start + 50, count))
        clients += await asyncio.gather(*(connect("127.0.0.1", port, on_text_of(i)) for i in batch))
    conn.send(("connected",))
    await finished
    for client in clients:
        if client.transport is not None:
            client.transport.close()


# The coordinator.


def raise_open_files_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            print(f"warning: open files limited to {target} (need about {needed})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Output:
    """A subprocess's output, read by a thread; wait for lines matching a pattern."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.lines.append("<exited>")
            self.changed.notify_all()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 60) -> None:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.changed:
            while sum(1 for line in self.lines if regex.search(line)) < count:
                remaining = deadline - time.monotonic()
                if self.lines[-1:] == ["<exited>"] or remaining <= 0:
                    raise SystemExit(f"no {count} x {pattern!r}; output:\n" + "\n".join(self.lines))
                self.changed.wait(remaining)


def start_redis() -> tuple[subprocess.Popen[str], str]:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is missing: apt-get install redis-server")
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--bind", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    Output(process).wait_for("Ready to accept connections", timeout=10)
    return process, f"redis://127.0.0.1:{port}"


def baseline_python() -> Path:
    python = BASELINE_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {BASELINE_VENV} with {' '.join(BASELINE_PACKAGES)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(BASELINE_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *BASELINE_PACKAGES], check=True)  # fmt: skip
    return python


def start_server(name: str, port: int, workers: int, redis_url: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    common = ["--port", str(port), "--workers", str(workers), "--no-access-log"]
    if name == "ours":
        command = [sys.executable, "-m", "uvicorn", "app:chat_server", *common]
        cwd = REPO / "examples" / "broadcast_chat"
        env["UVICORN_REDIS_URL"] = redis_url
        ready = r"Worker \[\d+\] serving"
    else:
        command = [str(baseline_python()), "-m", "uvicorn", "broadcaster_chat:app", *common]
        cwd = REPO / "benchmarks"  # the published uvicorn: nothing of this repository on the path
        env["REDIS_URL"] = redis_url
        ready = r"Application startup complete"
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    Output(process).wait_for(ready, count=workers, timeout=60)
    return process


class Link:
    """The coordinator's ends of a client process's two pipes."""

    def __init__(self, commands: Connection, results: Connection) -> None:
        self.commands = commands
        self.results = results

    def send(self, command: Any) -> None:
        self.commands.send(command)

    def poll(self, timeout: float) -> bool:
        return self.results.poll(timeout)

    def recv(self) -> Any:
        return self.results.recv()


def progress(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def percentile(ordered: list[int], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6  # ms


async def publish_and_measure(port: int, pipes: list[Link], args: Any) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    publisher = await connect("127.0.0.1", port, lambda payload: None)  # a member too: it drains

    async def from_all(kind: str, timeout: float) -> list[Any]:
        replies: list[Any] = []
        deadline = loop.time() + timeout
        for pipe in pipes:
            while not pipe.poll(0):
                if loop.time() > deadline:
                    raise TimeoutError(kind)
                await asyncio.sleep(0.01)
            reply = pipe.recv()
            assert reply[0] == kind, reply
            replies.append(reply)
        return replies

    # Warm-up: until every client has received one (the baseline subscribes after accepting).
    warm = asyncio.ensure_future(from_all("warm", 60))
    while not warm.done():
        publisher.send(b"w")
        await asyncio.sleep(0.1)
    await warm
    progress("every client has joined")
    await asyncio.sleep(0.5)  # let the last warm-up messages drain before measuring

    results: dict[str, Any] = {}
    phases = [("burst", args.burst, 0.0)]
    if args.rate > 0 and args.seconds > 0:
        phases.append(("paced", int(args.rate * args.seconds), 1 / args.rate))
    for phase, messages, interval in phases:
        for pipe in pipes:
            pipe.send(("expect", phase, messages))
        start = time.monotonic_ns()
        next_send = loop.time()
        for seq in range(messages):
            publisher.send(f"m {phase} {seq} {time.monotonic_ns()}".encode())
            if interval:
                next_send += interval
                await asyncio.sleep(max(0.0, next_send - loop.time()))
            elif seq % 10 == 9:
                await asyncio.sleep(0)  # let the transport write
        progress(f"{phase}: {messages} messages sent")
        try:
            replies = await from_all("done", args.timeout)
        except TimeoutError:
            for pipe in pipes:
                pipe.send(("report", phase))
            replies = await from_all("done", 30)
        ordered = sorted(latency for reply in replies for latency in reply[2])
        end = max(reply[3] for reply in replies)
        delivered = len(ordered)
        results[phase] = {
            "messages": messages,
            "delivered": delivered,
            "expected": messages * args.clients,
            "per_second": delivered / ((end - start) / 1e9) if end > start else float("nan"),
            "p50": percentile(ordered, 0.50),
            "p99": percentile(ordered, 0.99),
            "max": percentile(ordered, 1.0),
        }
    assert publisher.transport is not None
    publisher.transport.close()
    return results


def run_one(name: str, redis_url: str, args: Any) -> dict[str, Any]:
    port = free_port()
    server = start_server(name, port, args.workers, redis_url)
    context = multiprocessing.get_context("fork")
    pipes: list[Link] = []
    processes = []
    try:
        shares = [args.clients // args.client_procs] * args.client_procs
        shares[0] += args.clients - sum(shares)
        for share in shares:
            command_reader, command_writer = context.Pipe(duplex=False)
            result_reader, result_writer = context.Pipe(duplex=False)
            process = context.Process(
                target=client_process, args=(port, share, command_reader, result_writer)
            )
            process.start()
            pipes.append(Link(command_writer, result_reader))
            processes.append(process)
        progress(f"{name}: serving on port {port}; connecting {args.clients} clients")
        for pipe in pipes:
            if not pipe.poll(120):
                raise SystemExit(f"{name}: the clients did not connect within 120 s")
            reply = pipe.recv()
            assert reply == ("connected",), reply
        return asyncio.run(publish_and_measure(port, pipes, args))
    finally:
        for pipe in pipes:
            with contextlib.suppress(OSError):
                pipe.send(("exit",))
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--burst", type=int, default=100, help="messages sent back to back")
    parser.add_argument("--rate", type=float, default=10, help="paced messages per second")
    parser.add_argument("--seconds", type=float, default=5, help="how long the paced phase lasts")
    parser.add_argument("--timeout", type=float, default=120, help="per phase, in seconds")
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    parser.add_argument("--only", choices=["ours", "baseline"])
    parser.add_argument("--rounds", type=int, default=1, help="alternate the servers; medians")
    args = parser.parse_args()
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: where is it?
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop what it started (finally:)
    raise_open_files_limit(2 * args.clients + 256)

    redis = None
    redis_url = args.redis_url
    if redis_url is None:
        redis, redis_url = start_redis()
    names = [args.only] if args.only else ["ours", "baseline"]
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    try:
        for number in range(1, args.rounds + 1):
            for name in names:  # alternated, so that a busy moment does not favour one
                rounds[name].append(run_one(name, redis_url, args))
                show(f"round {number}: {name}", rounds[name][-1])
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait()

    print(f"\n{args.clients} clients, one group, --workers {args.workers}, Redis {redis_url}, "
          f"median of {args.rounds} round(s)")  # fmt: skip
    print(f"{'server':<10} {'phase':<7} {'delivered':>17} {'msg/s':>9} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")  # fmt: skip
    for name, results in rounds.items():
        for phase in results[0]:
            runs = [result[phase] for result in results]
            median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            delivered = f"{sum(r['delivered'] for r in runs)}/{sum(r['expected'] for r in runs)}"
            print(f"{name:<10} {phase:<7} {delivered:>17} {median['per_second']:>9.0f} "
                  f"{median['p50']:>8.1f} {median['p99']:>8.1f} {median['max']:>8.1f}")  # fmt: skip
    print("(burst: --burst messages back to back; paced: --rate per second for --seconds)")


def show(title: str, result: dict[str, Any]) -> None:
    parts = [
        f"{phase} {r['delivered']}/{r['expected']} {r['per_second']:.0f}/s p99 {r['p99']:.1f} ms"
        for phase, r in result.items()
    ]
    print(title, ", ".join(parts), flush=True)


if __name__ == "__main__":
    main()
