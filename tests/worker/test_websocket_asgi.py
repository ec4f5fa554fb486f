"""WebSockets through ASGI 3 (the ASGI spec's WebSocket section, 2.4), and a Starlette
WebSocket endpoint served unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers import UNIT, running_server
from tests.worker.h2client import H2Client
from tests.worker.wshelpers import Recorder, url
from uvicorn.exceptions import ClientDisconnected

Scope = dict[str, Any]


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def asgi(handler: Any) -> Any:
    """An ASGI 3 app whose websocket scopes go to ``handler(scope, receive, send)``."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        await handler(scope, receive, send)

    return app


async def test_scope_and_events() -> None:
    recorder = Recorder()
    scopes: list[Scope] = []

    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        scopes.append(scope)
        recorder.record(await receive())
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            recorder.record(event)
            if event["type"] == "websocket.disconnect":
                return

    async with running_server(asgi(handler), root_path="/api", lifespan="off") as server:
        offered: Any = ["p1", "p2"]
        async with connect(url(server, "/a%20b?x=1"), subprotocols=offered) as ws:
            await ws.send("text")
            await ws.send(b"bytes")
            await ws.close(4003, "bye now")
        await recorder.wait_for("websocket.disconnect")
    (scope,) = scopes
    headers = dict(scope.pop("headers"))
    assert headers[b"upgrade"] == b"websocket" and b"sec-websocket-key" in headers
    client = scope.pop("client")
    assert client[0] == "127.0.0.1"
    assert scope == {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/api/a b",
        "raw_path": b"/a%20b",
        "query_string": b"x=1",
        "root_path": "/api",
        "server": ["127.0.0.1", server.port],
        "subprotocols": ["p1", "p2"],
        "extensions": {"websocket.http.response": {}},
    }
    assert recorder.messages == [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "text"},
        {"type": "websocket.receive", "bytes": b"bytes"},
        {"type": "websocket.disconnect", "code": 4003, "reason": "bye now"},
    ]


async def test_accept_with_subprotocol_and_headers_then_send() -> None:
    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": "p2",
                "headers": [(b"x-asgi", b"yes")],
            }
        )
        await send({"type": "websocket.send", "text": "hello"})
        await send({"type": "websocket.send", "bytes": b"\x00\x01"})
        await send({"type": "websocket.send", "bytes": None, "text": "text wins over None"})
        await receive()

    offered: Any = ["p1", "p2"]
    async with (
        running_server(asgi(handler)) as server,
        connect(url(server), subprotocols=offered) as ws,
    ):
        assert ws.subprotocol == "p2"
        assert ws.response is not None and ws.response.headers["x-asgi"] == "yes"
        assert await ws.recv() == "hello"
        assert await ws.recv() == b"\x00\x01"
        assert await ws.recv() == "text wins over None"


async def test_close_with_code_and_reason() -> None:
    recorder = Recorder()

    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4321, "reason": "custom reason"})
        try:
            await send({"type": "websocket.send", "text": "after close"})
        except ClientDisconnected as exc:
            recorder.record({"type": "raised", "error": exc})
        recorder.record(await receive())
        recorder.record(await receive())  # asked again: still the disconnect

    async with running_server(asgi(handler)) as server, connect(url(server)) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4321, "custom reason")
        await recorder.wait_for("websocket.disconnect", 2)
    assert recorder.channels() == ["raised", "websocket.disconnect", "websocket.disconnect"]
    assert recorder.messages[1]["code"] == 4321


async def test_close_defaults_to_1000() -> None:
    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})

    async with running_server(asgi(handler)) as server, connect(url(server)) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1000


async def test_close_before_accept_is_403() -> None:
    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008})

    async with running_server(asgi(handler)) as server:
        with pytest.raises(InvalidStatus) as info:
            await connect(url(server))
        assert info.value.response.status_code == 403


async def test_http_response_extension_denies_with_any_response() -> None:
    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        assert "websocket.http.response" in scope["extensions"]
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"www-authenticate", b"Bearer"), (b"content-type", b"text/plain")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"log in ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"first"})

    async with running_server(asgi(handler)) as server:
        with pytest.raises(InvalidStatus) as info:
            await connect(url(server))
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "text/plain"
    assert response.body == b"log in first"


