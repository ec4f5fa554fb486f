"""The fan-out benchmark (benchmarks/fanout.py) without servers: where it puts the servers and the
clients, and what its report says about it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def fanout() -> Any:
    saved = list(sys.path)
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import fanout

        yield fanout
    finally:
        sys.path[:] = saved


def test_servers_get_the_first_half_of_the_cpus_and_clients_the_rest(fanout: Any) -> None:
    assert fanout.split_cpus({0, 1}) == ({0}, {1})
    assert fanout.split_cpus({3, 1, 2, 0}) == ({0, 1}, {2, 3})
    assert fanout.split_cpus({0, 1, 2}) == ({0}, {1, 2})
    assert fanout.split_cpus({5}) == (None, None)


def test_on_cpus_moves_this_process_for_the_block_only(fanout: Any) -> None:
    before = os.sched_getaffinity(0)
    one = {min(before)}
    with fanout.on_cpus(one):
        assert os.sched_getaffinity(0) == one
    assert os.sched_getaffinity(0) == before
    with fanout.on_cpus(None):
        assert os.sched_getaffinity(0) == before


def _args(cpus: tuple[set[int] | None, set[int] | None]) -> SimpleNamespace:
    return SimpleNamespace(instances=2, workers=2, burst=100, rounds=1, servers=[],
                           ours_label="ours: test", cpus=cpus)  # fmt: skip


def test_the_report_says_where_each_side_ran(
    fanout: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    report = sys.modules["fanout_report"]
    monkeypatch.setattr(report, "versions", lambda servers, ours: [ours])
    report.report({}, _args(({0}, {1})))
    assert "pinned: servers and Redis on CPU 0, the clients and the publisher on CPU 1" in (
        capsys.readouterr().out
    )
    report.report({}, _args((None, None)))
    assert "not pinned: servers, Redis and clients shared every CPU" in capsys.readouterr().out
