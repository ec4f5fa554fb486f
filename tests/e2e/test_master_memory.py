"""The master loads neither the app nor the protocol stack (issue 16): what it imports over its
whole life (start, a worker killed and replaced, a SIGHUP reload, the stop), and its RSS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.process import REPO, CLIProcess, http_get
from tests.e2e.supervision import serving_pids

WHOAMI = "tests.e2e.supervisor_apps:whoami"

# The real command line, its master printing sys.modules as Arbiter.run() returns.
SCRIPT = """
import json, sys
from uvicorn.supervisor import arbiter

run = arbiter.Arbiter.run

def traced(self):
    try:
        run(self)
    finally:
        print("MASTER-MODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr, flush=True)

arbiter.Arbiter.run = traced
from uvicorn.cli import main
sys.exit(main(sys.argv[1:]))
"""
# What only workers may load: the worker's code, the protocols, the adapters, the event loop,
# the protocol libraries, TLS, and the app.
WORKERS_ONLY = ("uvicorn.worker", "uvicorn.protocols", "uvicorn.adapters", "uvicorn.broadcast",
                "asyncio", "uvloop", "httptools", "websockets", "ssl", "_ssl", "logging.config",
                "tests.e2e.supervisor_apps")  # fmt: skip
# The master's RSS above a bare interpreter's (10.8 MiB on CPython 3.11 here): 5.7 MiB measured
# (16.5 MiB in all, the master of 2026-12-05 29.8). Its imports are the settings (dataclasses,
# which brings inspect), argparse, logging, sockets and the supervisor.
RSS_ABOVE_BARE = 7 * 1024  # kB


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _bare_rss() -> int:
    code = "print(open('/proc/self/status').read())"
    status = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


@pytest.mark.parametrize("options", [(), ("--reload",), ("--metrics", "127.0.0.1:0")])
def test_master_imports_no_worker_code(options: tuple[str, ...]) -> None:
    args = ("-c", SCRIPT, WHOAMI, "--port", "0", "--workers", "2", *options)
    with CLIProcess(*args, module=None) as server:
        port = server.wait_ready()
        first, _ = serving_pids(server, 2)
        assert http_get(port).startswith(b"HTTP/1.1 200")
        if not options:
            # After start-up, and while it serves: its RSS.
            assert _rss(server.proc.pid) - _bare_rss() <= RSS_ABOVE_BARE
        os.kill(first, signal.SIGKILL)  # replaced: the restart path
        serving_pids(server, 3)
        server.signal(signal.SIGHUP)  # a new generation
        server.wait_for_line(r"Reload complete")
        assert server.stop() == 0
        line = server.wait_for_line(r"MASTER-MODULES (.*)")
    modules = json.loads(line.group(1))
    loaded = [m for m in modules if m.startswith(WORKERS_ONLY)]
    assert not loaded, f"the master imported {loaded}"
    assert "uvicorn.supervisor.arbiter" in modules  # (the master's modules, then)


def test_a_worker_template_killed_leaves_the_forking_to_the_master() -> None:
    with CLIProcess(WHOAMI, "--port", "0", "--workers", "2") as server:
        port = server.wait_ready()
        first, _ = serving_pids(server, 2)
        template = _parent(first)
        assert template != server.proc.pid and _parent(template) == server.proc.pid
        os.kill(template, signal.SIGKILL)
        server.wait_for_line(r"The worker template exited: workers will be forked by the master")
        # Its workers got SIGTERM (their parent-death signal); their replacements are the
        # master's own children, and serve.
        replacements = serving_pids(server, 4)[2:]
        assert all(_parent(pid) == server.proc.pid for pid in replacements)
        assert int(http_get(port).split(b"\r\n\r\n")[1]) in replacements
        assert server.stop() == 0
        output = server.output()
    assert "Traceback" not in output


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[1])
