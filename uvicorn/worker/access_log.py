"""``--access-log-format``: access lines in gunicorn's format, with gunicorn's atoms.

The format is compiled once (``AccessFormat``): the atoms it uses, each with the function that
computes it, so that a line computes those and nothing else. The default line (no format) keeps
its own path in ``ServerState.log_request``.

What a line needs beyond the request (its duration, the response's headers and length) is kept
by a subclass of the interface's request cycle, made only when a format is given
(``AccessFormat.cycle_class``): without one, the request cycle does and stores nothing more.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from uvicorn.config_values import ACCESS_LOG_ATOMS, access_log_names

access_logger = logging.getLogger("uvicorn.access")
# Not loop.time(): uvloop's is when the loop's iteration began, in whole milliseconds, so
# %(D)s would count in thousands and a fast request take 0.
_clock = time.monotonic

Atom = Callable[["Entry"], Any]


class Entry:
    """One line's facts: a request (or WebSocket session) and how it went."""

    __slots__ = ("client", "method", "path", "query", "version", "headers", "status", "cycle",
                 "seconds")  # fmt: skip

    def __init__(self, client: Any, head: Any, status: int, cycle: Any, seconds: float) -> None:
        self.client = client
        self.method: str = head.method
        self.path: bytes = head.raw_path
        self.query: bytes = head.query_string
        self.version: str = head.http_version
        self.headers: list[Any] = head.headers
        self.status = status
        self.cycle = cycle  # the LoggedCycle, None for a WebSocket session
        self.seconds = seconds  # how long it took (a session: how long it was open)

    def request_header(self, name: bytes) -> str:
        for key, value in self.headers:
            if key == name:
                return bytes(value).decode("latin-1")
        return "-"


def _target(entry: Entry) -> str:
    target = entry.path.decode("latin-1")
    return target + "?" + entry.query.decode("latin-1") if entry.query else target


def _user(entry: Entry) -> str:
    """The user name of Basic authentication (RFC 7617), as gunicorn's ``%(u)s``."""
    value = entry.request_header(b"authorization")
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "basic":
        return "-"
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "-"
    return decoded.partition(":")[0] or "-"


def _length(entry: Entry) -> int:
    """The response body's length: its content-length, or else the bytes sent."""
    cycle = entry.cycle
    if cycle is None:
        return 0
    for key, value in cycle.response_headers:
        if bytes(key).lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                break
    return int(cycle.sent)


ATOMS: dict[str, Atom] = {
    "h": lambda e: e.client[0] if e.client else "unix",
    "l": lambda e: "-",
    "u": _user,
    "t": lambda e: time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
    "r": lambda e: f"{e.method} {_target(e)} HTTP/{e.version}",
    "m": lambda e: e.method,
    "U": lambda e: e.path.decode("latin-1"),
    "q": lambda e: e.query.decode("latin-1"),
    "H": lambda e: f"HTTP/{e.version}",
    "s": lambda e: e.status,
    "B": _length,
    "b": lambda e: _length(e) or "-",
    "f": lambda e: e.request_header(b"referer"),
    "a": lambda e: e.request_header(b"user-agent"),
    "T": lambda e: int(e.seconds),
    "M": lambda e: int(e.seconds * 1000),
    "D": lambda e: int(e.seconds * 1_000_000),
    "L": lambda e: f"{e.seconds:.6f}",
    "p": lambda e: f"<{os.getpid()}>",
}
assert set(ATOMS) == ACCESS_LOG_ATOMS


def _header_atom(name: str, incoming: bool) -> Atom:
    key = name.lower().encode("latin-1")
    if incoming:
        return lambda e: e.request_header(key)

    def outgoing(entry: Entry) -> str:
        cycle = entry.cycle
        for field, value in cycle.response_headers if cycle is not None else ():
            if bytes(field).lower() == key:
                return bytes(value).decode("latin-1")
        return "-"

    return outgoing


class AccessFormat:
    def __init__(self, text: str) -> None:
        self.text = text
        self.atoms: list[tuple[str, Atom]] = []
        for name in access_log_names(text):  # (the format was checked by Config)
            if name in ATOMS:
                self.atoms.append((name, ATOMS[name]))
            else:
                self.atoms.append((name, _header_atom(name[1:-2], name.endswith("i"))))

    def log_cycle(self, cycle: Any, status: int) -> None:
        """The line of a request cycle (of ``cycle_class()``; another: a duration of 0)."""
        began = getattr(cycle, "began", None)
        took = 0.0 if began is None else _clock() - began
        self.log(cycle.client, cycle.head, status, cycle, took)

    def log(self, client: Any, head: Any, status: int, cycle: Any, seconds: float) -> None:
        entry = Entry(client, head, status, cycle, seconds)
        access_logger.info(self.text, {name: atom(entry) for name, atom in self.atoms})

    def cycle_class(self, base: type[Any]) -> type[Any]:
        """``base`` keeping what a line needs: when it began, the response's head, the bytes
        of its body that went through ``write_start`` and ``write_body``."""

        class LoggedCycle(base):  # type: ignore[valid-type, misc]
            __slots__ = ("began", "response_headers", "sent")

            def __init__(self, stream: Any, *args: Any) -> None:
                super().__init__(stream, *args)
                self.began = _clock()
                self.response_headers: Any = ()
                self.sent = 0

            def write_start(self, status: Any, headers: Any, content: bytes, more: bool) -> None:
                super().write_start(status, headers, content, more)
                if type(status) is int and status >= 200:  # (not an interim response's)
                    self.response_headers = list(headers)
                    self.sent += len(content)

            def write_body(self, content: bytes, more: bool) -> None:
                super().write_body(content, more)
                self.sent += len(content)

        LoggedCycle.__name__ = LoggedCycle.__qualname__ = "Logged" + base.__name__
        return LoggedCycle
