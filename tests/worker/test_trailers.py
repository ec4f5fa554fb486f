"""Trailer fields (SPEC: ``trailers``; ASGI: ``http.response.trailers``), on both protocols and
both interfaces: after the last chunk of a chunked HTTP/1.1 body to a client that sent
``TE: trailers`` (RFC 9112 section 7.1.2), dropped for any other; in a last HEADERS frame on
HTTP/2 (RFC 9113 section 8.1), after a body held back by flow control; a field that must not be
a trailer (RFC 9110 section 6.5.1) is the app's error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import UNIT, get, running_server
from tests.worker.h2client import H2Client

TRAILERS = [(b"x-checksum", b"abc123"), (b"Server-Timing", b"app;dur=3")]


def trailing_app(interface: str, body: bytes = b"hello", trailers: Any = TRAILERS) -> Any:
    """An app that sends ``body`` in two pieces, then ``trailers``; what its sends raised is
    put in ``app.errors``."""
    errors: list[BaseException] = []

    async def messaging(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        try:
            await reply.send({"status": 200, "content": body[:2], "more_content": True})
            await reply.send({"content": body[2:], "trailers": trailers})
        except Exception as exc:
            errors.append(exc)
            raise

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        assert scope["extensions"]["http.response.trailers"] == {}
        try:
            await send({"type": "http.response.start", "status": 200, "trailers": True})
            await send({"type": "http.response.body", "body": body[:2], "more_body": True})
            await send({"type": "http.response.body", "body": body[2:]})
            await send({"type": "http.response.trailers", "headers": trailers[:1],
                        "more_trailers": True})  # fmt: skip
            await send({"type": "http.response.trailers", "headers": trailers[1:]})
        except Exception as exc:
            errors.append(exc)
            raise

    app = messaging if interface == "messaging" else asgi
    app.errors = errors  # type: ignore[attr-defined]
    return app


INTERFACES = pytest.mark.parametrize("interface", ["messaging", "asgi3"])


@INTERFACES
async def test_http11_trailers_follow_the_last_chunk_when_the_client_accepts_them(
    interface: str,
) -> None:
    async with running_server(trailing_app(interface), interface=interface) as server:
        client = await server.connect()
        await client.send(get("/", "te: trailers", "connection: close"))
        data = await client.read_until_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"content-length" not in head.lower()
    assert body == (
        b"2\r\nhe\r\n3\r\nllo\r\n0\r\nx-checksum: abc123\r\nserver-timing: app;dur=3\r\n\r\n"
    )


@INTERFACES
async def test_http11_trailers_are_dropped_for_a_client_that_did_not_ask(interface: str) -> None:
    async with running_server(trailing_app(interface), interface=interface) as server:
        client = await server.connect()
        await client.send(get("/", "te: gzip", "connection: close"))  # not "trailers"
        data = await client.read_until_closed()
    assert data.partition(b"\r\n\r\n")[2] == b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"


@INTERFACES
async def test_http11_keep_alive_goes_on_after_trailers(interface: str) -> None:
    async with running_server(trailing_app(interface), interface=interface) as server:
        client = await server.connect()
        for _ in range(2):
            await client.send(get("/", "te: trailers"))
            response = await client.read_response()
            assert response.status == 200
            assert bytes(response.body) == b"hello"


@INTERFACES
@pytest.mark.parametrize("name", [b"content-length", b"Set-Cookie", b"host", b"trailer"])
async def test_a_field_that_must_not_be_a_trailer_is_the_apps_error(
    interface: str, name: bytes
) -> None:
    app = trailing_app(interface, trailers=[(name, b"1")])
    async with running_server(app, interface=interface) as server:
        client = await server.connect()
        await client.send(get("/", "te: trailers"))
        data = await client.read_until_closed()  # the response cannot be completed
        assert data.startswith(b"HTTP/1.1 200 ")
        assert not data.endswith(b"0\r\n\r\n")
    (error,) = app.errors
    assert isinstance(error, ValueError) and "cannot be a trailer" in str(error)


async def test_trailers_not_announced_are_refused() -> None:
    failures: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        try:
            await send({"type": "http.response.trailers", "headers": TRAILERS})
        except RuntimeError as exc:
            failures.append(exc)
        await send({"type": "http.response.body", "body": b"y"})

    async with running_server(app, interface="asgi3") as server:
        response = await server.request(get("/", "te: trailers"))
    assert bytes(response.body) == b"xy"
    (failure,) = failures
    assert "without being announced" in str(failure)


@INTERFACES
async def test_http2_trailers_end_the_stream_in_a_headers_frame(interface: str) -> None:
    async with running_server(trailing_app(interface), interface=interface) as server:
        client = await H2Client.open(server.port)
        result = await client.response(client.request("/"))
    assert result.status == 200 and bytes(result.data) == b"hello"
    assert result.trailers == [(b"x-checksum", b"abc123"), (b"server-timing", b"app;dur=3")]
    assert result.ended and result.reset is None


async def test_http2_trailers_wait_for_the_body_the_windows_held_back() -> None:
    body = b"z" * 100_000  # more than the 65,535 bytes of the client's initial window
    app = trailing_app("asgi3", body=body)
    async with running_server(app, interface="asgi3") as server:
        client = await H2Client.open(server.port, auto_ack=False)
        stream = client.request("/")
        result = client.streams[stream]
        await client.until(lambda: len(result.data) == 65_535)
        await client.round_trip()  # everything the server would send has arrived
        assert result.trailers is None and not result.ended
        client.give_window(len(body), stream)
        client.give_window(len(body))
        await client.response(stream)
    assert bytes(result.data) == body
    assert result.trailers == [(b"x-checksum", b"abc123"), (b"server-timing", b"app;dur=3")]


async def test_http2_app_returning_before_its_announced_trailers_resets_the_stream() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "trailers": True})
            await send({"type": "http.response.body", "body": b"x"})

    async with running_server(app, interface="asgi3") as server:
        client = await H2Client.open(server.port)
        result = await asyncio.wait_for(client.response(client.request("/")), 5 * UNIT)
    assert bytes(result.data) == b"x" and result.reset == 0x2  # INTERNAL_ERROR
