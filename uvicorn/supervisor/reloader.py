"""``--reload``: which files matter, and a watchfiles thread that tells the master.

Only directories that can hold the app's code are watched (non-recursively, each one named):
a virtual environment or ``node_modules`` is never walked, let alone watched.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from uvicorn.exceptions import ConfigError

logger = logging.getLogger("uvicorn.supervisor")

IGNORED_DIRS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "site-packages", "node_modules",
     ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)  # fmt: skip
DEFAULT_INCLUDES = ("*.py",)


class ChangeFilter:
    """Which paths under ``roots`` are watched: files named like an include glob (``*.py``
    and ``--reload-include``), outside ignored directories and ``--reload-exclude`` globs."""

    def __init__(
        self, roots: Iterable[str], includes: Iterable[str] = (), excludes: Iterable[str] = ()
    ) -> None:
        self.roots = sorted({Path(root).resolve() for root in roots})
        for root in self.roots:
            if not root.is_dir():
                raise ConfigError(f"--reload-dir {str(root)!r} is not a directory")
        self.includes = (*DEFAULT_INCLUDES, *includes)
        self.excludes = tuple(excludes)
        self._venvs: dict[Path, bool] = {}

    def _excluded(self, name: str, relative: str) -> bool:
        return any(
            fnmatch.fnmatch(name, glob) or fnmatch.fnmatch(relative, glob) for glob in self.excludes
        )

    def ignored_dir(self, path: Path, relative: str = "") -> bool:
        if path.name in IGNORED_DIRS or self._excluded(path.name, relative or path.name):
            return True
        if path not in self._venvs:  # any virtual environment has a pyvenv.cfg
            self._venvs[path] = (path / "pyvenv.cfg").is_file()
        return self._venvs[path]

    def __call__(self, path: str) -> bool:
        """Whether a change to the file at ``path`` restarts the workers."""
        file = Path(path)
        for root in self.roots:
            try:
                parts = file.relative_to(root).parts
            except ValueError:
                continue
            relative = "/".join(parts)
            if self._excluded(file.name, relative):
                return False
            if not any(fnmatch.fnmatch(file.name, glob) for glob in self.includes):
                return False
            directory = root
            for part in parts[:-1]:
                directory = directory / part
                if self.ignored_dir(directory, str(directory.relative_to(root))):
                    return False
            return True
        return False

    def display(self, path: str) -> str:
        """``path`` relative to the watched directory it is in, for the log."""
        for root in self.roots:
            try:
                return str(Path(path).relative_to(root))
            except ValueError:
                continue
        return path

    def directories(self) -> list[str]:
        """Every directory to watch: the roots and their subdirectories, ignored ones pruned."""
        found: list[str] = []
        for root in self.roots:
            for current, subdirs, _ in os.walk(root):
                base = Path(current)
                subdirs[:] = [
                    name
                    for name in subdirs
                    if not self.ignored_dir(base / name, str((base / name).relative_to(root)))
                ]
                found.append(current)
        return found


class Reloader:
    """Watches in a thread; ``wake()`` tells the master, which collects ``changes()``.

    ``delay`` (--reload-delay, as in the published uvicorn: the time between one check for
    changes and the next): after a change, changes are gathered until a check finds no new one,
    so an editor's burst of writes (a temporary file, then a rename) makes one restart. Checks
    are at least 50 ms apart: watchfiles' thread wakes at each one, idle or not."""

    def __init__(
        self, change_filter: ChangeFilter, wake: Callable[[], None], delay: float = 0.25
    ) -> None:
        self.filter = change_filter
        self._wake = wake
        self._step = max(50, round(delay * 1000))  # ms
        self._changes: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._watching = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="uvicorn-reloader", daemon=True)

    def start(self) -> None:
        directories = self.filter.directories()
        logger.info(
            "Will watch for changes in %s (%d directories)",
            ", ".join(map(str, self.filter.roots)),
            len(directories),
        )
        self._thread.start()
        # Return once changes are seen: an edit made as soon as the app serves must count.
        if not self._watching.wait(timeout=10):
            logger.warning("--reload: the file watcher is slow to start")

    def changes(self) -> list[str]:
        """The relevant paths changed since the last call."""
        paths: list[str] = []
        while True:
            try:
                paths += self._changes.get_nowait()
            except queue.Empty:
                return sorted(set(paths))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _watch(self) -> None:
        import watchfiles

        def interesting(change: Any, path: str) -> bool:
            return self.filter(path) or (change == watchfiles.Change.added and os.path.isdir(path))

        last_error = ""
        while not self._stop.is_set():
            try:
                self._watch_once(watchfiles, interesting)
            except Exception as exc:  # a directory vanished between the walk and the watch...
                if repr(exc) != last_error:  # ...or worse (no inotify watches left): say so
                    logger.warning("--reload: watching again after an error: %r", exc)
                last_error = repr(exc)
                self._stop.wait(0.5)

    def _watch_once(self, watchfiles: Any, interesting: Any) -> None:
        # Watching each directory on its own (not recursively) is what keeps ignored trees
        # unwatched; a new directory means walking again.
        for batch in watchfiles.watch(
            *self.filter.directories(),
            watch_filter=interesting,
            recursive=False,
            stop_event=_StopEvent(self._stop, self._watching),
            raise_interrupt=False,
            # ms: the longest a burst (a git checkout) is gathered over
            debounce=max(1600, self._step),
            step=self._step,  # ms of quiet that ends a burst
        ):
            paths = [path for _, path in batch if self.filter(path)]
            if paths:
                self._changes.put(paths)
                self._wake()
            if any(change == watchfiles.Change.added and os.path.isdir(path)
                   for change, path in batch):  # fmt: skip
                break


class _StopEvent:
    """watchfiles asks ``is_set()`` between its waits, so only once its watches are in place:
    the first call says that watching has begun."""

    def __init__(self, stop: threading.Event, watching: threading.Event) -> None:
        self._stop = stop
        self._watching = watching

    def is_set(self) -> bool:
        self._watching.set()
        return self._stop.is_set()
