"""--reload's decisions without a server: a broken edit leaves the last good code serving, or,
when there is none, new workers serve a page naming the error; --reload-delay."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import UNIT
from uvicorn.config import Config
from uvicorn.supervisor.arbiter import Arbiter
from uvicorn.supervisor.dev_reload import DevReload, error_page
from uvicorn.supervisor.process import State, Worker
from uvicorn.supervisor.reloader import ChangeFilter, Reloader

ERROR = "error while importing 'versioned:app': SyntaxError('invalid syntax')"


@pytest.fixture
def arbiter(tmp_path: Path) -> Iterator[Arbiter]:
    config = Config(app="versioned:app", app_dir=str(tmp_path), reload=True)
    arbiter = Arbiter(config, lambda *args: None)
    arbiter.reloader = DevReload(config, lambda: None)  # not started: no thread, no watching
    arbiter.served = True
    yield arbiter
    arbiter.waker.close()


def worker(generation: int, state: State = State.SERVING) -> Worker:
    record = Worker(os.getpid() + generation * 1000, -1, generation, time.monotonic())
    record.state = state
    return record


def failed_canary(arbiter: Arbiter) -> None:
    """A change started generation 2; its first worker fails to import the app."""
    arbiter.generation = 2
    arbiter.reloading = True
    canary = worker(2, State.BOOTING)
    canary.error = ERROR
    arbiter._exited(canary, 3 << 8, time.monotonic())  # exit status 3: BOOT_FAILED


def test_a_broken_edit_leaves_the_last_good_code_serving(arbiter: Arbiter) -> None:
    good = worker(1)
    arbiter.workers = {good.pid: good}
    failed_canary(arbiter)
    assert arbiter.generation == 1 and not arbiter.reloading
    assert arbiter.reloader is not None and arbiter.reloader.broken == ERROR
    # A worker started now (one that died) would only serve the error: the good one serves on.
    assert not arbiter.reloader.may_spawn(arbiter.workers.values())
    assert arbiter.restarts == dict.fromkeys(arbiter.restarts, 0)  # a reload is no restart
    # The next change tries the code on disk again.
    arbiter._new_generation("Changes detected in versioned.py")
    assert arbiter.generation == 2 and arbiter.reloading and arbiter.reloader.broken is None
    assert arbiter.reloader.worker_config() is arbiter.config


def test_without_good_code_new_workers_serve_the_error(arbiter: Arbiter) -> None:
    fallback = worker(1)
    fallback.fallback = True  # the error page of an earlier broken edit
    arbiter.workers = {fallback.pid: fallback}
    failed_canary(arbiter)
    reloader = arbiter.reloader
    assert reloader is not None
    assert arbiter.generation == 2  # new workers of generation 2 will replace the old page
    assert reloader.may_spawn(arbiter.workers.values())
    config = reloader.worker_config()
    assert callable(config.app) and not config.reload and config.interface == "asgi3"
    assert reloader.worker_config() is config  # made once per error


def call(app: Any, scope_type: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": scope_type, "path": "/"}, receive, send))
    return sent


def test_the_error_page() -> None:
    app = error_page(ERROR)
    start, body = call(app, "http")
    assert start["status"] == 500
    assert ERROR.encode() in body["body"]
    assert dict(start["headers"])[b"content-length"] == str(len(body["body"])).encode()
    assert call(app, "websocket") == [{"type": "websocket.close", "code": 1011}]


def batches(folder: Path, delay: float) -> list[list[str]]:
    """What a watching Reloader reports for two writes 0.25 s apart (an editor's, or two)."""
    woken = threading.Event()
    reloader = Reloader(ChangeFilter([str(folder)]), woken.set, delay)
    reloader.start()
    found: list[list[str]] = []
    try:
        (folder / "a.py").write_text("a = 1\n")
        time.sleep(0.25)  # the pace of the writes, not a wait for the reloader
        (folder / "b.py").write_text("b = 1\n")
        while sum(map(len, found)) < 2:
            assert woken.wait(5 * UNIT), found
            woken.clear()
            if batch := reloader.changes():
                found.append([Path(path).name for path in batch])
    finally:
        reloader.stop()
    return found


def test_reload_delay_is_the_time_between_checks(tmp_path: Path) -> None:
    """As in the published uvicorn: changes are acted on only once a check, --reload-delay
    after the last one, finds nothing new; so a burst of writes makes one restart."""
    assert Config(app="a:b").reload_delay == 0.25  # the published uvicorn's default
    (tmp_path / "slow").mkdir()
    (tmp_path / "fast").mkdir()
    assert batches(tmp_path / "slow", 0.5) == [["a.py", "b.py"]]
    assert batches(tmp_path / "fast", 0) == [["a.py"], ["b.py"]]  # 0: every 50 ms
