"""``uvicorn.run()``: the one place that wires listeners, logging and the worker together."""

from __future__ import annotations

import os
import socket
from typing import Any

from uvicorn.config import Config
from uvicorn.logging import configure_logging, error_logger
from uvicorn.supervisor.sockets import bind


def run(app: Any, **options: Any) -> None:
    """Serve ``app`` (an app object or a ``"module:attr"`` string) until SIGINT/SIGTERM.

    Takes the command line's settings as keywords (``port=8000``, ``log_level="debug"``...).
    Raises ``ConfigError``, ``AppLoadError`` or ``StartupError`` with a one-line message.
    """
    config = Config(app=app, **options)
    configure_logging(config.log_level, config.log_config)
    sockets: list[socket.socket] = []
    unix_paths: list[str] = []  # socket files this process created, removed on exit
    try:
        for spec in config.binds():
            sockets.append(bind(spec, config.backlog))
            if spec.kind == "unix":
                unix_paths.append(spec.path)
        error_logger.info("Started server process [%d]", os.getpid())
        from uvicorn.worker.server import run_worker

        run_worker(config, sockets)
    finally:
        for sock in sockets:
            sock.close()  # the event loop may have closed it already: that is fine
        for path in unix_paths:
            if os.path.exists(path):
                os.unlink(path)
