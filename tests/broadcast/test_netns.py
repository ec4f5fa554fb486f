"""Instances on separate hosts: each in a network namespace of its own (``ip netns``), joined to
this host by a veth pair, all talking to one Redis on this host's side of the pairs.

Skipped, with the reason, only where namespaces cannot be created (not root, no ``ip``)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.broadcast.clients import clients, receive, receive_until
from tests.broadcast.conftest import RedisServer
from tests.e2e.process import CLIProcess
from tests.helpers import UNIT


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, check=True, timeout=10 * UNIT
    )


def namespaces_unavailable() -> str | None:
    """Why namespaces cannot be created here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need the ip command (apt-get install iproute2)"
    probe = f"uvprobe{os.getpid()}"
    try:
        ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"cannot create a network namespace: {exc.stderr.strip()}"
    ip("netns", "del", probe)
    return None


@dataclass
class Host:
    """A namespace, and the addresses of both ends of its veth pair."""

    name: str
    address: str  # inside the namespace
    gateway: str  # this host's end


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.0.0/16 that no interface here uses yet (other test runs may)."""
    used = ip("-4", "-o", "addr").stdout
    start = os.getpid() % 250
    for offset in range(250):
        third = (start + offset) % 250
        if f"inet 10.213.{third}." not in used:
            return ipaddress.ip_network(f"10.213.{third}.0/24")
    pytest.fail("no free subnet in 10.213.0.0/16 for the namespaces")


@contextlib.contextmanager
def hosts(count: int) -> Iterator[list[Host]]:
    reason = namespaces_unavailable()
    if reason is not None:
        pytest.skip(reason)
    subnet = free_subnet()
    tag = f"{os.getpid() % 100000}"
    created: list[Host] = []
    try:
        for i in range(1, count + 1):
            base = subnet.network_address + 4 * i
            host = Host(f"uvbcast{tag}n{i}", str(base + 2), str(base + 1))
            outside, inside = f"uvb{tag}h{i}", f"uvb{tag}n{i}"
            ip("netns", "add", host.name)
            created.append(host)
            ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", host.name)
            ip("addr", "add", f"{host.gateway}/30", "dev", outside)
            ip("link", "set", outside, "up")
            ip("-n", host.name, "addr", "add", f"{host.address}/30", "dev", inside)
            ip("-n", host.name, "link", "set", inside, "up")
            ip("-n", host.name, "link", "set", "lo", "up")
        yield created
    finally:
        for host in created:  # deleting the namespace deletes its veth pair
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True, check=False)


async def test_instances_on_separate_hosts_share_groups_through_one_redis() -> None:
    with hosts(2) as (first, second), contextlib.ExitStack() as stack:
        redis = RedisServer(bind=("127.0.0.1", first.gateway, second.gateway))
        redis.start()
        stack.callback(redis.stop)
        urls = []
        for host in (first, second):
            args = ("tests.broadcast.apps:relay", "--host", host.address, "--port", "0")
            env = {"UVICORN_REDIS_URL": f"redis://{host.gateway}:{redis.port}"}
            prefix = ("ip", "netns", "exec", host.name)
            process = stack.enter_context(CLIProcess(*args, env=env, prefix=prefix))
            port = process.wait_ready()
            urls.append(f"ws://{host.address}:{port}/netns")
        async with clients(urls * 3) as chat:
            for i, client in enumerate(chat):
                await client.send(f"message {i}")
            expected = sorted(f"message {i}" for i in range(len(chat)))
            for client in chat:
                assert sorted(await receive(client, len(chat))) == expected
            await chat[0].send(b"\x00bytes\xff")
            for client in chat:
                assert await receive_until(client, b"\x00bytes\xff") == [b"\x00bytes\xff"]
