"""Real HTTP/2 clients for the end-to-end tests: curl (built with nghttp2) and h2load (Debian's
nghttp2-client), run as the command line would run them, and h2load's summary parsed.

A missing tool fails the test with how to install it: scripts/test installs both."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import UNIT

INSTALL = {
    "curl": "apt-get install -y curl (built with nghttp2), as scripts/test does",
    "h2load": "apt-get install -y nghttp2-client, as scripts/test does",
    "openssl": "apt-get install -y openssl",
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: {INSTALL[name]}")
    return path


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    """curl, silent but for its errors; -w '%{http_version}' etc. go to stdout after the body."""
    return subprocess.run(
        [tool("curl"), "-sS", "--max-time", str(10 * UNIT), *args],
        capture_output=True, text=True, timeout=20 * UNIT,
    )  # fmt: skip


def self_signed(directory: Path) -> list[str]:
    """A certificate for 127.0.0.1 and its key; the --ssl-* flags that serve them."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return ["--ssl-keyfile", str(key), "--ssl-certfile", str(cert)]


_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_STATUSES = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_TRAFFIC = re.compile(r"traffic: .*\((\d+)\) total, .*\((\d+)\) headers .*\((\d+)\) data")
_RATE = re.compile(r"finished in .*?, ([\d.]+) req/s")


@dataclass
class Summary:
    """What h2load's summary says (its counters are per request)."""

    total: int
    started: int
    done: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    status_2xx: int
    status_other: int
    data: int  # response body bytes
    rate: float  # requests a second
    output: str

    @property
    def clean(self) -> bool:
        """Every request sent, answered 2xx, nothing failed."""
        counts = (self.started, self.done, self.succeeded, self.status_2xx)
        failures = (self.failed, self.errored, self.timeout, self.status_other)
        return all(n == self.total for n in counts) and not any(failures)


def h2load(url: str, *args: str, timeout: float = 30) -> Summary:
    """Run h2load to completion; its summary (the test fails if there is none)."""
    result = subprocess.run(
        [tool("h2load"), *args, url], capture_output=True, text=True, timeout=timeout * UNIT
    )
    output = result.stdout + result.stderr
    requests, statuses = _REQUESTS.search(output), _STATUSES.search(output)
    traffic, rate = _TRAFFIC.search(output), _RATE.search(output)
    if requests is None or statuses is None or traffic is None or rate is None:
        raise AssertionError(f"h2load printed no summary (exit {result.returncode}):\n{output}")
    codes = [int(n) for n in statuses.groups()]
    return Summary(*(int(n) for n in requests.groups()), codes[0], sum(codes[1:]),
                   int(traffic.group(3)), float(rate.group(1)), output)  # fmt: skip


class H2LoadLoop:
    """h2load runs back to back in a thread, until stopped. Each run gives each of its ``c``
    connections exactly ``m`` requests, sent at once as it opens (``-n c*m``): see
    test_http2_supervisor.py for why h2load needs that to be a correct client across a
    GOAWAY."""

    def __init__(self, url: str, connections: int = 4, streams: int = 25) -> None:
        self.args = ["-c", str(connections), "-m", str(streams), "-n", str(connections * streams)]
        self.url = url
        self.runs: list[Summary] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                summary = h2load(self.url, *self.args)
                with self._changed:
                    self.runs.append(summary)
                    self._changed.notify_all()
        except BaseException as exc:  # reported by wait_runs() and stop()
            with self._changed:
                self.error = exc
                self._changed.notify_all()

    def wait_runs(self, count: int, timeout: float = 15) -> None:
        """Wait until ``count`` runs more have finished."""
        with self._changed:
            target = len(self.runs) + count
            if not self._changed.wait_for(
                lambda: len(self.runs) >= target or self.error is not None, timeout * UNIT
            ):
                raise AssertionError(f"h2load: {len(self.runs)} runs, {target} expected")
            if self.error is not None:
                raise AssertionError(f"h2load failed: {self.error!r}")

    def stop(self) -> list[Summary]:
        self._stop.set()
        self._thread.join(30 * UNIT)
        if self.error is not None:
            raise AssertionError(f"h2load failed: {self.error!r}")
        return self.runs
