"""Benchmark this uvicorn against the published one (and other servers), side by side.

One command, from the checkout:

    python3 benchmarks/run.py

It installs the published uvicorn (``uvicorn[standard]``: httptools + uvloop) into a venv of its
own, /tmp/uvicorn-bench/published (reused when it is there; delete it to reinstall; never the
project's .venv, where ``uvicorn`` is this checkout), serves the same apps (benchmarks/apps/) with
it and with this checkout's server (the project's .venv, or this interpreter when it imports
uvicorn from the checkout) and prints a markdown table per scenario and the table of the
performance targets with a verdict. Ours runs each scenario twice: a messaging-interface app
(``ours-messaging``) and an ASGI 3 app (``ours-asgi``); the published uvicorn and the peers run the
ASGI app.

Scenarios: hello-ka (wrk -t1 -c64, keep-alive GET, 'Hello, world'), hello-close (the same with
Connection: close), stream (16 x 1 KiB body messages, chunked), echo (POST 64 KiB echoed back),
ws (64 WebSocket connections, each sending a 64-byte text message and waiting for its echo; the
client is harness/ws_client.py under the published venv's Python, which has uvloop); and over
HTTP/2 (h2c, prior knowledge; h2load, harness/h2load.py): h2-hello (-c64 -m10), h2-download
(1 MiB answers, -c16 -m4) and h2-upload (64 KiB echoed, -c16 -m4). There the published uvicorn
runs `--http zttp --http2` (zttp is installed into its venv), granian `--http 2`, hypercorn with
keep_alive_max_requests raised (harness/hypercorn_h2.toml) and ours `--http 2`. h2-hello also
opens --h2-idle-conns connections that each did one request and stay open, and reports the
worker's RSS growth per connection. Static files (wrk -c16, apps/files.py): file-1m and
file-64m, Starlette's FileResponse (http.response.pathsend where the server offers it, as ours
and granian do; the published uvicorn gets the file streamed through Python), ours-messaging a
reply with 'file'; MiB/s and the server's CPU per MiB, paired against the published uvicorn and
granian (starlette is installed into their venvs). `--scenarios h1` (the default) / `h2` /
`files` select a group.

Method: every run starts a fresh server (one worker) pinned with taskset to one core, the load
generator on the other; a warm-up, then the measured window. Rounds interleave the servers
(round r starts with server r mod n), so every ratio compares numbers from the same run; the
"paired" ratio is the median of the per-round ratios. Server CPU is the whole process tree's
(master and worker), read from /proc around the measured window.

    python3 benchmarks/run.py --rounds 5 --duration 10 --scenarios hello-ka,stream
    python3 benchmarks/run.py --peers granian,hypercorn --json /tmp/bench.json
    python3 benchmarks/run.py --scenarios h2 --peers granian,hypercorn --rounds 3

The exit status is 0 even when targets are missed: it measures, the verdict line judges.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
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

from harness import h2load, loads, procs, report  # noqa: E402

VENVS = Path("/tmp/uvicorn-bench")
PUBLISHED = ["uvicorn[standard]"]
PUBLISHED_H2 = ["zttp"]  # the published uvicorn's HTTP/2 (`--http zttp --http2`)
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
TOOLS = {"wrk": "wrk", "h2load": "nghttp2-client", "curl": "curl"}  # command: Debian package
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

    def command(self, module: str, port: int, h2: bool = False) -> list[str]:
        argv = self.h2_argv if h2 and self.h2_argv is not None else self.argv
        return [a.format(app=f"apps.{module}", port=port) for a in argv]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def venv(name: str, packages: list[str], base_python: str) -> Path:
    """/tmp/uvicorn-bench/<name> with `packages`, created on first use, reused afterwards, and
    completed with pip when a run needs a package it does not have yet."""
    path = VENVS / name
    stamp = path / "bench-packages.txt"
    have = stamp.read_text().split() if stamp.exists() else []
    missing = [p for p in packages if p not in have]
    if have and not missing:
        return path
    log(f"installing {' '.join(missing)} into {path}")
    if not have:
        subprocess.run([base_python, "-m", "venv", "--clear", str(path)], check=True)
    subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", *missing], check=True)  # fmt: skip
    stamp.write_text(" ".join(have + missing))
    return path


def versions(paths: list[Path]) -> str:
    """The servers' versions in those venvs (their dist-info folders): 'uvicorn 0.55.0, ...'."""
    names = ("uvicorn", "zttp", "granian", "hypercorn")
    found = [info.name.removesuffix(".dist-info").replace("-", " ", 1) for path in paths
             for info in sorted(path.glob("lib/python*/site-packages/*.dist-info"))
             if info.name.split("-")[0].lower() in names]  # fmt: skip
    return ", ".join(found)


