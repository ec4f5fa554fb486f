"""Helpers for the supervisor's end-to-end tests: a load client, and process inspection."""

from __future__ import annotations

import collections
import http.client
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.process import CLIProcess
from tests.helpers import UNIT

SERVING = r"Worker \[(\d+)\] serving"


class Load:
    """Keep-alive clients in threads, each sending requests back to back; every response
    that is not a 200, and every connection error, is a failure."""

    def __init__(self, port: int, clients: int = 4, path: str = "/") -> None:
        self.port = port
        self.path = path
        self.ok = 0
        self.failures: list[str] = []
        self.bodies: collections.Counter[bytes] = collections.Counter()
        self.last: dict[int, bytes] = {}  # each client's latest body
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)
        ]
        for thread in self._threads:
            thread.start()

    def _client(self, index: int) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10 * UNIT)
                conn.request("GET", self.path)
                response = conn.getresponse()
                body = response.read()
                if response.will_close:  # the server said connection: close
                    conn.close()
                    conn = None
                with self._changed:
                    if response.status == 200:
                        self.ok += 1
                        self.bodies[body] += 1
                        self.last[index] = body
                    else:
                        self.failures.append(f"status {response.status}")
                    self._changed.notify_all()
            except (OSError, http.client.HTTPException) as exc:
                with self._changed:
                    self.failures.append(repr(exc))
                    self._changed.notify_all()
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def wait_until(self, predicate: Callable[[Load], bool], timeout: float = 10) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self), timeout * UNIT):
                raise AssertionError(f"load: condition not met; {self.ok} ok, {self.failures[:5]}")

    def more(self, count: int, timeout: float = 10) -> None:
        """Wait for ``count`` more successful responses."""
        target = self.ok + count
        self.wait_until(lambda load: load.ok >= target, timeout)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10 * UNIT)


def title(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def gone(pid: int) -> bool:
    """Exited (a zombie nobody reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_gone(pids: list[int], timeout: float = 10) -> None:
    """Processes that are not our children cannot be waited for: poll /proc, bounded."""
    deadline = time.monotonic() + timeout * UNIT
    while not all(gone(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise AssertionError(f"still running: {[p for p in pids if not gone(p)]}")
        time.sleep(0.02)


def serving_pids(server: CLIProcess, count: int, timeout: float = 10) -> list[int]:
    """The pids of the first ``count`` workers that reported serving."""
    return [int(m.group(1)) for m in server.wait_for_lines(SERVING, count, timeout)]


def env_without_bytecode() -> dict[str, str]:
    # Edited app files keep their size within one second: a stale .pyc would be taken.
    return {"PYTHONDONTWRITEBYTECODE": "1"}
