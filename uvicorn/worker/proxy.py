"""Client address and scheme from trusted proxies: X-Forwarded-For/-Proto and Forwarded.

Only connections from ``--forwarded-allow-ips`` may set them. With a chain of proxies, the client
is the right-most address that is not itself a trusted proxy (RFC 7239 section 7.4: the
left-most values are the ones a client can forge).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from uvicorn.config_values import parse_allowed_ips

_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


class ProxyHeaders:
    def __init__(self, allowed: str) -> None:
        entries = parse_allowed_ips(allowed)
        self.trust_all = "*" in entries
        self.networks = [e for e in entries if not isinstance(e, str)]
        self.trust_unix = any(isinstance(e, str) and e.startswith("unix:") for e in entries)
        self._known: dict[str, bool] = {}

    def trusts(self, client: list[Any] | None) -> bool:
        """Whether a peer may set proxy headers (``None``: a Unix socket peer)."""
        if self.trust_all:
            return True
        if client is None:
            return self.trust_unix
        return self.trusts_host(client[0])

    def trusts_host(self, host: str) -> bool:
        if self.trust_all:
            return True
        trusted = self._known.get(host)
        if trusted is None:
            # Parsing an address costs more than the rest of a short connection: remember the
            # answer for the hosts seen (a bounded cache: cleared when full).
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                trusted = False
            else:
                trusted = any(address in network for network in self.networks)
            if len(self._known) >= 4096:
                self._known.clear()
            self._known[host] = trusted
        return trusted

    def resolve(
        self, headers: list[list[bytes]], client: list[Any] | None, scheme: str
    ) -> tuple[list[Any] | None, str]:
        """The request's (client, scheme) after the proxy headers it carries."""
        chain: list[str] = []
        proto: str | None = None
        forwarded: list[bytes] = []
        for name, value in headers:
            if name == b"x-forwarded-for":
                chain.extend(part.strip() for part in value.decode("latin-1").split(","))
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1").split(",")[0].strip().lower()
            elif name == b"forwarded":
                forwarded.append(value)
        if forwarded:
            # RFC 7239 supersedes the X-Forwarded-* headers when a proxy sends both.
            chain, forwarded_proto = _parse_forwarded(b",".join(forwarded).decode("latin-1"))
            proto = forwarded_proto or proto
        if proto is not None and proto in _SCHEMES:
            https = _SCHEMES[proto] == "https"
            if scheme in ("http", "https"):
                scheme = "https" if https else "http"
            else:
                scheme = "wss" if https else "ws"
        if chain:
            client = self._client_from(chain, client)
        return client, scheme

    def _client_from(self, chain: list[str], client: list[Any] | None) -> list[Any] | None:
        found = None
        for entry in reversed(chain):
            host, port = _split_host_port(entry)
            if not host:
                continue
            found = [host, port]
            if not self.trusts_host(host):
                break  # the first address no trusted proxy vouches for
        return found or client


def _parse_forwarded(text: str) -> tuple[list[str], str | None]:
    """RFC 7239: comma-separated elements of semicolon-separated ``name=value`` pairs."""
    chain: list[str] = []
    proto = None
    for element in text.split(","):
        for pair in element.split(";"):
            name, _, value = pair.strip().partition("=")
            value = value.strip().strip('"')
            name = name.lower()
            if name == "for":
                chain.append(value)
            elif name == "proto" and proto is None:
                proto = value.lower()
    return chain, proto


def _split_host_port(entry: str) -> tuple[str, int]:
    if entry.startswith("["):  # [2001:db8::1]:4711
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    if host.lower() == "unknown" or host.startswith("_"):
        return "", 0  # RFC 7239 section 6: unknown or obfuscated identifiers
    return host, int(port) if port.isdigit() else 0
