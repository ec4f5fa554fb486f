"""The exceptions uvicorn raises, in one small hierarchy.

Messages are lower-case facts that name the bad value, so that a user reading one line knows
what to change.
"""

from __future__ import annotations


class UvicornError(Exception):
    """Base class of the errors uvicorn raises on purpose."""


class ConfigError(UvicornError, ValueError):
    """A setting is invalid (a bad flag value, an impossible combination)."""


class AppLoadError(UvicornError):
    """The application could not be imported or is not usable as an app."""


class StartupError(UvicornError):
    """The server could not start: a socket could not be bound, or lifespan startup failed."""


class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has gone away.

    A subclass of ``OSError`` so that an endless streaming loop ends with its client; when it
    ends an app call, the server logs nothing alarming.
    """

    def __init__(self, message: str = "client disconnected") -> None:
        super().__init__(message)
