"""The benchmark runner (benchmarks/run.py) without servers: its options, wrk's and h2load's
output, the command lines it starts, and the tables and verdicts it prints, from canned numbers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import load_script

RUN_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


run = load_script(RUN_PY, "benchmarks_run")
report, loads = run.report, run.loads
env, callgrind, counted = (sys.modules[f"harness.{m}"] for m in ("env", "callgrind", "counted"))


def _run(rnd: int, rps: float, p99: float = 2.0, idle: float = 20.0,
         master: float = 12.0, cpu_us: float = 20.0) -> dict[str, Any]:  # fmt: skip
    return {"round": rnd, "rps": rps, "requests": int(rps * 10), "p50_ms": 1.0, "p99_ms": p99,
            "server_cpu_s": rps * 10 * cpu_us * 1e-6, "client_cpu_pct": 40.0, "other_cpu_pct": 1.0,
            "peak_rss_mib": 50.0, "idle_worker_mib": idle, "idle_master_mib": master,
            "errors": 0}  # fmt: skip


HTTPTOOLS, ZTTP = report.PUBLISHED_HTTPTOOLS, report.PUBLISHED_ZTTP


def _summaries(runs: dict[str, list[dict[str, Any]]], kind: str = "http") -> dict[str, Any]:
    """As run.py summarizes a scenario: paired with its baseline, and with every peer."""
    base = report.baseline(kind, runs)
    refs = {n: r for n, r in runs.items() if n not in report.OURS.values()}
    return {n: report.summarize(r, runs.get(base or "", []), refs) for n, r in runs.items()}


def _results(ours_rps: float, asgi_rps: float, zttp: float = 0.9,
             granian: float | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Every target scenario: the published uvicorn with httptools at 10,000 and 12,000 req/s,
    with zttp at `zttp` times that, ours (and granian) at a multiple of the faster of the two;
    each server's CPU per request in inverse proportion (httptools: 20 us)."""
    out = {}
    for scen in report.TARGETS:
        fast = max(1.0, zttp)
        runs = {
            HTTPTOOLS: [_run(0, 10_000, p99=3.0, idle=30.0), _run(1, 12_000, p99=3.0, idle=30.0)],
            ZTTP: [_run(0, 10_000 * zttp, p99=2.5, cpu_us=20 / zttp),
                   _run(1, 12_000 * zttp, p99=2.5, cpu_us=20 / zttp)],
            "ours-messaging": [_run(0, 10_000 * fast * ours_rps, cpu_us=20 / fast / ours_rps),
                               _run(1, 12_000 * fast * ours_rps, cpu_us=20 / fast / ours_rps)],
            "ours-asgi": [_run(0, 10_000 * fast * asgi_rps, cpu_us=20 / fast / asgi_rps),
                          _run(1, 12_000 * fast * asgi_rps, cpu_us=20 / fast / asgi_rps)],
        }  # fmt: skip
        if granian is not None:
            us = 20 / fast / granian
            runs["granian"] = [_run(0, 10_000 * fast * granian, p99=4.0, cpu_us=us),
                               _run(1, 12_000 * fast * granian, p99=4.0, cpu_us=us)]  # fmt: skip
        out[scen] = _summaries(runs)
    return out


def test_options_default_to_the_issue_method() -> None:
    args = run.parse_args([])
    assert (args.rounds, args.duration, args.warmup, args.connections) == (5, 6, 1, 64)
    assert args.redos == 2
    # The HTTP/1.1 and WebSocket scenarios, as before HTTP/2: those run with --scenarios h2.
    assert args.scenarios == ["hello-ka", "hello-close", "stream", "echo", "ws"]
    assert args.h2_idle_conns == 1000
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
    text = report.targets_table(_results(3.5, 3.5, granian=2.0))
    assert ("| hello-ka paired req/s vs published-httptools | 3.50x | 3.50x | >= 2.00x | pass |"
            in text)  # fmt: skip
    assert "| stream paired req/s vs granian | 1.75x | 1.75x | >= 1.00x | pass |" in text
    assert "| ws p99 ms vs published-zttp | 2.00 ms | 2.00 ms | <= 2.50 ms | pass |" in text
    assert "| idle RSS of the master process | 12.0 MiB | 12.0 MiB | <= 15.0 MiB | pass |" in text
    assert "| idle RSS of one worker | 20.0 MiB | 20.0 MiB | <= 22.0 MiB | pass |" in text
    assert "**Verdict: every target met (17/17 checks pass)**" in text
    assert "WARNING" not in text and "granian did not run" not in text


