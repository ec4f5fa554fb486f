"""Soak test: one worker of this checkout's server under a million keep-alive requests, a million
``Connection: close`` requests, a million HTTP/2 requests and 100,000 WebSocket sessions; its
memory and open file descriptors before and after each.

One command, from the checkout:

    python3 benchmarks/soak.py
    python3 benchmarks/soak.py --interfaces asgi --requests 200000 --json /tmp/soak.json
    python3 benchmarks/soak.py --tls --requests 200000   # every phase over TLS

For each interface (the messaging-interface app, then the ASGI 3 one: benchmarks/apps/soak.py,
hello.py's answer over HTTP and ws_echo.py's echo over WebSockets), it starts the server as
benchmarks/run.py starts "ours" (the project's .venv, the real command line, ``--workers 1``: a
master and one worker), pinned with taskset to one core, the load generator on the other. It
checks one answer of each kind, warms up (``--warmup`` requests of each), and then runs the
phases, ``--requests`` requests each, counted exactly (harness/soak_loads.py): keep-alive (wrk
-t1 -c64), ``Connection: close`` (wrk reconnects for each), HTTP/2 over cleartext with prior
knowledge (h2load -c64 -m10, fresh connections every 4,000 streams), and WebSocket sessions, one
for every WS_SHARE requests, 64 at a time (harness/ws_soak_client.py: a handshake, a third of
them with permessage-deflate; 5 echoes checked; half end with the closing handshake, half
vanish without one). With ``--tls`` every phase goes over TLS (a self-signed certificate made
for the run; HTTP/2 by ALPN instead of prior knowledge; the checks by curl).

Before and after each phase it reads, from /proc, the worker's RSS (and the whole tree's:
master and worker) and its open file descriptors, each classified (socket with its TCP state,
pipe, eventpoll, ...). "After" is read once the connections are gone: the worker's descriptor
count is polled until it is back to what it was before the phase or, when it is not, until it
has not changed for ``--settle-quiet`` seconds (longer than the 5 s keep-alive timeout, so that a
connection the server only closes by its timer is not taken for a leak), ``--settle-timeout`` at
most.

Verdict: PASS when, in every phase, the worker's RSS grew by less than ``--rss-limit`` MiB, no
file descriptor was left behind (open after the phase and not before), the load generator saw
no error (socket error, non-2xx answer, a WebSocket session gone wrong) and the same worker
served throughout; otherwise FAIL with the numbers, and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # imported from the tests rather than run as a script
    sys.path.insert(0, str(HERE))

import run  # noqa: E402
from harness import env, h2load, loads, procs, report  # noqa: E402
from harness.soak_loads import H2_STREAMS, Load, h2load_count, wrk_count, ws_count  # noqa: E402
from harness.soak_proc import (  # noqa: E402
    Snapshot,
    find_worker,
    kinds_text,
    left_behind,
    settle,
    snapshot,
    tree_cpu,
)

INTERFACES = {"messaging": report.OURS["messaging"], "asgi": report.OURS["ASGI"]}
# (title, scenario of harness/loads.py): wrk drives the HTTP/1.1 ones, h2load the HTTP/2 one,
# harness/ws_soak_client.py the WebSocket sessions.
PHASES = (("keep-alive", "hello-ka"), ("Connection: close", "hello-close"), ("HTTP/2", "h2-hello"),
          ("WebSocket sessions", "ws-sessions"))  # fmt: skip
# A WebSocket session (handshake, 5 echoes, an end) counts for this many requests: 1,000,000 a
# phase makes 100,000 sessions.
WS_SHARE = 10


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the soak -------------------------------------------------------------------------------


@dataclass
class Phase:
    interface: str
    phase: str
    load: Load
    before: Snapshot
    after: Snapshot
    settled: bool  # the descriptor count came back to its value before the phase
    settle_s: float
    cpu_us: float  # worker CPU per request
    client_cpu_pct: float  # the load generator's CPU, % of one core over the phase
    other_cpu_pct: float  # what neither the server's tree nor the client used, % of one core
    steal_pct: float  # the most the hypervisor took from either pinned core, %
    worker_replaced: str = ""
    left: dict[int, str] = field(default_factory=dict)

    @property
    def growth(self) -> float:
        return self.after.worker_rss - self.before.worker_rss


def counted(port: int, name: str, count: int, args: argparse.Namespace, scratch: Path) -> Load:
    """``count`` requests of the scenario (WebSocket: ``count`` / WS_SHARE sessions)."""
    if name == "h2-hello":
        return h2load_count(port, count, args)
    if name == "ws-sessions":
        return ws_count(port, max(1, count // WS_SHARE), args)
    return wrk_count(port, name, count, args, scratch)


def unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # (our own certificate)
    return context


def make_certificate(scratch: Path) -> None:
    """A self-signed certificate and its key, for --tls."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(scratch / "key.pem"),
                    "-out", str(scratch / "cert.pem")],
                   check=True, capture_output=True)  # fmt: skip


