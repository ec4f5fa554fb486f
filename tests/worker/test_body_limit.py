"""--limit-request-body in a worker, with real sockets: both interfaces, HTTP/1.1 and HTTP/2,
with a content-length and without (chunked; an HTTP/2 body without one), and the WSGI adapter's
``wsgi.input``. A declared length above the limit gets 413 before the app is called (HTTP/1.1:
then the connection closes; HTTP/2: the stream is reset with NO_ERROR, the connection goes on);
a body that grows past it gets 413 if the response has not started, else the connection closes
(HTTP/2: the stream is reset); the app never receives more than the limit, and is told its client
is gone (SPEC)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import httpx
import pytest

from tests.helpers import UNIT, get, running_server
from tests.worker.h2client import H2Client

LIMIT = 100
NO_ERROR, INTERNAL_ERROR = 0x0, 0x2
CLOSED = {"content": b"", "closed": True, "more_content": False}  # SPEC: the client went away
DISCONNECT = {"type": "http.disconnect"}
INTERFACES = ["messaging", "asgi3"]


@pytest.fixture(autouse=True)
def nothing_alarming(caplog: pytest.LogCaptureFixture) -> Any:
    """An app told its client is gone, whose next send() then raises ClientDisconnected, has
    not failed: nothing is logged as an error."""
    yield
    assert [r.getMessage() for r in caplog.get_records("call") if r.levelno >= logging.ERROR] == []


class Recorder:
    """What the app was given: calls, body bytes, the last body message, and events to wait
    on (a first body piece received, the app's call over)."""

    def __init__(self) -> None:
        self.calls = 0
        self.received = bytearray()
        self.last: dict[str, Any] | None = None
        self.got = asyncio.Event()
        self.done = asyncio.Event()


def recording_app(interface: str) -> tuple[Any, Recorder]:
    """An app that reads the whole body and answers its length; on ``/stream`` it starts its
    response before reading."""
    rec = Recorder()

    async def messaging(message: dict[str, Any], channels: dict[str, Any]) -> None:
        rec.calls += 1
        reply = channels["reply"]
        stream = message["path"] == "/stream"
        try:
            if stream:
                await reply.send({"status": 200, "content": b"started", "more_content": True})
            rec.received += message["body"]
            if message["body"]:
                rec.got.set()
            while "body" in channels:
                chunk = await channels["body"].receive()
                rec.last = chunk
                rec.received += chunk["content"]
                rec.got.set()
                if not chunk["more_content"]:
                    break
            if stream:
                await reply.send({"content": b"done"})
            else:
                await reply.send({"status": 200, "content": b"%d" % len(rec.received)})
        finally:
            rec.done.set()

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.calls += 1
        stream = scope["path"] == "/stream"
        try:
            if stream:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"started", "more_body": True})
            while True:
                event = await receive()
                rec.last = event
                rec.received += event.get("body", b"")
                rec.got.set()
                if event["type"] != "http.request" or not event.get("more_body"):
                    break
            if not stream:
                await send({"type": "http.response.start", "status": 200, "headers": []})
            body = b"done" if stream else b"%d" % len(rec.received)
            await send({"type": "http.response.body", "body": body})
        finally:
            rec.done.set()

    return (messaging if interface == "messaging" else asgi), rec


def post(path: str, *headers: str) -> bytes:
    return get(path, *headers, method="POST")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def limited(app: Any, interface: str) -> Any:
    """``running_server`` with the body limit (``LIMIT``), no lifespan."""
    return running_server(app, interface=interface, lifespan="off", limit_request_body=LIMIT)


async def send_first_60(client: Any, rec: Recorder, path: str = "/") -> None:
    """A chunked POST's head and its first 60 bytes (under the limit), once the app got them."""
    await client.send(post(path, "transfer-encoding: chunked") + chunk(b"a" * 60))
    await wait(rec.got)


async def wait(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), 5 * UNIT)


# HTTP/1.1


@pytest.mark.parametrize("interface", INTERFACES)
async def test_a_content_length_above_the_limit_is_413_and_the_app_is_never_called(
    interface: str,
) -> None:
    app, rec = recording_app(interface)
    async with limited(app, interface) as server:
        within = await server.request(post("/", f"content-length: {LIMIT}") + b"x" * LIMIT)
        assert (within.status, within.body) == (200, b"100")
        client = await server.connect()
        await client.send(post("/", f"content-length: {LIMIT + 1}") + b"x" * (LIMIT + 1))
        response = await client.read_response()
        assert response.status == 413 and response.header(b"connection") == b"close"
        await client.read_until_closed()  # RFC 9110 section 15.5.14: the body is not read
        # Expect: 100-continue: the 413 spares the client its upload (no 100 first).
        client = await server.connect()
        await client.send(post("/", "content-length: 5000", "expect: 100-continue"))
        raw = await client.read_until_closed()
        assert raw.startswith(b"HTTP/1.1 413 ") and b" 100 " not in raw
    assert rec.calls == 1  # the request within the limit only