def test_ratios_are_paired_with_the_faster_published_configuration() -> None:
    # zttp 20% faster than httptools: every ratio is over zttp's run of the same round.
    results = _results(2.0, 2.0, zttp=1.2)
    sums = results["hello-ka"]
    assert sums["ours-asgi"]["paired"] == sums["ours-asgi"]["paired_to"][ZTTP] == 2.0
    assert sums["ours-asgi"]["paired_to"][HTTPTOOLS] == 2.4
    rows = {row[0]: row for row in report.target_rows(results)}
    assert rows["hello-ka paired req/s vs published-zttp"][1:] == ("2.00x", "2.00x", ">= 2.00x",
                                                                   "pass")  # fmt: skip
    assert "hello-ka paired req/s vs published-httptools" not in rows
    # Per round: zttp's median is higher, so it is the reference in every round, even one in
    # which httptools happened to be faster.
    runs = {HTTPTOOLS: [_run(0, 100), _run(1, 100), _run(2, 130)],
            ZTTP: [_run(0, 120), _run(1, 120), _run(2, 120)],
            "ours-asgi": [_run(0, 240), _run(1, 240), _run(2, 240)]}  # fmt: skip
    assert report.baseline("http", runs) == ZTTP
    assert _summaries(runs)["ours-asgi"]["paired"] == 2.0
    # A tie goes to httptools, a failed or absent configuration leaves the other; HTTP/2 pairs
    # with zttp (the only one serving it), files with httptools.
    assert report.faster_published({HTTPTOOLS: 5.0, ZTTP: 5.0}) == HTTPTOOLS
    assert report.faster_published({HTTPTOOLS: None, ZTTP: 1.0}) == ZTTP
    assert report.baseline("ws", {ZTTP: [{"round": 0, "error": "x"}], HTTPTOOLS: runs[ZTTP]}) \
        == HTTPTOOLS
    assert report.baseline("ws", {"ours-asgi": runs["ours-asgi"]}) is None
    assert report.baseline("h2", runs) == ZTTP and report.baseline("file", runs) == HTTPTOOLS
    table = report.scenario_table("hello-ka", "req/s", _summaries(runs), ZTTP)
    assert ("(vs published, paired: over published-zttp, the faster of the two published "
            "configurations here (median req/s))") in table  # fmt: skip


def test_connection_close_is_judged_by_the_cpu_per_request() -> None:
    # wrk saturates first: every server at the same req/s, ours at half the CPU per request of
    # the published uvicorn and 1.1x granian's, then at 0.9x granian's.
    runs = {HTTPTOOLS: [_run(0, 20_000, cpu_us=90.0), _run(1, 20_000, cpu_us=100.0)],
            ZTTP: [_run(0, 19_000, cpu_us=95.0), _run(1, 19_000, cpu_us=95.0)],
            "ours-messaging": [_run(0, 20_000, cpu_us=36.0), _run(1, 20_000, cpu_us=40.0)],
            "ours-asgi": [_run(0, 20_000, cpu_us=50.0), _run(1, 20_000, cpu_us=50.0)],
            "granian": [_run(0, 20_000, cpu_us=44.0), _run(1, 20_000, cpu_us=44.0)]}  # fmt: skip
    rows = {row[0]: row for row in report.target_rows({"hello-close": _summaries(runs)})}
    assert rows["hello-close paired CPU per request vs published-httptools"][1:] == (
        "2.50x", "1.90x", ">= 2.30x", "FAIL (ASGI)")  # fmt: skip
    assert rows["hello-close paired CPU per request vs granian"][1:] == (
        "1.16x", "0.88x", ">= 1.00x", "FAIL (ASGI)")  # fmt: skip
    assert "hello-close paired req/s vs published-httptools" not in rows


def test_targets_missed_are_named() -> None:
    results = _results(2.2, 1.2, granian=2.1)
    results["stream"]["ours-messaging"] = report.summarize([{"round": 0, "error": "x"}], [])
    for scen in ("echo", "ws", "hello-close"):  # the median over the five scenarios: 16
        results[scen]["ours-asgi"]["idle_master_mib"] = 16.0
    results["echo"]["granian"]["p99_ms"] = 1.5
    rows = {row[0]: row for row in report.target_rows(results)}
    assert rows["hello-ka paired req/s vs published-httptools"][1:] == (
        "2.20x", "1.20x", ">= 2.00x", "FAIL (ASGI)")  # fmt: skip
    assert rows["hello-ka paired req/s vs granian"][1:] == ("1.05x", "0.57x", ">= 1.00x",
                                                            "FAIL (ASGI)")  # fmt: skip
    assert rows["stream paired req/s vs published-httptools"][1] == "n/a"
    assert rows["stream paired req/s vs published-httptools"][4] == "FAIL"
    assert rows["echo p99 ms vs granian"][3:] == ("<= 1.50 ms", "FAIL")
    assert rows["idle RSS of the master process"][1:] == ("12.0 MiB", "16.0 MiB", "<= 15.0 MiB",
                                                          "FAIL (ASGI)")  # fmt: skip
    line = report.verdict(list(rows.values()), other_cpu=35.0)
    assert line.startswith("**Verdict: 13 of 17 checks missed: ws paired req/s vs "
                           "published-httptools (ASGI); ws paired req/s vs granian (ASGI);")
    assert "echo p99 ms vs granian;" in line
    assert "stream p99 ms vs published-zttp (messaging)" in line
    assert "idle RSS of the master process (ASGI)**" in line
    assert "WARNING: other processes used 35%" in line


def test_granian_is_judged_only_where_it_ran() -> None:
    text = report.targets_table(_results(3.5, 3.5))
    assert "(granian did not run: 'ahead of granian' is not judged; add --peers granian)" in text
    assert "vs granian" not in text and "(12/12 checks pass)" in text
    results = _results(3.5, 3.5, granian=1.5)
    results["ws"]["granian"] = report.summarize([{"round": 0, "error": "boom"}], [])
    text = report.targets_table(results)
    assert "(granian failed in ws: 'ahead of granian' there is not judged)" in text
    assert "ws paired req/s vs granian" not in text and "(16/16 checks pass)" in text


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


