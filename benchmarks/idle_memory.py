"""Memory per idle connection (issue 16): a worker's RSS growth per idle keep-alive connection
and per idle WebSocket, ours (both interfaces) against the published uvicorn.

    python3 benchmarks/idle_memory.py [--connections 10000] [--kinds keepalive,websocket]
    python3 benchmarks/idle_memory.py --tree [--workers 1,4]

``--tree``: the idle processes instead, serving benchmarks/apps/hello.py after one request
each: RSS and PSS (/proc/PID/smaps_rollup) of ours' master and workers, and
of the published uvicorn's one process.

Each server serves benchmarks/apps/ws_echo.py with one worker (ours: the worker process under
its master; the published uvicorn: its one process, `--http httptools --ws websockets`, from the
venv benchmarks/run.py makes: /tmp/uvicorn-bench/published, never the project's .venv). Timeouts
and pings are set far off, so that nothing closes the idle connections while they are counted.
The client opens the connections one at a time, each completed before the next: keep-alive,
one request answered (`200 ok`) then idle; WebSocket, the handshake answered (`101`), no
extension offered (so no compression; websocket-deflate: permessage-deflate offered as browsers
offer it, and negotiated), then idle. The worker's RSS is read before (after a
warm-up of the same kind, closed) and after, once it stops moving; the figure is the growth
divided by the number of connections.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
PUBLISHED = Path("/tmp/uvicorn-bench/published")
HOST = "127.0.0.1"
WARMUP = 200
FAR = "86400"  # seconds: no timeout or ping during a run

KEEPALIVE = b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n"


# What every browser offers (RFC 7692 section 7.1.2.2: it can take a smaller server window).
DEFLATE = b"sec-websocket-extensions: permessage-deflate; client_max_window_bits\r\n"


def websocket_request(deflate: bool = False) -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (b"GET /ws HTTP/1.1\r\nhost: bench\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            b"sec-websocket-key: %s\r\nsec-websocket-version: 13\r\n%s\r\n"
            % (key, DEFLATE if deflate else b""))  # fmt: skip


def servers(ours: str, which: list[str]) -> dict[str, tuple[list[str], Path]]:
    """name: (command line with "{port}", working directory)."""
    common = ["--host", HOST, "--port", "{port}", "--no-access-log", "--log-level", "warning",
              "--timeout-keep-alive", FAR, "--ws-ping-interval", FAR, "--ws-ping-timeout", FAR,
              "--backlog", "4096"]  # fmt: skip
    every = {
        "ours-asgi": ([ours, "-m", "uvicorn", "apps.ws_echo:app", "--app-dir", "benchmarks",
                       "--interface", "asgi3", "--workers", "1", *common], CHECKOUT),
        "ours-messaging": ([ours, "-m", "uvicorn", "apps.ws_echo:mi", "--app-dir", "benchmarks",
                            "--interface", "messaging", "--workers", "1", *common], CHECKOUT),
        # From benchmarks/: in the checkout, `python -m uvicorn` would find ours first.
        "published": ([str(PUBLISHED / "bin" / "python"), "-m", "uvicorn", "apps.ws_echo:app",
                       "--loop", "uvloop", "--http", "httptools", "--ws", "websockets",
                       *common], HERE),
    }  # fmt: skip
    return {name: every[name] for name in which}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        with contextlib.suppress(FileNotFoundError):
            todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return found


def sockets_of(pid: int) -> int:
    count = 0
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(FileNotFoundError):
                count += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
    except FileNotFoundError:
        return 0
    return count


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def settled_rss(pid: int) -> int:
    """The RSS once two reads 0.5 s apart agree (within 64 KiB), at most 10 s."""
    last = rss_kib(pid)
    for _ in range(20):
        time.sleep(0.5)
        now = rss_kib(pid)
        if abs(now - last) <= 64:
            return now
        last = now
    return last


def connect(port: int, kind: str) -> socket.socket:
    """One connection, its request answered, left open."""
    sock = socket.create_connection((HOST, port), timeout=30)
    deflate = kind == "websocket-deflate"
    sock.sendall(KEEPALIVE if kind == "keepalive" else websocket_request(deflate))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"closed before answering: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status = head.split(b" ", 2)[1]
    if kind == "keepalive":
        if status != b"200":
            raise RuntimeError(f"not 200: {head!r}")
        while len(body) < 2:  # b"ok", content-length: 2
            body += sock.recv(4096)
    elif status != b"101" or (b"permessage-deflate" in head.lower()) is not deflate:
        raise RuntimeError(f"not a 101 {'with' if deflate else 'without'} deflate: {head!r}")
    return sock


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            connect(port, "keepalive").close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server's process group: TERM, then KILL after 30 s."""
    os.killpg(proc.pid, 15)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def measure(name: str, argv: list[str], cwd: Path, kind: str, count: int) -> dict[str, float]:
    port = free_port()
    command = [a.replace("{port}", str(port)) for a in argv]
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    held: list[socket.socket] = []
    try:
        wait_ready(port, proc)
        warm = [connect(port, kind) for _ in range(WARMUP)]
        # The worker: the process of the server's tree that holds the connections.
        worker = max(tree(proc.pid), key=sockets_of)
        for sock in warm:
            sock.close()
        before = settled_rss(worker)
        started = time.monotonic()
        for _ in range(count):
            held.append(connect(port, kind))
        took = time.monotonic() - started
        after = settled_rss(worker)
        return {"before_kib": before, "after_kib": after, "seconds": took,
                "per_connection_kib": (after - before) / count}  # fmt: skip
    finally:
        for sock in held:
            sock.close()
        stop(proc)


