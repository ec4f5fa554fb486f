"""What happens when the app fails or misuses the reply channel: 500s, closed connections,
clear exceptions from ``send()``, and a client that went away."""

from __future__ import annotations

import logging
import os
import re
from types import MappingProxyType
from typing import Any

import pytest

from tests.helpers import get, running_server
from uvicorn.worker.messaging import channel_names

OK = {"status": 200, "content": b"ok"}


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_app_raising_before_the_response_gets_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["path"] == "/boom":
            raise ZeroDivisionError("boom")
        await channels["reply"].send(OK)

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get("/boom"))
        response = await client.read_response()
        await client.read_until_closed()
        client.close()
        # The server goes on serving.
        assert (await server.request(get("/fine"))).body == b"ok"
        head = await server.request(get("/boom", method="HEAD"))
    assert response.status == 500
    assert response.header(b"connection") == b"close"
    assert head.status == 500 and head.body == b""
    (record, _) = [r for r in caplog.records if r.name == "uvicorn.error"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert "/boom" in record.getMessage()


async def test_app_raising_after_the_start_closes(caplog: pytest.LogCaptureFixture) -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200, "content": b"partial", "more_content": True})
        raise KeyError("late")

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get())
        raw = await client.read_until_closed()
        client.close()
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"partial" in raw and not raw.endswith(b"0\r\n\r\n")
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


async def test_app_returning_without_a_response(caplog: pytest.LogCaptureFixture) -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        return None

    async with running_server(app) as server:
        response = await server.request(get())
    assert response.status == 500
    messages = [r.getMessage() + str(r.exc_info and r.exc_info[1]) for r in errors(caplog)]
    assert any("without completing its response" in m for m in messages), messages


async def test_app_returning_mid_stream_closes(caplog: pytest.LogCaptureFixture) -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200, "content": b"part", "more_content": True})

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get())
        raw = await client.read_until_closed()
        client.close()
    assert b"part" in raw and not raw.endswith(b"0\r\n\r\n")
    messages = [str(r.exc_info and r.exc_info[1]) for r in errors(caplog)]
    assert any("more_content=True" in m for m in messages), messages


BAD_FIRST_MESSAGES = [
    ({"content": b"x"}, RuntimeError, "before the response started"),
    ({"headers": [], "content": b"x"}, ValueError, "missing 'status'"),
    ({"status": "200"}, TypeError, "status"),
    ({"status": 200.0}, TypeError, "status"),
    ({"status": True}, TypeError, "status"),
    ({"status": 99}, ValueError, "99"),
    ({"status": 101}, ValueError, "101"),
    ({"status": 600}, ValueError, "600"),
    ({"status": 200, "content": "text"}, TypeError, "content"),
    ({"status": 200, "headers": [["x-name", b"v"]]}, TypeError, "x-name"),
    ({"status": 200, "headers": [[b"x-name", "v"]]}, TypeError, "x-name"),
    ({"status": 200, "headers": [[b"x-name", b"a\r\nb: c"]]}, ValueError, "x-name"),
    ({"status": 200, "headers": [[b"x-name", b"a\nb"]]}, ValueError, "x-name"),
    ({"status": 200, "headers": [[b"x-name", b"a\x00b"]]}, ValueError, "x-name"),
    ({"status": 200, "headers": [[b"bad name", b"v"]]}, ValueError, "bad name"),
    ({"status": 200, "headers": [[b"x", b"1", b"2"]]}, TypeError, "header"),
    ({"status": 200, "headers": b"x: y"}, TypeError, "headers"),
    (
        {"status": 200, "headers": [[b"content-length", b"3"]], "content": b"12345"},
        ValueError,
        "content-length",
    ),
    ({"status": 200, "headers": [[b"content-length", b"x"]]}, ValueError, "content-length"),
    ("not a dict", TypeError, "dict"),
]


@pytest.mark.parametrize(("bad", "error", "named"), BAD_FIRST_MESSAGES)
async def test_malformed_first_message(bad: Any, error: type[Exception], named: str) -> None:
    raised: list[BaseException] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        try:
            await channels["reply"].send(bad)
        except Exception as exc:
            raised.append(exc)
        await channels["reply"].send(OK)  # nothing was half written: a response still works

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get() + get())
        for _ in range(2):
            response = await client.read_response()
            assert response.status == 200 and response.body == b"ok"
        client.close()
    assert len(raised) == 2
    assert type(raised[0]) is error, raised[0]
    assert named in str(raised[0])


