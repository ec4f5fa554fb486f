"""Where group messages travel between processes: Redis (``broadcast_redis``), or memory for
one process; and how they travel (JSON, bytes tagged).

A backend knows the groups this process has local members in (``subscribe`` /
``unsubscribe``), publishes a message once per ``send``, and hands what arrives to
``on_message(group, message)``; when it finds that messages of a group were lost on the way to
this process, it says so with ``on_missed(group)``. The Redis backend reconnects with back-off
when Redis goes away, and reads on from where it was in every group that still has local
members, so the groups work again without the app doing anything; it logs the outage and the
recovery once each.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from uvicorn.exceptions import UvicornError


class BroadcastError(UvicornError):
    """A message could not be published (Redis is unreachable)."""


Deliver = Callable[[str, dict[str, Any]], None]


def encode(message: Any) -> Any:
    """JSON-ready form of a message: bytes become ``{"$b": base64}``; a dict whose keys could be
    mistaken for a tag (or are not str) becomes ``{"$d": [[key, value], ...]}``."""
    if isinstance(message, (bytes, bytearray, memoryview)):
        return {"$b": base64.b64encode(message).decode("ascii")}
    if isinstance(message, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in message):
            return {k: encode(v) for k, v in message.items()}
        return {"$d": [[_encode_key(k), encode(v)] for k, v in message.items()]}
    if isinstance(message, (list, tuple)):
        return [encode(v) for v in message]
    if message is None or isinstance(message, (str, int, float, bool)):
        return message
    raise TypeError(
        f"cannot send {type(message).__name__} {message!r} to a group: messages hold dicts, "
        "lists, str, bytes, numbers, booleans and None"
    )


def _encode_key(key: Any) -> Any:
    # Only what decodes back to a key: a tuple key would travel as a list, which the other
    # processes could not use as a key again (delivered here, dropped everywhere else).
    if isinstance(key, (str, bytes, int, float)) or key is None:
        return encode(key)
    raise TypeError(
        f"cannot send a dict with the key {key!r} to a group: keys are str, bytes, numbers, "
        "booleans or None"
    )


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "$b" in value:
            return base64.b64decode(value["$b"])
        if "$d" in value:
            return {decode(k): decode(v) for k, v in value["$d"]}
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


class Backend:
    on_message: Deliver
    on_missed: Callable[[str], None]

    async def subscribe(self, group: str) -> None:
        raise NotImplementedError

    def unsubscribe(self, group: str) -> None:
        raise NotImplementedError

    async def publish(self, group: str, message: dict[str, Any]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class MemoryBackend(Backend):
    """One process: a send is delivered to the local members, and nowhere else."""

    async def subscribe(self, group: str) -> None:
        pass

    def unsubscribe(self, group: str) -> None:
        pass

    async def publish(self, group: str, message: dict[str, Any]) -> None:
        # The same types as across processes (a tuple arrives as a list, as it would there),
        # and a copy: the app may reuse its message once send() returned.
        self.on_message(group, decode(encode(message)))