def check_tls(port: int) -> None:
    """'Hello, world' over HTTP/1.1 and over HTTP/2 (ALPN), with curl."""
    for flag, version in (("--http1.1", "1.1"), ("--http2", "2")):
        done = subprocess.run(["curl", "-sSk", flag, "--max-time", "10", "-w", " %{http_version}",
                               f"https://{procs.HOST}:{port}/"], capture_output=True)  # fmt: skip
        if done.stdout != f"Hello, world {version}".encode():
            raise procs.ServerFailed(f"wrong answer over TLS ({flag}): {done.stdout[:80]!r} "
                                     f"{done.stderr.decode(errors='replace')}")  # fmt: skip


def soak(interface: str, args: argparse.Namespace, scratch: Path) -> list[Phase]:
    """One server, warmed up, through every phase."""
    ours = next(s for s in run.servers(args.ours, Path("unused"), {})
                if s.name == INTERFACES[interface])  # fmt: skip
    port = procs.free_port()
    argv = [*ours.command(args.app, port), "--workers", "1"]
    if args.tls:
        argv += ["--ssl-certfile", str(scratch / "cert.pem"),
                 "--ssl-keyfile", str(scratch / "key.pem")]  # fmt: skip
    logfile = scratch / f"{ours.name}.log"
    log(f"== {interface}: {' '.join(argv)}")
    server = procs.Server(argv, ours.cwd, logfile, args.server_cpu)
    try:
        server.wait_ready(port, "/", tls=unverified() if args.tls else None)
        root = server.proc.pid
        worker = find_worker(root)
        worker_start = (procs.stat(worker) or (0, -1))[1]
        if args.tls:
            check_tls(port)
        else:
            for name in ("hello-ka", "hello-close"):
                loads.check_http(name, port)
            h2load.check("h2-hello", port, None)
        checked = ws_count(port, 6, args)  # every kind of session: offers, ends
        if checked.errors:
            raise procs.ServerFailed(f"{checked.errors} of 6 WebSocket sessions went wrong")
        idle = snapshot(root, worker)
        log(f"  worker pid {worker}, idle: RSS {idle.worker_rss:.1f} MiB (tree "
            f"{idle.tree_rss:.1f}), {len(idle.fds)} fds: {kinds_text(idle.fds)}")  # fmt: skip
        for _, name in PHASES:
            if args.warmup:
                warm = counted(port, name, args.warmup, args, scratch)
                log(f"  warm-up {name}: {warm.requests:,} requests, {warm.errors} errors")
        waited, ok = settle(worker, len(idle.fds), args.settle_quiet, args.settle_timeout)
        phases = []
        for title, name in PHASES:
            before = snapshot(root, worker)
            cpu0 = (procs.stat(worker) or (0, 0, 0))[2]
            tree0, busy0, t0 = tree_cpu(root), procs.busy_seconds(), time.monotonic()
            steal = procs.StealWatch(args.client_cpu, args.server_cpu)
            load = counted(port, name, args.requests, args, scratch)
            wall = time.monotonic() - t0
            stolen = steal.percent()
            other = procs.busy_seconds() - busy0 - (tree_cpu(root) - tree0) - load.client_cpu_s
            info = procs.stat(worker)
            replaced = ""
            if info is None or info[1] != worker_start:
                replaced = f"worker {worker} exited during the phase"
                raise procs.ServerFailed(replaced)
            cpu_us = 1e6 * (info[2] - cpu0) / procs.TICKS / max(load.requests, 1)
            waited, ok = settle(worker, len(before.fds), args.settle_quiet, args.settle_timeout)
            after = snapshot(root, worker)
            children = [p for p, i in procs.tree(root).items() if i[0] == root]
            if children != [worker]:
                replaced = f"the master's children went from [{worker}] to {children}"
            phase = Phase(interface, title, load, before, after, ok, waited, cpu_us,
                          100 * load.client_cpu_s / wall, max(0.0, 100 * other / wall), stolen,
                          replaced, left_behind(before, after))  # fmt: skip
            phases.append(phase)
            log(f"  {title}: {load.requests:,} requests in {load.seconds:.1f} s "
                f"({load.requests / max(load.seconds, 1e-9):,.0f}/s, {load.runs} client run(s), "
                f"{load.errors} errors); RSS {before.worker_rss:.1f} -> {after.worker_rss:.1f}"
                f" MiB; fds {len(before.fds)} -> {len(after.fds)} "
                f"({'back' if ok else 'NOT back'} after {waited:.2f} s)")  # fmt: skip
        return phases
    except OSError as exc:  # the worker's /proc entries went away under us
        raise server.fail(f"worker gone: {exc}") from exc
    finally:
        server.stop()


