"""Setting values read from text: listening addresses, trusted proxy networks, and the numbers
and names the flags take. ``config.py``'s helpers; each raises ``ConfigError`` (or ValueError,
which the caller turns into one naming the flag)."""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any

from uvicorn.exceptions import ConfigError

DEFAULT_PORT = 8000


@dataclass(frozen=True)
class BindSpec:
    """One listening address: ``tcp`` (host, port), ``unix`` (path) or ``fd`` (an open socket)."""

    kind: str
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bind(address: str) -> BindSpec:
    """Parse ``HOST:PORT``, ``[IPV6]:PORT``, ``unix:PATH`` or ``fd://N``."""
    problem = (
        f"invalid bind address {address!r}: expected HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N"
    )
    if address.startswith("unix:"):
        path = address[len("unix:") :]
        if not path:
            raise ConfigError(problem)
        return BindSpec("unix", path=path)
    if address.startswith("fd://"):
        text = address[len("fd://") :]
        if not text.isdigit():
            raise ConfigError(problem)
        return BindSpec("fd", fd=int(text))
    match = re.fullmatch(
        r"\[([0-9A-Fa-f:.%a-zA-Z]+)\]:(\d+)|([^:\[\]]*):(\d+)|([^:\[\]]+)", address
    )
    if match is None:
        raise ConfigError(problem)
    if match.group(1) is not None:
        host, port_text = match.group(1), match.group(2)
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            raise ConfigError(problem) from None
    elif match.group(3) is not None:
        host, port_text = match.group(3) or "0.0.0.0", match.group(4)
    else:
        host, port_text = match.group(5), str(DEFAULT_PORT)
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ConfigError(f"invalid port in bind address {address!r}: {port} is not in 0-65535")
    return BindSpec("tcp", host=host, port=port)


# The value parsers of the settings. Each takes the text of a flag (or an environment variable)
# or the value a program passed to ``uvicorn.run()``, and returns the typed value or raises
# ValueError saying what is wrong; ``Config`` calls them for every setting, whatever its
# source, so that the command line and ``uvicorn.run()`` accept exactly the same values.


def header(value: Any) -> str:
    if not isinstance(value, str) or ":" not in value or not value.split(":", 1)[0].strip():
        raise ValueError("expected NAME:VALUE")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("not a whole number")


def _number(value: Any) -> float:
    number = None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    if number is None or not math.isfinite(number):
        raise ValueError("not a number")
    return number


def positive_int(value: Any) -> int:
    number = _integer(value)
    if number <= 0:
        raise ValueError("must be at least 1")
    return number


def non_negative_int(value: Any) -> int:
    number = _integer(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def non_negative_float(value: Any) -> float:
    number = _number(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def port_number(value: Any) -> int:
    number = _integer(value)
    if not 0 <= number <= 65535:
        raise ValueError("not in 0-65535")
    return number


def window_bits(value: Any) -> int:
    number = _integer(value)
    # RFC 7692 section 7.1.2: 8 to 15; zlib cannot deflate a raw stream with 8-bit windows.
    if not 9 <= number <= 15:
        raise ValueError("not in 9-15")
    return number


def h2_window_size(value: Any) -> int:
    number = _integer(value)
    # RFC 9113 section 6.5.2: SETTINGS_INITIAL_WINDOW_SIZE is at most 2^31-1.
    if not 1 <= number <= 2**31 - 1:
        raise ValueError("not in 1-2147483647")
    return number


def h2_frame_size(value: Any) -> int:
    number = _integer(value)
    # RFC 9113 section 6.5.2: SETTINGS_MAX_FRAME_SIZE is 2^14 to 2^24-1.
    if not 16384 <= number <= 16777215:
        raise ValueError("not in 16384-16777215")
    return number


def cert_reqs(value: Any) -> int:
    names = {"none": 0, "optional": 1, "required": 2}
    if isinstance(value, str) and value.strip().lower() in names:
        return names[value.strip().lower()]
    number = _integer(value)
    if number not in (0, 1, 2):
        raise ValueError("choose none (0), optional (1) or required (2)")
    return number


def ssl_ciphers(value: Any) -> str:
    """An OpenSSL cipher list (it governs TLS 1.2; TLS 1.3's suites are OpenSSL's), tried on a
    context now: a typo stops the start, not every handshake."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    # Here, not at the top: importing ssl maps and initialises OpenSSL (~5 MiB of RSS), and the
    # master, which imports this module, never speaks TLS.
    import ssl

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(value)
    except ssl.SSLError:
        raise ValueError("OpenSSL selects no cipher from it") from None
    return value


def parse_allowed_ips(text: str) -> list[Any]:
    """``--forwarded-allow-ips``: addresses, networks (CIDR), '*' or Unix socket literals."""
    entries: list[Any] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item == "*":
            entries.append("*")
            continue
        try:
            entries.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            if item.startswith("unix:"):
                entries.append(item)
            else:
                raise ConfigError(
                    f"invalid --forwarded-allow-ips entry {item!r}: not an address or network"
                ) from None
    return entries


# --access-log-format: gunicorn's atoms (``worker/access_log.py`` computes them), and request
# (``%({name}i)s``) or response (``%({name}o)s``) header fields.
ACCESS_LOG_ATOMS = frozenset("hlutrmUqHsBbfaTMDLp")  # one letter each
_ACCESS_ATOM = re.compile(r"%\(([^)]*)\)")


def access_log_names(text: str) -> list[str]:
    """The atoms a format uses, in order, each once."""
    return list(dict.fromkeys(_ACCESS_ATOM.findall(text)))


def access_log_format(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # as the command line would give it: a format of literal text
    if not isinstance(value, str):
        raise ValueError("must be a string")
    for name in access_log_names(value):
        header = name.startswith("{") and name[-2:] in ("}i", "}o") and len(name) > 3
        if name not in ACCESS_LOG_ATOMS and not header:
            raise ValueError(
                f"unknown atom %({name})s: use {', '.join(sorted(ACCESS_LOG_ATOMS))}, "
                "%({header}i)s or %({header}o)s"
            )
    try:  # a stray '%', or an atom not followed by a conversion ('s')
        value % dict.fromkeys(access_log_names(value), "-")
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a format ({exc}); write a literal % as %%") from None
    return value