async def test_message_after_completion_and_status_twice() -> None:
    raised: list[BaseException] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        await reply.send({"status": 200, "content": b"a", "more_content": True})
        try:
            await reply.send({"status": 201})
        except RuntimeError as exc:
            raised.append(exc)
        try:
            await reply.send({"content": "str chunk", "more_content": True})
        except TypeError as exc:
            raised.append(exc)
        await reply.send({"content": b"b"})
        for late in ({"content": b"late"}, {"status": 200}):
            try:
                await reply.send(late)
            except RuntimeError as exc:
                raised.append(exc)

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get() + get())
        for _ in range(2):
            assert (await client.read_response()).body == b"ab"
        client.close()
    assert [type(e) for e in raised] == [RuntimeError, TypeError, RuntimeError, RuntimeError] * 2
    assert "already started" in str(raised[0])
    assert "content" in str(raised[1])
    assert "completed" in str(raised[2]) and "already" in str(raised[3])


async def test_asgi_send_errors() -> None:
    raised: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for bad in (
            {"type": "http.response.body", "body": b"early"},  # before the start
            {"type": "http.response.start"},  # no status
            {"type": "http.response.start", "status": "200"},  # refused at once, not later
            {"type": "http.response.start", "status": 103},  # 1xx is no ASGI response start
            {"type": "http.response.bogus"},
            {"no": "type"},
            {"type": 5},
            None,
        ):
            try:
                await send(bad)
            except (RuntimeError, ValueError, TypeError) as exc:
                raised.append(exc)
        # A mapping other than a dict is read as one.
        await send(MappingProxyType({"type": "http.response.start", "status": 200}))
        try:
            await send({"type": "http.response.start", "status": 200})
        except RuntimeError as exc:
            raised.append(exc)
        await send({"type": "http.response.body", "body": b"ok"})
        try:
            await send({"type": "http.response.body", "body": b"after"})
        except RuntimeError as exc:
            raised.append(exc)

    async with running_server(app, lifespan="off") as server:
        client = await server.connect()
        await client.send(get() + get())
        for _ in range(2):
            assert (await client.read_response()).body == b"ok"
        client.close()
    per_request = [RuntimeError, ValueError, TypeError, ValueError, ValueError, TypeError]
    per_request += [ValueError, TypeError, RuntimeError, RuntimeError]
    assert [type(e) for e in raised] == per_request * 2, raised
    assert "before the response started" in str(raised[0])
    assert str(raised[6]) == "unexpected ASGI message type 5 for an http scope"
    assert str(raised[7]) == "invalid ASGI message None: needs a 'type'"


async def test_content_length_mismatch_closes(caplog: pytest.LogCaptureFixture) -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        await reply.send(
            {"status": 200, "headers": [[b"content-length", b"10"]], "more_content": True}
        )
        if message["path"] == "/short":
            await reply.send({"content": b"12345"})
        else:
            await reply.send({"content": b"12345", "more_content": True})
            await reply.send({"content": b"6789abc", "more_content": True})

    for path in ("/short", "/long"):
        async with running_server(app) as server:
            client = await server.connect()
            await client.send(get(path) + get(path))
            raw = await client.read_until_closed()
            client.close()
        assert raw.count(b"HTTP/1.1") == 1
        assert b"6789abc" not in raw
    logged = [str(r.exc_info and r.exc_info[1]) for r in errors(caplog)]
    assert len(logged) == 2 and all("content-length" in m for m in logged), logged


def test_channel_names() -> None:
    names = [channel_names.new("reply") for _ in range(1000)] + [channel_names.new("body")]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"(reply|body)![A-Za-z0-9_-]+\.[0-9]+", name), name
    prefixes = {name.split("!")[1].split(".")[0] for name in names}
    assert len(prefixes) == 1
    # A forked worker draws a new prefix, so names stay unique across processes.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.write(write_end, channel_names.new("reply").encode())
        os._exit(0)
    os.close(write_end)
    child_name = os.read(read_end, 100).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert child_name.startswith("reply!")
    assert child_name.split("!")[1].split(".")[0] not in prefixes


async def test_channel_names_seen_by_the_app() -> None:
    names: list[str] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        names.extend(channel.name for channel in channels.values())
        await channels["reply"].send(OK)

    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get() + get())
        await client.send(get("/", "content-length: 5", method="POST"))
        for _ in range(2):
            await client.read_response()
        await client.send(b"hello")
        await client.read_response()
        client.close()
    assert len(names) == 4 and len(set(names)) == 4
    assert [n.split("!")[0] for n in names] == ["reply", "reply", "reply", "body"]
