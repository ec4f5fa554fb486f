"""Type aliases for both application interfaces, and the shapes of the channel objects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

Message = dict[str, Any]
Channels = dict[str, Any]

# The messaging interface: ``async def app(message, channels)``.
MessagingApp = Callable[[Message, Channels], Awaitable[None]]

# ASGI 3: ``async def app(scope, receive, send)``.
Scope = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, ASGIReceive, ASGISend], Awaitable[None]]

Headers = list[list[bytes]]


class SendChannel(Protocol):
    """A channel the app sends to (``channels['reply']``, ``channels['groups']``)."""

    @property
    def name(self) -> str: ...

    async def send(self, message: Message) -> None: ...


class ReceiveChannel(Protocol):
    """A channel the app receives from (``channels['body']``)."""

    @property
    def name(self) -> str: ...

    async def receive(self) -> Message: ...
