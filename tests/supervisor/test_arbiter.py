"""The master's loop, one turn at a time, on a real child process: a worker that exits because
the signal that stops the master reached it too (systemd sends SIGTERM to the whole control
group) is a worker that stopped, not one that died, whatever order the master learns of both."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from uvicorn.config import Config
from uvicorn.supervisor.arbiter import Arbiter
from uvicorn.supervisor.process import State, Worker


@pytest.fixture
def arbiter() -> Iterator[Arbiter]:
    arbiter = Arbiter(Config(app="tests.e2e.supervisor_apps:whoami"), lambda *args: None)
    yield arbiter
    arbiter.waker.close()


def exited_worker(arbiter: Arbiter) -> Worker:
    """A serving worker that has just exited with status 0 (not yet reaped)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    worker = Worker(pid, -1, 1, time.monotonic())
    worker.state = State.SERVING
    arbiter.workers[pid] = worker
    arbiter.waker.children_exited = True
    return worker


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "uvicorn.supervisor"]


def test_the_exit_and_the_term_in_the_same_turn(
    arbiter: Arbiter, caplog: pytest.LogCaptureFixture
) -> None:
    worker = exited_worker(arbiter)
    arbiter.waker._signals.append(signal.SIGTERM)
    with caplog.at_level(logging.INFO, "uvicorn.supervisor"):
        assert arbiter._step(time.monotonic())  # stopped: no worker left
    assert (logging.INFO, f"Worker [{worker.pid}] stopped (it exited with code 0)") in lines(
        caplog
    )
    assert not [line for line in lines(caplog) if line[0] >= logging.WARNING]


def test_the_term_while_the_exit_is_being_reaped(
    arbiter: Arbiter, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = exited_worker(arbiter)
    waitpid = os.waitpid

    def term_arrives_meanwhile(pid: int, options: int) -> Any:
        arbiter.waker._signals.append(signal.SIGTERM)  # what its handler does
        return waitpid(pid, options)

    monkeypatch.setattr(os, "waitpid", term_arrives_meanwhile)
    with caplog.at_level(logging.INFO, "uvicorn.supervisor"):
        arbiter._step(time.monotonic())
    assert (logging.INFO, f"Worker [{worker.pid}] stopped (it exited with code 0)") in lines(
        caplog
    )
    assert not [line for line in lines(caplog) if line[0] >= logging.WARNING]
    assert arbiter.stopping


def test_an_exit_nobody_asked_for_is_still_an_error(
    arbiter: Arbiter, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(arbiter, "_manage", lambda now: None)  # no replacement forked here
    worker = exited_worker(arbiter)
    with caplog.at_level(logging.INFO, "uvicorn.supervisor"):
        assert not arbiter._step(time.monotonic())
    assert (logging.ERROR, f"Worker [{worker.pid}] exited with code 0") in lines(caplog)
