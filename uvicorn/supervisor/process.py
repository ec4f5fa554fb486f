"""One worker process: fork it, set it up, and decode how it ended.

The master keeps a ``Worker`` record per child; the child gets a ``WorkerLink``, its end of a
pipe to the master that carries one-line messages: ``R`` (serving), ``B`` (heartbeat), ``M``
(retire me: --max-requests reached), ``P<json>`` (--metrics: the worker's counts) and
``E<text>`` (the error that stopped it booting).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import faulthandler
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from uvicorn.config import Config
from uvicorn.exceptions import UvicornError
from uvicorn.logging import log_stream, reopen_log_files

logger = logging.getLogger("uvicorn.supervisor")

# Exit status of a worker that failed before serving (gunicorn's WORKER_BOOT_ERROR).
BOOT_FAILED = 3
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

WorkerEntry = Callable[[Config, list[socket.socket], "WorkerLink"], None]


class State(enum.Enum):
    BOOTING = "booting"  # forked, not serving yet
    SERVING = "serving"
    RETIRING = "retiring"  # told to drain (HUP, TTOU, --reload, a limit: recycle.py)
    STOPPING = "stopping"  # the master is shutting down


def describe_exit(status: int, killed_by_master: bool = False) -> str:
    """How a child ended, from ``waitpid``'s status: "exited with code 1", "was killed by
    SIGKILL (out of memory?)"."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    text = f"was killed by {name}"
    if -code == signal.SIGKILL and not killed_by_master:
        # Nobody here sent it: on Linux that is most often the kernel's OOM killer.
        text += " (out of memory?)"
    elif -code == signal.SIGSEGV:
        text += " (a crash in C code?)"
    return text


class Worker:
    """The master's record of one child."""

    def __init__(self, pid: int, fd: int, generation: int, now: float) -> None:
        self.pid = pid
        self.fd = fd  # read end of the child's pipe; -1 once closed
        self.generation = generation
        self.state = State.BOOTING
        self.spawned_at = now
        self.last_beat = now
        # To be replaced (--max-requests, --worker-max-rss, --worker-lifetime): it serves on
        # until its replacement does.
        self.wants_retire = False
        self.expires_at: float | None = None  # past --worker-lifetime (and its jitter) then
        self.fallback = False  # serves the error page of a broken --reload edit, not the app
        # Until it says it closed its listeners ("D"): it may accept a new connection.
        self.accepting = True
        self.error = ""  # what stopped it booting, as it reported
        self.aborted = False  # sent SIGABRT for a missed heartbeat
        self.kill_at: float | None = None  # SIGKILL if still alive then
        self.killed = False  # the master sent SIGKILL
        self.metrics: dict[str, Any] = {}  # its last --metrics report (supervisor/metrics.py)
        self._buffer = b""

    def feed(self, data: bytes) -> list[str]:
        """The complete messages in ``data`` (and what was left over before)."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # exiting anyway: the reaper sees it
            os.kill(self.pid, signum)
        if signum == signal.SIGKILL:
            self.killed = True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class WorkerLink:
    """The worker's end: what ``uvicorn.worker`` calls to talk to its master."""

    def __init__(self, fd: int, master_pid: int, config: Config, max_requests: int) -> None:
        self._fd = fd
        self.master_pid = master_pid
        self.heartbeat_interval = min(1.0, config.timeout / 4) if config.timeout else 1.0
        self.max_requests = max_requests
        self.is_ready = False

    def _send(self, message: bytes) -> None:
        # A master that lags loses a heartbeat; one that died gets nothing.
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self._fd, message)

    def ready(self) -> None:
        self.is_ready = True
        self._send(b"R\n")

    def beat(self) -> None:
        self._send(b"B\n")

    def retire_me(self) -> None:
        self._send(b"M\n")

    def stopped_accepting(self) -> None:
        self._send(b"D\n")

    def report(self, message: bytes) -> None:
        self._send(message + b"\n")  # (under PIPE_BUF: whole, or not at all)

    def failed(self, message: str) -> None:
        # One write of at most PIPE_BUF bytes is atomic: the message arrives whole.
        text = message.replace("\n", " ").encode("utf-8", "replace")[:4000]
        self._send(b"E" + text + b"\n")

    def orphaned(self) -> bool:
        return os.getppid() != self.master_pid

    def reopen_logs(self) -> None:
        reopen_log_files()
        faulthandler.enable(file=log_stream(), all_threads=True)


