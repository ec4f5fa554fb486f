"""A peer of benchmarks/fanout.py: the same chat (every text a client sends goes to every
client) written with Starlette and the ``broadcaster`` library, as its README does, to be served
by the published uvicorn from a virtual environment of its own (never the project's):

    cd benchmarks && /tmp/uvicorn-bench-baseline/bin/uvicorn broadcaster_chat:app --workers 4

Redis at ``$REDIS_URL`` (default redis://localhost:6379).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import anyio
from broadcaster import Broadcast
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

broadcast = Broadcast(os.environ.get("REDIS_URL", "redis://localhost:6379"))


async def chatroom_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    async with anyio.create_task_group() as task_group:

        async def run_chatroom_ws_receiver() -> None:
            await chatroom_ws_receiver(websocket)
            task_group.cancel_scope.cancel()

        task_group.start_soon(run_chatroom_ws_receiver)
        await chatroom_ws_sender(websocket)


async def chatroom_ws_receiver(websocket: WebSocket) -> None:
    async for message in websocket.iter_text():
        await broadcast.publish(channel="chatroom", message=message)


async def chatroom_ws_sender(websocket: WebSocket) -> None:
    async with broadcast.subscribe(channel="chatroom") as subscriber:
        async for event in subscriber:
            await websocket.send_text(event.message)


async def keep_subscribed() -> None:
    # A workaround: broadcaster 0.3.1 loses subscribers when the first ones of a process
    # subscribe at the same time (each replaces the others' queue while Redis confirms), as
    # clients connecting together do. A subscriber held from startup keeps the channel's set.
    async with broadcast.subscribe(channel="chatroom") as subscriber:
        async for _ in subscriber:
            pass


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await broadcast.connect()
    keeper = asyncio.ensure_future(keep_subscribed())
    try:
        yield
    finally:
        keeper.cancel()
        await broadcast.disconnect()


app = Starlette(routes=[WebSocketRoute("/", chatroom_ws)], lifespan=lifespan)
