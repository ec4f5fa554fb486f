"""Setting values read from text: listening addresses, trusted proxy networks, and the numbers
and names the flags take. ``config.py``'s helpers; each raises ``ConfigError`` (or ValueError,
which the caller turns into one naming the flag)."""

from __future__ import annotations

import ipaddress
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


def header(text: str) -> str:
    if ":" not in text or not text.split(":", 1)[0].strip():
        raise ConfigError(f"invalid --header {text!r}: expected NAME:VALUE")
    return text


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError
    return value


def cert_reqs(text: str) -> int:
    names = {"none": 0, "optional": 1, "required": 2}
    if text.lower() in names:
        return names[text.lower()]
    value = int(text)
    if value not in (0, 1, 2):
        raise ValueError
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
