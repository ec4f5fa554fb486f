"""The messaging interface: ``async def app(message, channels)`` (see SPEC.md).

A thin translation onto ``RequestCycle``: the request message, the reply channel, and the body
channel. Every framing, flow-control and error rule lives in the cycle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from uvicorn.channels import Declined, SendsNowait, Shared, channel_names
from uvicorn.compiled import mypyc_attr
from uvicorn.protocols.http_parser import RequestHead
from uvicorn.protocols.http_response import ResponseState
from uvicorn.protocols.websocket import Message as WSMessage
from uvicorn.protocols.websocket_events import HandshakeState
from uvicorn.types import Message
from uvicorn.worker.cycle import PERCENT, RequestCycle, decode_path
from uvicorn.worker.websocket import WebSocketSession

_IDLE: Final = ResponseState.IDLE
_PENDING: Final = HandshakeState.PENDING
_ACCEPTED: Final = HandshakeState.ACCEPTED


def check_bytes(value: Any, key: str) -> bytes:
    """``value`` as bytes, or a TypeError naming ``key``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"invalid {key!r} {value!r}: must be bytes, got {type(value).__name__}")


class _Channel:
    """A channel's ``name``, drawn only when the app asks for it (few do, every request has
    channels)."""

    __slots__ = ("_name",)
    _kind = "reply"

    def __init__(self) -> None:
        self._name: str | None = None

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = channel_names.new(self._kind)
        return self._name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def request_message(
    channel: str,
    head: RequestHead,
    scheme: str,
    client: list[Any] | None,
    server: list[Any] | None,
    root_path: str,
    body: bytes,
) -> Message:
    """The request keys of SPEC.md's table, for ``websocket.connect`` (``MessagingCycle.call_app``
    builds those of ``http.request`` itself, in step with this)."""
    raw_path = head.raw_path
    return {
        "channel": channel,
        "http_version": head.http_version,
        "method": head.method,
        "scheme": scheme,
        "path": decode_path(raw_path) if PERCENT in raw_path else raw_path.decode("ascii"),
        "raw_path": raw_path,
        "query_string": head.query_string,
        "root_path": root_path,
        "headers": head.headers,
        "body": body,
        "client": client,
        "server": server,
    }


class ReplyChannel(SendsNowait, _Channel):
    """``channels['reply']`` for an HTTP request."""

    __slots__ = ("_cycle",)

    def __init__(self, cycle: RequestCycle) -> None:
        self._cycle = cycle
        self._name = None

    async def send(self, message: Message) -> None:
        cycle = self._cycle
        try:
            content = message.get("content", b"")
            more = message.get("more_content", False)
        except AttributeError:
            raise TypeError(f"invalid message {message!r}: must be a dict") from None
        if type(content) is not bytes:
            content = check_bytes(content, "content")
        if not more and "trailers" in message:
            await self._send_trailing(message, content)
            return
        if "file" in message:
            await self._send_file(message, content, bool(more))
            return
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
        stream = cycle.stream
        if stream.write_blocked:
            await stream.drain()

    async def _send_file(self, message: Message, content: bytes, more: bool) -> None:
        """A message with ``file`` (SPEC): ``content``, then the file's bytes."""
        cycle = self._cycle
        start = None
        if "status" in message or cycle.response.state is _IDLE:
            if "status" not in message:
                raise RuntimeError("a file was sent before the response started: the first "
                                   "message needs a 'status'")  # fmt: skip
            start = (message["status"], message.get("headers", ()))
        await cycle.write_file(start, content, message["file"], message.get("offset"),
                               message.get("count"), more)  # fmt: skip
        stream = cycle.stream
        if stream.write_blocked:
            await stream.drain()

    async def _send_trailing(self, message: Message, content: bytes) -> None:
        """The last message, with ``trailers`` (SPEC): the body, then the trailer fields."""
        cycle = self._cycle
        cycle.trailers = []
        await self.send({**message, "more_content": True, "trailers": None})
        cycle.write_trailers(message["trailers"])
        stream = cycle.stream
        if stream.write_blocked:
            await stream.drain()


class BodyChannel(_Channel):
    """``channels['body']``: the rest of a request body that is still arriving."""

    __slots__ = ("_cycle",)
    _kind = "body"

    def __init__(self, cycle: RequestCycle) -> None:
        self._cycle = cycle
        self._name = None

    async def receive(self) -> Message:
        data, more, closed = await self._cycle.read_body()
        if closed:
            return {"content": b"", "closed": True, "more_content": False}
        return {"content": data, "more_content": more}


# Subclassed at run time by interpreted classes (metrics.py, access_log.py; tests), which
# mypyc allows only where it is told.
@mypyc_attr(allow_interpreted_subclasses=True)
class MessagingCycle(RequestCycle):
    __slots__ = ()

    def call_app(self) -> Awaitable[None]:
        stream = self.stream
        state = stream.state
        head = self.head
        raw_path = head.raw_path
        # request_message's keys, built here in step with it: the call cost a request ~490
        # instructions (benchmarks/micro.py --callgrind).
        message: Message = {
            "channel": "http.request",
            "http_version": head.http_version,
            "method": head.method,
            "scheme": self.scheme,
            "path": decode_path(raw_path) if PERCENT in raw_path else raw_path.decode("ascii"),
            "raw_path": raw_path,
            "query_string": head.query_string,
            "root_path": state.root_path,
            "headers": head.headers,
            "body": self.take_body() if self.received else b"",
            "client": self.client,
            "server": stream.server,
        }
        channels: dict[str, Any] = {"reply": ReplyChannel(self)}
        if not self.body_complete:
            channels["body"] = BodyChannel(self)
        return state.app(message, channels)  # type: ignore[no-any-return]


