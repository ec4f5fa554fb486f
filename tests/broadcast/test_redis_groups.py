"""Groups over a real Redis, two "instances" in this process (each its own middleware, with its
own Redis connections and origin): the ordering races the CLI tests cannot aim at."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.broadcast.apps import make_relay
from tests.broadcast.clients import ask, clients, receive, receive_until, spread
from tests.broadcast.conftest import RedisServer
from tests.broadcast.fakes import Recorder
from tests.helpers import UNIT, running_server
from uvicorn import broadcast_members, broadcast_redis, broadcast_streams
from uvicorn.broadcast import Groups, GroupsChannel


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


async def test_a_consumer_too_far_behind_is_closed_with_1013(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dropped from its groups, it would otherwise stay connected and wait forever for messages
    # that no longer come: it gets a close (1013, try again later) behind what was written.
    monkeypatch.setattr(broadcast_members, "MAX_BACKLOG", 5)
    async with (
        instances(redis_server.url) as ports,
        clients(spread(ports, 2, "/slow")) as (slow, other),
    ):
        slow.transport.pause_reading()
        big = os.urandom(65536)
        for i in range(100):  # 6.5 MB: the socket buffers fill, then the backlog
            await other.send(b"%d %s" % (i, big))
        assert len(await receive(other, 100)) == 100
        slow.transport.resume_reading()
        received = 0
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await asyncio.wait_for(slow.recv(), 10 * UNIT)
                received += 1
        assert info.value.rcvd is not None and info.value.rcvd.code == 1013
        assert 0 < received < 100


class Proxy:
    """A TCP proxy to Redis that can be cut like a network: new connections are refused and
    the open ones go silent (what is sent is lost; no FIN, no RST) until ``heal()``."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self.cut = False
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers += [writer, upstream_writer]

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                if not self.cut:
                    sink.write(data)
            sink.close()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))

    def partition(self) -> None:
        self.cut = True
        assert self.server is not None
        self.server.close()  # new connections: refused

    async def heal(self) -> None:
        self.cut = False
        await self.start()  # the same port

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()


class LogWatch(logging.Handler):
    """Wakes waiters when a record of ``uvicorn.error`` matches."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.changed.set()

    async def until(self, pattern: str, count: int = 1) -> None:
        async def wait() -> None:
            while sum(1 for m in self.messages if re.search(pattern, m)) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), 10 * UNIT)


async def test_a_silent_connection_to_redis_is_noticed_and_replaced(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The subscription of one instance goes through a network that goes silent: it must not be
    # waited on forever. Its health check notices, it reconnects once the network is back, and
    # its members get what the other instance sends.
    monkeypatch.setattr(broadcast_streams, "HEALTH_CHECK", 0.2 * UNIT)
    proxy = Proxy(redis_server.port)
    await proxy.start()
    caplog.set_level(logging.INFO, "uvicorn.error")  # the recovery is logged at INFO
    watch = LogWatch()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(watch)
    try:
        async with (
            instances(f"redis://127.0.0.1:{proxy.port}", 1) as (behind,),
            instances(redis_server.url, 1) as (direct,),
            clients([f"ws://127.0.0.1:{behind}/cut", f"ws://127.0.0.1:{direct}/cut"]) as chat,
        ):
            near = chat[1]
            await near.send("before")
            for client in chat:
                assert await receive(client) == ["before"]
            proxy.partition()
            await watch.until("is unreachable .*no answer within")
            await proxy.heal()
            await watch.until("is reachable again")
            await near.send("after")
            for client in chat:
                assert await receive(client) == ["after"]
    finally:
        logger.removeHandler(watch)
        proxy.close()
    assert sum("is unreachable" in m for m in watch.messages) == 1, watch.messages


async def test_asgi_endpoints_on_two_instances_share_groups(redis_server: RedisServer) -> None:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    from uvicorn.broadcast import BroadcastMiddleware

    async def chat(websocket: WebSocket) -> None:
        groups = websocket.scope["extensions"]["uvicorn.groups"]
        await groups["send"]({"group": "asgi", "add": groups["channel"]})
        await websocket.accept()
        async for data in websocket.iter_bytes():
            await groups["send"]({"group": "asgi", "send": {"bytes": data}})

    async with contextlib.AsyncExitStack() as stack:
        ports = []
        for _ in range(2):
            app = BroadcastMiddleware(Starlette(routes=[WebSocketRoute("/", chat)]),
                                      url=redis_server.url)  # fmt: skip
            stack.push_async_callback(app.close)
            ports.append((await stack.enter_async_context(running_server(app))).port)
        chat_clients = await stack.enter_async_context(clients(spread(ports, 4)))
        await chat_clients[1].send(b"\x00from an ASGI endpoint\xff")
        for client in chat_clients:
            assert await receive(client) == [b"\x00from an ASGI endpoint\xff"]


async def test_local_and_remote_members_get_the_same_types(redis_server: RedisServer) -> None:
    here = Groups(broadcast_redis.RedisBackend(redis_server.url, "t:"))
    there = Groups(broadcast_redis.RedisBackend(redis_server.url, "t:"))
    local, remote = Recorder(), Recorder()
    try:
        await GroupsChannel(here, local).send({"group": "g", "add": local.name})
        await GroupsChannel(there, remote).send({"group": "g", "add": remote.name})
        message = {"n": (1, (2, 3)), "b": b"\xff", "d": {1: None}}
        await GroupsChannel(here, local).send({"group": "g", "send": message})
        await asyncio.wait_for(remote.until(1), 5 * UNIT)
        expected = {"n": [1, [2, 3]], "b": b"\xff", "d": {1: None}}
        assert local.messages == remote.messages == [expected]
    finally:
        await here.backend.close()
        await there.backend.close()
