"""Trailers and early hints as a real client sees them: curl, over HTTP/1.1 and HTTP/2 (h2c,
prior knowledge), from an app of each interface."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.h2tools import curl
from tests.helpers import running_server


def app_of(interface: str) -> Any:
    async def messaging(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        await reply.send({"status": 103, "headers": [(b"link", b"</a.css>; rel=preload")]})
        await reply.send({"status": 200, "content": b"he", "more_content": True})
        await reply.send({"content": b"llo", "trailers": [(b"x-checksum", b"abc")]})

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]})
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"he", "more_body": True})
        await send({"type": "http.response.body", "body": b"llo"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})

    return messaging if interface == "messaging" else asgi


@pytest.mark.parametrize("interface", ["messaging", "asgi3"])
@pytest.mark.parametrize("version", ["--http1.1", "--http2-prior-knowledge"])
async def test_curl_sees_the_early_hint_and_the_trailers(
    interface: str, version: str, tmp_path: Path
) -> None:
    headers = tmp_path / "headers"  # every head curl received, then the trailers
    async with running_server(app_of(interface), interface=interface) as server:
        done = await asyncio.to_thread(
            curl, "-D", str(headers), version, "-H", "TE: trailers",
            f"http://127.0.0.1:{server.port}/",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello"
    received = [line.strip().lower() for line in headers.read_text().splitlines() if line.strip()]
    status = "http/1.1" if version == "--http1.1" else "http/2"
    assert received[0].startswith(f"{status} 103")
    assert "link: </a.css>; rel=preload" in received
    assert any(line.startswith(f"{status} 200") for line in received)
    assert received[-1] == "x-checksum: abc"  # after the body: a trailer