# Subclassed at run time by interpreted classes (metrics.py, access_log.py; tests), which
# mypyc allows only where it is told.
@mypyc_attr(allow_interpreted_subclasses=True)
class TLSMessagingCycle(MessagingCycle):
    """``MessagingCycle`` on a TLS server: the message has ``tls``, the connection's
    (``tls_info.py``; SPEC). A class of its own, so that plain HTTP pays nothing for it."""

    __slots__ = ()

    def call_app(self) -> Awaitable[None]:
        stream = self.stream
        state = stream.state
        body = self.take_body() if self.received else b""
        message = request_message("http.request", self.head, self.scheme, self.client,
                                  stream.server, state.root_path, body)  # fmt: skip
        if stream.tls is not None:
            message["tls"] = stream.tls
        channels: dict[str, Any] = {"reply": ReplyChannel(self)}
        if not self.body_complete:
            channels["body"] = BodyChannel(self)
        return state.app(message, channels)  # type: ignore[no-any-return]


# WebSockets (SPEC.md, "WebSocket").


class WebSocketReplyChannel(SendsNowait, _Channel):
    """``channels['reply']`` of a WebSocket: ``text``/``bytes``, ``close``, ``accept``."""

    __slots__ = ("_session",)

    def __init__(self, session: WebSocketSession) -> None:
        self._session = session
        self._name = None

    def send_shared(self, shared: Shared) -> Awaitable[None] | Declined | None:
        return self._session.send_shared(shared)  # a group's message, framed once

    def shared_sender(self) -> Callable[[Shared], Awaitable[None] | Declined | None]:
        return self._session.send_shared

    async def send(self, message: Message) -> None:
        session = self._session
        try:
            text = message.get("text")
            data = message.get("bytes")
            close = message.get("close")
            accept = message.get("accept")
        except AttributeError:
            raise TypeError(f"invalid message {message!r}: must be a dict") from None
        if text is not None:
            if data is not None:
                raise ValueError("a WebSocket message has 'text' or 'bytes', not both")
            if type(text) is not str:
                raise TypeError(f"invalid 'text' {text!r}: must be str, got {type(text).__name__}")
        elif data is not None:
            data = check_bytes(data, "bytes")
        code = close_code(close)
        if session.core.state is _PENDING:
            if accept is False or (code is not None and text is None and data is None):
                session.reject(403)  # SPEC: refused before accepting: 403, and no disconnect
                return
            session.accept(message.get("subprotocol"), message.get("headers", ()))
        if text is None and data is None and code is None:
            return  # an accept, and nothing to send
        await session.send_message(text, data, code)


def close_code(close: Any) -> int | None:
    """SPEC: ``close: True | int``; RFC 6455 section 7.4: what an endpoint may send."""
    if close is None or close is False:
        return None
    if close is True:
        return 1000
    if type(close) is not int:
        raise TypeError(f"invalid 'close' {close!r}: must be True or an int close code")
    allowed = 1000 <= close <= 1014 and close not in (1004, 1005, 1006)
    if not allowed and not 3000 <= close <= 4999:
        raise ValueError(f"invalid close code {close}: use 1000-1014 (not 1004-1006) or 3000-4999")
    return close


class MessagingWebSocket(WebSocketSession):
    """The messaging interface's WebSocket: one app call per event, in order, one at a time."""

    async def call_app(self) -> None:
        head = self.head
        state = self.state
        app = state.app
        channels: dict[str, Any] = {"reply": WebSocketReplyChannel(self)}
        connect = request_message(
            "websocket.connect", head, self.scheme, self.client, self.server, state.root_path, b""
        )
        connect["subprotocols"] = self.core.subprotocols
        connect["order"] = 0
        if self.tls is not None:  # the connection's (SPEC)
            connect["tls"] = self.tls
        path = connect["path"]
        await app(connect, channels)
        if self.core.state is _PENDING:
            self.accept()  # SPEC: implicit accept when the connect handler returns
        if self.core.state is not _ACCEPTED:
            return  # rejected: the app gets no disconnect message
        order = 0
        while True:
            event = await self.next_event()
            order += 1
            if isinstance(event, WSMessage):
                message = {
                    "channel": "websocket.receive",
                    "path": path,
                    "order": order,
                    "text": event.text,
                    "bytes": event.data,
                }
            else:
                message = {
                    "channel": "websocket.disconnect",
                    "path": path,
                    "order": order,
                    "code": event.code,
                }
            try:
                await app(message, channels)
            except Exception as exc:
                # One failed handler closes the connection (1011), but the app still gets the
                # rest, its disconnect included, so that it can forget this connection.
                self.handler_failed(exc)
            if not isinstance(event, WSMessage):
                return
