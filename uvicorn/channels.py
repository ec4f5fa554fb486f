"""Channel names (SPEC.md, "Channels"): unique across every process and host of a deployment;
and ``SendsNowait``, how the server's channels let the broadcast groups send without a task, and
``Shared``, how they frame a group's message once for all its members.

A base module, so that the server (``worker/``), the adapters (``adapters/``) and the broadcast
middleware share these without one importing another.
"""

from __future__ import annotations

import itertools
import os
import secrets
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any


class ChannelNames:
    """Names unique across processes and hosts: a per-process random prefix and a counter,
    e.g. ``reply!k3f9a2c1.17``. The prefix is drawn again in each forked child."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = secrets.token_hex(6)
        self.counter = itertools.count(1)

    def new(self, kind: str) -> str:
        return f"{kind}!{self.prefix}.{next(self.counter)}"


channel_names = ChannelNames()
os.register_at_fork(after_in_child=channel_names.reseed)


class Shared:
    """One group message on its way to many channels of this process (the broadcast groups'
    fan-out): what a server channel makes of it for the wire, made by the first member that
    needs it and reused by the others. A WebSocket's data frame is the same bytes for every
    peer that negotiated no extension (a server's frames are not masked: RFC 6455 section 5.1),
    so 10,000 members cost one frame, not 10,000. ``frame``: None until made; b"" when the
    message is not a plain data message (each member then takes its ordinary path)."""

    __slots__ = ("message", "frame")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self.frame: bytes | None = None


class Declined:
    """``send_shared()``'s answer when the channel must take its ordinary path."""

    __slots__ = ()


DECLINED = Declined()


class SendsNowait:
    """For channels whose ``send()`` needs no task of its own (it never calls
    ``current_task()`` or ``asyncio.timeout()``, and waits only on futures): the server's reply
    channels. ``send_nowait()`` lets the broadcast groups deliver to thousands of members
    without a task per member per message; any other channel gets a task per send."""

    __slots__ = ()
    send: Callable[[dict[str, Any]], Coroutine[Any, Any, None]]  # the class's own

    def send_nowait(self, message: dict[str, Any]) -> Awaitable[None] | None:
        """Send ``message`` now, outside any task. None when it is sent; else what is left of
        the send (waiting for a slow peer to read: back-pressure), to await before sending
        more, or to close to abandon. (A message that goes to many channels at once takes
        ``shared_sender()`` first.)"""
        coroutine = self.send(message)
        try:
            waiting_on = coroutine.send(None)
        except StopIteration:
            return None
        except BaseException:
            coroutine.close()
            raise
        return _resume(coroutine, waiting_on)

    def send_shared(self, shared: Shared) -> Awaitable[None] | Declined | None:
        """Send ``shared.message`` as ``send_nowait()`` does (same answers), using what
        ``shared`` holds; or ``DECLINED`` (nothing done): send it the ordinary way."""
        return DECLINED

    def shared_sender(self) -> Callable[[Shared], Awaitable[None] | Declined | None]:
        """What ``send_shared()`` ends in, for a caller that sends many shared messages (a
        broadcast group's member) to call directly, then ``send_nowait()`` if it declines:
        this module is not compiled, and a call through it would be an interpreted call per
        member per message."""
        return self.send_shared


@types.coroutine
def _resume(coroutine: Any, waiting_on: Any) -> Generator[Any, Any, None]:
    """Go on with a coroutine stepped once outside any task, now waiting on ``waiting_on``: in
    the task that awaits this, hand it each thing it waits on, as ``await`` would."""
    try:
        while True:
            try:
                value = yield waiting_on
            except GeneratorExit:
                raise
            except BaseException as exc:  # thrown in by the task (a cancellation): pass it on
                waiting_on = coroutine.throw(exc)
            else:
                waiting_on = coroutine.send(value)
    except StopIteration:
        return
    finally:
        coroutine.close()  # abandoned (closed), or over: never left unawaited
