"""The ASGI lifespan protocol: startup before serving, shutdown after draining."""

from __future__ import annotations

import asyncio
import logging
import traceback
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
        self.task: asyncio.Task[None] | None = None  # the app's lifespan call
        self.started = False  # the startup completed
        self._answered_startup = False

    async def startup(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self.task = asyncio.get_running_loop().create_task(self._run(scope))
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
        self.started = True

    async def shutdown(self, timeout: float, forced: asyncio.Event) -> None:
        """Tell the app to shut down and wait for its answer, for at most ``timeout`` seconds
        or until ``forced`` is set (a second signal); then cancel its lifespan call. An app
        whose startup never completed is not asked: its call is cancelled."""
        task = self.task
        if task is None or task.done():
            return
        if not self.started:
            task.cancel()
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        loop = asyncio.get_running_loop()
        answered = loop.create_task(self._from_app.get())
        stopped = loop.create_task(forced.wait())
        if timeout > 0 and not forced.is_set():
            await asyncio.wait({answered, stopped}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        stopped.cancel()
        if not answered.done():
            answered.cancel()
            logger.error(
                "lifespan shutdown %s: cancelled",
                "stopped at once" if forced.is_set() else "did not complete within "
                "--graceful-timeout",
            )
            task.cancel()
            return
        answer = answered.result()
        if isinstance(answer, BaseException):
            logger.error("lifespan shutdown raised: %r", answer)
        elif answer["type"] == "lifespan.shutdown.failed":
            logger.error("lifespan shutdown failed: %s", answer.get("message") or "no message")

    def where(self) -> str:
        """Where the app's lifespan call waits: each coroutine it awaits, outermost first (a
        task's own stack shows only its outermost coroutine)."""
        frames = []
        awaited: Any = self.task.get_coro() if self.task is not None else None
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is None:
                break
            frames.append(traceback.FrameSummary(
                frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name
            ))  # fmt: skip
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        return "".join(traceback.StackSummary.from_list(frames).format()).rstrip()

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise  # by shutdown(), which said why
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
