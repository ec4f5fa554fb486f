"""--use-colors: the default format's level names in the published uvicorn's colours, when
stderr is a terminal and NO_COLOR is unset (or when asked), never in a --log-file; the padding
counts only what shows. (The command line on a real terminal: tests/e2e/test_operations.py.)"""

from __future__ import annotations

import io
import logging

import pytest

from uvicorn.logging import TRACE, LevelPrefixFormatter, use_colours


def formatted(level: int, colours: bool) -> str:
    record = logging.LogRecord("uvicorn.error", level, __file__, 1, "message", (), None)
    formatter = LevelPrefixFormatter("%(levelprefix)s%(message)s", use_colors=colours)
    return formatter.format(record)


@pytest.mark.parametrize(
    ("level", "plain", "coloured"),
    [
        (TRACE, "TRACE:    message", "\x1b[34mTRACE\x1b[0m:    message"),
        (logging.DEBUG, "DEBUG:    message", "\x1b[36mDEBUG\x1b[0m:    message"),
        (logging.INFO, "INFO:     message", "\x1b[32mINFO\x1b[0m:     message"),
        (logging.WARNING, "WARNING:  message", "\x1b[33mWARNING\x1b[0m:  message"),
        (logging.ERROR, "ERROR:    message", "\x1b[31mERROR\x1b[0m:    message"),
        (logging.CRITICAL, "CRITICAL: message", "\x1b[91mCRITICAL\x1b[0m: message"),
        (42, "Level 42: message", "Level 42: message"),  # no colour of its own
    ],
)
def test_level_names_and_their_colours(level: int, plain: str, coloured: str) -> None:
    assert formatted(level, False) == plain
    assert formatted(level, True) == coloured


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("asked", "tty", "no_color", "log_file", "expected"),
    [
        (None, True, None, None, True),  # auto: a terminal
        (None, False, None, None, False),  # auto: a pipe
        (None, True, "1", None, False),  # NO_COLOR (https://no-color.org)
        (None, True, "", None, True),  # ... set but empty: as if unset
        (True, False, "1", None, True),  # asked for: the flag wins
        (False, True, None, None, False),
        (True, True, None, "server.log", False),  # never in a file
        (None, True, None, "server.log", False),
    ],
)
def test_when_colours_are_used(
    monkeypatch: pytest.MonkeyPatch, asked: bool | None, tty: bool, no_color: str | None,
    log_file: str | None, expected: bool,
) -> None:  # fmt: skip
    monkeypatch.setattr("sys.stderr", Terminal() if tty else io.StringIO())
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    assert use_colours(asked, log_file) is expected