async def test_http_response_extension_denies_over_http2_too() -> None:
    """RFC 8441: the extended CONNECT of a WebSocket over HTTP/2 gets the app's response on its
    stream (status, fields, body), then the stream ends."""

    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        assert scope["http_version"] == "2" and "websocket.http.response" in scope["extensions"]
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"www-authenticate", b"Bearer")]})  # fmt: skip
        await send({"type": "websocket.http.response.body", "body": b"log in ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"first"})

    async with running_server(asgi(handler)) as server:
        client = await H2Client.open(server.port)
        await client.until(lambda: client.conn.remote_settings.enable_connect_protocol)
        stream = client.request(
            method="CONNECT", headers=[(":protocol", "websocket"), ("sec-websocket-version", "13")],
            end_stream=False,
        )
        result = await client.response(stream)
    assert result.status == 401 and result.header(b"www-authenticate") == b"Bearer"
    assert bytes(result.data) == b"log in first" and result.ended


async def test_app_returning_without_accepting_is_500(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        await receive()

    async with running_server(asgi(handler)) as server:
        with pytest.raises(InvalidStatus) as info:
            await connect(url(server))
        assert info.value.response.status_code == 500
    assert any("without accepting" in r.getMessage() for r in errors(caplog))


async def test_app_returning_after_accepting_closes_1000() -> None:
    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})

    async with running_server(asgi(handler)) as server, connect(url(server)) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1000


async def test_app_raising_after_accept_closes_1011(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise RuntimeError("asgi websocket failed")

    async with running_server(asgi(handler)) as server, connect(url(server)) as ws:
        await ws.send("go")
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    (record,) = [r for r in errors(caplog) if r.exc_info]
    assert "asgi websocket failed" in str(record.exc_info[1])  # type: ignore[index]


async def test_bad_messages_are_clear_errors() -> None:
    outcome: list[str] = []

    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        for message in (
            {"type": "websocket.send", "text": "before accept"},  # accepted, then sent
            {"type": "websocket.accept"},  # too late: RuntimeError
            {"type": "websocket.send"},  # neither text nor bytes
            {"type": "websocket.send", "bytes": "str"},
            {"type": "http.response.start", "status": 200},
            {"no": "type"},
        ):
            try:
                await send(message)
                outcome.append("ok")
            except Exception as exc:
                outcome.append(type(exc).__name__)
        await send({"type": "websocket.send", "text": "done"})
        await receive()

    async with running_server(asgi(handler)) as server, connect(url(server)) as ws:
        assert await ws.recv() == "before accept"
        assert await ws.recv() == "done"
    assert outcome == ["ok", "RuntimeError", "ValueError", "TypeError", "ValueError", "TypeError"]


async def test_disconnect_1006_for_a_dropped_connection() -> None:
    recorder = Recorder()

    async def handler(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        recorder.record(await receive())

    async with running_server(asgi(handler)) as server:
        ws = await connect(url(server))
        ws.transport.abort()
        disconnect = await recorder.wait_for("websocket.disconnect")
    assert disconnect == {"type": "websocket.disconnect", "code": 1006, "reason": ""}


# Starlette.


def starlette_app() -> Starlette:
    async def chat(websocket: WebSocket) -> None:
        if websocket.query_params.get("token") != "secret":
            await websocket.send_denial_response(PlainTextResponse("go away", status_code=401))
            return
        await websocket.accept(subprotocol="json")
        await websocket.send_json({"hello": websocket.path_params["room"]})
        try:
            while True:
                data = await websocket.receive_json()
                await websocket.send_json({"echo": data, "state": websocket.state.greeting})
        except WebSocketDisconnect as exc:
            disconnects.append(exc.code)
            disconnected.set()

    async def closing(websocket: WebSocket) -> None:
        await websocket.close(code=1008, reason="policy")  # before accepting: 403

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield {"greeting": "from lifespan"}

    disconnects: list[int] = []
    disconnected = asyncio.Event()
    app = Starlette(
        routes=[WebSocketRoute("/ws/{room}", chat), WebSocketRoute("/closing", closing)],
        lifespan=lifespan,
    )
    app.state.disconnects = disconnects
    app.state.disconnected = disconnected
    return app


async def test_starlette_websocket_endpoint() -> None:
    app = starlette_app()
    async with running_server(app) as server:
        offered: Any = ["json"]
        async with connect(url(server, "/ws/lobby?token=secret"), subprotocols=offered) as ws:
            assert ws.subprotocol == "json"
            assert await ws.recv() == '{"hello":"lobby"}'
            await ws.send('{"n": 1}')
            assert await ws.recv() == '{"echo":{"n":1},"state":"from lifespan"}'
            await ws.close(4000)
        with pytest.raises(InvalidStatus) as info:
            await connect(url(server, "/ws/lobby"))
        assert info.value.response.status_code == 401
        assert info.value.response.body == b"go away"
        with pytest.raises(InvalidStatus) as info:
            await connect(url(server, "/closing"))
        assert info.value.response.status_code == 403
        await asyncio.wait_for(app.state.disconnected.wait(), 5 * UNIT)
    assert app.state.disconnects == [4000]
