"""Channel names (SPEC.md, "Channels"): unique across every process and host of a deployment;
and ``SendsNowait``, how the server's channels let the broadcast groups send without a task.

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
        more, or to close to abandon."""
        coroutine = self.send(message)
        try:
            waiting_on = coroutine.send(None)
        except StopIteration:
            return None
        except BaseException:
            coroutine.close()
            raise
        return _resume(coroutine, waiting_on)


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
