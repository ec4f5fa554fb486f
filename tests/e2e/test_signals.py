"""Signals that reach the master while it is blocked writing a log line (journald or a pipe that
stops reading for a moment) are all handled: a TERM is never dropped, and TTIN/TTOU are counted.

The master's output goes to a pipe of one page that the test stops reading, so that the master
blocks in write(). Each signal is sent only once the previous one was handled: the kernel has
delivered it and the master is back in its write() (Python runs a signal's handler when the
write returns EINTR, before writing again), so that neither the kernel nor CPython merges two
of them into one."""

from __future__ import annotations

import fcntl
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.e2e.process import REPO
from tests.helpers import UNIT

F_SETPIPE_SZ = 1031  # <linux/fcntl.h>
WRITE = {"x86_64": 1, "aarch64": 64}.get(platform.machine())  # the write() syscall's number


def syscall(pid: int) -> str:
    """What /proc says the process is doing: 'running', or the syscall it sleeps in."""
    with open(f"/proc/{pid}/syscall") as f:
        return f.read()


def pending(pid: int, signum: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        masks = [int(line.split()[1], 16) for line in f if line.startswith(("SigPnd", "ShdPnd"))]
    return any(mask & (1 << (signum - 1)) for mask in masks)


def blocked_writing(pid: int) -> bool:
    """Asleep in write() on its stderr (fd 2)."""
    return syscall(pid).startswith(f"{WRITE} 0x2 ")


def until(condition: object, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout * UNIT
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.001)


@pytest.mark.skipif(sys.platform != "linux" or WRITE is None, reason="reads Linux's /proc")
def test_signals_that_come_while_the_master_is_blocked_writing_are_never_lost() -> None:
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.e2e.supervisor_apps:whoami", "--port", "0",
         "--workers", "2"],
        cwd=REPO, stdout=write_fd, stderr=write_fd, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    os.close(write_fd)
    output = bytearray()
    reader = os.fdopen(read_fd, "rb", buffering=0)
    try:
        while output.count(b" serving (generation") < 2:
            output += reader.read(4096)
        # Fill the pipe: each SIGUSR1 makes the master log a line, until it blocks writing one.
        while not blocked_writing(proc.pid):
            os.kill(proc.pid, signal.SIGUSR1)
            until(lambda: not pending(proc.pid, signal.SIGUSR1) and syscall(proc.pid) != "running",
                  "the master handled SIGUSR1")  # fmt: skip
        sent = [signal.SIGTTIN] * 20 + [signal.SIGTTOU] * 20
        sent += [signal.SIGTERM] + [signal.SIGUSR1] * 8  # more than the 8 the master once kept
        for signum in sent:
            os.kill(proc.pid, signum)
            until(lambda s=signum: not pending(proc.pid, s) and blocked_writing(proc.pid),
                  f"the master handled {signal.Signals(signum).name} and writes again")  # fmt: skip
        drained = threading.Thread(target=lambda: output.extend(reader.read()), daemon=True)
        drained.start()
        assert proc.wait(timeout=30 * UNIT) == 0, "the TERM was lost"
        drained.join(10 * UNIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.close()
    text = output.decode()
    assert "Received SIGTTIN (20 times): 22 workers" in text, text
    assert "Received SIGTTOU (20 times): 2 workers" in text, text
    assert re.search(r"Received SIGTERM: shutting down gracefully", text), text