def test_the_runner_runs_both_published_configurations_over_http1(
        monkeypatch: Any, capsys: Any) -> None:  # fmt: skip
    ran: list[tuple[str, str]] = []
    rps = {HTTPTOOLS: 10_000.0, ZTTP: 12_500.0, "granian": 20_000.0}

    def measure(server: Any, name: str, args: Any, scratch: Any) -> dict[str, Any]:
        ran.append((server.name, name))
        return dict(_run(0, rps.get(server.name, 25_000.0)), steal_pct=0.0)

    monkeypatch.setattr(run, "measure", measure)
    monkeypatch.setattr(run, "install_tools", lambda commands: None)
    monkeypatch.setattr(run, "our_python", lambda: "/py")
    monkeypatch.setattr(run, "venv", lambda name, packages, base: Path("/v") / name)
    monkeypatch.setattr(run.procs, "can_pin", lambda: False)
    assert run.main(["--scenarios", "hello-ka,ws", "--rounds", "1", "--peers", "granian"]) == 0
    out = capsys.readouterr().out
    names = ["granian", "ours-asgi", "ours-messaging", HTTPTOOLS, ZTTP]
    assert sorted(ran) == sorted((n, scen) for n in names for scen in ("hello-ka", "ws"))
    assert "(vs published, paired: over published-zttp, the faster of the two" in out
    assert "| hello-ka paired req/s vs published-zttp | 2.00x | 2.00x | >= 2.00x | pass |" in out
    assert "| ws paired req/s vs published-zttp | 2.00x | 2.00x | >= 1.50x | pass |" in out
    assert "| ws paired req/s vs granian | 1.25x | 1.25x | >= 1.00x | pass |" in out
    assert "**Verdict: every target met (8/8 checks pass)**" in out


# The HTTP/2 scenarios (benchmarks/harness/h2load.py and their part of run.py and report.py).

h2load = run.h2load

H2LOAD_OUT = """starting benchmark...
spawning thread #0: 64 total client(s). 20000 total requests
Application protocol: h2c
progress: 100% done

finished in 260.50ms, 76776.02 req/s, 2.88MB/s
requests: 20000 total, 20000 started, 20000 done, 19990 succeeded, 10 failed, 4 errored, 0 timeout
status codes: 19990 2xx, 0 3xx, 6 4xx, 0 5xx
traffic: 768.91KB (787360) total, 179.53KB (183840) headers (space savings 90.22%), 234.38KB (240000) data
                     min         max         mean         sd        +/- sd
time for request:     2.77ms     18.44ms      8.13ms      2.17ms    79.17%
"""  # noqa: E501


def test_h2load_summary_is_parsed() -> None:
    res = h2load.parse(H2LOAD_OUT)
    assert res["rps"] == 76776.02 and res["requests"] == 20000
    assert abs(res["seconds"] - 0.2605) < 1e-9
    assert (res["errors"], res["non_2xx"], res["data_bytes"]) == (10, 6, 240000)
    # Requests a closed connection left undone count as errors even when `failed` misses them.
    short = H2LOAD_OUT.replace("20000 done, 19990 succeeded, 10 failed", "6000 done, "
                               "6000 succeeded, 0 failed").replace("260.50ms", "2.5s")  # fmt: skip
    assert h2load.parse(short)["errors"] == 14000 and h2load.parse(short)["seconds"] == 2.5
    with pytest.raises(run.procs.ServerFailed, match="h2load printed no result"):
        h2load.parse("connect to 127.0.0.1 port 1 failed\n")
    # Latency from its --log-file: start (us), status, duration (us).
    rows = [f"1796533100791634\t200\t{us}" for us in range(1000, 101_000, 1000)]
    p50, p99 = h2load.latency("\n".join([*rows, "1796533100791634\t-1\t999999999"]) + "\n")
    assert (p50, p99) == (50.5, 99.01)  # the failed stream (-1) is left out
    assert h2load.latency("") == (0.0, 0.0)
    assert h2load.latency("1\t200\t2500\n") == (2.5, 2.5)


def test_h2load_command_lines_and_request_counts() -> None:
    assert h2load.argv(8000, "/", 64, 10, requests=256_000) == [
        "h2load", "-c64", "-m10", "-t1", "-N", "10s", "-T", "90s", "-n", "256000",
        "http://127.0.0.1:8000/"]  # fmt: skip
    cmd = h2load.argv(8000, "/echo", 16, 4, seconds=1, data=Path("/tmp/u.bin"), limit=40)
    assert cmd[1:3] == ["-c16", "-m4"] and cmd[6:] == ["-T", "40s", "-D", "1s", "-d", "/tmp/u.bin",
                                                       "http://127.0.0.1:8000/echo"]  # fmt: skip
    assert "--log-file" in h2load.argv(1, "/", 1, 1, requests=1, log=Path("/tmp/l"))
    # About `seconds` at the warm-up's rate, a multiple of -c, under 4,096 streams per connection
    # (zttp's GOAWAY), and at least 4 requests per stream slot.
    assert h2load.size_requests(36_000, 6, 64, 10) == 216_000
    capped = h2load.size_requests(200_000, 6, 64, 10)
    assert capped == 64 * h2load.STREAMS_PER_CONNECTION < 64 * 4096
    assert h2load.size_requests(10, 6, 16, 4) == 256  # 16 x 4 x 4
    assert h2load.size_requests(100, 6, 16, 4) == 592  # 600, down to a multiple of 16


