"""``103 Early Hints`` (RFC 8297): ASGI's ``http.response.early_hint`` and the messaging
interface's 1xx reply go the same way, a ``link`` field per link, before the final response, on
HTTP/1.1 and HTTP/2; never to an HTTP/1.0 client (RFC 9110 section 15.2)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import get, running_server
from tests.worker.h2client import H2Client

LINKS = [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload; as=script"]


def hinting_app(interface: str, links: Any = LINKS) -> Any:
    errors: list[BaseException] = []

    async def messaging(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        await reply.send({"status": 103, "headers": [(b"link", link) for link in links]})
        await reply.send({"status": 200, "content": b"page"})

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        assert "http.response.early_hint" in scope["extensions"]
        try:
            await send({"type": "http.response.early_hint", "links": links})
        except Exception as exc:
            errors.append(exc)
            raise
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"page"})

    app = messaging if interface == "messaging" else asgi
    app.errors = errors  # type: ignore[attr-defined]
    return app


INTERFACES = pytest.mark.parametrize("interface", ["messaging", "asgi3"])


@INTERFACES
async def test_http11_103_with_a_link_field_per_link_then_the_response(interface: str) -> None:
    async with running_server(hinting_app(interface), interface=interface) as server:
        client = await server.connect()
        await client.send(get("/", "connection: close"))
        data = await client.read_until_closed()
    hint, _, rest = data.partition(b"\r\n\r\n")
    assert hint.split(b"\r\n") == [
        b"HTTP/1.1 103 Early Hints",
        b"link: </style.css>; rel=preload; as=style",
        b"link: </app.js>; rel=preload; as=script",
    ]
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(b"\r\n\r\npage")


@INTERFACES
async def test_no_early_hints_to_an_http10_client(interface: str) -> None:
    async with running_server(hinting_app(interface), interface=interface) as server:
        client = await server.connect()
        await client.send(get("/", version="1.0"))
        data = await client.read_until_closed()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"103" not in data


@INTERFACES
async def test_http2_103_is_an_interim_headers_frame(interface: str) -> None:
    async with running_server(hinting_app(interface), interface=interface) as server:
        client = await H2Client.open(server.port)
        result = await client.response(client.request("/"))
    assert result.interim == [103] and result.status == 200 and bytes(result.data) == b"page"


@pytest.mark.parametrize(
    ("links", "error"), [(b"</a>; rel=preload", TypeError), (["</a>"], TypeError),
                         ([b"</a>\r\nx-injected: 1"], ValueError)],
)  # fmt: skip
async def test_bad_links_are_the_apps_error(links: Any, error: type[Exception]) -> None:
    app = hinting_app("asgi3", links)
    async with running_server(app, interface="asgi3") as server:
        response = await server.request(get("/"))
    assert response.status == 500  # the app failed before its response
    (raised,) = app.errors
    assert isinstance(raised, error)


async def test_an_early_hint_after_the_start_is_refused() -> None:
    failures: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200})
        try:
            await send({"type": "http.response.early_hint", "links": LINKS})
        except RuntimeError as exc:
            failures.append(exc)
        await send({"type": "http.response.body", "body": b"page"})

    async with running_server(app, interface="asgi3") as server:
        response = await server.request(get("/"))
    assert response.status == 200 and bytes(response.body) == b"page"
    assert "after http.response.start" in str(failures[0])


async def test_an_early_hint_is_not_the_answer_to_an_expect_100_continue() -> None:
    """RFC 9110 section 10.1.1: a final answer before 100 Continue closes the connection
    after it (the client will not send its body); an early hint is no answer."""

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 103, "headers": [(b"link", LINKS[0])]})
        chunk = await channels["body"].receive()
        await channels["reply"].send({"status": 200, "content": chunk["content"]})

    async with running_server(app, interface="messaging") as server:
        client = await server.connect()
        await client.send(get("/", "expect: 100-continue", "content-length: 4", method="POST"))
        await client._until(b"HTTP/1.1 100 Continue\r\n\r\n")
        await client.send(b"body")
        await client._until(b"\r\n\r\nbody")
        assert client.raw.startswith(b"HTTP/1.1 103 Early Hints\r\n")
        assert b"connection: close" not in client.raw.lower()  # kept alive
