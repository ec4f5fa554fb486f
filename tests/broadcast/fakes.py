"""Reply channels for the Groups unit tests: one that records, two whose client does not read,
one that is closed; all start their sends without a task, as the server's channels do
(``SendsNowait``). And one that needs a task of its own, as an app's own channel may."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.channels import SendsNowait, channel_names
from uvicorn.exceptions import ClientDisconnected


class Recorder(SendsNowait):
    """A reply channel that keeps what it is sent, and wakes waiters on each message."""

    def __init__(self) -> None:
        self.name = channel_names.new("reply")
        self.messages: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self._changed.set()

    async def until(self, count: int) -> list[dict[str, Any]]:
        while len(self.messages) < count:
            self._changed.clear()
            await self._changed.wait()
        return self.messages


class Blocked(Recorder):
    """A member whose client does not read: each send waits until ``release()``."""

    def __init__(self) -> None:
        super().__init__()
        self.released = asyncio.Event()
        self.started = 0

    async def send(self, message: dict[str, Any]) -> None:
        self.started += 1
        await self.released.wait()
        await super().send(message)

    def release(self) -> None:
        self.released.set()


class Backpressured(Blocked):
    """A member whose client does not read, as the server's reply channels behave: each
    message is written at once, then the send waits until ``release()`` (back-pressure)."""

    async def send(self, message: dict[str, Any]) -> None:
        self.started += 1
        await Recorder.send(self, message)
        await self.released.wait()


class Closed(Recorder):
    """A member whose connection has closed."""

    async def send(self, message: dict[str, Any]) -> None:
        raise ClientDisconnected("the WebSocket is closed")


class NeedsATask(Recorder):
    """A channel of the app's own whose send() needs to run in a task: it bounds its wait with
    a timeout (``asyncio.wait_for`` needs the current task from Python 3.12) and looks at
    ``current_task()``. It offers no ``send_nowait()``."""

    send_nowait = None  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[asyncio.Task[Any] | None] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.tasks.append(asyncio.current_task())
        await asyncio.wait_for(asyncio.sleep(0), 1)
        await super().send(message)
