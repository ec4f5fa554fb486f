"""A real ``redis-server`` of the tests' own, on a free port (never the one on 6379).

``redis_server`` is shared by the session; ``own_redis`` is a test's own, for tests that stop and
restart it (``stop()`` / ``start()`` keep the port). A missing ``redis-server`` fails the tests:
``./scripts/test`` installs it.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator

import pytest

from tests.e2e.process import free_port
from tests.helpers import UNIT


class RedisServer:
    """``redis-server --port PORT --save "" --appendonly no``, started and stopped at will."""

    def __init__(self, port: int | None = None, bind: tuple[str, ...] = ("127.0.0.1",)) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail(
                "redis-server is missing: the broadcast tests need it "
                "(apt-get install redis-server; ./scripts/test installs it)",
                pytrace=False,
            )
        self.executable = executable
        self.port = port or free_port()
        self.bind = bind
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None, "already running"
        command = [self.executable, "--port", str(self.port), "--save", "", "--appendonly", "no",
                   "--bind", *self.bind, "--protected-mode", "no"]  # fmt: skip
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:  # wait on its log line, and keep its pipe from filling up
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        output = []
        while True:
            try:
                line = lines.get(timeout=10 * UNIT)
            except queue.Empty:
                line = None
            if line is None:
                process.kill()
                process.wait()
                pytest.fail(f"redis-server did not start on port {self.port}:\n{''.join(output)}")
            output.append(line)
            if "Ready to accept connections" in line:
                break
        self.process = process

    def stop(self) -> None:
        """Stop it (its clients see their connections closed); the port stays ours."""
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10 * UNIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def _running_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    yield from _running_redis()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis server for one test, which it may stop and restart on the same port."""
    yield from _running_redis()
