"""Benchmark this uvicorn against the published one (and other servers), side by side.

One command, from the checkout:

    python3 benchmarks/run.py

It installs the published uvicorn (``uvicorn[standard]``: httptools + uvloop, and zttp) into a
venv of its own, /tmp/uvicorn-bench/published (reused when it is there; delete it to reinstall;
never the project's .venv, where ``uvicorn`` is this checkout), serves the same apps
(benchmarks/apps/) with it and with this checkout's server (the project's .venv, or this
interpreter when it imports uvicorn from the checkout) and prints a markdown table per scenario
and the table of the performance targets with a verdict. Ours runs each scenario twice: a
messaging-interface app (``ours-messaging``) and an ASGI 3 app (``ours-asgi``); the published
uvicorn and the peers run the ASGI app. Over HTTP/1.1 and WebSockets the published uvicorn runs
twice too: ``published-httptools`` (`--http httptools`) and ``published-zttp`` (`--http zttp`),
both `--ws websockets`.

Issue 16's targets are paired ratios to the faster of the two in each scenario: the one whose
median req/s over its own rounds of that scenario is higher (httptools on a tie; the other when
one failed). Every ratio of ours is then the median over rounds of ours / that configuration's
req/s in the same round (the "paired" column, and the target rows); for hello-close, where wrk
saturates first, of that configuration's server CPU per request over ours in the same round (the
issue's "server CPU per request where wrk saturates"). The targets: ws >= 1.5x, hello-ka >=
2.0x, stream >= 3.0x, echo >= 2.0x, hello-close >= 2.3x on both interfaces; ahead of granian
(paired >= 1.0x) in each of them when `--peers granian` ran; p99 no higher than the lowest
p99 of any other server in the scenario; an idle master process (the process started) at most 15
MiB RSS and an idle worker (the largest leaf of its process tree) at most 22 MiB, medians over the
scenarios. The verdict line names every check missed.

Scenarios: hello-ka (wrk -t1 -c64, keep-alive GET, 'Hello, world'), hello-close (the same with
Connection: close), stream (16 x 1 KiB body messages, chunked), echo (POST 64 KiB echoed back),
ws (64 WebSocket connections, each sending a 64-byte text message and waiting for its echo; the
client is harness/ws_client.py under the published venv's Python, which has uvloop); and over
HTTP/2 (h2c, prior knowledge; h2load, harness/h2load.py): h2-hello (-c64 -m10), h2-download
(1 MiB answers, -c16 -m4) and h2-upload (64 KiB echoed, -c16 -m4). There the published uvicorn
runs `--http zttp --http2` (published-zttp alone), granian `--http 2`, hypercorn with
keep_alive_max_requests raised (harness/hypercorn_h2.toml) and ours `--http 2`. h2-hello also
opens --h2-idle-conns connections that each did one request and stay open, and reports the
worker's RSS growth per connection. Static files (wrk -c16, apps/files.py): file-1m and
file-64m, Starlette's FileResponse (http.response.pathsend where the server offers it, as ours
and granian do; the published uvicorn gets the file streamed through Python), ours-messaging a
reply with 'file'; MiB/s and the server's CPU per MiB, paired against the published uvicorn and
granian (starlette is installed into their venvs; the published uvicorn is published-httptools
there, as when issue 13 set those targets). `--scenarios h1` (the default) / `h2` / `files` select
a group.

Method: every run starts a fresh server (one worker) pinned with taskset to one core, the load
generator on the other; a warm-up, then the measured window. Rounds interleave the servers
(round r starts with server r mod n), so every ratio compares numbers from the same run; the
"paired" ratio is the median of the per-round ratios. Server CPU is the whole process tree's
(master and worker), read from /proc around the measured window.

    python3 benchmarks/run.py --rounds 5 --duration 10 --scenarios hello-ka,stream
    python3 benchmarks/run.py --peers granian,hypercorn --json /tmp/bench.json
    python3 benchmarks/run.py --scenarios h2 --peers granian,hypercorn --rounds 3
    python3 benchmarks/run.py --callgrind --peers granian

`--callgrind` counts instructions per request instead of timing (harness/callgrind.py says how):
they do not move with the machine's load, so ratios can be checked on a busy host.

The exit status is 0 even when targets are missed: it measures, the verdict line judges.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
if str(HERE) not in sys.path:  # imported from the tests rather than run as a script
    sys.path.insert(0, str(HERE))

from harness import callgrind, h2load, loads, procs, report  # noqa: E402
from harness.env import (  # noqa: E402
    install_tools,
    log,
    machine,
    our_python,
    venv,
    versions,
)

# zttp: the published uvicorn's other HTTP/1.1 parser (`--http zttp`) and its HTTP/2 (`--http2`)
PUBLISHED = ["uvicorn[standard]", "zttp"]
FILE_APPS = ["starlette"]  # the file scenarios' app (apps/files.py), in every venv
PEERS: dict[str, list[str]] = {"granian": ["granian[uvloop]"], "hypercorn": ["hypercorn", "uvloop"]}
PEER_ARGS = {  # one worker, uvloop, no access log; the executable is bin/<peer> of its venv
    "granian": ["--interface", "asgi", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1",
                "--loop", "uvloop", "--no-access-log", "--log-level", "warning", "{app}:app"],
    "hypercorn": ["--bind", "127.0.0.1:{port}", "--workers", "1", "--worker-class", "uvloop",
                  "--log-level", "warning", "{app}:app"],
}  # fmt: skip
# Inserted before the app to serve h2c with prior knowledge. Hypercorn's default of 1,000
# requests per connection would fail most of an h2load run (it does not connect again).
PEER_H2_ARGS = {"granian": ["--http", "2"],
                "hypercorn": ["--config", str(HERE / "harness" / "hypercorn_h2.toml")]}  # fmt: skip
# What each kind of scenario runs.
KIND_TOOLS = {"http": ["wrk"], "h2": ["h2load", "curl"], "file": ["wrk"]}
CLIENT_CPU, SERVER_CPU = 0, 1
# A round in which the hypervisor took more than this share of either core from one of its runs
# (steal time, /proc/stat) is measured again, up to --redos times: on a shared host such a burst
# slows whichever server happens to run, which is no property of either.
STEAL_LIMIT = 2.0


@dataclass
class Server:
    name: str
    argv: list[str]  # "{app}" and "{port}" are filled in per run
    cwd: Path
    h2_argv: list[str] | None = None  # the same server serving h2c with prior knowledge
    kinds: tuple[str, ...] = ("http", "ws", "h2", "file")  # the kinds of scenario it runs

    def command(self, module: str, port: int, h2: bool = False) -> list[str]:
        argv = self.h2_argv if h2 and self.h2_argv is not None else self.argv
        return [a.format(app=f"apps.{module}", port=port) for a in argv]


def servers(ours: str, published: Path, peers: dict[str, Path]) -> list[Server]:
    """Every server to run, with its HTTP/1.1 and its HTTP/2 command line."""
    common = ["--host", procs.HOST, "--port", "{port}", "--no-access-log", "--log-level", "warning"]
    pub = [str(published / "bin" / "python"), "-m", "uvicorn", "{app}:app", *common,
           "--loop", "uvloop"]  # fmt: skip
    # The published uvicorn twice over HTTP/1.1 (issue 16 pairs ours with the faster of the
    # two in each scenario); over HTTP/2 only zttp serves, and the file targets were set
    # against httptools.
    out = [Server(report.PUBLISHED_HTTPTOOLS, [*pub, "--http", "httptools", "--ws", "websockets"],
                  HERE, kinds=("http", "ws", "file")),
           Server(report.PUBLISHED_ZTTP, [*pub, "--http", "zttp", "--ws", "websockets"], HERE,
                  [*pub, "--http", "zttp", "--http2"], kinds=("http", "ws", "h2"))]  # fmt: skip
    for interface, attr, flag in (("messaging", "mi", "messaging"), ("ASGI", "app", "asgi3")):
        argv = [ours, "-m", "uvicorn", f"{{app}}:{attr}", "--app-dir", "benchmarks",
                "--interface", flag, *common]  # fmt: skip
        out.append(Server(report.OURS[interface], argv, CHECKOUT, [*argv, "--http", "2"]))
    for peer, path in peers.items():
        argv = [str(path / "bin" / peer), *PEER_ARGS[peer]]
        out.append(Server(peer, argv, HERE, [*argv[:-1], *PEER_H2_ARGS[peer], argv[-1]]))
    return out


def measure(server: Server, name: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """One fresh server, checked, warmed up and measured; {"error": ...} when it fails."""
    scen = loads.SCENARIOS[name]
    h2 = scen.kind == "h2"
    port = procs.free_port()
    logfile = scratch / f"{server.name}-{name}-{port}.log"
    proc = procs.Server(server.command(scen.module, port, h2), server.cwd, logfile,
                        args.server_cpu)  # fmt: skip
    try:
        watch = proc.wait_ready(port, scen.path, h2_preface=h2load.preface() if h2 else b"")
        time.sleep(0.3)  # let the worker settle before reading its idle RSS
        idle_worker, idle_tree = watch.idle_rss()
        idle_master = watch.master_rss()
        watch.start()
        if scen.kind == "ws":
            loads.check_ws(port)
            res = loads.run_ws(port, args.ws_python, args.warmup, args.duration,
                               args.connections, args.client_cpu, watch,
                               args.server_cpu)  # fmt: skip
        elif scen.kind == "file":
            loads.check_file(name, port)
            script = scratch / f"{name}.lua"
            script.write_text(loads.lua_script(name))
            if args.warmup > 0:
                loads.run_wrk(name, port, script, args.warmup, scen.clients, args.client_cpu,
                              watch)  # fmt: skip
            res = loads.run_wrk(name, port, script, args.duration, scen.clients,
                                args.client_cpu, watch, args.server_cpu)  # fmt: skip
            res.update(loads.file_meters(name, res, args.duration))
        elif h2:
            res = h2load.run(name, port, args.warmup, args.duration, args.client_cpu, watch,
                             args.server_cpu, scratch, args.h2_idle_conns)  # fmt: skip
        else:
            loads.check_http(name, port)
            script = scratch / f"{name}.lua"
            script.write_text(loads.lua_script(name))
            if args.warmup > 0:
                loads.run_wrk(name, port, script, args.warmup, args.connections,
                              args.client_cpu, watch)  # fmt: skip
            res = loads.run_wrk(name, port, script, args.duration, args.connections,
                                args.client_cpu, watch, args.server_cpu)  # fmt: skip
        watch.stop()
        if proc.proc.poll() is not None:
            raise proc.fail(f"exited with status {proc.proc.returncode} during the run")
        res.update(peak_rss_mib=watch.peak_rss / procs.MIB, idle_worker_mib=idle_worker,
                   idle_tree_mib=idle_tree, idle_master_mib=idle_master,
                   procs=len(watch.seen))  # fmt: skip
        return res
    except procs.ServerFailed as exc:
        text = str(exc)
        if procs.tail(logfile) and procs.tail(logfile) not in text:
            text += "\n" + procs.tail(logfile)
        return {"error": text}
    except Exception as exc:
        return {"error": f"{exc!r}\n{procs.tail(logfile)}".rstrip()}
    finally:
        proc.stop()


def run_scenario(name: str, todo: list[Server], args: argparse.Namespace,
                 scratch: Path) -> tuple[dict[str, list[dict[str, Any]]], int]:  # fmt: skip
    """Every server's runs, round by round; and how many rounds were measured again because
    the host stole more than STEAL_LIMIT % of a core from one of their runs."""
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in todo}
    redone = 0
    for rnd in range(args.rounds):
        first = rnd % len(todo)
        for attempt in range(1 + args.redos):
            results = {}
            for server in todo[first:] + todo[:first]:
                res = results[server.name] = measure(server, name, args, scratch)
                res["round"] = rnd
                if "rps" in res:
                    log(f"  {name} r{rnd} {server.name:<19} {res['rps']:>10,.0f}/s  "
                        f"p50 {res['p50_ms']:.2f}  p99 {res['p99_ms']:.2f} ms  "
                        f"client {res['client_cpu_pct']:.0f}%  steal {res['steal_pct']:.0f}%  "
                        f"errors {res['errors']}")  # fmt: skip
                else:
                    log(f"  {name} r{rnd} {server.name:<19} FAILED: "
                        f"{res['error'].splitlines()[0]}")  # fmt: skip
            stolen = max(r.get("steal_pct", 0.0) for r in results.values())
            if stolen <= STEAL_LIMIT or attempt == args.redos:
                break
            # A round is a comparison: measured again whole, every server in it.
            redone += 1
            log(f"  {name} r{rnd}: the host stole {stolen:.0f}% of a core during the round: "
                "measuring it again")  # fmt: skip
        for server_name, res in results.items():
            runs[server_name].append(res)
    return runs, redone


def count_instructions(args: argparse.Namespace, todo: list[Server], meta: dict[str, Any]) -> int:
    """--callgrind: instructions per request of every server, and the ratios."""
    meta.update(valgrind=callgrind.version(),
                counts={s: callgrind.COUNTS[s] for s in args.scenarios})  # fmt: skip
    log(f"{meta['cpu']} x{meta['cpus']}, Python {meta['python']}, {meta['valgrind']}; "
        f"{len(todo)} servers under callgrind, {args.rounds} rounds each")  # fmt: skip
    started = time.monotonic()
    results = callgrind.run_all(todo, args.scenarios, args.rounds, args.connections,
                                args.server_cpu)  # fmt: skip
    log(f"counted in {(time.monotonic() - started) / 60:.1f} min")
    print(f"## uvicorn instruction counts: {meta['date']}, {meta['cpu']} ({meta['cpus']} CPUs), "
          f"Python {meta['python']}, {meta['valgrind']}\n\n{args.rounds} rounds per server, "
          f"{args.connections} connections, PYTHONHASHSEED=0; {meta['versions']}\n")  # fmt: skip
    print(callgrind.tables(results, [s.name for s in todo]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "callgrind": results}, indent=1))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Five short rounds rather than three long ones: on a shared machine a burst of noise
    # spoils one run, and the median of five paired ratios sets two such rounds aside.
    parser.add_argument("--rounds", type=int, help="default: 5 (--callgrind: 2)")
    parser.add_argument("--duration", type=int, default=6, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per run (0: none)")
    names = ", ".join([*loads.SCENARIOS, *(f"{g} (the {g} group)" for g in loads.GROUPS)])
    parser.add_argument("--scenarios", help=f"of: {names}; default: h1 (--callgrind: "
                        f"{','.join(callgrind.DEFAULT_SCENARIOS)})")  # fmt: skip
    parser.add_argument("--connections", type=int,
                        help=f"default: 64 (--callgrind: {callgrind.CONNECTIONS})")  # fmt: skip
    parser.add_argument("--redos", type=int, default=2,
                        help=f"times a round is measured again when the host stole more than "
                             f"{STEAL_LIMIT:g}%% of a core during it (0: never)")  # fmt: skip
    parser.add_argument("--peers", default="", help=f"comma list of: {', '.join(PEERS)}")
    parser.add_argument("--json", metavar="FILE", help="write every run and summary here")
    parser.add_argument("--h2-idle-conns", type=int, default=1000, metavar="N",
                        help="h2-hello: idle h2c connections measured (0: none)")  # fmt: skip
    parser.add_argument("--callgrind", action="store_true",
                        help="count each server's instructions per request under valgrind over a "
                             "fixed number of requests, instead of timing (harness/callgrind.py)")
    args = parser.parse_args(argv)
    cg = args.callgrind
    args.rounds = (2 if cg else 5) if args.rounds is None else args.rounds
    if args.connections is None:
        args.connections = callgrind.CONNECTIONS if cg else 64
    if args.scenarios is None:
        args.scenarios = ",".join(callgrind.DEFAULT_SCENARIOS) if cg else "h1"
    picked = [s for s in args.scenarios.split(",") if s]
    args.scenarios = list(dict.fromkeys(x for s in picked for x in loads.GROUPS.get(s, [s])))
    args.peers = [p for p in args.peers.split(",") if p]
    if args.rounds < 1 or args.duration < 1 or args.connections < 1:
        parser.error("--rounds, --duration and --connections must be >= 1")
    if args.warmup < 0 or args.redos < 0 or args.h2_idle_conns < 0:
        parser.error("--warmup, --redos and --h2-idle-conns must be >= 0")
    for scen in args.scenarios:
        if scen not in loads.SCENARIOS:
            parser.error(f"unknown scenario {scen!r}")
        if cg and scen not in callgrind.COUNTS:
            parser.error(f"--callgrind counts {', '.join(callgrind.COUNTS)}, not {scen!r}")
    for peer in args.peers:
        if peer not in PEERS:
            parser.error(f"unknown peer {peer!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = {loads.SCENARIOS[s].kind for s in args.scenarios}
    install_tools(["valgrind"] if args.callgrind else
                  [tool for kind in kinds for tool in KIND_TOOLS.get(kind, [])])  # fmt: skip
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if "h2" in kinds and soft < args.h2_idle_conns + 256:  # the idle connections, both ends
        want = args.h2_idle_conns + 256
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard < 0 else min(want, hard), hard))
    args.client_cpu, args.server_cpu = CLIENT_CPU, SERVER_CPU
    if procs.can_pin():
        os.sched_setaffinity(0, {CLIENT_CPU})  # the runner's own sampling stays off the server core
    else:
        log("WARNING: taskset is missing or fewer than 2 CPUs: nothing is pinned")
        args.client_cpu = args.server_cpu = None
    ours = our_python()
    apps = FILE_APPS if "file" in kinds else []  # what apps/files.py imports
    published = venv("published", PUBLISHED + apps, ours)
    peers = {p: venv(p, PEERS[p] + apps, ours) for p in args.peers}
    args.ws_python = str(published / "bin" / "python")
    todo = servers(ours, published, peers)
    meta = dict(machine(), rounds=args.rounds, duration_s=args.duration, warmup_s=args.warmup,
                connections=args.connections, pinned=args.client_cpu is not None,
                servers={s.name: " ".join(s.argv) for s in todo},
                servers_h2={s.name: " ".join(s.h2_argv or []) for s in todo},
                h2_idle_conns=args.h2_idle_conns,
                versions=versions([published, *peers.values()]))  # fmt: skip
    if args.callgrind:
        return count_instructions(args, [s for s in todo if "http" in s.kinds], meta)
    log(f"{meta['cpu']} x{meta['cpus']}, Python {meta['python']}; {len(todo)} servers, "
        f"{args.rounds} rounds of {args.warmup:g}+{args.duration:g} s")  # fmt: skip
    results: dict[str, dict[str, report.Summary]] = {}
    all_runs: dict[str, Any] = {}
    redone: dict[str, int] = {}
    bases: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory(prefix="uvicorn-bench-") as scratch:
        for name in args.scenarios:
            scen = loads.SCENARIOS[name]
            log(f"== {name}: {scen.what}")
            runs, redone[name] = run_scenario(name, [s for s in todo if scen.kind in s.kinds],
                                              args, Path(scratch))  # fmt: skip
            bases[name] = base = report.baseline(scen.kind, runs)
            refs = {r: runs[r] for r in runs if r not in report.OURS.values()}
            results[name] = {s: report.summarize(r, runs.get(base or "", []), refs)
                             for s, r in runs.items()}  # fmt: skip
            all_runs[name] = runs
    pinning = "server and load generator on separate cores" if meta["pinned"] else "unpinned"
    print(f"## uvicorn benchmarks: {meta['date']}, {meta['cpu']} ({meta['cpus']} CPUs), "
          f"Python {meta['python']}\n\n{args.rounds} rounds x {args.duration:g} s "
          f"(+{args.warmup:g} s warm-up), {args.connections} connections (HTTP/2: as each "
          f"scenario says), {pinning}; medians over rounds; {meta['versions']}\n")  # fmt: skip
    for name, sums in results.items():
        scen = loads.SCENARIOS[name]
        unit = "round trips/s" if scen.kind == "ws" else "req/s"
        print(report.scenario_table(f"{name}: {scen.what}", unit, sums, bases[name]))
        if redone[name]:
            print(f"({redone[name]} round(s) measured again: the host stole more than "
                  f"{STEAL_LIMIT:g}% of a core during them)\n")  # fmt: skip
    if kinds - {"h2", "file"}:
        print(report.targets_table(results), flush=True)
    if "file" in kinds:
        print(report.file_targets_table(results), flush=True)
    if "h2" in kinds:
        print(report.h2_targets_table(results), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "summaries": results,
                                               "runs": all_runs}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
