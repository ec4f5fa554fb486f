"""Whether the hot modules run compiled by mypyc (``UVICORN_MYPYC``, see setup.py), and the
stand-ins for ``mypy_extensions.mypyc_attr`` and ``trait`` that the pure-Python build runs.

The compiled modules import ``mypyc_attr`` and ``trait`` from here: for mypy (and so mypyc,
which reads the decorators and leaves them out of the compiled class) they are
``mypy_extensions``'s; at run time functions that do nothing, so that ``mypy_extensions`` is no
dependency. (This module is never compiled: mypyc would take the ``else`` below for unreachable
code.)
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, TypeVar

T = TypeVar("T")

# A compiled module is an extension module (.so), not a .py file. (Found, not imported: the
# compiled modules import this one.)
_spec = find_spec("uvicorn.worker.connection")
COMPILED = _spec is not None and not str(_spec.origin).endswith(".py")

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr as mypyc_attr
    from mypy_extensions import trait as trait
else:

    def mypyc_attr(*attrs: str, **kwattrs: Any) -> Callable[[T], T]:
        """Does nothing: what the attributes say is mypyc's concern only."""
        return _same

    def trait(cls: T) -> T:
        """Does nothing: a trait is a base class like any other, uncompiled."""
        return cls


def _same(thing: T) -> T:
    return thing