def rollup(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return fields["Rss"], fields["Pss"]


def role(pid: int, root: int) -> str:
    title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    if pid == root:
        return "master" if "master" in title else "process"
    return "worker"


def tree_figures(name: str, argv: list[str], cwd: Path) -> None:
    """The idle process tree of one server: each process's RSS and PSS, and the sums."""
    port = free_port()
    command = [a.replace("{port}", str(port)) for a in argv]
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        wait_ready(port, proc)
        time.sleep(1.0)  # every worker up (each answers its first request below)
        for _ in range(8):
            connect(port, "keepalive").close()
        pids = tree(proc.pid)
        settled_rss(pids[-1])
        rows = [(role(pid, proc.pid), *rollup(pid)) for pid in pids]
        for kind in ("process", "master", "worker"):
            found = [r for r in rows if r[0] == kind]
            if found:
                rss = ", ".join(f"{r[1] / 1024:.1f}" for r in found)
                pss = ", ".join(f"{r[2] / 1024:.1f}" for r in found)
                print(f"{name:24} {kind:9} RSS {rss} MiB; PSS {pss} MiB")
        print(f"{name:24} {'tree':9} RSS {sum(r[1] for r in rows) / 1024:.1f} MiB; "
              f"PSS {sum(r[2] for r in rows) / 1024:.1f} MiB", flush=True)  # fmt: skip
    finally:
        stop(proc)


def trees(ours: str, workers: list[str]) -> None:
    common = ["--host", HOST, "--port", "{port}", "--no-access-log", "--log-level", "warning"]
    for count in workers:
        argv = [ours, "-m", "uvicorn", "apps.hello:app", "--app-dir", "benchmarks",
                "--workers", count, *common]  # fmt: skip
        tree_figures(f"ours, --workers {count}", argv, CHECKOUT)
    if (PUBLISHED / "bin" / "python").exists():
        argv = [str(PUBLISHED / "bin" / "python"), "-m", "uvicorn", "apps.hello:app",
                "--loop", "uvloop", "--http", "httptools", *common]  # fmt: skip
        tree_figures("published", argv, HERE)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--kinds", default="keepalive,websocket",
                        help="of keepalive, websocket, websocket-deflate (permessage-deflate "
                             "offered as browsers do)")  # fmt: skip
    parser.add_argument("--servers", default="ours-asgi,ours-messaging,published")
    parser.add_argument("--ours-python", default=str(CHECKOUT / ".venv" / "bin" / "python"))
    parser.add_argument("--tree", action="store_true", help="the idle processes instead")
    parser.add_argument("--workers", default="1,4", help="(--tree) ours' worker counts")
    args = parser.parse_args()
    if args.tree:
        print(f"# {cpu_model()}, {os.cpu_count()} CPUs; idle, hello app")
        trees(args.ours_python, args.workers.split(","))
        return 0
    # The client holds every connection, the server as many (it inherits this limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + WARMUP + 100
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            sys.exit(f"RLIMIT_NOFILE's hard limit {hard} is below the {need} needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    which = args.servers.split(",")
    if "published" in which and not (PUBLISHED / "bin" / "python").exists():
        sys.exit(f"no {PUBLISHED}: `python3 benchmarks/run.py` makes it")
    print(f"# {cpu_model()}, {os.cpu_count()} CPUs; {args.connections} idle connections each")
    print(f"{'server':16} {'kind':10} {'RSS before':>11} {'after':>9} {'KiB/conn':>9}")
    for kind in args.kinds.split(","):
        for name, (argv, cwd) in servers(args.ours_python, which).items():
            result = measure(name, argv, cwd, kind, args.connections)
            print(f"{name:16} {kind:10} {result['before_kib'] / 1024:8.1f} MiB "
                  f"{result['after_kib'] / 1024:6.1f} MiB "
                  f"{result['per_connection_kib']:9.2f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
