"""What benchmarks/soak.py reads from /proc about the server it soaks: the worker's open file
descriptors, each classified (a socket with its TCP state, a pipe, an eventpoll, a path), its RSS
and the tree's, and the wait for its descriptors to come back after a phase."""

from __future__ import annotations

import collections
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from harness import procs

TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK",
    "0A": "LISTEN", "0B": "CLOSING",
}  # fmt: skip
POLL = 0.05


def open_fds(pid: int) -> dict[int, str]:
    """fd -> what /proc/<pid>/fd/<fd> links to ("socket:[123]", "pipe:[45]", a path)."""
    fds = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed between the listing and the readlink
            fds[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
    return fds


def socket_kinds(pid: int) -> dict[str, str]:
    """Socket inode -> "tcp LISTEN", "tcp ESTABLISHED", "unix", ... from the pid's net namespace."""
    kinds = {}
    for proto in ("tcp", "tcp6", "udp", "udp6", "unix"):
        try:
            lines = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if proto == "unix" and len(fields) >= 7:
                kinds[fields[6]] = "unix"
            elif proto != "unix" and len(fields) >= 10:
                state = TCP_STATES.get(fields[3], fields[3]) if proto.startswith("tcp") else ""
                kinds[fields[9]] = f"{proto.rstrip('6')} {state}".rstrip()
    return kinds


def fd_kind(target: str, sockets: dict[str, str]) -> str:
    """A descriptor's kind, from its link target: "socket (tcp LISTEN)", "pipe", "/dev/null"..."""
    if target.startswith("socket:["):
        return f"socket ({sockets.get(target[8:-1], 'other')})"
    if target.startswith("pipe:["):
        return "pipe"
    return target  # anon_inode:[eventpoll], a path


def kinds_text(fds: dict[int, str]) -> str:
    """ "6 pipe, 3 socket (tcp LISTEN), ..." for fds whose targets are already kinds."""
    counts = collections.Counter(fds.values())
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "none"


@dataclass
class Snapshot:
    worker_rss: float  # MiB
    tree_rss: float  # MiB, master and worker
    fds: dict[int, str]  # fd -> kind
    links: dict[int, str]  # fd -> link target, to tell a descriptor reopened under its number


def snapshot(root: int, worker: int) -> Snapshot:
    links = open_fds(worker)
    sockets = socket_kinds(worker)
    tree = procs.tree(root)
    if worker not in tree:
        raise procs.ServerFailed(f"the worker (pid {worker}) is gone")
    return Snapshot(
        worker_rss=tree[worker][3] * procs.PAGE / procs.MIB,
        tree_rss=sum(info[3] for info in tree.values()) * procs.PAGE / procs.MIB,
        fds={fd: fd_kind(target, sockets) for fd, target in links.items()},
        links=links,
    )


def left_behind(before: Snapshot, after: Snapshot) -> dict[int, str]:
    """Descriptors open after and not before (a number reused for another object counts)."""
    return {fd: kind for fd, kind in after.fds.items() if before.links.get(fd) != after.links[fd]}


def settle(pid: int, baseline: int, quiet: float, timeout: float) -> tuple[float, bool]:
    """Poll the pid's descriptor count until it is back to `baseline` (True), or has not changed
    for `quiet` seconds, or `timeout` has passed (False); and the seconds it took."""
    start = time.monotonic()
    last, since = -1, start
    while True:
        now = time.monotonic()
        count = len(os.listdir(f"/proc/{pid}/fd"))
        if count <= baseline:
            return now - start, True
        if count != last:
            last, since = count, now
        elif now - since >= quiet or now - start >= timeout:
            return now - start, False
        time.sleep(POLL)


def tree_cpu(root: int) -> float:
    """CPU seconds of the server's tree (master and worker)."""
    return sum(info[2] for info in procs.tree(root).values()) / procs.TICKS


def find_worker(root: int, timeout: float = 10.0) -> int:
    """The one worker the master forked (--workers 1)."""
    deadline = time.monotonic() + timeout
    while True:
        children = [pid for pid, info in procs.tree(root).items() if info[0] == root]
        if len(children) == 1:
            return children[0]
        if time.monotonic() > deadline:
            raise procs.ServerFailed(f"expected one worker under pid {root}, found {children}")
        time.sleep(POLL)
