"""The master's decisions, without processes: which workers to start and retire, back-off."""

from __future__ import annotations

import itertools

import pytest

from uvicorn.supervisor.policy import Backoff, complete, plan
from uvicorn.supervisor.process import State, Worker

_pids = itertools.count(100)


def worker(generation: int = 1, state: State = State.SERVING, wants_retire: bool = False) -> Worker:
    pid = next(_pids)
    record = Worker(pid, -1, generation, now=float(pid))  # later pids are younger
    record.state = state
    record.wants_retire = wants_retire
    return record


def test_first_start_boots_one_canary_then_the_rest() -> None:
    assert plan([], 1, 4).spawn == 1
    assert plan([worker(state=State.BOOTING)], 1, 4).spawn == 0
    assert plan([worker()], 1, 4).spawn == 3
    assert plan([worker(), worker(state=State.BOOTING)], 1, 4).spawn == 2


@pytest.mark.parametrize("target", [1, 2, 3])
def test_rolling_restart_never_drops_below_the_target(target: int) -> None:
    """Walk a whole HUP: new workers start (canary first), then old ones retire as new ones
    serve; at every step at least ``target`` workers serve."""
    workers = [worker(1) for _ in range(target)]
    for _ in range(3 * target):
        decided = plan(workers, 2, target)
        for record in decided.retire:
            record.state = State.RETIRING
        workers += [worker(2, State.BOOTING) for _ in range(decided.spawn)]
        serving = [w for w in workers if w.state is State.SERVING]
        assert len(serving) >= target
        assert sum(w.state is State.BOOTING for w in workers) <= max(1, target)
        for record in workers:  # the booting ones come up
            if record.state is State.BOOTING:
                record.state = State.SERVING
                break
    final = plan(workers, 2, target)
    for record in final.retire:
        record.state = State.RETIRING
    serving = [w for w in workers if w.state is State.SERVING]
    assert [w.generation for w in serving] == [2] * target
    assert all(w.state is State.RETIRING for w in workers if w.generation == 1)
    # Retired, but each may take a connection until it says its listeners are closed.
    assert not complete(workers, 2, target)
    for record in workers:
        if record.generation == 1:
            record.accepting = False
    assert complete(workers, 2, target)


def test_a_reload_is_complete_once_no_old_worker_can_accept() -> None:
    old, new = worker(1, State.RETIRING), worker(2)
    assert not complete([old, new], 2, 1)
    old.accepting = False  # it said "D": listeners closed, draining
    assert complete([old, new], 2, 1)
    assert complete([new], 2, 1)  # (or it exited)
    booting_old = worker(1, State.RETIRING)  # retired while booting: it may still listen
    assert not complete([booting_old, new], 2, 1)


def test_old_generation_stays_while_the_canary_boots() -> None:
    old = [worker(1), worker(1)]
    canary = worker(2, State.BOOTING)
    decided = plan([*old, canary], 2, 2)
    assert decided.retire == [] and decided.spawn == 0
    assert not complete([*old, canary], 2, 2)


def test_max_requests_worker_retires_once_its_replacement_serves() -> None:
    tired = worker(1, wants_retire=True)
    other = worker(1)
    assert plan([tired, other], 1, 2).spawn == 1
    replacement = worker(1, State.BOOTING)
    assert plan([tired, other, replacement], 1, 2).retire == []
    replacement.state = State.SERVING
    assert plan([tired, other, replacement], 1, 2).retire == [tired]


def test_surplus_retires_booting_workers_first_then_the_oldest() -> None:
    oldest, younger, booting = worker(), worker(), worker(state=State.BOOTING)
    assert plan([oldest, younger, booting], 1, 2).retire == [booting]
    assert plan([oldest, younger, booting], 1, 1).retire == [booting, oldest]


def test_an_older_generation_still_booting_is_stopped_at_once() -> None:
    stale = worker(1, State.BOOTING)
    assert stale in plan([stale, worker(2, State.BOOTING)], 2, 1).retire


def test_backoff_grows_is_capped_and_resets() -> None:
    backoff = Backoff(base=0.1, cap=1.0, reset_after=60)
    delays = [backoff.failure(now) for now in range(8)]
    assert delays == [0.0, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert backoff.failure(1000) == 0.0  # a long quiet spell: a new count
