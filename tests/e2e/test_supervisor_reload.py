"""New code without downtime: SIGHUP, --max-requests, systemd's notifications, --reload (a
broken edit included: a request is always answered)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.process import CLIProcess, http_get
from tests.e2e.supervision import Load, serving_pids
from tests.helpers import UNIT

WHOAMI = "tests.e2e.supervisor_apps:whoami"
APP = """
async def app(message, channels):
    await channels["reply"].send({"status": 200, "content": b"%s"})
"""
# An edited file can keep its size and mtime second: a stale .pyc would be imported.
NO_PYC = {"PYTHONDONTWRITEBYTECODE": "1"}


def write_app(folder: Path, body: str) -> None:
    (folder / "versioned.py").write_text(APP % body)


def body(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_hup_under_load_serves_new_code_without_a_failed_request(
    tmp_path: Path, workers: int
) -> None:
    write_app(tmp_path, "v1")
    args = ["versioned:app", "--app-dir", str(tmp_path), "--port", "0", "--no-access-log"]
    with CLIProcess(*args, "--workers", str(workers), env=NO_PYC) as server:
        port = server.wait_ready()
        serving_pids(server, workers)
        load = Load(port)
        try:
            load.more(200)
            write_app(tmp_path, "v2 (new)")
            server.signal(signal.SIGHUP)
            server.wait_for_line("Reload complete: generation 2 serving")
            server.wait_for_lines(r"Worker \[\d+\] stopped \(it exited with code 0\)", workers)
            load.more(200)  # every client has had answers from the new workers since
        finally:
            load.stop()
        assert load.failures == []
        assert set(load.last.values()) == {b"v2 (new)"}
        assert body(http_get(port)) == b"v2 (new)"
        assert server.stop() == 0


def test_hup_with_broken_code_keeps_the_old_workers(tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    args = ["versioned:app", "--app-dir", str(tmp_path), "--port", "0", "--workers", "2"]
    with CLIProcess(*args, env=NO_PYC) as server:
        port = server.wait_ready()
        old = serving_pids(server, 2)
        (tmp_path / "versioned.py").write_text("async def app(:\n")
        server.signal(signal.SIGHUP)
        server.wait_for_line(r"Reload failed: .*SyntaxError")
        server.wait_for_line("Still serving generation 1")
        assert body(http_get(port)) == b"v1"
        assert server.stop() == 0
        output = server.output()
    assert output.count("Traceback") == 1  # one new worker tried, not two
    assert all(f"Worker [{pid}] stopped" in output for pid in old)


def test_max_requests_replaces_workers_without_a_failed_request() -> None:
    args = [WHOAMI, "--port", "0", "--workers", "2", "--no-access-log"]
    with CLIProcess(*args, "--max-requests", "300", "--max-requests-jitter", "50") as server:
        port = server.wait_ready()
        serving_pids(server, 2)
        load = Load(port)
        try:
            server.wait_for_lines(r"has served --max-requests: replacing it", 3)
            server.wait_for_lines(r"Worker \[\d+\] stopped \(it exited with code 0\)", 3)
            load.more(100)
        finally:
            load.stop()
        assert load.failures == []
        assert len(load.bodies) >= 4  # answers from the replacements too
        assert server.stop() == 0


def test_systemd_notifications_in_order(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(path))
        notify.settimeout(10 * UNIT)
        received: list[dict[str, str]] = []

        def until(key: str) -> dict[str, str]:
            while True:
                lines = notify.recv(4096).decode().splitlines()
                received.append(dict(line.split("=", 1) for line in lines))
                if key in received[-1]:
                    return received[-1]

        env = {"NOTIFY_SOCKET": str(path)}
        with CLIProcess(WHOAMI, "--port", "0", "--workers", "2", env=env) as server:
            ready = until("READY")
            assert ready["STATUS"].startswith("2 of 2 workers serving")
            assert len(server.wait_for_lines(r"Worker \[\d+\] serving", 2)) == 2
            server.signal(signal.SIGHUP)
            reloading = until("RELOADING")
            assert int(reloading["MONOTONIC_USEC"]) > 0
            assert until("READY")["STATUS"] == "2 of 2 workers serving, generation 2"
            server.signal(signal.SIGTERM)
            until("STOPPING")
            assert server.proc.wait(10 * UNIT) == 0
    events = [key for message in received for key in ("READY", "RELOADING", "STOPPING")
              if key in message]  # fmt: skip
    assert events == ["READY", "RELOADING", "READY", "STOPPING"]


def reloaded(server: CLIProcess, generation: int, old: list[int]) -> None:
    """Wait until ``generation`` serves (from then on, every new connection reaches the new
    code: the master says the reload is complete once no retiring worker accepts) and the
    workers it replaced have stopped."""
    server.wait_for_line(f"Reload complete: generation {generation} serving")
    for pid in old:
        server.wait_for_line(rf"Worker \[{pid}\] stopped")


def test_reload_on_edit_ignoring_the_venv(tmp_path: Path) -> None:
    project = tmp_path / "project"
    venv = project / ".venv" / "lib"
    venv.mkdir(parents=True)
    (project / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    write_app(project, "v1")
    args = ["versioned:app", "--app-dir", str(project), "--port", "0", "--reload"]
    with CLIProcess(*args, env=NO_PYC) as server:
        port = server.wait_ready()
        first = serving_pids(server, 1)
        assert body(http_get(port)) == b"v1"
        (venv / "installed.py").write_text("x = 1\n")  # ignored: no restart for it
        write_app(project, "v2")
        server.wait_for_line(r"Changes detected in .*versioned\.py")
        reloaded(server, 2, first)
        assert body(http_get(port)) == b"v2"
        assert server.stop() == 0
        output = server.output()
    changes = [line for line in output.splitlines() if "Changes detected" in line]
    assert len(changes) == 1 and ".venv" not in changes[0], changes


class Asking:
    """Requests, one after another on new connections, in a thread: each one's body and how
    long it took to be answered."""

    def __init__(self, port: int) -> None:
        self.answers: list[tuple[bytes, float]] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._ask, args=(port,), daemon=True)
        self._thread.start()

    def _ask(self, port: int) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                answer = body(http_get(port))
            except (OSError, IndexError) as exc:  # a timeout, a reset, a close: unanswered
                answer = repr(exc).encode()
            with self._changed:
                self.answers.append((answer, time.monotonic() - start))
                self._changed.notify_all()

    def more(self, count: int) -> None:
        with self._changed:
            target = len(self.answers) + count
            assert self._changed.wait_for(lambda: len(self.answers) >= target, 15 * UNIT)

    def stop(self) -> list[tuple[bytes, float]]:
        self._stop.set()
        self._thread.join(15 * UNIT)
        return self.answers


def test_reload_through_a_broken_edit_answers_every_request_with_the_last_good_code(
    tmp_path: Path,
) -> None:
    write_app(tmp_path, "v1")
    args = ["versioned:app", "--app-dir", str(tmp_path), "--port", "0", "--reload"]
    with CLIProcess(*args, "--no-access-log", env=NO_PYC) as server:
        port = server.wait_ready()
        first = serving_pids(server, 1)
        asking = Asking(port)
        try:
            (tmp_path / "versioned.py").write_text("async def app(:\n")
            edited = time.monotonic()
            server.wait_for_line(r"Reload failed: .*SyntaxError")
            reported = time.monotonic() - edited
            server.wait_for_line("Still serving generation 1; waiting for a file change")
            asking.more(3)  # and answered since
            write_app(tmp_path, "v2")
            fixed = time.monotonic()
            reloaded(server, 2, first)
            served = time.monotonic() - fixed
        finally:
            answers = asking.stop()
        assert {answer for answer, _ in answers} <= {b"v1", b"v2"}, answers
        slowest = max(took for _, took in answers)
        assert slowest < 1.0 * UNIT, answers
        assert body(http_get(port)) == b"v2"
        assert server.stop() == 0
    print(f"broken edit reported in {reported:.2f}s, fixed edit served in {served:.2f}s; "
          f"{len(answers)} requests meanwhile, the slowest answered in {slowest * 1000:.0f} ms")


def test_reload_from_a_broken_start_answers_with_the_error_then_the_fixed_code(
    tmp_path: Path,
) -> None:
    (tmp_path / "versioned.py").write_text("async def app(:\n")
    args = ["versioned:app", "--app-dir", str(tmp_path), "--port", "0", "--reload"]
    with CLIProcess(*args, env=NO_PYC) as server:
        port = server.wait_ready()  # the worker that serves the error
        page = server.wait_for_line(r"Worker \[(\d+)\] serving \(generation 1, the error page\)")
        response = http_get(port)
        assert response.startswith(b"HTTP/1.1 500 ")
        assert b"SyntaxError" in body(response) and b"--reload" in body(response)
        write_app(tmp_path, "v1")
        reloaded(server, 2, [int(page.group(1))])
        assert body(http_get(port)) == b"v1"
        assert server.stop() == 0
