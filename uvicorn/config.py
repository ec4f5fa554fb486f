"""Every setting, written once: a frozen dataclass of plain values.

The command line (``cli.py``) is generated from these fields, and ``uvicorn.run(app, **options)``
takes the same names, so a setting is added in exactly one place. Validation raises
``ConfigError`` naming the flag and the bad value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from uvicorn.config_values import (
    DEFAULT_PORT,
    BindSpec,
    cert_reqs,
    h2_frame_size,
    h2_window_size,
    header,
    non_negative_float,
    non_negative_int,
    parse_allowed_ips,
    parse_bind,
    port_number,
    positive_int,
    window_bits,
)
from uvicorn.exceptions import ConfigError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
INTERFACES = ("auto", "messaging", "asgi3", "asgi2", "wsgi")
LIFESPAN_MODES = ("auto", "on", "off")
WS_MODES = ("auto", "websockets", "none")
HTTP_VERSIONS = ("auto", "1.1", "2")
DEFAULT_HOST = "127.0.0.1"
# Past --boot-timeout, before a worker whose event loop is blocked (by a slow import, most
# often) is aborted by the master, or by faulthandler's watchdog without one: the worker's own
# deadline, which logs the coroutines the app waits in, goes first when the loop turns.
BOOT_MARGIN = 1.0


def option(
    default: Any = None,
    *,
    help: str,
    metavar: str | None = None,
    choices: tuple[str, ...] | None = None,
    parse: Callable[[str], Any] | None = None,
    repeatable: bool = False,
    negatable: bool = False,
    env: str | None = None,
    flag: str | None = None,
) -> Any:
    """Declare a setting; the metadata is what ``cli.py`` turns into a flag."""
    metadata = {
        "help": help,
        "metavar": metavar,
        "choices": choices,
        "parse": parse,
        "repeatable": repeatable,
        "negatable": negatable,
        "env": env,
        "flag": flag,
    }
    if repeatable:
        return field(default_factory=list, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Config:
    """The server's settings. Field names are the keywords of ``uvicorn.run()``."""

    app: Any = None
    bind: list[str] = option(
        help="Address to listen on: HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N. Repeatable. "
        f"Default: {DEFAULT_HOST}:{DEFAULT_PORT}.",
        metavar="ADDRESS",
        repeatable=True,
    )
    host: str | None = option(help=f"Bind to this host (default {DEFAULT_HOST}).", metavar="HOST")
    port: int | None = option(
        help=f"Bind to this port (default {DEFAULT_PORT}).", parse=port_number, metavar="PORT"
    )
    uds: str | None = option(help="Bind to this Unix domain socket.", metavar="PATH")
    fd: int | None = option(
        help="Serve on this already open socket file descriptor.", parse=non_negative_int
    )
    app_dir: str = option(".", help="Look for the app's module in this directory.", metavar="DIR")
    factory: bool = option(False, help="Treat MODULE:ATTR as a factory that returns the app.")
    interface: str = option(
        "auto",
        help="Application interface; 'auto' tells from the app's signature (never 'wsgi': "
        "a WSGI app takes two parameters, like a messaging-interface app).",
        choices=INTERFACES,
    )
    wsgi_threads: int = option(
        10,
        help="Threads that run a WSGI app (--interface wsgi): requests it serves at once.",
        parse=positive_int,
        metavar="N",
    )
    lifespan: str = option(
        "auto", help="Run the ASGI lifespan protocol (ASGI apps only).", choices=LIFESPAN_MODES
    )
    root_path: str = option(
        "", help="The path prefix the app is mounted at, behind a proxy.", metavar="PATH"
    )
    log_level: str | None = option(
        help="Log level (default info, or what --log-config sets).", choices=LOG_LEVELS
    )
    access_log: bool = option(True, help="Log each request on 'uvicorn.access'.", negatable=True)
    log_config: str | None = option(
        help="Logging configuration: .json or .yaml (dictConfig), otherwise .ini (fileConfig).",
        metavar="FILE",
    )
    timeout_keep_alive: float = option(
        5.0,
        help="Close idle keep-alive connections after this many seconds.",
        parse=non_negative_float,
        metavar="SECONDS",
    )
    timeout_request_head: float = option(
        30.0,
        help="Answer 408 and close when a request head takes longer than this to arrive.",
        parse=non_negative_float,
        metavar="SECONDS",
    )
    limit_concurrency: int | None = option(
        help="Answer 503 to requests and WebSocket handshakes beyond this many in flight (an "
        "open WebSocket is in flight until it closes).",
        parse=positive_int,
        metavar="N",
    )
    backlog: int = option(2048, help="Listen backlog.", parse=positive_int, metavar="N")
    limit_request_line: int = option(
        8190, help="Longest request line, in bytes (414 beyond).", parse=positive_int, metavar="N"
    )
    limit_request_fields: int = option(
        100, help="Most header fields in a request (431 beyond).", parse=positive_int, metavar="N"
    )
    limit_request_field_size: int = option(
        8190, help="Longest header field, in bytes (431 beyond).", parse=positive_int, metavar="N"
    )
    http: str = option(
        "auto",
        help="HTTP versions served: 'auto' both (HTTP/2 by ALPN over TLS; in cleartext by prior "
        "knowledge or Upgrade: h2c), '1.1' or '2' only.",
        choices=HTTP_VERSIONS,
    )
    h2_max_concurrent_streams: int = option(
        100, help="HTTP/2 streams a client may have open at once (REFUSED_STREAM beyond).",
        parse=positive_int, metavar="N",
    )  # fmt: skip
    h2_initial_window_size: int = option(
        262144, help="HTTP/2 window of a request body: what a client may send ahead of the app.",
        parse=h2_window_size, metavar="BYTES",
    )  # fmt: skip
    h2_max_frame_size: int = option(
        16384, help="Largest HTTP/2 frame payload accepted, in bytes.", parse=h2_frame_size,
        metavar="BYTES",
    )  # fmt: skip
    ws: str = option(
        "auto", help="WebSocket support: 'none' serves upgrade requests as plain HTTP.",
        choices=WS_MODES,
    )  # fmt: skip
    ws_max_size: int = option(
        16 * 1024 * 1024,
        help="Largest WebSocket message accepted, in bytes (closed with 1009 beyond).",
        parse=positive_int,
        metavar="BYTES",
    )
    ws_ping_interval: float = option(
        20.0,
        help="Ping a WebSocket peer silent for this long (0: never).",
        parse=non_negative_float,
        metavar="SECONDS",
    )
    ws_ping_timeout: float = option(
        20.0,
        help="Close a WebSocket whose peer does not answer a ping within this long (0: never).",
        parse=non_negative_float,
        metavar="SECONDS",
    )
    ws_per_message_deflate: bool = option(
        True, help="Negotiate WebSocket compression (permessage-deflate).", negatable=True
    )
    ws_deflate_window_bits: int = option(
        12,
        help="LZ77 window of WebSocket compression, in bits, 9 to 15: larger compresses a "
        "little better and costs memory per connection (a busy one: ~50 KiB at 12, ~250 KiB "
        "at 15).",
        parse=window_bits,
        metavar="BITS",
    )
    proxy_headers: bool = option(
        True,
        help="Trust X-Forwarded-For/-Proto and Forwarded from --forwarded-allow-ips.",
        negatable=True,
    )
    forwarded_allow_ips: str = option(
        "127.0.0.1",
        help="Comma-separated addresses or networks whose proxy headers are trusted; '*' for all.",
        metavar="IPS",
        env="FORWARDED_ALLOW_IPS",
    )
    ssl_keyfile: str | None = option(help="TLS private key file.", metavar="FILE")
    ssl_certfile: str | None = option(help="TLS certificate (chain) file.", metavar="FILE")
    ssl_keyfile_password: str | None = option(help="Password of the TLS key.", metavar="PASSWORD")
    ssl_ca_certs: str | None = option(
        help="CA certificates to verify clients with.", metavar="FILE"
    )
    ssl_cert_reqs: int = option(
        0,
        help="Client certificates: none (0), optional (1) or required (2).",
        parse=cert_reqs,
        metavar="MODE",
    )
    server_header: bool = option(True, help="Send 'server: uvicorn'.", negatable=True)
    date_header: bool = option(True, help="Send a 'date' header.", negatable=True)
    headers: list[str] = option(
        help="Add this header to every response. Repeatable.",
        metavar="NAME:VALUE",
        parse=header,
        repeatable=True,
        flag="--header",
    )
    graceful_timeout: float = option(
        30.0,
        help="On SIGTERM/SIGINT (and for a worker retired by SIGHUP), wait this long for "
        "in-flight requests before closing them.",
        parse=non_negative_float,
        metavar="SECONDS",
    )
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
    pid: str | None = option(
        help="Write the master's process id to this file (refused if one names a running one).",
        metavar="FILE",
    )
    log_file: str | None = option(
        help="Log to this file instead of stderr; SIGUSR1 reopens it (log rotation).",
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
    if kind == "bool":
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
