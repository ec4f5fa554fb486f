"""WebSocket clients of the relay chat, for the broadcast tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import UNIT


@contextlib.asynccontextmanager
async def clients(urls: Sequence[str]) -> AsyncIterator[list[ClientConnection]]:
    """One client per url, connected concurrently; each is in its group once this yields."""
    async with contextlib.AsyncExitStack() as stack:
        connections = await asyncio.wait_for(
            asyncio.gather(*(stack.enter_async_context(connect(url)) for url in urls)),
            10 * UNIT,
        )
        yield list(connections)


async def receive(client: ClientConnection, count: int = 1) -> list[Any]:
    return [await asyncio.wait_for(client.recv(), 10 * UNIT) for _ in range(count)]


async def receive_until(client: ClientConnection, last: Any) -> list[Any]:
    """Everything up to and including ``last``."""
    received: list[Any] = []
    while not received or received[-1] != last:
        received.append(await asyncio.wait_for(client.recv(), 10 * UNIT))
    return received


async def ask(client: ClientConnection, command: str) -> str:
    """Send a command the relay answers to this client only, and return the answer."""
    await client.send(command)
    answer = await asyncio.wait_for(client.recv(), 10 * UNIT)
    assert isinstance(answer, str), answer
    return answer


def spread(ports: Sequence[int], count: int, path: str = "/") -> list[str]:
    """``count`` urls, round-robin over the instances on ``ports``."""
    return [f"ws://127.0.0.1:{ports[i % len(ports)]}{path}" for i in range(count)]
