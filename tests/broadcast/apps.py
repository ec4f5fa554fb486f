"""The test apps: a chat that relays text and bytes to a group, served in-process or by the CLI
(``tests.broadcast.apps:relay``, Redis from ``$UVICORN_REDIS_URL``).

The group is the path (``/`` is ``chat``). The client joins on connect, so once its handshake is
answered it is in the group. Text is relayed as text and bytes as bytes, except these commands:
``pid`` (answers ``pid <the serving process>``) and ``rejoin`` (leave the group and join it again
in one handler). A send that fails is answered with ``BroadcastError: <its text>``.
"""

from __future__ import annotations

import os
from typing import Any

from uvicorn.broadcast import BroadcastError, BroadcastMiddleware


async def chat(message: dict[str, Any], channels: dict[str, Any]) -> None:
    kind = message["channel"]
    if kind == "http.request":
        await channels["reply"].send({"status": 200, "content": b"relay"})
        return
    group = message["path"].strip("/") or "chat"
    groups, reply = channels["groups"], channels["reply"]
    if kind == "websocket.connect":
        await groups.send({"group": group, "add": reply.name})
    elif kind == "websocket.receive":
        text = message["text"]
        if text == "pid":
            await reply.send({"text": f"pid {os.getpid()}"})
            return
        if text == "rejoin":
            await groups.send({"group": group, "discard": reply.name})
            await groups.send({"group": group, "add": reply.name})
            await reply.send({"text": "rejoined"})
            return
        relayed = {"text": text} if text is not None else {"bytes": message["bytes"]}
        try:
            await groups.send({"group": group, "send": relayed})
        except BroadcastError as exc:
            await reply.send({"text": f"BroadcastError: {exc}"})


def make_relay(url: str) -> Any:
    return BroadcastMiddleware(chat, url=url)


relay = BroadcastMiddleware(chat)  # for the CLI: Redis at $UVICORN_REDIS_URL
