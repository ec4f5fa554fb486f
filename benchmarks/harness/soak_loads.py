"""The soak test's loads (benchmarks/soak.py): an exact number of requests, from wrk (HTTP/1.1,
keep-alive or ``Connection: close``) or from h2load (HTTP/2 over cleartext, prior knowledge); or
of WebSocket sessions, from harness/ws_soak_client.py. With ``--tls``, each over TLS (HTTP/2
by ALPN).

wrk runs for a time, not a count: a Lua script counts the responses and stops wrk's thread at
the count, then wrk is interrupted (SIGINT, once /proc shows it catches it) and prints its
summary; when wrk's own deadline comes first, it is run again for the responses still owed.
h2load counts by itself (-n).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import h2load, loads, procs

H2_STREAMS = 10  # h2load -m: concurrent streams per connection, as run.py's h2-hello

# Prepended to the scenario's script (harness/loads.py: its request and its RESULT line).
_LUA_COUNT = """
local limit, seen = {limit}, 0
response = function(status, headers, body)
  seen = seen + 1
  if seen == limit then
    io.write("LIMIT\\n")
    io.flush()
    wrk.thread:stop()
  end
end
"""


def catches_sigint(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
    return False


def count_script(name: str, limit: int) -> str:
    """The scenario's wrk script, which stops its thread after `limit` responses."""
    return _LUA_COUNT.format(limit=limit) + loads.lua_script(name)


@dataclass
class Load:
    requests: int = 0
    errors: int = 0
    non_2xx: int = 0
    seconds: float = 0.0
    runs: int = 0
    p99_ms: float = 0.0  # the largest of the runs' (wrk's; h2load gives none)
    client_cpu_s: float = 0.0  # the load generator's own CPU time

    def add(self, result: dict[str, Any]) -> None:
        """One run of the load generator (wrk_once, h2load_once)."""
        self.requests += result["requests"]
        self.errors += result["errors"]
        self.non_2xx += result["non_2xx"]
        self.seconds += result["seconds"]
        self.p99_ms = max(self.p99_ms, result.get("p99_ms", 0.0))
        self.client_cpu_s += result["client_cpu_s"]
        self.runs += 1


def _counted(name: str, count: int, args: argparse.Namespace,
             run: Callable[[int, int], dict[str, Any]]) -> Load:  # fmt: skip
    """``run(owed, seconds_left)`` again until `count` responses came; ServerFailed past
    --phase-timeout."""
    load = Load()
    deadline = time.monotonic() + args.phase_timeout
    while load.requests < count:
        left = int(deadline - time.monotonic())
        if left < 1:
            raise procs.ServerFailed(f"{name}: {load.requests:,} of {count:,} responses in "
                                     f"{args.phase_timeout:g} s")  # fmt: skip
        load.add(run(count - load.requests, left))
    return load


def wrk_once(url: str, script: Path, connections: int, seconds: int,
             cpu: int | None) -> dict[str, Any]:  # fmt: skip
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
            "-s", str(script), url]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.Popen(procs.pinned(argv, cpu), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("LIMIT"):
                # wrk's thread has stopped; its main thread sleeps out -d unless interrupted. It
                # installs its SIGINT handler after starting the thread: wait for it.
                deadline = time.monotonic() + 5
                while not catches_sigint(proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.01)
                proc.send_signal(signal.SIGINT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines)
    if proc.returncode != 0:
        raise procs.ServerFailed(f"wrk exited with {proc.returncode}:\n{text[-600:]}")
    result = loads.parse_wrk(text)
    result["seconds"] = result["requests"] / result["rps"] if result["rps"] else 0.0
    result["wall_s"] = time.monotonic() - start
    result["client_cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def wrk_count(port: int, name: str, count: int, args: argparse.Namespace,
              scratch: Path) -> Load:  # fmt: skip
    """At least `count` responses from wrk, run again for what is still owed when wrk's own
    deadline comes first."""
    url = f"{'https' if args.tls else 'http'}://{procs.HOST}:{port}/"
    script = scratch / f"{name}-count.lua"

    def run(owed: int, left: int) -> dict[str, Any]:
        script.write_text(count_script(name, owed))
        return wrk_once(url, script, args.connections, left, args.client_cpu)

    return _counted(name, count, args, run)


def h2load_count(port: int, count: int, args: argparse.Namespace) -> Load:
    """Exactly `count` requests over h2c from h2load (-c connections, H2_STREAMS streams each;
    at most h2load.STREAMS_PER_CONNECTION a connection, so a large count opens more of them in
    turn)."""

    def run(owed: int, left: int) -> dict[str, Any]:
        wanted = min(owed, args.connections * h2load.STREAMS_PER_CONNECTION)
        argv = h2load.argv(port, "/", min(args.connections, wanted), H2_STREAMS,
                           requests=wanted, limit=left)  # fmt: skip
        if args.tls:  # h2 by ALPN rather than h2c by prior knowledge
            argv[-1] = argv[-1].replace("http://", "https://", 1)
        proc = subprocess.Popen(procs.pinned(argv, args.client_cpu), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # (for its CPU time)
        proc.returncode = os.waitstatus_to_exitcode(status)
        result = h2load.parse(out)
        if not result["requests"]:
            raise procs.ServerFailed(f"h2load answered nothing:\n{out[-600:]}")
        return dict(result, client_cpu_s=usage.ru_utime + usage.ru_stime)

    return _counted("h2", count, args, run)


WS_CLIENT = Path(__file__).with_name("ws_soak_client.py")


def ws_count(port: int, count: int, args: argparse.Namespace) -> Load:
    """Exactly `count` WebSocket sessions (each counted as one request; errors: the sessions that
    went wrong), by harness/ws_soak_client.py, --connections at a time, under this Python."""

    def run(owed: int, _left: int) -> dict[str, Any]:
        argv = [sys.executable, str(WS_CLIENT), "--port", str(port), "--connections", str(owed),
                "--concurrency", str(min(args.connections, owed)),
                *(["--tls"] if args.tls else [])]  # fmt: skip
        proc = subprocess.Popen(procs.pinned(argv, args.client_cpu), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        assert proc.stdout is not None
        out = proc.stdout.read()  # (each session has a deadline: the client ends)
        _, status, usage = os.wait4(proc.pid, 0)  # (for its CPU time)
        proc.returncode = os.waitstatus_to_exitcode(status)
        line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise procs.ServerFailed(f"the WebSocket client printed no result:\n{out[-600:]}")
        result = json.loads(line[len("RESULT ") :])
        for example in result["examples"]:
            print(f"    WebSocket client: {example}", file=sys.stderr, flush=True)
        return {"requests": result["sessions"] + result["errors"], "errors": result["errors"],
                "non_2xx": 0, "seconds": result["seconds"],
                "client_cpu_s": usage.ru_utime + usage.ru_stime}  # fmt: skip

    return _counted("ws", count, args, run)
