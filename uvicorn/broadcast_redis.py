"""Group messages between processes over Redis Streams: what a reconnect would lose is replayed.

Each group is a stream (``prefix + group``) holding a bounded history (``XADD ... MAXLEN ~
history``). A send is one XADD. Each process has one reading connection, blocked in one XREAD on
the streams of the groups that have local members, each from the id of the last entry it read:
when that connection drops and comes back, the same XREAD returns what was added meanwhile, in
order and once (ids only grow), where pub/sub would have lost it. A process that was away
longer than the history reaches finds entries it never read trimmed: it logs it, and the
members it has in that group are told (``on_missed``), never left to guess.

Joining a group not yet read here looks up the stream's last id (what is added after it is the
member's), then wakes the reader: an XADD to a stream of this process's own that every XREAD
includes, so that the next XREAD includes the group. Keys of a group share nothing with other
groups' keys, so that streams can later be spread over the shards of a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

from uvicorn.broadcast_backends import Backend, BroadcastError, decode, encode

logger = logging.getLogger("uvicorn.error")

RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # back-off, then every 5 s
# Seconds an XREAD blocks when nothing comes; as long again without a reply is an outage. A
# connection that goes silent (a host or network gone, with no FIN or RST) would otherwise be
# waited on forever, until TCP keep-alive, hours later.
HEALTH_CHECK = 5.0
HISTORY = 1000  # entries kept per group (at least: MAXLEN ~ trims in whole stream nodes)
WAKE_TTL = 3600  # seconds: the wake-up stream of a process that died without closing goes
ORIGIN_CHECK = 100  # entries looked at to tell whether a send cut off by a drop was taken
START = b"0-0"  # before every id


def _id(entry_id: bytes) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition(b"-")
    return int(milliseconds), int(sequence or 0)


class RedisBackend(Backend):
    def __init__(self, url: str, prefix: str, history: int = HISTORY) -> None:
        import redis.asyncio as redis

        if history < 1:
            raise ValueError(f"history must be at least 1 entry per group, not {history}")
        self.url = url
        # Errors and logs name the address without the URL's password, if it has one.
        parts = urlsplit(url)
        self.address = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        self.prefix = prefix
        self.history = history
        self.origin = secrets.token_hex(8)  # our own entries are delivered here at send time
        self._origin = self.origin.encode()
        self._sequence = 0  # with the origin, names each entry: a retried send is not doubled
        # No retries inside redis-py: a send during an outage fails at once with a clear error,
        # and reconnecting is the reader's job.
        options: dict[str, Any] = {"retry": None, "socket_connect_timeout": 2}
        self._publisher = redis.Redis.from_url(
            url, socket_timeout=5, client_name="uvicorn.groups", **options
        )
        self._reader = redis.Redis.from_url(
            url, socket_keepalive=True, client_name="uvicorn.groups.reader", **options
        )
        self._connection_errors = (redis.ConnectionError, redis.TimeoutError, OSError)
        # group -> id of the last entry read (None: to be looked up; START: the stream was empty)
        self._positions: dict[str, bytes | None] = {}
        self._finding: dict[str, asyncio.Future[None]] = {}  # joins looking up their start
        self._wake_key = f"{prefix}~{self.origin}"
        self._wake_id = START
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._outage = False  # Redis is unreachable (logged once; cleared when it is back)

    def _ensure_reading(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._read())

    async def subscribe(self, group: str) -> None:
        """Start reading the group here, from its stream's last entry: whatever is sent after
        this returns (after the connect handler that joined the group returns, say) is read."""
        self._ensure_reading()
        finding = self._finding.get(group)
        if finding is not None:
            # A join while the group's start is being looked up waits for it too: answered
            # before it, its member could miss what is sent meanwhile.
            await asyncio.shield(finding)
            return
        if group in self._positions:
            return
        self._positions[group] = None
        if self._outage:
            return  # looked up, with every other group, once Redis is back
        finding = self._finding[group] = asyncio.get_running_loop().create_future()
        try:
            last: Any = await self._publisher.xrevrange(self.prefix + group, count=1)
            if group in self._positions and self._positions[group] is None:
                self._positions[group] = last[0][0] if last else START
            await self._wake()
        except Exception as exc:  # the reader looks it up when it can
            logger.debug("Redis: joining %r not confirmed: %r", group, exc)
        finally:
            del self._finding[group]
            finding.set_result(None)

    def unsubscribe(self, group: str) -> None:
        # Nothing to tell Redis: the next XREAD leaves the group out, and what the current one
        # returns for it finds no member here.
        self._positions.pop(group, None)

    async def _wake(self) -> None:
        """Make the reader's XREAD return, so that the next one reads the groups joined since."""
        pipe = self._publisher.pipeline(transaction=False)
        pipe.xadd(self._wake_key, {"w": "1"}, maxlen=1, approximate=False)
        pipe.expire(self._wake_key, WAKE_TTL)
        await pipe.execute()

    async def publish(self, group: str, message: dict[str, Any]) -> None:
        self._ensure_reading()
        encoded = encode(message)
        self._sequence += 1
        origin = b"%s%x" % (self._origin, self._sequence)
        fields = {b"o": origin, b"m": json.dumps(encoded, separators=(",", ":"))}
        key = self.prefix + group
        try:
            try:
                await self._publisher.xadd(key, fields, maxlen=self.history, approximate=True)  # type: ignore[arg-type]
            except self._connection_errors:
                # A pooled connection made before Redis restarted can fail although Redis is
                # back, and a connection cut after Redis took the entry loses its answer: one
                # more try, on a new connection, unless the entry is there already.
                if not await self._taken(key, origin):
                    await self._publisher.xadd(key, fields, maxlen=self.history, approximate=True)  # type: ignore[arg-type]
        except Exception as exc:
            raise BroadcastError(f"cannot send to group {group!r}: Redis at {self.address} is "
                                 f"unreachable ({exc})") from None  # fmt: skip
        # Local members: no round trip through Redis, but the types the others get (a tuple
        # arrives as a list everywhere), and a copy the app cannot change after send().
        self.on_message(group, decode(encoded))

    async def _taken(self, key: str, origin: bytes) -> bool:
        entries: Any = await self._publisher.xrevrange(key, count=ORIGIN_CHECK)
        return any(fields.get(b"o") == origin for _, fields in entries)

    async def _read(self) -> None:
        """Read what other processes send; reconnect with back-off when Redis is gone."""
        attempt = 0
        while not self._closed:
            try:
                await self._find_starts(everyone=True)
                if self._outage:
                    logger.info("Redis at %s is reachable again: groups restored", self.address)
                    self._outage = False
                attempt = 0
                while True:
                    if None in self._positions.values():
                        await self._find_starts(everyone=False)
                    await self._read_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._outage:
                    logger.warning("Redis at %s is unreachable (%r): retrying", self.address, exc)
                    self._outage = True
                with contextlib.suppress(Exception):  # a connection left mid-command is unusable
                    await self._reader.connection_pool.disconnect()
            delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
            attempt += 1
            await asyncio.sleep(delay)

    async def _find_starts(self, everyone: bool) -> None:
        """Look up where to read the groups joined while Redis was away. After a reconnect
        (``everyone``), also each stream that is gone or behind what was read (a Redis that
        restarted without its data): read from its start, since all of it is new."""
        groups = [g for g, p in self._positions.items() if everyone or p is None]
        if not groups:
            return
        pipe = self._reader.pipeline(transaction=False)
        for group in groups:
            pipe.xrevrange(self.prefix + group, count=1)
        for group, last in zip(groups, await pipe.execute(), strict=True):
            if group not in self._positions:
                continue  # left meanwhile
            position = self._positions[group]
            if position is None:
                self._positions[group] = last[0][0] if last else START
            elif not last or _id(last[0][0]) < _id(position):
                self._positions[group] = START

    async def _read_once(self) -> None:
        streams: dict[Any, Any] = {self._wake_key: self._wake_id}
        prefix = self.prefix
        for group, position in self._positions.items():
            if position is not None:
                streams[prefix + group] = position
        block = max(1, int(HEALTH_CHECK * 1000))
        try:
            reply: Any = await asyncio.wait_for(self._reader.xread(streams, block=block),
                                           2 * HEALTH_CHECK)  # fmt: skip
        except asyncio.TimeoutError:
            raise ConnectionError(f"no answer within {HEALTH_CHECK} s") from None
        if not reply:
            return
        # RESP2: [[key, entries], ...]; RESP3: {key: [entries]}.
        items = reply.items() if isinstance(reply, dict) else reply
        for key, entries in items:
            if entries and isinstance(entries[0], list):
                entries = entries[0]
            if not entries:
                continue
            name = key.decode("utf-8")
            if name == self._wake_key:
                self._wake_id = entries[-1][0]
                continue
            group = name[len(prefix) :]
            position = self._positions.get(group)
            if position is None or position != streams[name]:
                continue  # left (and maybe joined again) meanwhile: read again from where it is
            if len(entries) >= self.history and await self._missed(name, position):
                logger.warning(
                    "Redis at %s: group %r lost messages here: this process was away longer "
                    "than the group's history (%d messages) reaches", self.address, group,
                    self.history,
                )  # fmt: skip
                self.on_missed(group)
            self._positions[group] = entries[-1][0]
            self._deliver(group, entries)

    def _deliver(self, group: str, entries: list[Any]) -> None:
        origin = self._origin
        for _, fields in entries:
            if fields.get(b"o", b"").startswith(origin):
                continue  # sent here, and delivered here already
            try:
                message = decode(json.loads(fields[b"m"]))
            except Exception as exc:
                logger.warning("Ignoring a malformed group message in %r: %r", group, exc)
                continue
            self.on_message(group, message)

    async def _missed(self, key: str, position: bytes) -> bool:
        """Were entries after ``position`` trimmed before they were read? MAXLEN ~ keeps at
        least ``history`` entries, so this is asked only of a read that returned as many. An
        entry still there means nothing after it went; one gone may have taken others with it
        (said so: the member reconnects for nothing, at worst). From an empty stream, Redis 7's
        count of entries ever added tells."""
        if position != START:
            return not await self._reader.xrange(key, position, position)
        info = await self._reader.xinfo_stream(key)
        added = info.get("entries-added")
        return added is not None and added > info["length"]

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        with contextlib.suppress(Exception):  # gone when Redis is, or after WAKE_TTL
            await asyncio.wait_for(self._publisher.delete(self._wake_key), 1)
        await self._publisher.aclose()
        await self._reader.aclose()
