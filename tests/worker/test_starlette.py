"""A Starlette application, served unchanged through the ASGI 3 interface."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.helpers import get, running_server


def make_app(events: list[str]) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"greeting": "hello from lifespan"}
        events.append("shutdown")

    async def homepage(request: Request) -> Response:
        return PlainTextResponse(request.state.greeting)

    async def user(request: Request) -> Response:
        return JSONResponse(
            {
                "id": request.path_params["user_id"],
                "query": dict(request.query_params),
                "url": str(request.url),
                "client": request.client.host if request.client else None,
            }
        )

    async def echo(request: Request) -> Response:
        body = await request.body()
        return Response(body[::-1], media_type="application/octet-stream")

    async def count(request: Request) -> Response:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return JSONResponse({"size": size})

    async def stream(request: Request) -> Response:
        async def numbers() -> AsyncIterator[bytes]:
            for i in range(5):
                yield f"{i}\n".encode()
                await asyncio.sleep(0)

        return StreamingResponse(numbers(), media_type="text/plain")

    async def fail(request: Request) -> Response:
        raise RuntimeError("starlette endpoint failed")

    return Starlette(
        routes=[
            Route("/", homepage),
            Route("/users/{user_id:int}", user),
            Route("/echo", echo, methods=["POST"]),
            Route("/count", count, methods=["POST"]),
            Route("/stream", stream),
            Route("/fail", fail),
        ],
        lifespan=lifespan,
    )


async def test_starlette_app() -> None:
    events: list[str] = []
    async with running_server(make_app(events)) as server:
        assert events == ["startup"]
        client = await server.connect()

        await client.send(get("/"))
        response = await client.read_response()
        assert response.status == 200 and response.body == b"hello from lifespan"

        await client.send(get("/users/42?x=1&y=two"))
        response = await client.read_response()
        assert response.status == 200
        assert response.header(b"content-type") == b"application/json"
        data = json.loads(response.body)
        assert data["id"] == 42 and data["query"] == {"x": "1", "y": "two"}
        assert data["url"] == "http://test/users/42?x=1&y=two"
        assert data["client"] == "127.0.0.1"

        await client.send(get("/users/not-a-number"))
        assert (await client.read_response()).status == 404

        body = bytes(range(256)) * 1024
        await client.send(get("/echo", f"content-length: {len(body)}", method="POST") + body)
        response = await client.read_response()
        assert response.body == body[::-1]

        await client.send(
            get("/count", "transfer-encoding: chunked", method="POST")
            + b"4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"
        )
        assert json.loads((await client.read_response()).body) == {"size": 7}

        await client.send(get("/stream"))
        response = await client.read_response()
        assert response.chunked and response.body == b"0\n1\n2\n3\n4\n"

        await client.send(get("/echo"))  # wrong method
        assert (await client.read_response()).status == 405
        client.close()

        failed = await server.request(get("/fail"))
        assert failed.status == 500
    assert events == ["startup", "shutdown"]


async def test_starlette_behind_a_root_path() -> None:
    async def where(request: Request) -> Response:
        return JSONResponse({"url": str(request.url), "for": str(request.url_for("where"))})

    app = Starlette(routes=[Route("/where", where, name="where")])
    async with running_server(app, root_path="/prefix") as server:
        response = await server.request(get("/where"))
    assert response.status == 200
    assert json.loads(response.body) == {
        "url": "http://test/prefix/where",
        "for": "http://test/prefix/where",
    }
