"""Workers past --worker-max-rss or --worker-lifetime are replaced under load, one at a time,
without a failed request: the real command line, real workers, a client loop."""

from __future__ import annotations

import re

from tests.e2e.process import CLIProcess, http_get
from tests.e2e.supervision import SERVING, Load, serving_pids
from uvicorn.supervisor.recycle import rss

WHOAMI = "tests.e2e.supervisor_apps:whoami"
STOPPED = r"Worker \[{}\] stopped \(it exited with code 0\)"
MIB = 1024 * 1024


def test_a_worker_over_max_rss_is_replaced_without_a_failed_request() -> None:
    # One /grow (64 MiB) takes a worker past 64 MiB; it starts at ~20-40 MiB.
    args = [WHOAMI, "--port", "0", "--workers", "2", "--no-access-log", "--worker-max-rss", "64"]
    with CLIProcess(*args) as server:
        port = server.wait_ready()
        first = serving_pids(server, 2)
        load = Load(port)
        try:
            load.more(50)
            grown = []
            while True:  # grow one worker (whichever answers) until it is over the limit
                assert len(grown) < 6, grown
                grown.append(int(http_get(port, "/grow").split(b"\r\n\r\n", 1)[1]))
                if (rss(grown[-1]) or 0) > 64 * MIB:
                    break
            over = (r"Worker \[(\d+)\] uses ([\d.]+) MiB of memory \(RSS\), "
                    r"over --worker-max-rss 64 MiB: replacing it")  # fmt: skip
            match = server.wait_for_line(over)  # at its next heartbeat
            fat, used = int(match.group(1)), float(match.group(2))
            assert fat == grown[-1] and fat in first and used > 64
            serving_pids(server, 3)  # its replacement, before it stopped
            server.wait_for_line(STOPPED.format(fat))
            load.more(50)
        finally:
            load.stop()
        assert load.failures == []
        assert server.stop() == 0
        # One worker was over; the other (if it grew at all) stayed under the limit.
        assert sum("over --worker-max-rss" in line for line in server.output().splitlines()) == 1


def test_workers_past_their_lifetime_are_replaced_one_at_a_time() -> None:
    args = [WHOAMI, "--port", "0", "--workers", "2", "--no-access-log"]
    lifetime = ["--worker-lifetime", "1.5", "--worker-lifetime-jitter", "1"]
    with CLIProcess(*args, *lifetime) as server:
        port = server.wait_ready()
        first = serving_pids(server, 2)
        load = Load(port)
        try:
            past = (r"Worker \[(\d+)\] is ([\d.]+)s old, past --worker-lifetime 1.5s "
                    r"\(\+([\d.]+)s of --worker-lifetime-jitter\): replacing it")  # fmt: skip
            replaced = server.wait_for_lines(past, 2)
            for match in replaced:
                age, share = float(match.group(2)), float(match.group(3))
                assert 0 <= share <= 1 and age >= 1.5 + share - 0.1  # (rounded to 0.1 s)
                server.wait_for_line(STOPPED.format(match.group(1)))
            assert int(replaced[0].group(1)) in first
            load.more(50)
        finally:
            load.stop()
        assert load.failures == []
        # Answers from a replacement too. (Not "from 3 workers": the clients keep their
        # connections, and the kernel may have given all of them to one first worker.)
        assert {int(body) for body in load.bodies} - set(first), load.bodies
        assert server.stop() == 0
        events = [line for line in server.output().splitlines()
                  if "replacing it" in line or re.search(SERVING, line)]  # fmt: skip
    # One at a time: each replacement serves before the next worker is marked.
    marks = [i for i, line in enumerate(events) if "replacing it" in line]
    assert all("serving" in events[i + 1] for i in marks[:2]), events
