"""Stand-ins for the server's side of the messaging interface, to drive ASGIAdapter directly."""

from __future__ import annotations

import asyncio
from typing import Any


def request(
    method: str = "GET",
    raw_path: bytes = b"/",
    query_string: bytes = b"",
    headers: list[list[bytes]] | None = None,
    body: bytes = b"",
    **extra: Any,
) -> dict[str, Any]:
    """An ``http.request`` message with every key of SPEC.md's table."""
    message = {
        "channel": "http.request",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path.decode(),
        "raw_path": raw_path,
        "query_string": query_string,
        "root_path": "",
        "headers": headers if headers is not None else [[b"host", b"example.com"]],
        "body": body,
        "client": ["10.0.0.1", 5000],
        "server": ["127.0.0.1", 8000],
    }
    message.update(extra)
    return message


class Reply:
    """``channels['reply']`` that records messages; ``gate`` (when set) holds each send until
    the test opens it, as a client that does not read would."""

    name = "reply!test.1"

    def __init__(self, gated: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.gate: asyncio.Event | None = asyncio.Event() if gated else None
        self.sent = asyncio.Event()  # set at each send
        self.error: BaseException | None = None  # raised from send() when set
        self.done = 0  # sends that returned

    async def send(self, message: dict[str, Any]) -> None:
        if self.error is not None:
            raise self.error
        self.messages.append(message)
        self.sent.set()
        if self.gate is not None:
            await self.gate.wait()
            self.gate.clear()
        self.done += 1

    @property
    def body(self) -> bytes:
        return b"".join(m.get("content", b"") for m in self.messages)

    @property
    def complete(self) -> bool:
        return bool(self.messages) and not self.messages[-1].get("more_content", False)


class Body:
    """``channels['body']`` delivering ``chunks``, counting the reads."""

    name = "body!test.1"

    def __init__(self, chunks: list[bytes], closed: bool = False) -> None:
        self.chunks = list(chunks)
        self.closed = closed
        self.reads = 0

    async def receive(self) -> dict[str, Any]:
        self.reads += 1
        if not self.chunks:
            if self.closed:
                return {"content": b"", "closed": True, "more_content": False}
            return {"content": b"", "more_content": False}
        chunk = self.chunks.pop(0)
        return {"content": chunk, "more_content": bool(self.chunks) or self.closed}
