"""A worker under a master process: its signals, heartbeat, readiness and --max-requests.

The master (``uvicorn/supervisor/``) hands the worker a link; this module knows only its shape
(``Link``), never the supervisor's code, so the layers stay apart.

Signals from the master:

* TERM: graceful shutdown (WebSockets close with 1001); a TERM during a retirement only ends
  its linger. QUIT: immediate shutdown.
* HUP: retire, replaced while the others go on serving (HUP, --reload, TTOU, --max-requests,
  --worker-max-rss, --worker-lifetime): idle keep-alive connections are answered once more
  before closing, WebSockets close with 1012.
* USR2: retire without the linger: like TERM, with 1012 (the master sends HUP, --reload too).
* USR1: reopen the log files.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, Protocol

from uvicorn.worker.metrics import WorkerMetrics
from uvicorn.worker.state import ServerState

logger = logging.getLogger("uvicorn.error")


class Link(Protocol):
    """The worker's end of its master (``uvicorn.supervisor.process.WorkerLink``)."""

    @property
    def heartbeat_interval(self) -> float: ...

    @property
    def max_requests(self) -> int: ...

    def ready(self) -> None: ...

    def beat(self) -> None: ...

    def report(self, message: bytes) -> None: ...  # one line to the master (--metrics)

    def retire_me(self) -> None: ...

    def stopped_accepting(self) -> None: ...  # its listeners are closed (shutting down)

    def orphaned(self) -> bool: ...

    def reopen_logs(self) -> None: ...


class Served(Protocol):
    """What a supervised worker needs of its server (``server.Server``)."""

    @property
    def state(self) -> ServerState | None: ...

    @property
    def metrics(self) -> WorkerMetrics | None: ...

    def stop(self, force: bool = False) -> None: ...

    def retire(self, linger: bool = True) -> None: ...


class Supervised:
    def __init__(self, server: Served, link: Link) -> None:
        self.server = server
        self.link = link
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0  # when the next heartbeat is due: how late it runs is the loop's lag
        self._lag = 0.0

    def install(self) -> None:
        """Signal handlers, and the heartbeat (which starts before the app is loaded)."""
        loop = asyncio.get_running_loop()
        server = self.server
        loop.add_signal_handler(signal.SIGTERM, server.stop)
        loop.add_signal_handler(signal.SIGQUIT, server.stop, True)
        loop.add_signal_handler(signal.SIGHUP, server.retire, True)
        loop.add_signal_handler(signal.SIGUSR2, server.retire, False)
        loop.add_signal_handler(signal.SIGUSR1, self.link.reopen_logs)
        self._schedule(loop)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = loop.time() + self.link.heartbeat_interval
        self._timer = loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        # How late this callback runs: what every request waited, at that moment, for the loop
        # to turn (a blocking call, a long callback).
        self._lag = max(0.0, loop.time() - self._due)
        self._report()
        # Each beat proves the event loop turns; a loop blocked past --timeout stops them.
        self.link.beat()
        if self.link.orphaned():
            logger.warning("The master process is gone: shutting down")
            self.server.stop()
        self._schedule(loop)

    def _report(self) -> None:
        """--metrics: this worker's counts, whole, to the master (before the beat)."""
        metrics, state = self.server.metrics, self.server.state
        if metrics is not None and state is not None:
            for message in metrics.messages(state, self._lag):
                self.link.report(message)

    def serving(self) -> None:
        """The server has started: count requests for --max-requests, tell the master."""
        state = self.server.state
        limit = self.link.max_requests
        if limit and state is not None:
            make_cycle = state.cycle_class
            count = 0

            def counted(*args: Any) -> Any:
                nonlocal count
                count += 1
                if count == limit:  # once: the master starts a replacement, then retires us
                    logger.info("Served %d requests (--max-requests): asking to retire", limit)
                    self.link.retire_me()
                return make_cycle(*args)

            state.cycle_class = counted  # type: ignore[assignment]
        self.link.ready()

    def close(self) -> None:
        self._report()  # the last counts, so that a worker that stops loses none of them
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
