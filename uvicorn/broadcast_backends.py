"""Where group messages travel between processes: Redis pub/sub, or memory for one process.

A backend knows the groups this process has local members in (``subscribe`` /
``unsubscribe``), publishes a message once per ``send``, and hands what arrives to
``on_message(group, message)``. The Redis backend reconnects with back-off when Redis goes away
and subscribes again to every group that still has local members, so the groups work again
without the app doing anything; it logs the outage and the recovery once each.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from uvicorn.exceptions import UvicornError

logger = logging.getLogger("uvicorn.error")

RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # back-off, then every 5 s
SUBSCRIBE_TIMEOUT = 2.0
# Seconds without a word from Redis on the subscription before a PING; as long again without an
# answer is an outage. A connection that goes silent (a host or network gone, with no FIN or
# RST) would otherwise be waited on forever, until TCP keep-alive, hours later.
HEALTH_CHECK = 5.0


class BroadcastError(UvicornError):
    """A message could not be published (Redis is unreachable)."""


Deliver = Callable[[str, dict[str, Any]], None]


def encode(message: Any) -> Any:
    """JSON-ready form of a message: bytes become ``{"$b": base64}``; a dict whose keys could be
    mistaken for a tag (or are not str) becomes ``{"$d": [[key, value], ...]}``."""
    if isinstance(message, (bytes, bytearray, memoryview)):
        return {"$b": base64.b64encode(message).decode("ascii")}
    if isinstance(message, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in message):
            return {k: encode(v) for k, v in message.items()}
        return {"$d": [[_encode_key(k), encode(v)] for k, v in message.items()]}
    if isinstance(message, (list, tuple)):
        return [encode(v) for v in message]
    if message is None or isinstance(message, (str, int, float, bool)):
        return message
    raise TypeError(
        f"cannot send {type(message).__name__} {message!r} to a group: messages hold dicts, "
        "lists, str, bytes, numbers, booleans and None"
    )


def _encode_key(key: Any) -> Any:
    # Only what decodes back to a key: a tuple key would travel as a list, which the other
    # processes could not use as a key again (delivered here, dropped everywhere else).
    if isinstance(key, (str, bytes, int, float)) or key is None:
        return encode(key)
    raise TypeError(
        f"cannot send a dict with the key {key!r} to a group: keys are str, bytes, numbers, "
        "booleans or None"
    )


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "$b" in value:
            return base64.b64decode(value["$b"])
        if "$d" in value:
            return {decode(k): decode(v) for k, v in value["$d"]}
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


class Backend:
    on_message: Deliver

    async def subscribe(self, group: str) -> None:
        raise NotImplementedError

    def unsubscribe(self, group: str) -> None:
        raise NotImplementedError

    async def publish(self, group: str, message: dict[str, Any]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class MemoryBackend(Backend):
    """One process: a send is delivered to the local members, and nowhere else."""

    async def subscribe(self, group: str) -> None:
        pass

    def unsubscribe(self, group: str) -> None:
        pass

    async def publish(self, group: str, message: dict[str, Any]) -> None:
        # The same types as across processes (a tuple arrives as a list, as it would there),
        # and a copy: the app may reuse its message once send() returned.
        self.on_message(group, decode(encode(message)))


class RedisBackend(Backend):
    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as redis

        self.url = url
        # Errors and logs name the address without the URL's password, if it has one.
        parts = urlsplit(url)
        self.address = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        self.prefix = prefix
        self.origin = secrets.token_hex(8)  # our own publications are delivered locally
        # No retries inside redis-py: a send during an outage fails at once with a clear error,
        # and reconnecting is the listener's job.
        options: dict[str, Any] = {"retry": None, "socket_connect_timeout": 2}
        self._publisher = redis.Redis.from_url(url, socket_timeout=5, **options)
        self._connection_errors = (redis.ConnectionError,)
        self._subscriber = redis.Redis.from_url(url, socket_keepalive=True, **options)
        self._groups: set[str] = set()
        self._subscribed: set[str] = set()  # groups whose subscription Redis has confirmed
        self._tasks: set[asyncio.Task[None]] = set()  # unsubscriptions under way
        self._pubsub: Any = None
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._closed = False
        self._outage = False  # Redis is unreachable (logged once; cleared when it is back)

    def _channel(self, group: str) -> str:
        return self.prefix + group

    def _ensure_listening(self) -> None:
        if self._listener is None and not self._closed:
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def subscribe(self, group: str) -> None:
        """Subscribe, and wait until Redis confirms: a message published after this returns
        (after the connect handler that joined the group returns, say) is not missed."""
        self._groups.add(group)
        self._ensure_listening()
        if self._outage:
            return  # subscribed again, with every other group, once Redis is back
        # Called for every member added, not only the group's first: one that joins while the
        # group's subscription is under way waits for the same confirmation, or it would be
        # answered before it and miss what is sent meanwhile.
        if group in self._subscribed:
            return
        channel = self._channel(group).encode()
        confirmed = self._confirmations.get(channel)
        try:
            if confirmed is None:
                loop = asyncio.get_running_loop()
                confirmed = self._confirmations[channel] = loop.create_future()
                pubsub = self._pubsub
                if pubsub is not None:
                    await pubsub.subscribe(channel)
                # else the listener is connecting, and subscribes to every group when it is
            await asyncio.wait_for(asyncio.shield(confirmed), SUBSCRIBE_TIMEOUT)
        except Exception as exc:  # the listener notices an outage and subscribes again
            logger.debug("Redis subscribe %r not confirmed: %r", group, exc)

    def unsubscribe(self, group: str) -> None:
        self._groups.discard(group)
        self._subscribed.discard(group)
        pubsub = self._pubsub
        if pubsub is None:
            return

        async def run() -> None:
            # A group left and joined again at once (its last member leaves, a new one joins)
            # must not end unsubscribed by this UNSUBSCRIBE reaching Redis after the new
            # SUBSCRIBE: skip it when the group is wanted again, and subscribe again after it
            # when the group was joined while it was being sent.
            if group in self._groups:
                return
            try:
                await pubsub.unsubscribe(self._channel(group))
                if group in self._groups:
                    await pubsub.subscribe(self._channel(group))
            except Exception as exc:  # harmless: an unwanted message is ignored
                logger.debug("Redis unsubscribe %r failed: %r", group, exc)

        # Kept referenced: the event loop holds tasks weakly, and could collect it unrun.
        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish(self, group: str, message: dict[str, Any]) -> None:
        self._ensure_listening()
        encoded = encode(message)
        data = json.dumps({"o": self.origin, "m": encoded}, separators=(",", ":"))
        try:
            try:
                await self._publisher.publish(self._channel(group), data)
            except self._connection_errors:
                # A pooled connection made before Redis restarted fails its first command
                # although Redis is back: one more try, on a new connection, tells that from
                # an outage.
                await self._publisher.publish(self._channel(group), data)
        except Exception as exc:
            raise BroadcastError(f"cannot send to group {group!r}: Redis at {self.address} is "
                                 f"unreachable ({exc})") from None  # fmt: skip
        # Local members: no round trip through Redis, but the types the others get (a tuple
        # arrives as a list everywhere), and a copy the app cannot change after send().
        self.on_message(group, decode(encoded))

    async def _listen(self) -> None:
        """Receive what other processes publish; reconnect with back-off when Redis is gone."""
        attempt = 0
        control = self.prefix + "~" + self.origin  # always one subscription, so listen() waits
        while not self._closed:
            pubsub = self._subscriber.pubsub()
            try:
                groups = set(self._groups)
                await asyncio.wait_for(
                    pubsub.subscribe(control, *(self._channel(g) for g in groups)), HEALTH_CHECK
                )
                self._pubsub = pubsub
                joined_meanwhile = self._groups - groups
                if joined_meanwhile:
                    await pubsub.subscribe(*(self._channel(g) for g in joined_meanwhile))
                if self._outage:
                    logger.info("Redis at %s is reachable again: groups restored", self.address)
                    self._outage = False
                attempt = 0
                # A connection to Redis that goes silent (its host or the network gone without
                # a FIN or RST) would be listened to forever, the groups of this process getting
                # nothing more and no outage logged: idle, it is PINGed.
                pinged = False
                while True:
                    item = await pubsub.get_message(timeout=HEALTH_CHECK)
                    if item is None:
                        if pinged:
                            raise ConnectionError(f"no answer to PING within {HEALTH_CHECK} s")
                        await pubsub.ping()
                        pinged = True
                        continue
                    pinged = False
                    kind = item["type"]
                    if kind == "message":
                        self._received(item["channel"], item["data"])
                    elif kind == "subscribe":
                        group = item["channel"].decode("utf-8")[len(self.prefix) :]
                        if group in self._groups:
                            self._subscribed.add(group)
                        confirmed = self._confirmations.pop(item["channel"], None)
                        if confirmed is not None and not confirmed.done():
                            confirmed.set_result(None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._outage:
                    logger.warning("Redis at %s is unreachable (%r): retrying", self.address, exc)
                    self._outage = True
                    for confirmed in self._confirmations.values():
                        if not confirmed.done():
                            confirmed.set_result(None)  # nobody waits through an outage
                    self._confirmations.clear()
            finally:
                self._pubsub = None
                self._subscribed.clear()
                with contextlib.suppress(Exception):  # the connection is gone anyway
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
            attempt += 1
            await asyncio.sleep(delay)

    def _received(self, channel: bytes, data: bytes) -> None:
        try:
            envelope = json.loads(data)
            if envelope["o"] == self.origin:
                return  # published here, and delivered here already
            group = channel.decode("utf-8")[len(self.prefix) :]
            message = decode(envelope["m"])
        except Exception as exc:
            logger.warning("Ignoring a malformed group message on %r: %r", channel, exc)
            return
        self.on_message(group, message)

    async def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
        await self._publisher.aclose()
        await self._subscriber.aclose()
