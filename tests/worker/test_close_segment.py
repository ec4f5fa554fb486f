"""A response that ends its connection leaves with the FIN: on plain TCP the connection corks
the socket (TCP_CORK) just before it writes the last bytes and closes, so that close(2) sends
them and the FIN in one segment (transport.py, ``close_corked``). Checked on the calls the
connection makes to its real transport, in order, and on the kernel's state of the socket at
each write: corked only where the close follows at once (the kernel would otherwise hold the
bytes up to 200 ms). Here on a connection that a first response uncorked; one still corked
since accept: test_corked_listener.py."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import RawClient, get, only_connection, running_server, tls_certificate

BODY = b"the last bytes"


class Recorded:
    """The connection's transport, passed through, with the calls that matter logged (not an
    asyncio.Transport, whose methods would not reach ``__getattr__``): each write says whether
    the kernel held the socket corked when the bytes went in."""

    def __init__(self, real: Any, log: list[str]) -> None:
        self.real, self.log = real, log

    def write(self, data: Any) -> None:
        sock = self.real.get_extra_info("socket")
        corked = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)
        self.log.append(("write last" if bytes(data).endswith(BODY) else "write")
                        + (" (corked)" if corked else ""))  # fmt: skip
        self.real.write(data)

    def close(self) -> None:
        self.log.append("close")
        self.real.close()

    def __getattr__(self, name: str) -> Any:  # get_extra_info, is_closing, pause_reading...
        return getattr(self.real, name)


async def messaging(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await channels["reply"].send({"status": 200, "content": BODY})


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": BODY})


@contextlib.asynccontextmanager
async def watched(app: Any, tls: ssl.SSLContext | None = None,
                  **options: Any) -> AsyncIterator[tuple[RawClient, list[str]]]:  # fmt: skip
    """A client whose connection served one keep-alive request (so that it is there to watch),
    and the calls logged on that connection's transport from then on."""
    log: list[str] = []
    async with running_server(app, lifespan="off", **options) as server:
        client = RawClient(*await asyncio.open_connection("127.0.0.1", server.port, ssl=tls))
        try:
            await client.send(get())
            assert (await client.read_response()).body == BODY
            conn = only_connection(server)
            conn.transport = Recorded(conn.transport, log)
            yield client, log
        finally:
            client.close()


async def exchange(app: Any, *headers: str, tls: ssl.SSLContext | None = None,
                   body: bytes = b"", **options: Any) -> tuple[list[str], bytes]:  # fmt: skip
    """A second request with ``headers``, read until the server closes or for 1 response: (the
    calls logged for it, what the client read)."""
    async with watched(app, tls, **options) as (client, log):
        await client.send(get("/", *headers, method="POST" if body else "GET") + body)
        if any(h.lower() == "connection: close" for h in headers):
            raw = await client.read_until_closed()
        else:
            raw = (await client.read_response()).body
        return list(log), raw  # (not the server's shutdown after)


@pytest.mark.parametrize("app", [messaging, asgi], ids=["messaging", "asgi"])
async def test_the_last_bytes_leave_with_the_fin(app: Any) -> None:
    log, raw = await exchange(app, "connection: close")
    assert log == ["write last (corked)", "close"]
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(BODY)
    assert b"connection: close\r\n" in raw.lower()


@pytest.mark.parametrize("app", [messaging, asgi], ids=["messaging", "asgi"])
async def test_a_kept_alive_connection_is_never_corked(app: Any) -> None:
    log, raw = await exchange(app)
    assert log == ["write last"] and raw == BODY


async def test_an_app_that_goes_on_after_its_response_does_not_hold_it() -> None:
    # The last bytes of a closing connection wait in the queue only until the loop turns: an
    # app still running after its reply (work after the response) has them sent meanwhile,
    # uncorked, and its client reads them before the app returns.
    read = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200, "content": BODY})
        if message["headers"] and any(v == b"close" for _, v in message["headers"]):
            await read.wait()

    async with watched(app) as (client, log):
        await client.send(get("/", "connection: close"))
        response = await client.read_response()
        assert response.body == BODY and log == ["write last"]
        read.set()
        assert (await client.read_until_closed()).endswith(BODY)  # and nothing after it
        assert log == ["write last", "close"]


async def test_a_bad_request_is_never_corked() -> None:
    # The rest of what the client sent stays unread: close(2) then resets the connection, and
    # would drop what a cork still held. Written at once, the answer is on its way first.
    async with watched(messaging) as (client, log):
        await client.send(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
        raw = await client.read_until_closed()
        assert raw.split(BODY, 1)[1].startswith(b"HTTP/1.1 400 ")  # (after the first response)
        assert log == ["write", "close"]


@pytest.mark.parametrize("app", [messaging, asgi], ids=["messaging", "asgi"])
async def test_a_request_body_left_unread_is_never_corked(app: Any) -> None:
    # The app answers before the body has all come: the connection closes with it unread.
    log, raw = await exchange(app, "connection: close", "content-length: 100000", body=b"x" * 10)
    assert log == ["write last", "close"]
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(BODY)


async def test_tls_is_never_corked(tmp_path: Path) -> None:
    # (The TLS transport's close sends close_notify and may wait for the peer's: the bytes
    # would be held meanwhile.)
    options = tls_certificate(tmp_path)
    context = ssl.create_default_context(cafile=options["ssl_certfile"])
    log, raw = await exchange(messaging, "connection: close", tls=context, **options)
    assert not any("corked" in entry for entry in log) and "close" in log
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(BODY)
