"""The soak test (benchmarks/soak.py): its own logic without a server or wrk, from canned
numbers; and its WebSocket load against the real server."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.process import REPO, CLIProcess
from tests.helpers import load_script, tls_certificate

SOAK_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"


soak = load_script(SOAK_PY, "benchmarks_soak")
soak_proc, soak_loads = sys.modules["harness.soak_proc"], sys.modules["harness.soak_loads"]


def _snap(rss: float, links: dict[int, str]) -> Any:
    kinds = {fd: soak_proc.fd_kind(link, {"7": "tcp LISTEN"}) for fd, link in links.items()}
    return soak.Snapshot(worker_rss=rss, tree_rss=2 * rss, fds=kinds, links=links)


def _phase(growth: float, after_links: dict[int, str], errors: int = 0) -> Any:
    before = _snap(25.0, {3: "socket:[7]", 4: "pipe:[8]", 5: "/dev/null"})
    after = _snap(25.0 + growth, after_links)
    load = soak.Load(requests=1_000_000, errors=errors, seconds=20.0)
    return soak.Phase("asgi", "keep-alive", load, before, after, True, 0.0, 12.0, 50.0, 1.0, 0.0,
                      left=soak.left_behind(before, after))  # fmt: skip


def test_soak_options_and_wrk_script() -> None:
    args = soak.parse_args([])
    assert args.interfaces == ["messaging", "asgi"] and args.app == "soak"
    assert (args.requests, args.warmup, args.rss_limit) == (1_000_000, 20_000, 5.0)
    assert [name for _, name in soak.PHASES] == ["hello-ka", "hello-close", "h2-hello",
                                                 "ws-sessions"]  # fmt: skip
    script = soak_loads.count_script("hello-close", 1234)
    assert "local limit, seen = 1234, 0" in script and "wrk.thread:stop()" in script
    assert '"Connection"] = "close"' in script and "RESULT" in script


def test_soak_descriptor_kinds_and_leftovers() -> None:
    sockets = {"7": "tcp LISTEN", "9": "tcp CLOSE_WAIT"}
    assert soak_proc.fd_kind("socket:[9]", sockets) == "socket (tcp CLOSE_WAIT)"
    assert soak_proc.fd_kind("socket:[10]", sockets) == "socket (other)"
    assert soak_proc.fd_kind("pipe:[3]", sockets) == "pipe"
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
    assert found[3].startswith("ours-asgi, keep-alive: the client saw 3 errors")
    assert soak.verdict(found, 2, 5.0).startswith("**Verdict: FAIL**\n\n* ours-messaging")
    assert "| ours-asgi | keep-alive | 1,000,000 | 3 | 20.0 | 50,000 |" in soak.table([grown])


def test_soak_settle_polls_this_process() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        inode = str(os.fstat(sock.fileno()).st_ino)
        assert soak_proc.socket_kinds(os.getpid())[inode] == "tcp LISTEN"
        count = len(os.listdir(f"/proc/{os.getpid()}/fd"))  # as settle() counts
        assert soak.settle(os.getpid(), count, quiet=5.0, timeout=5.0)[1] is True
        waited, back = soak.settle(os.getpid(), count - 1, quiet=0.1, timeout=5.0)
        assert back is False and waited < 2.0


# The WebSocket phase's load (harness/ws_soak_client.py through soak_loads.ws_count), against
# the real server serving benchmarks/apps/soak.py.

_LOAD_ARGS = argparse.Namespace(connections=4, client_cpu=None, phase_timeout=60, tls=False)


@pytest.mark.parametrize(
    ("target", "tls"),
    [("apps.soak:app", False), ("apps.soak:mi", False), ("apps.soak:app", True)],
)
def test_the_websocket_load_counts_whole_sessions(target: str, tls: bool, tmp_path: Path) -> None:
    interface = "asgi3" if target.endswith(":app") else "messaging"
    options = []
    if tls:
        files = tls_certificate(tmp_path)
        options = ["--ssl-certfile", files["ssl_certfile"], "--ssl-keyfile", files["ssl_keyfile"]]
    with CLIProcess(target, "--app-dir", "benchmarks", "--interface", interface, "--port", "0",
                    *options, cwd=REPO) as server:  # fmt: skip
        port = server.wait_ready()
        load = soak_loads.ws_count(port, 30, argparse.Namespace(**{**vars(_LOAD_ARGS), "tls": tls}))
    assert (load.requests, load.errors, load.runs) == (30, 0, 1)
    assert load.client_cpu_s > 0


def test_the_websocket_load_counts_refused_sessions_as_errors() -> None:
    # hello.py answers a WebSocket's scope as if it were HTTP: the server refuses the handshake.
    with CLIProcess("apps.hello:app", "--app-dir", "benchmarks", "--port", "0",
                    cwd=REPO) as server:  # fmt: skip
        port = server.wait_ready()
        load = soak_loads.ws_count(port, 6, _LOAD_ARGS)
    assert (load.requests, load.errors) == (6, 6)
