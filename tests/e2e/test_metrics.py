"""--metrics: the master serves /metrics, summed over its workers, while workers come and go.
The real command line, real workers; the exposition read with prometheus_client's parser."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.process import REPO, CLIProcess, free_port, http_get, run_cli
from tests.e2e.supervision import serving_pids
from tests.helpers import UNIT

APP = "tests.e2e.metrics_apps:statuses"
SERVING_METRICS = r"Serving metrics on http://127\.0\.0\.1:(\d+)/metrics"


def scrape(port: int) -> dict[str, Any]:
    """Every sample of /metrics: {name: value} for unlabelled ones, {name: {label: value}} for
    the labelled ones (``le`` for buckets)."""
    response = http_get(port, "/metrics")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
    assert b"content-type: text/plain; version=0.0.4; charset=utf-8" in head.lower()
    samples: dict[str, Any] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.labels:
                [(_, label)] = sample.labels.items()
                samples.setdefault(sample.name, {})[label] = sample.value
            else:
                samples[sample.name] = sample.value
    return samples


def scrape_until(port: int, check: Any, timeout: float = 10) -> dict[str, Any]:
    """Scrape until ``check(samples)`` holds (the workers report at each heartbeat, at most a
    second apart); the last scrape, or AssertionError with it past ``timeout``."""
    deadline = time.monotonic() + timeout * UNIT
    while True:
        samples = scrape(port)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached: {samples}")
        time.sleep(0.05)  # between two scrapes (polled with a deadline, as a scraper does)


def requests(samples: dict[str, Any]) -> dict[str, float]:
    return dict(samples.get("uvicorn_http_requests_total", {}))


def serve(port: int, counts: dict[str, int]) -> None:
    for status, count in counts.items():
        for _ in range(count):
            path = "/" if status == "200" else f"/status/{status}"
            assert http_get(port, path).startswith(f"HTTP/1.1 {status} ".encode())


def test_metrics_are_summed_over_workers_and_survive_a_killed_worker() -> None:
    metrics_port = free_port()
    args = [APP, "--port", "0", "--workers", "2", "--no-access-log",
            "--metrics", f"127.0.0.1:{metrics_port}"]  # fmt: skip
    with CLIProcess(*args) as server:
        port = server.wait_ready()
        assert int(server.wait_for_line(SERVING_METRICS).group(1)) == metrics_port
        first = serving_pids(server, 2)
        before = {"200": 30, "404": 7, "503": 3}
        serve(port, before)
        samples = scrape_until(metrics_port, lambda s: requests(s) == before)
        # Every request, once: in the histogram too, and both workers served some.
        histogram = "uvicorn_http_request_duration_seconds"
        assert samples[f"{histogram}_count"] == 40
        assert samples[f"{histogram}_bucket"]["+Inf"] == 40
        buckets = list(samples[f"{histogram}_bucket"].values())
        assert buckets == sorted(buckets)  # cumulative
        assert 0 < samples[f"{histogram}_sum"] < 40
        assert samples["uvicorn_http_requests_in_flight"] == 0
        assert samples["uvicorn_websocket_connections"] == 0
        assert samples["uvicorn_workers"] == 2
        assert 0 <= samples["uvicorn_event_loop_lag_seconds"] < 1
        restarts = samples["uvicorn_worker_restarts_total"]
        assert restarts == dict.fromkeys(
            ["exit", "signal", "timeout", "max_requests", "max_rss", "lifetime"], 0
        )
        # Both workers have served (and so reported) some: the totals are their sum.
        pids: set[int] = set()
        while len(pids) < 2:
            assert before["200"] < 250, pids
            pids.add(int(http_get(port).split(b"\r\n\r\n")[1]))
            before["200"] += 1
        assert pids == set(first)
        samples = scrape_until(metrics_port, lambda s: requests(s) == before)
        served = sum(before.values())
        assert samples[f"{histogram}_count"] == served

        # Killed as the OOM killer does, past its last report: what it reported stays counted.
        killed = first[0]
        os.kill(killed, signal.SIGKILL)
        server.wait_for_line(rf"Worker \[{killed}\] was killed by SIGKILL")
        serving_pids(server, 3)  # its replacement serves
        samples = scrape_until(metrics_port, lambda s: s["uvicorn_workers"] == 2)
        # What the killed worker had reported stays counted: no counter went down.
        assert requests(samples) == before
        assert samples["uvicorn_worker_restarts_total"]["signal"] == 1
        assert samples[f"{histogram}_count"] == served

        serve(port, {"200": 10})
        before["200"] += 10
        samples = scrape_until(metrics_port, lambda s: requests(s) == before)
        assert samples[f"{histogram}_count"] == served + 10
        assert server.stop() == 0


def test_a_request_in_flight_and_a_scraper_that_stalls() -> None:
    metrics_port = free_port()
    args = [APP, "--port", "0", "--no-access-log", "--metrics", f"127.0.0.1:{metrics_port}"]
    with CLIProcess(*args) as server:
        port = server.wait_ready()
        server.wait_for_line(SERVING_METRICS)
        # A scraper that connects and says nothing, and one that sends half a head: neither
        # holds the master, which answers the next scrape at once.
        silent = socket.create_connection(("127.0.0.1", metrics_port))
        half = socket.create_connection(("127.0.0.1", metrics_port))
        half.sendall(b"GET /metrics HTTP/1.1\r\nhost: x\r\n")
        holder = socket.create_connection(("127.0.0.1", port))
        holder.sendall(b"GET /hold HTTP/1.1\r\nhost: x\r\n\r\n")
        samples = scrape_until(metrics_port, lambda s: s["uvicorn_http_requests_in_flight"] == 1)
        assert requests(samples) == {}
        assert holder.recv(4096).startswith(b"HTTP/1.1 200 ")
        samples = scrape_until(metrics_port, lambda s: requests(s) == {"200": 1})
        assert samples["uvicorn_http_requests_in_flight"] == 0
        assert samples["uvicorn_http_request_duration_seconds_bucket"]["2.5"] == 0
        assert samples["uvicorn_http_request_duration_seconds_bucket"]["5.0"] == 1
        # A blocked event loop shows as lag, at the next heartbeat; then it is gone again.
        # (1.2 s blocked: the heartbeat due in it runs 0.2 to 1.2 s late.)
        scrape_until(metrics_port, lambda s: s["uvicorn_event_loop_lag_seconds"] < 0.15)
        assert http_get(port, "/block").startswith(b"HTTP/1.1 200 ")
        scrape_until(metrics_port, lambda s: s["uvicorn_event_loop_lag_seconds"] >= 0.19)
        scrape_until(metrics_port, lambda s: s["uvicorn_event_loop_lag_seconds"] < 0.15)
        # Only /metrics is served; the stalled connections are closed past their time.
        assert http_get(metrics_port, "/").startswith(b"HTTP/1.1 404 ")
        silent.settimeout(10 * UNIT)
        assert silent.recv(1) == b""
        half.settimeout(10 * UNIT)
        assert half.recv(1) == b""
        for sock in (silent, half, holder):
            sock.close()
        assert server.stop() == 0


@pytest.mark.parametrize("value", ["unix:/tmp/m.sock", "localhost", "fd://3"])
def test_metrics_takes_a_tcp_host_and_port(value: str) -> None:
    result = run_cli(APP, "--metrics", value)
    assert result.returncode != 0
    assert f"invalid --metrics {value!r}: expected HOST:PORT" in result.stderr


def test_metrics_needs_the_master() -> None:
    # Without a master (uvicorn.run(supervise=False)) nothing would serve the counts.
    code = ("import uvicorn; uvicorn.run('tests.e2e.metrics_apps:statuses', supervise=False, "
            "metrics='127.0.0.1:9100')")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=20 * UNIT)  # fmt: skip
    assert result.returncode != 0
    assert "--metrics need a master process (supervise=True)" in result.stderr


def test_an_ipv6_metrics_address() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    metrics_port = free_port()
    with CLIProcess(APP, "--port", "0", "--metrics", f"[::1]:{metrics_port}") as server:
        server.wait_ready()
        server.wait_for_line(rf"Serving metrics on http://\[::1\]:{metrics_port}/metrics")
        with socket.create_connection(("::1", metrics_port), timeout=10 * UNIT) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
        assert server.stop() == 0
