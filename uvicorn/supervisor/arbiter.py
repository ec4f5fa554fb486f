"""The master: bind the listeners once, fork the workers, keep them alive, restart them.

gunicorn's arbiter habits: the master runs no event loop; signal handlers only enqueue (and
``set_wakeup_fd`` wakes the loop); one loop reaps children, dispatches ``handle_<signal>()``,
reads the workers' pipes and reconciles the workers it has with the ones it wants. Every exit
status is decoded and logged, and a boot failure at the first start halts instead of looping.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import time

from uvicorn.config import Config
from uvicorn.config_values import BindSpec
from uvicorn.exceptions import StartupError
from uvicorn.supervisor import policy, process, recycle, systemd, watchdog
from uvicorn.supervisor.dev_reload import DevReload
from uvicorn.supervisor.metrics import Totals
from uvicorn.supervisor.pidfile import PidFile
from uvicorn.supervisor.process import State, Worker, WorkerEntry
from uvicorn.supervisor.scrape import ScrapeServer
from uvicorn.supervisor.signals import KILL_MARGIN, SIGNALS, SignalHandlers
from uvicorn.supervisor.sockets import Listeners
from uvicorn.supervisor.waker import Waker

logger = logging.getLogger("uvicorn.supervisor")


class Arbiter(SignalHandlers):
    def __init__(self, config: Config, entry: WorkerEntry) -> None:
        self.config = config
        self.entry = entry
        self.name = process.app_name(config)
        self.target = config.workers
        self.generation = 1
        self.workers: dict[int, Worker] = {}
        # What was open before the master made anything of its own (the standard streams, the
        # log file, sockets systemd passed, whatever the program calling uvicorn.run() holds):
        # a worker inherits these. Everything the master opens from now on (its selector and
        # wake-up pipe, the other workers' pipes, the reloader's inotify and eventfd, the
        # systemd notification socket, listeners meant for other workers) a worker closes.
        self.inherited = process.open_fds()
        self.waker = Waker()
        self.backoff = policy.Backoff()
        self.spawn_after = 0.0  # no start before this (back-off)
        self.restarts = recycle.counter()  # workers replaced, by reason (recycle.REASONS)
        self.stopping = False
        self.served = False  # some worker has served: boot failures no longer halt
        self.ready_sent = False
        self.reloading = False
        self.halt_error: str | None = None
        self.notifier = systemd.Notifier()
        self.reloader: DevReload | None = None
        self.listeners: Listeners | None = None
        self.totals = Totals()  # --metrics: the counts of the workers gone
        self.scrape: ScrapeServer | None = None
        self._status = ""

    # Running.

    def run(self) -> None:
        """Serve until TERM, INT or QUIT. Raises ``StartupError`` when the listeners cannot be
        bound or the first workers cannot boot (with the workers' own error)."""
        config = self.config
        pidfile = PidFile(config.pid) if config.pid else None
        try:
            if pidfile is not None:
                pidfile.create(os.getpid())
            inherited = systemd.listen_fds()
            specs = config.binds(default=not inherited)
            specs += [BindSpec("fd", fd=fd) for fd in inherited]
            self.listeners = Listeners(specs, config.backlog, config.reuse_port,
                                       cork=not config.is_ssl)  # fmt: skip
            process.set_title(f"uvicorn: master [{self.name}]")
            if config.metrics:
                self.scrape = ScrapeServer(config.metrics, self.waker, self._render_metrics)
            self.waker.install(SIGNALS)
            if config.reload:
                self.reloader = DevReload(config, self.waker.wake)
                self.reloader.start()
            logger.info(
                "Started master process [%d] (%d worker%s)",
                os.getpid(),
                self.target,
                "" if self.target == 1 else "s",
            )
            self._loop()
        finally:
            self._cleanup(pidfile)
        if self.halt_error is not None:
            raise StartupError(self.halt_error)
        logger.info("Master process [%d] finished", os.getpid())

    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            if self._step(now):
                return
            self._wait(self._next_deadline(now))

    def _step(self, now: float) -> bool:
        """One turn of the loop, up to its wait; True once the master has stopped."""
        self._handle_signals()
        self._reap(now)
        if self.reloader is not None:
            self._reload_on_change()
        if self.stopping:
            if not self.workers:
                return True
        else:
            watchdog.abort_overdue(self.workers.values(), self.config, now)
            self._manage(now)
        watchdog.escalate(self.workers.values(), now)
        return False

    def _handle_signals(self) -> None:
        for signum, count in self.waker.take_signals():
            getattr(self, "handle_" + SIGNALS[signum])(count)

    def _wait(self, deadline: float | None) -> None:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        readable = self.waker.wait(timeout)
        now = time.monotonic()
        for item in readable:
            if type(item) is Worker:
                self._read(item, now)
            else:  # a --metrics socket
                item.handle(now)
        if self.scrape is not None:
            self.scrape.expire(now)

    def _render_metrics(self) -> bytes:
        return self.totals.render(self.workers.values(), self.restarts)

    def _read(self, worker: Worker, now: float) -> None:
        try:
            data = os.read(worker.fd, 65536)
        except BlockingIOError:
            return
        if not data:  # the worker is gone; the reaper will say how
            self.waker.unregister(worker.fd)
            worker.close()
            return
        for message in worker.feed(data):
            kind, text = message[:1], message[1:]
            worker.last_beat = now
            if kind == "R" and worker.state is State.BOOTING:
                worker.state = State.SERVING
                self.served = True
                logger.info("Worker [%d] serving (generation %d%s)", worker.pid, worker.generation,
                            ", the error page" if worker.fallback else "")  # fmt: skip
            elif kind == "M" and not worker.wants_retire:
                worker.wants_retire = True
                self.restarts["max_requests"] += 1
                logger.info("Worker [%d] has served --max-requests: replacing it", worker.pid)
            elif kind == "B" and worker.state is State.SERVING and not worker.wants_retire:
                workers = self.workers.values()
                reason = recycle.check(worker, self.config, workers, self.generation, now)
                if reason is not None:  # past --worker-lifetime or --worker-max-rss
                    self.restarts[reason] += 1
            elif kind == "D":  # its listeners closed: new connections go to the others
                worker.accepting = False
            elif kind == "P":
                self.totals.update(worker, text)
            elif kind == "E":
                worker.error = text

    def _next_deadline(self, now: float) -> float | None:
        deadlines = [w.kill_at for w in self.workers.values() if w.kill_at is not None]
        if not self.stopping:
            deadlines += watchdog.deadlines(self.workers.values(), self.config)
        if self.spawn_after > now and not self.stopping:
            deadlines.append(self.spawn_after)
        scrape_deadline = self.scrape.deadline() if self.scrape is not None else None
        if scrape_deadline is not None:
            deadlines.append(scrape_deadline)
        return min(deadlines) if deadlines else None

    # Children.

    def _reap(self, now: float) -> None:
        if not self.waker.children_exited:
            return
        self.waker.children_exited = False  # before waiting: a later SIGCHLD sets it again
        # Only our workers: uvicorn.run() may run in a program that has other children.
        for pid in list(self.workers):
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                reaped, status = pid, -1  # reaped elsewhere in this program: no status
            if reaped == 0:
                continue
            worker = self.workers.pop(pid)
            if worker.fd >= 0:  # what it said last (its boot error) may still be in the pipe
                self._read(worker, now)
                if worker.fd >= 0:
                    self.waker.unregister(worker.fd)
                    worker.close()
            self.totals.retire(worker)  # (with its last report, just read)
            self._exited(worker, status, now)

    def _exited(self, worker: Worker, status: int, now: float) -> None:
        # A signal that reached the worker may have reached the master at the same moment
        # (systemd sends SIGTERM to the whole control group, a shell's kill to the process
        # group): handled first, it says whether this exit was asked for.
        self._handle_signals()
        if self.stopping and worker.state in (State.BOOTING, State.SERVING):
            worker.state = State.STOPPING  # reaped before the stop could tell it
        if status < 0:
            how = "ended (another waitpid() in this program took its exit status)"
        else:
            how = process.describe_exit(status, worker.killed)
        if worker.state in (State.RETIRING, State.STOPPING):
            if worker.killed:
                logger.warning("Worker [%d] did not stop in time: it %s", worker.pid, how)
            else:
                logger.info("Worker [%d] stopped (it %s)", worker.pid, how)
            return
        if self.stopping:
            return
        if worker.state is State.BOOTING:
            self._boot_failed(worker, how, status, now)
            return
        delay = self.backoff.failure(now)
        if not worker.wants_retire:  # else counted when marked, its replacement under way
            self.restarts[recycle.death_reason(worker, status)] += 1
        logger.error("Worker [%d] %s", worker.pid, how)
        self._restart_later(delay, now)

    def _boot_failed(self, worker: Worker, how: str, status: int, now: float) -> None:
        error = worker.error or f"worker failed to boot: it {how}"
        if self.reloader is not None and not worker.fallback:
            self._reload_failed(error)  # at the first start too: the error page serves
        elif not self.served:
            # The first start: the app is broken; looping would only print it again and again.
            self.halt_error = error
            self._stop(graceful=False, reason="A worker failed to boot")
        elif self.reloading and not policy.serving(self.workers.values(), self.generation):
            self._reload_failed(error)
        else:
            logger.error("Worker [%d] failed to boot: %s", worker.pid, error)
            self.restarts[recycle.death_reason(worker, status)] += 1
            self._restart_later(self.backoff.failure(now), now)

    def _reload_failed(self, error: str) -> None:
        """The new generation's first worker did not boot: the workers that run code that
        loaded serve on (or, under --reload when none does, new ones serve the error)."""
        logger.error("Reload failed: %s" if self.served else "%s", error)
        self.reloading = False
        good = [w.generation for w in self.workers.values()
                if w.state is State.SERVING and not w.fallback]  # fmt: skip
        if self.reloader is not None:
            self.reloader.failed(error)
            if not good:
                logger.info("Answering every request with a 500 naming the error until a "
                            "file change")  # fmt: skip
                return
        self.generation = max(good, default=self.generation - 1)
        logger.info("Still serving generation %d%s", self.generation,
                    "; waiting for a file change" if self.reloader else "")  # fmt: skip
        self.notifier.ready(f"reload failed, serving generation {self.generation}: {error}")

    def _restart_later(self, delay: float, now: float) -> None:
        if delay:
            logger.warning(
                "Restarting in %.1fs (%d failures in a row)", delay, self.backoff.failures
            )
        self.spawn_after = now + delay

    # Reconciling the workers there are with the workers wanted.

    def _manage(self, now: float) -> None:
        decided = policy.plan(self.workers.values(), self.generation, self.target)
        for worker in decided.retire:
            self._retire(worker, now)
        reloader = self.reloader
        may_spawn = reloader is None or reloader.may_spawn(self.workers.values())
        if decided.spawn and may_spawn and now >= self.spawn_after:
            for _ in range(decided.spawn):
                self._spawn()
        self._report()

    def _report(self) -> None:
        serving = policy.serving(self.workers.values(), self.generation)
        status = f"{serving} of {self.target} workers serving, generation {self.generation}"
        complete = policy.complete(self.workers.values(), self.generation, self.target)
        if complete and not self.ready_sent:
            self.ready_sent = True
            self.notifier.ready(status)
        elif complete and self.reloading:
            self.reloading = False
            logger.info("Reload complete: generation %d serving", self.generation)
            self.notifier.ready(status)
        elif status != self._status:
            self.notifier.status(status)
        self._status = status

    def _spawn(self) -> None:
        assert self.listeners is not None
        config = self.config
        jitter = random.randint(0, config.max_requests_jitter)
        serves = config if self.reloader is None else self.reloader.worker_config()
        own: list[socket.socket] = []
        try:
            sockets, own = self.listeners.for_worker()
            close_fds = process.open_fds() - self.inherited - {s.fileno() for s in sockets}
            worker = process.spawn(
                self.entry,
                serves,
                sockets,
                generation=self.generation,
                title=f"uvicorn: worker [{self.name}]",
                close_fds=close_fds,
                max_requests=config.max_requests + jitter if config.max_requests else 0,
            )
        except (OSError, StartupError) as exc:  # out of processes, memory, ports: retry later
            logger.error("Cannot start a worker: %s", exc)
            now = time.monotonic()
            self._restart_later(self.backoff.failure(now), now)
            return
        finally:
            for sock in own:  # the worker has its own copy; the master must not accept on it
                sock.close()
        worker.expires_at = recycle.expiry(config, worker.spawned_at)
        worker.fallback = serves is not config
        self.workers[worker.pid] = worker
        self.waker.register(worker.fd, worker)

    def _retire(self, worker: Worker, now: float) -> None:
        """Drain and stop ``worker`` while others serve (SIGHUP: idle keep-alive connections
        get one more answer, as a request may already be on its way on each)."""
        worker.state = State.RETIRING
        worker.signal(signal.SIGHUP)
        worker.kill_at = now + self.config.graceful_timeout + KILL_MARGIN

    # --reload.

    def _reload_on_change(self) -> None:
        assert self.reloader is not None
        shown = self.reloader.changed()
        if shown is not None and not self.stopping:
            self._new_generation(f"Changes detected in {shown}")

    # Stopping: _stop() (signals.py) tells the workers, the loop waits for them.

    def _cleanup(self, pidfile: PidFile | None) -> None:
        for worker in self.workers.values():  # only after an unexpected error in the master
            worker.signal(signal.SIGKILL)
        for worker in list(self.workers.values()):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(worker.pid, 0)
            worker.close()
        self.workers.clear()
        if self.reloader is not None:
            self.reloader.stop()
        if self.scrape is not None:
            self.scrape.close()
        self.waker.close()
        if self.listeners is not None:
            self.listeners.close()
        if pidfile is not None:
            pidfile.remove()
        self.notifier.close()
