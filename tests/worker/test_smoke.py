from __future__ import annotations

from typing import Any

from tests.helpers import get, running_server


async def hello(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await channels["reply"].send(
        {"status": 200, "headers": [[b"content-type", b"text/plain"]], "content": b"Hello, world"}
    )


async def test_hello_world_keep_alive() -> None:
    async with running_server(hello) as server:
        client = await server.connect()
        for _ in range(3):
            await client.send(get())
            response = await client.read_response()
            assert response.status == 200
            assert response.body == b"Hello, world"
            assert response.header(b"content-length") == b"12"
        client.close()
