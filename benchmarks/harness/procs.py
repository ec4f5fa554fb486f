"""Server processes: start one pinned to a core, watch its whole process tree through /proc (CPU
seconds, peak and idle RSS), stop it and every process it forked, by pid."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 2**20


class ServerFailed(Exception):
    """The server did not start, answered wrongly, or died: the run is reported as FAILED."""


def stat(pid: int) -> tuple[int, int, int, int] | None:
    """(ppid, start time, CPU ticks user+system, RSS pages) of a live pid, else None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return int(fields[1]), int(fields[19]), int(fields[11]) + int(fields[12]), int(fields[21])


def tree(root: int) -> dict[int, tuple[int, int, int, int]]:
    """stat() of root and of all its descendants."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := stat(int(entry))) is not None:
            stats[int(entry)] = info
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats and pid not in found:
            found[pid] = stats[pid]
            todo.extend(child for child, info in stats.items() if info[0] == pid)
    return found


class TreeWatch(threading.Thread):
    """Samples the tree every `interval` seconds while running: peak summed RSS, pids seen."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_rss = 0
        self.seen: dict[int, int] = {}  # pid -> start time, so that a reused pid is never killed
        self._done = threading.Event()
        self.sample()

    def sample(self) -> dict[int, tuple[int, int, int, int]]:
        procs = tree(self.root)
        self.seen.update((pid, info[1]) for pid, info in procs.items())
        self.peak_rss = max(self.peak_rss, sum(info[3] for info in procs.values()) * PAGE)
        return procs

    def cpu_seconds(self) -> float:
        return sum(info[2] for info in self.sample().values()) / TICKS

    def idle_rss(self) -> tuple[float, float]:
        """(RSS of one worker, RSS of the tree) in MiB; the worker is the largest leaf process."""
        procs = self.sample()
        parents = {info[0] for info in procs.values()}
        leaves = [info[3] for pid, info in procs.items() if pid not in parents] or [0]
        return max(leaves) * PAGE / MIB, sum(info[3] for info in procs.values()) * PAGE / MIB

    def master_rss(self) -> float:
        """RSS of the process started (taskset execs it), in MiB: the master of a server that
        forks its workers, the only process of one that does not."""
        info = stat(self.root)
        return 0.0 if info is None else info[3] * PAGE / MIB

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        if self.is_alive():
            self.join()


def busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine since boot, all cores (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def cpu_ticks(cpu: int | None) -> tuple[int, int]:
    """(steal, all) ticks of one core since boot, or of every core for None (/proc/stat). Steal
    is time the hypervisor gave this core's slot to another machine: on a shared host, it is
    what makes one run slower than the next for reasons neither server owns."""
    prefix = "cpu " if cpu is None else f"cpu{cpu} "
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(prefix):
            ticks = list(map(int, line.split()[1:9]))
            return ticks[7], sum(ticks)
    return 0, 0


class StealWatch:
    """The largest share of time stolen from the load generator's or the server's core over a
    window, in %; from the whole machine when nothing is pinned."""

    def __init__(self, client_cpu: int | None, server_cpu: int | None) -> None:
        self.cpus = [client_cpu, server_cpu] if client_cpu is not None else [None]
        self.start = [cpu_ticks(cpu) for cpu in self.cpus]

    def percent(self) -> float:
        shares = [0.0]
        for cpu, (steal0, all0) in zip(self.cpus, self.start, strict=True):
            steal1, all1 = cpu_ticks(cpu)
            if all1 > all0:
                shares.append(100 * (steal1 - steal0) / (all1 - all0))
        return max(shares)


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


def can_pin() -> bool:
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Server:
    """One server process (and its forks) on a free loopback port, its output in `log`."""

    def __init__(self, argv: list[str], cwd: Path, log: Path, cpu: int | None,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.log = log
        inherited = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env = inherited | (env or {}) | {"PYTHONUNBUFFERED": "1"}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                pinned(argv, cpu), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.watch: TreeWatch | None = None

    def fail(self, why: str) -> ServerFailed:
        return ServerFailed(f"{why}\n{tail(self.log)}".rstrip())

    def wait_ready(self, port: int, path: str, timeout: float = 30.0, h2_preface: bytes = b"",
                   tls: ssl.SSLContext | None = None) -> TreeWatch:  # fmt: skip
        """Poll until an HTTP status line comes back (or, given an HTTP/2 client preface to send,
        until the server answers it with anything or closes: the scenario's check then says
        whether that was HTTP/2); then start watching the tree. ``tls``: over TLS."""
        probe = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self.fail(f"exited with status {self.proc.returncode} before answering")
            try:
                with socket.create_connection((HOST, port), timeout=2) as raw, (
                    tls.wrap_socket(raw) if tls is not None else raw
                ) as sock:
                    sock.sendall(h2_preface or probe.encode())
                    answer = sock.recv(16)
                    if answer.startswith(b"HTTP/1.") or h2_preface:
                        self.watch = TreeWatch(self.proc.pid)
                        return self.watch
            except OSError:
                pass
            time.sleep(0.05)
        raise self.fail(f"not answering after {timeout:.0f} s")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the main process and wait; then SIGKILL whatever pid of its tree is left."""
        seen = dict(self.watch.seen) if self.watch else {}
        if self.watch:
            self.watch.stop()
        seen.update((pid, info[1]) for pid, info in tree(self.proc.pid).items())
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 3.0
        while True:
            left = [pid for pid, start in seen.items() if (stat(pid) or (0, -1))[1] == start]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
