"""Out of file descriptors (RLIMIT_NOFILE), a worker neither spins nor stops, and serves again at
once when descriptors are free: through the real command line, under prlimit."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

from tests.e2e.process import CLIProcess, http_get
from tests.e2e.supervision import serving_pids
from tests.helpers import UNIT


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_the_worker_neither_spins_nor_stops() -> None:
    prlimit = shutil.which("prlimit")
    assert prlimit, "prlimit (util-linux) is needed: apt-get install util-linux"
    with CLIProcess("examples.hello_world:hello_world", "--port", "0",
                    prefix=(prlimit, "--nofile=64:64")) as server:  # fmt: skip
        port = server.wait_ready()
        (worker,) = serving_pids(server, 1)
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
        try:
            # Every descriptor is taken, and more clients keep arriving: each costs the
            # worker one accept and close (libuv's reserve descriptor), not a busy loop. The
            # one-second window measures; it synchronises nothing.
            before = cpu_seconds(worker)
            time.sleep(1.0)
            assert cpu_seconds(worker) - before < 0.3
        finally:
            for sock in held:
                sock.close()
        # The worker closes its ends as it reads each client's EOF: once it has, the next
        # client is served at once, by the same worker.
        deadline = time.monotonic() + 10 * UNIT
        while len(os.listdir(f"/proc/{worker}/fd")) > 32:
            assert time.monotonic() < deadline, os.listdir(f"/proc/{worker}/fd")
            time.sleep(0.01)
        assert http_get(port).startswith(b"HTTP/1.1 200 OK")
        assert serving_pids(server, 1) == [worker]  # the same worker: it never stopped
        assert server.stop() == 0
