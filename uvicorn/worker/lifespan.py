"""The ASGI lifespan protocol: startup before serving, shutdown after draining."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any

from uvicorn.exceptions import StartupError
from uvicorn.types import ASGIApp

logger = logging.getLogger("uvicorn.error")


class Lifespan:
    """Runs ``app({'type': 'lifespan', ...})`` in a task and speaks to it through two queues.

    ``mode`` is ``on`` (an app that fails the protocol stops the server) or ``auto`` (an app
    that raises before answering startup simply does not support lifespan).
    """

    def __init__(self, app: ASGIApp, mode: str) -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.supported = True
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._answered_startup = False

    async def startup(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self._task = asyncio.get_running_loop().create_task(self._run(scope))
        await self._to_app.put({"type": "lifespan.startup"})
        answer = await self._from_app.get()
        if isinstance(answer, BaseException):
            if self.mode == "auto":
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
                self.supported = False
                return
            raise StartupError(f"lifespan startup failed: {answer!r}")
        if answer["type"] == "lifespan.startup.failed":
            message = answer.get("message") or "no message"
            raise StartupError(f"lifespan startup failed: {message}")
        if answer["type"] != "lifespan.startup.complete":
            raise StartupError(f"unexpected lifespan message {answer['type']!r} during startup")

    async def shutdown(self) -> None:
        if not self.supported or self._task is None or self._task.done():
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        answer = await self._from_app.get()
        if isinstance(answer, BaseException):
            logger.error("lifespan shutdown raised: %r", answer)
        elif answer["type"] == "lifespan.shutdown.failed":
            logger.error("lifespan shutdown failed: %s", answer.get("message") or "no message")

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            if self.mode == "on" or self._answered_startup:
                logger.error("Exception in lifespan", exc_info=exc)
            await self._from_app.put(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            # Returned without answering (an app that ignores lifespan scopes): say so, so
            # that nobody waits for an answer that will never come.
            await self._from_app.put(RuntimeError("the app returned from its lifespan call"))

    async def _receive(self) -> dict[str, Any]:
        return await self._to_app.get()

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        if message.get("type", "").startswith("lifespan.startup."):
            self._answered_startup = True
        await self._from_app.put(dict(message))
