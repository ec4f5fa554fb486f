"""Exit statuses decoded for the log, and the worker pipe's messages."""

from __future__ import annotations

import os

import pytest

from uvicorn.supervisor.process import Worker, describe_exit


def status_of(code: str) -> int:
    """A real waitpid status from a child that runs ``code``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            exec(code)
        finally:
            os._exit(0)
    return os.waitpid(pid, 0)[1]


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("os._exit(0)", "exited with code 0"),
        ("os._exit(3)", "exited with code 3"),
        ("os.kill(os.getpid(), signal.SIGKILL)", "was killed by SIGKILL (out of memory?)"),
        ("os.kill(os.getpid(), signal.SIGSEGV)", "was killed by SIGSEGV (a crash in C code?)"),
        ("os.kill(os.getpid(), signal.SIGTERM)", "was killed by SIGTERM"),
    ],
)
def test_describe_exit(code: str, text: str) -> None:
    # Keep a crashing child from writing a faulthandler dump or a core into the test output.
    prelude = "import faulthandler, signal; faulthandler.disable(); "
    assert describe_exit(status_of(prelude + code)) == text


def test_a_sigkill_the_master_sent_is_not_blamed_on_memory() -> None:
    status = status_of("import signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert describe_exit(status, killed_by_master=True) == "was killed by SIGKILL"


def test_messages_are_split_on_newlines_across_reads() -> None:
    record = Worker(1, -1, 1, 0.0)
    assert record.feed(b"B\nR") == ["B"]
    assert record.feed(b"\nEcould not import \xc3\xa9\nB") == ["R", "Ecould not import é"]
    assert record.feed(b"\n") == ["B"]
