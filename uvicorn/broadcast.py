"""Groups of reply channels that span processes and hosts, over Redis Streams (SPEC: "Groups").

``BroadcastMiddleware(app)`` adds ``channels['groups']`` to every message. Membership is local to
each process (group -> the local reply channels in it); each process reads one Redis stream per
group that has local members, from the last entry it read (so a reconnect loses nothing), and a
``send`` adds to it once, so a group spans every worker and host connected to the same Redis.
Messages travel as JSON with bytes tagged (never pickle), so ``bytes`` stay bytes. Delivery to
each member is independent: a slow member gets a bounded backlog of its own, a closed one leaves
its groups, and neither delays the others.

Redis is one server, a Redis Cluster (groups spread over its masters) or a master that Sentinels
watch, as the URL says (``broadcast_urls``); ``url='memory://'`` keeps everything in one process,
without Redis.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.broadcast_backends import Backend, BroadcastError, MemoryBackend
from uvicorn.broadcast_cluster import ClusterBackend
from uvicorn.broadcast_members import MISSED, Member, deliver_all
from uvicorn.broadcast_redis import RedisBackend
from uvicorn.broadcast_sentinel import SentinelBackend
from uvicorn.broadcast_streams import EXPIRE, HISTORY
from uvicorn.broadcast_urls import parse
from uvicorn.channels import Declined, SendsNowait, Shared, channel_names
from uvicorn.types import Channels, Message

logger = logging.getLogger("uvicorn.error")

__all__ = ["BroadCastMiddleware", "BroadcastError", "BroadcastMiddleware", "Groups"]


class Groups:
    """One process's group membership, and its connection to the other processes."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.members: dict[str, Member] = {}  # reply channel name -> member
        self.groups: dict[str, set[Member]] = {}  # group -> its local members
        backend.on_message = self.deliver_local
        backend.on_missed = self.missed

    async def add(self, group: str, name: str, channel: Any) -> None:
        member = self.members.get(name)
        if member is None:
            if channel is None:
                logger.debug("Cannot add %s to %r: not a channel of this process", name, group)
                return
            member = self.members[name] = Member(self, name, channel)
        local = self.groups.get(group)
        if local is None:
            local = self.groups[group] = set()
        local.add(member)
        member.groups.add(group)
        # Every add waits for the group's subscription (at once when it is confirmed), not
        # only the first: a member added while it is under way is in the group for messages
        # from other processes only once it is confirmed.
        await self.backend.subscribe(group)

    def discard(self, group: str, name: str) -> None:
        member = self.members.get(name)
        local = self.groups.get(group)
        if member is None or local is None:
            return  # SPEC: absent names are fine
        local.discard(member)
        member.groups.discard(group)
        if not member.groups:
            del self.members[name]
        if not local:
            del self.groups[group]
            self.backend.unsubscribe(group)

    def evict(self, member: Member, reason: str | None) -> None:
        """Take a member out of every group (its connection closed, or it fell behind)."""
        if reason:
            logger.warning("Dropping %s from its groups: %s", member.name, reason)
        member.backlog.clear()
        for group in list(member.groups):
            self.discard(group, member.name)

    async def send(self, group: str, message: Message) -> None:
        await self.backend.publish(group, message)

    def deliver_local(self, group: str, message: Message) -> None:
        members = self.groups.get(group)
        if members:
            deliver_all(members, message)

    def missed(self, group: str) -> None:
        """Messages of the group were lost on their way here (the backend logged it): its
        members here are closed, behind what they were sent before, and leave their groups.
        Delivering on as if nothing happened would leave them silently out of step."""
        for member in list(self.groups.get(group, ())):
            self.evict(member, None)
            member.deliver(dict(MISSED))


class GroupsChannel:
    """``channels['groups']``: ``{'group': name, 'add' | 'discard': channel name, 'send': msg}``."""

    __slots__ = ("_groups", "_reply")

    def __init__(self, groups: Groups, reply: Any) -> None:
        self._groups = groups
        self._reply = reply

    @property
    def name(self) -> str:
        return "groups"

    async def send(self, message: Message) -> None:
        try:
            group = message["group"]
        except (KeyError, TypeError):
            raise ValueError(f"invalid groups message {message!r}: needs a 'group'") from None
        if not isinstance(group, str) or not group:
            raise TypeError(f"invalid 'group' {group!r}: must be a non-empty str")
        groups = self._groups
        if "add" in message:
            name = _channel_name(message["add"], "add")
            reply = self._reply
            await groups.add(
                group, name, reply if reply is not None and reply.name == name else None
            )
        if "discard" in message:
            groups.discard(group, _channel_name(message["discard"], "discard"))
        if "send" in message:
            if not isinstance(message["send"], dict):
                raise TypeError(f"invalid 'send' {message['send']!r}: must be a message dict")
            await groups.send(group, message["send"])


def _channel_name(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"invalid {key!r} {value!r}: must be a channel name (str)")
    return value


