"""Threads for the adapters: a bounded pool that runs WSGI apps, and a private event loop.

Both use daemon threads, unlike ``concurrent.futures.ThreadPoolExecutor``, whose threads the
interpreter joins at exit: a WSGI app stuck in a request must not keep a server from exiting
once its graceful shutdown is over. Both notice a fork (pre-fork servers, gunicorn's
``--preload``) and start afresh in the child, where the parent's threads do not exist.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable


class ThreadPool:
    """Runs jobs on at most ``size`` threads, started as they are needed; jobs beyond that wait
    in a queue, so a burst of requests cannot start a thread each."""

    def __init__(self, size: int, name: str = "wsgi") -> None:
        if size < 1:
            raise ValueError(f"invalid thread pool size {size}: must be >= 1")
        self.size = size
        self.name = name
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._threads = 0
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job()`` on a pool thread; it must handle its own exceptions."""
        with self._lock:
            if self._pid != os.getpid():
                self._reset()
            self._jobs.put(job)
            # ``_idle`` counts threads that finished a job; one may instead pick up a job queued
            # while all were busy, so it can run high, but only once every thread has started,
            # when it no longer decides anything.
            if self._idle:
                self._idle -= 1  # that thread takes this job
            elif self._threads < self.size:
                self._threads += 1
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{self._threads}", daemon=True
                )
                thread.start()

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            job()
            del job  # drop the request's objects before waiting for the next one
            with self._lock:
                self._idle += 1


class LoopThread:
    """An event loop of our own, run forever by a daemon thread, for code running on threads
    that do not own one (a WSGI server's)."""

    def __init__(self, name: str = "uvicorn-wsgi-loop") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._loop = _new_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(self._loop, ready), name=self.name, daemon=True
                )
                thread.start()
                ready.wait()
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but not on every platform
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
