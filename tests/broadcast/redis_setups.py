"""Redis Cluster and Sentinel setups of the tests' own, on free ports, with a password (one that
needs quoting in a URL) and TLS ports next to the plain ones.

``Cluster``: six nodes, three masters with a replica each (``redis-cli --cluster create``),
``cluster-node-timeout`` 1 s so that a failover takes seconds. ``Sentinels``: a master, a replica
and Sentinels watching them as ``mymaster``, over TLS or not. Both wait, before they are used,
until a master's ``kill -9`` can be failed over: Redis 7.0's replicas never promote unless their
link to the master was up (``master_link_status:up``), and Sentinels must have found each other.
The waits poll Redis's state with short intervals and a deadline.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from tests.broadcast.conftest import RedisServer
from tests.e2e.process import free_port
from tests.helpers import UNIT, tls_certificate

PASSWORD = "s3cr3t:p@ss/w0rd"  # ':', '@' and '/' must be quoted in a URL
QUOTED = quote(PASSWORD, safe="")
# (and a replica that syncs at once, not after the default 5 s wait for others)
AUTH = ("--requirepass", PASSWORD, "--masterauth", PASSWORD, "--repl-diskless-sync-delay", "0")


def until(condition: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    """Poll ``condition`` (errors count as not yet) until it is true; its value."""
    deadline = time.monotonic() + timeout * UNIT
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (redis.RedisError, OSError) as exc:
            value, error = None, exc
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout * UNIT} s: {what} (last error: {error!r})")


def admin(port: int) -> redis.Redis:
    return redis.Redis(port=port, password=PASSWORD, socket_timeout=2 * UNIT)


def info(port: int, section: str) -> dict[str, Any]:
    with admin(port) as client:
        return client.info(section)  # type: ignore[no-any-return]


def cluster_ok(port: int) -> bool:
    with admin(port) as client:
        reply: Any = client.execute_command("CLUSTER", "INFO")
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    return "cluster_state:ok" in text


class TLSFiles:
    """A self-signed certificate for 127.0.0.1, its own CA, and the options that serve it."""

    def __init__(self, directory: Path) -> None:
        files = tls_certificate(directory)
        self.cert, self.key = files["ssl_certfile"], files["ssl_keyfile"]
        self.query = f"ssl_ca_certs={quote(self.cert)}"
        self.args = ("--tls-cert-file", self.cert, "--tls-key-file", self.key,
                     "--tls-ca-cert-file", self.cert, "--tls-auth-clients", "no",
                     "--tls-replication", "yes")  # fmt: skip


class Cluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.tls = TLSFiles(directory)
        self.nodes: dict[int, RedisServer] = {}  # plain port -> node
        self.tls_ports: dict[int, int] = {}  # plain port -> TLS port

    def start(self) -> None:
        for _ in range(6):
            port, tls_port = free_port(), free_port()
            args = ("--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                    "--cluster-config-file", str(self.directory / f"nodes-{port}.conf"),
                    "--cluster-node-timeout", "1000",
                    "--dir", str(self.directory), "--tls-port", str(tls_port),
                    "--tls-cluster", "yes", *self.tls.args, *AUTH)  # fmt: skip
            node = self.nodes[port] = RedisServer(port, args=args)
            self.tls_ports[port] = tls_port
            node.start()
        addresses = [f"127.0.0.1:{port}" for port in self.nodes]
        subprocess.run(["redis-cli", "-a", PASSWORD, "--no-auth-warning", "--cluster", "create",
                        *addresses, "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, capture_output=True, timeout=30 * UNIT)  # fmt: skip
        self.wait_stable()

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()

    def url(self, tls: bool = False, seeds: int = 2) -> str:
        """``redis-cluster://`` (or ``rediss-cluster://``) with the password and two seeds."""
        ports = list(self.live())[:seeds]
        if tls:
            hosts = ",".join(f"127.0.0.1:{self.tls_ports[port]}" for port in ports)
            return f"rediss-cluster://:{QUOTED}@{hosts}?{self.tls.query}"
        return f"redis-cluster://:{QUOTED}@" + ",".join(f"127.0.0.1:{port}" for port in ports)

    def live(self) -> list[int]:
        return [port for port, node in self.nodes.items() if node.process is not None]

    def view(self, port: int) -> dict[int, list[int]]:
        """What ``port`` says (``CLUSTER NODES``): each master serving slots -> its replicas,
        by plain port; nodes it thinks failed left out. (``CLUSTER SLOTS`` leaves out replicas
        that have no replication offset yet: those of masters that were never written to.)"""
        with admin(port) as client:
            reply: Any = client.execute_command("CLUSTER", "NODES")
        text = reply.decode() if isinstance(reply, bytes) else str(reply)
        nodes = [line.split() for line in text.splitlines() if line.strip()]
        ports = {fields[0]: int(fields[1].split("@")[0].rpartition(":")[2]) for fields in nodes}
        masters: dict[int, list[int]] = {}
        for fields in nodes:
            if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8:
                masters.setdefault(ports[fields[0]], [])
        for fields in nodes:
            if "slave" in fields[2] and "fail" not in fields[2] and ports.get(fields[3]) in masters:
                masters[ports[fields[3]]].append(ports[fields[0]])
        return masters

    def masters(self) -> list[int]:
        return sorted(self.view(self.live()[0]))

    def replica_of(self, master: int) -> int:
        (replica,) = self.view(self.live()[0])[master]
        return replica

    def wait_stable(self) -> None:
        """Every live node says the cluster is ok, and the same masters and replicas; every
        replica's link to its master is up."""

        def stable() -> bool:
            live = self.live()
            views = [self.view(port) for port in live]
            if any(view != views[0] for view in views) or len(views[0]) < 3:
                return False
            if not all(cluster_ok(port) for port in live):
                return False
            replicas = [r for rs in views[0].values() for r in rs]
            if len(replicas) < len(live) - 3:
                return False
            return all(info(r, "replication")["master_link_status"] == "up" for r in replicas)

        until(stable, "a stable cluster")

    def kill(self, port: int) -> None:
        self.nodes[port].kill()

    def wait_failover(self, dead: int, replica: int) -> None:
        """Until every live node says ``replica`` serves what ``dead`` served."""

        def promoted() -> bool:
            for port in self.live():
                masters = self.view(port)
                if dead in masters or replica not in masters:
                    return False
            return all(cluster_ok(port) for port in self.live())

        until(promoted, f"{replica} promoted in place of {dead}")

    def wait_replicated(self, master: int, replica: int) -> None:
        """Until ``replica`` holds everything written to ``master`` so far."""
        offset = info(master, "replication")["master_repl_offset"]
        until(lambda: info(replica, "replication")["slave_repl_offset"] >= offset,
              f"{replica} up to date")  # fmt: skip

    def revive(self, port: int) -> None:
        """Start a killed node again: it rejoins as a replica of the one promoted instead."""
        self.nodes[port].start()
        until(lambda: info(port, "replication")["role"] == "slave", f"{port} a replica")
        self.wait_stable()


