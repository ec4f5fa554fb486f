"""--metrics, the master's side: the workers' counts summed, in Prometheus's text format.

Each worker sends its cumulative counts over its pipe at each heartbeat (``P`` messages:
``uvicorn/worker/metrics.py``); the master keeps each worker's last report and, when a worker
is reaped, adds its counts to those of the workers gone, so that a counter never goes down
while workers come and go. What a worker counted after its last report is lost if it is
killed (at most one heartbeat's worth); a worker that stops sends a last report first.

The master serves the text itself (``scrape.py``), as it runs no event loop: the format is
small enough to write here, and no dependency is needed for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping

from uvicorn.config import METRICS_BUCKETS
from uvicorn.supervisor.process import State, Worker

logger = logging.getLogger("uvicorn.supervisor")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Totals:
    """The counters of the workers that have exited, and the rendering of the whole."""

    def __init__(self) -> None:
        self.statuses: dict[str, int] = {}
        self.buckets = [0] * (len(METRICS_BUCKETS) + 1)
        self.seconds = 0.0

    @staticmethod
    def update(worker: Worker, text: str) -> None:
        """A ``P`` message of ``worker``: its counts so far (statuses may come in parts)."""
        try:
            report = json.loads(text)
        except ValueError:
            logger.warning("Worker [%d] sent an unreadable metrics report", worker.pid)
            return
        statuses = report.pop("st", None)
        if statuses is not None:
            worker.metrics.setdefault("st", {}).update(statuses)
        worker.metrics.update(report)

    def retire(self, worker: Worker) -> None:
        """``worker`` is gone: keep its counts."""
        report = worker.metrics
        for status, count in report.get("st", {}).items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        for index, count in enumerate(report.get("b", ())[: len(self.buckets)]):
            self.buckets[index] += count
        self.seconds += report.get("s", 0.0)
        worker.metrics = {}

    def render(self, workers: Collection[Worker], restarts: Mapping[str, int]) -> bytes:
        """The exposition (text format 0.0.4) of every worker's counts, live and gone."""
        statuses = dict(self.statuses)
        buckets = list(self.buckets)
        seconds = self.seconds
        in_flight = websockets = serving = 0
        lag = 0.0
        for worker in workers:
            report = worker.metrics
            for status, count in report.get("st", {}).items():
                statuses[status] = statuses.get(status, 0) + count
            for index, count in enumerate(report.get("b", ())[: len(buckets)]):
                buckets[index] += count
            seconds += report.get("s", 0.0)
            if worker.state is State.SERVING:
                serving += 1
                # Gauges: only the workers that serve (a retiring one's drain is still counted
                # in flight: it still answers those requests).
                lag = max(lag, report.get("lag", 0.0))
            if worker.state in (State.SERVING, State.RETIRING):
                in_flight += report.get("in", 0)
                websockets += report.get("ws", 0)
        lines = [
            "# HELP uvicorn_http_requests_total HTTP requests answered, by response status.",
            "# TYPE uvicorn_http_requests_total counter",
        ]
        for status in sorted(statuses):
            lines.append(f'uvicorn_http_requests_total{{status="{status}"}} {statuses[status]}')
        name = "uvicorn_http_request_duration_seconds"
        lines += [
            f"# HELP {name} Time from a request's head to the end of the app's call.",
            f"# TYPE {name} histogram",
        ]
        cumulative = 0
        for bound, count in zip((*METRICS_BUCKETS, "+Inf"), buckets, strict=True):
            cumulative += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        lines += [f"{name}_sum {seconds!r}", f"{name}_count {cumulative}"]
        gauges = (
            ("uvicorn_http_requests_in_flight", "HTTP requests being answered.", in_flight),
            ("uvicorn_websocket_connections", "Open WebSocket connections.", websockets),
            ("uvicorn_workers", "Worker processes serving.", serving),
            ("uvicorn_event_loop_lag_seconds", "The largest lateness of a worker's last "
             "heartbeat timer: how long its event loop kept a callback waiting.", lag),
        )  # fmt: skip
        for gauge, text, value in gauges:
            lines += [f"# HELP {gauge} {text}", f"# TYPE {gauge} gauge", f"{gauge} {value}"]
        lines += [
            "# HELP uvicorn_worker_restarts_total Workers replaced, by reason.",
            "# TYPE uvicorn_worker_restarts_total counter",
        ]
        for reason, count in restarts.items():
            lines.append(f'uvicorn_worker_restarts_total{{reason="{reason}"}} {count}')
        return ("\n".join(lines) + "\n").encode()
