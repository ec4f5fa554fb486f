"""`run.py --callgrind`: every server's instructions per request, counted by valgrind, so that the
ratios can be checked on a host too busy for req/s to mean much.

Each server is started under ``valgrind --tool=callgrind --trace-children=yes`` (ours, granian and
the published uvicorn with workers fork them, and valgrind follows a fork by itself; the option
also follows an exec, should a server re-execute itself), with PYTHONHASHSEED=0, once per app.
Once it answers, per scenario: a warm-up load (CPython 3.11 specializes its bytecode on the first
executions), then for each round the counters of every callgrind process of the server's tree are
zeroed (``callgrind_control --zero PID...``), a fixed load runs (harness/counted.py: exactly N
requests or WebSocket round trips over C connections), the tree is left to go idle, and the
counters are read (``callgrind_control -e PID...``: the sum over processes and threads); the same
again with a longer load. Instructions per request = (long count - short count) / (long N - short
N): what every run pays once (connecting, the zeroing itself, timers that fire while it runs) is
in both counts and cancels out. Rounds repeat the pair on the same server, and the table shows
their median and spread.

The counts are user-space instructions: the kernel's share (sockets, accept, close) is not counted,
so a ratio of instructions misses what a server spends in system calls: hello-close's and the
stream's above all (a server that writes each chunk with a send() of its own pays for it there).
Beside them, the system calls per request, from valgrind's --trace-syscalls lines (the same
subtraction), less those that the vDSO answers without a system call when valgrind is not there.
callgrind_control is always given the server's pids: without any it acts on every callgrind run
of the machine, other people's measurements included.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import counted, loads, procs, report

# (short, long) load per scenario: requests (ws: round trips). Under valgrind a server answers a
# few hundred hello requests a second; the long minus the short run is what is counted.
COUNTS = {"hello-ka": (240, 1200), "hello-close": (96, 480), "ws": (240, 1200),
          "stream": (64, 320), "echo": (64, 320)}  # fmt: skip
DEFAULT_SCENARIOS = ["hello-ka", "hello-close", "ws"]
CONNECTIONS = 16
READY_S = 600.0  # ours forks a worker that imports its stack, all of it under valgrind
_THREAD = re.compile(r"^\s*Th\s+\d+\s+([\d,]+)\s*$", re.M)
_VDSO = {"sys_clock_gettime", "sys_gettimeofday", "sys_time", "sys_getcpu"}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def version() -> str:
    run = subprocess.run(["valgrind", "--version"], capture_output=True, text=True)
    return run.stdout.strip()


def valgrind(argv: list[str], out_dir: Path) -> list[str]:
    """`argv` under callgrind, every process it forks or executes too; valgrind's messages and
    a line per system call (--trace-syscalls) in out_dir/valgrind.PID.log."""
    return ["valgrind", "--tool=callgrind", "--trace-children=yes", "--trace-syscalls=yes",
            f"--log-file={out_dir}/valgrind.%p.log",
            f"--callgrind-out-file={out_dir}/callgrind.out.%p", *argv]  # fmt: skip


def syscalls(out_dir: Path) -> int:
    """The system calls the server's processes made so far, from valgrind's logs; not those that
    the vDSO answers without entering the kernel when valgrind is not there (clock_gettime)."""
    count = 0
    for path in out_dir.glob("valgrind.*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("SYSCALL[") and ") " in line:
                name = line.split(") ", 1)[1].split("(", 1)[0].strip()
                count += name not in _VDSO
    return count


def callgrind_pids(root: int) -> list[int]:
    """The processes of root's tree that run under callgrind: their executable is valgrind's
    (their name may not say so: ours and granian retitle their processes)."""
    pids = []
    for pid in sorted(procs.tree(root)):
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if Path(exe).name.startswith("callgrind-"):
            pids.append(pid)
    return pids


def control(option: str, pids: Sequence[int]) -> str:
    """callgrind_control `option` for exactly these pids."""
    if not pids:  # never without: it would zero or read every callgrind run on the machine
        raise procs.ServerFailed("no process of the server runs under callgrind")
    run = subprocess.run(["callgrind_control", option, *map(str, pids)], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    if run.returncode != 0:
        raise procs.ServerFailed(f"callgrind_control {option} failed: {run.stderr[-300:]}")
    return run.stdout


def totals(text: str) -> int:
    """The instructions in callgrind_control -e's answer, summed over processes and threads."""
    found = _THREAD.findall(text)
    if not found:
        raise procs.ServerFailed(f"no counts in callgrind_control's answer: {text[-300:]!r}")
    return sum(int(n.replace(",", "")) for n in found)


