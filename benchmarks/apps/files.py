"""Static files (file-1m, file-64m): Starlette's FileResponse (which sends
``http.response.pathsend`` when the server offers it, and streams the file through Python in
64 KiB body messages when it does not), and for our messaging interface a reply with ``file``.

The files are made on first use in $UVICORN_BENCH_FILES (default /tmp/uvicorn-bench/files), of
a known pattern (0, 1, ..., 255 repeated) so that the runner's check can tell a truncated or
mixed-up body."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route

SIZES = {"/file-1m": 2**20, "/file-64m": 64 * 2**20}
DIRECTORY = Path(os.environ.get("UVICORN_BENCH_FILES", "/tmp/uvicorn-bench/files"))


def pattern(size: int) -> bytes:
    return bytes(range(256)) * (size // 256)


def make_files(directory: Path = DIRECTORY) -> dict[str, str]:
    """The path of each file by URL path, written (atomically) unless already there."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for url, size in SIZES.items():
        path = directory / f"{url.strip('/')}.bin"
        if not path.exists() or path.stat().st_size != size:
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_bytes(pattern(size))
            partial.replace(path)
        paths[url] = str(path)
    return paths


PATHS = make_files()
_TYPE = [(b"content-type", b"application/octet-stream")]


async def _file(request: Any) -> FileResponse:
    return FileResponse(PATHS[request.url.path], media_type="application/octet-stream")


app = Starlette(routes=[Route(url, _file) for url in SIZES])


async def mi(message: dict[str, Any], channels: dict[str, Any]) -> None:
    path = PATHS.get(message["path"])
    if path is None:
        await channels["reply"].send({"status": 404})
        return
    await channels["reply"].send({"status": 200, "headers": _TYPE, "file": path})
