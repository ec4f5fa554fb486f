"""Proxy headers (X-Forwarded-For/-Proto, Forwarded) from trusted peers only."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.helpers import get, running_server


def recording_app() -> tuple[Any, list[dict[str, Any]]]:
    messages: list[dict[str, Any]] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        messages.append(message)
        await channels["reply"].send({"status": 200})

    return app, messages


async def seen(headers: list[str], **options: Any) -> tuple[Any, str]:
    """(client, scheme) the app sees for a request with ``headers`` from 127.0.0.1."""
    app, messages = recording_app()
    async with running_server(app, **options) as server:
        assert (await server.request(get("/", *headers))).status == 200
    return messages[0]["client"], messages[0]["scheme"]


async def test_trusted_x_forwarded_for_and_proto() -> None:
    client, scheme = await seen(["x-forwarded-for: 1.2.3.4", "x-forwarded-proto: https"])
    assert client == ["1.2.3.4", 0] and scheme == "https"


async def test_untrusted_peer_is_ignored() -> None:
    client, scheme = await seen(
        ["x-forwarded-for: 1.2.3.4", "x-forwarded-proto: https", "forwarded: for=5.6.7.8"],
        forwarded_allow_ips="10.0.0.1",
    )
    assert client[0] == "127.0.0.1" and client[1] != 0 and scheme == "http"


async def test_proxy_headers_off() -> None:
    client, scheme = await seen(
        ["x-forwarded-for: 1.2.3.4", "x-forwarded-proto: https"], proxy_headers=False
    )
    assert client[0] == "127.0.0.1" and scheme == "http"


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        # The right-most address that is not a trusted proxy; what is left of it can be forged.
        ("1.2.3.4, 10.1.1.1, 10.2.2.2", "1.2.3.4"),
        ("6.6.6.6, 1.2.3.4, 10.1.1.1", "1.2.3.4"),
        ("1.2.3.4", "1.2.3.4"),
        ("10.1.1.1, 10.2.2.2", "10.1.1.1"),  # all trusted: the left-most
    ],
)
async def test_a_chain_of_proxies(chain: str, expected: str) -> None:
    client, _ = await seen(
        [f"x-forwarded-for: {chain}"], forwarded_allow_ips="127.0.0.1, 10.0.0.0/8"
    )
    assert client[0] == expected


async def test_several_x_forwarded_for_headers_form_one_chain() -> None:
    client, _ = await seen(
        ["x-forwarded-for: 6.6.6.6", "x-forwarded-for: 1.2.3.4, 10.1.1.1"],
        forwarded_allow_ips="127.0.0.1,10.0.0.0/8",
    )
    assert client[0] == "1.2.3.4"


async def test_trust_all() -> None:
    client, scheme = await seen(
        ["x-forwarded-for: 9.9.9.9, 8.8.8.8", "x-forwarded-proto: https"], forwarded_allow_ips="*"
    )
    assert client[0] == "9.9.9.9" and scheme == "https"


@pytest.mark.parametrize(
    ("header", "client", "scheme"),
    [
        ("forwarded: for=192.0.2.60;proto=https;by=203.0.113.43", ["192.0.2.60", 0], "https"),
        ('Forwarded: for="[2001:db8:cafe::17]:4711"', ["2001:db8:cafe::17", 4711], "http"),
        ("forwarded: for=192.0.2.43:8080, for=198.51.100.17", ["198.51.100.17", 0], "http"),
        ("forwarded: for=unknown;proto=http", None, "http"),
    ],
)
async def test_forwarded(header: str, client: Any, scheme: str) -> None:
    seen_client, seen_scheme = await seen([header])
    if client is None:
        assert seen_client[0] == "127.0.0.1"
    else:
        assert seen_client == client
    assert seen_scheme == scheme


async def test_forwarded_supersedes_x_forwarded() -> None:
    client, scheme = await seen(
        [
            "x-forwarded-for: 1.1.1.1",
            "x-forwarded-proto: http",
            "forwarded: for=2.2.2.2;proto=https",
        ]
    )
    assert client[0] == "2.2.2.2" and scheme == "https"


@pytest.mark.parametrize(
    ("proto", "scheme"), [("HTTPS", "https"), ("wss", "https"), ("ws", "http"), ("gopher", "http")]
)
async def test_proto_values(proto: str, scheme: str) -> None:
    assert (await seen([f"x-forwarded-proto: {proto}"]))[1] == scheme


async def test_asgi_scope_and_access_log_use_the_forwarded_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body"})

    async with running_server(app, lifespan="off", access_log=True) as server:
        await server.request(get("/p?q=1", "x-forwarded-for: 1.2.3.4", "x-forwarded-proto: https"))
    assert list(scopes[0]["client"]) == ["1.2.3.4", 0] and scopes[0]["scheme"] == "https"
    (line,) = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert line.startswith("1.2.3.4:0 - ") and '"GET /p?q=1 HTTP/1.1" 200' in line


async def test_trust_is_per_request_on_a_keep_alive_connection() -> None:
    app, messages = recording_app()
    async with running_server(app) as server:
        client = await server.connect()
        await client.send(get("/", "x-forwarded-for: 1.2.3.4") + get())
        await client.read_response()
        await client.read_response()
        client.close()
    assert messages[0]["client"][0] == "1.2.3.4"
    assert messages[1]["client"][0] == "127.0.0.1"  # nothing carried over
