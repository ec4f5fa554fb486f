"""Groups on the memory backend (SPEC: "Groups"): add, discard and send, combinable in one
message; names that are absent or not local; members that are slow, closed or disconnecting."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.broadcast.fakes import Backpressured, Blocked, Closed, NeedsATask, Recorder
from tests.helpers import UNIT, Watch, running_server
from uvicorn import broadcast_members
from uvicorn.broadcast import BroadCastMiddleware, BroadcastMiddleware, Groups, GroupsChannel
from uvicorn.broadcast_backends import MemoryBackend


def make_groups() -> Groups:
    return Groups(MemoryBackend())


async def join(groups: Groups, group: str, *members: Recorder) -> None:
    for member in members:
        await GroupsChannel(groups, member).send({"group": group, "add": member.name})


def member_names(groups: Groups, group: str) -> set[str]:
    return {member.name for member in groups.groups.get(group, ())}


async def test_add_and_send_in_one_message() -> None:
    groups = make_groups()
    a = Recorder()
    await GroupsChannel(groups, a).send({"group": "g", "add": a.name, "send": {"text": "hi"}})
    assert a.messages == [{"text": "hi"}]


async def test_discard_and_send_in_one_message_reaches_the_others_only() -> None:
    groups = make_groups()
    a, b = Recorder(), Recorder()
    await join(groups, "g", a, b)
    await GroupsChannel(groups, a).send({"group": "g", "discard": a.name, "send": {"text": "bye"}})
    assert b.messages == [{"text": "bye"}]
    assert a.messages == []
    assert member_names(groups, "g") == {b.name}


async def test_add_then_discard_in_one_message_leaves_nothing_behind() -> None:
    groups = make_groups()
    a = Recorder()
    await GroupsChannel(groups, a).send({"group": "g", "add": a.name, "discard": a.name})
    assert groups.groups == {}
    assert groups.members == {}


async def test_a_member_of_several_groups_stays_in_the_others_when_it_leaves_one() -> None:
    groups = make_groups()
    a = Recorder()
    await join(groups, "g", a)
    await join(groups, "h", a)
    await GroupsChannel(groups, a).send({"group": "g", "discard": a.name})
    await GroupsChannel(groups, a).send({"group": "h", "send": {"text": "still here"}})
    assert a.messages == [{"text": "still here"}]
    assert set(groups.groups) == {"h"}


async def test_absent_names_are_fine() -> None:
    groups = make_groups()
    a, b = Recorder(), Recorder()
    channel = GroupsChannel(groups, a)
    await channel.send({"group": "nowhere", "discard": a.name})  # no such group, no such member
    await join(groups, "g", a)
    await channel.send({"group": "g", "discard": b.name})  # not a member
    await channel.send({"group": "other", "discard": a.name})  # a member, not of that group
    await channel.send({"group": "nobody", "send": {"text": "to no one"}})  # an empty group
    assert member_names(groups, "g") == {a.name}
    assert a.messages == []


async def test_names_that_are_not_local_are_ignored() -> None:
    groups = make_groups()
    a = Recorder()
    await join(groups, "g", a)
    channel = GroupsChannel(groups, a)
    await channel.send({"group": "g", "add": "reply!0123456789ab.1"})  # another process's
    await channel.send({"group": "h", "add": "reply!0123456789ab.2"})
    await channel.send({"group": "g", "send": {"text": "hi"}})
    assert member_names(groups, "g") == {a.name}
    assert "h" not in groups.groups
    assert a.messages == [{"text": "hi"}]


async def test_a_local_member_can_be_added_by_name_from_another_connection() -> None:
    groups = make_groups()
    a, b = Recorder(), Recorder()
    await join(groups, "g", a)
    await GroupsChannel(groups, b).send({"group": "h", "add": a.name, "send": {"text": "x"}})
    assert a.messages == [{"text": "x"}]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"add": "reply!x.1"}, ValueError),
        ("not a dict", ValueError),
        ({"group": "", "add": "reply!x.1"}, TypeError),
        ({"group": 1, "add": "reply!x.1"}, TypeError),
        ({"group": "g", "add": 1}, TypeError),
        ({"group": "g", "discard": None}, TypeError),
        ({"group": "g", "send": "text"}, TypeError),
        ({"group": "g", "send": {"text": object()}}, TypeError),
    ],
)
async def test_invalid_messages(message: Any, error: type[Exception]) -> None:
    groups = make_groups()
    with pytest.raises(error):
        await GroupsChannel(groups, Recorder()).send(message)


async def test_a_slow_member_delays_no_one_and_catches_up_in_order() -> None:
    groups = make_groups()
    slow, a, b = Blocked(), Recorder(), Recorder()
    await join(groups, "g", slow, a, b)
    channel = GroupsChannel(groups, a)
    for i in range(10):
        # Each send returns at once, though the slow member's first send is still waiting.
        await asyncio.wait_for(channel.send({"group": "g", "send": {"n": i}}), 1 * UNIT)
    expected = [{"n": i} for i in range(10)]
    assert a.messages == expected
    assert b.messages == expected
    assert slow.messages == []
    slow.release()
    assert await asyncio.wait_for(slow.until(10), 5 * UNIT) == expected


async def test_a_member_too_far_behind_is_closed_and_dropped_from_its_groups(
    caplog: pytest.LogCaptureFixture,
) -> None:
    groups = make_groups()
    slow, a = Backpressured(), Recorder()
    await join(groups, "g", slow, a)
    await join(groups, "h", slow)
    channel = GroupsChannel(groups, a)
    total = broadcast_members.MAX_BACKLOG + 2  # one being sent, MAX_BACKLOG queued, one too many
    with caplog.at_level(logging.WARNING, "uvicorn.error"):
        for i in range(total):
            await channel.send({"group": "g", "send": {"n": i}})
    assert len(a.messages) == total
    assert slow.name not in groups.members
    assert member_names(groups, "g") == {a.name}
    assert "h" not in groups.groups  # out of every group, not only the one it fell behind in
    assert [r.getMessage() for r in caplog.records if slow.name in r.getMessage()] == [
        f"Dropping {slow.name} from its groups: "
        f"more than {broadcast_members.MAX_BACKLOG} messages behind"
    ]
    # The message being sent when it was dropped, then a close: its client learns that it
    # missed messages (a WebSocket closes with 1013, try again later). The backlog is gone.
    assert slow.messages == [{"n": 0}, {"close": 1013}]
    slow.release()
    await channel.send({"group": "g", "send": {"n": "after"}})
    assert a.messages[-1] == {"n": "after"}
    assert slow.messages == [{"n": 0}, {"close": 1013}]


async def test_a_channel_whose_send_needs_a_task_gets_one() -> None:
    """Only the server's channels are started without a task: a channel of the app's own may
    use what needs one (a timeout, current_task())."""
    groups = make_groups()
    own, a = NeedsATask(), Recorder()
    await join(groups, "g", own, a)
    channel = GroupsChannel(groups, a)
    for i in range(5):
        await channel.send({"group": "g", "send": {"n": i}})
    expected = [{"n": i} for i in range(5)]
    assert a.messages == expected  # the server's channels: sent at once
    assert await asyncio.wait_for(own.until(5), 5 * UNIT) == expected  # in order
    assert own.tasks and None not in own.tasks
    assert own.name in groups.members  # not dropped for a RuntimeError


async def test_a_channel_that_needs_a_task_and_falls_behind_is_closed_in_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class SlowOwn(NeedsATask):
        released = asyncio.Event()

        async def send(self, message: dict[str, Any]) -> None:
            await super().send(message)
            if "close" not in message:
                await self.released.wait()

    groups = make_groups()
    slow, a = SlowOwn(), Recorder()
    await join(groups, "g", slow, a)
    channel = GroupsChannel(groups, a)
    await channel.send({"group": "g", "send": {"n": 0}})
    await asyncio.wait_for(slow.until(1), 5 * UNIT)  # its task sent it, and waits
    with caplog.at_level(logging.WARNING, "uvicorn.error"):
        for i in range(1, broadcast_members.MAX_BACKLOG + 2):
            await channel.send({"group": "g", "send": {"n": i}})
    assert slow.name not in groups.members
    await asyncio.wait_for(slow.until(2), 5 * UNIT)
    assert slow.messages == [{"n": 0}, {"close": 1013}]


async def test_a_closed_member_leaves_its_groups_and_breaks_no_one() -> None:
    groups = make_groups()
    closed, a = Closed(), Recorder()
    await join(groups, "g", closed, a)
    await join(groups, "h", closed)
    await GroupsChannel(groups, a).send({"group": "g", "send": {"text": "hi"}})
    assert a.messages == [{"text": "hi"}]
    assert closed.name not in groups.members
    assert member_names(groups, "g") == {a.name}
    assert "h" not in groups.groups


async def test_a_member_that_closes_while_being_sent_to_leaves_its_groups(
    monkeypatch: Any,
) -> None:
    class ClosesLater(Blocked):
        async def send(self, message: dict[str, Any]) -> None:
            self.started += 1
            await self.released.wait()
            raise OSError("connection reset")

    groups = make_groups()
    member, a = ClosesLater(), Recorder()
    await join(groups, "g", member, a)
    channel = GroupsChannel(groups, a)
    await channel.send({"group": "g", "send": {"n": 1}})
    await channel.send({"group": "g", "send": {"n": 2}})  # queued behind the waiting send
    assert member.name in groups.members
    watch = Watch(monkeypatch, (Groups, "evict"))
    member.release()
    await watch.until(lambda: member.name not in groups.members)
    assert a.messages == [{"n": 1}, {"n": 2}]


async def test_a_member_whose_send_fails_otherwise_is_logged_and_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Recorder):
        async def send(self, message: dict[str, Any]) -> None:
            raise ValueError("a bug in the channel")

    groups = make_groups()
    broken, a = Broken(), Recorder()
    await join(groups, "g", broken, a)
    with caplog.at_level(logging.ERROR, "uvicorn.error"):
        await GroupsChannel(groups, a).send({"group": "g", "send": {"text": "hi"}})
    assert a.messages == [{"text": "hi"}]
    assert broken.name not in groups.members
    assert any("Group delivery to" in r.getMessage() for r in caplog.records)


def test_the_alias() -> None:
    assert BroadCastMiddleware is BroadcastMiddleware


# A real server: a WebSocket leaves all its groups by itself when it disconnects.


async def test_a_disconnecting_websocket_leaves_all_its_groups(monkeypatch: Any) -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["channel"] == "websocket.connect":
            for group in ("a", "b", "c"):
                await channels["groups"].send({"group": group, "add": channels["reply"].name})
        elif message["channel"] == "websocket.receive":
            await channels["groups"].send({"group": "a", "send": {"text": message["text"]}})
        # The app does nothing on websocket.disconnect.

    middleware = BroadcastMiddleware(app, url="memory://")
    watch = Watch(monkeypatch, (Groups, "evict"))
    async with running_server(middleware) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with connect(url) as first, connect(url) as second:
            groups = middleware.groups
            assert set(groups.groups) == {"a", "b", "c"}
            assert len(groups.members) == 2
            await first.close()
            await watch.until(lambda: len(groups.members) == 1)
            assert all(len(members) == 1 for members in groups.groups.values())
            await second.send("still chatting")
            assert await asyncio.wait_for(second.recv(), 5 * UNIT) == "still chatting"
        await watch.until(lambda: not groups.members)
        assert groups.groups == {}


async def test_asgi_apps_get_the_groups_through_the_scope_extension(monkeypatch: Any) -> None:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def chat(websocket: WebSocket) -> None:
        groups = websocket.scope["extensions"]["uvicorn.groups"]
        await websocket.accept()
        await groups["send"]({"group": "chat", "add": groups["channel"]})
        await websocket.send_text("joined")
        async for text in websocket.iter_text():
            await groups["send"]({"group": "chat", "send": {"text": text}})
            await groups["send"]({"group": "chat", "send": {"bytes": text.encode()}})

    middleware = BroadcastMiddleware(Starlette(routes=[WebSocketRoute("/", chat)]), url="memory://")
    assert type(middleware).__name__ == "ASGIBroadcastMiddleware"
    watch = Watch(monkeypatch, (Groups, "evict"))
    async with running_server(middleware) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with connect(url) as first, connect(url) as second:
            for client in (first, second):
                assert await asyncio.wait_for(client.recv(), 5 * UNIT) == "joined"
            await first.send("hello")
            for client in (first, second):
                assert await asyncio.wait_for(client.recv(), 5 * UNIT) == "hello"
                assert await asyncio.wait_for(client.recv(), 5 * UNIT) == b"hello"
            groups = middleware.groups
            assert len(groups.members) == 2
        await watch.until(lambda: not groups.members)  # each left when its endpoint returned
        assert groups.groups == {}


async def test_members_get_the_types_other_processes_get_and_a_copy() -> None:
    # Across processes a tuple arrives as a list; a member in the sending process gets the
    # same, and a copy: the app may reuse its message dict once send() returned.
    groups = make_groups()
    a, b = Recorder(), Recorder()
    await join(groups, "g", a, b)
    message: dict[str, Any] = {"text": "hi", "meta": {"at": (1, 2)}, "bytes": b"\x00"}
    await GroupsChannel(groups, a).send({"group": "g", "send": message})
    message["meta"]["at"] = "changed"
    expected = {"text": "hi", "meta": {"at": [1, 2]}, "bytes": b"\x00"}
    assert a.messages == [expected] and b.messages == [expected]
