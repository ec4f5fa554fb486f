"""What each signal does to the master: ``Arbiter``'s handlers, in a class of their own.

The handlers only enqueue (waker.py); the master's loop calls ``handle_<name>(count)``, count
being how many times the signal came since the loop last looked. They change what the master
wants (a generation, a number of workers, stopping); the loop then makes it so.
"""

from __future__ import annotations

import logging
import signal
import time

from uvicorn.config import Config
from uvicorn.logging import reopen_log_files
from uvicorn.supervisor import systemd
from uvicorn.supervisor.dev_reload import DevReload
from uvicorn.supervisor.process import State, Worker

logger = logging.getLogger("uvicorn.supervisor")

# Beyond --graceful-timeout, before SIGKILL: a worker's shutdown ends 1 s past it (its
# FINAL_GRACE), so this is for a worker whose event loop is blocked.
KILL_MARGIN = 5.0
QUICK_STOP = 2.0  # how long QUIT (and a halt) waits before SIGKILL
SIGNALS: dict[int, str] = {
    signal.SIGHUP: "hup", signal.SIGINT: "int", signal.SIGTERM: "term", signal.SIGQUIT: "quit",
    signal.SIGTTIN: "ttin", signal.SIGTTOU: "ttou", signal.SIGUSR1: "usr1",
}  # fmt: skip


class SignalHandlers:
    """The base of ``Arbiter``, which sets these attributes."""

    config: Config
    workers: dict[int, Worker]
    target: int
    generation: int
    reloading: bool
    stopping: bool
    reloader: DevReload | None
    notifier: systemd.Notifier

    def handle_hup(self, count: int) -> None:
        if self.stopping:
            return
        self._new_generation("Received SIGHUP")
        if not isinstance(self.config.app, str):
            logger.warning("The app is an object, not an import string: its code stays the same")

    def _new_generation(self, why: str) -> None:
        """Start replacing every worker (SIGHUP, --reload): policy.plan() boots one of the new
        generation, and retires the old ones only as new ones serve."""
        self.generation = max([self.generation, *(w.generation for w in self.workers.values())]) + 1
        self.reloading = True
        if self.reloader is not None:
            self.reloader.broken = None  # the code on disk may load now: try it
        logger.info("%s: starting generation %d", why, self.generation)
        self.notifier.reloading(f"reloading: starting generation {self.generation}")

    def handle_term(self, count: int) -> None:
        self._stop(graceful=True, reason="Received SIGTERM")

    def handle_int(self, count: int) -> None:
        # A second Ctrl-C while stopping gracefully (or two at once): stop at once.
        self._stop(graceful=not self.stopping and count == 1, reason="Received SIGINT")

    def handle_quit(self, count: int) -> None:
        self._stop(graceful=False, reason="Received SIGQUIT")

    def handle_ttin(self, count: int) -> None:
        self.target += count
        logger.info("Received SIGTTIN%s: %d workers", _times(count), self.target)

    def handle_ttou(self, count: int) -> None:
        if self.target == 1:
            logger.info("Received SIGTTOU%s: staying at one worker", _times(count))
            return
        self.target = max(1, self.target - count)
        logger.info("Received SIGTTOU%s: %d workers", _times(count), self.target)

    def handle_usr1(self, count: int) -> None:
        reopen_log_files()
        for worker in self.workers.values():
            worker.signal(signal.SIGUSR1)
        logger.info("Received SIGUSR1: log files reopened")

    def _stop(self, graceful: bool, reason: str) -> None:
        if self.stopping and graceful:
            return
        logger.info("%s: %s", reason, "shutting down gracefully" if graceful else "stopping now")
        if not self.stopping:
            self.notifier.stopping("stopping")
        self.stopping = True
        now = time.monotonic()
        signum = signal.SIGTERM if graceful else signal.SIGQUIT
        wait = self.config.graceful_timeout + KILL_MARGIN if graceful else QUICK_STOP
        for worker in self.workers.values():
            worker.state = State.STOPPING
            worker.signal(signum)
            worker.kill_at = min(worker.kill_at or float("inf"), now + wait)


def _times(count: int) -> str:
    return f" ({count} times)" if count > 1 else ""
