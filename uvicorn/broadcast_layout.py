"""A Redis Cluster as ``broadcast_cluster`` sees it: its layout (which master serves which slot,
from ``CLUSTER SLOTS``), the bell key of each master, the script that sends to a group, and the
answers that say the layout changed or that a master cannot run the script."""

from __future__ import annotations

import bisect
from typing import Any

# Errors a cluster answers with while its layout changes: look it up again, and try again.
REDIRECTS = frozenset({"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "READONLY", "MASTERDOWN"})

# A send, in one command to the group's master (atomic: no other entry comes between): the
# group's XADD, then a bell entry naming the group, the new entry's id and the id of the entry
# before it, with the message when it is small. A reader whose last entry read in the group is
# the one before delivers the message from the bell alone. KEYS: the group's stream (a cluster
# routes a script by its keys, which must share a slot); ARGV: the bell, origin, message,
# history, bell history, group, expiry in ms ("" for none), carried ("" for no). The bell is in
# another slot of the same master: a script may touch it only with Redis 7's
# allow-cross-slot-keys flag.
SEND = """#!lua flags=allow-cross-slot-keys
local bell = ARGV[1]
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local previous = last[1] and last[1][1] or '0-0'
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'o', ARGV[2], 'm', ARGV[3])
if ARGV[8] ~= '' then
    redis.call('XADD', bell, 'MAXLEN', '~', ARGV[5], '*', 'g', ARGV[6], 'i', id,
               'p', previous, 'o', ARGV[2], 'm', ARGV[3])
else
    redis.call('XADD', bell, 'MAXLEN', '~', ARGV[5], '*', 'g', ARGV[6])
end
if ARGV[7] ~= '' then
    redis.call('PEXPIRE', KEYS[1], ARGV[7])
    redis.call('PEXPIRE', bell, ARGV[7])
end
return id
"""


class Layout:
    """Which master serves each slot (from ``CLUSTER SLOTS``), and the replicas."""

    def __init__(self, ranges: list[tuple[int, int, str]], replicas: list[str]) -> None:
        self.ranges = sorted(ranges)
        self.starts = [start for start, _, _ in self.ranges]
        self.masters = sorted({node for _, _, node in self.ranges})
        self.replicas = replicas
        self._bells: dict[str, str] = {}
        from redis.crc import key_slot  # (the slot of a key, as Redis computes it)

        self._slot = key_slot

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and self.ranges == other.ranges

    __hash__ = None  # type: ignore[assignment]

    def slots_of(self, node: str) -> list[tuple[int, int]]:
        return [(start, end) for start, end, master in self.ranges if master == node]

    def node_of(self, key: str) -> str | None:
        slot = self._slot(key.encode("utf-8"))
        i = bisect.bisect_right(self.starts, slot) - 1
        if i >= 0 and self.ranges[i][1] >= slot:
            return self.ranges[i][2]
        return None  # no master serves it now (a cluster in failover)

    def bell(self, prefix: str, node: str) -> str:
        """The key of ``node``'s bell: the first of ``prefix~bell{0}``, ``{1}``, ... it serves.
        Readers and senders with the same layout find the same."""
        bell = self._bells.get(node)
        if bell is None:
            for n in range(1 << 20):
                if self.node_of(f"{prefix}~bell{{{n}}}") == node:
                    bell = self._bells[node] = f"{prefix}~bell{{{n}}}"
                    break
            else:  # a prefix with a hash tag of its own: every key of ours is in one slot
                raise ValueError(f"no bell key of prefix {prefix!r} is served by {node}")
        return bell


def redirected(exc: Exception) -> bool:
    """An answer that says the cluster's layout changed. redis-py 5.0's plain client leaves
    MOVED and the others ResponseErrors named by their first word; later ones subclass them."""
    from redis import exceptions

    if isinstance(exc, (exceptions.AskError, exceptions.TryAgainError,
                        exceptions.ClusterDownError, exceptions.ReadOnlyError)):  # fmt: skip
        return True
    return isinstance(exc, exceptions.ResponseError) and str(exc).split(" ", 1)[0] in REDIRECTS


def name(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def layout_of(reply: Any, asked: str) -> Layout:
    """``CLUSTER SLOTS``: [[start, end, [host, port, id, ...], [replica...]...], ...]. A host
    left empty (or "?") is the one asked."""
    ranges, replicas = [], []
    for start, end, master, *others in reply:
        names = [name(_host(node[0], asked), int(node[1])) for node in (master, *others)]
        ranges.append((int(start), int(end), names[0]))
        replicas.extend(names[1:])
    return Layout(ranges, sorted(set(replicas)))


def _host(value: Any, asked: str) -> str:
    host = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    return asked.strip("[]") if host in ("", "?") else host


def unscripted(exc: Exception) -> bool:
    """A master that cannot run SEND: Redis 6 cannot compile its first line (or refuses keys of
    two slots in one script: CROSSSLOT), another may not know its flag. Not an error that the
    script met as it ran (Redis 7 names the script in those too: OOM, say)."""
    from redis import exceptions

    text = str(exc)
    return isinstance(exc, exceptions.ResponseError) and (
        "compiling script" in text or "shebang" in text or text.startswith("CROSSSLOT")
    )
