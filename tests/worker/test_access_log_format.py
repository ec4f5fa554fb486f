"""``--access-log-format``: gunicorn's atoms, each checked exactly, on both interfaces, over
HTTP/1.1 and HTTP/2; WebSocket sessions logged as they end, with the time they were open; the
default line unchanged; bad formats refused at start."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.helpers import UNIT, running_server
from tests.worker.h2client import H2Client
from uvicorn.config import Config
from uvicorn.exceptions import ConfigError

EVERY_ATOM = (
    "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(b)s \"%(f)s\" "
    "\"%(a)s\" %(T)s %(M)s %(D)s %(L)s %(p)s %({x-trace}i)s %({x-served}o)s %({absent}i)s"
)
LINE = re.compile(
    r'^127\.0\.0\.1 - alice \[(?P<t>[^]]+)\] "POST /items\?page=2 HTTP/(?P<v>[12](?:\.1)?)" POST '
    r"/items page=2 HTTP/(?P=v) 201 (?P<B>\d+) (?P<b>\d+|-) \"https://example\.com/\" "
    r'"tester/1\.0" (?P<T>\d+) (?P<M>\d+) (?P<D>\d+) (?P<L>\d+\.\d{6}) <(?P<p>\d+)> abc123 '
    r"(?P<served>\S+) -$"
)
HEADERS = [("authorization", "Basic " + base64.b64encode(b"alice:secret").decode()),
           ("referer", "https://example.com/"), ("user-agent", "tester/1.0"),
           ("x-trace", "abc123")]  # fmt: skip
PAUSE = 0.05  # how long the app takes: the durations must show at least that


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]


def apps(body: bytes, streamed: bool) -> dict[str, Any]:
    """A 201 with ``x-served: yes`` and ``body``, after PAUSE (the app's pace, not
    synchronisation); ``streamed``: in two pieces and no content-length."""

    async def messaging(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await asyncio.sleep(PAUSE)
        reply = channels["reply"]
        head = {"status": 201, "headers": [(b"x-served", b"yes")]}
        if streamed:
            await reply.send({**head, "content": body[:3], "more_content": True})
            await reply.send({"content": body[3:]})
        else:
            await reply.send({**head, "content": body})

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(PAUSE)
        headers = [(b"x-served", b"yes")]
        if not streamed:
            headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        if streamed:
            await send({"type": "http.response.body", "body": body[:3], "more_body": True})
            await send({"type": "http.response.body", "body": body[3:]})
        else:
            await send({"type": "http.response.body", "body": body})

    return {"messaging": messaging, "asgi3": asgi}


@pytest.mark.parametrize("streamed", [False, True], ids=["length", "streamed"])
@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
@pytest.mark.parametrize("interface", ["messaging", "asgi3"])
async def test_every_atom(
    interface: str, http2: bool, streamed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    body = b"created!"
    app = apps(body, streamed)[interface]
    async with running_server(
        app, interface=interface, lifespan="off", access_log=True, access_log_format=EVERY_ATOM
    ) as server:
        if http2:
            client = await H2Client.open(server.port)
            stream = client.request("/items?page=2", "POST", headers=HEADERS)
            assert (await client.response(stream)).status == 201
            client.close()
        else:
            raw = await server.connect()
            fields = "".join(f"{name}: {value}\r\n" for name, value in HEADERS)
            await raw.send(
                f"POST /items?page=2 HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n{fields}\r\n"
                .encode()
            )
            assert (await raw.read_response()).status == 201
            raw.close()
    (line,) = lines(caplog)
    match = LINE.match(line)
    assert match, line
    assert match["v"] == ("2" if http2 else "1.1")
    assert int(match["B"]) == len(body) and match["b"] == str(len(body))
    assert match["served"] == "yes" and int(match["p"]) == os.getpid()
    micros = int(match["D"])  # the others are the same duration, truncated or rounded
    assert PAUSE - 0.005 <= micros / 1e6 < 5 * UNIT  # (the loop's clock may wake it early)
    assert int(match["T"]) == micros // 1_000_000 and int(match["M"]) == micros // 1000
    assert abs(float(match["L"]) - micros / 1e6) < 1.5e-6
    logged = time.mktime(time.strptime(match["t"], "%d/%b/%Y:%H:%M:%S %z"))
    assert abs(logged - time.time()) < 60


async def test_a_refusal_and_no_body(caplog: pytest.LogCaptureFixture) -> None:
    # A 503 at --limit-concurrency never reached the app: no response head of its own, b is
    # '-' for an empty body, and a header the request lacks is '-'.
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    running, release = asyncio.Event(), asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        running.set()
        await release.wait()
        await channels["reply"].send({"status": 204})

    fmt = '"%(r)s" %(s)s %(B)s %(b)s %(u)s %({x-served}o)s %({referer}i)s'
    async with running_server(
        app, access_log=True, access_log_format=fmt, limit_concurrency=1
    ) as server:
        first = await server.connect()
        await first.send(b"GET /held HTTP/1.1\r\nhost: t\r\n\r\n")
        await asyncio.wait_for(running.wait(), 5 * UNIT)  # in flight: the limit is reached
        refused = await server.request(b"GET /more HTTP/1.1\r\nhost: t\r\n\r\n")
        release.set()
        assert refused.status == 503 and (await first.read_response()).status == 204
        first.close()
    assert lines(caplog) == [
        '"GET /more HTTP/1.1" 503 0 - - - -', '"GET /held HTTP/1.1" 204 0 - - - -'
    ]  # fmt: skip


async def test_websocket_sessions_are_logged_as_they_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    closed = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["channel"] == "websocket.connect":
            if message["path"] == "/no":
                await channels["reply"].send({"accept": False})
            else:
                await channels["reply"].send({"accept": True})
        elif message["channel"] == "websocket.disconnect":
            closed.set()

    fmt = '"%(r)s" %(s)s %(L)s'
    async with running_server(app, access_log=True, access_log_format=fmt) as server:
        async with connect(f"ws://127.0.0.1:{server.port}/chat?room=1"):
            assert lines(caplog) == []  # open: not logged yet
            await asyncio.sleep(PAUSE)  # how long the session is open (not synchronisation)
        await asyncio.wait_for(closed.wait(), 5 * UNIT)
        with pytest.raises(Exception, match="403"):
            await connect(f"ws://127.0.0.1:{server.port}/no")
    session, refused = lines(caplog)
    request, status, took = session.rsplit(" ", 2)
    assert request == '"GET /chat?room=1 HTTP/1.1"' and status == "101"
    assert PAUSE - 0.005 <= float(took) < 5 * UNIT
    assert refused == '"GET /no HTTP/1.1" 403 0.000000'


async def test_the_default_line_is_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    app = apps(b"x", False)["messaging"]
    async with running_server(app, access_log=True) as server:
        response = await server.request(b"GET /a?b=1 HTTP/1.1\r\nhost: t\r\n\r\n")
    assert response.status == 201
    (line,) = lines(caplog)
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /a\?b=1 HTTP/1\.1" 201', line), line


@pytest.mark.parametrize(
    ("fmt", "error"),
    [
        ("%(h)s %(zz)s", "unknown atom %(zz)s"),
        ("%(h)s 100%", "write a literal % as %%"),
        ("%(h)", "write a literal % as %%"),
        ("%({}i)s", "unknown atom %({}i)s"),
    ],
)
def test_bad_formats_are_refused(fmt: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config(app="app:app", access_log_format=fmt)
    assert "--access-log-format" in str(caught.value) and error in str(caught.value)


async def test_a_fast_request_takes_some_microseconds(caplog: pytest.LogCaptureFixture) -> None:
    # Durations from a clock that counts microseconds: uvloop's loop.time() is when the loop's
    # iteration began, in whole milliseconds, and gave a fast request 0 (or a multiple of 1000).
    caplog.set_level(logging.INFO, logger="uvicorn.access")

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 200, "content": b"fast"})

    async with running_server(app, access_log=True, access_log_format="%(D)s") as server:
        for _ in range(5):
            assert (await server.request(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")).status == 200
    micros = [int(line) for line in lines(caplog)]
    assert len(micros) == 5 and all(0 < n < 1_000_000 * UNIT for n in micros), micros
    assert any(n % 1000 for n in micros), micros  # not milliseconds counted in thousands
