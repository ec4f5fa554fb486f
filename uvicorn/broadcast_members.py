"""A process's member of broadcast groups (``broadcast.Groups``) and its delivery backlog: the
part of the fan-out that runs per member and per message, compiled with the hot modules
(setup.py), as the WebSocket session it hands each message to is.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from uvicorn.channels import Declined, Shared
from uvicorn.exceptions import ClientDisconnected
from uvicorn.types import Message

logger = logging.getLogger("uvicorn.error")

# A member that falls this many messages behind is dropped from its groups: one slow client
# must not make its process hold an unbounded backlog. It is also sent a close (a WebSocket
# closes with 1013, "try again later"; an HTTP stream ends), so that its client learns it
# missed messages rather than waiting for them forever.
MAX_BACKLOG = 1000
TOO_SLOW = {"close": 1013}
# A member whose process was away from Redis longer than its group's history reaches has missed
# messages: it is told the same way, and for the same reason (reconnect, and catch up).
MISSED = TOO_SLOW
CLOSE_SEND_TIMEOUT = 10.0  # for that close, to a channel that is not the server's
_DECLINED: Final = Declined  # (an imported name is a dict lookup to compiled code)


class Member:
    """A local reply channel in one or more groups, and its delivery backlog."""

    def __init__(self, owner: Any, name: str, channel: Any) -> None:
        self.owner = owner
        self.name = name
        self.channel = channel
        self.nowait = getattr(channel, "send_nowait", None)  # the server's channels (SendsNowait)
        # Their send_shared(), for a message many members get (SendsNowait.shared_sender()).
        sender = getattr(channel, "shared_sender", None) if self.nowait is not None else None
        self.send_shared: Callable[[Shared], Any] | None = sender() if sender else None
        self.groups: set[str] = set()
        self.backlog: deque[Message] = deque()
        self.task: asyncio.Task[None] | None = None

    def deliver(self, message: Message, shared: Shared | None = None) -> None:
        """``shared``: the same message is delivered to many members (``Shared``: a server
        channel frames it once for all of them)."""
        if self.task is not None:  # still sending earlier messages: queue behind them
            if len(self.backlog) >= MAX_BACKLOG:
                self.owner.evict(self, f"more than {MAX_BACKLOG} messages behind")
                self._close_slow()
            else:
                self.backlog.append(message)
            return
        nowait = self.nowait
        if nowait is None:
            # Any channel: a task per send, so that its send() may use what needs one
            # (current_task(), asyncio.timeout()).
            loop = asyncio.get_running_loop()
            self.task = loop.create_task(self._send(self.channel.send(message)))
            return
        # The server's channels: the send starts at once, without a task, and one that does
        # not have to wait (the usual case) costs no task per member per message. One that
        # waits (back-pressure) is finished in a task of its own, with whatever arrives
        # meanwhile queued behind it.
        try:
            send_shared = self.send_shared
            if shared is not None and send_shared is not None:
                rest = send_shared(shared)
                if isinstance(rest, _DECLINED):  # not a plain data message, or not open
                    rest = nowait(message)
            else:
                rest = nowait(message)
        except Exception as exc:
            self._failed(exc)
            return
        if rest is not None:
            self.task = asyncio.get_running_loop().create_task(self._send(rest))

    def _close_slow(self) -> None:
        """Stop sending what is queued and send a close instead. A server channel writes its
        message before it waits for a slow peer, so starting the send is enough: the rest
        (waiting for the peer to read) is abandoned, and the server's closing-handshake timeout
        ends a connection whose peer never reads again. Another channel gets a task, bounded."""
        if self.task is not None:
            self.task.cancel()
        nowait = self.nowait
        if nowait is None:
            closing = asyncio.wait_for(self.channel.send(dict(TOO_SLOW)), CLOSE_SEND_TIMEOUT)
            asyncio.get_running_loop().create_task(self._close_quietly(closing))
            return
        try:
            rest = nowait(dict(TOO_SLOW))
        except Exception as exc:  # it may be gone already, or not take a close: dropped anyway
            logger.debug("Closing %s failed: %r", self.name, exc)
            return
        if rest is not None:
            rest.close()  # type: ignore[attr-defined]

    async def _close_quietly(self, closing: Awaitable[None]) -> None:
        try:
            await closing
        except Exception as exc:  # gone already, or too slow even for that: dropped anyway
            logger.debug("Closing %s failed: %r", self.name, exc)

    async def _send(self, sending: Awaitable[None]) -> None:
        try:
            await sending
            while self.backlog:
                await self.channel.send(self.backlog.popleft())
        except Exception as exc:
            self._failed(exc)
        finally:
            self.task = None

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, (ClientDisconnected, OSError)):
            self.owner.evict(self, None)  # the connection closed: it leaves its groups
        else:
            logger.error("Group delivery to %s failed", self.name, exc_info=exc)
            self.owner.evict(self, None)


def deliver_all(members: Iterable[Member], message: Message) -> None:
    """``message`` to each of ``members`` (a copy of the set: a delivery may evict)."""
    shared = Shared(message)  # framed once for every member that can take the same bytes
    for member in list(members):
        member.deliver(message, shared)
