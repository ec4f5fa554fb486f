#!/usr/bin/env python3
"""The Autobahn|Testsuite (all 517 cases, compression included) against both app interfaces.

Usage: python3 conformance/autobahn.py [--cases 'GLOB' ...] [--compare] [--interfaces ...]

1. Sets up wstest (``autobahntestsuite``, Python 2.7 only) in .venvs/autobahn, a Python 2.7
   virtualenv made with ``virtualenv<20.22`` (newer releases cannot make 2.7 environments),
   from the pins in autobahn-requirements.txt; reused when present.
2. Serves conformance/echo_apps.py with the real CLI (.venv/bin/uvicorn) on a free port of
   127.0.0.1, once per interface (messaging, asgi3), and runs ``wstest -m fuzzingclient`` on it.
   With --compare, the published uvicorn too (``uvicorn[standard]`` in a venv under /tmp).
3. Reads each run's reports/index.json and prints, per interface, how many cases were OK,
   NON-STRICT, INFORMATIONAL, UNIMPLEMENTED and FAILED, every case that was not OK, and how long
   the compression cases (12.x, 13.x) took.

Exit status: 1 if any case FAILED on one of our interfaces (the published uvicorn's results are
for comparison only), 2 if the set-up or a server failed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "conformance"
VENV = ROOT / ".venvs" / "autobahn"
BOOTSTRAP = ROOT / ".venvs" / "virtualenv"  # a Python 3 venv holding virtualenv<20.22
PUBLISHED = Path("/tmp/uvicorn-published")
PYTHON2 = Path.home() / ".pyenv" / "versions" / "2.7.18" / "bin" / "python2.7"
BEHAVIORS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
# The 9.x cases send messages of up to 16 MiB: the limit must let them through.
MAX_SIZE = 16 * 1024 * 1024
INTERFACES = {
    "messaging": ("conformance.echo_apps:messaging_echo", "messaging"),
    "asgi3": ("conformance.echo_apps:asgi_echo", "asgi3"),
}


def log(text: str) -> None:
    print(text, flush=True)


def run(*args: Any, **kwargs: Any) -> None:
    """Run a set-up command quietly; its output only if it fails."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"{result.stdout}{result.stderr}failed ({result.returncode}): {args}")


# Set-up.


def setup_wstest(python2: Path) -> Path:
    wstest = VENV / "bin" / "wstest"
    marker = VENV / ".requirements"
    pins = (HERE / "autobahn-requirements.txt").read_text()
    if wstest.exists() and marker.exists() and marker.read_text() == pins:
        return wstest
    if not python2.exists():
        sys.exit(f"Python 2.7 not found at {python2} (pass --python2); wstest needs it")
    log(f"== setting up wstest in {VENV}")
    if not (BOOTSTRAP / "bin" / "virtualenv").exists():
        run(sys.executable, "-m", "venv", BOOTSTRAP)
        run(BOOTSTRAP / "bin" / "pip", "install", "--quiet", "virtualenv<20.22")
    if VENV.exists():
        shutil.rmtree(VENV)
    run(BOOTSTRAP / "bin" / "virtualenv", "--quiet", "-p", python2, VENV)
    # The pins name every package, so nothing unpinned comes in as a dependency.
    run(VENV / "bin" / "pip", "install", "--quiet", "--no-deps", "-r",
        HERE / "autobahn-requirements.txt")  # fmt: skip
    marker.write_text(pins)
    return wstest


def setup_published() -> tuple[Path, str]:
    """The published uvicorn[standard], in a venv of its own (never the project's .venv)."""
    uvicorn = PUBLISHED / "bin" / "uvicorn"
    if not uvicorn.exists():
        log(f"== installing the published uvicorn[standard] in {PUBLISHED}")
        run(sys.executable, "-m", "venv", PUBLISHED)
        run(PUBLISHED / "bin" / "pip", "install", "--quiet", "uvicorn[standard]")
    out = subprocess.run([uvicorn, "--version"], capture_output=True, text=True, check=True)
    return uvicorn, out.stdout.split()[2]  # "Running uvicorn 0.x.y with CPython ..."


# Servers.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(command: list[str], port: int, logfile: Path) -> Iterator[subprocess.Popen[bytes]]:
    with logfile.open("wb") as out:
        server = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited ({server.returncode}): see {logfile}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not listen on {port}: see {logfile}")
            time.sleep(0.1)
        yield server
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children still running (the worker)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
    for each in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def our_command(interface: str, port: int, deflate: str | None) -> list[str]:
    app, name = INTERFACES[interface]
    bits = [] if deflate is None else ["--ws-deflate-window-bits", deflate]
    return [str(ROOT / ".venv" / "bin" / "uvicorn"), app, "--interface", name, "--host",
            "127.0.0.1", "--port", str(port), "--ws-max-size", str(MAX_SIZE), *bits,
            "--no-access-log", "--log-level", "warning"]  # fmt: skip


def published_command(uvicorn: Path, port: int) -> list[str]:
    return [str(uvicorn), "echo_apps:asgi_echo", "--app-dir", str(HERE), "--host", "127.0.0.1",
            "--port", str(port), "--ws-max-size", str(MAX_SIZE), "--no-access-log",
            "--log-level", "warning"]  # fmt: skip