def install_tools(commands: list[str]) -> None:
    """The load generators' Debian packages (TOOLS), as root or through sudo."""
    packages = [TOOLS[c] for c in commands if shutil.which(c) is None]
    if not packages:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    what = f"apt-get install -y {' '.join(packages)}"
    if shutil.which("apt-get") is None or (sudo and shutil.which("sudo") is None):
        sys.exit(f"missing: {', '.join(packages)}: install them (Debian: {what}) and run again")
    log(f"installing {' '.join(packages)} ({what})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        if subprocess.run([*sudo, *step], env=env).returncode != 0:
            sys.exit(f"could not install {what} ({' '.join(step)} failed): install, run again")


def our_python() -> str:
    """The project's .venv, else this interpreter, provided it imports uvicorn from the checkout."""
    for python in (CHECKOUT / ".venv" / "bin" / "python", Path(sys.executable)):
        if not python.exists():
            continue
        found = subprocess.run([str(python), "-c", "import uvicorn; print(uvicorn.__file__)"],
                               cwd=CHECKOUT, capture_output=True, text=True)  # fmt: skip
        if found.stdout.strip().startswith(str(CHECKOUT / "uvicorn")):
            return str(python)
    sys.exit(f"no interpreter imports uvicorn from {CHECKOUT}: run ./scripts/test once "
             "(it creates .venv) or `pip install -e .`")  # fmt: skip


def servers(ours: str, published: Path, peers: dict[str, Path]) -> list[Server]:
    """Every server to run, with its HTTP/1.1 and its HTTP/2 command line."""
    common = ["--host", procs.HOST, "--port", "{port}", "--no-access-log", "--log-level", "warning"]
    pub = [str(published / "bin" / "python"), "-m", "uvicorn", "{app}:app", *common,
           "--loop", "uvloop"]  # fmt: skip
    out = [Server(report.BASELINE, [*pub, "--http", "httptools", "--ws", "websockets"], HERE,
                  [*pub, "--http", "zttp", "--http2"])]  # fmt: skip
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
                   idle_tree_mib=idle_tree, procs=len(watch.seen))  # fmt: skip
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
                    log(f"  {name} r{rnd} {server.name:<15} {res['rps']:>10,.0f}/s  "
                        f"p50 {res['p50_ms']:.2f}  p99 {res['p99_ms']:.2f} ms  "
                        f"client {res['client_cpu_pct']:.0f}%  steal {res['steal_pct']:.0f}%  "
                        f"errors {res['errors']}")  # fmt: skip
                else:
                    log(f"  {name} r{rnd} {server.name:<15} FAILED: "
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


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(),
            "date": datetime.date.today().isoformat()}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Five short rounds rather than three long ones: on a shared machine a burst of noise
    # spoils one run, and the median of five paired ratios sets two such rounds aside.
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=6, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per run (0: none)")
    names = ", ".join([*loads.SCENARIOS, *(f"{g} (the {g} group)" for g in loads.GROUPS)])
    parser.add_argument("--scenarios", default="h1", help=f"of: {names}")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--redos", type=int, default=2,
                        help=f"times a round is measured again when the host stole more than "
                             f"{STEAL_LIMIT:g}%% of a core during it (0: never)")  # fmt: skip
    parser.add_argument("--peers", default="", help=f"comma list of: {', '.join(PEERS)}")
    parser.add_argument("--json", metavar="FILE", help="write every run and summary here")
    parser.add_argument("--h2-idle-conns", type=int, default=1000, metavar="N",
                        help="h2-hello: idle h2c connections measured (0: none)")  # fmt: skip
    args = parser.parse_args(argv)
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
    for peer in args.peers:
        if peer not in PEERS:
            parser.error(f"unknown peer {peer!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = {loads.SCENARIOS[s].kind for s in args.scenarios}
    install_tools([tool for kind in kinds for tool in KIND_TOOLS.get(kind, [])])
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
    published = venv("published", PUBLISHED + (PUBLISHED_H2 if "h2" in kinds else []) + apps,
                     ours)  # fmt: skip
    peers = {p: venv(p, PEERS[p] + apps, ours) for p in args.peers}
    args.ws_python = str(published / "bin" / "python")
    todo = servers(ours, published, peers)
    meta = dict(machine(), rounds=args.rounds, duration_s=args.duration, warmup_s=args.warmup,
                connections=args.connections, pinned=args.client_cpu is not None,
                servers={s.name: " ".join(s.argv) for s in todo},
                servers_h2={s.name: " ".join(s.h2_argv or []) for s in todo},
                h2_idle_conns=args.h2_idle_conns,
                versions=versions([published, *peers.values()]))  # fmt: skip
    log(f"{meta['cpu']} x{meta['cpus']}, Python {meta['python']}; {len(todo)} servers, "
        f"{args.rounds} rounds of {args.warmup:g}+{args.duration:g} s")  # fmt: skip
    results: dict[str, dict[str, report.Summary]] = {}
    all_runs: dict[str, Any] = {}
    redone: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="uvicorn-bench-") as scratch:
        for name in args.scenarios:
            scen = loads.SCENARIOS[name]
            log(f"== {name}: {scen.what}")
            runs, redone[name] = run_scenario(name, todo, args, Path(scratch))
            base = runs.get(report.BASELINE, [])
            refs = {r: runs[r] for r in report.H2_REFS
                    if scen.kind in ("h2", "file") and r in runs}  # fmt: skip
            results[name] = {s: report.summarize(r, base, refs) for s, r in runs.items()}
            all_runs[name] = runs
    pinning = "server and load generator on separate cores" if meta["pinned"] else "unpinned"
    print(f"## uvicorn benchmarks: {meta['date']}, {meta['cpu']} ({meta['cpus']} CPUs), "
          f"Python {meta['python']}\n\n{args.rounds} rounds x {args.duration:g} s "
          f"(+{args.warmup:g} s warm-up), {args.connections} connections (HTTP/2: as each "
          f"scenario says), {pinning}; medians over rounds; {meta['versions']}\n")  # fmt: skip
    for name, sums in results.items():
        scen = loads.SCENARIOS[name]
        unit = "round trips/s" if scen.kind == "ws" else "req/s"
        print(report.scenario_table(f"{name}: {scen.what}", unit, sums))
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
