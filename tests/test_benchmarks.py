"""The benchmark runner (benchmarks/run.py) without servers: its options, wrk's result line, and
the tables and verdict it prints, from canned numbers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

RUN_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def _load_runner() -> ModuleType:
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location("benchmarks_run", RUN_PY)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path[:] = saved


run = _load_runner()
report, loads = run.report, run.loads


def _run(rnd: int, rps: float, p99: float = 2.0, idle: float = 20.0) -> dict[str, Any]:
    return {"round": rnd, "rps": rps, "requests": int(rps * 10), "p50_ms": 1.0, "p99_ms": p99,
            "server_cpu_s": rps * 10 * 20e-6, "client_cpu_pct": 40.0, "other_cpu_pct": 1.0,
            "peak_rss_mib": 50.0, "idle_worker_mib": idle, "errors": 0}  # fmt: skip


def _results(ours_rps: float, asgi_rps: float) -> dict[str, dict[str, Any]]:
    """Every target scenario: published at 10,000 and 12,000 req/s, ours at a multiple."""
    out = {}
    for scen in report.TARGETS:
        base = [_run(0, 10_000, idle=30.0), _run(1, 12_000, idle=30.0)]
        runs = {
            report.BASELINE: base,
            "ours-messaging": [_run(0, 10_000 * ours_rps), _run(1, 12_000 * ours_rps)],
            "ours-asgi": [_run(0, 10_000 * asgi_rps), _run(1, 12_000 * asgi_rps)],
        }
        out[scen] = {name: report.summarize(r, base) for name, r in runs.items()}
    return out


def test_options_default_to_the_issue_method() -> None:
    args = run.parse_args([])
    assert (args.rounds, args.duration, args.warmup, args.connections) == (5, 6, 1, 64)
    assert args.redos == 2
    assert args.scenarios == ["hello-ka", "hello-close", "stream", "echo", "ws"]
    assert run.parse_args(["--peers", "granian", "--scenarios", "ws"]).peers == ["granian"]


def test_wrk_result_line_and_scripts() -> None:
    res = loads.parse_wrk("Running 5s test\nRESULT 50000 5000000 0 1 0 2 0 1200 4500\n")
    assert res["rps"] == 10_000 and res["p50_ms"] == 1.2 and res["p99_ms"] == 4.5
    assert res["errors"] == 3 and res["non_2xx"] == 2
    assert 'wrk.method = "POST"' in loads.lua_script("echo")
    assert '"Connection"] = "close"' in loads.lua_script("hello-close")


def test_summary_medians_and_ratios() -> None:
    base = [_run(0, 10_000), _run(1, 20_000)]
    ours = [_run(1, 30_000), _run(0, 30_000), {"round": 2, "error": "boom"}]
    s = report.summarize(ours, base)
    assert (s["rps_median"], s["rounds"], s["failed"]) == (30_000, 2, 1)
    assert s["ratio"] == 2.0  # 30,000 / median(10,000, 20,000)
    assert s["paired"] == 2.25  # median(3.0, 1.5)
    assert round(s["cpu_us"], 6) == 20.0
    failed = report.summarize([{"round": 0, "error": "exited with status 1\nTraceback"}], base)
    table = report.scenario_table("hello-ka: GET /", "req/s", {"published": s, "ours": failed})
    assert "| published | 30,000 | 30,000-30,000 | 1.00 | 2.00 | 20.0 |" in table
    assert "| 2.00x | 2.25x | 0 (1 runs FAILED) |" in table
    assert "| ours | FAILED |" in table and "    Traceback" in table


def test_targets_all_met() -> None:
    text = report.targets_table(_results(2.5, 2.5))
    assert "| hello-ka paired req/s ratio | 2.50x | 2.50x | >= 1.50x | pass |" in text
    assert "| idle RSS of one worker | 20.0 MiB | 20.0 MiB | <= 30.0 MiB | pass |" in text
    assert "**Verdict: every target met (11/11 checks pass)**" in text
    assert "WARNING" not in text


def test_targets_missed_are_named() -> None:
    results = _results(1.6, 1.2)
    results["stream"]["ours-messaging"] = report.summarize([{"round": 0, "error": "x"}], [])
    rows = {row[0]: row for row in report.target_rows(results)}
    assert rows["hello-ka paired req/s ratio"][1:] == ("1.60x", "1.20x", ">= 1.50x",
                                                         "FAIL (ASGI)")  # fmt: skip
    assert rows["stream paired req/s ratio"][1] == "n/a"
    assert rows["stream paired req/s ratio"][4] == "FAIL"
    line = report.verdict(list(rows.values()), other_cpu=35.0)
    assert line.startswith("**Verdict: 5 of 11 checks missed: hello-ka paired req/s ratio (ASGI);")
    assert "stream p99 ms (messaging)" in line and "WARNING: other processes used 35%" in line


def test_a_round_the_host_stole_from_is_measured_again_whole(monkeypatch: Any) -> None:
    # Steal in round 1's first attempt (on one server's run only): every server of that round
    # is measured again; a round still stolen from after --redos attempts is kept as it is.
    steal = iter([0.0, 0.0, 9.0, 0.0, 0.0, 0.0] + [9.0] * 6)
    calls: list[str] = []

    def measure(server: Any, name: str, args: Any, scratch: Any) -> dict[str, Any]:
        calls.append(server.name)
        return dict(_run(0, 1000.0), steal_pct=next(steal))

    monkeypatch.setattr(run, "measure", measure)
    servers = [run.Server("published", [], RUN_PY), run.Server("ours", [], RUN_PY)]
    args = run.parse_args(["--rounds", "3", "--redos", "1"])
    runs, redone = run.run_scenario("hello-ka", servers, args, RUN_PY)
    assert redone == 2  # round 1 once, round 2 once (and kept after that)
    assert len(calls) == 2 * (1 + 2 + 2)
    assert [r["round"] for r in runs["ours"]] == [0, 1, 2]
    assert [r["steal_pct"] for r in runs["published"]] == [0.0, 0.0, 9.0]


# benchmarks/soak.py: its own logic, without a server or wrk.

SOAK_PY = RUN_PY.with_name("soak.py")


def _load_soak() -> ModuleType:
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location("benchmarks_soak", SOAK_PY)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path[:] = saved


soak = _load_soak()


def _snap(rss: float, links: dict[int, str]) -> Any:
    kinds = {fd: soak.fd_kind(link, {"7": "tcp LISTEN"}) for fd, link in links.items()}
    return soak.Snapshot(worker_rss=rss, tree_rss=2 * rss, fds=kinds, links=links)


def _phase(growth: float, after_links: dict[int, str], errors: int = 0) -> Any:
    before = _snap(25.0, {3: "socket:[7]", 4: "pipe:[8]", 5: "/dev/null"})
    after = _snap(25.0 + growth, after_links)
    load = soak.Load(requests=1_000_000, errors=errors, seconds=20.0)
    return soak.Phase("asgi", "keep-alive", load, before, after, True, 0.0, 12.0, 50.0, 1.0, 0.0,
                      left=soak.left_behind(before, after))  # fmt: skip


def test_soak_options_and_wrk_script() -> None:
    args = soak.parse_args([])
    assert args.interfaces == ["messaging", "asgi"] and args.app == "hello"
    assert (args.requests, args.warmup, args.rss_limit) == (1_000_000, 20_000, 5.0)
    script = soak.count_script("hello-close", 1234)
    assert "local limit, seen = 1234, 0" in script and "wrk.thread:stop()" in script
    assert '"Connection"] = "close"' in script and "RESULT" in script


def test_soak_descriptor_kinds_and_leftovers() -> None:
    sockets = {"7": "tcp LISTEN", "9": "tcp CLOSE_WAIT"}
    assert soak.fd_kind("socket:[9]", sockets) == "socket (tcp CLOSE_WAIT)"
    assert soak.fd_kind("socket:[10]", sockets) == "socket (other)"
    assert soak.fd_kind("pipe:[3]", sockets) == "pipe"
    assert soak.kinds_text({1: "pipe", 2: "pipe", 3: "/dev/null"}) == "1 /dev/null, 2 pipe"
    before = _snap(1.0, {3: "socket:[7]", 4: "pipe:[8]"})
    after = _snap(1.0, {3: "socket:[7]", 4: "pipe:[99]", 6: "socket:[9]"})
    assert soak.left_behind(before, after) == {4: "pipe", 6: "socket (other)"}


def test_soak_verdict_names_growth_leftovers_and_errors() -> None:
    clean = _phase(0.5, {3: "socket:[7]", 4: "pipe:[8]", 5: "/dev/null"})
    assert soak.problems([clean], {}, 5.0) == []
    assert soak.verdict([], 2, 5.0).startswith("**Verdict: PASS**")
    grown = _phase(5.5, {3: "socket:[7]", 4: "pipe:[8]", 5: "/dev/null", 9: "socket:[11]"}, 3)
    found = soak.problems([clean, grown], {"messaging": "exited with status 1\nTraceback"}, 5.0)
    assert found[0] == "ours-messaging: server failed: exited with status 1"
    assert "ours-asgi, keep-alive: worker RSS grew 5.50 MiB (25.0 -> 30.5)" in found[1]
    assert found[2] == "ours-asgi, keep-alive: 1 fd(s) left behind (3 -> 4): 1 socket (other)"
    assert found[3].startswith("ours-asgi, keep-alive: wrk saw 3 errors")
    assert soak.verdict(found, 2, 5.0).startswith("**Verdict: FAIL**\n\n* ours-messaging")
    assert "| ours-asgi | keep-alive | 1,000,000 | 3 | 20.0 | 50,000 |" in soak.table([grown])


def test_soak_settle_polls_this_process() -> None:
    import os
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        inode = str(os.fstat(sock.fileno()).st_ino)
        assert soak.socket_kinds(os.getpid())[inode] == "tcp LISTEN"
        count = len(os.listdir(f"/proc/{os.getpid()}/fd"))  # as settle() counts
        assert soak.settle(os.getpid(), count, quiet=5.0, timeout=5.0)[1] is True
        waited, back = soak.settle(os.getpid(), count - 1, quiet=0.1, timeout=5.0)
        assert back is False and waited < 2.0