@pytest.mark.parametrize("interface", INTERFACES)
async def test_a_chunked_body_crossing_the_limit_gets_413_and_the_app_a_disconnect(
    interface: str,
) -> None:
    app, rec = recording_app(interface)
    async with limited(app, interface) as server:
        client = await server.connect()
        await send_first_60(client, rec)
        await client.send(chunk(b"b" * 60) + chunk(b"c" * 60) + b"0\r\n\r\n")
        response = await client.read_response()
        assert response.status == 413 and response.header(b"connection") == b"close"
        await client.read_until_closed()
        await wait(rec.done)
        # Told its client is gone, though the last chunk came: never a whole body that is not.
        assert rec.last == (CLOSED if interface == "messaging" else DISCONNECT)
        # A body within the limit, chunked, on a new connection: served whole.
        within = await server.request(
            post("/", "transfer-encoding: chunked") + chunk(b"d" * 50) + chunk(b"e" * 50)
            + b"0\r\n\r\n"
        )  # fmt: skip
        assert (within.status, within.body) == (200, b"160")  # (60 before, and these 100)
    assert bytes(rec.received[:60]) == b"a" * 60 and b"b" not in rec.received
    assert rec.calls == 2


@pytest.mark.parametrize("interface", INTERFACES)
async def test_the_last_body_message_after_crossing_says_the_client_is_gone(
    interface: str,
) -> None:
    app, rec = recording_app(interface)
    async with limited(app, interface) as server:
        client = await server.connect()
        await send_first_60(client, rec)
        await client.send(chunk(b"b" * 41))
        await wait(rec.done)
        assert (await client.read_response()).status == 413
        client.close()
    assert rec.last == (CLOSED if interface == "messaging" else DISCONNECT)
    assert bytes(rec.received) == b"a" * 60


@pytest.mark.parametrize("interface", INTERFACES)
async def test_a_body_crossing_the_limit_after_the_response_started_closes_the_connection(
    interface: str,
) -> None:
    app, rec = recording_app(interface)
    async with limited(app, interface) as server:
        client = await server.connect()
        await send_first_60(client, rec, "/stream")
        await client.send(chunk(b"b" * 60))
        raw = await client.read_until_closed()
        await wait(rec.done)
    assert raw.startswith(b"HTTP/1.1 200 ") and b"started" in raw
    assert b"413" not in raw and not raw.endswith(b"0\r\n\r\n")  # cut short: never complete
    assert bytes(rec.received) == b"a" * 60


async def test_a_pipelined_request_crossing_the_limit_is_answered_413_in_its_turn() -> None:
    called, release = asyncio.Event(), asyncio.Event()
    paths: list[str] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        paths.append(message["path"])
        called.set()
        await release.wait()
        await channels["reply"].send({"status": 200, "content": b"first"})

    async with running_server(app, limit_request_body=LIMIT) as server:
        client = await server.connect()
        await client.send(get("/first"))
        await wait(called)
        # The second request's body crosses the limit while the first is being answered.
        await client.send(post("/second", "transfer-encoding: chunked") + chunk(b"a" * 101)
                          + b"0\r\n\r\n")  # fmt: skip
        await client.send(get("/third"))
        release.set()
        first = await client.read_response()
        second = await client.read_response()
        await client.read_until_closed()
    assert (first.status, first.body, second.status) == (200, b"first", 413)
    assert paths == ["/first"]


@pytest.mark.parametrize("http2", [False, True])
async def test_httpx_gets_413_for_a_declared_length_above_the_limit(http2: bool) -> None:
    app, rec = recording_app("asgi3")
    async with (
        limited(app, "asgi3") as server,
        httpx.AsyncClient(http1=not http2, http2=http2, base_url=f"http://127.0.0.1:{server.port}")
        as client,
    ):
        too_large = await client.post("/", content=b"x" * (LIMIT + 1))
        fits = await client.post("/", content=b"x" * LIMIT)
    assert too_large.status_code == 413 and too_large.http_version == ("HTTP/2" if http2 else
                                                                       "HTTP/1.1")  # fmt: skip
    assert (fits.status_code, fits.content) == (200, b"100")
    assert rec.calls == 1


# HTTP/2


