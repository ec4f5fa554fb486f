"""Where Redis is: the URL forms of ``BroadcastMiddleware(url=...)`` and ``$UVICORN_REDIS_URL``.

- ``redis://[[user]:password@]host[:port][/db][?option=value...]``, ``rediss://`` over TLS (and
  whatever else redis-py's ``from_url`` takes, ``unix://``): one Redis server.
- ``redis-cluster://[[user]:password@]host[:port][,host[:port]...][?...]``,
  ``rediss-cluster://`` over TLS: seed nodes of a Redis Cluster (the others are learnt from them).
- ``redis-sentinel://[[user]:password@]host[:port][,host[:port]...][/db][?...]#master``,
  ``rediss-sentinel://`` over TLS: Sentinels, and the name of the master they watch (Lettuce's
  form). The password is the data nodes' (``sentinel auth-pass``), not the Sentinels'.

Options after ``?`` are redis-py's (``ssl_ca_certs=/path``, ``ssl_cert_reqs=none``, ...) and apply
to every connection, the Sentinels' too. Logs and errors print ``address``: the URL without its
credentials or options, so that a password never reaches a log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

# scheme -> (kind, the scheme of each node's own URL)
SCHEMES = {
    "redis-cluster": ("cluster", "redis"),
    "rediss-cluster": ("cluster", "rediss"),
    "redis-sentinel": ("sentinel", "redis"),
    "rediss-sentinel": ("sentinel", "rediss"),
}
DEFAULT_PORTS = {"cluster": 6379, "sentinel": 26379}


@dataclass(frozen=True)
class RedisURL:
    url: str
    kind: str  # "redis", "cluster" or "sentinel"
    address: str  # printable: no credentials, no options
    secrets: tuple[str, ...] = ()
    nodes: tuple[tuple[str, int], ...] = ()  # seeds, or Sentinels
    service: str = ""  # the master the Sentinels watch
    tls: bool = False
    _node: str = ""  # a node's URL, with {host} for its host and port

    def node_url(self, host: str, port: int) -> str:
        """A ``redis://`` (or ``rediss://``) URL for one node, with the credentials and options
        of this one."""
        return self._node.replace("{host}", f"[{host}]:{port}" if ":" in host else f"{host}:{port}")

    def scrub(self, text: str) -> str:
        """``text`` without any secret of the URL (for what redis-py's errors might quote)."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def parse(url: str) -> RedisURL:
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in SCHEMES:
        parts = urlsplit(url)
        address = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
        return RedisURL(url, "redis", address, _secrets(parts.password or "", parts.query),
                        tls=parts.scheme == "rediss")  # fmt: skip
    kind, node_scheme = SCHEMES[scheme.lower()]
    rest, _, service = rest.partition("#")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    address = (
        f"{scheme}://{hosts}" + (f"/{path}" if path else "") + (f"#{service}" if service else "")
    )
    secrets = _secrets(userinfo.partition(":")[2], query)
    nodes = tuple(_host_port(host, DEFAULT_PORTS[kind], address) for host in hosts.split(","))
    db = path.strip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"invalid database {db!r} in the Redis URL {address}")
    if kind == "cluster" and db != "0":
        raise ValueError(f"a Redis Cluster has only database 0, not {db}: {address}")
    if kind == "sentinel" and not service:
        raise ValueError(f"the Redis URL {address} needs the master's name after '#'")
    node = f"{node_scheme}://{userinfo}{at}{{host}}/{db}" + (f"?{query}" if query else "")
    return RedisURL(url, kind, address, secrets, nodes, unquote(service),
                    node_scheme == "rediss", node)  # fmt: skip


def _host_port(text: str, default: int, address: str) -> tuple[str, int]:
    host, port = text, ""
    if text.startswith("["):  # [IPv6]:port
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not host or (port and not port.isdigit()):
        raise ValueError(f"invalid host {text!r} in the Redis URL {address}")
    return host, int(port) if port else default


def _secrets(password: str, query: str) -> tuple[str, ...]:
    """The password as it is in the URL and as it is sent (unquoted), and one given as an option."""
    found = [password, unquote(password), *parse_qs(query).get("password", [])]
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))  # longest first
