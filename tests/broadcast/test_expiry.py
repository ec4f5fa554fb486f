"""Streams of abandoned groups expire (issue 14): every send sets its group's stream to expire
``expire`` seconds later (a day by default), and in a cluster its master's bell too, in the
same pipeline as its XADD (one round trip, as before); Redis deletes the stream of a group
nobody sends to any more, and its members still get what is sent after. Real Redis servers
of the tests' own (one server; the session's cluster)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis
from redis.asyncio.connection import Connection

from tests.broadcast.conftest import RedisServer
from tests.broadcast.redis_setups import Cluster, admin
from tests.broadcast.test_redis_cluster import spread
from tests.broadcast.test_replay import join
from tests.helpers import UNIT
from uvicorn import broadcast_streams
from uvicorn.broadcast import BroadcastMiddleware, Groups, make_backend
from uvicorn.broadcast_streams import EXPIRE, HISTORY

WAIT = 5 * UNIT


@contextlib.asynccontextmanager
async def processes(
    url: str, count: int, expire: float | None, prefix: str = "t:"
) -> AsyncIterator[Any]:
    """``count`` Groups, each with its own connections, as that many processes would have."""
    made = [Groups(make_backend(url, prefix, HISTORY, expire)) for _ in range(count)]
    try:
        yield made
    finally:
        for groups in made:
            await groups.backend.close()


def test_the_default_is_a_day_and_the_middleware_passes_its_setting_on() -> None:
    assert EXPIRE == 86400
    middleware = BroadcastMiddleware(lambda message, channels: None, url="redis://localhost:1")
    assert middleware.expire == EXPIRE
    assert middleware.groups.backend.expire == EXPIRE  # type: ignore[attr-defined]
    middleware = BroadcastMiddleware(
        lambda message, channels: None, url="redis://localhost:1", expire=None
    )
    assert middleware.groups.backend.expire is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("expire", [0, -1, 0.0001])
def test_an_expiry_under_a_millisecond_is_refused(expire: float) -> None:
    with pytest.raises(ValueError, match="expire must be None"):
        make_backend("redis://localhost:1", "t:", HISTORY, expire)


async def test_each_send_refreshes_its_streams_expiry_in_one_round_trip(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Round trips of the sending connection: one packed write per command or pipeline.
    sent: list[Any] = []
    original = Connection.send_packed_command

    async def counted(self: Connection, *args: Any, **kwargs: Any) -> None:
        if self.client_name == "uvicorn.groups":
            sent.append(args[0])
        await original(self, *args, **kwargs)

    monkeypatch.setattr(Connection, "send_packed_command", counted)
    client = redis.Redis.from_url(redis_server.url)
    async with processes(redis_server.url, 1, 60, prefix="expiry-a:") as (groups,):
        (member,) = await join(groups, "g", 1)
        key = "expiry-a:g"
        sent.clear()
        await groups.send("g", {"text": "first"})
        assert len(sent) == 1  # the XADD and the PEXPIRE together
        assert 59_000 < await client.pttl(key) <= 60_000
        await client.pexpire(key, 5_000)
        await groups.send("g", {"text": "second"})
        assert 59_000 < await client.pttl(key) <= 60_000  # refreshed by the send
        assert [m["text"] for m in await member.until(2)] == ["first", "second"]
    await client.aclose()


async def test_without_expiry_the_stream_stays(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    async with processes(redis_server.url, 1, None, prefix="expiry-b:") as (groups,):
        await groups.send("g", {"text": "kept"})
        assert await client.pttl("expiry-b:g") == -1  # no expiry
    await client.aclose()


async def test_an_abandoned_groups_stream_is_deleted_and_its_members_get_what_comes_after(
    own_redis: RedisServer,
) -> None:
    client = redis.Redis.from_url(own_redis.url)
    await client.config_set("notify-keyspace-events", "Ex")  # expired keys: an event to wait on
    expired = client.pubsub()
    await expired.subscribe("__keyevent@0__:expired")
    async with processes(own_redis.url, 2, 0.2) as (a, b):
        (member,) = await join(b, "g", 1)
        await a.send("g", {"text": "before"})
        assert [m["text"] for m in await asyncio.wait_for(member.until(1), WAIT)] == ["before"]

        async def deleted() -> None:
            async for event in expired.listen():
                if event["type"] == "message" and event["data"] == b"t:g":
                    return

        await asyncio.wait_for(deleted(), WAIT)
        assert not await client.exists("t:g")
        await a.send("g", {"text": "after"})  # a new stream: b's reader finds it
        messages = await asyncio.wait_for(member.until(2), WAIT)
        assert [m["text"] for m in messages] == ["before", "after"]
    await expired.aclose()
    await client.aclose()


async def test_in_a_cluster_group_streams_and_bells_expire(
    redis_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broadcast_streams, "RECONNECT_DELAYS", (0.01, 0.05, 0.1))
    prefix = "expiry-c:"
    masters = spread(redis_cluster, 12, prefix)
    async with processes(redis_cluster.url(), 2, 60, prefix=prefix) as (a, b):
        members = {group: await join(b, group, 1) for group in masters}
        for group in masters:
            await a.send(group, {"text": group})
        for group, (member,) in members.items():
            assert (await asyncio.wait_for(member.until(1), WAIT))[0]["text"] == group
        for group, port in masters.items():
            with admin(port) as node:
                assert 0 < node.pttl(prefix + group) <= 60_000, group
        for port in set(masters.values()):
            with admin(port) as node:
                bells = list(node.scan_iter(match=f"{prefix}~bell*"))
                assert bells, f"no bell on {port}"
                for bell in bells:
                    assert 0 < node.pttl(bell) <= 60_000, bell
