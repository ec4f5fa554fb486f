"""Load the app and tell which interface it speaks."""

from __future__ import annotations

import inspect
import logging
import sys
from typing import Any

from uvicorn.adapters import ASGIAdapter
from uvicorn.config import Config
from uvicorn.exceptions import AppLoadError
from uvicorn.importer import import_from_string

logger = logging.getLogger("uvicorn.error")


def load_app(config: Config) -> tuple[Any, str]:
    """Return (app, interface), ``interface`` one of messaging, asgi3, asgi2. A WSGI app
    (``--interface wsgi``) comes back wrapped in ``ASGIAdapter``, as a messaging app."""
    target = config.app
    if isinstance(target, str):
        app_dir = config.app_dir
        if app_dir is not None and app_dir not in sys.path:
            sys.path.insert(0, app_dir)
        try:
            app = import_from_string(target)
        except AppLoadError:
            raise
        except Exception as exc:
            # A bug inside the app's module: its traceback is what the user needs.
            logger.error("Error while importing %r", target, exc_info=exc)
            raise AppLoadError(f"error while importing {target!r}: {exc!r}") from None
        name = target
    else:
        app = target
        name = repr(target)
    if config.factory:
        if not callable(app):
            raise AppLoadError(f"app factory {name} is not callable")
        app = app()
    if not callable(app):
        raise AppLoadError(f"app {name} is not callable (it is {type(app).__name__})")
    interface = config.interface
    if interface == "wsgi":
        # PEP 3333's wsgi.multiprocess: "true if an equivalent application object may be
        # simultaneously invoked by another process" (each --workers process runs one).
        multiprocess = config.workers > 1
        return ASGIAdapter(app, config.wsgi_threads, multiprocess=multiprocess), "messaging"
    if interface == "auto":
        interface = detect_interface(app, name)
    return app, interface


def detect_interface(app: Any, name: str = "app") -> str:
    """Two positional parameters: the messaging interface; three: ASGI 3; a class or one
    parameter: ASGI 2."""
    if inspect.isclass(app):
        return "asgi3" if hasattr(app, "__await__") else "asgi2"
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        raise AppLoadError(
            f"cannot tell the interface of {name} from its signature: use --interface"
        ) from None
    params = signature.parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return "asgi3"
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    count = len(positional)
    # Parameters with defaults are options the server never passes
    # (``async def app(scope, receive, send, debug=False)``): count the required ones when
    # they name an interface.
    required = sum(1 for p in positional if p.default is p.empty)
    if required != count and 1 <= required <= 3:
        count = required
    if count == 2:
        return "messaging"
    if count == 3:
        return "asgi3"
    if count == 1:
        return "asgi2"
    raise AppLoadError(
        f"cannot tell the interface of {name}: it takes {count} positional parameters "
        "(2: messaging interface, 3: ASGI 3, 1: ASGI 2); use --interface"
    )
