"""``uvicorn.run()``: the one place that wires listeners, logging, the master and the worker."""

from __future__ import annotations

import os
import threading
from typing import Any

from uvicorn.config import Config
from uvicorn.env_file import load as load_env_file
from uvicorn.exceptions import ConfigError
from uvicorn.logging import configure_logging, error_logger
from uvicorn.supervisor.sockets import Listeners


def run(app: Any, *, supervise: bool = True, **options: Any) -> None:
    """Serve ``app`` (an app object or a ``"module:attr"`` string) until SIGINT/SIGTERM.

    Takes the command line's settings as keywords (``port=8000``, ``workers=4``...).
    Raises ``ConfigError``, ``AppLoadError`` or ``StartupError`` with a one-line message.

    ``supervise`` (the default, and always so from the command line): a master process binds
    the listeners and serves from ``workers`` worker processes, which it restarts, reloads on
    SIGHUP and replaces when they die. ``supervise=False`` serves in this process instead:
    one worker, without --reload, SIGHUP or restarts.
    """
    config = Config(app=app, **options)
    configure_logging(config.log_level, config.log_config, config.log_file, config.use_colors)
    if config.env_file is not None:
        # In this process, before any worker is forked: every worker, and every worker that
        # replaces one (a restart, SIGHUP, --reload), inherits the variables.
        load_env_file(config.env_file)
        error_logger.info("Loaded environment from %s", config.env_file)
    # Imported here, in the master, so that every forked worker shares it (not the app: the
    # master never imports it, so each new worker loads the app's current code).
    from uvicorn.worker.server import run_worker

    if supervise:
        from uvicorn.supervisor.arbiter import Arbiter

        if threading.current_thread() is not threading.main_thread():
            raise ConfigError("a master process handles signals: call uvicorn.run() from the "
                              "main thread, or pass supervise=False")  # fmt: skip

        Arbiter(config, run_worker).run()
        return
    if config.workers > 1 or config.reload or config.metrics:
        raise ConfigError(
            "--workers, --reload and --metrics need a master process (supervise=True)"
        )
    listeners = Listeners(config.binds(), config.backlog, cork=not config.is_ssl)
    try:
        error_logger.info("Started server process [%d]", os.getpid())
        run_worker(config, listeners.shared)
    finally:
        listeners.close()  # the event loop may have closed the sockets already: that is fine
