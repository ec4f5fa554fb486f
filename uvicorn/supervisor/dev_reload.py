"""``--reload`` on the master's side: what changed, and what a new worker serves.

A change starts a new generation, as SIGHUP does: its first worker boots while the old ones go
on serving, and they retire only once it serves. So an edit that breaks the import costs
nothing but the error in the log: the last code that loaded goes on answering, and the next
change tries again. Before, every worker stopped at the change and requests waited, unanswered,
on a socket nobody accepted from.

When no worker runs code that loaded (the app was broken from the start, or the last good worker
died), new workers serve a page naming the error instead (500, for every request), so that a
request is answered, never left waiting; the next change replaces them like any old worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from uvicorn.config import Config
from uvicorn.supervisor.process import State, Worker
from uvicorn.supervisor.reloader import ChangeFilter, Reloader


class DevReload:
    def __init__(self, config: Config, wake: Callable[[], None]) -> None:
        self.config = config
        change_filter = ChangeFilter(
            config.reload_dirs or [config.app_dir], config.reload_includes, config.reload_excludes
        )
        self.reloader = Reloader(change_filter, wake, config.reload_delay)
        self.broken: str | None = None  # why the code on disk did not load, until a change
        self._error_config: Config | None = None

    def start(self) -> None:
        self.reloader.start()

    def stop(self) -> None:
        self.reloader.stop()

    def changed(self) -> str | None:
        """The files changed since the last call, as the log shows them; None: none."""
        changed = self.reloader.changes()
        if not changed:
            return None
        shown = ", ".join(self.reloader.filter.display(path) for path in changed[:5])
        return shown + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")

    def failed(self, error: str) -> None:
        """The code on disk does not load: until the next change (or SIGHUP), no worker tries
        it again, and one started meanwhile serves ``error``."""
        self.broken = error
        self._error_config = None

    def may_spawn(self, workers: Iterable[Worker]) -> bool:
        """While the code on disk is broken, workers that run the last good code are left to
        serve alone (a replacement would only serve the error); the error page is started only
        when none is left."""
        return self.broken is None or not any(
            w.state is State.SERVING and not w.fallback for w in workers
        )

    def worker_config(self) -> Config:
        """What a worker started now serves: the app, or the page naming why it did not load."""
        if self.broken is None:
            return self.config
        if self._error_config is None:
            self._error_config = self.config.replace(
                app=error_page(self.broken),
                reload=False,  # an app object, which --reload refuses; the master watches anyway
                factory=False,
                interface="asgi3",
                lifespan="off",
            )
        return self._error_config


def error_page(error: str) -> Callable[..., Any]:
    """An ASGI app that answers every request with a 500 naming ``error`` (and closes every
    WebSocket handshake with 1011, which a client sees as a 403)."""
    body = (
        f"The app failed to load:\n\n{error}\n\nThe server log has the traceback. The server "
        "runs with --reload: fix the code and save, and it will serve the new code.\n"
    ).encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})

    return app
