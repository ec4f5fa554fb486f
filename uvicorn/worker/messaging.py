"""The messaging interface: ``async def app(message, channels)`` (see SPEC.md).

A thin translation onto ``RequestCycle``: the request message, the reply channel, and the body
channel. Every framing, flow-control and error rule lives in the cycle.
"""

from __future__ import annotations

import itertools
import os
import secrets
from typing import Any

from uvicorn.protocols.http_response import ResponseState
from uvicorn.types import Message
from uvicorn.worker.cycle import RequestCycle, decode_path

_IDLE = ResponseState.IDLE


class _ChannelNames:
    """Names unique across processes and hosts: a per-process random prefix and a counter,
    e.g. ``reply!k3f9a2c1.17``. The prefix is drawn again in each forked child."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = secrets.token_hex(6)
        self.counter = itertools.count(1)

    def new(self, kind: str) -> str:
        return f"{kind}!{self.prefix}.{next(self.counter)}"


channel_names = _ChannelNames()
os.register_at_fork(after_in_child=channel_names.reseed)


def check_bytes(value: Any, key: str) -> bytes:
    """``value`` as bytes, or a TypeError naming ``key``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"invalid {key!r} {value!r}: must be bytes, got {type(value).__name__}")


class ReplyChannel:
    """``channels['reply']`` for an HTTP request."""

    __slots__ = ("_cycle", "_name")

    def __init__(self, cycle: RequestCycle) -> None:
        self._cycle = cycle
        self._name: str | None = None

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = channel_names.new("reply")
        return self._name

    async def send(self, message: Message) -> None:
        cycle = self._cycle
        try:
            content = message.get("content", b"")
            more = message.get("more_content", False)
        except AttributeError:
            raise TypeError(f"invalid message {message!r}: must be a dict") from None
        if type(content) is not bytes:
            content = check_bytes(content, "content")
        if "status" in message or cycle.response.state is _IDLE:
            if "status" not in message:
                if "headers" in message:
                    raise ValueError(f"missing 'status' in the response start {message!r}")
                raise RuntimeError(
                    "a response chunk was sent before the response started: the first message "
                    "needs a 'status'"
                )
            cycle.write_start(message["status"], message.get("headers", ()), content, bool(more))
        else:
            cycle.write_body(content, bool(more))
        conn = cycle.conn
        if conn.write_paused:
            await conn.drain()

    def __repr__(self) -> str:
        return f"<ReplyChannel {self.name}>"


class BodyChannel:
    """``channels['body']``: the rest of a request body that is still arriving."""

    __slots__ = ("_cycle", "_name")

    def __init__(self, cycle: RequestCycle) -> None:
        self._cycle = cycle
        self._name: str | None = None

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = channel_names.new("body")
        return self._name

    async def receive(self) -> Message:
        data, more, closed = await self._cycle.read_body()
        if closed:
            return {"content": b"", "closed": True, "more_content": False}
        return {"content": data, "more_content": more}

    def __repr__(self) -> str:
        return f"<BodyChannel {self.name}>"


class MessagingCycle(RequestCycle):
    __slots__ = ()

    async def call_app(self) -> None:
        head = self.head
        conn = self.conn
        state = conn.state
        message = {
            "channel": "http.request",
            "http_version": head.http_version,
            "method": head.method,
            "scheme": self.scheme,
            "path": decode_path(head.raw_path),
            "raw_path": head.raw_path,
            "query_string": head.query_string,
            "root_path": state.root_path,
            "headers": head.headers,
            "body": self.take_body(),
            "client": self.client,
            "server": conn.server,
        }
        channels: dict[str, Any] = {"reply": ReplyChannel(self)}
        if not self.body_complete:
            channels["body"] = BodyChannel(self)
        await state.app(message, channels)
