"""Loggers: ``uvicorn.error`` (server events, app tracebacks), ``uvicorn.access`` (one line per
request) and ``uvicorn.supervisor`` (the master process)."""

from __future__ import annotations

import json
import logging
import logging.config
import os
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


class LevelPrefixFormatter(logging.Formatter):
    """``INFO:     message``, aligned as uvicorn has always printed it."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.__dict__["levelprefix"] = (record.levelname + ":").ljust(10)
        return super().formatMessage(record)


def default_config(level: str) -> dict[str, Any]:
    numeric = LEVELS[level]
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": LevelPrefixFormatter, "fmt": "%(levelprefix)s%(message)s"},
        },
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": numeric, "propagate": False},
            "uvicorn.error": {"level": numeric},
            "uvicorn.access": {"level": numeric},
            "uvicorn.supervisor": {"level": numeric},
        },
    }


def configure_logging(level: str | None = None, config_file: str | None = None) -> None:
    """Default handlers on stderr, or the user's ``--log-config`` file (which ``level``, when
    given, overrides for the ``uvicorn`` loggers)."""
    if config_file is None:
        logging.config.dictConfig(default_config(level or "info"))
        return
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
