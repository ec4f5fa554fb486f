"""--metrics, the worker's side: count each response, and report the counts to the master.

The master serves ``/metrics`` (``uvicorn/supervisor/metrics.py``); each worker keeps its own
cumulative counts and sends them whole over its pipe at each heartbeat (at most once a
second), so that a report lost to a busy pipe costs nothing: the next one carries it all.

Counting is made only when --metrics is on, the way --access-log-format is: the state is of a
class whose ``log_access`` (called once per response, where the access line is written)
counts, and the request cycle's class one that records when the request started. Without
--metrics, nothing here runs, and a request pays nothing. Gauges cost no request anything:
the requests in flight (``ServerState.active``) and the open WebSockets are read at the
heartbeat.
"""

from __future__ import annotations

import json
import logging
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from uvicorn.config import METRICS_BUCKETS, Config
from uvicorn.worker.state import ServerState, access_logger

# One write of at most PIPE_BUF (4096 on Linux) bytes reaches the master whole: a longer report
# is split (statuses apart), each part a message of its own.
MAX_MESSAGE = 4000
# Not loop.time(): uvloop's is the time its iteration began, in milliseconds, and a request
# answered within one iteration would take 0. time.monotonic is one C call.
_clock = time.monotonic
# The first bound, written where it is compared (a constant: read faster than a name).
assert METRICS_BUCKETS[0] == 0.001


# Statuses are 0-599 (0: a request its client left before any answer; the response
# head refuses any other); a count is kept per status and duration bucket, in one flat list.
STATUSES = 600


class WorkerMetrics:
    """This worker's counts since it started (cumulative: the master sums them)."""

    def __init__(self) -> None:
        # Responses by duration bucket and status: counts[status + STATUSES * bucket] (bucket
        # 0 first: the fast requests, counted without a multiplication). One list store per
        # response, where a dict by status and a bucket list took two, each dearer.
        self.counts = [0] * (STATUSES * (len(METRICS_BUCKETS) + 1))
        # The durations' sum: kept by the counting closure (a cell: cheaper to add to than a
        # list's item or an attribute), read through this.
        self.seconds: Callable[[], float] = lambda: 0.0
        self.logs = False  # whether the access log is on (set by state_class())

    def state_class(self, config: Config) -> type[ServerState]:
        """The class of the worker's state: a ``ServerState`` whose ``log_access`` counts.

        The state is made of this class, not changed to it later: an instance whose class
        changes keeps the attribute layout of its first one, and every read of its
        attributes then misses CPython's fast path (measured: ~3,800 instructions more per
        request). For the same reason of cost, the class is one of two: with the access log
        and without, rather than one that asks at each request."""
        counts = self.counts
        total = 0.0
        # (Few free variables: each is copied into every call's frame. The rest are globals.)

        class MeteredState(ServerState):
            # What it counts into are the closure's cells, not attributes: ServerState keeps
            # under 30 attributes, and cells are read faster than an instance's dict.
            def log_access(self, cycle: Any, status: int) -> None:
                nonlocal total
                took = _clock() - cycle.started
                total += took
                # A fast request (most, where the cost shows) is one comparison; a slower one
                # searches the bounds (~1,200 instructions, next to its milliseconds).
                if took <= 0.001:  # METRICS_BUCKETS[0]
                    counts[status] += 1
                else:  # the first bound >= took (Prometheus's le is inclusive)
                    counts[status + STATUSES * bisect_left(METRICS_BUCKETS, took)] += 1

            def refused(self, status: int) -> None:
                counts[status] += 1  # (answered at once: the first duration bucket)

            def log_request(self, *args: Any) -> None:
                # ``access_log`` is true with --metrics, so that the connections call
                # log_access: the one other line it would enable (a WebSocket handshake's, by
                # default) stays unwritten while the access log is off.
                return

        def seconds() -> float:
            return total

        self.seconds = seconds
        self.logs = access_log_on(config)
        if not self.logs:
            return MeteredState

        class LoggingMeteredState(MeteredState):
            def log_access(self, cycle: Any, status: int) -> None:
                _count(self, cycle, status)
                _log(self, cycle, status)

            log_request = ServerState.log_request

        _count = MeteredState.log_access
        _log = ServerState.log_access
        return LoggingMeteredState

    def install(self, state: ServerState) -> None:
        """Make ``state`` (of ``state_class()``) count every response, from before any
        connection is made (a request cycle made before would have no ``started``)."""
        assert state.access_log == self.logs, "access_log_on() no longer agrees with state.py"
        state.access_log = True
        state.cycle_class = _timed(state.cycle_class)

    def statuses(self) -> dict[int, int]:
        """Responses by status (those seen)."""
        rows = [self.counts[start : start + STATUSES]
                for start in range(0, len(self.counts), STATUSES)]  # fmt: skip
        return {code: n for code, n in enumerate(map(sum, zip(*rows, strict=True))) if n}

    def buckets(self) -> list[int]:
        """Responses by duration bucket (not cumulative; the last: past every bound)."""
        counts = self.counts
        return [sum(counts[start : start + STATUSES]) for start in range(0, len(counts), STATUSES)]

    def messages(self, state: ServerState, lag: float) -> list[bytes]:
        """The report for the master: ``P`` messages of JSON, each under ``MAX_MESSAGE``."""
        report = {
            "st": {str(code): count for code, count in self.statuses().items()},
            "b": self.buckets(),
            "s": self.seconds(),
            "in": state.active,
            "ws": len(state.websockets),
            "lag": round(lag, 6),
        }
        whole = b"P" + json.dumps(report, separators=(",", ":")).encode()
        if len(whole) <= MAX_MESSAGE:
            return [whole]
        # Hundreds of distinct statuses: they go in parts of their own (the master merges).
        statuses = list(report.pop("st").items())  # type: ignore[attr-defined]
        parts = [b"P" + json.dumps(report, separators=(",", ":")).encode()]
        for start in range(0, len(statuses), 100):
            chunk = {"st": dict(statuses[start : start + 100])}
            parts.append(b"P" + json.dumps(chunk, separators=(",", ":")).encode())
        return parts


def access_log_on(config: Config) -> bool:
    """Whether the access log is written: as ``ServerState`` decides it (the flag, and the
    logger's level), known here before the state is made."""
    return config.access_log and access_logger.isEnabledFor(logging.INFO)


def _timed(base: Any) -> Any:
    class TimedCycle(base):  # type: ignore[misc, valid-type]
        # (Not ``began``: --access-log-format's cycle, which this one may extend, records its
        # own by loop.time(), for its line.)
        __slots__ = ("started",)

        def __init__(
            self,
            stream: Any,
            response: Any,
            head: Any,
            client: Any,
            scheme: str,
            init: Any = base.__init__,
        ) -> None:  # (init: a local, read faster than a closure's cell)
            init(self, stream, response, head, client, scheme)
            self.started = _clock()

    TimedCycle.__name__ = TimedCycle.__qualname__ = "Timed" + base.__name__
    return TimedCycle
