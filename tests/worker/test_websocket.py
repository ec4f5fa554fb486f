"""WebSockets through the messaging interface, on a real event loop with the ``websockets``
client (SPEC.md, "WebSocket")."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.frames import Opcode

from tests.helpers import UNIT, Watch, running_server, skip_if_compiled, tls_certificate
from tests.worker.wshelpers import RawWebSocket, Recorder, sessions, url
from uvicorn.exceptions import ClientDisconnected
from uvicorn.protocols.websocket import WebSocketCore
from uvicorn.worker.websocket import WebSocketSession

Message = dict[str, Any]
Channels = dict[str, Any]


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


async def echo(message: Message, channels: Channels) -> None:
    if message["channel"] == "websocket.receive":
        if message["text"] is not None:
            await channels["reply"].send({"text": message["text"]})
        else:
            await channels["reply"].send({"bytes": message["bytes"]})


# The handshake.


async def test_connect_message_comes_before_the_handshake_is_answered() -> None:
    recorder = Recorder()
    release = asyncio.Event()
    pending_status: list[int] = []

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)
        if message["channel"] == "websocket.connect":
            (session,) = sessions(server)
            pending_status.append(session.core.status)  # 0: nothing answered yet
            await release.wait()
            await channels["reply"].send({"accept": True})

    async with running_server(app, root_path="/api") as server:
        headers = {"X-Custom": "yes", "Cookie": "a=1"}
        opening = asyncio.ensure_future(
            connect(
                url(server, "/chat%20room/%E2%82%AC?x=1&y=%20"),
                subprotocols=["one", "two"],  # type: ignore[list-item]
                additional_headers=headers,
            )
        )
        connect_message = await recorder.wait_for("websocket.connect")
        assert pending_status == [0]
        assert not opening.done()
        release.set()
        ws = await asyncio.wait_for(opening, 5 * UNIT)
        assert ws.subprotocol is None  # the app chose none
        await ws.close()
        await recorder.wait_for("websocket.disconnect")

    message = connect_message
    headers = dict(message.pop("headers"))
    assert headers[b"x-custom"] == b"yes" and headers[b"cookie"] == b"a=1"
    assert headers[b"upgrade"] == b"websocket"
    assert b"sec-websocket-key" in headers and b"host" in headers
    client = message.pop("client")
    assert client[0] == "127.0.0.1" and isinstance(client[1], int)
    assert message == {
        "channel": "websocket.connect",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "ws",
        "path": "/chat room/€",
        "raw_path": b"/chat%20room/%E2%82%AC",
        "query_string": b"x=1&y=%20",
        "root_path": "/api",
        "body": b"",
        "server": ["127.0.0.1", server.port],
        "subprotocols": ["one", "two"],
        "order": 0,
    }


async def test_implicit_accept_when_the_connect_handler_returns() -> None:
    async with running_server(echo) as server, connect(url(server)) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\x01")
        assert await ws.recv() == b"\x00\x01"


async def test_accept_with_a_subprotocol_and_headers() -> None:
    async def app(message: Message, channels: Channels) -> None:
        if message["channel"] == "websocket.connect":
            await channels["reply"].send(
                {
                    "accept": True,
                    "subprotocol": message["subprotocols"][-1],
                    "headers": [[b"x-extra", b"1"], [b"set-cookie", b"id=7"]],
                }
            )

    offered: Any = ["a", "b"]
    async with running_server(app) as server, connect(url(server), subprotocols=offered) as ws:
        assert ws.subprotocol == "b"
        assert ws.response is not None
        assert ws.response.headers["x-extra"] == "1"
        assert ws.response.headers["set-cookie"] == "id=7"
        assert ws.response.headers["server"] == "uvicorn"


async def test_sending_text_before_accepting_accepts() -> None:
    async def app(message: Message, channels: Channels) -> None:
        if message["channel"] == "websocket.connect":
            await channels["reply"].send({"text": "welcome"})
            await channels["reply"].send({"bytes": b"and bytes"})

    async with running_server(app) as server, connect(url(server)) as ws:
        assert await ws.recv() == "welcome"
        assert await ws.recv() == b"and bytes"


@pytest.mark.parametrize(
    "reply", [{"accept": False}, {"close": True}, {"close": 4000}], ids=["accept", "close", "code"]
)
async def test_reject_is_403_and_no_disconnect_message(reply: Message) -> None:
    recorder = Recorder()
    tasks: list[asyncio.Task[None]] = []

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)
        (session,) = sessions(server)
        assert session.task is not None
        tasks.append(session.task)
        await channels["reply"].send(reply)

    async with running_server(app) as server:
        with pytest.raises(InvalidStatus) as info:
            await connect(url(server))
        assert info.value.response.status_code == 403
        await asyncio.wait_for(tasks[0], 5 * UNIT)  # the session is over
        assert recorder.channels() == ["websocket.connect"]


async def test_connect_handler_raising_is_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(message: Message, channels: Channels) -> None:
        raise RuntimeError("connect failed")

    async with running_server(app) as server:
        with pytest.raises(InvalidStatus) as info:
            await connect(url(server))
        assert info.value.response.status_code == 500
    (record,) = [r for r in errors(caplog) if r.exc_info]
    assert "connect failed" in str(record.exc_info[1])  # type: ignore[index]


async def test_invalid_handshake_never_reaches_the_app() -> None:
    calls: list[Message] = []

    async def app(message: Message, channels: Channels) -> None:
        calls.append(message)

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(
            b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
            b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 8\r\n\r\n"
        )
        response = await client.read_response()
        assert response.status == 426
        assert response.header(b"sec-websocket-version") == b"13"
        assert await client.read_until_closed()
        client = await server.connect()
        await client.send(
            b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
            b"sec-websocket-version: 13\r\n\r\n"
        )
        assert (await client.read_response()).status == 400
    assert calls == []


# Messages.


async def test_receive_messages_in_order_with_exactly_one_of_text_and_bytes() -> None:
    recorder = Recorder()

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)

    async with running_server(app) as server:
        async with connect(url(server, "/room/1?q")) as ws:
            await ws.send("one")
            await ws.send(b"two")
            await ws.send("")
            await ws.send(b"")
            await ws.close(4001, "done")
        disconnect = await recorder.wait_for("websocket.disconnect")
    assert [(m["order"], m["channel"]) for m in recorder.messages] == [
        (0, "websocket.connect"),
        (1, "websocket.receive"),
        (2, "websocket.receive"),
        (3, "websocket.receive"),
        (4, "websocket.receive"),
        (5, "websocket.disconnect"),
    ]
    receives = recorder.messages[1:5]
    assert [(m["text"], m["bytes"]) for m in receives] == [
        ("one", None),
        (None, b"two"),
        ("", None),
        (None, b""),
    ]
    assert all(m["path"] == "/room/1" for m in recorder.messages[1:])
    assert set(receives[0]) == {"channel", "path", "order", "text", "bytes"}
    assert disconnect == {"channel": "websocket.disconnect", "path": "/room/1", "order": 5,
                          "code": 4001}  # fmt: skip


async def test_one_dict_of_channels_per_connection() -> None:
    seen: list[Channels] = []

    async def app(message: Message, channels: Channels) -> None:
        seen.append(channels)
        if message["channel"] == "websocket.connect":
            channels["mine"] = "kept"
        elif message["channel"] == "websocket.receive":
            await channels["reply"].send({"text": channels["mine"]})

    async with running_server(app) as server, connect(url(server)) as ws:
        await ws.send("x")
        assert await ws.recv() == "kept"
    assert len(seen) >= 2 and all(c is seen[0] for c in seen)
    assert seen[0]["reply"].name.startswith("reply!")


async def test_disconnect_code_1005_for_an_empty_close_frame() -> None:
    recorder = Recorder()

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)

    async with running_server(app) as server:
        raw = await RawWebSocket.connect(server.port)
        assert (await raw.handshake()).status_code == 101
        raw.send_frame(Opcode.CLOSE)
        frames = await raw.until_closed()
        assert [(f.opcode, bytes(f.data)) for f in frames] == [(Opcode.CLOSE, b"")]
        disconnect = await recorder.wait_for("websocket.disconnect")
        assert disconnect["code"] == 1005


async def test_disconnect_code_1006_for_a_dropped_connection() -> None:
    recorder = Recorder()

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)

    async with running_server(app) as server:
        raw = await RawWebSocket.connect(server.port)
        await raw.handshake()
        raw.send_text("last words")
        await recorder.wait_for("websocket.receive")
        raw.abort()
        disconnect = await recorder.wait_for("websocket.disconnect")
        assert disconnect["code"] == 1006


async def test_messages_are_handled_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    watch = Watch(monkeypatch, (WebSocketSession, "data_received"))
    log: list[str] = []
    release = asyncio.Event()
    slow_started = asyncio.Event()

    async def app(message: Message, channels: Channels) -> None:
        name = message.get("text") or message["channel"]
        log.append(f"start {name}")
        if name == "slow":
            slow_started.set()
            await release.wait()  # the next messages arrive meanwhile
        log.append(f"end {name}")
        if message["channel"] == "websocket.disconnect":
            done.set()

    done = asyncio.Event()
    async with running_server(app) as server:
        async with connect(url(server)) as ws:
            await ws.send("slow")
            await ws.send("second")
            await ws.send("third")
            (session,) = sessions(server)
            await asyncio.wait_for(slow_started.wait(), 5 * UNIT)
            await watch.until(lambda: len(session.inbox) == 2)  # both waiting their turn
            assert log == ["start websocket.connect", "end websocket.connect", "start slow"]
            release.set()
        await asyncio.wait_for(done.wait(), 5 * UNIT)
    assert log == [
        "start websocket.connect",
        "end websocket.connect",
        "start slow",
        "end slow",
        "start second",
        "end second",
        "start third",
        "end third",
        "start websocket.disconnect",
        "end websocket.disconnect",
    ]


async def test_send_waits_while_the_client_does_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    watch = Watch(monkeypatch, (WebSocketSession, "pause_writing"))
    chunk = b"x" * 65536
    sent: list[int] = []
    stop = asyncio.Event()

    async def app(message: Message, channels: Channels) -> None:
        if message["channel"] == "websocket.connect":
            await channels["reply"].send({"accept": True})
            while not stop.is_set():
                await channels["reply"].send({"bytes": chunk})
                sent.append(len(chunk))
            await channels["reply"].send({"close": True})

    async with running_server(app, ws_per_message_deflate=False) as server:
        raw = await RawWebSocket.connect(server.port, small=True)
        await raw.handshake()
        (session,) = sessions(server)
        await watch.until(lambda: session.write_paused)  # the client reads nothing more
        for _ in range(20):
            await asyncio.sleep(0)  # let the app run, if it could
        blocked_at = len(sent)
        assert session.write_paused
        stop.set()
        frames = await raw.until_closed(answer=True)  # reading: the blocked send() returns
    assert len(sent) == blocked_at + 1, "send() went on while the write buffer was full"
    assert [len(f.data) for f in frames if f.opcode is Opcode.BINARY] == sent
    assert frames[-1].opcode is Opcode.CLOSE


async def test_send_after_close_raises_client_disconnected() -> None:
    outcomes: list[str] = []
    finished = asyncio.Event()

    async def app(message: Message, channels: Channels) -> None:
        reply = channels["reply"]
        if message["channel"] == "websocket.receive":
            await reply.send({"text": "bye", "close": 4002})
            try:
                await reply.send({"text": "too late"})
            except ClientDisconnected:
                outcomes.append("after our close")
        elif message["channel"] == "websocket.disconnect":
            try:
                await reply.send({"text": "too late"})
            except ClientDisconnected as exc:
                assert isinstance(exc, OSError)
                outcomes.append(f"after disconnect {message['code']}")
            finished.set()

    async with running_server(app) as server:
        async with connect(url(server)) as ws:
            await ws.send("hi")
            assert await ws.recv() == "bye"
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 4002
        await asyncio.wait_for(finished.wait(), 5 * UNIT)
    assert outcomes == ["after our close", "after disconnect 4002"]


async def test_close_true_is_1000_and_data_goes_first() -> None:
    async def app(message: Message, channels: Channels) -> None:
        if message["channel"] == "websocket.receive":
            await channels["reply"].send({"bytes": b"last", "close": True})

    async with running_server(app) as server, connect(url(server)) as ws:
        await ws.send("x")
        assert await ws.recv() == b"last"
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1000


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"text": "a", "bytes": b"b"}, ValueError),
        ({"text": b"bytes"}, TypeError),
        ({"bytes": "text"}, TypeError),
        ({"close": 1005}, ValueError),
        ({"close": "now"}, TypeError),
        ("not a dict", TypeError),
    ],
)
async def test_bad_messages_are_clear_errors(message: Any, error: type[Exception]) -> None:
    outcome: list[BaseException] = []

    async def app(msg: Message, channels: Channels) -> None:
        if msg["channel"] == "websocket.receive":
            try:
                await channels["reply"].send(message)
            except Exception as exc:
                outcome.append(exc)
            await channels["reply"].send({"text": "still open"})

    async with running_server(app) as server, connect(url(server)) as ws:
        await ws.send("go")
        assert await ws.recv() == "still open"
    assert [type(e) for e in outcome] == [error]


async def test_handler_raising_after_accept_closes_1011(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)
        if message["channel"] == "websocket.receive":
            raise RuntimeError("handler failed")

    async with running_server(app) as server:
        async with connect(url(server)) as ws:
            await ws.send("boom")
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1011
        disconnect = await recorder.wait_for("websocket.disconnect")
    assert disconnect["code"] == 1011  # the client echoed our close
    (record,) = [r for r in errors(caplog) if r.exc_info]
    assert "handler failed" in str(record.exc_info[1])  # type: ignore[index]


async def test_ws_max_size(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)

    async with running_server(app, ws_max_size=1000) as server:
        async with connect(url(server), compression=None) as ws:
            await ws.send(b"x" * 1000)
            await recorder.wait_for("websocket.receive")
            await ws.send(b"x" * 1001)
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        disconnect = await recorder.wait_for("websocket.disconnect")
    assert disconnect["code"] == 1009
    assert [len(m["bytes"]) for m in recorder.messages if m["channel"] == "websocket.receive"] == [
        1000
    ]


async def test_invalid_utf8_closes_1007() -> None:
    async with running_server(echo) as server:
        raw = await RawWebSocket.connect(server.port)
        await raw.handshake()
        raw.send_frame(Opcode.TEXT, b"\xff")  # the client's send_text() would not
        frames = await raw.until_closed()
        assert [f.opcode for f in frames] == [Opcode.CLOSE]
        assert raw.protocol.close_rcvd is not None and raw.protocol.close_rcvd.code == 1007


# Pings.


async def test_server_pings_and_the_client_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    skip_if_compiled(WebSocketCore)  # (send_ping is patched to count)
    watch = Watch(monkeypatch, (WebSocketCore, "send_ping"))
    pings: list[bytes] = []
    original = WebSocketCore.send_ping

    def counting(self: WebSocketCore, data: bytes = b"") -> None:
        pings.append(data)
        original(self, data)

    monkeypatch.setattr(WebSocketCore, "send_ping", counting)
    options = {"ws_ping_interval": 0.05 * UNIT, "ws_ping_timeout": 1 * UNIT}
    async with running_server(echo, **options) as s, connect(url(s), ping_interval=None) as ws:
        await watch.until(lambda: len(pings) >= 3)
        await ws.send("still here")
        assert await ws.recv() == "still here"


async def test_silent_peer_is_closed_after_the_ping_timeout() -> None:
    recorder = Recorder()

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)

    options = {"ws_ping_interval": 0.05 * UNIT, "ws_ping_timeout": 0.2 * UNIT}
    async with running_server(app, **options) as server:
        raw = await RawWebSocket.connect(server.port)
        await raw.handshake()
        loop = asyncio.get_running_loop()
        start = loop.time()
        frames = await raw.until_closed()  # never answering the pings
        elapsed = loop.time() - start
        assert frames and all(f.opcode is Opcode.PING for f in frames)
        assert elapsed >= 0.2 * UNIT
        disconnect = await recorder.wait_for("websocket.disconnect")
        assert disconnect["code"] == 1006


async def test_ping_timeout_0_pings_a_silent_peer_but_never_closes_it() -> None:
    options = {"ws_ping_interval": 0.02 * UNIT, "ws_ping_timeout": 0}
    async with running_server(echo, **options) as server:
        raw = await RawWebSocket.connect(server.port)
        await raw.handshake()
        for _ in range(5):  # never answered, and the connection stays
            frame = await raw.next_frame()
            assert frame is not None and frame.opcode is Opcode.PING
        raw.send_text("still here")
        frame = await raw.next_frame()
        while frame is not None and frame.opcode is Opcode.PING:
            frame = await raw.next_frame()
        assert frame is not None and bytes(frame.data) == b"still here"
        raw.close()


async def test_a_peer_answering_pings_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    options = {"ws_ping_interval": 0.02 * UNIT, "ws_ping_timeout": 0.1 * UNIT}
    async with running_server(echo, **options) as server:
        raw = await RawWebSocket.connect(server.port)
        await raw.handshake()
        for _ in range(8):  # 8 pings: longer than the timeout
            frame = await raw.next_frame()
            assert frame is not None and frame.opcode is Opcode.PING
            raw.flush()  # the pong
        raw.send_text("alive")
        frame = await raw.next_frame()
        while frame is not None and frame.opcode is Opcode.PING:
            raw.flush()
            frame = await raw.next_frame()
        assert frame is not None and bytes(frame.data) == b"alive"
        raw.close()


# Configuration.


async def test_ws_none_serves_upgrade_requests_as_http() -> None:
    seen: list[Message] = []

    async def app(message: Message, channels: Channels) -> None:
        seen.append(message)
        await channels["reply"].send({"status": 200, "content": b"plain HTTP"})

    async with running_server(app, ws="none") as server:
        raw = await RawWebSocket.connect(server.port)
        response = await raw.handshake()
        assert response.status_code == 200 and response.body == b"plain HTTP"
        raw.close()
    (message,) = seen
    assert message["channel"] == "http.request"
    assert [b"upgrade", b"websocket"] in [list(h) for h in message["headers"]]


async def test_proxy_headers_give_scheme_wss() -> None:
    recorder = Recorder()

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)

    async with running_server(app, forwarded_allow_ips="127.0.0.1") as server:
        headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
        async with connect(url(server), additional_headers=headers):
            pass
        message = await recorder.wait_for("websocket.connect")
        assert message["scheme"] == "wss"
        assert message["client"][0] == "203.0.113.9"
        async with connect(url(server), additional_headers={"X-Forwarded-Proto": "wss"}):
            pass
        assert (await recorder.wait_for("websocket.connect", 2))["scheme"] == "wss"


async def test_access_log_line_per_handshake(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "uvicorn.access")

    async def app(message: Message, channels: Channels) -> None:
        if message["path"] == "/no":
            await channels["reply"].send({"accept": False})

    async with running_server(app, access_log=True) as server:
        async with connect(url(server, "/yes?a=1")):
            pass
        with pytest.raises(InvalidStatus):
            await connect(url(server, "/no"))
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any('"GET /yes?a=1 HTTP/1.1" 101' in line for line in lines), lines
    assert any('"GET /no HTTP/1.1" 403' in line for line in lines), lines


# Upgrades on a connection that served HTTP first.


async def test_upgrade_pipelined_behind_a_request_switches_after_the_response() -> None:
    release = asyncio.Event()

    async def app(message: Message, channels: Channels) -> None:
        if message["channel"] == "http.request":
            await release.wait()
            await channels["reply"].send({"status": 200, "content": b"first"})
        else:
            await echo(message, channels)

    async with running_server(app) as server:
        first = b"GET /first HTTP/1.1\r\nhost: x\r\n\r\n"
        raw = await RawWebSocket.connect(server.port, before=first)
        raw.send_frame(Opcode.TEXT, b"early")  # before the switch: kept for the WebSocket
        release.set()
        data = await asyncio.wait_for(raw.reader.readuntil(b"first"), 5 * UNIT)
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert (await raw.handshake()).status_code == 101
        frame = await raw.next_frame()
        assert frame is not None and bytes(frame.data) == b"early"
        raw.send_text("later")
        frame = await raw.next_frame()
        assert frame is not None and bytes(frame.data) == b"later"
        raw.close()


async def test_upgrade_after_a_keep_alive_request() -> None:
    async def app(message: Message, channels: Channels) -> None:
        if message["channel"] == "http.request":
            await channels["reply"].send({"status": 204})
        else:
            await echo(message, channels)

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await client.read_response()).status == 204
        raw = RawWebSocket.start(client.reader, client.writer, server.port)
        assert (await raw.handshake()).status_code == 101
        raw.send_text("ok")
        frame = await raw.next_frame()
        assert frame is not None and bytes(frame.data) == b"ok"
        raw.close()


# Flow control and limits.


async def test_reading_pauses_while_messages_wait_for_a_slow_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watch = Watch(monkeypatch, (WebSocketSession, "data_received"))
    release = asyncio.Event()
    all_received = asyncio.Event()
    received: list[int] = []

    async def app(message: Message, channels: Channels) -> None:
        if message["channel"] == "websocket.receive":
            await release.wait()
            received.append(len(message["bytes"]))
            if len(received) == 30:
                all_received.set()

    chunk = b"x" * 100_000
    async with running_server(app, ws_per_message_deflate=False) as s, connect(url(s)) as ws:
        (session,) = sessions(s)
        for _ in range(30):  # 3 MB, more than the 1 MiB the server buffers
            await ws.send(chunk)
        await watch.until(lambda: session.read_paused)
        assert session.inbox_bytes > 1024 * 1024
        release.set()
        await asyncio.wait_for(all_received.wait(), 5 * UNIT)
        assert not session.read_paused


async def test_peer_that_never_finishes_the_closing_handshake_is_cut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("uvicorn.worker.websocket.CLOSE_TIMEOUT", 0.1 * UNIT)
    recorder = Recorder()

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)
        if message["channel"] == "websocket.receive":
            await channels["reply"].send({"close": 4000})

    async with running_server(app) as server:
        raw = await RawWebSocket.connect(server.port)
        await raw.handshake()
        raw.send_text("close please")
        frames = await raw.until_closed()  # without answering the close frame
        assert [f.opcode for f in frames] == [Opcode.CLOSE]
        assert (await recorder.wait_for("websocket.disconnect"))["code"] == 1006


async def test_limit_concurrency_counts_websockets() -> None:
    async with running_server(echo, limit_concurrency=1) as server:
        async with connect(url(server)) as ws:
            with pytest.raises(InvalidStatus) as info:
                await connect(url(server))
            assert info.value.response.status_code == 503
            await ws.send("first still works")
            assert await ws.recv() == "first still works"
        async with connect(url(server)) as ws:  # its place is free again
            await ws.send("next")
            assert await ws.recv() == "next"


async def test_limit_concurrency_one_rule_for_requests_and_websockets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An open WebSocket is in flight until it closes, for HTTP requests and new WebSockets
    alike; every 503 is in the access log."""
    caplog.set_level(logging.INFO, logger="uvicorn.access")

    async def app(message: Message, channels: Channels) -> None:
        if message["channel"] == "http.request":
            await channels["reply"].send({"status": 200, "content": b"served"})
        await echo(message, channels)

    async with running_server(app, limit_concurrency=2, access_log=True) as server:
        async with connect(url(server, "/one")) as one, connect(url(server, "/two")):
            response = await server.request(b"GET /http HTTP/1.1\r\nhost: x\r\n\r\n")
            assert response.status == 503
            with pytest.raises(InvalidStatus) as info:
                await connect(url(server, "/three"))
            assert info.value.response.status_code == 503
            await one.send("still served")
            assert await one.recv() == "still served"
        assert (await server.request(b"GET /http HTTP/1.1\r\nhost: x\r\n\r\n")).status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any('"GET /http HTTP/1.1" 503' in line for line in lines), lines
    assert any('"GET /three HTTP/1.1" 503' in line for line in lines), lines
    assert any('"GET /http HTTP/1.1" 200' in line for line in lines), lines


async def test_wss_over_tls(tmp_path: Any) -> None:
    options = tls_certificate(tmp_path)
    recorder = Recorder()

    async def app(message: Message, channels: Channels) -> None:
        recorder.record(message)
        await echo(message, channels)

    context = ssl.create_default_context(cafile=options["ssl_certfile"])
    async with (
        running_server(app, **options) as server,
        connect(f"wss://127.0.0.1:{server.port}/", ssl=context) as ws,
    ):
        await ws.send("secure")
        assert await ws.recv() == "secure"
        await ws.send(b"x" * 200_000)
        assert await ws.recv() == b"x" * 200_000
    assert (await recorder.wait_for("websocket.connect"))["scheme"] == "wss"
    assert (await recorder.wait_for("websocket.disconnect"))["code"] == 1000
