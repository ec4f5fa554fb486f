"""Replacing workers that are healthy but past a limit, and counting every restart by reason.

``--max-requests`` (the worker asks), ``--worker-max-rss`` and ``--worker-lifetime`` (the master
judges, on each heartbeat) all end the same way: the worker is marked ``wants_retire``, and
``policy.plan()`` starts its replacement and retires it once the replacement serves. The master
reads a worker's memory itself, from ``/proc/<pid>/statm``: one small read per heartbeat, taken
only when --worker-max-rss is set, that needs nothing from the worker (whose event loop is
the thing to keep cheap) and that no app can get wrong.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Collection

from uvicorn.config import Config
from uvicorn.supervisor.process import State, Worker

logger = logging.getLogger("uvicorn.supervisor")

# Why workers were replaced: the labels of a future uvicorn_worker_restarts_total. Every
# reason is present from the start (at 0), so that an exporter shows each series at once.
REASONS = ("exit", "signal", "timeout", "max_requests", "max_rss", "lifetime")
MIB = 1024 * 1024
try:
    PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
except (AttributeError, OSError, ValueError):  # pragma: no cover (not a POSIX system)
    PAGE_SIZE = 4096


def counter() -> dict[str, int]:
    return dict.fromkeys(REASONS, 0)


def death_reason(worker: Worker, status: int) -> str:
    """The reason counted for a worker that ended unasked: ``timeout`` when the watchdog
    aborted it (it then dies of SIGABRT or SIGKILL), ``signal``, or ``exit``."""
    if worker.aborted:
        return "timeout"
    if status >= 0 and os.WIFSIGNALED(status):
        return "signal"
    return "exit"


def expiry(config: Config, spawned_at: float) -> float | None:
    """When a worker started at ``spawned_at`` is past --worker-lifetime, with its own random
    share of --worker-lifetime-jitter: workers started together retire apart."""
    if not config.worker_lifetime:
        return None
    return spawned_at + config.worker_lifetime + random.uniform(0, config.worker_lifetime_jitter)


def rss(pid: int) -> int | None:
    """The resident memory of ``pid`` in bytes, or None if it cannot be read (gone, no /proc).
    statm's second field is what ps and top call RSS, shared pages included."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as file:
            return int(file.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def due(worker: Worker, config: Config, now: float) -> tuple[str, str] | None:
    """(reason, the line to log) if ``worker`` is past --worker-lifetime or --worker-max-rss."""
    if worker.expires_at is not None and now >= worker.expires_at:
        limit = f"--worker-lifetime {config.worker_lifetime:g}s"
        share = worker.expires_at - worker.spawned_at - config.worker_lifetime
        if config.worker_lifetime_jitter:
            limit += f" (+{share:.1f}s of --worker-lifetime-jitter)"
        age = now - worker.spawned_at
        return "lifetime", f"Worker [{worker.pid}] is {age:.1f}s old, past {limit}: replacing it"
    if config.worker_max_rss:
        used = rss(worker.pid)
        if used is not None and used > config.worker_max_rss * MIB:
            return "max_rss", (
                f"Worker [{worker.pid}] uses {used / MIB:.1f} MiB of memory (RSS), over "
                f"--worker-max-rss {config.worker_max_rss} MiB: replacing it"
            )
    return None


def check(
    worker: Worker, config: Config, workers: Collection[Worker], generation: int, now: float
) -> str | None:
    """On a heartbeat of a serving ``worker``: mark it for replacement, and say why, if it is
    past a limit and no other worker is being replaced (else it waits for a later heartbeat)."""
    found = due(worker, config, now)
    if found is None or not turn_is_free(workers, generation):
        return None
    reason, line = found
    worker.wants_retire = True
    logger.info("%s", line)
    return reason


def turn_is_free(workers: Collection[Worker], generation: int) -> bool:
    """No worker is being replaced or started now: limits replace workers one at a time, so
    that at most one replacement boots (on a machine's cores, beside the load) and workers
    that grew together do not all go at once; the others wait for their next heartbeat."""
    return not any(
        w.state is State.BOOTING
        or (w.state is State.SERVING and (w.wants_retire or w.generation != generation))
        for w in workers
    )