class Sentinels:
    """A master, a replica and ``count`` Sentinels (quorum: a majority of them). The replica
    reaches its master at ``master_port``, or at the port ``start(via=...)`` says (a relay)."""

    def __init__(
        self, directory: Path, tls: bool, count: int = 3, replica: bool = True, timeout: int = 2000
    ) -> None:
        self.directory = directory
        self.tls = TLSFiles(directory) if tls else None
        self.count = count
        self.timeout = timeout  # failover-timeout: also how long before a Sentinel "fixes" a
        # replica that replicates from another address than the master's (a relay)
        self.servers: list[RedisServer] = []
        self.tls_ports: dict[int, int] = {}
        self.master = self._server(AUTH)
        self.master_port = self._port(self.master)
        self.has_replica = replica
        self.replica: RedisServer | None = None
        self.sentinels = [self._sentinel(i) for i in range(count)]

    def _port(self, server: RedisServer) -> int:
        """The port others reach it on: its TLS port when over TLS."""
        return self.tls_ports[server.port] if self.tls else server.port

    def _server(self, args: tuple[str, ...], **options: Any) -> RedisServer:
        port = free_port()
        if self.tls is not None:
            self.tls_ports[port] = free_port()
            args = (*args, "--tls-port", str(self.tls_ports[port]), *self.tls.args)
        # (--dir: a replica stores the master's snapshot there while it syncs)
        server = RedisServer(port, args=(*args, "--dir", str(self.directory)), **options)
        self.servers.append(server)
        return server

    def _sentinel(self, i: int) -> RedisServer:
        config = self.directory / f"sentinel-{i}.conf"
        quorum = self.count // 2 + 1
        config.write_text(
            f"sentinel monitor mymaster 127.0.0.1 {self.master_port} {quorum}\n"
            "sentinel down-after-milliseconds mymaster 500\n"
            f"sentinel failover-timeout mymaster {self.timeout}\n"
            f'sentinel auth-pass mymaster "{PASSWORD}"\n'
        )
        return self._server(("--sentinel",), config=config, ready="+monitor master")

    def start(self, via: int | None = None) -> None:
        self.master.start()
        if self.has_replica:
            master = ("127.0.0.1", str(via or self.master_port))
            replica = self.replica = self._server((*AUTH, "--replicaof", *master))
            replica.start()
            # Linked before the Sentinels first ask the master for its replicas (then every
            # 10 s): so that they know it at once.
            until(lambda: info(replica.port, "replication").get("master_link_status") == "up",
                  "the replica linked")  # fmt: skip
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_watched()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{self._port(s)}" for s in self.sentinels)
        if self.tls is not None:
            return f"rediss-sentinel://:{QUOTED}@{hosts}/0?{self.tls.query}#mymaster"
        return f"redis-sentinel://:{QUOTED}@{hosts}/0#mymaster"

    def ask(self, sentinel: RedisServer) -> redis.Redis:
        return redis.Redis(port=sentinel.port, socket_timeout=2 * UNIT)

    def master_address(self, sentinel: RedisServer) -> int:
        with self.ask(sentinel) as client:
            _, port = client.sentinel_get_master_addr_by_name("mymaster")
        return int(port)

    def wait_watched(self) -> None:
        """Until every Sentinel knows the others and the replica, and the replica's link to
        the master is up: only then can the master's death be failed over."""
        replicas = 1 if self.has_replica else 0

        def watched() -> bool:
            for sentinel in self.sentinels:
                with self.ask(sentinel) as client:
                    state = client.sentinel_master("mymaster")
                if state["num-other-sentinels"] < self.count - 1 or state["num-slaves"] < replicas:
                    return False
            if self.replica is None:
                return True
            return info(self.replica.port, "replication").get("master_link_status") == "up"

        until(watched, "Sentinels watching the master and its replica")

    def wait_promoted(self) -> None:
        """Until every Sentinel names the replica as the master, and it acts as one."""
        assert self.replica is not None
        replica = self.replica

        def promoted() -> bool:
            if any(self.master_address(s) != self._port(replica) for s in self.sentinels):
                return False
            return info(replica.port, "replication")["role"] == "master"

        # A failover whose leader election fails (the Sentinels' votes split, likelier on a
        # busy host, where they see the master down at nearly the same time) is tried again
        # only after twice failover-timeout (Redis's sentinel.c): within 20 s, or that.
        until(promoted, "the replica promoted", timeout=max(20, 2 * self.timeout / 1000 + 10))


def master_of(cluster: Cluster, key: str) -> int:
    """The plain port of the master that serves ``key`` (``CLUSTER SLOTS``)."""
    from redis.crc import key_slot

    slot = key_slot(key.encode())
    with admin(cluster.live()[0]) as client:
        reply: Any = client.execute_command("CLUSTER", "SLOTS")
    (port,) = [int(master[1]) for first, last, master, *_ in reply if first <= slot <= last]
    return port
