"""Where one server's CPU goes per request, by hand: the server pinned to core 0 and
`wrk -t1` on core 1, as benchmarks/run.py runs them; per request, the user and system time of
the server's whole process tree (every thread, from /proc), its voluntary and involuntary
context switches, and wrk's own user and system time. A run's req/s says little on a shared
host; the split says where a difference comes from (the kernel's share of a copy, a thread's
hand-overs). It is how the piece size of files copied to local clients was chosen
(docs/architecture.md).

    .venv/bin/python benchmarks/cpu_split.py --app apps.files:mi --interface messaging \\
        --path /file-1m -c 16
    .venv/bin/python benchmarks/cpu_split.py --path /file-1m -c 16 --command \\
        "/tmp/uvicorn-bench/granian/bin/granian --interface asgi --port {port} --workers 1 \\
        --loop uvloop --no-access-log --working-dir benchmarks apps.files:app"

``--command`` serves any server (``{port}`` is replaced, run from the checkout); otherwise this
checkout's uvicorn serves ``--app`` from benchmarks/ (the project's .venv, or this interpreter).
"""

from __future__ import annotations

import argparse
import re
import resource
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import env, procs  # noqa: E402


def threads_cpu(pids: list[int]) -> tuple[int, int, int, int]:
    """(user ticks, system ticks, voluntary, involuntary context switches) of the processes:
    the times from /proc/<pid>/stat, which count the threads that ended too (a pool's), the
    switches from each live thread (/proc/<pid>/status has only the main thread's)."""
    user = system = voluntary = involuntary = 0
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue  # (the process ended)
        fields = raw[raw.rindex(b")") + 2 :].split()  # after "pid (comm) "
        user, system = user + int(fields[11]), system + int(fields[12])
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                status = (task / "status").read_text()
            except OSError:
                continue  # (the thread ended)
            for line in status.splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    involuntary += int(line.split()[1])
    return user, system, voluntary, involuntary


def measure(argv: list[str], url_path: str, connections: int, seconds: int) -> str:
    port = procs.free_port()
    command = [arg.replace("{port}", str(port)) for arg in argv]
    log = Path(f"/tmp/cpu-split-{port}.log")
    server = procs.Server(command, env.CHECKOUT, log, cpu=0)
    try:
        server.wait_ready(port, url_path)
        url = f"http://{procs.HOST}:{port}{url_path}"
        wrk = ["wrk", "-t1", f"-c{connections}", "--timeout", "10s"]
        subprocess.run(procs.pinned([*wrk, "-d1s", url], 1), capture_output=True, check=True)
        pids = list(procs.tree(server.proc.pid))
        before, children = threads_cpu(pids), resource.getrusage(resource.RUSAGE_CHILDREN)
        timed = procs.pinned([*wrk, f"-d{seconds}s", url], 1)
        done = subprocess.run(timed, capture_output=True, text=True, check=True)
        after, waited = threads_cpu(pids), resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        server.stop()
    found = re.search(r"(\d+) requests in", done.stdout)
    requests = int(found.group(1)) if found else 0
    if not requests:
        raise SystemExit(f"wrk made no request:\n{done.stdout}{done.stderr}")
    client_user = waited.ru_utime - children.ru_utime  # (wrk's, once it was waited for)
    client_system = waited.ru_stime - children.ru_stime
    user, system, voluntary, involuntary = (b - a for a, b in zip(before, after, strict=True))
    per = 1e6 / procs.TICKS / requests  # ticks -> us per request
    return (f"{requests / seconds:9,.0f} req/s  server: user {user * per:7.1f} system "
            f"{system * per:7.1f} us/req, context switches {voluntary / requests:.2f} + "
            f"{involuntary / requests:.2f}/req  wrk: user {client_user * 1e6 / requests:6.1f} "
            f"system {client_system * 1e6 / requests:6.1f} us/req")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--command", help="any server's command line, with {port}")
    parser.add_argument("--app", default="apps.hello:app", help="module:attr in benchmarks/")
    parser.add_argument("--interface", default="asgi3", help="ours: --interface")
    parser.add_argument("--path", default="/", help="the URL path wrk asks for")
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=8, help="measured, after 1 s of warm-up")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    env.install_tools(["wrk"])
    if args.command:
        argv = shlex.split(args.command)
    else:
        argv = [env.our_python(), "-m", "uvicorn", args.app, "--app-dir", "benchmarks",
                "--interface", args.interface, "--host", procs.HOST, "--port", "{port}",
                "--no-access-log", "--log-level", "warning"]  # fmt: skip
    for _ in range(args.rounds):
        print(measure(argv, args.path, args.connections, args.seconds), flush=True)


if __name__ == "__main__":
    main()
