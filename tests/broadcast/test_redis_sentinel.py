"""Groups over a Redis master that Sentinels watch (issue 14): two Groups, each with its own
connections and origin as two processes would have. A master, a replica and three Sentinels,
over TLS, with a password: the master's ``kill -9``; once the replica is promoted, the first
message reaches every member in every process, and nothing is delivered twice, although the
replica lacks the last entries read (its link to the master went silent first: a relay cut).
And the plain form, with one Sentinel. No password in any log line or error."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.broadcast.fakes import Recorder
from tests.broadcast.redis_setups import PASSWORD, Sentinels
from tests.broadcast.test_redis_cluster import quick_reconnects  # noqa: F401 (autouse)
from tests.broadcast.test_redis_groups import LogWatch, Proxy
from tests.broadcast.test_replay import join, processes
from tests.helpers import UNIT
from uvicorn.broadcast import Groups
from uvicorn.broadcast_backends import BroadcastError


async def send(sender: Groups, members: list[Recorder], text: str) -> None:
    """Send, and wait until every member has it (the sender's own have it at once)."""
    counts = [len(member.messages) + 1 for member in members]
    await sender.send("g", {"text": text})
    for member, count in zip(members, counts, strict=True):
        await asyncio.wait_for(member.until(count), 10 * UNIT)


# Its Sentinels' failover-timeout is 30 s, so a failover that failed is tried again a minute
# later (see Sentinels.wait_promoted): the test may take that long.
@pytest.mark.timeout(120)
async def test_after_a_failover_that_lost_the_last_entries_the_first_message_reaches_everyone(
    tmp_path: Path, logs: LogWatch
) -> None:
    setup = Sentinels(tmp_path, tls=True, timeout=30_000)
    relay = Proxy(setup.master_port)  # the replica's link to its master
    await relay.start()
    try:
        await asyncio.to_thread(setup.start, relay.port)
        async with processes(setup.url(), setup.url()) as (a, b):
            members = [*await join(a, "g", 2), *await join(b, "g", 2)]
            await send(a, members, "a0")
            await send(b, members, "b0")
            # The replica hears no more; both processes read what follows from the master.
            relay.partition()
            for i in range(3):
                await send(a, members, f"tail{i}")
            setup.master.kill()
            killed = time.monotonic()
            try:
                await a.send("g", {"text": "lost"})
            except BroadcastError as exc:  # (unless a Sentinel was faster)
                assert "is unreachable" in str(exc) and "s3cr3t" not in str(exc)
            await asyncio.to_thread(setup.wait_promoted)
            promoted = time.monotonic()
            await logs.until(r"Redis at rediss-sentinel://\S+#mymaster is unreachable", 2)
            # Both readers are back before anything new is sent, on a stream that ends before
            # what they read last.
            await logs.until(r"Redis at rediss-sentinel://\S+ is reachable again", 2)
            assert setup.replica is not None
            async with aioredis.Redis(port=setup.replica.port, password=PASSWORD) as new:
                assert await new.xlen("t:g") == 2  # a0, b0: the tail is gone with the master
            await send(a, members, "first")
            delivered = time.monotonic()
            await send(b, members, "second")
            await send(a, members, "end")
            for member in members:  # read on from the promoted replica's last entry: no repeat
                texts = [m["text"] for m in member.messages]
                assert texts == ["a0", "b0", "tail0", "tail1", "tail2", "first", "second", "end"]
            print(f"kill -9 -> promoted {promoted - killed:.2f} s, -> both readers back and "
                  f"the first message delivered {delivered - killed:.2f} s")  # fmt: skip
    finally:
        relay.close()
        setup.stop()


async def test_the_plain_form_with_one_sentinel(tmp_path: Path, logs: LogWatch) -> None:
    setup = Sentinels(tmp_path, tls=False, count=1, replica=False)
    await asyncio.to_thread(setup.start)
    try:
        assert setup.url().startswith("redis-sentinel://")
        async with processes(setup.url(), setup.url()) as (a, b):
            members = [*await join(a, "g", 1), *await join(b, "g", 1)]
            await send(a, members, "from a")
            await send(b, members, "from b")
            for member in members:
                assert [m["text"] for m in member.messages] == ["from a", "from b"]
    finally:
        setup.stop()