@pytest.mark.parametrize("interface", INTERFACES)
async def test_http2_a_content_length_above_the_limit_is_413_and_the_connection_goes_on(
    interface: str,
) -> None:
    app, rec = recording_app(interface)
    async with limited(app, interface) as server:
        client = await H2Client.open(server.port)
        refused = client.request("/", "POST", [("content-length", "101")], end_stream=False)
        result = await client.response(refused)
        assert result.status == 413 and result.ended
        # RFC 9113 section 8.1: the client is asked to stop sending, without error.
        await client.until(lambda: result.reset is not None)
        assert result.reset == NO_ERROR
        served = client.request("/", "POST", [("content-length", "100")], b"x" * 100)
        assert (await client.response(served)).data == b"100"
        assert client.goaways == [] and not client.eof
        client.close()
    assert rec.calls == 1


@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize("end", [False, True], ids=["more", "ended"])
async def test_http2_a_body_crossing_the_limit_gets_413_and_the_stream_reset(
    interface: str, end: bool
) -> None:
    app, rec = recording_app(interface)
    async with limited(app, interface) as server:
        client = await H2Client.open(server.port)
        stream = client.request("/", "POST", end_stream=False)  # no content-length
        client.send_body(stream, b"a" * 60)
        await wait(rec.got)
        # ``end``: the client's stream ends with the crossing bytes (not the app's whole body).
        client.send_body(stream, b"b" * 60, end_stream=end)
        result = await client.response(stream)
        assert result.status == 413 and result.ended
        await wait(rec.done)
        await client.round_trip()
        # RFC 9113 section 8.1: a stream still open is reset, without error; one the client
        # ended is closed both ways by the answer.
        assert result.reset == (None if end else NO_ERROR)
        last = rec.last
        served = client.request("/", "POST", [], b"x" * 100)
        assert (await client.response(served)).data == b"160"  # (the 60 before, and 100)
        assert client.goaways == [] and not client.eof
        client.close()
    assert last == (CLOSED if interface == "messaging" else DISCONNECT)
    assert bytes(rec.received[:60]) == b"a" * 60 and b"b" not in rec.received


@pytest.mark.parametrize("interface", INTERFACES)
async def test_http2_a_body_crossing_the_limit_after_the_response_started_resets_the_stream(
    interface: str,
) -> None:
    app, rec = recording_app(interface)
    async with limited(app, interface) as server:
        client = await H2Client.open(server.port)
        stream = client.request("/stream", "POST", end_stream=False)
        client.send_body(stream, b"a" * 60)
        await wait(rec.got)
        client.send_body(stream, b"b" * 60)
        result = await client.response(stream)
        await wait(rec.done)
        assert (result.status, result.reset, result.ended) == (200, INTERNAL_ERROR, False)
        assert bytes(result.data) == b"started"
        assert client.goaways == [] and not client.eof
        client.close()
    assert bytes(rec.received) == b"a" * 60


# The WSGI adapter (--interface wsgi): wsgi.input reads no more than the limit.


def wsgi_app(calls: list[str], errors: list[BaseException], reading: threading.Event,
             done: threading.Event) -> Any:  # fmt: skip
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        reading.set()
        try:
            data = environ["wsgi.input"].read()
        except OSError as exc:
            errors.append(exc)
            raise
        finally:
            done.set()
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"%d" % len(data)]

    return app


async def test_wsgi_input_never_reads_past_the_limit() -> None:
    calls: list[str] = []
    errors: list[BaseException] = []
    reading, done = threading.Event(), threading.Event()
    app = wsgi_app(calls, errors, reading, done)
    async with running_server(app, interface="wsgi", limit_request_body=LIMIT) as server:
        fits = await server.request(post("/fits", f"content-length: {LIMIT}") + b"x" * LIMIT)
        assert (fits.status, fits.body) == (200, b"100")
        declared = await server.request(post("/declared", "content-length: 101") + b"x" * 101)
        assert declared.status == 413
        client = await server.connect()
        reading.clear()
        done.clear()
        await client.send(post("/chunked", "transfer-encoding: chunked") + chunk(b"a" * 60))
        assert await asyncio.to_thread(reading.wait, 5 * UNIT)
        await client.send(chunk(b"b" * 60) + b"0\r\n\r\n")
        response = await client.read_response()
        await client.read_until_closed()
        assert await asyncio.to_thread(done.wait, 5 * UNIT)
    assert response.status == 413
    assert calls == ["/fits", "/chunked"]  # never called for the declared 101 bytes
    assert len(errors) == 1  # wsgi.input's read() failed, as on a lost client (OSError)
