"""The scenarios, the one-request correctness checks, and the load generators: wrk for HTTP
(with a Lua script that reports the numbers) and ws_client.py for WebSockets (h2load for HTTP/2
is harness/h2load.py)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.procs import HOST, ServerFailed, StealWatch, TreeWatch, busy_seconds, pinned

WS_CLIENT = Path(__file__).resolve().with_name("ws_client.py")
ECHO_SIZE = 64 * 1024
WS_SIZE = 64


@dataclass(frozen=True)
class Scenario:
    module: str  # benchmarks/apps/<module>.py
    path: str
    kind: str  # "http" (wrk), "ws" (ws_client.py), "h2" (h2load, h2c with prior knowledge),
    #            "file" (wrk, a static file)
    what: str
    clients: int = 0  # h2: h2load's connections (-c) and streams in flight on each (-m); file:
    #                   wrk's connections
    streams: int = 0


SCENARIOS = {
    "hello-ka": Scenario("hello", "/", "http", "GET / -> 'Hello, world', keep-alive"),
    "hello-close": Scenario("hello", "/", "http", "GET / with Connection: close"),
    "stream": Scenario("stream", "/stream", "http", "GET /stream -> 16 x 1 KiB, chunked"),
    "echo": Scenario("echo", "/echo", "http", "POST /echo, 64 KiB body echoed back"),
    "ws": Scenario("ws_echo", "/ws", "ws", "WebSocket echo, 64-byte text, 1 in flight per conn"),
    "h2-hello": Scenario("hello", "/", "h2", "h2c GET / -> 'Hello, world', h2load -c64 -m10",
                         64, 10),
    "h2-download": Scenario("download", "/", "h2", "h2c GET / -> 1 MiB, h2load -c16 -m4", 16, 4),
    "h2-upload": Scenario("echo", "/echo", "h2", "h2c POST /echo, 64 KiB body echoed back, "
                          "h2load -c16 -m4", 16, 4),
    "file-1m": Scenario("files", "/file-1m", "file", "GET /file-1m -> a 1 MiB static file "
                        "(Starlette's FileResponse), 16 connections", 16),
    "file-64m": Scenario("files", "/file-64m", "file", "GET /file-64m -> a 64 MiB static file "
                         "(Starlette's FileResponse), 16 connections", 16),
}  # fmt: skip
GROUPS = {"h1": [n for n, s in SCENARIOS.items() if s.kind in ("http", "ws")],
          "h2": [n for n, s in SCENARIOS.items() if s.kind == "h2"],
          "files": [n for n, s in SCENARIOS.items() if s.kind == "file"]}  # fmt: skip
FILE_SIZES = {"file-1m": 2**20, "file-64m": 64 * 2**20}  # apps/files.py's
MIB = 2**20

_STREAM_BODY = (b"x" * 1023 + b"\n") * 16


def _fetch(port: int, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
           timeout: float = 10) -> tuple[int, bytes]:  # fmt: skip
    """(status, body) of one request (POST when ``body``); ServerFailed if it fails."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET" if body is None else "POST", path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise ServerFailed(f"check request failed: {exc!r}") from exc
    finally:
        conn.close()


def check_http(name: str, port: int) -> None:
    """One request with the scenario's shape; ServerFailed unless status and body are right."""
    if name == "echo":
        want = os.urandom(ECHO_SIZE)
        status, got = _fetch(port, "/echo", body=want)
    else:
        want = _STREAM_BODY if name == "stream" else b"Hello, world"
        headers = {"Connection": "close"} if name == "hello-close" else {}
        status, got = _fetch(port, SCENARIOS[name].path, headers=headers)
    if status != 200 or got != want:
        raise ServerFailed(f"wrong answer: status {status}, {len(got)} body bytes "
                           f"(want 200, {len(want)})")  # fmt: skip


