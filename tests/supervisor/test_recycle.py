"""Replacing workers past --worker-max-rss or --worker-lifetime, one at a time, and the restart
counter by reason, without a server: worker records, a fake memory reader, real children."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator

import pytest

from uvicorn.config import Config
from uvicorn.supervisor import recycle
from uvicorn.supervisor.arbiter import Arbiter
from uvicorn.supervisor.process import State, Worker

MIB = 1024 * 1024
APP = "tests.e2e.supervisor_apps:whoami"


def serving(pid: int = 100, generation: int = 1, spawned_at: float = 0.0) -> Worker:
    worker = Worker(pid, -1, generation, spawned_at)
    worker.state = State.SERVING
    return worker


def test_rss_reads_this_process_and_sees_it_grow() -> None:
    before = recycle.rss(os.getpid())
    assert before is not None and before > MIB
    hoard = b"x" * (64 * MIB)  # written, so resident
    after = recycle.rss(os.getpid())
    assert after is not None and after - before > 60 * MIB
    del hoard
    assert recycle.rss(2**22 + 12345) is None  # no such process


def test_max_rss_is_due_past_the_limit_only(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config(app=APP, worker_max_rss=100)
    worker = serving(pid=4312)
    read: list[int] = []
    used = 100 * MIB

    def fake_rss(pid: int) -> int | None:
        read.append(pid)
        return used

    monkeypatch.setattr(recycle, "rss", fake_rss)
    assert recycle.due(worker, config, 1.0) is None
    used = 150 * MIB
    assert recycle.due(worker, config, 1.0) == (
        "max_rss",
        "Worker [4312] uses 150.0 MiB of memory (RSS), over --worker-max-rss 100 MiB: "
        "replacing it",
    )
    assert read == [4312, 4312]
    assert recycle.due(worker, Config(app=APP), 1.0) is None  # 0: never...
    assert read == [4312, 4312]  # ...and nothing read
    monkeypatch.setattr(recycle, "rss", lambda pid: None)  # gone meanwhile
    assert recycle.due(worker, config, 1.0) is None


def test_lifetime_with_jitter_is_due_at_each_workers_own_expiry() -> None:
    config = Config(app=APP, worker_lifetime=10, worker_lifetime_jitter=4)
    expiries = {recycle.expiry(config, 100.0) for _ in range(50)}
    assert all(e is not None and 110.0 <= e <= 114.0 for e in expiries)
    assert len(expiries) > 40  # each worker its own share
    assert recycle.expiry(Config(app=APP), 100.0) is None
    worker = serving(pid=7, spawned_at=100.0)
    worker.expires_at = 112.5
    assert recycle.due(worker, config, 112.4) is None
    reason, line = recycle.due(worker, config, 112.5) or ("", "")
    assert reason == "lifetime"
    assert line == (
        "Worker [7] is 12.5s old, past --worker-lifetime 10s (+2.5s of "
        "--worker-lifetime-jitter): replacing it"
    )


def test_one_worker_at_a_time() -> None:
    fat, other = serving(1), serving(2)
    config = Config(app=APP, worker_max_rss=100)
    assert recycle.turn_is_free([fat, other], 1)
    other.wants_retire = True  # being replaced: fat waits
    assert not recycle.turn_is_free([fat, other], 1)
    other.wants_retire = False
    booting = Worker(3, -1, 1, 0.0)  # a replacement still booting: fat waits
    assert not recycle.turn_is_free([fat, other, booting], 1)
    assert not recycle.turn_is_free([fat, other], 2)  # a rolling restart is under way
    retiring = serving(4)
    retiring.state = State.RETIRING  # replaced, draining: the turn is free again
    assert recycle.turn_is_free([fat, other, retiring], 1)

    def check(workers: list[Worker]) -> str | None:
        return recycle.check(fat, config, workers, 1, 5.0)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recycle, "rss", lambda pid: 200 * MIB)
        other.wants_retire = True
        assert check([fat, other]) is None and not fat.wants_retire  # waits its turn
        other.wants_retire = False
        assert check([fat, other]) == "max_rss" and fat.wants_retire


def child(how: str) -> tuple[int, int]:
    """A real child that ends ``how`` ("exit" 1 or "kill" by SIGKILL); (pid, waitpid status)."""
    pid = os.fork()
    if pid == 0:
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(1)
    return os.waitpid(pid, 0)


def test_death_reasons() -> None:
    pid, status = child("exit")
    assert recycle.death_reason(serving(pid), status) == "exit"
    pid, status = child("kill")
    assert recycle.death_reason(serving(pid), status) == "signal"
    aborted = serving(pid)
    aborted.aborted = True  # the watchdog's SIGABRT, then maybe its SIGKILL
    assert recycle.death_reason(aborted, status) == "timeout"


@pytest.fixture
def arbiter() -> Iterator[Arbiter]:
    arbiter = Arbiter(Config(app=APP, worker_max_rss=100), lambda *args: None)
    arbiter._manage = lambda now: None  # type: ignore[method-assign]  # no process forked
    yield arbiter
    arbiter.waker.close()


def test_the_arbiter_counts_restarts_by_reason(
    arbiter: Arbiter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert arbiter.restarts == dict.fromkeys(recycle.REASONS, 0)
    # Heartbeats and --max-requests over a worker's pipe.
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK)
    fat, lean = serving(os.getpid(), spawned_at=time.monotonic()), serving(os.getpid() + 1)
    fat.fd = read_fd
    arbiter.workers = {fat.pid: fat, lean.pid: lean}
    monkeypatch.setattr(recycle, "due", lambda w, c, now: ("max_rss", "over") if w is fat else None)
    os.write(write_fd, b"B\nB\n")  # two beats: counted once
    with caplog.at_level(logging.INFO, "uvicorn.supervisor"):
        arbiter._read(fat, time.monotonic())
    assert fat.wants_retire and arbiter.restarts["max_rss"] == 1
    os.write(write_fd, b"M\n")  # already being replaced: not counted again
    lean.fd, fat.fd = read_fd, -1
    arbiter._read(lean, time.monotonic())
    assert lean.wants_retire and arbiter.restarts["max_requests"] == 1
    os.close(read_fd)
    os.close(write_fd)
    # Deaths nobody asked for, reaped by the loop.
    arbiter.workers.clear()
    for how in ("exit", "kill"):
        pid, status = child(how)
        worker = serving(pid)
        arbiter._exited(worker, status, time.monotonic())
    counted = {**dict.fromkeys(recycle.REASONS, 0), "max_rss": 1, "max_requests": 1, "exit": 1,
               "signal": 1}  # fmt: skip
    assert arbiter.restarts == counted
    # One already marked for replacement that dies (OOM-killed, say) was counted when marked.
    pid, status = child("kill")
    marked = serving(pid)
    marked.wants_retire = True
    arbiter._exited(marked, status, time.monotonic())
    assert arbiter.restarts == counted
