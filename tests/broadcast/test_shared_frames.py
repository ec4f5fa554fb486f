"""A group's message is framed once for all the members of a process that can take the same
bytes (``channels.Shared``), with every guarantee of one member's delivery kept: each member
gets every message in order, one with permessage-deflate gets its own compressed frames, a
closing connection gets no data frame, and a member that does not read is closed with 1013 and
dropped. Real servers, real clients, the memory backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Opcode

from tests.broadcast.apps import make_relay
from tests.helpers import UNIT, running_server
from tests.worker.wshelpers import RawWebSocket
from uvicorn import broadcast_members
from uvicorn.broadcast import BroadcastMiddleware, Groups
from uvicorn.compiled import COMPILED
from uvicorn.worker import websocket

WAIT = 5 * UNIT


async def _chat_asgi(scope: Any, receive: Any, send: Any) -> None:
    """The relay's group, joined through the ASGI ``uvicorn.groups`` extension."""
    groups = scope["extensions"]["uvicorn.groups"]
    await receive()
    await send({"type": "websocket.accept"})
    await groups["send"]({"group": "chat", "add": groups["channel"]})
    await send({"type": "websocket.send", "text": "joined"})
    while (await receive())["type"] == "websocket.receive":
        pass


def framings(monkeypatch: Any) -> list[dict[str, Any]] | None:
    """The group messages framed for sharing, one entry per framing. None in the build compiled
    by mypyc: its callers of shared_frame() call it directly, past any patch (the deliveries
    are checked all the same; the pure-Python build counts the framings)."""
    if COMPILED:
        return None
    made: list[dict[str, Any]] = []
    original = websocket.shared_frame

    def counted(message: dict[str, Any]) -> bytes:
        made.append(message)
        return original(message)

    monkeypatch.setattr(websocket, "shared_frame", counted)
    return made


async def recv(client: ClientConnection) -> Any:
    return await asyncio.wait_for(client.recv(), WAIT)


@pytest.mark.parametrize("interface", ["messaging", "asgi"])
async def test_one_framing_per_message_and_every_member_gets_all_in_order(
    monkeypatch: Any, interface: str
) -> None:
    made = framings(monkeypatch)
    middleware: Any = (
        make_relay("memory://") if interface == "messaging"
        else BroadcastMiddleware(_chat_asgi, url="memory://")
    )  # fmt: skip
    async with running_server(middleware) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with (
            connect(url, compression=None) as plain1,
            connect(url, compression=None) as plain2,
            connect(url, compression=None) as plain3,
            connect(url) as deflating,  # websockets' client offers permessage-deflate
        ):
            members = [plain1, plain2, plain3, deflating]
            if interface == "asgi":
                for client in members:
                    assert await recv(client) == "joined"
            assert deflating.protocol.extensions and not plain1.protocol.extensions
            groups: Groups = middleware.groups
            assert len(groups.members) == 4
            sent: list[Any] = []
            for i in range(50):
                message = f"message {i} " + "x" * i * 7 if i % 2 else f"{i}".encode() * 100
                sent.append(message)
                key = "text" if isinstance(message, str) else "bytes"
                await groups.send("chat", {key: message})
            for client in members:
                assert [await recv(client) for _ in sent] == sent
            # One framing per message for the three plain members; the deflating member
            # compressed its own (it never asked for the shared frame).
            assert made is None or len(made) == len(sent)


async def test_a_closing_member_gets_no_data_frame_and_leaves_its_groups(monkeypatch: Any) -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        kind, groups, reply = message["channel"], channels["groups"], channels["reply"]
        if kind == "websocket.connect":
            await groups.send({"group": "chat", "add": reply.name})
        elif kind == "websocket.receive" and message["text"] == "close me":
            await reply.send({"close": 1000})  # our close frame: the connection is CLOSING

    middleware = BroadcastMiddleware(app, url="memory://")
    async with running_server(middleware) as server:
        groups: Groups = middleware.groups
        async with connect(f"ws://127.0.0.1:{server.port}/", compression=None) as other:
            # (The app joins in its connect handler: a member once its handshake is answered.)
            assert len(groups.members) == 1
            raw = await RawWebSocket.connect(server.port)
            await raw.handshake()
            assert len(groups.members) == 2
            raw.send_text("close me")
            close = await raw.next_frame()
            assert close is not None and close.opcode is Opcode.CLOSE
            # The raw client has not answered: the server's side is CLOSING.
            await groups.send("chat", {"text": "after the close"})
            assert await recv(other) == "after the close"
            assert len(groups.members) == 1  # the closing member was dropped
            raw.flush()  # our close answer: the server closes the TCP connection
            assert await raw.until_closed() == []  # no data frame after the close frame


async def test_a_member_that_does_not_read_is_closed_with_1013_after_what_it_was_sent(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(broadcast_members, "MAX_BACKLOG", 3)
    made = framings(monkeypatch)
    middleware = make_relay("memory://")
    async with running_server(middleware) as server:
        groups: Groups = middleware.groups
        async with connect(f"ws://127.0.0.1:{server.port}/", compression=None) as reader:
            # (The relay joins in its connect handler: a member once its handshake is answered.)
            (fast_name,) = groups.members
            slow = await RawWebSocket.connect(server.port, small=True)  # does not read
            await slow.handshake()
            (slow_name,) = set(groups.members) - {fast_name}
            sent = 0
            while slow_name in groups.members and sent < 2000:
                payload = sent.to_bytes(4, "big") * 16384  # 64 KiB
                await groups.send("chat", {"bytes": payload})
                sent += 1
                assert await recv(reader) == payload  # the reader keeps up: never held back
            assert slow_name not in groups.members, "the slow member was never dropped"
            # The slow member's backlog aside, shared frames.
            assert made is None or len(made) == sent
            frames = await slow.until_closed(answer=True)
            *data, close = frames
            assert close.opcode is Opcode.CLOSE and slow.protocol.close_rcvd is not None
            assert slow.protocol.close_rcvd.code == 1013
            # What it got is the first messages, in order, none missing.
            assert [int.from_bytes(f.data[:4], "big") for f in data] == list(range(len(data)))
            assert 0 < len(data) < sent
