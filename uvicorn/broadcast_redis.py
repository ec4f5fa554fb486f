"""Group messages between processes over one Redis server's streams (``broadcast_streams``).

A send is one XADD. Each process has one reading connection, blocked in one XREAD on the streams
of the groups that have local members, each from the id of the last entry it read.

Joining a group not yet read here looks up the stream's last id (what is added after it is the
member's), then wakes the reader: an XADD to a stream of this process's own that every XREAD
includes, so that the next XREAD includes the group (``CLIENT UNBLOCK`` would race an XREAD
still on its way to Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from uvicorn import broadcast_streams as streams
from uvicorn.broadcast_streams import (
    EXPIRE,
    HISTORY,
    READING,
    START,
    Reader,
    StreamBackend,
    stream_items,
)
from uvicorn.broadcast_urls import RedisURL, parse

WAKE_TTL = 3600  # seconds: the wake-up stream of a process that died without closing goes

__all__ = ["EXPIRE", "HISTORY", "RedisBackend"]


class RedisBackend(StreamBackend):
    def __init__(
        self, url: str | RedisURL, prefix: str, history: int = HISTORY,
        expire: float | None = EXPIRE,
    ) -> None:  # fmt: skip
        super().__init__(url if isinstance(url, RedisURL) else parse(url), prefix, history, expire)
        self._publisher = self._connect(socket_timeout=5, client_name="uvicorn.groups")
        self._reader = _Reader(self)
        self._wake_key = f"{prefix}~{self.origin}"

    def _connect(self, **options: Any) -> Any:
        import redis.asyncio as redis

        # No retries inside redis-py: a send during an outage fails at once with a clear error,
        # and reconnecting is the reader's job.
        return redis.Redis.from_url(self.where.url, retry=None, socket_connect_timeout=2,
                                    **options)  # fmt: skip

    def _start(self) -> None:
        if self._reader.task is None and not self._closed:
            self._reader.start()

    def _reachable(self, group: str) -> bool:
        return not self._reader.outage

    async def _join(self, group: str) -> None:
        self._place(group, await self._publisher.xrevrange(self.prefix + group, count=1))
        await self._wake()

    async def _wake(self) -> None:
        """Make the reader's XREAD return, so that the next one reads the groups joined since."""
        pipe = self._publisher.pipeline(transaction=False)
        pipe.xadd(self._wake_key, {"w": "1"}, maxlen=1, approximate=False)
        pipe.expire(self._wake_key, WAKE_TTL)
        await pipe.execute()

    def _client_for(self, key: str) -> Any:
        return self._publisher

    async def _add(self, group: str, key: str, fields: dict[bytes, Any]) -> None:
        if self._expire_ms is None:
            await self._publisher.xadd(key, fields, maxlen=self.history, approximate=True)
            return
        pipe = self._publisher.pipeline(transaction=False)  # one round trip, as the XADD alone
        pipe.xadd(key, fields, maxlen=self.history, approximate=True)
        self._expiring(pipe, key)
        await pipe.execute()

    async def close(self) -> None:
        self._closed = True
        self._reader.stop()
        if self._reader.task is not None:  # (never made otherwise)
            with contextlib.suppress(Exception):  # gone when Redis is, or after WAKE_TTL
                await asyncio.wait_for(self._publisher.delete(self._wake_key), 1)
        await self._publisher.aclose()
        await self._reader.close()


class _Reader(Reader):
    """Every group in one XREAD BLOCK, with the process's wake-up stream."""

    def __init__(self, backend: RedisBackend) -> None:
        super().__init__(backend, backend.address)
        self.backend: RedisBackend = backend
        self.client = backend._connect(**READING)
        self.wake_id = START

    async def connect(self) -> None:
        # After a reconnect, also each stream that is gone or behind what was read.
        await self.find_starts(list(self.backend._positions), everyone=True)

    async def read(self) -> None:
        positions = self.backend._positions
        while True:
            if None in positions.values():  # joined while Redis was away
                await self.find_starts([g for g, p in positions.items() if p is None], False)
            await self._read_once()

    async def _read_once(self) -> None:
        backend = self.backend
        wake_key, prefix = backend._wake_key, backend.prefix
        keys: dict[Any, Any] = {wake_key: self.wake_id}
        for group, position in backend._positions.items():
            if position is not None:
                keys[prefix + group] = position
        block = max(1, int(streams.HEALTH_CHECK * 1000))
        reply = await self.blocking(self.client.xread(keys, block=block))
        for key, entries in stream_items(reply):
            if key == wake_key:
                self.wake_id = entries[-1][0]
            else:
                await backend._take(self.client, key[len(prefix) :], key, keys[key], entries)
