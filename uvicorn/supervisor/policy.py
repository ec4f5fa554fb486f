"""The master's decisions, as pure functions of its worker records: which workers to start and
which to retire (``plan``), and how long to wait before restarting (``Backoff``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from uvicorn.supervisor.process import State, Worker


@dataclass
class Plan:
    spawn: int = 0  # workers to start now
    retire: list[Worker] = field(default_factory=list)  # workers to drain and stop


def plan(workers: Iterable[Worker], generation: int, target: int) -> Plan:
    """Reconcile the workers there are with the ``target`` wanted of ``generation``.

    * Fresh workers (of the current generation, not marked for replacement by --max-requests,
      --worker-max-rss or --worker-lifetime) are topped up to the target; until one of them
      serves, one at a time (a canary): a broken app then fails once, its error shown once,
      not once per worker.
    * A surplus (TTOU) retires booting ones first, then the oldest.
    * Outgoing workers (an older generation, or marked for replacement) are retired, oldest
      first, only while the others still serving number at least the target: capacity never
      drops during a rolling restart.
    """
    live = [w for w in workers if w.state in (State.BOOTING, State.SERVING)]
    fresh = [w for w in live if w.generation == generation and not w.wants_retire]
    outgoing = [w for w in live if w.generation != generation or w.wants_retire]
    result = Plan()
    surplus = len(fresh) - target
    if surplus > 0:
        fresh.sort(key=lambda w: (w.state is State.SERVING, w.spawned_at))
        result.retire += fresh[:surplus]
        fresh = fresh[surplus:]
    if any(w.state is State.SERVING for w in fresh):
        result.spawn = max(0, target - len(fresh))
    else:
        result.spawn = 0 if fresh else 1
    serving = sum(w.state is State.SERVING for w in fresh + outgoing)
    for worker in sorted(outgoing, key=lambda w: w.spawned_at):
        if worker.state is State.BOOTING:  # not serving yet: nothing to wait for
            result.retire.append(worker)
        elif serving > target:
            result.retire.append(worker)
            serving -= 1
    return result


def serving(workers: Iterable[Worker], generation: int) -> int:
    """How many workers of ``generation`` serve and are not being replaced."""
    return sum(
        w.state is State.SERVING and w.generation == generation and not w.wants_retire
        for w in workers
    )


def complete(workers: Iterable[Worker], generation: int, target: int) -> bool:
    """The target number of workers of ``generation`` serve, and no older one may still take a
    connection: each has exited or said it closed its listeners (a retiring worker serves
    until its SIGHUP is handled, and a reload said complete must mean that every new
    connection reaches the new code)."""
    workers = list(workers)
    current = sum(
        w.state is State.SERVING and w.generation == generation and not w.wants_retire
        for w in workers
    )
    older = (w for w in workers if w.generation != generation and w.state is not State.STOPPING)
    return current >= target and not any(w.accepting for w in older)


class Backoff:
    """Delays before restarting workers that keep dying: none for the first death, then
    ``base`` doubling up to ``cap``. A death ``reset_after`` seconds after the previous one
    starts a new count, so an occasional crash is always replaced at once."""

    def __init__(self, base: float = 0.1, cap: float = 10.0, reset_after: float = 60.0) -> None:
        self.base = base
        self.cap = cap
        self.reset_after = reset_after
        self.failures = 0
        self._last = -float("inf")

    def failure(self, now: float) -> float:
        """Record a death at ``now``; return how long to wait before the next start."""
        if now - self._last > self.reset_after:
            self.failures = 0
        self.failures += 1
        self._last = now
        if self.failures == 1:
            return 0.0
        return float(min(self.cap, self.base * 2 ** (self.failures - 2)))