def check_file(name: str, port: int) -> None:
    """The whole file, as apps/files.py makes it; ServerFailed otherwise."""
    size = FILE_SIZES[name]
    status, got = _fetch(port, SCENARIOS[name].path, timeout=30)
    if status != 200 or got != bytes(range(256)) * (size // 256):
        raise ServerFailed(f"wrong file: status {status}, {len(got)} body bytes "
                           f"(want 200, {size} of the pattern)")  # fmt: skip


def file_meters(name: str, res: dict[str, Any], seconds: float) -> dict[str, float]:
    """A file scenario's throughput and the server's CPU per MiB sent, from the bytes wrk
    received in the window (responses still in flight included: a 64 MiB one takes seconds):
    ``rps`` and ``requests`` become files' worth of those bytes, so that the paired ratios are
    ratios of bytes per second."""
    size = FILE_SIZES[name]
    rate = res.get("bytes_s", res["rps"] * size)
    mib = rate * seconds / MIB
    return {"mib_s": rate / MIB, "rps": rate / size, "requests": rate * seconds / size,
            "cpu_us_mib": 1e6 * res["server_cpu_s"] / mib if mib else 0.0}  # fmt: skip


def check_ws(port: int) -> None:
    """Handshake, one masked text frame, its echo; ServerFailed otherwise."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /ws HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
    mask, payload = os.urandom(4), b"check" * 4
    frame = bytes((0x81, 0x80 | len(payload))) + mask
    frame += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    try:
        with socket.create_connection((HOST, port), timeout=10) as sock:
            sock.sendall(request.encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"HTTP/1.1 101"):
                raise ServerFailed(f"handshake refused: {data[:60]!r}")
            data = data[data.index(b"\r\n\r\n") + 4 :]
            sock.sendall(frame)
            while len(data) < 2 + len(payload):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise ServerFailed(f"WebSocket check failed: {exc!r}") from exc
    if data[: 2 + len(payload)] != bytes((0x81, len(payload))) + payload:
        raise ServerFailed(f"wrong WebSocket echo: {data[:40]!r}")


_LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d %d\\n", summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
  io.write(string.format("BYTES %d\\n", summary.bytes))
end
"""


def lua_script(name: str) -> str:
    """The wrk script for an HTTP scenario: its request, and a done() that prints one line."""
    lines = []
    if name == "echo":
        lines += ['wrk.method = "POST"', f'wrk.body = string.rep("e", {ECHO_SIZE})',
                  'wrk.headers["Content-Type"] = "application/octet-stream"']  # fmt: skip
    elif name == "hello-close":
        lines.append('wrk.headers["Connection"] = "close"')
    return "\n".join(lines) + _LUA_DONE


def parse_wrk(stdout: str) -> dict[str, Any]:
    line = next((x for x in stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise ServerFailed(f"wrk printed no result:\n{stdout[-600:]}")
    requests, duration_us, connect, read, write, status, timeout, p50, p99 = map(
        int, line.split()[1:]
    )
    got = next((x for x in stdout.splitlines() if x.startswith("BYTES ")), None)
    received = {} if got is None else {"bytes_s": int(got.split()[1]) / (duration_us / 1e6)}
    return received | {
        "requests": requests, "rps": requests / (duration_us / 1e6),
        "p50_ms": p50 / 1000, "p99_ms": p99 / 1000,
        "errors": connect + read + write + status + timeout, "non_2xx": status,
    }  # fmt: skip


def timed(argv: list[str], out: Path, cpu: int | None, watch: TreeWatch,
          server_cpu: int | None) -> tuple[int, str, dict[str, float]]:  # fmt: skip
    """Run a load generator pinned to `cpu`, its output in `out`: (exit status, output, the
    server tree's CPU seconds, the generator's CPU%, others' CPU% and the time stolen from
    either core (steal_pct) over the same window)."""
    with out.open("w") as stdout:
        cpu0, busy0, t0 = watch.cpu_seconds(), busy_seconds(), time.monotonic()
        steal = StealWatch(cpu, server_cpu)
        proc = subprocess.Popen(pinned(argv, cpu), stdout=stdout, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed, cpu1, busy1 = time.monotonic() - t0, watch.cpu_seconds(), busy_seconds()
        stolen = steal.percent()
        proc.returncode = os.waitstatus_to_exitcode(status)
    client = usage.ru_utime + usage.ru_stime
    return proc.returncode, out.read_text(errors="replace"), {
        "server_cpu_s": cpu1 - cpu0, "client_cpu_pct": 100 * client / elapsed,
        "other_cpu_pct": max(0.0, 100 * (busy1 - busy0 - client - (cpu1 - cpu0)) / elapsed),
        "steal_pct": stolen,
    }  # fmt: skip


def run_wrk(name: str, port: int, script: Path, seconds: int, connections: int,
            cpu: int | None, watch: TreeWatch,
            server_cpu: int | None = None) -> dict[str, Any]:  # fmt: skip
    """One wrk run, with what timed() measures around it."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
            "-s", str(script), f"http://{HOST}:{port}{SCENARIOS[name].path}"]  # fmt: skip
    code, text, meters = timed(argv, script.with_suffix(".out"), cpu, watch, server_cpu)
    if code != 0:
        raise ServerFailed(f"wrk exited with {code}:\n{text[-600:]}")
    return dict(parse_wrk(text), **meters)


def run_ws(port: int, python: str, warmup: float, seconds: float, connections: int,
           cpu: int | None, watch: TreeWatch,
           server_cpu: int | None = None) -> dict[str, Any]:  # fmt: skip
    """ws_client.py under `python`; the server's CPU is sampled at its window markers."""
    argv = [python, str(WS_CLIENT), "--port", str(port), "--connections", str(connections),
            "--size", str(WS_SIZE), "--warmup", str(warmup),
            "--duration", str(seconds)]  # fmt: skip
    proc = subprocess.Popen(pinned(argv, cpu), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    marks: list[tuple[float, float, float]] = []
    result: dict[str, Any] | None = None
    steal: StealWatch | None = None
    stolen = 0.0
    try:
        for line in proc.stdout:
            if line.startswith(("MEASURE_START", "MEASURE_END")):
                marks.append((watch.cpu_seconds(), busy_seconds(), time.monotonic()))
                if steal is None:
                    steal = StealWatch(cpu, server_cpu)
                else:
                    stolen = steal.percent()
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0 or result is None or len(marks) != 2:
        err = proc.stderr.read()[-600:]
        raise ServerFailed(f"WebSocket client failed ({proc.returncode}):\n{err}")
    (cpu0, busy0, t0), (cpu1, busy1, t1) = marks
    client = result["client_cpu_pct"] * (t1 - t0) / 100
    result["server_cpu_s"] = cpu1 - cpu0
    result["other_cpu_pct"] = max(0.0, 100 * (busy1 - busy0 - client - (cpu1 - cpu0)) / (t1 - t0))
    result["steal_pct"] = stolen
    return result
