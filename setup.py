"""The package's metadata is setup.cfg's. This file compiles the modules every request runs
through (``HOT``) with mypyc, when it can, into C extensions that take the place of their .py
files (docs/architecture.md, "Compiled build"). ``UVICORN_MYPYC`` decides:

- unset: compiled when mypyc (pyproject.toml's build requirements bring it) and a C compiler
  are there and the build succeeds; otherwise the pure-Python package, with a warning (pip
  shows it with ``-v``). An editable install (``pip install -e .``) stays pure Python: a
  compiled module would hide the edits made to its .py file.
- ``1``: compiled, and the install fails if it cannot be (CI; ``scripts/compiled-tree``).
- ``0``: pure Python.
"""

from __future__ import annotations

import os
import sys

from setuptools import Distribution, setup
from setuptools.command.build_ext import build_ext

# Every request runs through these (benchmarks/micro.py): the HTTP/1.1 cores and the
# connection, the request cycles of both interfaces, the WebSocket session and the classes
# they derive from or make per request, a broadcast group's delivery loop (per member, per
# message: broadcast_members.py), the proxy headers (every connection is asked whether its
# peer is a trusted proxy; behind one, every request's client and scheme come from them) and
# the methods that fill uvloop's and asyncio's registries (registries.py: per connection, per
# task). A module that subclasses one of their classes must be compiled with them (an
# interpreted class cannot inherit from a compiled one), hence worker/http2.py,
# protocols/http2_response.py and worker/http2_stream.py (a Stream: the trait of stream.py).
# The rest (the supervisor, the config, the HTTP/2 cores, the adapters) stays pure Python.
HOT = [
    "uvicorn/broadcast_members.py",
    "uvicorn/protocols/http2_response.py",
    "uvicorn/protocols/http_chunks.py",
    "uvicorn/protocols/http_connection.py",
    "uvicorn/protocols/http_defaults.py",
    "uvicorn/protocols/http_events.py",
    "uvicorn/protocols/http_fields.py",
    "uvicorn/protocols/http_parser.py",
    "uvicorn/protocols/http_response.py",
    "uvicorn/protocols/http_restart.py",
    "uvicorn/protocols/http_rules.py",
    "uvicorn/protocols/http_simple.py",
    "uvicorn/protocols/http_trailers.py",
    "uvicorn/protocols/websocket.py",
    "uvicorn/protocols/websocket_events.py",
    "uvicorn/worker/asgi.py",
    "uvicorn/worker/connection.py",
    "uvicorn/worker/cycle.py",
    "uvicorn/worker/handover.py",
    "uvicorn/worker/http2.py",
    "uvicorn/worker/http2_stream.py",
    "uvicorn/worker/messaging.py",
    "uvicorn/worker/proxy.py",
    "uvicorn/worker/registries.py",
    "uvicorn/worker/state.py",
    "uvicorn/worker/stream.py",
    "uvicorn/worker/transport.py",
    "uvicorn/worker/websocket.py",
]

MODE = os.environ.get("UVICORN_MYPYC", "")
if MODE not in ("", "0", "1"):
    sys.exit(f"setup.py: UVICORN_MYPYC={MODE!r}: '1' (compile), '0' (pure Python) or unset")


def _warn(message: str) -> None:
    print(f"uvicorn setup.py: {message}", file=sys.stderr)


class MaybeCompiled(Distribution):
    """A distribution with extensions unless ``UVICORN_MYPYC=0`` (a wheel of its platform):
    which ones is decided only when they are built (``MypycBuildExt``), so that the commands
    that build nothing (the metadata pip asks for first) do not run mypyc."""

    def has_ext_modules(self) -> bool:
        return MODE != "0"


class MypycBuildExt(build_ext):
    """Compiles ``HOT`` with mypyc; without ``UVICORN_MYPYC=1``, any failure (no mypyc, no C
    compiler or Python headers, a mypyc error) leaves the package pure Python."""

    def finalize_options(self) -> None:
        # (An editable install: pip's runs the editable_wheel command, which sets editable_mode
        # on this one only after finalizing it; "develop" is the older way.)
        editable = {"editable_wheel", "develop"} & set(sys.argv[1:]) or self.editable_mode
        wanted = MODE == "1" or (MODE == "" and not editable)
        if wanted and not self.distribution.ext_modules:
            try:
                from mypyc.build import mypycify

                self.distribution.ext_modules = mypycify(HOT, opt_level="3")
            except BaseException as error:  # (mypyc ends with SystemExit on a type error)
                if MODE == "1" or isinstance(error, KeyboardInterrupt):
                    raise
                _warn(f"building pure Python: mypyc failed ({error!r})")
        super().finalize_options()

    def run(self) -> None:
        try:
            super().run()
        except BaseException as error:  # (the C compiler's: missing, or no Python headers)
            if MODE == "1" or isinstance(error, KeyboardInterrupt):
                raise
            # No half-compiled package: a module whose shared library is missing cannot load.
            for path in self.get_outputs():
                if os.path.exists(path):
                    os.remove(path)
            _warn(f"building pure Python: the C compiler failed ({error!r})")


setup(distclass=MaybeCompiled, cmdclass={"build_ext": MypycBuildExt})
