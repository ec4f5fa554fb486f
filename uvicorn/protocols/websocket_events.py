"""What a WebSocket connection reports (``WebSocketCore``'s events, besides websocket_frames's
``Message``), the handshake's states, and the close codes (RFC 6455 section 7.4.1) the server
sends."""

from __future__ import annotations

import enum

from uvicorn.protocols.websocket_frames import Message

# RFC 6455 section 7.4.1 codes, for the callers' convenience.
NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
NO_STATUS_RECEIVED = 1005
ABNORMAL_CLOSURE = 1006
INVALID_DATA = 1007
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012

class Closed:
    """The connection is closed: ``code`` 1005 if the peer's close frame had none, 1006 if the
    connection was lost without a close handshake."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class Pong:
    """The peer answered a ping (keep-alive bookkeeping)."""

    __slots__ = ()


class Failing:
    """The peer broke the protocol: the connection is to be failed with ``code`` (RFC 6455
    section 7.1.7). Only with ``defer_failures``: until the caller calls ``fail_now()``, the
    messages received before can still be answered, and nothing more is read."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


Event = Message | Closed | Pong | Failing


class HandshakeState(enum.Enum):
    PENDING = "pending"  # the request is valid; the app has not decided yet
    ACCEPTED = "accepted"
    REFUSED = "refused"  # answered with an HTTP response instead (invalid, rejected, denied)