def settle(root: int, quiet: float = 0.6, timeout: float = 60.0) -> None:
    """Wait until the tree has used at most one clock tick of CPU over `quiet` seconds: the
    requests answered, the closed connections seen to."""
    deadline = time.monotonic() + timeout
    before = sum(info[2] for info in procs.tree(root).values())
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = sum(info[2] for info in procs.tree(root).values())
        if now - before <= 1:
            return
        before = now


def per_request(load: Callable[[int], None], root: int, short: int, long: int,
                out_dir: Path) -> tuple[float, float]:  # fmt: skip
    """One round: instructions and system calls per request, from a short and a long run of
    `load`."""
    counts, calls = [], []
    for n in (short, long):
        pids = callgrind_pids(root)
        control("--zero", pids)
        before = syscalls(out_dir)
        load(n)
        settle(root)
        counts.append(totals(control("-e", pids)))
        calls.append(syscalls(out_dir) - before)
    return (counts[1] - counts[0]) / (long - short), (calls[1] - calls[0]) / (long - short)


def measure(argv: list[str], port: int, cwd: Path, scenarios: list[str], rounds: int,
            connections: int, scratch: Path,
            cpu: int | None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """One server under callgrind (`argv`: its command line, serving on `port`), the scenarios of
    one app: {scenario: {"rounds": [instructions per request, ...], "syscalls": [system calls
    per request, ...]} or {"error": ...}}."""
    out_dir = Path(tempfile.mkdtemp(prefix=f"server-{port}-", dir=scratch))  # (ports get reused)
    logfile = out_dir / "output.log"
    proc = procs.Server(valgrind(argv, out_dir), cwd, logfile, cpu, {"PYTHONHASHSEED": "0"})
    out: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    try:
        proc.wait_ready(port, loads.SCENARIOS[scenarios[0]].path, timeout=READY_S)
        root = proc.proc.pid
        settle(root)
        log(f"    answering after {time.monotonic() - started:.0f} s")
        for scen in scenarios:
            short, long = COUNTS[scen]

            def load(n: int, scen: str = scen) -> None:
                counted.run(scen, port, n, connections)

            try:
                load(short)  # the warm-up
                settle(root)
                got = [per_request(load, root, short, long, out_dir) for _ in range(rounds)]
                out[scen] = {"rounds": [g[0] for g in got], "syscalls": [g[1] for g in got]}
            except (counted.LoadFailed, procs.ServerFailed, OSError) as exc:
                out[scen] = {"error": f"{exc}\n{procs.tail(logfile)}".rstrip()}
    except procs.ServerFailed as exc:
        out.update((s, {"error": str(exc)}) for s in scenarios if s not in out)
    finally:
        stopping = time.monotonic()
        proc.stop(grace=60.0)
        log(f"    counted for {stopping - started:.0f} s, stopped in "
            f"{time.monotonic() - stopping:.0f} s")  # fmt: skip
    return out


def summarize(rounds: list[float], calls: list[float]) -> dict[str, float]:
    """Median instructions per request over the rounds, their spread ((max - min) / median), and
    the median of system calls per request."""
    median = statistics.median(rounds)
    return {"per_request": median, "spread_pct": 100 * (max(rounds) - min(rounds)) / median,
            "syscalls_per_request": statistics.median(calls)}  # fmt: skip


def _over(counts: dict[str, float], ref: str | None, ours: str) -> str:
    if ref is None or ref not in counts or ours not in counts:
        return "-"
    return report.fmt(counts[ref] / counts[ours], 2, "x")


def ratio_rows(results: dict[str, dict[str, dict[str, Any]]]) -> list[list[str]]:
    """Per scenario: the published configuration with fewer instructions per request (the
    faster, by this measure), its count over each of ours (higher is better, as for req/s), the
    issue's req/s target for reference, and granian's count over ours when granian ran."""
    rows = []
    for scen, sums in results.items():
        counts = {n: s["per_request"] for n, s in sums.items() if "per_request" in s}
        pub = {n: counts[n] for n in report.PUBLISHED if n in counts}
        base = min(pub, key=pub.__getitem__) if pub else None
        goal = report.TARGETS.get(scen)
        rows.append([scen, base or "-", *(_over(counts, base, n) for n in report.OURS.values()),
                     "-" if goal is None else f">= {goal:g}x",
                     *(_over(counts, "granian", n) for n in report.OURS.values())])  # fmt: skip
    return rows


def run_all(servers: Sequence[Any], scenarios: list[str], rounds: int, connections: int,
            cpu: int | None) -> dict[str, dict[str, dict[str, Any]]]:  # fmt: skip
    """Every server (run.py's Server: name, cwd, command(module, port)), each app's scenarios
    on one start of it: {scenario: {server: summarize() and its rounds, or {"error": ...}}}."""
    apps: dict[str, list[str]] = {}
    for scen in scenarios:
        apps.setdefault(loads.SCENARIOS[scen].module, []).append(scen)
    results: dict[str, dict[str, dict[str, Any]]] = {scen: {} for scen in scenarios}
    with tempfile.TemporaryDirectory(prefix="uvicorn-callgrind-") as scratch:
        for server in servers:
            for module, scens in apps.items():
                port = procs.free_port()
                log(f"  {server.name}: {', '.join(scens)} under callgrind")
                got = measure(server.command(module, port), port, server.cwd, scens, rounds,
                              connections, Path(scratch), cpu)  # fmt: skip
                for scen, res in got.items():
                    if "rounds" in res:
                        results[scen][server.name] = dict(
                            summarize(res["rounds"], res["syscalls"]), **res)  # fmt: skip
                        log(f"    {scen}: " + ", ".join(f"{n:,.0f}" for n in res["rounds"])
                            + " instructions, " + ", ".join(f"{n:.2f}" for n in res["syscalls"])
                            + " system calls per request")  # fmt: skip
                    else:
                        results[scen][server.name] = res
                        log(f"    {scen}: FAILED: {res['error'].splitlines()[0]}")
    return results


def tables(results: dict[str, dict[str, dict[str, Any]]], names: list[str]) -> str:
    """The counts (median over rounds, and their spread), the system calls and the ratios, as
    markdown."""
    head = ["| scenario | requests counted | " + " | ".join(names) + " |",
            "|---|---:|" + "---:|" * len(names)]  # fmt: skip
    counts = ["### Instructions per request (callgrind, user space; median of the rounds, and "
              "their spread)", "", *head]  # fmt: skip
    calls = ["### System calls per request (valgrind --trace-syscalls, less clock_gettime and "
             "the like, which the vDSO answers natively; median of the rounds)", "", *head]
    errors = []
    for scen, sums in results.items():
        short, long = COUNTS[scen]
        cells, call_cells = [], []
        for name in names:
            got = sums.get(name, {})
            if "per_request" in got:
                cells.append(f"{got['per_request']:,.0f} ({got['spread_pct']:.1f}%)")
                call_cells.append(f"{got['syscalls_per_request']:.2f}")
                continue
            cells.append("FAILED" if "error" in got else "-")
            call_cells.append(cells[-1])
            if "error" in got:
                errors.append(f"{name}, {scen} FAILED:\n" + "\n".join(
                    "    " + line for line in got["error"].splitlines()))  # fmt: skip
        counts.append(f"| {scen} | {long} - {short} | " + " | ".join(cells) + " |")
        calls.append(f"| {scen} | {long} - {short} | " + " | ".join(call_cells) + " |")
    out = [*counts, "", *errors, *([""] if errors else []), *calls, ""]
    out += ["### Ratios of instructions per request: the fewer of the published configurations' "
            "(or granian's) over ours", "",
            "| scenario | published, fewer | messaging | ASGI | issue 16 target (req/s) "
            "| granian / messaging | granian / ASGI |",
            "|---|---|---:|---:|---|---:|---:|"]  # fmt: skip
    out += [f"| {' | '.join(row)} |" for row in ratio_rows(results)]
    out += ["", "(User-space instructions only: the kernel's work per request (the system calls "
            "above), which a req/s ratio includes, is not counted; the targets are shown for "
            "reference, not judged.)"]  # fmt: skip
    return "\n".join(out) + "\n"
