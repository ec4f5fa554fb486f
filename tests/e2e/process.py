"""Start the real command line as a subprocess and talk to it."""

from __future__ import annotations

import contextlib
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.helpers import UNIT

REPO = Path(__file__).resolve().parents[2]
_RUNNING = re.compile(r"Uvicorn running on (https?)://(\[[^\]]+\]|[^:]+):(\d+)")


class CLIProcess:
    """``python -m uvicorn ARGS`` with its stderr collected line by line (``module``: another
    server, e.g. gunicorn, or None for ``python ARGS``; ``prefix``: a command that runs it, e.g.
    ``ip netns exec NAME``)."""

    def __init__(
        self,
        *args: str,
        cwd: Path = REPO,
        env: dict[str, str] | None = None,
        module: str | None = "uvicorn",
        prefix: tuple[str, ...] = (),
    ) -> None:
        environment = dict(os.environ, PYTHONUNBUFFERED="1")
        environment.update(env or {})
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, *(["-m", module] if module else []), *args],
            cwd=cwd,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # A group of its own: a test that fails with the process still running kills it
            # and every process it started (a demo's Redis and servers once outlived it).
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, pattern: str, timeout: float = 10) -> re.Match[str]:
        """The first output line (seen so far or to come) that matches ``pattern``."""
        regex = re.compile(pattern)
        for line in self.lines:
            match = regex.search(line)
            if match:
                return match
        deadline = time.monotonic() + timeout * UNIT
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout * UNIT}s; output:\n"
                    + "\n".join(self.lines)
                ) from None
            if line is None:
                self._queue.put(None)
                raise AssertionError(
                    f"process exited ({self.proc.wait()}) before printing {pattern!r}; output:\n"
                    + "\n".join(self.lines)
                )
            self.lines.append(line)
            match = regex.search(line)
            if match:
                return match

    def wait_for_lines(self, pattern: str, count: int, timeout: float = 10) -> list[re.Match[str]]:
        """The first ``count`` output lines (seen so far or to come) that match ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout * UNIT
        while True:
            found = [m for line in self.lines if (m := regex.search(line))]
            if len(found) >= count:
                return found[:count]
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(
                    f"fewer than {count} lines matching {pattern!r} within {timeout * UNIT}s; "
                    "output:\n" + "\n".join(self.lines)
                ) from None
            if line is None:
                self._queue.put(None)
                raise AssertionError(
                    f"process exited ({self.proc.wait()}) before {count} lines matching "
                    f"{pattern!r}; output:\n" + "\n".join(self.lines)
                )
            self.lines.append(line)

    def wait_ready(self) -> int:
        """The port of the first listener, once the server says it is running."""
        return int(self.wait_for_line(_RUNNING.pattern).group(3))

    def output(self) -> str:
        """Everything printed, once the process has exited."""
        self.proc.wait(timeout=10 * UNIT)
        while True:
            line = self._queue.get(timeout=5 * UNIT)
            if line is None:
                self._queue.put(None)
                return "\n".join(self.lines)
            self.lines.append(line)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10 * UNIT)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.wait()

    def __enter__(self) -> CLIProcess:
        return self

    def kill(self) -> None:
        """SIGKILL to its whole group: what it started too (a demo's Redis and servers, which
        would outlive it, and hold its output open)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def __exit__(self, *exc: object) -> None:
        self.kill()  # (also when it exited: what it started may not have)


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (for errors, --help, --version)."""
    return subprocess.run(
        [sys.executable, "-m", "uvicorn", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout * UNIT,
    )


def http_get(port: int, path: str = "/", host: str = "127.0.0.1", extra: bytes = b"") -> bytes:
    """One request on a new connection with ``Connection: close``; the raw response."""
    with socket.create_connection((host, port), timeout=10 * UNIT) as sock:
        sock.sendall(
            b"GET %s HTTP/1.1\r\nhost: test\r\nconnection: close\r\n%s\r\n" % (path.encode(), extra)
        )
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


_PORTS = random.SystemRandom()  # (pytest-randomly reseeds random's own for every test)


def free_port() -> int:
    """A free TCP port of 127.0.0.1 below the kernel's ephemeral range. A port from bind(0) is
    in that range, where outgoing connections take their local ports: a server that a test
    stops and starts again on its port (a Redis, a Sentinel) found it taken meanwhile by some
    client's connection ("Address already in use"), which cannot happen below the range."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
        ephemeral = int(ranges.read().split()[0])
    for _ in range(200):
        port = _PORTS.randrange(10000, ephemeral) if ephemeral > 11000 else 0
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError(f"no free port found below {ephemeral}")
