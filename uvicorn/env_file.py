"""``--env-file``: variables from a dotenv file, set in the master's environment before any
worker starts, so every worker (and every restart or reload of one) inherits them.

The syntax is python-dotenv's (what the published uvicorn reads its ``--env-file`` with), parsed
here without the dependency: ``KEY=VALUE`` lines, an optional ``export`` before the key, blank
lines and ``#`` comments (a ``#`` after a space ends an unquoted value), values in single quotes
(literal, but for ``\\'`` and ``\\\\``) or double quotes (with the escapes ``\\n \\t \\r \\\\ \\"``
and ``\\' \\a \\b \\f \\v``), both of which may span lines. ``${NAME}`` and ``${NAME:-default}`` in
an unquoted or double-quoted value are replaced by that variable (from the environment, else from
the lines above); a single-quoted value is taken as written, as a POSIX shell takes it (where
python-dotenv expands it too). A line without ``=`` sets nothing.

Variables already in the environment win, as with python-dotenv's ``load_dotenv()`` (its
``override=False``, the published uvicorn's choice): the file gives defaults, the deployment
decides. Where python-dotenv warns about a line it cannot parse and skips it, this refuses the
file, naming the line: a server must not start without a setting its operator meant to give it.
"""

from __future__ import annotations

import os
import re

from uvicorn.exceptions import ConfigError

_SPACE = re.compile(r"\s*")  # whitespace, newlines included: between statements
_BLANKS = re.compile(r"[^\S\r\n]*")  # within a line
_EXPORT = re.compile(r"export[^\S\r\n]+")
_QUOTED_KEY = re.compile(r"'([^']+)'")
_KEY = re.compile(r"[^=#\s]+")
_EQUALS = re.compile(r"=[^\S\r\n]*")
_SINGLE = re.compile(r"'((?:\\'|[^'])*)'")
_DOUBLE = re.compile(r'"((?:\\"|[^"])*)"')
_UNQUOTED = re.compile(r"[^\r\n]*")
_INLINE_COMMENT = re.compile(r"\s+#.*")
_END = re.compile(r"[^\S\r\n]*(?:#[^\r\n]*)?(?:\r\n|\n|\r|$)")  # an optional comment, the EOL
_SINGLE_ESCAPES = re.compile(r"\\[\\']")
_DOUBLE_ESCAPES = re.compile(r"\\[\\'\"abfnrtv]")
_ESCAPED = {"\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "n": "\n",
            "r": "\r", "t": "\t", "v": "\v"}  # fmt: skip
_VARIABLE = re.compile(r"\$\{([^}:]*)(?::-([^}]*))?\}")


class _Invalid(Exception):
    pass


def parse(text: str) -> list[tuple[str, str | None, bool]]:
    """The statements of a dotenv file, in order: (key, value or None without ``=``, whether
    the value may hold variables). ValueError names the first line that cannot be parsed."""
    text = text.removeprefix("\ufeff")
    statements: list[tuple[str, str | None, bool]] = []
    pos = 0
    while True:
        pos = _match(_SPACE, text, pos).end()
        if pos >= len(text):
            return statements
        try:
            pos, statement = _statement(text, pos)
        except _Invalid:
            line = text.count("\n", 0, pos) + 1
            raise ValueError(f"line {line} is not KEY=VALUE: {_line_at(text, pos)!r}") from None
        if statement is not None:
            statements.append(statement)


def _statement(text: str, pos: int) -> tuple[int, tuple[str, str | None, bool] | None]:
    """One statement from ``pos``: where the next one begins, and (key, value, expandable), or
    None for a comment line."""
    export = _EXPORT.match(text, pos)
    if export:
        pos = export.end()
    if text.startswith("#", pos):
        key = None
    else:
        match = _QUOTED_KEY.match(text, pos) or _KEY.match(text, pos)
        if match is None:
            raise _Invalid
        key = match.group(1) if match.re is _QUOTED_KEY else match.group(0)
        pos = _match(_BLANKS, text, match.end()).end()
    value: str | None = None
    expandable = False
    if key is not None and text.startswith("=", pos):
        equals = _match(_EQUALS, text, pos)
        pos = equals.end()
        first = text[pos : pos + 1]
        if first == "'":
            quoted = _match(_SINGLE, text, pos)
            value = _SINGLE_ESCAPES.sub(_unescape, quoted.group(1))
            pos = quoted.end()
        elif first == '"':
            quoted = _match(_DOUBLE, text, pos)
            value, expandable = _DOUBLE_ESCAPES.sub(_unescape, quoted.group(1)), True
            pos = quoted.end()
        elif first in ("", "\n", "\r"):
            value = ""
        else:
            raw = _match(_UNQUOTED, text, pos)
            pos = raw.end()
            # A value that is only a comment after a space (``KEY= # note``) is empty; ``#``
            # right after ``=`` begins the value.
            if len(equals.group(0)) > 1 and raw.group(0).startswith("#"):
                value = ""
            else:
                value = _INLINE_COMMENT.sub("", raw.group(0)).rstrip()
            expandable = True
    pos = _match(_END, text, pos).end()
    return pos, (key, value, expandable) if key is not None else None


def _match(pattern: re.Pattern[str], text: str, pos: int) -> re.Match[str]:
    match = pattern.match(text, pos)
    if match is None:
        raise _Invalid
    return match


def _unescape(match: re.Match[str]) -> str:
    return _ESCAPED[match.group(0)[1]]


def _line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start : end if end >= 0 else len(text)].rstrip("\r")[:80]


def resolve(statements: list[tuple[str, str | None, bool]],
            environ: dict[str, str]) -> dict[str, str]:  # fmt: skip
    """The variables to set: each key's last value, its ``${...}`` replaced (the environment's
    value first, else the file's from the lines above, else the default, else empty); keys
    already in ``environ`` are left out, as are lines without ``=``."""
    found: dict[str, str] = {}
    for key, value, expandable in statements:
        if value is None:
            continue
        if expandable and "${" in value:
            value = _VARIABLE.sub(
                lambda m: environ.get(m.group(1), found.get(m.group(1), m.group(2) or "")),
                value,
            )
        found[key] = value
    return {key: value for key, value in found.items() if key not in environ}


def load(path: str) -> list[str]:
    """Set the variables of the dotenv file ``path`` that the environment does not set yet;
    returns their names. ConfigError, one line naming the flag, when the file cannot be read
    or parsed."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read --env-file {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read --env-file {path!r}: not UTF-8 ({exc.reason})") from None
    try:
        variables = resolve(parse(text), dict(os.environ))
        for key, value in variables.items():  # (all checked before any is set)
            if "\0" in key or "\0" in value or "=" in key:
                raise ValueError(f"{key!r}: the environment takes no NUL, nor '=' in a name")
    except ValueError as exc:
        raise ConfigError(f"invalid --env-file {path!r}: {exc}") from None
    os.environ.update(variables)
    return list(variables)
