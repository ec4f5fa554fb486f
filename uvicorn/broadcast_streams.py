"""Group messages as Redis stream entries, each group read from the last id seen: what the Redis
backends (one server, Sentinel, Cluster) share.

Each group is a stream (``prefix + group``) holding a bounded history (``XADD ... MAXLEN ~
history``). A send adds one entry, naming its origin (the process) and a sequence number. Each
process reads each group it has local members in from the id of the last entry it read: when
its connection drops and comes back, or moves to another server (a failover), reading on from
there returns what was added meanwhile, in order and once (ids only grow), where pub/sub would
have lost it. A process that was away longer than the history reaches finds entries it never
read trimmed: it logs it, and the members it has in that group are told (``on_missed``).

How a backend reads (which connections, which servers) is its own: a ``Reader`` is one reading
connection's life, reconnected with back-off, its outage and recovery logged once each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Iterable
from typing import Any

from uvicorn.broadcast_backends import Backend, BroadcastError, decode, encode
from uvicorn.broadcast_urls import RedisURL

logger = logging.getLogger("uvicorn.error")

RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # back-off, then every 5 s
# Seconds a blocking read waits when nothing comes; as long again without a reply is an outage.
# A connection that goes silent (a host or network gone, with no FIN or RST) would otherwise be
# waited on forever, until TCP keep-alive, hours later.
HEALTH_CHECK = 5.0
HISTORY = 1000  # entries kept per group (at least: MAXLEN ~ trims in whole stream nodes)
# Seconds after a group's last send when Redis deletes its stream (and, in a cluster, a master's
# bell after its last ring): a group nobody sends to any more (a chat room abandoned) would
# otherwise keep its history in Redis for ever. Each send refreshes it, in the same pipeline as
# its XADD (no round trip more). A day: far longer than the outages the history is for; a
# process away for longer than this after its group's last message finds the stream gone, and
# reads on from its start as after a Redis restarted without its data.
EXPIRE = 86400.0
ORIGIN_CHECK = 100  # entries looked at to tell whether a send cut off by a drop was taken
START = b"0-0"  # before every id
# A reading connection's options. No socket timeout: its reads block in Redis, bounded by
# ``Reader.blocking`` (redis-py 6 and later time sockets out after 5 s unless told otherwise:
# every XREAD BLOCK of 5 s that returned nothing would have looked like an outage).
READING = {"socket_keepalive": True, "socket_timeout": None, "client_name": "uvicorn.groups.reader"}


def entry_id(value: bytes) -> tuple[int, int]:
    milliseconds, _, sequence = value.partition(b"-")
    return int(milliseconds), int(sequence or 0)


def stream_items(reply: Any) -> list[tuple[str, list[Any]]]:
    """An XREAD reply as (key, entries) pairs. RESP2: [[key, entries], ...]; RESP3: {key:
    [entries]}; none when it timed out."""
    if not reply:
        return []
    items = []
    for key, entries in reply.items() if isinstance(reply, dict) else reply:
        if entries and isinstance(entries[0], list):
            entries = entries[0]
        if entries:
            items.append((key.decode("utf-8"), entries))
    return items


class StreamBackend(Backend):
    # A stream found behind the last id read: a Redis restarted without its data whose new
    # entries got smaller ids (read it from the start: all of it is new), or a replica promoted
    # without the last entries (read on from its last entry: everything it holds was read, and
    # reading it again would deliver it twice). Where failovers are the backend's business
    # (Sentinel, Cluster), the second.
    behind_from_start = True

    def __init__(
        self, where: RedisURL, prefix: str, history: int, expire: float | None = EXPIRE
    ) -> None:
        import redis.asyncio as redis

        if history < 1:
            raise ValueError(f"history must be at least 1 entry per group, not {history}")
        if expire is not None and not expire >= 0.001:
            raise ValueError(f"expire must be None (never) or at least 0.001 s, not {expire!r}")
        self.where = where
        self.address = where.address  # errors and logs name Redis without the URL's password
        self.prefix = prefix
        self.history = history
        self.expire = expire  # (seconds) after a group's last send, its stream is deleted
        self._expire_ms = None if expire is None else round(expire * 1000)
        self.origin = secrets.token_hex(8)  # our own entries are delivered here at send time
        self._origin = self.origin.encode()
        self._sequence = 0  # with the origin, names each entry: a retried send is not doubled
        self._connection_errors = (redis.ConnectionError, redis.TimeoutError, OSError)
        # group -> id of the last entry read (None: to be looked up; START: the stream was empty)
        self._positions: dict[str, bytes | None] = {}
        self._finding: dict[str, asyncio.Future[None]] = {}  # joins looking up their start
        self._closed = False

    # Joining and leaving

    async def subscribe(self, group: str) -> None:
        """Start reading the group here, from its stream's last entry: whatever is sent after
        this returns (after the connect handler that joined the group returns, say) is read."""
        self._start()
        finding = self._finding.get(group)
        if finding is not None:
            # A join while the group's start is being looked up waits for it too: answered
            # before it, its member could miss what is sent meanwhile.
            await asyncio.shield(finding)
            return
        if group in self._positions:
            return
        self._positions[group] = None
        if not self._reachable(group):
            return  # looked up by its reader, with every other group, once Redis is back
        finding = self._finding[group] = asyncio.get_running_loop().create_future()
        try:
            await self._join(group)
        except Exception as exc:  # the reader looks it up when it can
            logger.debug("Redis: joining %r not confirmed: %s", group, self.where.scrub(repr(exc)))
        finally:
            del self._finding[group]
            finding.set_result(None)

    def unsubscribe(self, group: str) -> None:
        # Nothing to tell Redis: the next read leaves the group out, and what the current one
        # returns for it finds no member here.
        self._positions.pop(group, None)

    def _place(self, group: str, last: list[Any], everyone: bool = False) -> None:
        """Where to read ``group`` from, given its stream's last entry (``XREVRANGE COUNT 1``):
        there, if it was still to be looked up. After a reconnect (``everyone``), also a stream
        that is gone (a Redis restarted without its data: all of it is new) or behind what was
        read (``behind_from_start``)."""
        if group not in self._positions:
            return  # left meanwhile
        position = self._positions[group]
        if position is None:
            self._positions[group] = last[0][0] if last else START
        elif not everyone:
            return
        elif not last:
            self._positions[group] = START
        elif entry_id(last[0][0]) < entry_id(position):
            self._positions[group] = START if self.behind_from_start else last[0][0]

    # Sending

    async def publish(self, group: str, message: dict[str, Any]) -> None:
        self._start()
        encoded = encode(message)
        self._sequence += 1
        origin = b"%s%x" % (self._origin, self._sequence)
        fields = {b"o": origin, b"m": json.dumps(encoded, separators=(",", ":"))}
        key = self.prefix + group
        try:
            try:
                await self._add(group, key, fields)
            except Exception as exc:
                if not self._retryable(exc):
                    raise
                # A pooled connection made before Redis restarted (or before a failover) can
                # fail although Redis is back, and a connection cut after Redis took the entry
                # loses its answer: one more try, on a new connection, unless it is there.
                await self._recover()
                if await self._taken(key, origin):
                    await self._ring(group, key)
                else:
                    await self._add(group, key, fields)
        except Exception as exc:
            raise BroadcastError(self.where.scrub(
                f"cannot send to group {group!r}: Redis at {self.address} is unreachable ({exc})"
            )) from None  # fmt: skip
        # Local members: no round trip through Redis, but the types the others get (a tuple
        # arrives as a list everywhere), and a copy the app cannot change after send().
        self.on_message(group, decode(encoded))

    def _retryable(self, exc: Exception) -> bool:
        return isinstance(exc, self._connection_errors)

    def _expiring(self, pipe: Any, key: str) -> None:
        """Queue the refresh of ``key``'s expiry (``EXPIRE``) in ``pipe``, after the XADD that
        made or grew it: the same round trip."""
        if self._expire_ms is not None:
            pipe.pexpire(key, self._expire_ms)

    async def _recover(self) -> None:
        """What to do before a send's second try (a cluster looks up its layout again)."""

    async def _ring(self, group: str, key: str) -> None:
        """Tell the readers of ``key`` that it has a new entry, when adding it does not."""

    async def _taken(self, key: str, origin: bytes) -> bool:
        entries: Any = await self._client_for(key).xrevrange(key, count=ORIGIN_CHECK)
        return any(fields.get(b"o") == origin for _, fields in entries)

    # Reading (by the backend's readers)

    async def _take(
        self, client: Any, group: str, key: str, position: bytes, entries: list[Any]
    ) -> None:
        """``entries`` of ``group``, read after ``position``: delivered, and read on from them."""
        if self._positions.get(group) != position:
            return  # left (and maybe joined again) meanwhile: read again from where it is
        if len(entries) >= self.history and await self._missed(client, key, position):
            logger.warning(
                "Redis at %s: group %r lost messages here: this process was away longer "
                "than the group's history (%d messages) reaches", self.address, group,
                self.history,
            )  # fmt: skip
            self.on_missed(group)
        if self._positions.get(group) == position:
            self._deliver(group, entries)

    def _deliver(self, group: str, entries: list[Any]) -> None:
        """``entries`` of ``group``, the next after the last one read: delivered (but those
        sent here), and read on from them."""
        self._positions[group] = entries[-1][0]
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

    async def _missed(self, client: Any, key: str, position: bytes) -> bool:
        """Were entries after ``position`` trimmed before they were read? MAXLEN ~ keeps at
        least ``history`` entries, so this is asked only of a read that returned as many. An
        entry still there means nothing after it went; one gone may have taken others with it
        (said so: the member reconnects for nothing, at worst). From an empty stream, Redis 7's
        count of entries ever added tells."""
        if position != START:
            return not await client.xrange(key, position, position)
        info = await client.xinfo_stream(key)
        added = info.get("entries-added")
        return added is not None and added > info["length"]

    # What each backend provides

    def _start(self) -> None:
        """Start reading, if not yet."""
        raise NotImplementedError

    def _reachable(self, group: str) -> bool:
        """Whether the group's start may be looked up now (its reader is not in an outage)."""
        raise NotImplementedError

    async def _join(self, group: str) -> None:
        """Look up where to read the group from (``_place``), then make its reader read it."""
        raise NotImplementedError

    def _client_for(self, key: str) -> Any:
        """The client that sends to ``key`` (a ``redis.asyncio.Redis``)."""
        raise NotImplementedError

    async def _add(self, group: str, key: str, fields: dict[bytes, Any]) -> None:
        raise NotImplementedError


