"""systemd: readiness notifications (``sd_notify``) and socket activation (``LISTEN_FDS``).

Both are tiny protocols, spoken directly rather than through libsystemd: a datagram of
``KEY=VALUE`` lines to ``$NOTIFY_SOCKET``, and inherited descriptors from 3 upwards.
"""

from __future__ import annotations

import logging
import os
import socket
import time

logger = logging.getLogger("uvicorn.supervisor")

SD_LISTEN_FDS_START = 3


def notify_message(**fields: str | int) -> bytes:
    """``READY=1\\nSTATUS=...``: one line per field, names upper-cased as systemd spells them."""
    return "\n".join(f"{name.upper()}={value}" for name, value in fields.items()).encode()


def monotonic_usec() -> int:
    """``MONOTONIC_USEC``, which ``Type=notify-reload`` requires with ``RELOADING=1``."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends to ``$NOTIFY_SOCKET`` when systemd (or a test) set it; otherwise does nothing."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | None = None
        self._sock: socket.socket | None = None
        if address and address[0] in "/@":
            # '@' names a socket in the abstract namespace (a leading NUL byte).
            self._address = "\0" + address[1:] if address[0] == "@" else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        # Workers must not notify in the master's name (systemd would reject them anyway).
        os.environ.pop("NOTIFY_SOCKET", None)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str | int) -> None:
        if self._sock is None or self._address is None:
            return
        try:
            self._sock.sendto(notify_message(**fields), self._address)
        except OSError as exc:  # systemd gone or the socket full: never fatal
            logger.debug("sd_notify to %s failed: %s", self._address, exc)

    def ready(self, status: str) -> None:
        self.send(ready=1, status=status)

    def reloading(self, status: str) -> None:
        self.send(reloading=1, monotonic_usec=monotonic_usec(), status=status)

    def stopping(self, status: str) -> None:
        self.send(stopping=1, status=status)

    def status(self, status: str) -> None:
        self.send(status=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def listen_fds(unset_environment: bool = True) -> list[int]:
    """The sockets systemd passed (``LISTEN_FDS`` descriptors from 3), if meant for this
    process (``LISTEN_PID``)."""
    try:
        if int(os.environ.get("LISTEN_PID", "")) != os.getpid():
            return []
        count = int(os.environ.get("LISTEN_FDS", ""))
    except ValueError:
        return []
    finally:
        if unset_environment:  # as sd_listen_fds(1) does: not for our children
            for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
                os.environ.pop(name, None)
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))
