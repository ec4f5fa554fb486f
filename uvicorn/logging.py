"""Loggers: ``uvicorn.error`` (server events, app tracebacks), ``uvicorn.access`` (one line per
request) and ``uvicorn.supervisor`` (the master process)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from uvicorn.exceptions import ConfigError

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}

error_logger = logging.getLogger("uvicorn.error")
access_logger = logging.getLogger("uvicorn.access")
supervisor_logger = logging.getLogger("uvicorn.supervisor")


# The level names' colours of the published uvicorn's default format, as the ANSI SGR codes
# click.style() writes: trace blue, debug cyan, info green, warning yellow, error red, critical
# bright red.
COLOURS = {TRACE: 34, logging.DEBUG: 36, logging.INFO: 32, logging.WARNING: 33,
           logging.ERROR: 31, logging.CRITICAL: 91}  # fmt: skip


class LevelPrefixFormatter(logging.Formatter):
    """``INFO:     message``, aligned as uvicorn has always printed it; ``use_colors``: the level
    name in its colour (the padding counts only what shows)."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None,
                 style: Any = "%", use_colors: bool = False) -> None:  # fmt: skip
        super().__init__(fmt, datefmt, style)
        self.use_colors = use_colors

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        name = record.levelname
        padding = " " * (9 - len(name))
        if self.use_colors and record.levelno in COLOURS:
            name = f"\x1b[{COLOURS[record.levelno]}m{name}\x1b[0m"
        record.__dict__["levelprefix"] = name + ":" + padding
        return super().formatMessage(record)


def use_colours(use_colors: bool | None, log_file: str | None) -> bool:
    """``--use-colors``: never in a file; by default, when stderr is a terminal and NO_COLOR
    (https://no-color.org) is unset or empty."""
    if log_file is not None:
        return False
    if use_colors is not None:
        return use_colors
    return sys.stderr.isatty() and not os.environ.get("NO_COLOR")


def configure_default(level: str, log_file: str | None = None,
                      use_colors: bool | None = None) -> None:  # fmt: skip
    """The ``uvicorn`` loggers at ``level``, writing to stderr (or ``log_file``), and nothing
    else: what ``dictConfig`` did with our default config, without importing
    ``logging.config`` (and its ``logging.handlers``, ``socketserver``, ``pickle``: ~1 MiB of
    RSS in the master, which stays small: docs/architecture.md)."""
    numeric = LEVELS[level]
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        try:
            handler = logging.FileHandler(log_file)
        except OSError as exc:
            raise ConfigError(f"cannot open --log-file {log_file!r}: {exc}") from None
    colours = use_colours(use_colors, log_file)
    handler.setFormatter(LevelPrefixFormatter("%(levelprefix)s%(message)s", use_colors=colours))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.supervisor"):
        logger = logging.getLogger(name)
        for old in logger.handlers[:]:  # a second configuration replaces the first
            logger.removeHandler(old)
            old.close()
        logger.setLevel(numeric)
        logger.propagate = name != "uvicorn"
        logger.disabled = False
    logging.getLogger("uvicorn").addHandler(handler)


def configure_logging(
    level: str | None = None,
    config_file: str | None = None,
    log_file: str | None = None,
    use_colors: bool | None = None,
) -> None:
    """Default handlers on stderr (or ``log_file``), or the user's ``--log-config`` file (which
    ``level``, when given, overrides for the ``uvicorn`` loggers; ``use_colors`` applies only
    to the default format)."""
    if config_file is None:
        configure_default(level or "info", log_file, use_colors)
        return
    import json
    import logging.config

    if not os.path.exists(config_file):
        raise ConfigError(f"--log-config file {config_file!r} does not exist")
    try:
        if config_file.endswith(".json"):
            with open(config_file) as file:
                logging.config.dictConfig(json.load(file))
        elif config_file.endswith((".yaml", ".yml")):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError:
                raise ConfigError(
                    f"--log-config {config_file!r} is YAML: install PyYAML to read it"
                ) from None
            with open(config_file) as file:
                logging.config.dictConfig(yaml.safe_load(file))
        else:
            logging.config.fileConfig(config_file, disable_existing_loggers=False)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"invalid --log-config file {config_file!r}: {exc}") from None
    if level is not None:
        logging.getLogger("uvicorn").setLevel(LEVELS[level])


def _file_handlers() -> list[logging.FileHandler]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    found: list[logging.FileHandler] = []
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, logging.FileHandler) and handler not in found:
                found.append(handler)
    return found


def reopen_log_files() -> None:
    """Reopen every log file (SIGUSR1), so that a rotated log is written anew."""
    for handler in _file_handlers():
        handler.acquire()
        try:
            if handler.stream is not None:
                handler.stream.close()
            handler.stream = handler._open()
        finally:
            handler.release()


def log_stream() -> Any:
    """Where ``uvicorn.error`` writes: its log file, else stderr (for faulthandler's
    tracebacks, which bypass logging)."""
    logger: logging.Logger | None = error_logger
    while logger is not None:
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler) and handler.stream is not None:
                return handler.stream
        logger = logger.parent if logger.propagate else None
    return sys.stderr
