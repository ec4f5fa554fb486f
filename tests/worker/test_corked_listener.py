"""Connections accepted from a corked listener (TCP_CORK, which the master sets on the
plain-TCP listeners it binds, and which accepted sockets inherit: supervisor/sockets.py) start
corked. A response that ends its connection then leaves with the FIN without a setsockopt() of
its own; every other first write uncorks the socket before it, or the kernel would hold those
bytes up to 200 ms (transport.py). Checked on the kernel's own state of the server's socket,
read through a descriptor of this process (the server runs in it), once the client has what it
waited for: a socket still corked there would have held it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.helpers import UNIT, RawClient, get, listen, only_connection, running_server
from tests.worker.h2client import H2Client
from tests.worker.test_close_segment import BODY, Recorded, asgi, messaging
from uvicorn.config_values import BindSpec
from uvicorn.supervisor.sockets import Listeners
from uvicorn.worker.server import _corked

INTERFACES = pytest.mark.parametrize("app", [messaging, asgi], ids=["messaging", "asgi"])


@contextlib.contextmanager
def server_side(client: tuple[str, int]) -> Iterator[socket.socket]:
    """The server's socket of the connection whose client end is bound to ``client``: a
    duplicate of the server's descriptor, found among this process's."""
    found = None
    for name in os.listdir("/proc/self/fd"):
        try:
            fd = os.dup(int(name))
        except OSError:
            continue
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            continue
        with contextlib.suppress(OSError):
            if sock.family == socket.AF_INET and sock.getpeername() == client:
                found = sock
                break
        sock.close()
    if found is None:
        raise AssertionError(f"no socket of this process is connected to {client}")
    with found:
        yield found


def corked(client: tuple[str, int]) -> int:
    with server_side(client) as sock:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)


def local(writer: asyncio.StreamWriter) -> tuple[str, int]:
    address: tuple[str, int] = writer.get_extra_info("sockname")
    return address


def test_the_master_corks_the_plain_tcp_listeners_it_binds(tmp_path: Path) -> None:
    specs = [BindSpec("tcp", "127.0.0.1", 0), BindSpec("unix", path=str(tmp_path / "s"))]
    listeners = Listeners(specs, 16, cork=True)
    try:
        tcp, unix = listeners.shared
        assert tcp.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 1
        assert unix.family == socket.AF_UNIX  # (no TCP options)
    finally:
        listeners.close()
    listeners = Listeners(specs[:1], 16, reuse_port=True, cork=True)
    try:
        sockets, own = listeners.for_worker()  # a worker's own SO_REUSEPORT socket
        assert [s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) for s in sockets] == [1]
        for sock in own:
            sock.close()
    finally:
        listeners.close()
    listeners = Listeners(specs[:1], 16)  # TLS: uvloop writes the handshake, never uncorked
    try:
        assert listeners.shared[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 0
    finally:
        listeners.close()


def test_the_worker_asks_the_listener(tmp_path: Path) -> None:
    # Whoever corked it: asked of the socket, not of the settings.
    corked_one, plain = listen(cork=True), listen(cork=False)
    unix = socket.socket(socket.AF_UNIX)
    try:
        unix.bind(str(tmp_path / "s"))
        assert [_corked(corked_one), _corked(plain), _corked(unix)] == [True, False, False]
    finally:
        for sock in (corked_one, plain, unix):
            sock.close()


@INTERFACES
async def test_a_closing_response_leaves_corked_with_no_setsockopt(app: Any) -> None:
    async with running_server(app, lifespan="off") as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        client = RawClient(reader, writer)
        try:
            state = server.server.state
            assert state is not None
            for _ in range(100):  # accepted by this loop, a turn or two later (no clock)
                if state.connections:
                    break
                await asyncio.sleep(0)
            conn = only_connection(server)
            assert conn.corked is True
            log: list[str] = []
            conn.transport = Recorded(conn.transport, log)
            await client.send(get("/", "connection: close"))
            raw = await client.read_until_closed()
        finally:
            client.close()
    assert log == ["write last (corked)", "close"]  # no cork call, no uncork
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(BODY)


@INTERFACES
async def test_a_kept_alive_connection_is_uncorked_by_its_first_response(app: Any) -> None:
    async with running_server(app, lifespan="off") as server:
        client = await server.connect()
        try:
            await client.send(get())
            assert (await client.read_response()).body == BODY
            assert corked(local(client.writer)) == 0
            await client.send(get())  # and stays so
            assert (await client.read_response()).body == BODY
            assert corked(local(client.writer)) == 0
        finally:
            client.close()


async def test_a_streamed_response_and_100_continue_leave_at_once() -> None:
    go_on = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()  # (after the 100 Continue, the body)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await go_on.wait()
        await send({"type": "http.response.body", "body": b"last"})

    async with running_server(app, lifespan="off") as server:
        client = await server.connect()
        try:
            await client.send(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n"
                              b"expect: 100-continue\r\n\r\n")  # fmt: skip
            line = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5 * UNIT)
            assert line.startswith(b"HTTP/1.1 100 ")
            assert corked(local(client.writer)) == 0
            await client.send(b"hi")
            head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5 * UNIT)
            assert head.startswith(b"HTTP/1.1 200 ")
            chunk = await asyncio.wait_for(client.reader.readuntil(b"first\r\n"), 5 * UNIT)
            assert chunk.endswith(b"first\r\n")
            go_on.set()
            tail = await asyncio.wait_for(client.reader.readuntil(b"0\r\n\r\n"), 5 * UNIT)
            assert b"last" in tail
        finally:
            client.close()


async def test_a_websocket_is_uncorked_for_its_handshake() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["channel"] == "websocket.receive":
            await channels["reply"].send({"text": message["text"]})

    async with (
        running_server(app, lifespan="off") as server,
        connect(f"ws://127.0.0.1:{server.port}/") as websocket,
    ):
        assert corked(websocket.transport.get_extra_info("sockname")) == 0
        await websocket.send("echo")
        assert await asyncio.wait_for(websocket.recv(), 5 * UNIT) == "echo"


@pytest.mark.parametrize("how", ["prior knowledge", "h2c upgrade"])
async def test_http2_is_uncorked_for_its_first_frames(how: str) -> None:
    async with running_server(messaging, lifespan="off") as server:
        if how == "h2c upgrade":
            client, head = await H2Client.upgrade(server.port)
            assert head.startswith(b"HTTP/1.1 101 ")
            stream = 1
        else:
            client = await H2Client.open(server.port)
            stream = client.request("/")
            client.flush()
        try:
            result = await client.response(stream)
            assert result.status == 200 and bytes(result.data) == BODY
            assert corked(local(client.writer)) == 0
        finally:
            client.close()


@pytest.mark.parametrize("copy", [True, False], ids=["copied", "sendfile"])
async def test_a_file_response_is_uncorked_before_its_bytes_go_past_the_transport(
    copy: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from uvicorn.worker import files

    monkeypatch.setattr(files, "COPY_TO_LOCAL_CLIENTS", copy)
    path = tmp_path / "file"
    path.write_bytes(b"x" * 100_000)

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200, "file": str(path)})

    async with running_server(app, lifespan="off") as server:
        client = await server.connect()
        try:
            await client.send(get())
            assert (await client.read_response()).body == path.read_bytes()
            assert corked(local(client.writer)) == 0
        finally:
            client.close()
