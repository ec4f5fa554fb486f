"""The worker template (``zygote.py``): it imports once and forks the workers, reports their
exits as the master's ``waitpid`` would, and once gone leaves the forking to the master."""

from __future__ import annotations

import os
import select
import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import UNIT
from uvicorn.config import Config
from uvicorn.supervisor.process import describe_exit
from uvicorn.supervisor.zygote import Zygote

PRELOADED: list[int] = []  # the pid that ran preload(): the template's


def preload() -> None:
    PRELOADED.append(os.getpid())


def entry(config: Config, sockets: list[socket.socket], link: Any) -> None:
    """A worker: says who preloaded its code and what it was given; given no sockets, waits for
    a signal."""
    link.failed(f"{PRELOADED} {os.getppid()} {[s.getsockname()[1] for s in sockets]}")
    if not sockets:
        signal.pause()


@pytest.fixture
def zygote() -> Iterator[Zygote]:
    template = Zygote(entry, preload, Config(app="tests.e2e.supervisor_apps:whoami"))
    template.start("uvicorn: worker template [test]", [])
    yield template
    template.close()


def read_message(fd: int) -> str:
    assert select.select([fd], [], [], 10 * UNIT)[0], "no message from the worker"
    return os.read(fd, 4096).decode()


def wait_exit(zygote: Zygote, pid: int) -> int:
    assert zygote.sock is not None
    while True:
        reaped, status = zygote.waitpid(pid)
        if reaped:
            return status
        assert select.select([zygote.sock], [], [], 10 * UNIT)[0], "no exit reported"
        zygote.handle(0.0)


def test_workers_are_forked_from_the_preloaded_template(zygote: Zygote) -> None:
    assert not PRELOADED  # not in this process: in the template
    exits: list[bool] = []
    zygote.on_exit = lambda: exits.append(True)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        worker = zygote.spawn([listener], generation=1, title="uvicorn: worker [test]",
                              max_requests=0)  # fmt: skip
        assert worker is not None
        assert worker.pid in zygote.children
        assert read_message(worker.fd) == f"E[{zygote.pid}] {zygote.pid} [{port}]\n"
    assert describe_exit(wait_exit(zygote, worker.pid)) == "exited with code 0"
    assert exits and worker.pid not in zygote.children
    worker.close()


def test_a_template_gone_leaves_the_forking_to_the_master(zygote: Zygote) -> None:
    worker = zygote.spawn([], generation=1, title="uvicorn: worker [test]", max_requests=0)
    assert worker is not None
    read_message(worker.fd)  # it runs
    os.kill(zygote.pid, signal.SIGKILL)
    assert wait_exit(zygote, worker.pid) == -1  # its status went with the template
    assert zygote.sock is None
    assert zygote.spawn([], generation=1, title="t", max_requests=0) is None
    # Its workers get SIGTERM (their parent-death signal): no orphans.
    assert read_message(worker.fd) == ""
    worker.close()
