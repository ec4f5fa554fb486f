"""A worker inherits only the file descriptors it needs from the master: the standard streams,
its listeners and its own pipe to the master. Not the master's selector (a second epoll in
every worker), its wake-up pipe, the other workers' pipes, or the reloader's inotify."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tests.e2e.process import CLIProcess
from tests.e2e.supervision import serving_pids


def targets(pid: int) -> dict[int, str]:
    fds = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            fds[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
    return fds


def test_a_worker_inherits_only_what_it_needs(tmp_path: Path) -> None:
    args = ["tests.e2e.supervisor_apps:whoami", "--bind", "127.0.0.1:0", "--bind",
            f"unix:{tmp_path / 'sock'}", "--workers", "3", "--reload", "--reload-dir",
            str(tmp_path)]  # fmt: skip
    with CLIProcess(*args) as server:
        server.wait_ready()
        workers = serving_pids(server, 3)
        master = targets(server.proc.pid)
        listeners = {t for t in master.values() if t.startswith("socket:")}
        master_pipes = {t for fd, t in master.items() if t.startswith("pipe:") and fd > 2}
        assert "anon_inode:inotify" in master.values()  # the reloader's
        for pid in workers:
            worker = targets(pid)
            # Pipes and sockets are named by their inode: the same name, the same one.
            shared = {t for fd, t in worker.items()
                      if fd > 2 and t in master.values() and t.startswith(("pipe:", "socket:"))}
            shared_pipes = shared & master_pipes
            # Its own pipe to the master (write end here, read end there), and nothing else.
            assert len(shared_pipes) == 1, (pid, worker, master)
            assert shared - shared_pipes == listeners, (pid, worker, master)
            kinds = list(worker.values())
            assert kinds.count("anon_inode:[eventpoll]") == 1, worker  # uvloop's own
            assert "anon_inode:inotify" not in kinds, worker
        assert server.stop() == 0