def open_fds() -> set[int]:
    """The file descriptors open in this process (not the one that lists them)."""
    names = os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd")
    # The listing was made through a descriptor of its own, closed since.
    return {fd for fd in map(int, names) if _is_open(fd)}


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def spawn(
    entry: WorkerEntry,
    config: Config,
    sockets: list[socket.socket],
    *,
    generation: int,
    title: str,
    close_fds: Iterable[int],
    max_requests: int,
) -> Worker:
    """Fork a worker that serves ``sockets`` by calling ``entry``; it never returns into the
    caller's stack (``os._exit``), so the master's cleanup never runs twice."""
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    master_pid = os.getpid()
    # Signals stay blocked across the fork: one the master's handler caught in the child,
    # before the child resets its handlers, would be lost.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the worker
        code = 1
        try:
            os.close(read_fd)
            for fd in close_fds:
                os.close(fd)
            _become_worker(master_pid, title, blocked)
            link = WorkerLink(write_fd, master_pid, config, max_requests)
            code = _run(entry, config, sockets, link)
        finally:
            for handler in logging.getLogger("uvicorn").handlers:
                handler.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    os.close(write_fd)
    return Worker(pid, read_fd, generation, time.monotonic())


# The signals the master handles: a worker starts with the default action for each.
MASTER_SIGNALS = (
    signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT, signal.SIGTTIN, signal.SIGTTOU,
    signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD,
)  # fmt: skip


def _become_worker(master_pid: int, title: str, blocked: set[Any]) -> None:
    signal.set_wakeup_fd(-1)
    for signum in MASTER_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    # A Ctrl-C reaches the whole process group: the master decides. SIGUSR1 (reopen the logs)
    # must not kill a worker still booting, before it handles it.
    for signum in (signal.SIGINT, signal.SIGUSR1, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(signum, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        # Die with the master, even when it is SIGKILLed: no orphans. SIGTERM, so that the
        # requests in flight still finish.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    if os.getppid() != master_pid:
        os._exit(0)  # the master died before the death signal was armed
    set_title(title)
    # SIGABRT from the master (a blocked event loop) dumps every thread's traceback.
    faulthandler.enable(file=log_stream(), all_threads=True)


def app_name(config: Config) -> str:
    app = config.app
    return app if isinstance(app, str) else getattr(app, "__qualname__", type(app).__name__)


def set_title(title: str) -> None:
    """What ``ps`` shows: ``uvicorn: master [app:chat_server]``."""
    try:
        import setproctitle
    except ImportError:  # pragma: no cover (a dependency; titles are a nicety)
        return
    setproctitle.setproctitle(title)


def _run(entry: WorkerEntry, config: Config, sockets: list[socket.socket], link: WorkerLink) -> int:
    try:
        entry(config, sockets, link)
    except UvicornError as exc:
        if link.is_ready:
            logger.error("Worker [%d] stopped: %s", os.getpid(), exc)
            return 1
        link.failed(str(exc))  # the master shows it, once
        return BOOT_FAILED
    except BaseException as exc:
        if link.is_ready:
            logger.error("Worker [%d] crashed", os.getpid(), exc_info=exc)
            return 1
        logger.error("Worker [%d] failed to boot", os.getpid(), exc_info=exc)
        link.failed(f"worker failed to boot: {exc!r}")
        return BOOT_FAILED
    return 0
