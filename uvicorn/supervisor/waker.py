"""The master's one place of waiting: a selector over a wake-up pipe and the workers' pipes
(and --metrics's sockets: ``scrape.py``).

Signal handlers only enqueue the signal; ``signal.set_wakeup_fd`` writes to the pipe from C,
so a signal that arrives just before the master starts waiting still wakes it (a Python
handler alone would run only after the wait). A child's exit (SIGCHLD) and the reloader
thread wake it the same way.
"""

from __future__ import annotations

import collections
import contextlib
import os
import selectors
import signal
from collections.abc import Iterable
from typing import Any


class Waker:
    def __init__(self) -> None:
        # Signals received and not yet taken, in order. Nothing is ever dropped: a TERM that
        # came while the master was blocked (writing a log line to a pipe that stopped reading
        # for a moment) is still there after any number of other signals, and 20 TTIN then 20
        # TTOU count 20 each. (A list, because append() is one atomic step: a handler that
        # interrupted another one's read-modify-write of a counter would lose a count.)
        self._signals: list[int] = []
        self.children_exited = True  # set by SIGCHLD: the master reaps only then
        self._selector = selectors.DefaultSelector()
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._read_fd, selectors.EVENT_READ)
        self._saved: dict[int, Any] = {}
        self._saved_wakeup_fd = -1

    def install(self, signums: Iterable[int]) -> None:
        """Queue these signals; SIGCHLD sets ``children_exited``."""
        self._saved_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in signums:
            self._saved[signum] = signal.signal(signum, self._enqueue)
        self._saved[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, self._child_exited)

    def _enqueue(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)

    def take_signals(self) -> list[tuple[int, int]]:
        """The signals received since the last call, as (signal, times received), in the order
        each first came."""
        # A handler runs between two bytecodes of this thread: it appends to the list taken
        # (counted below) or to the new one, never to neither.
        taken = self._signals
        self._signals = []
        return list(collections.Counter(taken).items())

    def _child_exited(self, signum: int, frame: Any) -> None:
        self.children_exited = True

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # full: it is awake already
            os.write(self._write_fd, b"!")

    def register(self, fd: int, data: Any) -> None:
        self._selector.register(fd, selectors.EVENT_READ, data)

    def modify(self, fd: int, events: int, data: Any) -> None:
        self._selector.modify(fd, events, data)

    def unregister(self, fd: int) -> None:
        self._selector.unregister(fd)

    def wait(self, timeout: float | None) -> list[Any]:
        """Sleep until woken, a registered descriptor is readable, or ``timeout``; the
        ``data`` of the readable registered descriptors."""
        ready = []
        for key, _ in self._selector.select(timeout):
            if key.fd == self._read_fd:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._read_fd, 4096):
                        pass
            else:
                ready.append(key.data)
        return ready

    def close(self) -> None:
        """Restore the signal handling found (``uvicorn.run()`` may return into a program)."""
        if self._saved:
            signal.set_wakeup_fd(self._saved_wakeup_fd)
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved.clear()
        self._selector.close()
        os.close(self._read_fd)
        os.close(self._write_fd)
