"""Groups across real server processes: the command line, several instances and workers, one
test Redis; and Redis stopped and restarted in the middle of a chat."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.broadcast.clients import ask, clients, receive, receive_until, spread
from tests.broadcast.conftest import RedisServer
from tests.e2e.process import REPO, CLIProcess

BROADCAST_CHAT = REPO / "examples" / "broadcast_chat"
UNREACHABLE = r"Redis at \S+ is unreachable \(.*\): retrying"
REACHABLE = r"Redis at \S+ is reachable again: groups restored"


@contextlib.contextmanager
def instances(
    target: str, redis: RedisServer | str, *args: str, count: int = 2, cwd: Path = REPO
) -> Iterator[list[CLIProcess]]:
    """``count`` instances of ``uvicorn TARGET --port 0 ARGS``, Redis at ``$UVICORN_REDIS_URL``
    (``redis``'s URL, or ``redis`` itself)."""
    env = {"UVICORN_REDIS_URL": redis if isinstance(redis, str) else redis.url}
    with contextlib.ExitStack() as stack:
        processes = [
            stack.enter_context(CLIProcess(target, "--port", "0", *args, cwd=cwd, env=env))
            for _ in range(count)
        ]
        for process in processes:
            process.port = process.wait_ready()  # type: ignore[attr-defined]
        yield processes


def ports(processes: Sequence[CLIProcess]) -> list[int]:
    return [process.port for process in processes]  # type: ignore[attr-defined]


async def chat_exactly_once(urls: Sequence[str]) -> None:
    """Every client sends one message; every client receives each of them exactly once."""
    async with clients(urls) as chat:
        for i, client in enumerate(chat):
            await client.send(f"message {i}")
        expected = sorted(f"message {i}" for i in range(len(chat)))
        for client in chat:
            assert sorted(await receive(client, len(chat))) == expected
        # Published after all the others, so any duplicate would arrive before it.
        await chat[-1].send("end")
        for client in chat:
            assert await receive_until(client, "end") == ["end"]


@pytest.mark.parametrize("args", [(), ("--workers", "4")], ids=["two-instances", "four-workers"])
async def test_the_readme_example_across_instances_and_workers(
    redis_server: RedisServer, args: tuple[str, ...]
) -> None:
    count = 1 if args else 2
    with instances("app:chat_server", redis_server, *args, count=count, cwd=BROADCAST_CHAT) as up:
        await chat_exactly_once(spread(ports(up), 12))


async def test_clients_spread_over_four_workers_each_receive_every_message_once(
    redis_server: RedisServer,
) -> None:
    with instances("tests.broadcast.apps:relay", redis_server, "--workers", "4", count=1) as up:
        url = f"ws://127.0.0.1:{ports(up)[0]}/workers"
        async with contextlib.AsyncExitStack() as stack:
            pids: list[str] = []
            # Connections go to whichever worker accepts first: open them until several
            # workers serve some (bounded), so that the group spans processes.
            while len(pids) < 8 or (len(set(pids)) < 3 and len(pids) < 40):
                (client,) = await stack.enter_async_context(clients([url]))
                pids.append(await ask(client, "pid"))
            assert len(set(pids)) >= 2, f"every connection went to one worker: {pids}"
        await chat_exactly_once([url] * len(pids))


async def test_binary_messages_round_trip_between_instances(redis_server: RedisServer) -> None:
    payloads: list[bytes | str] = [b"\x00\xff\x80binary", b"", bytes(range(256)) * 40, "text"]
    with instances("tests.broadcast.apps:relay", redis_server) as up:
        async with clients(spread(ports(up), 4, "/binary")) as chat:
            for payload in payloads:
                await chat[0].send(payload)
            for client in chat:
                assert await receive(client, len(payloads)) == payloads


async def test_redis_stopped_and_restarted_in_the_middle_of_a_chat(own_redis: RedisServer) -> None:
    with instances("tests.broadcast.apps:relay", own_redis) as up:
        a, b = ports(up)
        async with clients(spread([a, b], 4)) as chat, contextlib.AsyncExitStack() as later:
            for sender in chat[:2]:  # both instances have sent through Redis
                await sender.send("before")
                for client in chat:
                    assert await receive(client) == ["before"]

            own_redis.stop()
            for process in up:
                await asyncio.to_thread(process.wait_for_line, UNREACHABLE)
            # Sends fail, clearly, naming Redis; again and again, with nothing else logged. (Only
            # through a: b's connection for sending is left as it was before the outage.)
            for client in (chat[0], chat[2], chat[0]):
                await client.send("during")
                (answer,) = await receive(client)
                assert answer.startswith("BroadcastError: cannot send to group 'chat': Redis at "
                                         f"{own_redis.url} is unreachable"), answer  # fmt: skip
            # Joining and leaving still work: membership is local.
            (joined,) = await later.enter_async_context(clients([f"ws://127.0.0.1:{b}/"]))
            await chat[3].close()

            own_redis.start()  # the same port
            for process in up:
                await asyncio.to_thread(process.wait_for_line, REACHABLE)
            members = [*chat[:3], joined]
            # Nothing restarted, nobody joined again: every client still in the group gets the
            # new messages, from either instance, exactly once.
            for sender, text in ((chat[1], "from b"), (chat[0], "from a"), (joined, "joined")):
                await sender.send(text)
                for client in members:
                    assert await receive_until(client, text) == [text]
    for process in up:
        output = process.output()
        assert len(re.findall(UNREACHABLE, output)) == 1, output  # the outage, logged once
        assert len(re.findall(REACHABLE, output)) == 1, output  # and the recovery
