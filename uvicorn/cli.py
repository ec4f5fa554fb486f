"""The command line, generated from ``Config``'s fields: each setting is written once."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any, NoReturn

from uvicorn.config import fields, flag_of
from uvicorn.env_file import load as load_env_file
from uvicorn.exceptions import ConfigError, UvicornError


class _Formatter(argparse.HelpFormatter):
    """argparse's, given the terminal's width: argparse makes one for each add_argument() (to
    check its metavar), and without a width it imports shutil to find it, and shutil bz2,
    lzma and zlib, ~0.5 MiB that the master would keep (it stays small: docs/architecture.md).
    The width as shutil.get_terminal_size() finds it."""

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ.get("COLUMNS", ""))
        except ValueError:
            columns = 0
        if columns <= 0:
            stdout = sys.__stdout__
            try:
                columns = os.get_terminal_size(stdout.fileno() if stdout else -1).columns
            except (AttributeError, ValueError, OSError):
                columns = 80
        super().__init__(prog, width=columns - 2)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    from uvicorn import __version__

    parser = _Parser(
        prog="uvicorn",
        description="A lightning-fast asyncio server for Python 3.",
        allow_abbrev=False,
        formatter_class=_Formatter,
    )
    parser.add_argument(
        "app", metavar="MODULE:ATTR", help="The app to serve, e.g. app:hello_world."
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"uvicorn {__version__} (Python {sys.version.split()[0]})",
    )
    for field in fields():
        meta = field.metadata
        flag = flag_of(field)
        kwargs: dict[str, Any] = {"dest": field.name, "help": meta["help"], "default": None}
        if field.type in ("bool", bool, "bool | None"):
            kwargs["action"] = argparse.BooleanOptionalAction if meta["negatable"] else "store_true"
        else:
            kwargs["metavar"] = meta["metavar"] or field.name.upper()
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
                kwargs["metavar"] = "{" + ",".join(meta["choices"]) + "}"
            if meta["repeatable"]:
                kwargs["action"] = "append"
        parser.add_argument(flag, **kwargs)
    return parser


def parse_args(argv: list[str] | None = None) -> dict[str, Any]:
    """The options given on the command line, as ``uvicorn.run()`` keywords."""
    namespace = build_parser().parse_args(argv)
    if namespace.env_file is not None:
        # Now, so that the settings read from the environment below (WEB_CONCURRENCY, ...) may
        # come from it too, as in the published uvicorn. (run() loads it again: a no-op, as
        # the variables already set win.)
        load_env_file(namespace.env_file)
    options: dict[str, Any] = {"app": namespace.app}
    for field in fields():
        raw = getattr(namespace, field.name)
        env = field.metadata["env"]
        if raw is None and env and env in os.environ:
            raw = os.environ[env]
        if raw is not None:
            options[field.name] = raw  # text: Config parses and checks every setting
    return options


class _Terminated(BaseException):
    """A SIGTERM while the master does not hold the signals."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    # A SIGTERM before the master takes over the signals (while it starts), or after it gave
    # them back, stops the process as asked, with status 0: not killed by the signal, which
    # systemd would report as a failed stop.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    finally:
        # Left now is Python's exit, which first gives every signal with a Python handler back
        # to the default action (a second SIGTERM, from a test or an impatient script, would
        # kill the process: status -15). No app code runs in this process (the workers ran
        # it): there is nothing left for a signal to stop.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _main(argv: list[str] | None) -> int:
    try:
        options = parse_args(argv)
        from uvicorn.main import run

        run(**options)
    except UvicornError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except _Terminated:
        return 0
    return 0