def fuzz(wstest: Path, agent: str, port: int, outdir: Path, cases: list[str],
         exclude: list[str]) -> dict[str, Any]:  # fmt: skip
    """Run wstest's fuzzing client against ws://127.0.0.1:port; the agent's index.json."""
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": agent, "url": f"ws://127.0.0.1:{port}"}],
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    }
    specfile = outdir / "fuzzingclient.json"
    specfile.write_text(json.dumps(spec, indent=2))
    started = time.monotonic()
    with (outdir / "wstest.log").open("wb") as out:
        result = subprocess.run([str(wstest), "-m", "fuzzingclient", "-s", str(specfile)],
                                cwd=outdir, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    log(f"   wstest ran for {time.monotonic() - started:.0f} s (log: {outdir / 'wstest.log'})")
    index = outdir / "index.json"
    if result.returncode != 0 or not index.exists():
        raise RuntimeError(f"wstest failed ({result.returncode}): see {outdir / 'wstest.log'}")
    return dict(json.loads(index.read_text())[agent])


# The summary.


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def summarize(agent: str, results: dict[str, Any], outdir: Path) -> int:
    """Print the summary; the number of FAILED cases."""
    counts = collections.Counter(case["behavior"] for case in results.values())
    log(f"\n== {agent}: {len(results)} cases")
    log("   " + ", ".join(f"{b} {counts.get(b, 0)}" for b in BEHAVIORS))
    for case_id in sorted(results, key=case_key):
        case = results[case_id]
        if case["behavior"] == "OK":
            continue
        detail = json.loads((outdir / case["reportfile"]).read_text())
        log(f"   {case_id:8} {case['behavior']:13} close {case['behaviorClose']}, "
            f"code {case['remoteCloseCode']}: {detail.get('result', '')}")  # fmt: skip
    groups: dict[str, int] = collections.defaultdict(int)
    for case_id, case in results.items():
        parts = case_id.split(".")
        if parts[0] in ("12", "13"):
            groups[parts[0]] += case["duration"]
            groups[".".join(parts[:2])] += case["duration"]
    if groups:
        log("   compression, in seconds: " + ", ".join(
            f"{name} {ms / 1000:.1f}" for name, ms in sorted(
                groups.items(), key=lambda item: case_key(item[0]))))  # fmt: skip
    behaviors = collections.Counter(case["behavior"] for case in results.values())
    return behaviors.get("FAILED", 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=["*"], metavar="GLOB",
                        help="case ids to run, e.g. '3.*' '7.1.5' (default: all)")  # fmt: skip
    parser.add_argument("--exclude", nargs="+", default=[], metavar="GLOB")
    parser.add_argument("--interfaces", nargs="*", choices=list(INTERFACES),
                        default=list(INTERFACES), help="(none: only --compare)")  # fmt: skip
    parser.add_argument("--deflate", metavar="BITS",
                        help="our servers with --ws-deflate-window-bits BITS")  # fmt: skip
    parser.add_argument("--compare", action="store_true",
                        help="also run the published uvicorn[standard] (venv in /tmp)")  # fmt: skip
    parser.add_argument("--reports", type=Path, default=VENV / "reports",
                        help="where the reports go (default: .venvs/autobahn/reports)")  # fmt: skip
    parser.add_argument("--python2", type=Path, default=PYTHON2)
    args = parser.parse_args()
    # Killed, stop the server and wstest too (the context managers' clean-up runs on SystemExit).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    if not (ROOT / ".venv" / "bin" / "uvicorn").exists():
        sys.exit("no .venv/bin/uvicorn: run ./scripts/test once to make the project's venv")
    wstest = setup_wstest(args.python2)
    suffix = f"-deflate-{args.deflate}" if args.deflate else ""
    runs: list[tuple[str, bool, Any]] = [(name + suffix, True, name) for name in args.interfaces]
    if args.compare:
        uvicorn, version = setup_published()
        runs.append((f"published-uvicorn-{version}", False, uvicorn))

    failed = 0
    for agent, ours, target in runs:
        outdir = args.reports / agent
        if outdir.exists():
            shutil.rmtree(outdir)
        outdir.mkdir(parents=True)
        port = free_port()
        if ours:
            command = our_command(target, port, args.deflate)
        else:
            command = published_command(target, port)
        log(f"== {agent}: {' '.join(command)}")
        try:
            with serving(command, port, outdir / "server.log") as server:
                results = fuzz(wstest, agent, port, outdir, args.cases, args.exclude)
                if server.poll() is not None:
                    raise RuntimeError(f"the server died during the run: see {outdir}")
                log(f"   the server used {cpu_seconds(server.pid):.1f} s of CPU")
        except RuntimeError as exc:
            log(f"   error: {exc}")
            return 2
        if ours:
            failed += summarize(agent, results, outdir)
        else:
            summarize(agent, results, outdir)
        errors = [line for line in (outdir / "server.log").read_text().splitlines()
                  if "Traceback" in line or "ERROR" in line]  # fmt: skip
        if errors:
            log(f"   the server logged {len(errors)} error lines: see {outdir / 'server.log'}")
    log(f"\nReports: {args.reports}/<agent>/index.html")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