# -- report ---------------------------------------------------------------------------------


def table(phases: list[Phase]) -> str:
    out = [
        "| server | phase | requests | errors | duration s | req/s | worker CPU us/req "
        "| client / other CPU % | worker RSS before MiB | after | growth "
        "| tree RSS MiB before -> after | fds before | after | left behind |",
        "|---|---|" + "---:|" * 13,
    ]  # fmt: skip
    for p in phases:
        rps = p.load.requests / p.load.seconds if p.load.seconds else 0.0
        out.append(
            f"| {INTERFACES[p.interface]} | {p.phase} | {p.load.requests:,} | {p.load.errors} "
            f"| {p.load.seconds:.1f} | {rps:,.0f} | {p.cpu_us:.1f} "
            f"| {p.client_cpu_pct:.0f} / {p.other_cpu_pct:.0f} | {p.before.worker_rss:.1f} "
            f"| {p.after.worker_rss:.1f} | {p.growth:+.2f} "
            f"| {p.before.tree_rss:.1f} -> {p.after.tree_rss:.1f} | {len(p.before.fds)} "
            f"| {len(p.after.fds)} | {len(p.left)} |"
        )
    return "\n".join(out) + "\n"


def problems(phases: list[Phase], failures: dict[str, str], rss_limit: float) -> list[str]:
    """What makes the verdict FAIL, each with its numbers; empty: PASS."""
    found = [f"{INTERFACES[i]}: server failed: {why.splitlines()[0]}"
             for i, why in failures.items()]  # fmt: skip
    for p in phases:
        where = f"{INTERFACES[p.interface]}, {p.phase}"
        if p.growth >= rss_limit:
            found.append(f"{where}: worker RSS grew {p.growth:.2f} MiB "
                         f"({p.before.worker_rss:.1f} -> {p.after.worker_rss:.1f}) over "
                         f"{p.load.requests:,} requests (limit {rss_limit:g} MiB)")  # fmt: skip
        if p.left:
            found.append(f"{where}: {len(p.left)} fd(s) left behind ({len(p.before.fds)} -> "
                         f"{len(p.after.fds)}): {kinds_text(p.left)}")  # fmt: skip
        if p.load.errors:
            found.append(f"{where}: the client saw {p.load.errors} errors "
                         f"({p.load.non_2xx} non-2xx)")  # fmt: skip
        if p.worker_replaced:
            found.append(f"{where}: {p.worker_replaced}")
    return found


def verdict(found: list[str], phases: int, rss_limit: float) -> str:
    if not found:
        return (f"**Verdict: PASS** ({phases} phases: worker RSS grew < {rss_limit:g} MiB in "
                "each, no file descriptor left behind, no error)")  # fmt: skip
    return "**Verdict: FAIL**\n\n" + "\n".join(f"* {line}" for line in found)


def fd_listing(phases: list[Phase]) -> str:
    """The worker's descriptors by kind: before the first phase, and after each one."""
    out = []
    for i, p in enumerate(phases):
        if i == 0 or p.interface != phases[i - 1].interface:
            out.append(f"* {INTERFACES[p.interface]}, before: {kinds_text(p.before.fds)}")
        out.append(f"* {INTERFACES[p.interface]}, after {p.phase}: {kinds_text(p.after.fds)}"
                   + (f"; new: {kinds_text(p.left)}" if p.left else ""))  # fmt: skip
    return "\n".join(out) + "\n"


