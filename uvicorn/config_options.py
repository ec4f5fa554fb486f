"""The server's settings, as fields of ``ServerOptions``, which ``Config`` (``config.py``)
extends with the supervisor's: each setting is declared once, with what ``cli.py`` needs to make
its flag. (Split from ``config.py`` by size only: ``Config`` is the class to use.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from uvicorn.config_values import (
    DEFAULT_PORT,
    access_log_format,
    cert_reqs,
    h2_frame_size,
    h2_window_size,
    header,
    non_negative_float,
    non_negative_int,
    port_number,
    positive_int,
    ssl_ciphers,
    window_bits,
)

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
INTERFACES = ("auto", "messaging", "asgi3", "asgi2", "wsgi")
LIFESPAN_MODES = ("auto", "on", "off")
WS_MODES = ("auto", "websockets", "none")
HTTP_VERSIONS = ("auto", "1.1", "2")
DEFAULT_HOST = "127.0.0.1"
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
class ServerOptions:
    """The settings of a worker's server (``Config`` adds the supervisor's)."""

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
    access_log_format: str | None = option(
        help="Access lines in gunicorn's format and atoms, e.g. '%%(h)s \"%%(r)s\" %%(s)s "
        "%%(M)sms' (default: today's line); WebSocket sessions are logged as they end.",
        metavar="FORMAT", parse=access_log_format,
    )  # fmt: skip
    log_config: str | None = option(
        help="Logging configuration: .json or .yaml (dictConfig), otherwise .ini (fileConfig).",
        metavar="FILE",
    )
    use_colors: bool | None = option(
        help="Colour the level names of the default log format (default: when stderr is a "
        "terminal and NO_COLOR is unset; never in a --log-file or with --log-config).",
        negatable=True,
    )  # fmt: skip
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
    limit_request_body: int | None = option(
        help="Largest request body, in bytes: a larger content-length gets 413 before the app "
        "is called; a body that grows past it, 413 if the response has not started (else the "
        "connection, over HTTP/2 the stream, is closed). Default: no limit.",
        parse=non_negative_int, metavar="BYTES",
    )  # fmt: skip
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
    ssl_ciphers: str | None = option(
        help="TLS 1.2 cipher suites, as an OpenSSL cipher list (default: Python's, forward "
        "secret and without SHA-1; TLS 1.3's suites are OpenSSL's).",
        parse=ssl_ciphers, metavar="CIPHERS",
    )  # fmt: skip
    ssl_min_version: str = option(
        "1.2", help="Oldest TLS version accepted.", choices=("1.2", "1.3")
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
