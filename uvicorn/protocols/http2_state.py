"""What the HTTP/2 core keeps: the settings the server advertises, and each stream's state
(windows, ends, what was received against its content-length)."""

from __future__ import annotations

from dataclasses import dataclass

from uvicorn.protocols.http_events import Limits


@dataclass(frozen=True)
class H2Settings:
    """What the server advertises (RFC 9113 section 6.5.2), from ``Config``."""

    max_concurrent_streams: int = 100
    initial_window_size: int = 65535
    max_frame_size: int = 16384
    extended_connect: bool = False  # RFC 8441: WebSockets over HTTP/2
    limits: Limits = Limits()

    @property
    def max_header_list_size(self) -> int:
        # As much as an HTTP/1.1 head may hold, in RFC 9113's measure (32 bytes per field).
        return self.limits.request_line + self.limits.fields * (self.limits.field_size + 32)


class StreamState:
    __slots__ = (
        "recv_window", "send_window", "remote_open", "local_open", "received", "length",
        "credit", "answered",
    )  # fmt: skip

    def __init__(self, recv_window: int, send_window: int, remote_open: bool, length: int) -> None:
        self.recv_window = recv_window
        self.send_window = send_window
        self.remote_open = remote_open
        self.local_open = True
        self.received = 0
        self.length = length  # the request's content-length, -1 if none
        self.credit = 0  # receive window consumed and not yet given back
        self.answered = False  # the response's head was sent