def server_versions(python: str) -> dict[str, str]:
    code = ("import json, platform, uvloop, httptools; print(json.dumps({'python': "
            "platform.python_version(), 'uvloop': uvloop.__version__, "
            "'httptools': httptools.__version__}))")  # fmt: skip
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    versions: dict[str, str] = json.loads(out.stdout)
    return versions


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interfaces", default="messaging,asgi",
                        help=f"comma list of: {', '.join(INTERFACES)}")  # fmt: skip
    parser.add_argument("--app", default="soak",
                        help="benchmarks/apps/<APP>.py, whose `mi` and `app` answer GET / with "
                             "'Hello, world' and echo WebSocket messages")  # fmt: skip
    parser.add_argument("--requests", type=int, default=1_000_000, help="per phase")
    parser.add_argument("--warmup", type=int, default=20_000,
                        help="requests of each kind before the first reading")  # fmt: skip
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rss-limit", type=float, default=5.0,
                        help="MiB the worker's RSS may grow per phase")  # fmt: skip
    parser.add_argument("--settle-quiet", type=float, default=6.0,
                        help="seconds without change after which a descriptor count that is not "
                             "back to its value before the phase is read as final")  # fmt: skip
    parser.add_argument("--settle-timeout", type=float, default=30.0)
    parser.add_argument("--phase-timeout", type=float, default=1800.0,
                        help="seconds a phase (or the warm-up of one kind) may take")  # fmt: skip
    parser.add_argument("--tls", action="store_true",
                        help="every phase over TLS (a self-signed certificate; HTTP/2 by ALPN)")
    parser.add_argument("--json", metavar="FILE", help="write every phase here")
    args = parser.parse_args(argv)
    args.interfaces = [i for i in args.interfaces.split(",") if i]
    for name in args.interfaces:
        if name not in INTERFACES:
            parser.error(f"unknown interface {name!r}")
    if not args.interfaces or args.requests < 1 or args.connections < 1 or args.warmup < 0:
        parser.error("--interfaces must name one, --requests and --connections must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    env.install_tools(["wrk", "h2load", "curl", "openssl"])  # (those missing)
    args.client_cpu, args.server_cpu = run.CLIENT_CPU, run.SERVER_CPU
    if procs.can_pin():
        os.sched_setaffinity(0, {run.CLIENT_CPU})
    else:
        log("WARNING: taskset is missing or fewer than 2 CPUs: nothing is pinned")
        args.client_cpu = args.server_cpu = None
    args.ours = run.our_python()
    meta = dict(run.machine(), server=server_versions(args.ours), requests=args.requests,
                warmup=args.warmup, connections=args.connections)  # fmt: skip
    log(f"{meta['cpu']} x{meta['cpus']}, server Python {meta['server']['python']}")
    phases: list[Phase] = []
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="uvicorn-soak-") as scratch:
        if args.tls:
            make_certificate(Path(scratch))
        for interface in args.interfaces:
            try:
                phases += soak(interface, args, Path(scratch))
            except procs.ServerFailed as exc:
                failures[interface] = str(exc)
                log(f"  {interface} FAILED: {exc}")
    wall = time.monotonic() - started
    found = problems(phases, failures, args.rss_limit)
    server = meta["server"]
    pinning = "server and client on separate cores" if args.client_cpu is not None else "unpinned"
    pinning += "; every phase over TLS (HTTP/2 by ALPN)" if args.tls else ""
    print(f"## uvicorn soak test: {meta['date']}, {meta['cpu']} ({meta['cpus']} CPUs)\n\n"
          f"Server: Python {server['python']}, uvloop {server['uvloop']}, httptools "
          f"{server['httptools']}, one worker (--workers 1); this script: Python "
          f"{meta['python']}. {args.requests:,} requests per phase after {args.warmup:,} of "
          f"each kind to warm up; wrk -t1 -c{args.connections}, h2load -c{args.connections} "
          f"-m{H2_STREAMS}; {pinning}.\n")  # fmt: skip
    if phases:
        print(table(phases))
        noisy = [p for p in phases if p.other_cpu_pct > report.NOISY_CPU_PCT or p.steal_pct > 2]
        if noisy:
            print(f"Note: during {len(noisy)} phase(s) other processes used up to "
                  f"{max(p.other_cpu_pct for p in noisy):.0f}% of a core and the host stole up "
                  f"to {max(p.steal_pct for p in noisy):.0f}% of one: durations and req/s are "
                  "slowed by that; memory and descriptor readings are not.\n")  # fmt: skip
        print("Worker file descriptors by kind:\n")
        print(fd_listing(phases))
    for interface, why in failures.items():
        print(f"{INTERFACES[interface]} FAILED:\n" + "\n".join("    " + x for x in why.splitlines())
              + "\n")  # fmt: skip
    print(verdict(found, len(phases), args.rss_limit))
    print(f"\nWall time of the whole run: {wall:.0f} s", flush=True)
    if args.json:
        rows = [dict(asdict(p), growth=p.growth) for p in phases]
        data = {"meta": meta, "phases": rows, "failures": failures, "problems": found,
                "wall_s": wall}  # fmt: skip
        Path(args.json).write_text(json.dumps(data, indent=1))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