class BroadcastMiddleware:
    """``BroadcastMiddleware(app)``, ``BroadcastMiddleware(app, 'localhost', 6379)``,
    ``BroadcastMiddleware(app, url='redis://...')`` (also ``rediss://``, ``redis-cluster://``,
    ``redis-sentinel://``: ``broadcast_urls``) or ``url='memory://'``. Without any of them,
    ``$UVICORN_REDIS_URL`` when set, else ``redis://localhost:6379``. ``history`` is how many
    messages Redis keeps per group (at least) for a process that reconnects to catch up;
    ``expire`` how long (seconds; None: for ever) after a group's last message Redis keeps
    its stream (``broadcast_streams.EXPIRE``, a day): an abandoned group's history goes.

    Wraps a messaging-interface app; an ASGI 3 app gets an ``ASGIBroadcastMiddleware``, which
    offers the same groups through the ``uvicorn.groups`` scope extension.
    """

    def __new__(cls, app: Any, *args: Any, **kwargs: Any) -> Any:
        if cls is BroadcastMiddleware and _is_asgi(app):
            return super().__new__(ASGIBroadcastMiddleware)
        return super().__new__(cls)

    def __init__(
        self,
        app: Any,
        host: str | None = None,
        port: int | None = None,
        *,
        url: str | None = None,
        prefix: str = "uvicorn.groups:",
        history: int = HISTORY,
        expire: float | None = EXPIRE,
    ) -> None:
        self.app = app
        if url is None:
            if host is None and port is None and "UVICORN_REDIS_URL" in os.environ:
                # Where to find Redis is deployment configuration: the environment may say it
                # for an app that does not (the README's example says nothing).
                url = os.environ["UVICORN_REDIS_URL"]
            else:
                url = f"redis://{host or 'localhost'}:{port or 6379}"
        if not url.startswith("memory://"):
            parse(url)  # a malformed URL fails here, not at the first message
        self.url = url
        self.prefix = prefix
        self.history = history  # messages kept per group in Redis, for processes catching up
        self.expire = expire  # seconds after its last message, a group's stream is deleted
        self._groups: Groups | None = None

    @property
    def groups(self) -> Groups:
        """Created on first use, in the process and event loop that serve (after any fork)."""
        if self._groups is None:
            self._groups = Groups(make_backend(self.url, self.prefix, self.history, self.expire))
        return self._groups

    async def __call__(self, message: Message, channels: Channels) -> None:
        groups = self.groups
        reply = channels.get("reply")
        channels["groups"] = GroupsChannel(groups, reply)
        try:
            await self.app(message, channels)
        finally:
            if message.get("channel") == "websocket.disconnect" and reply is not None:
                # SPEC: a WebSocket that disconnects leaves all its groups by itself.
                member = groups.members.get(reply.name)
                if member is not None:
                    groups.evict(member, None)

    async def close(self) -> None:
        if self._groups is not None:
            await self._groups.backend.close()


BroadCastMiddleware = BroadcastMiddleware  # the original README spells it so once


def make_backend(url: str, prefix: str, history: int, expire: float | None = EXPIRE) -> Backend:
    """The backend a URL names (``broadcast_urls``): one Redis, a Cluster, a Sentinel-watched
    master, or ``memory://``."""
    if url.startswith("memory://"):
        return MemoryBackend()
    where = parse(url)
    if where.kind == "cluster":
        return ClusterBackend(where, prefix, history, expire)
    if where.kind == "sentinel":
        return SentinelBackend(where, prefix, history, expire)
    return RedisBackend(where, prefix, history, expire)


class _ASGIReply:
    """A WebSocket's reply channel for an ASGI app: group messages (``text``, ``bytes``,
    ``close``) become ``websocket.send`` / ``websocket.close`` events."""

    __slots__ = ("name", "_send")

    def __init__(self, send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> None:
        self.name = channel_names.new("reply")
        self._send = send

    async def send(self, message: Message) -> None:
        if message.get("text") is not None or message.get("bytes") is not None:
            await self._send({"type": "websocket.send", "text": message.get("text"),
                              "bytes": message.get("bytes")})  # fmt: skip
        close = message.get("close")
        if close:
            await self._send({"type": "websocket.close", "code": 1000 if close is True else close})


class _ServerASGIReply(SendsNowait, _ASGIReply):
    """An ``_ASGIReply`` on the server's own ASGI ``send``, which may be started without a
    task (``SendsNowait``): ``send()`` awaits nothing else. A group's message goes straight
    to the server's WebSocket (``send_shared()``), framed once for all its members."""

    __slots__ = ()

    def send_shared(self, shared: Shared) -> Awaitable[None] | Declined | None:
        return self._send.__self__.send_shared(shared)  # type: ignore[attr-defined,no-any-return]

    def shared_sender(self) -> Callable[[Shared], Awaitable[None] | Declined | None]:
        return self._send.__self__.send_shared  # type: ignore[attr-defined,no-any-return]


def _asgi_reply(send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> _ASGIReply:
    # Only the server's own send, not one a middleware wrapped (which might need a task).
    owner = getattr(send, "__self__", None)
    ours = isinstance(owner, SendsNowait) and send == owner.send
    return (_ServerASGIReply if ours else _ASGIReply)(send)


class ASGIBroadcastMiddleware(BroadcastMiddleware):
    """The groups for ASGI 3 apps: ``scope['extensions']['uvicorn.groups']`` is
    ``{'send': <async callable taking a groups message>, 'channel': <this WebSocket's channel
    name, or None for HTTP>}``; a WebSocket leaves its groups when it disconnects."""

    async def __call__(  # type: ignore[override]
        self, scope: MutableMapping[str, Any], receive: Any, send: Any
    ) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        groups = self.groups
        reply = _asgi_reply(send) if scope["type"] == "websocket" else None
        channel = GroupsChannel(groups, reply)
        extensions = dict(scope.get("extensions") or {})
        extensions["uvicorn.groups"] = {
            "send": channel.send,
            "channel": reply.name if reply is not None else None,
        }
        scope = dict(scope, extensions=extensions)
        try:
            await self.app(scope, receive, send)
        finally:
            if reply is not None and reply.name in groups.members:
                groups.evict(groups.members[reply.name], None)


def _is_asgi(app: Any) -> bool:
    """Three positional parameters: ASGI 3 (two: the messaging interface)."""
    try:
        parameters = inspect.signature(app).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds and p.default is p.empty) == 3
