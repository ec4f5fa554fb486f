"""Every setting, written once: a frozen dataclass of plain values.

The command line (``cli.py``) is generated from these fields, and ``uvicorn.run(app, **options)``
takes the same names, so a setting is added in exactly one place. Validation raises
``ConfigError`` naming the flag and the bad value.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from uvicorn.config_options import DEFAULT_HOST, ServerOptions, option
from uvicorn.config_values import (
    DEFAULT_PORT,
    BindSpec,
    non_negative_float,
    non_negative_int,
    parse_allowed_ips,
    parse_bind,
    positive_int,
)
from uvicorn.exceptions import ConfigError

# The upper bounds (seconds) of uvicorn_http_request_duration_seconds's buckets (--metrics):
# here, in the base, because the workers count into them and the master names them.
METRICS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Past --boot-timeout, before a worker whose event loop is blocked (by a slow import, most
# often) is aborted by the master, or by faulthandler's watchdog without one: the worker's own
# deadline, which logs the coroutines the app waits in, goes first when the loop turns.
BOOT_MARGIN = 1.0


def metrics_address(value: Any) -> str:
    """--metrics: a TCP ``HOST:PORT`` or ``[IPV6]:PORT``, the port given (a listener's other
    kinds, and parse_bind's default port, make no sense for a scrape address)."""
    text = str(value)
    try:
        spec = parse_bind(text)
    except ConfigError as exc:  # (it names no flag: the caller names this one)
        raise ValueError(str(exc)) from None
    if spec.kind != "tcp" or not re.search(r":\d+$", text):
        raise ValueError("expected HOST:PORT or [IPV6]:PORT")
    return text


@dataclass(frozen=True)
class Config(ServerOptions):
    """The server's settings. Field names are the keywords of ``uvicorn.run()``: the server's
    (``config_options.ServerOptions``), then the supervisor's."""

    # The supervisor (uvicorn/supervisor/): the master process and its workers.
    workers: int = option(
        1,
        help="Number of worker processes, supervised by a master process.",
        parse=positive_int,
        metavar="N",
        env="WEB_CONCURRENCY",
    )
    reuse_port: bool = option(
        False,
        help="Give each worker its own SO_REUSEPORT socket (even spread; a worker that exits "
        "drops the connections queued on it) instead of one shared socket.",
    )
    timeout: float = option(
        30.0,
        help="Abort (SIGABRT, traceback logged) and replace a worker whose event loop has been "
        "blocked this long; 0: never.",
        parse=non_negative_float,
        metavar="SECONDS",
    )
    boot_timeout: float = option(
        60.0,
        help="Stop a worker (its traceback logged) that has not started serving this long after "
        "it was started: the app's import and its lifespan startup; 0: never.",
        parse=non_negative_float,
        metavar="SECONDS",
    )
    max_requests: int = option(
        0,
        help="Replace a worker, gracefully, after it has served this many requests; 0: never.",
        parse=non_negative_int,
        metavar="N",
    )
    max_requests_jitter: int = option(
        0,
        help="Add a random 0 to N to --max-requests for each worker, so they retire apart.",
        parse=non_negative_int,
        metavar="N",
    )
    worker_max_rss: int = option(
        0,
        help="Replace a worker, gracefully, once its memory (RSS) is over this many MiB; "
        "0: never.",
        parse=non_negative_int,
        metavar="MIB",
    )
    worker_lifetime: float = option(
        0.0,
        help="Replace a worker, gracefully, once it has run this long; 0: never.",
        parse=non_negative_float,
        metavar="SECONDS",
    )
    worker_lifetime_jitter: float = option(
        0.0,
        help="Add a random 0 to SECONDS to --worker-lifetime for each worker, so they retire "
        "apart.",
        parse=non_negative_float,
        metavar="SECONDS",
    )
    metrics: str | None = option(
        help="Serve Prometheus metrics at http://HOST:PORT/metrics, from the master process, "
        "summed over all workers. Default: off.",
        parse=metrics_address,
        metavar="HOST:PORT",
    )
    pid: str | None = option(
        help="Write the master's process id to this file (refused if one names a running one).",
        metavar="FILE",
    )
    log_file: str | None = option(
        help="Log to this file instead of stderr; SIGUSR1 reopens it (log rotation).",
        metavar="FILE",
    )
    env_file: str | None = option(
        help="Set the variables of this dotenv file (KEY=VALUE lines) in the environment, before "
        "any worker starts; variables already set win.",
        metavar="FILE",
    )
    reload: bool = option(
        False, help="Restart the workers when a watched file changes (for development)."
    )
    reload_dirs: list[str] = option(
        help="Watch this directory for --reload. Repeatable. Default: --app-dir.",
        metavar="DIR",
        repeatable=True,
        flag="--reload-dir",
    )
    reload_includes: list[str] = option(
        help="Also watch files matching this glob (*.py always is). Repeatable.",
        metavar="GLOB",
        repeatable=True,
        flag="--reload-include",
    )
    reload_excludes: list[str] = option(
        help="Ignore files or directories matching this glob. Repeatable.",
        metavar="GLOB",
        repeatable=True,
        flag="--reload-exclude",
    )
    reload_delay: float = option(
        0.25,
        help="Time between two checks for changes (--reload): the quiet that ends a burst of "
        "changes; at least 0.05.",
        parse=non_negative_float,
        metavar="SECONDS",
    )

    def __post_init__(self) -> None:
        # Every setting is checked here, whether it came from the command line (text), the
        # environment (text) or a program calling uvicorn.run() (typed values): one rule each.
        for f in fields():
            value = getattr(self, f.name)
            checked = _checked(f, value)
            if checked is not value:
                object.__setattr__(self, f.name, checked)  # text made typed: "4" -> 4
        for address in self.bind:
            parse_bind(address)
        parse_allowed_ips(self.forwarded_allow_ips)
        if bool(self.ssl_keyfile) != bool(self.ssl_certfile):
            raise ConfigError("--ssl-keyfile and --ssl-certfile must be given together")
        if self.reload and not isinstance(self.app, str):
            raise ConfigError("--reload needs the app as an import string, e.g. 'app:hello_world'")
        if self.log_file and self.log_config:
            raise ConfigError(
                "--log-file and --log-config exclude each other: name the file in the log config"
            )

    def binds(self, default: bool = True) -> list[BindSpec]:
        """Every address to listen on, from --bind, --uds, --fd, --host and --port.

        ``default``: listen on 127.0.0.1:8000 when none is given (not when systemd hands
        sockets over)."""
        specs = [parse_bind(address) for address in self.bind]
        if self.uds:
            specs.append(BindSpec("unix", path=self.uds))
        if self.fd is not None:
            specs.append(BindSpec("fd", fd=self.fd))
        if self.host is not None or self.port is not None or (default and not specs):
            host = DEFAULT_HOST if self.host is None else self.host
            port = DEFAULT_PORT if self.port is None else self.port
            specs.append(BindSpec("tcp", host=host.strip("[]"), port=port))
        return specs

    @property
    def is_ssl(self) -> bool:
        return bool(self.ssl_certfile)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def encoded_headers(self) -> list[tuple[bytes, bytes]]:
        """The ``--header`` values as (lower-case name, value) byte pairs."""
        pairs = []
        for text in self.headers:
            name, value = text.split(":", 1)
            pairs.append((name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
        return pairs


def _checked(f: dataclasses.Field[Any], value: Any) -> Any:
    """``value`` as the setting ``f`` takes it (parsed from text if need be), or ConfigError."""
    flag = flag_of(f)
    if f.metadata["repeatable"]:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"invalid {flag} {value!r}: expected a list of values")
        return [_checked_one(f, flag, item) for item in value]
    if value is None and f.default is None:
        return None  # not set
    return _checked_one(f, flag, value)


def _checked_one(f: dataclasses.Field[Any], flag: str, value: Any) -> Any:
    meta = f.metadata
    parse = meta["parse"]
    if parse is not None:
        try:
            return parse(value)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid {flag} {value!r}: {exc}") from None
    kind = str(f.type)
    if kind in ("bool", "bool | None"):  # (None, "auto", is never checked: not set)
        if not isinstance(value, bool):
            raise ConfigError(f"invalid {flag} {value!r}: must be True or False")
    elif kind.startswith(("str", "list[str]")) and not isinstance(value, str):
        raise ConfigError(f"invalid {flag} {value!r}: must be a string")
    choices = meta["choices"]
    if choices and value not in choices:
        raise ConfigError(f"invalid {flag} {value!r}: choose from {', '.join(choices)}")
    return value


def fields() -> list[dataclasses.Field[Any]]:
    """The settings that are flags (every field but ``app``)."""
    return [f for f in dataclasses.fields(Config) if f.name != "app"]


def flag_of(f: dataclasses.Field[Any]) -> str:
    """The command-line flag of a setting: ``--root-path`` for ``root_path``."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")
