"""What the app receives: the messaging interface's request message and channels, and the ASGI
``http`` scope (ASGI 3 and ASGI 2) built from the same request."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from typing import Any

from tests.helpers import UNIT, get, running_server
from uvicorn.config import Config
from uvicorn.worker.server import Server
from uvicorn.worker.state import ServerState, shared_local_address

OK = {"status": 200, "content": b"ok"}


def capturing_app() -> tuple[Any, list[tuple[dict[str, Any], dict[str, Any]]]]:
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        calls.append((message, dict(channels)))
        await channels["reply"].send(OK)

    return app, calls


def asgi_capturing_app() -> tuple[Any, list[dict[str, Any]]]:
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app, scopes


REQUEST = (
    b"GET /caf%C3%A9/a%20b/%FF%FE?x=%20y&z=%FF HTTP/1.1\r\n"
    b"Host: example.org\r\n"
    b"X-Dup: one\r\n"
    b"Content-Type: text/plain\r\n"
    b"x-dup: two\r\n"
    b"\r\n"
)


async def test_request_message_keys_and_types() -> None:
    app, calls = capturing_app()
    async with running_server(app) as server:
        response = await server.request(REQUEST)
        assert response.status == 200
    ((message, channels),) = calls
    assert set(message) == {
        "channel",
        "http_version",
        "method",
        "scheme",
        "path",
        "raw_path",
        "query_string",
        "root_path",
        "headers",
        "body",
        "client",
        "server",
    }
    assert message["channel"] == "http.request"
    assert message["http_version"] == "1.1"
    assert message["method"] == "GET"
    assert message["scheme"] == "http"
    # Percent-decoded, then UTF-8 decoded; invalid UTF-8 becomes replacement characters.
    assert message["path"] == "/café/a b/\ufffd\ufffd"
    assert message["raw_path"] == b"/caf%C3%A9/a%20b/%FF%FE"
    assert message["query_string"] == b"x=%20y&z=%FF"
    assert message["root_path"] == ""
    # Names lower-cased, order and duplicates kept.
    assert message["headers"] == [
        [b"host", b"example.org"],
        [b"x-dup", b"one"],
        [b"content-type", b"text/plain"],
        [b"x-dup", b"two"],
    ]
    for pair in message["headers"]:
        assert type(pair) is list and all(type(item) is bytes for item in pair)
    assert message["body"] == b""
    client, server_address = message["client"], message["server"]
    assert type(client) is list and client[0] == "127.0.0.1" and type(client[1]) is int
    assert server_address == ["127.0.0.1", server.port]
    # A request complete in its head has no body channel.
    assert set(channels) == {"reply"}


async def test_query_string_absent_and_http_10_and_methods() -> None:
    app, calls = capturing_app()
    async with running_server(app) as server:
        await server.request(b"GET /plain HTTP/1.0\r\n\r\n")
        await server.request(get("/x?", method="DELETE"))
        await server.request(get("/raw%2Fslash"))
    (m1, _), (m2, _), (m3, _) = calls
    assert m1["http_version"] == "1.0"
    assert m1["query_string"] == b"" and m1["path"] == "/plain"
    assert m2["method"] == "DELETE" and m2["query_string"] == b""
    # %2F is decoded in path and kept in raw_path.
    assert m3["path"] == "/raw/slash" and m3["raw_path"] == b"/raw%2Fslash"


async def test_root_path_and_absolute_form_target() -> None:
    app, calls = capturing_app()
    async with running_server(app, root_path="/mount") as server:
        await server.request(get("/inner?q=1"))
        await server.request(
            b"GET http://example.org/abs?k=v HTTP/1.1\r\nHost: example.org\r\n\r\n"
        )
    (m1, _), (m2, _) = calls
    # The messaging interface keeps the path relative to the mount point.
    assert m1["root_path"] == "/mount" and m1["path"] == "/inner"
    assert m2["path"] == "/abs" and m2["raw_path"] == b"/abs" and m2["query_string"] == b"k=v"


async def test_body_sent_with_the_head_is_in_the_message() -> None:
    app, calls = capturing_app()
    async with running_server(app) as server:
        response = await server.request(
            b"POST /p HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n\r\nhello"
        )
        assert response.status == 200
    ((message, channels),) = calls
    assert message["body"] == b"hello" and type(message["body"]) is bytes
    assert "body" not in channels


async def test_channels_is_a_fresh_dict_per_request() -> None:
    seen: list[dict[str, Any]] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        assert "mine" not in channels
        channels["mine"] = True
        seen.append(channels)
        await channels["reply"].send(OK)

    async with running_server(app) as server:
        client = await server.connect()
        for _ in range(2):
            await client.send(get())
            assert (await client.read_response()).status == 200
        client.close()
    assert len(seen) == 2 and seen[0] is not seen[1]


async def test_unix_socket_client_is_none_and_server_is_path() -> None:
    app, calls = capturing_app()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "s.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(8)
        server = Server(Config(app=app, access_log=False), [sock])
        await server.start()
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(get())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5 * UNIT)
            assert head.startswith(b"HTTP/1.1 200 ")
            writer.close()
        finally:
            server.stop(force=True)
            await server.shutdown()
            sock.close()
    ((message, _),) = calls
    assert message["client"] is None
    assert message["server"] == [path, None]


async def _served_addresses(sock: socket.socket, hosts: list[str]) -> list[Any]:
    """The ``server`` of a request to each of ``hosts`` on the listening ``sock``."""
    app, calls = capturing_app()
    server = Server(Config(app=app, access_log=False), [sock])
    await server.start()
    try:
        for host in hosts:
            reader, writer = await asyncio.open_connection(host, sock.getsockname()[1])
            writer.write(get())
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
            writer.close()
    finally:
        server.stop(force=True)
        await server.shutdown()
        sock.close()
    return [message["server"] for message, _ in calls]


async def test_server_is_the_address_each_connection_reached_on_a_wildcard_listener() -> None:
    # Bound to every address, the listener's own (0.0.0.0) is no connection's: each is asked.
    # (All of 127.0.0.0/8 is the loopback device's on Linux.)
    sock = socket.socket()
    sock.bind(("0.0.0.0", 0))
    sock.listen(8)
    port = sock.getsockname()[1]
    assert shared_local_address(sock) is None
    assert await _served_addresses(sock, ["127.0.0.1", "127.0.0.2"]) == [
        ["127.0.0.1", port],
        ["127.0.0.2", port],
    ]


async def test_server_is_the_listeners_address_on_a_listener_bound_to_one() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.3", 0))
    sock.listen(8)
    local = sock.getsockname()
    assert shared_local_address(sock) == local
    assert await _served_addresses(sock, ["127.0.0.3", "127.0.0.3"]) == [list(local)] * 2


def test_shared_local_address_not_taken_from_a_transparent_or_unknown_listener() -> None:
    class Listener:  # (setting IP_TRANSPARENT needs CAP_NET_ADMIN)
        family = socket.AF_INET

        def __init__(self, transparent: int, error: bool = False) -> None:
            self.transparent, self.error = transparent, error

        def getsockname(self) -> tuple[str, int]:
            if self.error:
                raise OSError("bad file descriptor")
            return ("10.0.0.1", 443)

        def getsockopt(self, level: int, option: int) -> int:
            assert (level, option) == (socket.IPPROTO_IP, 19)  # IP_TRANSPARENT, ip(7)
            return self.transparent

    assert shared_local_address(Listener(0)) == ("10.0.0.1", 443)  # type: ignore[arg-type]
    assert shared_local_address(Listener(1)) is None  # type: ignore[arg-type]
    assert shared_local_address(Listener(0, error=True)) is None  # type: ignore[arg-type]
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::", 0))
        assert shared_local_address(sock) is None


def test_addresses_given_the_local_one_ask_only_for_the_peer() -> None:
    class Transport:
        def get_extra_info(self, name: str) -> Any:
            assert name == "peername", name
            return ("127.0.0.9", 5000)

    client, server = ServerState.addresses(Transport(), ("127.0.0.1", 8000))  # type: ignore[arg-type]
    assert (client, server) == (["127.0.0.9", 5000], ["127.0.0.1", 8000])
    assert ServerState.addresses(Transport(), "/run/app.sock") == (None, ["/run/app.sock", None])  # type: ignore[arg-type]


# ASGI


async def test_asgi3_scope() -> None:
    app, scopes = asgi_capturing_app()
    async with running_server(app, lifespan="off") as server:
        response = await server.request(REQUEST)
        assert response.status == 200 and response.body == b"ok"
    (scope,) = scopes
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["asgi"]["spec_version"] in ("2.3", "2.4")
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/café/a b/\ufffd\ufffd"
    assert scope["raw_path"] == b"/caf%C3%A9/a%20b/%FF%FE"
    assert scope["query_string"] == b"x=%20y&z=%FF"
    assert scope["root_path"] == ""
    assert [list(pair) for pair in scope["headers"]] == [
        [b"host", b"example.org"],
        [b"x-dup", b"one"],
        [b"content-type", b"text/plain"],
        [b"x-dup", b"two"],
    ]
    assert scope["client"][0] == "127.0.0.1" and type(scope["client"][1]) is int
    assert list(scope["server"]) == ["127.0.0.1", server.port]
    # No lifespan: no state.
    assert "state" not in scope


async def test_asgi3_path_includes_root_path() -> None:
    app, scopes = asgi_capturing_app()
    async with running_server(app, lifespan="off", root_path="/api") as server:
        await server.request(get("/users"))
    assert scopes[0]["root_path"] == "/api"
    assert scopes[0]["path"] == "/api/users"
    assert scopes[0]["raw_path"] == b"/users"


async def test_asgi3_state_from_lifespan_is_a_copy_per_request() -> None:
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        scopes.append(scope)
        scope["state"]["request_local"] = True
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    async with running_server(app) as server:
        for _ in range(2):
            assert (await server.request(get())).status == 204
    assert [s["state"].get("db") for s in scopes] == ["connected", "connected"]
    assert scopes[0]["state"] is not scopes[1]["state"]


async def test_asgi2_class_app() -> None:
    scopes: list[dict[str, Any]] = []

    class App:
        def __init__(self, scope: dict[str, Any]) -> None:
            self.scope = scope

        async def __call__(self, receive: Any, send: Any) -> None:
            if self.scope["type"] == "lifespan":
                raise RuntimeError("no lifespan here")
            scopes.append(self.scope)
            message = await receive()
            body = message["body"]
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"asgi2:" + body})

    async with running_server(App) as server:
        response = await server.request(
            b"POST /two HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\n\r\nabc"
        )
    assert response.status == 200 and response.body == b"asgi2:abc"
    assert scopes[0]["type"] == "http" and scopes[0]["path"] == "/two"


async def test_forced_interface() -> None:
    # A callable instance whose signature would say ASGI 2, forced to the messaging interface.
    class Handler:
        async def __call__(self, *args: Any) -> None:
            message, channels = args
            await channels["reply"].send({"status": 200, "content": message["method"].encode()})

    async with running_server(Handler(), interface="messaging") as server:
        response = await server.request(get(method="PUT"))
    assert response.body == b"PUT"
