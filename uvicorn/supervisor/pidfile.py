"""``--pid FILE``: the master's process id, for init scripts and ``kill -HUP $(cat FILE)``."""

from __future__ import annotations

import errno
import os

from uvicorn.exceptions import StartupError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # it exists, owned by someone else
    return True


class PidFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = 0

    def create(self, pid: int) -> None:
        """Write ``pid``; refuse while the file names another running process (a second
        server started by mistake), replace it when that process is gone (a crash)."""
        try:
            with open(self.path) as file:
                old = int(file.read().strip() or 0)
        except FileNotFoundError:
            old = 0
        except (OSError, ValueError):
            old = 0  # unreadable or garbage: not a live server's file
        if old and old != pid and _alive(old):
            raise StartupError(f"--pid file {self.path!r} names a running process ({old})")
        temporary = f"{self.path}.{pid}.tmp"
        try:
            with open(temporary, "w") as file:
                file.write(f"{pid}\n")
            os.replace(temporary, self.path)  # never a half-written file
        except OSError as exc:
            raise StartupError(f"cannot write --pid file {self.path!r}: {exc.strerror}") from None
        self.pid = pid

    def remove(self) -> None:
        """Remove the file, unless someone else's pid is in it by now."""
        if not self.pid:
            return
        try:
            with open(self.path) as file:
                if int(file.read().strip() or 0) == self.pid:
                    os.unlink(self.path)
        except (OSError, ValueError):
            pass
        self.pid = 0
