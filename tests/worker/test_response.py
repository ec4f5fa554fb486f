"""The reply channel's framing: content-length, chunked, close-delimited, bodiless responses,
default headers, keep-alive and pipelining."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import get, only_connection, running_server, skip_if_compiled
from tests.worker.h2client import H2Client
from uvicorn.worker.connection import HTTPConnection


# The README's example, verbatim.
async def stream_response(message, channels):  # type: ignore[no-untyped-def]
    # Send the start of the response.
    await channels["reply"].send(
        {
            "status": 200,
            "headers": [
                [b"content-type", b"text/plain"],
            ],
            "content": b"",
            "more_content": True,
        }
    )

    # Stream response content.
    for chunk in [b"Hello", b", ", b"world"]:
        await channels["reply"].send({"content": chunk, "more_content": True})

    # End the response.
    await channels["reply"].send({"content": b"", "more_content": False})


def replying(*messages: dict[str, Any]) -> Any:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        for reply in messages:
            await channels["reply"].send(reply)

    return app


async def test_content_length_for_a_response_complete_in_one_message() -> None:
    app = replying({"status": 200, "headers": [[b"content-type", b"text/plain"]], "content": b"hi"})
    async with running_server(app) as server:
        response = await server.request(get())
    assert response.status == 200 and response.body == b"hi"
    assert response.header(b"content-length") == b"2"
    assert response.header(b"transfer-encoding") is None
    assert response.header(b"content-type") == b"text/plain"


async def test_defaults_status_only() -> None:
    async with running_server(replying({"status": 404})) as server:
        response = await server.request(get())
    assert response.status == 404 and response.body == b""
    assert response.header(b"content-length") == b"0"


async def test_readme_stream_response_is_chunked() -> None:
    async with running_server(stream_response) as server:
        client = await server.connect()
        for _ in range(2):  # the connection stays usable after a chunked response
            await client.send(get())
            response = await client.read_response()
            assert response.status == 200
            assert response.chunked and response.header(b"content-length") is None
            assert response.body == b"Hello, world"
        client.close()
    assert client.raw.count(b"0\r\n\r\n") == 2


async def test_messages_made_once_are_sent_again_unchanged() -> None:
    # SPEC: the server never changes a message it is given, so an app may keep its messages
    # as constants (benchmarks/apps/stream.py does) and send them on every request.
    import copy

    start = {"status": 200, "headers": [[b"content-type", b"text/plain"]], "more_content": True}
    part = {"content": b"ab", "more_content": True}
    end = {"content": b"c", "trailers": [[b"x-sum", b"3"]]}
    sent = copy.deepcopy([start, part, end])
    async with running_server(replying(start, part, end)) as server:
        client = await server.connect()
        for _ in range(2):
            await client.send(get("/", "te: trailers"))
            response = await client.read_response()
            assert response.status == 200 and response.chunked and response.body == b"abc"
        client.close()
        h2 = await H2Client.open(server.port)  # and over HTTP/2, twice on one connection
        for _ in range(2):
            result = await h2.response(h2.request("/"))
            assert result.status == 200 and bytes(result.data) == b"abc"
            assert result.trailers == [(b"x-sum", b"3")]
        h2.close()
    assert client.raw.count(b"x-sum: 3\r\n") == 2
    assert [start, part, end] == sent


async def test_app_content_length_is_used_for_a_stream() -> None:
    app = replying(
        {"status": 200, "headers": [[b"Content-Length", b"10"]], "more_content": True},
        {"content": b"01234", "more_content": True},
        {"content": b"56789"},
    )
    async with running_server(app) as server:
        response = await server.request(get())
    assert response.body == b"0123456789"
    assert response.header(b"content-length") == b"10" and not response.chunked


async def test_app_transfer_encoding_header_is_not_doubled() -> None:
    app = replying(
        {"status": 200, "headers": [[b"transfer-encoding", b"chunked"]], "more_content": True},
        {"content": b"abc"},
    )
    async with running_server(app) as server:
        response = await server.request(get())
    assert response.body == b"abc"
    assert [k for k, _ in response.headers if k.lower() == b"transfer-encoding"] == [
        b"transfer-encoding"
    ]


async def test_head_has_no_body_but_keeps_the_length() -> None:
    app = replying({"status": 200, "content": b"a body of 18 bytes"})
    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get(method="HEAD"))
        response = await client.read_response(head=True)
        assert response.header(b"content-length") == b"18"
        # The connection stays in sync: the next response is parsed correctly.
        await client.send(get())
        response = await client.read_response()
        assert response.body == b"a body of 18 bytes"
        client.close()
    assert client.raw.count(b"a body of 18 bytes") == 1


async def test_head_streamed() -> None:
    async with running_server(stream_response) as server:
        client = await server.connect()
        await client.send(get(method="HEAD") + get())
        head = await client.read_response(head=True)
        assert head.status == 200 and head.body == b""
        response = await client.read_response()
        assert response.body == b"Hello, world"
        client.close()


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses(status: int) -> None:
    app = replying({"status": status, "more_content": True}, {"content": b""})
    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get() + get())
        first = await client.read_response(head=True)
        assert first.status == status
        second = await client.read_response(head=True)
        assert second.status == status
        client.close()
    head = client.raw.split(b"\r\n\r\n")[0].lower()
    assert b"content-length" not in head and b"transfer-encoding" not in head


async def test_date_and_server_headers() -> None:
    async with running_server(replying({"status": 200})) as server:
        response = await server.request(get())
    assert response.header(b"server") == b"uvicorn"
    date = response.header(b"date")
    assert date is not None and date.endswith(b" GMT")


async def test_app_headers_replace_date_and_server() -> None:
    app = replying({"status": 200, "headers": [[b"Server", b"mine"], [b"Date", b"then"]]})
    async with running_server(app) as server:
        response = await server.request(get())
    names = [k.lower() for k, _ in response.headers]
    assert names.count(b"server") == 1 and names.count(b"date") == 1
    assert response.header(b"server") == b"mine" and response.header(b"date") == b"then"


async def test_no_server_no_date_and_extra_headers() -> None:
    async with running_server(
        replying({"status": 200}),
        server_header=False,
        date_header=False,
        headers=["X-Extra: one", "x-other:two"],
    ) as server:
        response = await server.request(get())
    assert response.header(b"server") is None and response.header(b"date") is None
    assert response.header(b"x-extra") == b"one" and response.header(b"x-other") == b"two"


async def test_extra_server_or_date_header_replaces_the_default() -> None:
    options: dict[str, Any] = {"headers": ["Server: custom", "date: fixed"]}
    async with running_server(replying({"status": 200}), **options) as server:
        response = await server.request(get())
    assert [v for k, v in response.headers if k == b"server"] == [b"custom"]
    assert [v for k, v in response.headers if k == b"date"] == [b"fixed"]


async def test_app_header_names_are_sent_as_given() -> None:
    app = replying(
        {"status": 200, "headers": [[b"X-CamelCase", b"v"], [b"x-dup", b"1"], [b"x-dup", b"2"]]}
    )
    async with running_server(app) as server:
        response = await server.request(get())
    assert (b"X-CamelCase", b"v") in response.headers
    assert [v for k, v in response.headers if k == b"x-dup"] == [b"1", b"2"]


async def test_keep_alive_is_the_default_for_http_11() -> None:
    async with running_server(replying({"status": 200, "content": b"x"})) as server:
        client = await server.connect()
        for _ in range(5):
            await client.send(get())
            response = await client.read_response()
            assert response.header(b"connection") is None
        assert only_connection(server) is not None
        client.close()


async def test_pipelined_requests_answered_in_order_one_at_a_time() -> None:
    running: list[str] = []
    overlap: list[bool] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        overlap.append(bool(running))
        running.append(message["path"])
        await asyncio.sleep(0)  # give a concurrent call the chance to start
        await channels["reply"].send({"status": 200, "content": message["path"].encode()})
        await asyncio.sleep(0)
        running.remove(message["path"])

    paths = [f"/{i}" for i in range(10)]
    async with running_server(app) as server:
        client = await server.connect()
        await client.send(b"".join(get(path) for path in paths))  # one write
        bodies = [(await client.read_response()).body for _ in paths]
        client.close()
    assert bodies == [path.encode() for path in paths]
    assert overlap == [False] * len(paths)


async def test_pipelined_posts_with_bodies() -> None:
    async def echo(message: dict[str, Any], channels: dict[str, Any]) -> None:
        body = message["body"]
        while "body" in channels:
            chunk = await channels["body"].receive()
            body += chunk["content"]
            if not chunk["more_content"]:
                break
        await channels["reply"].send({"status": 200, "content": body})

    def post(body: bytes) -> bytes:
        return get("/", f"content-length: {len(body)}", method="POST") + body

    bodies = [b"a" * 10, b"b" * 100_000, b"", b"c" * 3]
    async with running_server(echo) as server:
        client = await server.connect()
        await client.send(b"".join(post(body) for body in bodies))
        received = [(await client.read_response()).body for _ in bodies]
        client.close()
    assert received == bodies


async def test_connection_close_from_the_app() -> None:
    app = replying({"status": 200, "headers": [[b"Connection", b"close"]], "content": b"bye"})
    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get() + get())  # the second request is never answered
        response = await client.read_response()
        raw = await client.read_until_closed()
        client.close()
    assert response.body == b"bye"
    assert raw.count(b"HTTP/1.1 ") == 1


async def test_connection_close_from_the_client() -> None:
    async with running_server(replying({"status": 200, "content": b"x"})) as server:
        client = await server.connect()
        await client.send(get("/", "connection: close"))
        response = await client.read_response()
        await client.read_until_closed()
        client.close()
    assert response.header(b"connection") == b"close"


async def test_http_10_streaming_is_close_delimited() -> None:
    async with running_server(stream_response) as server:
        client = await server.connect()
        await client.send(b"GET / HTTP/1.0\r\n\r\n")
        raw = await client.read_until_closed()
        client.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding" not in head.lower() and b"content-length" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"Hello, world"


async def test_http_10_keep_alive() -> None:
    async with running_server(replying({"status": 200, "content": b"ten"})) as server:
        client = await server.connect()
        for _ in range(2):
            await client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            response = await client.read_response()
            assert response.body == b"ten"
            assert response.header(b"connection") == b"keep-alive"
        client.close()


async def test_http_10_without_keep_alive_closes() -> None:
    async with running_server(replying({"status": 200, "content": b"ten"})) as server:
        client = await server.connect()
        await client.send(b"GET / HTTP/1.0\r\n\r\n")
        response = await client.read_response()
        await client.read_until_closed()
        client.close()
    assert response.body == b"ten" and response.header(b"content-length") == b"3"


async def test_interim_103_then_final() -> None:
    app = replying(
        {"status": 103, "headers": [[b"link", b"</s.css>; rel=preload"]]},
        {"status": 200, "content": b"final"},
    )
    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get())
        response = await client.read_response()
        while response.status == 103:
            response = await client.read_response()
        client.close()
    assert response.status == 200 and response.body == b"final"
    assert client.raw.startswith(b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\n")


class RecordingTransport:
    """Wraps a transport and records each write."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def test_several_sends_leave_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    # SPEC: a send() returns once the data is queued; it reaches the socket before the server
    # next waits for I/O, so small sends in a row are coalesced.
    skip_if_compiled(HTTPConnection)
    original = HTTPConnection.connection_made
    transports: list[RecordingTransport] = []

    def connection_made(self: HTTPConnection, transport: Any) -> None:
        transports.append(RecordingTransport(transport))
        original(self, transports[-1])  # type: ignore[arg-type]

    monkeypatch.setattr(HTTPConnection, "connection_made", connection_made)
    async with running_server(stream_response) as server:
        client = await server.connect()
        await client.send(get())
        response = await client.read_response()
        client.close()
    assert response.body == b"Hello, world"
    (transport,) = transports
    assert len(transport.writes) == 1


async def test_asgi_framing() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": [[b"x", b"y"]]})
            for part in (b"a", b"b", b""):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body"})
        else:
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"whole"})

    async with running_server(app, lifespan="off") as server:
        client = await server.connect()
        await client.send(get("/stream") + get("/whole") + get("/whole", method="HEAD"))
        streamed = await client.read_response()
        whole = await client.read_response()
        head = await client.read_response(head=True)
        client.close()
    assert streamed.chunked and streamed.body == b"ab" and streamed.header(b"x") == b"y"
    assert whole.header(b"content-length") == b"5" and whole.body == b"whole"
    assert head.header(b"content-length") == b"5" and head.body == b""
