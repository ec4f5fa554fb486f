"""Groups over a Redis Cluster (issue 14): two Groups, each with its own connections and origin as
two processes would have, on the session's six-node cluster (``redis_setups.Cluster``: three
masters with a replica each, a password, TLS ports). Groups spread over every master; each
message reaches exactly its group, once, in each sender's order; reading connections killed
inside Redis lose nothing; over TLS; and a master's ``kill -9``: its replica is promoted, every
group works again, and what the replica holds is delivered once. No password in any log line
or error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis

from tests.broadcast.fakes import Recorder
from tests.broadcast.redis_setups import PASSWORD, Cluster, master_of
from tests.broadcast.test_redis_groups import LogWatch
from tests.broadcast.test_replay import join, processes
from tests.helpers import UNIT
from uvicorn import broadcast_cluster, broadcast_streams
from uvicorn.broadcast import Groups
from uvicorn.broadcast_backends import BroadcastError
from uvicorn.broadcast_cluster import ClusterBackend

READER = "uvicorn.groups.reader"


@pytest.fixture(autouse=True)
def quick_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broadcast_streams, "RECONNECT_DELAYS", (0.01, 0.05, 0.1))
    monkeypatch.setattr(broadcast_cluster, "LAYOUT_DELAYS", (0.01, 0.05, 0.1))


def spread(cluster: Cluster, count: int, prefix: str = "t:") -> dict[str, int]:
    """``count`` group names -> the master that serves each; every master serves some."""
    groups = {f"room{i}": master_of(cluster, f"{prefix}room{i}") for i in range(count)}
    assert set(groups.values()) == set(cluster.masters()), groups
    return groups


async def send_rounds(
    senders: dict[str, Groups], groups: Sequence[str], rounds: int, tag: str = ""
) -> None:
    for i in range(rounds):
        for group in groups:
            for name, sender in senders.items():
                await sender.send(group, {"text": f"{group} {name}{tag}{i}"})


async def check(members: dict[str, list[Recorder]], expected: dict[str, list[str]]) -> None:
    """Each member gets exactly its group's messages, once, in each sender's order, then an
    ``end``: sent last, by a third process (c), so that it reaches every member through Redis,
    after all that was sent before it (a sender's own members get its messages at once, so an
    ``end`` of a's could reach a's members before b's last message)."""
    for group, recorders in members.items():
        for member in recorders:
            count = len(expected[group]) + 1
            messages = await asyncio.wait_for(member.until(count), 10 * UNIT)
            received = [m["text"] for m in messages]
            assert received[-1] == f"{group} end", (group, received)
            assert sorted(received[:-1]) == sorted(expected[group]), (group, received)
            for sender in {text.split()[1][0] for text in expected[group]}:
                mine = [t for t in received if t.split()[1][0] == sender]
                assert mine == [t for t in expected[group] if t.split()[1][0] == sender]


def texts(groups: Sequence[str], senders: str, rounds: int, tag: str = "") -> dict[str, list[str]]:
    return {g: [f"{g} {s}{tag}{i}" for i in range(rounds) for s in senders] for g in groups}


async def readers_on(port: int) -> list[dict[str, str]]:
    async with aioredis.Redis(port=port, password=PASSWORD) as admin:
        return [c for c in await admin.client_list() if c.get("name") == READER]


async def test_thirty_groups_over_every_master_reach_exactly_their_members(
    redis_cluster: Cluster, logs: LogWatch
) -> None:
    groups = spread(redis_cluster, 30)
    async with processes(*[redis_cluster.url()] * 3) as (a, b, c):
        members = {g: [*await join(a, g, 1), *await join(b, g, 1)] for g in groups}
        # One reading connection per master in each process, not one per group.
        for master in redis_cluster.masters():
            assert len(await readers_on(master)) == 2
        await send_rounds({"a": a, "b": b}, list(groups), 3)
        for group in groups:
            await c.send(group, {"text": f"{group} end"})
        await check(members, texts(list(groups), "ab", 3))


async def test_reading_connections_killed_while_sending_lose_nothing(
    redis_cluster: Cluster, logs: LogWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Readers that come back only after a while: what is sent meanwhile is read on their return.
    monkeypatch.setattr(broadcast_streams, "RECONNECT_DELAYS", (0.2,))
    groups = list(spread(redis_cluster, 6))
    admins = [aioredis.Redis(port=port, password=PASSWORD) for port in redis_cluster.masters()]
    async with processes(*[redis_cluster.url()] * 3) as (a, b, c):
        members = {g: [*await join(a, g, 2), *await join(b, g, 1)] for g in groups}
        for i in range(100):
            await send_rounds({"a": a, "b": b}, groups, 1, f"-{i}-")
            if i % 20 == 10:
                # Every reading connection on every master, while the entries keep coming;
                # every other time every connection of the test's clients (the senders' too).
                for admin in admins:
                    if i % 40 == 10:
                        for client in await admin.client_list():
                            if client.get("name") == READER:
                                await admin.client_kill_filter(_id=client["id"])
                    else:
                        await admin.client_kill_filter(_type="normal", skipme=True)
        await logs.until("is unreachable", 2)
        for group in groups:
            await c.send(group, {"text": f"{group} end"})
        expected = {g: [f"{g} {s}-{i}-0" for i in range(100) for s in "ab"] for g in groups}
        await check(members, expected)
    for admin in admins:
        await admin.aclose()


async def xreads(masters: Sequence[int], reset: bool = False) -> int:
    """XREAD commands the masters ran (since the last reset)."""
    total = 0
    for port in masters:
        async with aioredis.Redis(port=port, password=PASSWORD) as admin:
            if reset:
                await admin.config_resetstat()
            stats = await admin.info("commandstats")
            total += stats.get("cmdstat_xread", {}).get("calls", 0)
    return total


async def test_a_message_reaches_the_other_process_in_one_read(
    redis_cluster: Cluster, logs: LogWatch
) -> None:
    # The bell carries the message and the id it follows: b's reader delivers it from there,
    # in the XREAD that the bell's entry ends, without reading the group's stream after it.
    groups = list(spread(redis_cluster, 6))
    async with processes(*[redis_cluster.url()] * 2) as (a, b):
        members = {g: await join(b, g, 1) for g in groups}
        await xreads(redis_cluster.masters(), reset=True)
        for i in range(10):
            for group in groups:
                await a.send(group, {"text": f"{group} a{i}"})
                for member in members[group]:
                    await asyncio.wait_for(member.until(i + 1), 10 * UNIT)
        reads = await xreads(redis_cluster.masters())
        # One per message, and the blocked one each master's reader is in (counted by Redis
        # when it returns). The group read after each bell entry made it two per message.
        assert reads <= 10 * len(groups) + 3, reads
        for group in groups:
            await a.send(group, {"text": f"{group} end"})
        await check(members, texts(groups, "a", 10))


async def bells_end(cluster: Cluster) -> dict[tuple[int, bytes], bytes | None]:
    """(master, bell key) -> the id of the bell's last entry, for every bell of the tests'."""
    ends: dict[tuple[int, bytes], bytes | None] = {}
    for port in cluster.masters():
        async with aioredis.Redis(port=port, password=PASSWORD) as admin:
            for bell in await admin.keys("t:~bell*"):
                last = await admin.xrevrange(bell, count=1)
                ends[port, bell] = last[0][0] if last else None
    return ends


@pytest.mark.parametrize("how", ["large messages", "no script"])
async def test_messages_the_bell_does_not_carry(
    redis_cluster: Cluster, logs: LogWatch, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # A message longer than the bell carries only rings it; a master that cannot run the send
    # script (Redis 6 cannot compile its first line; here, a flag Redis 7 does not know) gets
    # the pipeline that rings. Either way, the groups named are read: same messages, same order.
    if how == "large messages":
        monkeypatch.setattr(broadcast_cluster, "BELL_CARRIES", 10)
    else:
        monkeypatch.setattr(broadcast_cluster, "SEND", "#!lua flags=no-such-flag\nreturn 1")
    groups = list(spread(redis_cluster, 6))
    async with processes(*[redis_cluster.url()] * 3) as (a, b, c):
        members = {g: [*await join(a, g, 1), *await join(b, g, 1)] for g in groups}
        since = await bells_end(redis_cluster)
        await send_rounds({"a": a, "b": b}, groups, 3)
        for group in groups:
            await c.send(group, {"text": f"{group} end"})
        await check(members, texts(groups, "ab", 3))
    # The bells named each group sent to, and carried no message: the readers read the groups.
    named = []
    for (port, bell), last in since.items():
        async with aioredis.Redis(port=port, password=PASSWORD) as admin:
            for _, fields in await admin.xrange(bell, f"({last.decode()}" if last else "-"):
                assert b"m" not in fields, fields
                named.append(fields[b"g"].decode())
    assert sorted(named) == sorted(groups * 7)  # 3 rounds of a and b, and c's end
    if how == "no script":
        await logs.until(r"runs no script of cross-slot keys \(Redis 7 does: .*no-such-flag")


async def test_over_tls(redis_cluster: Cluster, logs: LogWatch) -> None:
    groups = list(spread(redis_cluster, 6))
    url = redis_cluster.url(tls=True)
    async with processes(url, url, url) as (a, b, c):
        members = {g: [*await join(a, g, 1), *await join(b, g, 1)] for g in groups}
        await send_rounds({"a": a, "b": b}, groups, 2)
        for group in groups:
            await c.send(group, {"text": f"{group} end"})
        await check(members, texts(groups, "ab", 2))
        for master in redis_cluster.masters():  # the readers came in by the TLS ports
            tls_port = f":{redis_cluster.tls_ports[master]}"
            assert [c["laddr"].endswith(tls_port) for c in await readers_on(master)] == [True] * 2


async def test_a_masters_kill_9(
    redis_cluster: Cluster, logs: LogWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = spread(redis_cluster, 30)
    dead = redis_cluster.masters()[0]
    replica = redis_cluster.replica_of(dead)
    doomed = [g for g, master in groups.items() if master == dead]
    others = [g for g in groups if g not in doomed]
    async with processes(*[redis_cluster.url()] * 3) as (a, b, c):
        members = {g: [*await join(a, g, 1), *await join(b, g, 1)] for g in groups}
        await send_rounds({"a": a}, list(groups), 1, "-before-")
        for recorders in members.values():
            for member in recorders:
                await asyncio.wait_for(member.until(1), 10 * UNIT)

        # b's reader of the doomed master is slow: it has not read what a sends now when the
        # master dies, which its replica holds (looked at there): b gets it from the replica.
        assert isinstance(b.backend, ClusterBackend)
        reader = b.backend.readers[f"127.0.0.1:{dead}"]
        gate = asyncio.Event()
        read_groups = reader._read_groups

        async def slow(names: list[str]) -> None:
            await gate.wait()
            await read_groups(names)

        reader._read_groups = slow  # type: ignore[method-assign]
        with monkeypatch.context() as patch:  # (a message on the bell would pass the gate)
            patch.setattr(broadcast_cluster, "BELL_CARRIES", 0)
            await send_rounds({"a": a}, doomed, 1, "-held-")
        await asyncio.to_thread(redis_cluster.wait_replicated, dead, replica)
        redis_cluster.kill(dead)
        killed = time.monotonic()
        try:
            with pytest.raises(BroadcastError) as info:
                await a.send(doomed[0], {"text": "lost"})  # not taken: the sender knows
            assert "is unreachable" in str(info.value) and "s3cr3t" not in str(info.value)
            # The other masters' groups still work, until the cluster marks the master failed
            # (after cluster-node-timeout): Redis's default cluster-require-full-coverage then
            # refuses every command until the replica is promoted.
            await a.send(others[0], {"text": f"{others[0]} a-during-0"})
            gate.set()
            await asyncio.to_thread(redis_cluster.wait_failover, dead, replica)
            promoted = time.monotonic()
            await send_rounds({"a": a, "b": b}, list(groups), 1, "-after-")
            for group in groups:
                await c.send(group, {"text": f"{group} end"})
            expected = texts(list(groups), "a", 1, "-before-")  # in the order sent
            for group in doomed:
                expected[group].append(f"{group} a-held-0")
            expected[others[0]].append(f"{others[0]} a-during-0")
            for group in groups:
                expected[group] += texts([group], "ab", 1, "-after-")[group]
            await check(members, expected)
            recovered = time.monotonic()
            await logs.until(
                r"Redis at redis-cluster://\S+ \(node 127\.0\.0\.1:\d+\) is unreachable"
            )
            await logs.until(r"Redis at redis-cluster://\S+ is reachable again: groups restored", 2)
            print(f"kill -9 -> promoted {promoted - killed:.2f} s, -> all delivered "
                  f"{recovered - killed:.2f} s")  # fmt: skip
        finally:
            await asyncio.to_thread(redis_cluster.revive, dead)
