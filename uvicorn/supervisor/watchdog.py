"""The master's watch over its workers: a worker that shows no life in time is aborted (SIGABRT,
which makes it dump every thread's traceback), and one that outlives its deadline is killed."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterable

from uvicorn.config import BOOT_MARGIN, Config
from uvicorn.supervisor.process import State, Worker

logger = logging.getLogger("uvicorn.supervisor")

ABORT_GRACE = 2.0  # from SIGABRT (traceback dump) to SIGKILL


def deadline(worker: Worker, config: Config) -> float | None:
    """When ``worker`` is to be aborted unless it shows life: a booting worker when
    --boot-timeout has passed (its import may block its event loop, heartbeats and all, for
    longer than --timeout), a started one when its heartbeats stop for --timeout."""
    if worker.aborted:
        return None
    if worker.state is State.BOOTING:
        if not config.boot_timeout:
            return None
        # The worker's own deadline goes first when its event loop turns, logging where the
        # app waits; the master's is for a loop that is blocked (by the import, most often).
        return worker.spawned_at + config.boot_timeout + BOOT_MARGIN
    return worker.last_beat + config.timeout if config.timeout else None


def deadlines(workers: Iterable[Worker], config: Config) -> list[float]:
    return [d for worker in workers if (d := deadline(worker, config)) is not None]


def abort_overdue(workers: Iterable[Worker], config: Config, now: float) -> None:
    for worker in workers:
        due = deadline(worker, config)
        if due is None or now < due:
            continue
        if worker.state is State.BOOTING:
            limit = f"--boot-timeout {config.boot_timeout:g}s"
            worker.error = worker.error or f"worker timed out while booting (longer than {limit})"
            logger.error("Worker [%d] timed out while booting (longer than %s); aborting it "
                         "(SIGABRT: traceback follows)", worker.pid, limit)  # fmt: skip
        else:
            logger.error(
                "Worker [%d] timed out: its event loop has been blocked for over %gs; "
                "aborting it (SIGABRT: traceback follows)",
                worker.pid,
                config.timeout,
            )
        worker.aborted = True
        worker.signal(signal.SIGABRT)
        worker.kill_at = min(worker.kill_at or float("inf"), now + ABORT_GRACE)


def escalate(workers: Iterable[Worker], now: float) -> None:
    """SIGKILL for the workers past their ``kill_at``."""
    for worker in workers:
        if worker.kill_at is not None and now >= worker.kill_at and not worker.killed:
            worker.signal(signal.SIGKILL)
