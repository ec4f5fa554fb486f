"""``"module:attr"`` to an object, with errors that say exactly what is missing."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from uvicorn.exceptions import AppLoadError


def import_from_string(target: str) -> Any:
    """Import ``module.path:attr.path``.

    Only a ``ModuleNotFoundError`` for the named module itself becomes a one-line error; an
    import error raised *inside* the app's module is the app's bug and keeps its traceback.
    """
    module_name, sep, attrs = target.partition(":")
    if not sep or not module_name or not attrs:
        raise AppLoadError(f"invalid app {target!r}: expected MODULE:ATTR, e.g. app:hello_world")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise AppLoadError(
                f"could not import module {module_name!r} (looked in {sys.path[0]!r}; "
                "use --app-dir to look elsewhere)"
            ) from None
        raise
    obj: Any = module
    for attr in attrs.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise AppLoadError(f"attribute {attrs!r} not found in module {module_name!r}") from None
    return obj
