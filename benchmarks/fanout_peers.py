"""What benchmarks/fanout.py runs: Redis (one server, or a 6-node Redis Cluster) and the chat
servers (ours, and the peers from virtual environments of their own under /tmp), each started on
a free port, watched through /proc, and stopped by pid."""

from __future__ import annotations

import atexit
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness.procs import PAGE, tree

REPO = Path(__file__).resolve().parents[1]
# The peers, each in a venv of its own: never the project's .venv, whose ``uvicorn`` is this one.
# broadcaster 0.3.1 receives nothing with redis-py 8 (its listener starts before its first
# subscription is recorded, finds none and stops for good): its venv keeps redis-py 7.
VENVS = {
    "broadcaster": (
        Path("/tmp/uvicorn-bench-baseline"),
        ["broadcaster[redis]", "redis<8", "starlette", "uvicorn[standard]"],
    ),
    "channels": (
        Path("/tmp/uvicorn-bench-channels"),
        ["channels", "channels_redis", "django", "uvicorn[standard]"],
    ),
}
APPS = {"broadcaster": "broadcaster_chat:app", "channels": "channels_chat:application"}
SHOWN = {  # the distributions whose versions the report prints
    "broadcaster": ["uvicorn", "starlette", "broadcaster", "redis"],
    "channels": ["uvicorn", "django", "channels", "channels_redis", "redis", "msgpack"],
}


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


