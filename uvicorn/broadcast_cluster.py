"""Group messages over a Redis Cluster (``redis-cluster://seed[,seed...]``).

Each group's stream is a key of its own (``prefix + group``, no hash tag), so groups spread over
the slots, and so over the masters. A reader cannot block on all of a master's groups at once:
XREAD takes several keys only when they hash to the same slot (CROSSSLOT otherwise, even on one
node). So each master has a bell: a stream whose key hashes to a slot of that master
(``prefix~bell{N}``, N the first number for which it does), which names the group of each entry
added. A send is one command to the group's master (``SEND``, a script): the group's XADD, then
a bell entry naming the group, the new entry's id and the id before it, and carrying the message
when it is small. Each process has one reading connection per master it has groups on, blocked
in an XREAD on the bell from the last bell entry it saw. A message on the bell that comes right
after the last entry read in its group is delivered from there: one round trip from a send to
its delivery, as with one server. Otherwise (a join, a large message, a reader that lost its
place), one pipeline reads each group named from the last entry read in it (the positions are
the same as with one server: ``broadcast_streams``). A bell read that fills its COUNT may have
missed some (trimmed): every group of the master is read then, as after a reconnect. A master
that cannot run the script (Redis before 7) gets a pipeline of the group's XADD and a bell entry
naming the group, which is read in two round trips.

The layout (which master serves which slots: ``CLUSTER SLOTS``, asked of any node known) is
looked up at start, every ``LAYOUT_CHECK`` seconds, and whenever a reader or a send meets an
error (a connection lost, MOVED, ASK, CLUSTERDOWN, TRYAGAIN, READONLY): with back-off while a
master is unreachable, until the layout names another. A layout that changed restarts the
readers: each catches up from its groups' positions, so a replica promoted after a master's
``kill -9`` is read from the last id seen, and nothing that it holds is lost or read twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from uvicorn import broadcast_streams as streams
from uvicorn.broadcast_layout import SEND, Layout, layout_of, name, redirected, unscripted
from uvicorn.broadcast_streams import (
    EXPIRE,
    READING,
    START,
    Reader,
    StreamBackend,
    entry_id,
    stream_items,
)
from uvicorn.broadcast_urls import RedisURL

logger = logging.getLogger("uvicorn.error")

LAYOUT_CHECK = 10.0  # seconds between two looks at the layout, while all is well
# Between two looks while a master is unreachable: asking a live node is cheap, and the sooner
# a promoted replica is seen, the sooner its groups are read again.
LAYOUT_DELAYS = (0.1, 0.2, 0.5, 1.0)
# A bell read returns this many entries at most; a master's bell keeps at least twice as many,
# so that a read that returns fewer has missed none.
BELL_COUNT = 500
BELL_HISTORY = 1000
PROBE_TIMEOUT = 1.0  # asking a node for the layout: one that does not answer is skipped
# A message up to this long (encoded) rides on the bell too: every process reading the master
# gets it, members here or not, so a large one only rings.
BELL_CARRIES = 4096


class ClusterBackend(StreamBackend):
    behind_from_start = False  # a promoted replica may lack the last entries read

    def __init__(
        self, where: RedisURL, prefix: str, history: int, expire: float | None = EXPIRE
    ) -> None:
        super().__init__(where, prefix, history, expire)
        self.layout: Layout | None = None
        self._seeds = [name(host, port) for host, port in where.nodes]
        self._clients: dict[str, Any] = {}  # master -> the client that sends to it
        self._probes: dict[str, Any] = {}  # node -> a client that asks it for the layout
        self.readers: dict[str, _NodeReader] = {}  # master -> the reader of its groups
        self._refreshing: asyncio.Task[Layout] | None = None
        self._wanted: asyncio.Event | None = None  # set: look up the layout now
        self._task: asyncio.Task[None] | None = None
        self._down: set[str] = set()  # masters whose reader is in an outage
        self._background: set[asyncio.Task[Any]] = set()  # readers and clients closing
        self._scripted = True  # sends by SEND (until a master refuses it: Redis before 7)
        self._script: Any = None

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._wanted = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._keep_layout())

    def _reachable(self, group: str) -> bool:
        if self.layout is None:
            return True  # its join looks the layout up
        node = self.layout.node_of(self.prefix + group)
        reader = self.readers.get(node) if node is not None else None
        return reader is None or not reader.outage

    async def _join(self, group: str) -> None:
        layout = self.layout or await self.refresh()
        key = self.prefix + group
        node = _served(layout, key)
        if node not in self.readers:
            # Before the lookup, which may fail: the reader places the group when it connects.
            self._read(node, outage=False)
        self._place(group, await self._client(node).xrevrange(key, count=1))
        await self._ring(group, key)  # its reader reads the group from where it is placed

    # Sending

    def _client_for(self, key: str) -> Any:
        return self._client(_served(self.layout, key))

    async def _add(self, group: str, key: str, fields: dict[bytes, Any]) -> None:
        layout = self.layout or await self.refresh()
        node = _served(layout, key)
        bell = layout.bell(self.prefix, node)
        client = self._client(node)
        if self._scripted:
            message = fields[b"m"]
            carried = "1" if len(message) <= BELL_CARRIES else ""
            args = (bell, fields[b"o"], message, self.history, BELL_HISTORY, group,
                    self._expire_ms or "", carried)  # fmt: skip
            if self._script is None:
                self._script = client.register_script(SEND)
            try:
                await self._script(keys=(key,), args=args, client=client)
                return
            except Exception as exc:
                if not unscripted(exc):
                    raise
                self._scripted = False
                logger.warning(
                    "Redis at %s runs no script of cross-slot keys (Redis 7 does: %s): each "
                    "group message is read in two round trips", self.address,
                    self.where.scrub(str(exc)),
                )  # fmt: skip
        pipe = client.pipeline(transaction=False)
        pipe.xadd(key, fields, maxlen=self.history, approximate=True)  # type: ignore[arg-type]
        pipe.xadd(bell, {"g": group}, maxlen=BELL_HISTORY, approximate=True)
        self._expiring(pipe, key)  # the group's stream and the bell: gone once unused
        self._expiring(pipe, bell)
        await pipe.execute()

    async def _ring(self, group: str, key: str) -> None:
        layout = self.layout or await self.refresh()
        node = _served(layout, key)
        bell = layout.bell(self.prefix, node)
        pipe = self._client(node).pipeline(transaction=False)
        pipe.xadd(bell, {"g": group}, maxlen=BELL_HISTORY, approximate=True)
        self._expiring(pipe, bell)
        await pipe.execute()

    def _retryable(self, exc: Exception) -> bool:
        return super()._retryable(exc) or redirected(exc)

    async def _recover(self) -> None:
        await self.refresh()

    def _client(self, node: str) -> Any:
        client = self._clients.get(node)
        if client is None:
            client = self._clients[node] = self._connect(node, socket_timeout=5,
                                                         client_name="uvicorn.groups")  # fmt: skip
        return client

    def _connect(self, node: str, **options: Any) -> Any:
        import redis.asyncio as redis

        host, _, port = node.rpartition(":")
        # No retries inside redis-py, as with one server: a send fails at once with a clear
        # error, and reconnecting is the readers' job.
        options.setdefault("socket_connect_timeout", 2)
        url = self.where.node_url(host.strip("[]"), int(port))
        return redis.Redis.from_url(url, retry=None, **options)

    # The layout

    async def refresh(self) -> Layout:
        """Look up the layout (one lookup at a time: those asking meanwhile share it), and
        apply it if it changed."""
        if self._refreshing is None:
            self._refreshing = asyncio.get_running_loop().create_task(self._fetch())
            self._refreshing.add_done_callback(self._refreshed)
        return await asyncio.shield(self._refreshing)

    def _refreshed(self, task: asyncio.Task[Layout]) -> None:
        self._refreshing = None
        if not task.cancelled() and task.exception() is None:
            layout = task.result()
            if layout != self.layout:
                self._apply(layout)

    async def _fetch(self) -> Layout:
        known = [*(self.layout.masters if self.layout else ()),
                 *(self.layout.replicas if self.layout else ()), *self._seeds]  # fmt: skip
        error: Exception | None = None
        for node in dict.fromkeys(known):
            probe = self._probes.get(node)
            if probe is None:
                probe = self._probes[node] = self._connect(
                    node, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT
                )
            try:
                reply = await probe.execute_command("CLUSTER", "SLOTS")
            except Exception as exc:
                error = exc
                with contextlib.suppress(Exception):
                    await probe.connection_pool.disconnect()
                continue
            layout = layout_of(reply, node.rpartition(":")[0])
            if layout.ranges:
                return layout
        raise ConnectionError(f"no node of the cluster answered ({error!r})")

    def _apply(self, layout: Layout) -> None:
        """A new layout. A master that serves the same slots as before keeps its reader, unless
        it is in an outage (waiting its back-off out: a cluster that refused every command
        during a failover, CLUSTERDOWN, answers again); the others' readers start again, on the
        masters that now serve their groups, and catch up from where they were (those in an
        outage pass it on to their successors)."""
        old, self.layout = self.layout, layout
        if old is not None:
            logger.info("Redis at %s: the cluster's masters are now %s", self.address,
                        ", ".join(layout.masters))  # fmt: skip
        outage = False
        for node, reader in list(self.readers.items()):
            if old is None or old.slots_of(node) != layout.slots_of(node) or reader.outage:
                outage |= node in self._down
                self._down.discard(node)
                del self.readers[node]
                self._later(reader.close())
        for serving in {layout.node_of(self.prefix + group) for group in self._positions}:
            if serving is not None and serving not in self.readers:
                self._read(serving, outage)
        for gone in set(self._clients) - set(layout.masters):
            self._later(self._clients.pop(gone).aclose())

    def _later(self, closing: Any) -> None:
        task = asyncio.get_running_loop().create_task(closing)
        self._background.add(task)  # (the loop keeps only a weak reference)
        task.add_done_callback(self._background.discard)

    def _read(self, node: str, outage: bool) -> None:
        reader = self.readers[node] = _NodeReader(self, node)
        if outage:
            reader.outage = True
            self._down.add(node)
        reader.start()

    async def _keep_layout(self) -> None:
        """Look the layout up now and then; often, with back-off, while a master is down."""
        assert self._wanted is not None
        quiet = 0  # lookups in a row that found no change while a master was down
        while not self._closed:
            before = self.layout
            try:
                await self.refresh()
            except Exception as exc:
                logger.debug("Redis at %s: no layout: %s", self.address,
                             self.where.scrub(repr(exc)))  # fmt: skip
            quiet = quiet + 1 if self._down and self.layout is before else 0
            delay = (
                LAYOUT_DELAYS[min(quiet, len(LAYOUT_DELAYS) - 1)] if self._down else LAYOUT_CHECK
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), delay)
            self._wanted.clear()

    def reader_down(self, node: str) -> None:
        self._down.add(node)
        if self._wanted is not None:
            self._wanted.set()

    def reader_up(self, node: str) -> None:
        self._down.discard(node)
        if not self._down:
            logger.info("Redis at %s is reachable again: groups restored", self.address)

    async def close(self) -> None:
        self._closed = True
        for task in (self._task, self._refreshing):
            if task is not None:
                task.cancel()
        for reader in self.readers.values():
            await reader.close()
        for client in [*self._clients.values(), *self._probes.values()]:
            await client.aclose()


class _NodeReader(Reader):
    """The groups one master serves: an XREAD BLOCK on its bell, then an XREAD of each group
    it names, in one pipeline."""

    def __init__(self, backend: ClusterBackend, node: str) -> None:
        super().__init__(backend, f"{backend.address} (node {node})")
        self.backend: ClusterBackend = backend
        self.node = node
        self.client = backend._connect(node, **READING)
        self.bell = ""
        self.bell_id = START

    def groups(self) -> list[str]:
        layout, prefix = self.backend.layout, self.backend.prefix
        assert layout is not None
        return [g for g in self.backend._positions if layout.node_of(prefix + g) == self.node]

    async def connect(self) -> None:
        layout = self.backend.layout
        assert layout is not None
        self.bell = layout.bell(self.backend.prefix, self.node)
        # Where the bell is before catching up: whatever rings after is read.
        last = await self.client.xrevrange(self.bell, count=1)
        self.bell_id = last[0][0] if last else START
        groups = self.groups()
        await self.find_starts(groups, everyone=True)
        await self._read_groups(groups)

    async def read(self) -> None:
        positions = self.backend._positions
        while True:
            block = max(1, int(streams.HEALTH_CHECK * 1000))
            reply = await self.blocking(
                self.client.xread({self.bell: self.bell_id}, count=BELL_COUNT, block=block)
            )
            for _, entries in stream_items(reply):
                self.bell_id = entries[-1][0]
                behind = self._from_bell(entries)
                if len(entries) >= BELL_COUNT:
                    behind = self.groups()  # some may have been trimmed unread
                await self._read_groups(behind)
            if None in positions.values():  # joined while Redis was away: read from now on
                unplaced = [group for group in self.groups() if positions[group] is None]
                await self.find_starts(unplaced, everyone=False)

    def _from_bell(self, entries: list[Any]) -> list[str]:
        """Deliver the messages that ``entries`` (of the bell) carry, each right after the last
        one read in its group; return the groups to read: named with no message (a join, a
        retried send, a large message), or behind the entry that the message came after (a
        reader that caught up meanwhile, a stream trimmed or promoted). Once a group is to be
        read, the reading returns its later entries too: they are left to it, in order."""
        backend = self.backend
        positions = backend._positions
        behind: dict[str, None] = {}
        for _, fields in entries:
            group = fields[b"g"].decode("utf-8")
            if group in behind or group not in positions:
                continue
            position, entry = positions[group], fields.get(b"i")
            if entry is not None and position == fields[b"p"]:
                backend._deliver(group, [(entry, fields)])
            elif entry is None or position is None or entry_id(entry) > entry_id(position):
                behind[group] = None
            # (otherwise read already: a catch-up read it before the bell told)
        return list(behind)

    async def _read_groups(self, groups: list[str]) -> None:
        backend = self.backend
        positions = backend._positions
        await self.find_starts([g for g in groups if positions.get(g, b"") is None], False)
        reading = [(g, p) for g in groups if (p := positions.get(g)) is not None]
        if not reading:
            return
        pipe = self.client.pipeline(transaction=False)
        for group, position in reading:
            pipe.xread({backend.prefix + group: position})
        replies = await pipe.execute()
        for (group, position), reply in zip(reading, replies, strict=True):
            for key, entries in stream_items(reply):
                await backend._take(self.client, group, key, position, entries)

    def failed(self) -> None:
        self.backend.reader_down(self.node)  # the layout may have changed: look

    def restored(self) -> None:
        self.backend.reader_up(self.node)


def _served(layout: Layout | None, key: str) -> str:
    node = layout.node_of(key) if layout is not None else None
    if node is None:
        raise ConnectionError(f"no master of the cluster serves {key!r} now")
    return node
