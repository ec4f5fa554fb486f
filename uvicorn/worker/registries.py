"""Two registries that every connection and every request pay for, kept by compiled code.

uvloop records each transport it makes in a ``weakref.WeakValueDictionary`` keyed by its file
descriptor (``Loop._track_transport``: so that ``add_reader()`` refuses a transport's socket),
and asyncio on Python 3.11 each task in a ``weakref.WeakSet`` (``asyncio.tasks._all_tasks``,
for ``asyncio.all_tasks()``). Both are interpreted Python: three frames per connection for
the first (``__setitem__`` and a ``KeyedRef``'s ``__new__`` and ``__init__``), two per request
for the second (``add``, then the weak reference's callback when the task is freed). Under
callgrind, for the whole worker: 6.5k of the 74.6k instructions of a ``Connection: close``
request went to the first, and the second costs 2k of the 44.2k of an ASGI keep-alive request.

``lighten(loop)`` gives both the same contents, kept by the methods below (compiled with the
hot modules), so nothing that reads them changes: uvloop's lookup is still
``WeakValueDictionary.__getitem__``, ``asyncio.all_tasks()`` still iterates the ``WeakSet``.
Each is checked for the shape it has in the versions measured and left alone otherwise.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from typing import Any, Final

# Python 3.12+ runs our tasks eagerly (connection.py): one that finishes without waiting is
# never added to the WeakSet (of the tasks scheduled, there), so the registry is left alone.
_TASKS_IN_WEAKSET: Final = sys.version_info < (3, 12)


class TransportRefs:
    """``__setitem__`` of one loop's registry of transports: a weak reference without a
    callback. The entry of a freed transport stays, dead, until its descriptor number is used
    again (the kernel reuses the lowest free one), so the dict holds at most one entry per
    descriptor number the worker has had open at once; a dead entry reads as missing
    (``WeakValueDictionary.__getitem__`` raises ``KeyError`` for it)."""

    def __init__(self, data: dict[Any, Any]) -> None:
        self.data = data

    def set(self, fd: object, transport: object) -> None:
        self.data[fd] = weakref.ref(transport)


class TaskRefs:
    """``WeakSet.add`` and its weak references' callback for asyncio's registry of tasks, as
    ``_weakrefset.WeakSet`` does them: a task freed while the set is being iterated (by
    ``all_tasks()``) is removed once the iteration ends."""

    def __init__(self, tasks: Any) -> None:
        self.tasks = tasks
        # The set's own containers (the WeakSet never replaces them), held here so that
        # compiled code reads them without an attribute lookup each time.
        self.data: set[Any] = tasks.data
        self.pending: list[Any] = tasks._pending_removals
        self.iterating: set[Any] = tasks._iterating
        self.removed = self.remove  # (bound once: a callback per task)

    def add(self, task: object) -> None:
        if self.pending:
            self.tasks._commit_removals()
        self.data.add(weakref.ref(task, self.removed))

    def remove(self, ref: object) -> None:
        if self.iterating:
            self.pending.append(ref)
        else:
            self.data.discard(ref)


def lighten(loop: asyncio.AbstractEventLoop) -> tuple[bool, bool]:
    """Install both where their shape is the one expected; say which were."""
    return _lighten_transports(loop), _lighten_tasks()


def _lighten_transports(loop: asyncio.AbstractEventLoop) -> bool:
    # uvloop's registry is an attribute of the C loop, out of Python's reach but for the
    # collector, which sees it among the loop's references (its only WeakValueDictionary).
    # Its ``__setitem__`` is looked up on its type: the instance gets a subclass of its own,
    # whose ``__setitem__`` is the bound method of a compiled object (a builtin method, which
    # Python calls without the instance).
    if not type(loop).__module__.startswith("uvloop"):
        return False
    found = [r for r in gc.get_referents(loop) if isinstance(r, weakref.WeakValueDictionary)]
    if len(found) != 1:
        return False
    registry: Any = found[0]
    if type(registry) is not weakref.WeakValueDictionary:
        return type(registry).__name__ == "TransportRegistry"  # (already done)
    data = getattr(registry, "data", None)
    if type(data) is not dict:
        return False
    refs = TransportRefs(data)
    registry.__class__ = type(
        "TransportRegistry", (weakref.WeakValueDictionary,), {"__setitem__": refs.set}
    )
    return True


def _lighten_tasks() -> bool:
    # The C Task calls the set's ``add`` by name, found in the instance's __dict__ before the
    # class's function. Once per process: every loop of it shares the set.
    if not _TASKS_IN_WEAKSET:
        return False
    found = getattr(asyncio.tasks, "_all_tasks", None)
    if type(found) is not weakref.WeakSet:
        return False
    tasks: Any = found
    if "add" in vars(tasks):
        return True
    if (
        type(tasks.data) is not set
        or type(tasks._pending_removals) is not list
        or type(tasks._iterating) is not set
    ):
        return False
    vars(tasks)["add"] = TaskRefs(tasks).add
    return True
