"""Delivery that survives reconnects (issue 14): two Groups, each with its own Redis connections
and origin as two processes would have, on a Redis of the test's own. Reading connections
killed inside Redis while both send: every member gets every message, once, in each sender's
order. Redis restarted: the first message after it reaches everyone. A process away longer
than the history: logged, and its members there closed with 1013. Over TLS with a password: no
log line or error shows the password."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from tests.broadcast.conftest import RedisServer
from tests.broadcast.fakes import Recorder
from tests.broadcast.redis_setups import PASSWORD, QUOTED, TLSFiles
from tests.broadcast.test_redis_groups import LogWatch, Proxy
from tests.e2e.process import free_port
from tests.helpers import UNIT
from uvicorn import broadcast_streams
from uvicorn.broadcast import MISSED, BroadcastError, Groups, GroupsChannel, make_backend

READER = "uvicorn.groups.reader"


@pytest.fixture(autouse=True)
def quick_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broadcast_streams, "RECONNECT_DELAYS", (0.01, 0.05))


@pytest.fixture
def watch() -> Iterator[LogWatch]:
    handler = LogWatch()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)  # the recovery is logged at INFO
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextlib.asynccontextmanager
async def processes(*urls: str, history: int = broadcast_streams.HISTORY) -> AsyncIterator[Any]:
    made = [Groups(make_backend(url, "t:", history)) for url in urls]
    try:
        yield made
    finally:
        for groups in made:
            await groups.backend.close()


async def join(groups: Groups, group: str, count: int) -> list[Recorder]:
    members = [Recorder() for _ in range(count)]
    for member in members:
        await GroupsChannel(groups, member).send({"group": group, "add": member.name})
    return members


async def readers(admin: redis.Redis) -> list[int]:
    return [c["id"] for c in await admin.client_list() if c.get("name") == READER]


async def test_reading_connections_killed_while_sending_lose_nothing(
    own_redis: RedisServer, watch: LogWatch
) -> None:
    admin = redis.Redis.from_url(own_redis.url)
    async with processes(own_redis.url, own_redis.url) as (a, b):
        members = [*await join(a, "g", 2), *await join(b, "g", 2)]
        sent: dict[str, list[str]] = {"a": [], "b": []}
        kills = 0
        for i in range(300):
            for name, groups in (("a", a), ("b", b)):
                text = f"{name}{i}"
                await groups.send("g", {"text": text})
                sent[name].append(text)
            if i % 30 == 10:
                # Every reading connection, while the entries keep coming; every other time
                # every connection of the test's clients (the senders' too).
                if kills % 2:
                    await admin.client_kill_filter(_type="normal", skipme=True)
                else:
                    for client_id in await readers(admin):
                        await admin.client_kill_filter(_id=client_id)
                kills += 1
        await watch.until("is unreachable", 2)
        total = len(sent["a"]) + len(sent["b"])
        for member in members:
            await asyncio.wait_for(member.until(total), 10 * UNIT)
        await a.send("g", {"text": "end"})  # behind any duplicate
        for member in members:
            messages = await asyncio.wait_for(member.until(total + 1), 10 * UNIT)
            received = [m["text"] for m in messages]
            assert received[-1] == "end" and len(received) == total + 1
            for name, texts in sent.items():  # each sender's messages, once, in its order
                assert [t for t in received if t[0] == name] == texts
    await admin.aclose()


async def test_the_first_message_after_a_redis_restart_reaches_everyone(
    own_redis: RedisServer, watch: LogWatch
) -> None:
    async with processes(own_redis.url, own_redis.url) as (a, b):
        members = [*await join(a, "g", 1), *await join(b, "g", 1)]
        await b.send("g", {"text": "before"})
        for member in members:
            await asyncio.wait_for(member.until(1), 10 * UNIT)
        own_redis.stop()
        await watch.until("is unreachable", 2)  # both readers
        own_redis.start()  # without its data: the streams are gone
        # At once: before the readers are back (pub/sub would lose it).
        await a.send("g", {"text": "first"})
        for member in members:
            received = await asyncio.wait_for(member.until(2), 10 * UNIT)
            assert [m["text"] for m in received] == ["before", "first"]


async def test_a_process_away_longer_than_the_history_logs_it_and_tells_its_members(
    own_redis: RedisServer, watch: LogWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The far process reaches Redis through a network that is cut while the near one sends
    # far more than the history keeps (MAXLEN ~ trims in whole nodes of 100 entries).
    monkeypatch.setattr(broadcast_streams, "HEALTH_CHECK", 0.2 * UNIT)
    proxy = Proxy(own_redis.port)
    await proxy.start()
    try:
        async with processes(own_redis.url, f"redis://127.0.0.1:{proxy.port}", history=5) as (
            near,
            far,
        ):
            here = await join(near, "g", 1)
            there = await join(far, "g", 2)
            quiet = await join(far, "h", 1)  # a group that missed nothing
            await near.send("g", {"text": "before"})
            for member in [*here, *there]:
                await asyncio.wait_for(member.until(1), 10 * UNIT)
            proxy.partition()
            await watch.until("is unreachable")
            for i in range(300):
                await near.send("g", {"text": f"m{i}"})
            await proxy.heal()
            await watch.until(r"group 'g' lost messages here: .* history \(5 messages\)")
            for member in there:
                received = await asyncio.wait_for(member.until(2), 10 * UNIT)
                assert received == [{"text": "before"}, MISSED]
            assert "g" not in far.groups and "h" in far.groups
            await near.send("h", {"text": "still here"})
            assert await asyncio.wait_for(quiet[0].until(1), 10 * UNIT) == [{"text": "still here"}]
            assert len(here[0].messages) == 301
    finally:
        proxy.close()


async def test_over_tls_with_a_password_an_outage_shows_no_password(
    tmp_path: Path, logs: LogWatch
) -> None:
    tls, tls_port = TLSFiles(tmp_path), free_port()
    server = RedisServer(args=("--tls-port", str(tls_port), *tls.args, "--requirepass", PASSWORD))
    server.start()
    url = f"rediss://:{QUOTED}@127.0.0.1:{tls_port}/0?{tls.query}"
    try:
        async with processes(url, url) as (a, b):
            members = [*await join(a, "g", 1), *await join(b, "g", 1)]
            await a.send("g", {"text": "before"})
            for member in members:
                await asyncio.wait_for(member.until(1), 10 * UNIT)
            async with redis.Redis(port=server.port, password=PASSWORD) as admin:
                reading = [c["laddr"] for c in await admin.client_list() if c["name"] == READER]
            assert reading == [f"127.0.0.1:{tls_port}"] * 2  # over TLS
            server.stop()
            await logs.until(rf"Redis at rediss://127\.0\.0\.1:{tls_port}/0 is unreachable", 2)
            with pytest.raises(BroadcastError) as info:
                await a.send("g", {"text": "during"})
            assert str(info.value).startswith(
                f"cannot send to group 'g': Redis at rediss://127.0.0.1:{tls_port}/0 is unreachable"
            )
            assert "s3cr3t" not in str(info.value)
            server.start()
            await logs.until("is reachable again", 2)
            await b.send("g", {"text": "after"})
            for member in members:
                received = await asyncio.wait_for(member.until(2), 10 * UNIT)
                assert [m["text"] for m in received] == ["before", "after"]
    finally:
        server.stop()
