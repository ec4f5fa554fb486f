"""A real ``redis-server`` of the tests' own, on a free port (never the one on 6379).

``redis_server`` is shared by the session; ``own_redis`` is a test's own, for tests that stop and
restart it (``stop()`` / ``start()`` keep the port). ``redis_cluster`` is a Redis Cluster of six
nodes shared by the session (``redis_setups``). ``logs`` captures every log record, and fails the
test if one shows the setups' password. A missing ``redis-server`` fails the tests:
``./scripts/test`` installs it.
"""

from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.process import free_port
from tests.helpers import UNIT

if TYPE_CHECKING:
    from tests.broadcast.redis_setups import Cluster
    from tests.broadcast.test_redis_groups import LogWatch


class RedisServer:
    """``redis-server [CONFIG] --port PORT --save "" --appendonly no [ARGS]``, started and stopped
    at will; started once its log says ``ready`` (a Sentinel's says ``+monitor master``)."""

    def __init__(
        self,
        port: int | None = None,
        bind: tuple[str, ...] = ("127.0.0.1",),
        args: Sequence[str] = (),
        config: Path | None = None,
        ready: str = "Ready to accept connections",
    ) -> None:
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
        self.args = tuple(args)
        self.config = config
        self.ready = ready
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None, "already running"
        command = [self.executable, *([str(self.config)] if self.config else []),
                   "--port", str(self.port), "--save", "", "--appendonly", "no",
                   "--bind", *self.bind, "--protected-mode", "no", *self.args]  # fmt: skip
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
            if self.ready in line:
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

    def kill(self) -> None:
        """``kill -9``: no shutdown, nothing said to its peers."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()


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


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Six nodes (three masters, a replica each), a password, plain and TLS ports."""
    from tests.broadcast.redis_setups import Cluster  # (which imports this module)

    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[LogWatch]:
    """Every log record (every logger, DEBUG up) in ``caplog``, and ``uvicorn.error``'s in a
    watch to wait on; afterwards, none of them may show the setups' password."""
    from tests.broadcast.redis_setups import PASSWORD, QUOTED
    from tests.broadcast.test_redis_groups import LogWatch

    caplog.set_level(logging.DEBUG)
    watch = LogWatch()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(watch)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
    for secret in (PASSWORD, QUOTED, "s3cr3t"):
        assert secret not in caplog.text