def stop(process: subprocess.Popen[str], timeout: float = 30) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def raise_open_files_limit(needed: int) -> None:
    """For this process and what it starts (the client processes, the servers and Redis)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            print(f"warning: open files limited to {target} (need about {needed})")


# Redis.


class Redis:
    """A Redis of the benchmark's own: ``single`` (one redis-server) or ``cluster`` (6 nodes, 3
    masters and 3 replicas). ``url(server, instance)``: where that server's instance connects."""

    def __init__(self, kind: str) -> None:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise SystemExit("redis-server is missing: apt-get install redis-server")
        self.kind = kind
        self.processes: list[subprocess.Popen[str]] = []
        self.dir = tempfile.mkdtemp(prefix="fanout-redis-")
        self.masters: list[int] = []
        try:
            if kind == "single":
                self.ports = [self._node()]
            else:
                self.ports = [self._node(cluster=True) for _ in range(6)]
                self._create_cluster()
        except BaseException:
            self.stop()
            raise
        self.masters = self.masters or self.ports

    def _node(self, cluster: bool = False) -> int:
        port = free_port()
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", self.dir]  # fmt: skip
        if cluster:  # the bus port is its own free port: port + 10000 may not exist
            command += ["--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                        "--cluster-config-file", f"nodes-{port}.conf",
                        "--cluster-node-timeout", "5000"]  # fmt: skip
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.processes.append(process)
        Output(process).wait_for("Ready to accept connections", timeout=10)
        return port

    def _cli(self, port: int, *command: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(port), *command], check=True,
                              capture_output=True, text=True, timeout=30).stdout  # fmt: skip

    def _create_cluster(self) -> None:
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "1",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)  # fmt: skip
        deadline = time.monotonic() + 60
        while not all("cluster_state:ok" in self._cli(p, "cluster", "info") for p in self.ports):
            if time.monotonic() > deadline:
                raise SystemExit("the Redis Cluster did not reach cluster_state:ok within 60 s")
            time.sleep(0.2)
        for line in self._cli(self.ports[0], "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" in fields[2].split(","):
                self.masters.append(int(fields[1].split("@")[0].rpartition(":")[2]))
        self.masters.sort()

    def url(self, server: str, instance: int) -> str:
        if self.kind == "single":
            return f"redis://127.0.0.1:{self.ports[0]}"
        if server == "ours":
            return "redis-cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)
        # The peers have no Redis Cluster client: each instance talks to one master, on which
        # classic pub/sub reaches the subscribers of every node (over the cluster bus).
        return f"redis://127.0.0.1:{self.masters[instance % len(self.masters)]}"

    def stop(self) -> None:
        for process in self.processes:
            stop(process, 10)
        shutil.rmtree(self.dir, ignore_errors=True)


# The chat servers.


def peer_python(name: str) -> Path:
    path, packages = VENVS[name]
    python = path / "bin" / "python"
    if not python.exists():
        print(f"creating {path} with {' '.join(packages)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *packages], check=True)  # fmt: skip
    return python


def start_instance(
    name: str, port: int, workers: int, backlog: int, redis_url: str, layer: str, ours: Path
) -> subprocess.Popen[str]:
    """One instance of a chat server with ``workers`` workers on ``port``, serving once every
    worker says so; ours from the tree ``ours`` (this checkout, or a commit's: ours_tree())."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    # A server too busy (with a 10,000-member burst) to see a pong within --ws-ping-timeout (20 s
    # by default) closes the connection: every server gets 300 s, so that a phase measures
    # deliveries rather than keep-alive.
    common = ["--port", str(port), "--workers", str(workers), "--backlog", str(backlog),
              "--no-access-log", "--ws-ping-timeout", "300"]  # fmt: skip
    if name == "ours":
        command = [sys.executable, "-m", "uvicorn", "app:chat_server", *common]
        cwd = ours / "examples" / "broadcast_chat"
        if ours != REPO:  # before the .venv's editable install of this checkout
            env["PYTHONPATH"] = str(ours)
        env["UVICORN_REDIS_URL"] = redis_url
        ready = r"Worker \[\d+\] serving"
    else:  # the published uvicorn: nothing of this repository on the path
        command = [str(VENVS[name][0] / "bin" / "python"), "-m", "uvicorn", APPS[name], *common]
        cwd = REPO / "benchmarks"
        env["REDIS_URL"] = redis_url
        env["CHANNELS_LAYER"] = layer
        if name == "channels":  # no lifespan in a Channels app: each worker says it started
            command.append("--lifespan=off")
            ready = r"Started server process"
        else:
            ready = r"Application startup complete"
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        Output(process).wait_for(ready, count=workers, timeout=60)
    except BaseException:
        stop(process)
        raise
    return process


def workers_rss(roots: list[int]) -> int:
    """Bytes: the summed RSS of every process below each root (the workers, not the master)."""
    total = 0
    for root in roots:
        total += sum(info[3] for pid, info in tree(root).items() if pid != root) * PAGE
    return total


def ours_tree(commit: str | None, compiled: bool = True) -> tuple[Path, str]:
    """Where ours runs from, and what to call it: this checkout, or the package and the chat of
    a commit (git archive) in a directory of their own, so that uncommitted work in the checkout,
    or a commit landing mid-run, changes nothing measured. A commit's package is compiled by
    mypyc there (``compiled``), as ``pip install .`` builds it: what users run."""
    if commit is None:
        return REPO, "this checkout's working tree"
    git = ["git", "-C", str(REPO)]
    rev = subprocess.run([*git, "rev-parse", "--short", commit], check=True, capture_output=True,
                         text=True).stdout.strip()  # fmt: skip
    path = Path(tempfile.mkdtemp(prefix="fanout-ours-"))
    atexit.register(shutil.rmtree, path, True)
    build = ["setup.py", "setup.cfg", "pyproject.toml", "README.md"] if compiled else []
    archive = subprocess.run([*git, "archive", rev, "uvicorn", "examples/broadcast_chat", *build],
                             check=True, capture_output=True)  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(path)], input=archive.stdout, check=True)
    if not compiled:
        return path, f"commit {rev} (git archive of uvicorn/ and the chat), pure Python"
    # UVICORN_MYPYC=1: fail rather than measure a pure-Python build by mistake.
    env = {**os.environ, "UVICORN_MYPYC": "1"}
    subprocess.run([sys.executable, "setup.py", "--quiet", "build_ext", "--inplace"], cwd=path,
                   env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return path, f"commit {rev} (git archive of uvicorn/ and the chat), compiled by mypyc"


def versions(servers: list[str], ours: str) -> list[str]:
    """``ours``: what ours ran from (a commit, or this checkout)."""
    lines = []
    if "ours" in servers:
        lines.append(f"ours: {ours}, Python {sys.version.split()[0]}")
    for name in servers:
        if name in VENVS:
            script = ("import importlib.metadata as m, sys; print(', '.join(f'{d} {m.version(d)}' "
                      "for d in sys.argv[1:]))")  # fmt: skip
            python = str(VENVS[name][0] / "bin" / "python")  # -I, from /: not this checkout's
            found = subprocess.run([python, "-I", "-c", script, *SHOWN[name]], cwd="/",
                                   capture_output=True, text=True).stdout.strip()  # fmt: skip
            lines.append(f"{name}: {found}")
    server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    lines.append(server.stdout.split(" sha=")[0].strip())
    return lines