def test_h2_frames_and_one_idle_request_answered() -> None:
    import socket

    req = h2load.get_request("127.0.0.1:8000")
    assert req.startswith(h2load.PREFACE + h2load.frame(h2load.SETTINGS, 0, 0))
    headers = req[len(h2load.preface()) :]
    assert headers[3:9] == bytes((1, 0x5, 0, 0, 0, 1))  # HEADERS, END_STREAM|END_HEADERS, 1
    assert headers[9:] == b"\x82\x86\x84\x41\x0e127.0.0.1:8000"
    client, server = socket.socketpair()
    with client, server:
        client.settimeout(5)
        server.sendall(h2load.frame(h2load.SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00\x64")
                       + h2load.frame(h2load.HEADERS, 0x4, 1, b"\x88")
                       + h2load.frame(h2load.DATA, 0x1, 1, b"Hello, world"))  # fmt: skip
        h2load._answered(client)
        assert server.recv(100) == h2load.frame(h2load.SETTINGS, h2load.ACK, 0)
        assert h2load._still_open(client)
        client.settimeout(5)  # _still_open() left it non-blocking
        server.sendall(h2load.frame(h2load.GOAWAY, 0, 0, bytes(8)))
        with pytest.raises(run.procs.ServerFailed, match="GOAWAY"):
            h2load._answered(client)
        server.close()
        assert not h2load._still_open(client)


def test_h2_scenarios_and_groups() -> None:
    args = run.parse_args(["--scenarios", "h2", "--h2-idle-conns", "0"])
    assert args.scenarios == ["h2-hello", "h2-download", "h2-upload"] and args.h2_idle_conns == 0
    assert run.parse_args(["--scenarios", "h1,ws"]).scenarios == loads.GROUPS["h1"]
    shapes = {n: (s.module, s.clients, s.streams) for n, s in loads.SCENARIOS.items()
              if s.kind == "h2"}  # fmt: skip
    assert shapes == {"h2-hello": ("hello", 64, 10), "h2-download": ("download", 16, 4),
                      "h2-upload": ("echo", 16, 4)}  # fmt: skip
    assert set(report.H2_SCENARIOS) == set(loads.GROUPS["h2"])


def test_the_download_app_answers_the_body_the_check_expects() -> None:
    sys.path.insert(0, str(RUN_PY.parent))
    try:
        from apps import download
    finally:
        sys.path.remove(str(RUN_PY.parent))
    assert download.BODY == h2load.DOWNLOAD_BODY and len(download.BODY) == 2**20
    assert (b"content-length", b"1048576") in download._START["headers"]
    assert download._REPLY["content"] is download._BODY["body"] is download.BODY


def test_server_command_lines_over_h2() -> None:
    peers = {"granian": Path("/v/granian"), "hypercorn": Path("/v/hypercorn")}
    todo = {s.name: s for s in run.servers("/py", Path("/v/pub"), peers)}
    pub = todo[ZTTP].command("hello", 8000, h2=True)
    assert pub[-5:] == ["--loop", "uvloop", "--http", "zttp", "--http2"]
    assert todo[ZTTP].command("hello", 8000)[-4:] == ["--http", "zttp", "--ws", "websockets"]
    assert todo[HTTPTOOLS].command("hello", 8000)[-4:] == ["--http", "httptools", "--ws",
                                                           "websockets"]  # fmt: skip
    # Both over HTTP/1.1 and WebSockets; zttp alone over HTTP/2, httptools alone for files.
    assert (todo[HTTPTOOLS].kinds, todo[ZTTP].kinds) == (("http", "ws", "file"),
                                                         ("http", "ws", "h2"))  # fmt: skip
    ours = todo["ours-asgi"].command("download", 8001, h2=True)
    assert ours[:4] == ["/py", "-m", "uvicorn", "apps.download:app"]
    assert ours[-2:] == ["--http", "2"]
    assert todo["ours-messaging"].command("hello", 1, h2=True)[3] == "apps.hello:mi"
    granian = todo["granian"].command("hello", 8002, h2=True)
    assert granian[-3:] == ["--http", "2", "apps.hello:app"] and "--http" not in todo[
        "granian"].command("hello", 8002)  # fmt: skip
    hyper = todo["hypercorn"].command("echo", 8003, h2=True)
    assert hyper[-3:-1] == ["--config", str(RUN_PY.parent / "harness" / "hypercorn_h2.toml")]
    assert "127.0.0.1:8003" in hyper and hyper[-1] == "apps.echo:app"
    conf = Path(hyper[-2]).read_text()
    assert "keep_alive_max_requests = 100000000" in conf


def test_venvs_are_completed_not_rebuilt(monkeypatch: Any, tmp_path: Path) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(env, "VENVS", tmp_path)

    def fake_run(cmd: list[str], **kw: Any) -> None:
        calls.append(cmd)
        if cmd[1:3] == ["-m", "venv"]:
            Path(cmd[-1]).mkdir(parents=True)

    monkeypatch.setattr(env.subprocess, "run", fake_run)
    path = run.venv("published", ["uvicorn[standard]"], "python3")
    assert [c[1:3] for c in calls] == [["-m", "venv"], ["-m", "pip"]]
    calls.clear()
    run.venv("published", ["uvicorn[standard]", "zttp"], "python3")
    assert len(calls) == 1 and calls[0][-1] == "zttp"  # only what is missing, no --clear
    calls.clear()
    run.venv("published", ["uvicorn[standard]"], "python3")
    assert calls == [] and (path / "bench-packages.txt").read_text() == "uvicorn[standard] zttp"
    for name in ("uvicorn-0.55.0", "zttp-0.0.35", "h11-0.16.0", "Hypercorn-0.18.0"):
        (path / "lib/python3.11/site-packages" / f"{name}.dist-info").mkdir(parents=True)
    assert run.versions([path]) == "Hypercorn 0.18.0, uvicorn 0.55.0, zttp 0.0.35"


def _h2_results(ours: float, hyper: float | None = 0.1,
                granian: float | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The HTTP/2 scenarios: published at 30,000 and 36,000 req/s, the others at a multiple."""
    out = {}
    for scen in report.H2_SCENARIOS:
        base = [_run(0, 30_000), _run(1, 36_000)]
        runs = {ZTTP: base, "ours-messaging": [_run(0, 30_000 * ours),
                                                          _run(1, 36_000 * ours)]}  # fmt: skip
        runs["ours-asgi"] = [dict(r, mib_s=1000.0, conn_kib=4.0) for r in runs["ours-messaging"]]
        if hyper is not None:
            runs["hypercorn"] = [_run(0, 30_000 * hyper), _run(1, 36_000 * hyper)]
        if granian is not None:
            runs["granian"] = [_run(0, 30_000 * granian), _run(1, 36_000 * granian)]
        refs = {r: runs[r] for r in report.H2_REFS if r in runs}
        out[scen] = {n: report.summarize(r, base, refs) for n, r in runs.items()}
    return out


def test_h2_targets_paired_to_both_references() -> None:
    text = report.h2_targets_table(_h2_results(1.6))
    assert ("| h2-hello paired req/s vs the published uvicorn with zttp | 1.60x | 1.60x "
            "| >= 1.50x | pass |") in text  # fmt: skip
    assert "| h2-upload paired req/s vs hypercorn | 16.00x | 16.00x | >= 5.00x | pass |" in text
    assert "**Verdict: every target met (6/6 checks pass)**" in text
    missed = report.h2_targets_table(_h2_results(1.6, hyper=0.4))
    assert "| h2-download paired req/s vs hypercorn | 4.00x | 4.00x | >= 5.00x | FAIL |" in missed
    assert "**Verdict: 3 of 6 checks missed: h2-hello paired req/s vs hypercorn;" in missed
    alone = report.h2_targets_table(_h2_results(2.0, hyper=None))
    assert "(hypercorn did not run: the >= 5x target over it is not judged)" in alone
    assert "vs hypercorn" not in alone.split("(hypercorn")[0]
    assert "(3/3 checks pass)" in alone
    # Granian is the aim: shown with ours over it, never counted by the verdict.
    aimed = report.h2_targets_table(_h2_results(1.6, granian=2.0))
    assert "| h2-upload paired req/s vs granian | 0.80x | 0.80x | >= 1.00x | not reached |" in aimed
    assert "**Verdict: every target met (6/6 checks pass)**" in aimed
    assert "vs granian" not in text and "vs granian" not in alone
    # A reference that failed in a scenario: that check is left out, and the table says so.
    broken = _h2_results(1.6, granian=1.0)
    broken["h2-upload"]["hypercorn"] = {"error": "boom", "failed": 3}
    broken["h2-hello"]["granian"] = {"error": "boom", "failed": 3}
    text = report.h2_targets_table(broken)
    assert "(hypercorn failed in h2-upload: the >= 5x there is not judged)" in text
    assert "(granian failed in h2-hello: the >= 1x there is not judged)" in text
    assert "h2-upload paired req/s vs hypercorn" not in text and "(5/5 checks pass)" in text


def test_h2_tables_show_throughput_and_idle_memory_columns() -> None:
    sums = _h2_results(1.6)["h2-download"]
    sums["granian"] = dict(sums["hypercorn"], conn_error="the server closed 3 of 1000 idle h2c")
    table = report.scenario_table("h2-download", "req/s", sums)
    assert "| idle worker MiB | MiB/s | KiB per idle h2 conn | vs published |" in table
    assert "| 20.0 | 1,000 | 4.0 | 1.60x | 1.60x | 0 |" in table  # ours-asgi
    assert "| 20.0 | - | - | 0.10x |" in table  # published: neither measured
    assert "granian, idle connections:\n    the server closed 3" in table
    assert "MiB/s" not in report.scenario_table("hello-ka", "req/s", _results(2, 2)["hello-ka"])
    assert sums["ours-asgi"]["paired_to"] == {ZTTP: 1.6, "hypercorn": 16.0}


def test_the_runner_pairs_h2_runs_with_each_peer_and_prints_the_h2_verdict(
        monkeypatch: Any, capsys: Any) -> None:  # fmt: skip
    ran: list[tuple[str, str]] = []
    rps = {ZTTP: 30_000.0, "hypercorn": 3_000.0, "granian": 60_000.0}

    def measure(server: Any, name: str, args: Any, scratch: Any) -> dict[str, Any]:
        ran.append((server.name, name))
        return dict(_run(0, rps.get(server.name, 50_000.0)), steal_pct=0.0)

    monkeypatch.setattr(run, "measure", measure)
    monkeypatch.setattr(run, "install_tools", lambda commands: None)
    monkeypatch.setattr(run, "our_python", lambda: "/py")
    monkeypatch.setattr(run, "venv", lambda name, packages, base: Path("/v") / name)
    monkeypatch.setattr(run.procs, "can_pin", lambda: False)
    assert run.main(["--scenarios", "h2-hello", "--rounds", "1",
                     "--peers", "granian,hypercorn"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    servers = ["granian", "hypercorn", "ours-asgi", "ours-messaging", ZTTP]  # not httptools
    assert sorted(ran) == [(n, "h2-hello") for n in servers]
    assert "Targets (issue 16)" not in out and "Targets (issue 12)" in out
    assert "| h2-hello paired req/s vs hypercorn | 16.67x | 16.67x | >= 5.00x | pass |" in out
    assert ("| h2-hello paired req/s vs granian | 0.83x | 0.83x | >= 1.00x | not reached |"
            in out)  # fmt: skip
    assert "**Verdict: every target met (2/2 checks pass)**" in out


def test_file_scenarios_group_and_meters() -> None:
    assert run.parse_args(["--scenarios", "files"]).scenarios == ["file-1m", "file-64m"]
    assert not set(loads.GROUPS["files"]) & set(run.parse_args([]).scenarios)  # not by default
    assert {n: (s.module, s.path, s.clients) for n, s in loads.SCENARIOS.items()
            if s.kind == "file"} == {"file-1m": ("files", "/file-1m", 16),
                                     "file-64m": ("files", "/file-64m", 16)}  # fmt: skip
    assert set(report.FILE_SCENARIOS) == set(loads.GROUPS["files"]) == set(loads.FILE_SIZES)
    res = loads.parse_wrk("RESULT 10 2000000 0 0 0 0 0 1200 4500\nBYTES 1073741824\n")
    assert res["bytes_s"] == 2**29 and res["rps"] == 5
    # Throughput from the bytes received (a 64 MiB response in flight counts), CPU per MiB.
    meters = loads.file_meters("file-64m", dict(res, server_cpu_s=0.5), 2)
    assert meters["mib_s"] == 512 and meters["rps"] == 8 and meters["requests"] == 16
    assert meters["cpu_us_mib"] == 1e6 * 0.5 / 1024
    assert "bytes_s" not in loads.parse_wrk("RESULT 10 2000000 0 0 0 0 0 1200 4500\n")
    assert "BYTES" in loads.lua_script("file-1m")


def _file_results(ours: float, granian: float | None = 1.0) -> dict[str, dict[str, Any]]:
    out = {}
    for scen in report.FILE_SCENARIOS:
        base = [_run(0, 100), _run(1, 120)]
        runs = {HTTPTOOLS: base, "ours-messaging": [_run(0, 100 * ours), _run(1, 120 * ours)],
                "ours-asgi": [_run(0, 100 * ours), _run(1, 120 * ours)]}  # fmt: skip
        if granian is not None:
            runs["granian"] = [_run(0, 100 * granian), _run(1, 120 * granian)]
        refs = {r: runs[r] for r in report.FILE_REFS if r in runs}
        out[scen] = {name: report.summarize(r, base, refs) for name, r in runs.items()}
    return out


def test_file_targets_paired_bytes_per_second() -> None:
    text = report.file_targets_table(_file_results(4.0, granian=3.0))
    assert ("| file-64m paired bytes/s vs the published uvicorn | 4.00x | 4.00x | >= 3.00x "
            "| pass |") in text  # fmt: skip
    assert "| file-1m paired bytes/s vs granian | 1.33x | 1.33x | >= 1.00x | pass |" in text
    assert "**Verdict: every target met (4/4 checks pass)**" in text
    missed = report.file_targets_table(_file_results(2.0, granian=3.0))
    assert "| file-1m paired bytes/s vs granian | 0.67x | 0.67x | >= 1.00x | FAIL |" in missed
    assert "**Verdict: 4 of 4 checks missed" in missed
    alone = report.file_targets_table(_file_results(4.0, granian=None))
    assert "(granian did not run or failed in a scenario: the >= 1x there is not judged)" in alone
    assert "(2/2 checks pass)" in alone


def test_the_files_app_makes_its_files_and_answers_with_them(
        monkeypatch: Any, tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("UVICORN_BENCH_FILES", str(tmp_path))
    monkeypatch.syspath_prepend(str(RUN_PY.parent))
    monkeypatch.delitem(sys.modules, "apps.files", raising=False)
    import asyncio

    from apps import files

    for url, size in files.SIZES.items():
        data = Path(files.PATHS[url]).read_bytes()
        assert data == bytes(range(256)) * (size // 256) and size == loads.FILE_SIZES[url[1:]]
        assert Path(files.PATHS[url]).parent == tmp_path
    sent: list[dict[str, Any]] = []

    class Reply:
        async def send(self, message: dict[str, Any]) -> None:
            sent.append(message)

    asyncio.run(files.mi({"path": "/file-1m"}, {"reply": Reply()}))
    assert sent == [{"status": 200, "headers": files._TYPE, "file": files.PATHS["/file-1m"]}]


def test_the_runner_installs_starlette_and_prints_the_file_verdict(
        monkeypatch: Any, capsys: Any) -> None:  # fmt: skip
    installed: dict[str, list[str]] = {}
    rps = {HTTPTOOLS: 10.0, "granian": 25.0}

    def measure(server: Any, name: str, args: Any, scratch: Any) -> dict[str, Any]:
        return dict(_run(0, rps.get(server.name, 40.0)), steal_pct=0.0)

    def venv(name: str, packages: list[str], base: str) -> Path:
        installed[name] = packages
        return Path("/v") / name

    monkeypatch.setattr(run, "measure", measure)
    monkeypatch.setattr(run, "install_tools", lambda commands: None)
    monkeypatch.setattr(run, "our_python", lambda: "/py")
    monkeypatch.setattr(run, "venv", venv)
    monkeypatch.setattr(run.procs, "can_pin", lambda: False)
    assert run.main(["--scenarios", "files", "--rounds", "1", "--peers", "granian"]) == 0
    out = capsys.readouterr().out
    assert installed == {"published": ["uvicorn[standard]", "zttp", "starlette"],
                         "granian": ["granian[uvloop]", "starlette"]}  # fmt: skip
    assert "Targets (issue 16)" not in out and "Targets (issue 13)" in out
    assert "| file-64m paired bytes/s vs the published uvicorn | 4.00x | 4.00x |" in out
    assert "| file-1m paired bytes/s vs granian | 1.60x | 1.60x | >= 1.00x | pass |" in out
    assert "CPU us/MiB" not in out  # (the canned runs have no file meters)


# run.py --callgrind: harness/callgrind.py and its fixed-size load, harness/counted.py.


def test_callgrind_options() -> None:
    args = run.parse_args(["--callgrind"])
    assert args.scenarios == ["hello-ka", "hello-close", "ws"]
    assert (args.rounds, args.connections) == (2, 16)
    timed = run.parse_args([])  # the timed runs keep their own defaults
    assert (timed.rounds, timed.connections, timed.callgrind) == (5, 64, False)
    args = run.parse_args(["--callgrind", "--scenarios", "stream,echo", "--rounds", "3"])
    assert args.scenarios == ["stream", "echo"] and args.rounds == 3
    with pytest.raises(SystemExit):
        run.parse_args(["--callgrind", "--scenarios", "h2-hello"])


def test_callgrind_counts_are_read_from_every_thread_and_never_without_pids() -> None:
    answer = """PID 15078: /v/bin/python -m uvicorn

  Totals:        Ir
   Th 1  74,886,224

PID 15080: /v/bin/python -m uvicorn

  Totals:        Ir
   Th 1   1,000
   Th 3     250
"""
    assert callgrind.totals(answer) == 74_887_474
    with pytest.raises(run.procs.ServerFailed, match="no counts"):
        callgrind.totals("PID 1: x\n  OK.\n")
    # Without pids callgrind_control acts on every callgrind run of the machine.
    with pytest.raises(run.procs.ServerFailed, match="no process of the server"):
        callgrind.control("--zero", [])
    import os

    assert callgrind.callgrind_pids(os.getpid()) == []  # (this process is not under valgrind)
    argv = callgrind.valgrind(["/py", "-m", "uvicorn"], Path("/tmp/x"))
    assert argv[:4] == ["valgrind", "--tool=callgrind", "--trace-children=yes",
                        "--trace-syscalls=yes"]  # fmt: skip
    assert "--log-file=/tmp/x/valgrind.%p.log" in argv and argv[-3:] == ["/py", "-m", "uvicorn"]


def test_callgrind_system_calls_are_counted_from_valgrinds_logs(tmp_path: Path) -> None:
    (tmp_path / "valgrind.10.log").write_text(
        "==10== Callgrind\n"
        "SYSCALL[10,1](232) sys_epoll_wait ( 3, 0x1, 1024, 0 ) --> Success(0x2)\n"
        "SYSCALL[10,1](  0) sys_read ( 7, 0x2, 262144 ) --> Success(0x4c)\n"
        "SYSCALL[10,1](228) sys_clock_gettime( 1, 0x1fff0003c0 )[sync] --> Success(0x0)\n")
    (tmp_path / "valgrind.11.log").write_text(
        "SYSCALL[11,3](  1) sys_write ( 7, 0x3, 97 ) --> Success(0x61)\n")
    (tmp_path / "output.log").write_text("SYSCALL[12,1](  1) sys_write ( 1, 0x3, 9 )\n")
    assert callgrind.syscalls(tmp_path) == 3  # not clock_gettime, not the server's own output


def test_callgrind_subtracts_the_short_run_from_the_long_one(monkeypatch: Any) -> None:
    # Each run costs 5,000,000 instructions and 40 system calls once (connections, the zeroing),
    # plus 80,000 and 3 a request.
    done: list[int] = []
    zeroed: list[list[int]] = []

    def control(option: str, pids: list[int]) -> str:
        if option == "--zero":
            zeroed.append(list(pids))
            return "  OK.\n"
        return f"  Totals: Ir\n   Th 1  {5_000_000 + 80_000 * done[-1]:,}\n"

    monkeypatch.setattr(callgrind, "control", control)
    monkeypatch.setattr(callgrind, "callgrind_pids", lambda root: [root, root + 1])
    monkeypatch.setattr(callgrind, "settle", lambda root: None)
    monkeypatch.setattr(callgrind, "syscalls",
                        lambda out_dir: 1000 + sum(40 + 3 * n for n in done))  # fmt: skip
    assert callgrind.per_request(done.append, 100, 240, 1200, Path("/x")) == (80_000, 3.0)
    assert done == [240, 1200] and zeroed == [[100, 101], [100, 101]]
    assert callgrind.summarize([80_000, 80_400, 79_800], [3.0, 3.5, 2.0]) == {
        "per_request": 80_000, "spread_pct": 0.75, "syscalls_per_request": 3.0}  # fmt: skip


def test_callgrind_ratios_over_the_published_configuration_with_fewer_instructions() -> None:
    def got(n: float) -> dict[str, Any]:
        return {"per_request": n, "spread_pct": 0.1, "rounds": [n, n],
                "syscalls_per_request": n / 20_000, "syscalls": [n / 20_000] * 2}  # fmt: skip

    results = {
        "hello-ka": {HTTPTOOLS: got(104_000), ZTTP: got(90_000), "granian": got(60_000),
                     "ours-messaging": got(45_000), "ours-asgi": got(40_000)},
        "ws": {HTTPTOOLS: got(80_000), ZTTP: {"error": "exited with status 1\nTraceback"},
               "ours-messaging": got(50_000), "ours-asgi": got(64_000)},
    }  # fmt: skip
    rows = callgrind.ratio_rows(results)
    assert rows[0] == ["hello-ka", ZTTP, "2.00x", "2.25x", ">= 2x", "1.33x", "1.50x"]
    assert rows[1] == ["ws", HTTPTOOLS, "1.60x", "1.25x", ">= 1.5x", "-", "-"]
    names = [HTTPTOOLS, ZTTP, "ours-messaging", "ours-asgi", "granian"]
    text = callgrind.tables(results, names)
    assert "| hello-ka | 1200 - 240 | 104,000 (0.1%) | 90,000 (0.1%) | 45,000 (0.1%) |" in text
    assert ("| ws | 1200 - 240 | 80,000 (0.1%) | FAILED | 50,000 (0.1%) | 64,000 (0.1%) | - |"
            in text)  # fmt: skip
    assert "published-zttp, ws FAILED:\n    exited with status 1\n    Traceback" in text
    assert "| hello-ka | 1200 - 240 | 5.20 | 4.50 | 2.25 | 2.00 | 3.00 |" in text
    assert "| ws | 1200 - 240 | 4.00 | FAILED | 2.50 | 3.20 | - |" in text


def test_counted_load_splits_evenly_and_reads_whole_responses() -> None:
    import socket
    import threading

    assert counted.shares(1200, 16) == [75] * 16
    assert counted.shares(10, 4) == [3, 3, 2, 2] and counted.shares(2, 4) == [1, 1]
    assert counted.request("hello-close", 80).endswith(b"Connection: close\r\n\r\n")
    assert b"Content-Length: 65536\r\n\r\n" in counted.request("echo", 80)
    frame = counted.ws_frame(b"m" * 64)
    assert frame[:2] == b"\x81\xc0" and len(frame) == 2 + 4 + 64
    assert bytes(b ^ frame[2 + i % 4] for i, b in enumerate(frame[6:])) == b"m" * 64
    client, server = socket.socketpair()
    with client, server:
        client.settimeout(5)
        chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + b"400\r\n" + b"x" * 1024 + b"\r\n" + b"0\r\n\r\n")  # fmt: skip
        sized = b"HTTP/1.1 404 Not Found\r\nContent-Length: 12\r\n\r\nHello, world"

        def send() -> None:  # in small pieces, as a slow server may
            data = chunked + sized + b"HTTP/1.1 101 Switching"
            for i in range(0, len(data), 7):
                server.sendall(data[i : i + 7])

        sender = threading.Thread(target=send)
        sender.start()
        buf = bytearray()
        assert counted.read_response(client, buf) == 200
        assert counted.read_response(client, buf) == 404
        sender.join()
        server.close()
        with pytest.raises(counted.LoadFailed, match="closed the connection"):
            counted.read_response(client, buf)


def test_counted_load_sends_exactly_the_requests_asked_for() -> None:
    import http.server
    import threading

    seen: list[tuple[int, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append((self.client_address[1], self.headers.get("Connection", "")))
            close = self.headers.get("Connection") == "close"
            self.send_response(200)
            self.send_header("Content-Length", "12")
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"Hello, world")
            self.close_connection = close

        def log_message(self, *args: Any) -> None: ...

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        counted.run("hello-ka", port, 10, 3)
        assert len(seen) == 10 and len({p for p, _ in seen}) == 3  # 4 + 3 + 3, kept alive
        seen.clear()
        counted.run("hello-close", port, 5, 2)
        assert len(seen) == 5 and len({p for p, _ in seen}) == 5
        assert {c for _, c in seen} == {"close"}
    finally:
        server.shutdown()
        server.server_close()
