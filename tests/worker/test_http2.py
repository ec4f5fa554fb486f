"""HTTP/2 in a worker, with real clients (httpx, and the h2 library for precise control): both
app interfaces see what they see over HTTP/1.1, but for ``http_version: '2'``; responses keep
HTTP/1.1's rules (no body for HEAD, 204, 304; 100-continue; 503 under --limit-concurrency;
root path, proxy headers, the access log); an app's failure costs its stream only."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from tests.helpers import UNIT, get, running_server
from tests.worker.h2client import H2Client

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
INTERNAL_ERROR, NO_ERROR = 0x2, 0x0


def recording(interface: str) -> tuple[Any, list[dict[str, Any]]]:
    """An app of ``interface`` that records each request message (or scope, with the body it
    read as ``body``) and answers 200 ``ok``."""
    seen: list[dict[str, Any]] = []

    async def messaging(message: dict[str, Any], channels: dict[str, Any]) -> None:
        message = dict(message)
        if "body" in channels:
            while True:
                chunk = await channels["body"].receive()
                message["body"] += chunk["content"]
                if not chunk["more_content"]:
                    break
        seen.append(message)
        await channels["reply"].send({"status": 200, "content": b"ok"})

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        scope = dict(scope, body=b"")
        while True:
            event = await receive()
            scope["body"] += event.get("body", b"")
            if not event.get("more_body"):
                break
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return (messaging if interface == "messaging" else asgi), seen


@pytest.mark.parametrize("interface", ["messaging", "asgi3"])
async def test_httpx_prior_knowledge_request_and_body(interface: str) -> None:
    app, seen = recording(interface)
    async with (
        running_server(app, interface=interface, lifespan="off") as server,
        httpx.AsyncClient(http1=False, http2=True, base_url=f"http://127.0.0.1:{server.port}")
        as client,
    ):  # fmt: skip
        got = await client.get("/a%20b/c?x=1&y", headers={"X-Custom": "One"})
        posted = await client.post("/upload", content=b"data " * 20_000)
    assert got.http_version == posted.http_version == "HTTP/2"
    assert got.status_code == posted.status_code == 200 and got.content == b"ok"
    first, second = seen
    assert first["http_version"] == second["http_version"] == "2"
    assert first["method"] == "GET" and second["method"] == "POST"
    assert first["path"] == "/a b/c" and first["raw_path"] == b"/a%20b/c"
    assert first["query_string"] == b"x=1&y"
    assert first["scheme"] == "http" and first["client"][0] == "127.0.0.1"
    headers = [tuple(field) for field in first["headers"]]
    assert headers[0] == (b"host", f"127.0.0.1:{server.port}".encode())
    assert (b"x-custom", b"One") in headers
    assert all(name == name.lower() and not name.startswith(b":") for name, _ in headers)
    assert second["body"] == b"data " * 20_000


@pytest.mark.parametrize("interface", ["messaging", "asgi3"])
async def test_host_from_authority_and_cookies_joined(interface: str) -> None:
    app, seen = recording(interface)
    async with running_server(app, interface=interface, lifespan="off") as server:
        client = await H2Client.open(server.port)
        stream = client.request(
            "/", authority="example.com:8443",
            headers=[("cookie", "a=1"), ("x-one", "1"), ("cookie", "b=2"), ("x-two", "2")],
        )  # fmt: skip
        assert (await client.response(stream)).status == 200
        client.close()
    headers = [tuple(field) for field in seen[0]["headers"]]
    # Host first (from :authority), the cookies joined into one field (RFC 9113 section
    # 8.2.3), the other fields in their order.
    assert headers == [(b"host", b"example.com:8443"), (b"x-one", b"1"), (b"x-two", b"2"),
                       (b"cookie", b"a=1; b=2")]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304), ("POST", 204)]
)
async def test_head_204_and_304_carry_no_data(method: str, status: int) -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": status, "content": b"not sent"})

    async with running_server(app) as server:
        client = await H2Client.open(server.port)
        stream = client.request("/", method)
        streamed = client.request("/", method)  # and the same streamed: more_content
        result = await client.response(stream)
        assert (await client.response(streamed)).status == status
        client.close()
    assert result.status == status and result.ended and result.reset is None
    assert result.data == b"" and result.data_frames == 0
    data_frames = [e for e in client.events if type(e).__name__ == "DataReceived"]
    assert data_frames == []


async def test_100_continue_only_when_the_app_reads() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["path"] == "/refuse":  # answered before reading: the client is spared
            await channels["reply"].send({"status": 413, "content": b"too big"})
            return
        body = message["body"]
        while "body" in channels:
            chunk = await channels["body"].receive()
            body += chunk["content"]
            if not chunk["more_content"]:
                break
        await channels["reply"].send({"status": 200, "content": b"got " + body})

    async with running_server(app) as server:
        client = await H2Client.open(server.port)
        expect = [("expect", "100-continue"), ("content-length", "5")]
        stream = client.request("/read", "POST", expect, end_stream=False)
        await client.until(lambda: client.streams[stream].interim == [100])
        assert client.streams[stream].status == 0
        client.send_body(stream, b"hello", end_stream=True)
        result = await client.response(stream)
        assert result.status == 200 and result.data == b"got hello"

        refused = client.request("/refuse", "POST", expect, end_stream=False)
        result = await client.response(refused)
        assert result.status == 413 and result.interim == [] and result.data == b"too big"
        # The request was never completed: the server asks for no more of it, without error.
        await client.until(lambda: client.streams[refused].reset is not None)
        assert client.streams[refused].reset == NO_ERROR
        # And the connection goes on.
        again = client.request("/read", "POST", body=b"x")
        assert (await client.response(again)).data == b"got x"
        client.close()


async def test_limit_concurrency_answers_503_on_the_stream() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        started.set()
        await release.wait()
        await channels["reply"].send({"status": 200, "content": b"ok"})

    async with running_server(app, limit_concurrency=1) as server:
        client = await H2Client.open(server.port)
        first = client.request("/")
        await asyncio.wait_for(started.wait(), 5 * UNIT)
        second = client.request("/")
        refused = await client.response(second)
        assert refused.status == 503 and refused.data.startswith(b"Service Unavailable")
        assert not client.streams[first].done
        release.set()
        assert (await client.response(first)).data == b"ok"
        third = client.request("/")  # the limit is per request in flight, not per connection
        assert (await client.response(third)).status == 200
        client.close()


@pytest.mark.parametrize("interface", ["messaging", "asgi3"])
async def test_root_path_and_proxy_headers_as_over_http11(interface: str) -> None:
    app, seen = recording(interface)
    proxy = [("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")]
    async with running_server(app, interface=interface, lifespan="off",
                              root_path="/mounted") as server:  # fmt: skip
        await server.request(get("/p?q=1", *[f"{name}: {value}" for name, value in proxy]))
        client = await H2Client.open(server.port)
        assert (await client.response(client.request("/p?q=1", headers=proxy))).status == 200
        client.close()
    over_h1, over_h2 = seen
    assert over_h2["client"] == ["1.2.3.4", 0] and over_h2["scheme"] == "https"
    assert over_h2["root_path"] == "/mounted"
    keys = ("scheme", "client", "root_path", "path", "raw_path", "query_string", "method")
    assert {k: over_h2[k] for k in keys} == {k: over_h1[k] for k in keys}


async def test_access_log_says_http2(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    app, _ = recording("messaging")
    async with running_server(app, access_log=True) as server:
        client = await H2Client.open(server.port)
        assert (await client.response(client.request("/logged?x=1"))).status == 200
        client.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert len(lines) == 1 and lines[0].startswith("127.0.0.1:"), lines
    assert lines[0].endswith('"GET /logged?x=1 HTTP/2" 200'), lines


async def test_an_app_that_raises_before_answering_costs_its_stream_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["path"] == "/boom":
            raise ZeroDivisionError("boom")
        await channels["reply"].send({"status": 200, "content": b"start", "more_content": True})
        await release.wait()
        await channels["reply"].send({"content": b" end"})

    async with running_server(app) as server:
        client = await H2Client.open(server.port)
        slow = client.request("/slow")
        await client.until(lambda: client.streams[slow].data == b"start")
        boom = client.request("/boom")
        failed = await client.response(boom)
        assert failed.status == 500 and failed.data.startswith(b"Internal Server Error")
        release.set()
        result = await client.response(slow)
        assert result.status == 200 and result.data == b"start end" and result.reset is None
        assert client.goaways == []
        client.close()
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


async def test_a_broken_content_length_resets_its_stream_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        if message["path"] == "/broken":
            await reply.send({"status": 200, "headers": [(b"content-length", b"10")],
                              "content": b"12345", "more_content": True})  # fmt: skip
            await reply.send({"content": b"1234567890"})  # 15 bytes of 10
        await reply.send({"status": 200, "content": b"fine"})

    async with running_server(app) as server:
        client = await H2Client.open(server.port)
        broken = client.request("/broken")
        result = await client.response(broken)
        assert result.status == 200 and result.reset == INTERNAL_ERROR and not result.ended
        assert len(result.data) < 10  # never the whole declared length: the client can tell
        fine = client.request("/fine")
        assert (await client.response(fine)).data == b"fine"
        assert client.goaways == [] and not client.eof
        client.close()
    assert any("content-length" in str(r.exc_info and r.exc_info[1]) for r in caplog.records)


async def test_http_1_1_only_refuses_the_preface_with_505() -> None:
    app, seen = recording("messaging")
    async with running_server(app, http="1.1") as server:
        client = await server.connect()
        await client.send(PREFACE)
        response = await client.read_response()
        assert response.status == 505
        await client.read_until_closed()
        client.close()
        async with httpx.AsyncClient(http1=False, http2=True) as h2:
            with pytest.raises(httpx.HTTPError):
                await h2.get(f"http://127.0.0.1:{server.port}/")
        assert (await server.request(get())).status == 200  # HTTP/1.1 is served
    assert [m["http_version"] for m in seen] == ["1.1"]


async def test_http_2_only_refuses_http_1_1_and_serves_prior_knowledge() -> None:
    app, seen = recording("messaging")
    async with running_server(app, http="2") as server:
        response = await server.request(get())
        assert response.status == 505
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            answer = await client.get(f"http://127.0.0.1:{server.port}/h2")
        assert answer.http_version == "HTTP/2" and answer.content == b"ok"
    assert [(m["http_version"], m["path"]) for m in seen] == [("2", "/h2")]


async def test_h2c_upgrade_answers_101_then_the_request_on_stream_1() -> None:
    app, seen = recording("messaging")
    async with running_server(app) as server:
        client, head = await H2Client.upgrade(server.port, "/upgraded?x=1",
                                              b"x-custom: kept\r\n")  # fmt: skip
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"upgrade: h2c" in head.lower()
        result = await client.response(1)
        assert result.status == 200 and result.data == b"ok"
        then = client.request("/next")  # stream 3, on the same connection
        assert then == 3 and (await client.response(then)).data == b"ok"
        client.close()
    upgraded, following = seen
    assert upgraded["http_version"] == following["http_version"] == "2"
    assert upgraded["path"] == "/upgraded" and upgraded["query_string"] == b"x=1"
    names = [name for name, _ in upgraded["headers"]]
    assert b"x-custom" in names and b"host" in names
    assert not {b"connection", b"upgrade", b"http2-settings"} & set(names)


async def test_h2c_upgrade_without_http2_settings_is_a_400() -> None:
    app, seen = recording("messaging")
    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get("/", "connection: upgrade", "upgrade: h2c"))
        response = await client.read_response()
        assert response.status == 400
        await client.read_until_closed()
        client.close()
    assert seen == []