class Reader:
    """One reading connection's life: ``connect()`` (look up where to start, catch up), then
    ``read()`` until it fails; then reconnect with back-off, the outage and the recovery logged
    once each. ``client`` is its ``redis.asyncio.Redis``, one connection used by one task."""

    client: Any

    def __init__(self, backend: StreamBackend, where: str) -> None:
        self.backend = backend
        self.where = where  # for the logs
        self.outage = False  # unreachable (logged once; cleared when it is back)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        attempt = 0
        while not self.backend._closed:
            try:
                await self.connect()
                if self.outage:
                    self.outage = False
                    self.restored()
                attempt = 0
                await self.read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self.outage:
                    self.outage = True
                    self.lost(exc)
                with contextlib.suppress(Exception):  # a connection left mid-command is unusable
                    await self.client.connection_pool.disconnect()
                self.failed()
            delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
            attempt += 1
            await asyncio.sleep(delay)

    def lost(self, exc: Exception) -> None:
        message = self.backend.where.scrub(repr(exc))
        logger.warning("Redis at %s is unreachable (%s): retrying", self.where, message)

    def restored(self) -> None:
        logger.info("Redis at %s is reachable again: groups restored", self.where)

    def failed(self) -> None:
        """After a failure, before the back-off."""

    async def connect(self) -> None:
        raise NotImplementedError

    async def read(self) -> None:
        raise NotImplementedError

    async def find_starts(self, groups: Iterable[str], everyone: bool) -> None:
        """Look up where to read ``groups`` (``StreamBackend._place``), in one round trip."""
        groups = list(groups)
        if not groups:
            return
        pipe = self.client.pipeline(transaction=False)
        for group in groups:
            pipe.xrevrange(self.backend.prefix + group, count=1)
        for group, last in zip(groups, await pipe.execute(), strict=True):
            self.backend._place(group, last, everyone)

    async def blocking(self, read: Awaitable[Any]) -> Any:
        """A read that blocks in Redis for ``HEALTH_CHECK`` at most: one unanswered for as long
        again is an outage."""
        try:
            return await asyncio.wait_for(read, 2 * HEALTH_CHECK)
        except asyncio.TimeoutError:
            raise ConnectionError(f"no answer within {HEALTH_CHECK} s") from None

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def close(self) -> None:
        self.stop()
        await self.client.aclose()
