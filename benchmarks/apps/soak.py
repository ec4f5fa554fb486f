"""What benchmarks/soak.py serves: hello.py's 'Hello, world' over HTTP (both versions) and
ws_echo.py's echo over WebSockets, on both interfaces."""

from __future__ import annotations

from typing import Any

from apps import hello, ws_echo


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await ws_echo.app(scope, receive, send)
    else:
        await hello.app(scope, receive, send)


async def mi(message: dict[str, Any], channels: dict[str, Any]) -> None:
    if message["channel"] == "http.request":
        await hello.mi(message, channels)
    else:
        await ws_echo.mi(message, channels)
