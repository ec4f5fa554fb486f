"""Groups over a real Redis, two "instances" in this process (each its own middleware, with its
own Redis connections and origin): the ordering races the CLI tests cannot aim at."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import connect

from tests.broadcast.apps import make_relay
from tests.broadcast.clients import ask, clients, receive, receive_until, spread
from tests.broadcast.conftest import RedisServer
from tests.helpers import UNIT, running_server


@contextlib.asynccontextmanager
async def instances(url: str, count: int = 2, **options: Any) -> AsyncIterator[list[int]]:
    async with contextlib.AsyncExitStack() as stack:
        ports = []
        for _ in range(count):
            app = make_relay(url)
            stack.push_async_callback(app.close)
            server = await stack.enter_async_context(running_server(app, **options))
            ports.append(server.port)
        yield ports


async def test_every_client_receives_every_message_exactly_once(redis_server: RedisServer) -> None:
    async with instances(redis_server.url) as ports, clients(spread(ports, 10, "/once")) as chat:
        for i, client in enumerate(chat):
            await client.send(f"m{i}")
        expected = {f"m{i}" for i in range(len(chat))}
        for client in chat:
            received = await receive(client, len(chat))
            assert set(received) == expected
        await chat[0].send("end")
        for client in chat:
            assert await receive_until(client, "end") == ["end"]  # no duplicate came first


async def test_clients_joining_together_are_all_subscribed_when_their_handshake_ends(
    redis_server: RedisServer,
) -> None:
    # Several joins to one group at once on a fresh instance: the first starts the Redis
    # subscription, and the others must not be answered before it is confirmed either. A
    # message sent as soon as any of them is answered reaches it.
    for attempt in range(5):
        async with instances(redis_server.url) as (a, b):
            path = f"/together{attempt}"
            async with connect(f"ws://127.0.0.1:{a}{path}") as sender:
                await sender.send("warm-up")  # the sender's instance has its Redis connection
                assert await receive(sender) == ["warm-up"]
                pending = {
                    asyncio.ensure_future(connect(f"ws://127.0.0.1:{b}{path}")) for _ in range(5)
                }
                try:
                    done, pending = await asyncio.wait(
                        pending, timeout=10 * UNIT, return_when=asyncio.FIRST_COMPLETED
                    )
                    await sender.send("first")
                    for task in done:
                        assert await receive(task.result()) == ["first"]
                finally:
                    for task in pending:
                        task.cancel()
                    for task in done | pending:
                        with contextlib.suppress(BaseException):
                            await (await task).close()


async def test_leaving_and_joining_again_at_once_keeps_the_subscription(
    redis_server: RedisServer,
) -> None:
    async with instances(redis_server.url) as ports, clients(spread(ports, 2, "/re")) as chat:
        sender, member = chat
        # The only local member leaves and joins again: the unsubscription must not land after
        # the new subscription.
        assert await ask(member, "rejoin") == "rejoined"
        await sender.send("after rejoin")
        assert await receive(member) == ["after rejoin"]
        assert await receive(sender) == ["after rejoin"]


async def test_binary_messages_stay_bytes_across_instances(redis_server: RedisServer) -> None:
    payloads = [b"\x00\x01\xff\xfe", b"", bytes(range(256)) * 64, "text stays text"]
    async with instances(redis_server.url) as ports, clients(spread(ports, 4, "/bin")) as chat:
        for payload in payloads:
            await chat[1].send(payload)
        for client in chat:
            assert await receive(client, len(payloads)) == payloads


async def test_a_slow_consumer_does_not_delay_the_others(redis_server: RedisServer) -> None:
    async with instances(redis_server.url) as ports:
        urls = spread(ports, 4, "/slow")
        async with clients(urls) as chat:
            slow = chat[0]
            slow.transport.pause_reading()  # its server-side buffers fill up
            big = os.urandom(65536)  # incompressible, whatever the WebSocket extensions
            for i in range(100):  # 6.5 MB to each member: far more than the socket buffers
                await chat[1].send(b"%d %s" % (i, big))
            for client in chat[1:]:
                received = await receive(client, 100)
                assert [m.split(b" ", 1)[0] for m in received] == [b"%d" % i for i in range(100)]
            slow.transport.resume_reading()
            first = await receive(slow)
            assert first[0].startswith(b"0 ")
            slow.transport.abort()  # not a closing handshake behind megabytes it will not read
