"""The worker template: a child of the master that imports the worker's code once, and forks
every worker from itself.

The master stays small: it loads neither the app nor the protocol stack (the event loop, the
protocols, websockets: ~11 MiB of RSS). But a worker forked from a master without them imports
them after the fork, into memory of its own: measured with 4 workers (hello app), each worker's
private memory went from 6.6 to 15.2 MiB. Forked from the template, which imported them once,
the workers share those pages copy-on-write again, as they did when the master held them.
(The template never imports the app: each new worker loads the app's current code.)

The master asks over a ``SOCK_SEQPACKET`` socket pair: a request carries the worker's pipe to the
master and its listening sockets (``SCM_RIGHTS``), and its generation, title and
--max-requests; the template forks and answers ``S<pid>`` (or ``F<error>``). Workers are the
template's children: it reaps them and sends ``X<pid> <status>``, which the master takes as its
own ``waitpid()`` (``Zygote.waitpid``). A template that dies is not replaced: the master forks the
workers that follow itself (each then imports the worker's code).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from uvicorn.config import Config
from uvicorn.logging import reopen_log_files
from uvicorn.supervisor import process
from uvicorn.supervisor.process import Worker, WorkerEntry

logger = logging.getLogger("uvicorn.supervisor")

REPLY_TIMEOUT = 10.0  # a fork takes milliseconds: a template silent this long is stuck
MAX_FDS = 253  # a worker's pipe and its listening sockets (SCM_MAX_FD: what one message carries)


class Zygote:
    """The master's handle on the worker template."""

    def __init__(self, entry: WorkerEntry, preload: Callable[[], object], config: Config) -> None:
        self.entry = entry
        self.preload = preload
        self.config = config
        self.pid = 0
        self.sock: socket.socket | None = None
        self.children: set[int] = set()  # its workers not yet reaped by the master
        self._exits: dict[int, int] = {}  # their exit statuses, not yet taken
        self.on_exit: Callable[[], None] = lambda: None  # the master's: a child has exited
        # The master's: its socket is about to close (out of the master's selector first, or
        # the next descriptor given its number could not be registered).
        self.on_close: Callable[[int], None] = lambda fd: None

    def start(self, title: str, close_fds: Iterable[int]) -> None:
        """Fork the template; it closes ``close_fds`` (what the master opened for itself)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        master_pid = os.getpid()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            code = 1
            try:
                ours.close()
                for fd in close_fds:
                    os.close(fd)
                code = _Template(self, theirs, master_pid, title, blocked).serve()
            except BaseException:
                logger.exception("The worker template failed")
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        theirs.close()
        ours.setblocking(False)  # (but while waiting for a pid: spawn())
        self.pid, self.sock = pid, ours

    def spawn(self, sockets: list[socket.socket], *, generation: int, title: str,
              max_requests: int) -> Worker | None:  # fmt: skip
        """A worker forked by the template; None when the template is gone (the caller forks
        it itself). Raises ``OSError`` when the template could not fork."""
        if self.sock is None:
            return None
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        request = json.dumps([title, max_requests]).encode()
        try:
            self.sock.settimeout(REPLY_TIMEOUT)
            socket.send_fds(self.sock, [request], [write_fd, *(s.fileno() for s in sockets)])
            while True:
                reply = self.sock.recv(4096)
                if reply[:1] != b"X":
                    break
                self._exited(reply)
        except OSError as exc:  # gone, or stuck (a timeout)
            reply = b""
            logger.error("The worker template does not answer (%s)", exc)
        finally:
            os.close(write_fd)
            if self.sock is not None:
                self.sock.setblocking(False)
        if reply[:1] == b"S":
            pid = int(reply[1:])
            self.children.add(pid)
            return Worker(pid, read_fd, generation, time.monotonic())
        os.close(read_fd)
        if reply[:1] == b"F":
            raise OSError(reply[1:].decode("utf-8", "replace"))
        self._lost()
        return None

    def handle(self, now: float) -> None:
        """Its socket is readable (the master's selector): the exits it reports, or its end."""
        assert self.sock is not None
        while True:
            try:
                message = self.sock.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                message = b""
            if not message:
                self._lost()
                return
            self._exited(message)

    def waitpid(self, pid: int) -> tuple[int, int]:
        """``os.waitpid(pid, os.WNOHANG)`` for one of its workers: (0, 0) while it runs; its
        status -1 when the template died before saying."""
        if pid not in self._exits:
            return 0, 0
        self.children.discard(pid)
        return pid, self._exits.pop(pid)

    def _exited(self, message: bytes) -> None:
        pid, status = map(int, message[1:].split())
        self._exits[pid] = status
        self.on_exit()

    def _lost(self) -> None:
        """The template is gone (killed, out of memory?): its workers got SIGTERM (their
        parent-death signal) and their exit statuses went to init."""
        if self.sock is None:
            return
        logger.error("The worker template exited: workers will be forked by the master")
        self.close()
        for pid in self.children:
            self._exits.setdefault(pid, -1)
        self.on_exit()

    def close(self) -> None:
        """End the template (once its workers are gone: it exits when its socket closes)."""
        if self.sock is None:
            return
        self.on_close(self.sock.fileno())
        self.sock.close()
        self.sock = None
        # Closed, it exits; but one that stopped answering may be stuck: waitpid() must not be.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


class _Template:
    """The template's side, in its own process."""

    def __init__(self, zygote: Zygote, sock: socket.socket, master_pid: int, title: str,
                 blocked: set[Any]) -> None:  # fmt: skip
        self.zygote = zygote
        self.sock = sock
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # The master's signals are the master's business (a Ctrl-C, systemd's SIGTERM to the
        # whole group): the template ends when the master closes its socket, or dies.
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        for signum in (*process.MASTER_SIGNALS, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the select
        process.die_with_parent(signal.SIGKILL)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if os.getppid() != master_pid:
            os._exit(0)  # the master died before the death signal was armed
        process.set_title(title)
        zygote.preload()
        # What the worker's code made is never garbage: out of the cyclic collector's way, so
        # that each worker's collections do not write to (and unshare) the pages that hold it.
        gc.collect()
        gc.freeze()

    def serve(self) -> int:
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ)
        selector.register(self.wake_r, selectors.EVENT_READ)
        own = [self.sock.fileno(), self.wake_r, self.wake_w, selector.fileno()]
        while True:
            for key, _ in selector.select():
                if key.fd == self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_r, 4096):
                            pass
                elif not self._fork(own):
                    return 0
            self._reap()

    def _fork(self, own: list[int]) -> bool:
        message, fds, _, _ = socket.recv_fds(self.sock, 4096, MAX_FDS)
        if not message:
            return False  # the master closed its end: done
        link_fd, *listener_fds = fds
        # The log files as they are now (the master reopens its own on SIGUSR1, after a
        # rotation; the template, which ignores the signal, may hold the rotated one).
        reopen_log_files()
        sockets = [socket.socket(fileno=fd) for fd in listener_fds]
        try:
            title, max_requests = json.loads(message)
            zygote = self.zygote
            pid = process.fork_worker(zygote.entry, zygote.config, sockets, link_fd, title=title,
                                      close_fds=own, max_requests=max_requests)  # fmt: skip
        except OSError as exc:
            self.sock.send(b"F" + str(exc).encode())
        else:
            self.sock.send(b"S%d" % pid)
        finally:
            os.close(link_fd)
            for sock in sockets:
                sock.close()
        return True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.sock.send(b"X%d %d" % (pid, status))
