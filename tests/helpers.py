"""Shared test helpers: an in-process server on a real event loop, and a raw HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httptools
import pytest

from uvicorn.config import Config
from uvicorn.worker.server import Server

# Every timeout in the tests is a multiple of this; raise it on a slow machine.
UNIT = float(os.environ.get("UVICORN_TEST_UNIT", "1"))


def tls_certificate(directory: Path) -> dict[str, str]:
    """A self-signed certificate for 127.0.0.1 (and localhost) and its key, made in
    ``directory``: the ``ssl_keyfile``/``ssl_certfile`` options that serve them."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return {"ssl_keyfile": str(key), "ssl_certfile": str(cert)}


def listen(host: str = "127.0.0.1", cork: bool = False) -> socket.socket:
    """``cork``: TCP_CORK, as the master binds a plain-TCP listener (supervisor/sockets.py)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if cork:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


@contextlib.asynccontextmanager
async def running_server(app: Any, **options: Any) -> AsyncIterator[RunningServer]:
    """Serve ``app`` on 127.0.0.1 (a free port) in this event loop."""
    options.setdefault("access_log", False)
    # No drain when the test is over: what is still in flight is cancelled at once, and the
    # lifespan shutdown still runs (a forced stop would skip it).
    options.setdefault("graceful_timeout", 0)
    config = Config(app=app, **options)
    sock = listen(cork=not config.is_ssl)  # as the master binds it
    server = Server(config, [sock])
    await server.start()
    try:
        yield RunningServer(server, sock.getsockname()[1])
    finally:
        server.stop()
        await server.shutdown()
        sock.close()


class RunningServer:
    def __init__(self, server: Server, port: int) -> None:
        self.server = server
        self.port = port

    async def connect(self) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        return RawClient(reader, writer)

    async def request(self, data: bytes) -> Response:
        """Send ``data`` on a new connection and read one response."""
        client = await self.connect()
        try:
            await client.send(data)
            return await client.read_response(head=data.startswith(b"HEAD "))
        finally:
            client.close()


class Response:
    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.chunked = False
        self.complete = False
        self.parts: list[bytes] = []  # joined into ``body`` once complete

    def finish(self) -> None:
        self.body = b"".join(self.parts)
        self.complete = True

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers} {self.body[:100]!r}>"


class _ResponseParser:
    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.current = Response()
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.current.status = self.parser.get_status_code()
        self.current.chunked = self.current.header(b"transfer-encoding") == b"chunked"

    def on_body(self, body: bytes) -> None:
        self.current.parts.append(body)

    def on_message_complete(self) -> None:
        self.current.finish()
        self.responses.append(self.current)
        self.current = Response()


class RawClient:
    """A client that writes raw bytes and parses responses with httptools."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._raw = bytearray()
        self._unparsed = bytearray()  # received, not yet handed to a response parser

    @property
    def raw(self) -> bytes:
        """Every byte received."""
        return bytes(self._raw)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_response(self, head: bool = False) -> Response:
        """The next complete response (``head``: it answers a HEAD request, so has no body).

        The response's own bytes are found first (RFC 9112 section 6.3), then parsed with
        httptools; whatever follows them in the same read waits for the next call."""
        end = head_end = await self._until(b"\r\n\r\n") + 4
        parser = _ResponseParser()
        parser.parser.feed_data(bytes(self._unparsed[:end]))
        response = parser.responses[0] if parser.responses else parser.current
        status, length = response.status, response.header(b"content-length")
        if head or status < 200 or status in (204, 304) or parser.responses:
            del self._unparsed[:end]
            response.finish()
            return response
        if response.chunked:
            while True:  # chunk-size [ext] CRLF data CRLF, until the last chunk and trailers
                line_end = await self._until(b"\r\n", end)
                size = int(self._unparsed[end:line_end].split(b";")[0], 16)
                end = line_end + 2
                if size == 0:
                    end = await self._until(b"\r\n\r\n", end - 2) + 4
                    break
                end += size + 2
                while len(self._unparsed) < end:
                    await self._receive_or_fail()
        elif length is not None:
            end += int(length)
            while len(self._unparsed) < end:
                await self._receive_or_fail()
        else:  # close-delimited
            while await self._receive():
                pass
            end = len(self._unparsed)
        body = bytes(self._unparsed[head_end:end])
        del self._unparsed[:end]
        parser.parser.feed_data(body)
        if not parser.responses:
            parser.parser.feed_data(b"")  # the end of a close-delimited body
        return parser.responses[0]

    async def _until(self, marker: bytes, start: int = 0) -> int:
        """Where ``marker`` begins in the unparsed bytes, reading until it arrives."""
        while (at := self._unparsed.find(marker, start)) < 0:
            await self._receive_or_fail()
        return at

    async def _receive_or_fail(self) -> None:
        if not await self._receive():
            raise ConnectionError(f"connection closed; received {self.raw!r}")

    async def _receive(self) -> bool:
        """Read more; False at the end of the stream."""
        data = await asyncio.wait_for(self.reader.read(65536), 5 * UNIT)
        self._raw += data
        self._unparsed += data
        return bool(data)

    async def read_until_closed(self) -> bytes:
        """Everything until the server closes the connection."""
        while True:
            data = await asyncio.wait_for(self.reader.read(65536), 5 * UNIT)
            if not data:
                return self.raw
            self._raw += data

    def close(self) -> None:
        self.writer.close()


def get(path: str = "/", *headers: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "host: test", *list(headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def compiled(cls: type) -> bool:
    """Whether mypyc compiled ``cls``: the namespace of a compiled class cannot be changed,
    so its methods cannot be patched (and compiled callers would not see a patch)."""
    return not (sys.modules[cls.__module__].__file__ or "").endswith(".py")


def skip_if_compiled(cls: type) -> None:
    """Skip the test where mypyc compiled ``cls`` (``compiled``), whose methods it patches.
    Such a test runs on the pure-Python build: ``./scripts/test-minimum``, or
    ``UVICORN_MYPYC=0 ./scripts/test``."""
    if compiled(cls):
        pytest.skip(f"patches a method of {cls.__name__}, which mypyc compiled")


async def each_turn_until(predicate: Any, timeout: float = 5 * UNIT) -> None:
    """Wait until ``predicate()`` holds, asking it at every turn of the event loop: for a state
    that a callback of this loop changes, where no method of the server can be patched to say
    when (``Watch``), or where the change that ends the wait is a task's end."""

    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0)  # (one turn: the loop polls its sockets without waiting)

    await asyncio.wait_for(wait(), timeout)


class Watch:
    """Wakes waiters each time one of the patched methods ran, so a test can wait for a state
    change (``await watch.until(lambda: conn.read_paused)``) instead of sleeping.

    ``targets`` are (class, method name) pairs; patch them before the server starts, since
    transports may keep bound methods of their protocol. Where mypyc compiled one of the
    classes (``compiled``), nothing is patched and ``until`` asks its predicate at every turn
    of the event loop instead (``each_turn_until``): the same wait, made by polling."""

    def __init__(self, monkeypatch: Any, *targets: tuple[type, str]) -> None:
        self._event: asyncio.Event | None = None
        self._polling = any(compiled(cls) for cls, _ in targets)
        if not self._polling:
            for cls, name in targets:
                monkeypatch.setattr(cls, name, self._wrap(getattr(cls, name)))

    def _wrap(self, original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return original(*args, **kwargs)
            finally:
                if self._event is not None:
                    self._event.set()

        return wrapper

    async def until(self, predicate: Any, timeout: float = 5 * UNIT) -> None:
        if self._polling:
            await each_turn_until(predicate, timeout)
            return

        async def wait() -> None:
            while not predicate():
                self._event = asyncio.Event()
                await self._event.wait()

        await asyncio.wait_for(wait(), timeout)


def only_connection(server: RunningServer) -> Any:
    """The server side (``HTTPConnection``) of the one open connection."""
    state = server.server.state
    assert state is not None
    (conn,) = state.connections
    return conn


def load_script(path: Path, name: str) -> ModuleType:
    """A script of benchmarks/ imported as module ``name`` (registered in sys.modules, where
    dataclasses look their module up), with sys.path as it was before: the script may put its
    own directory there to import its helpers."""
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path[:] = saved
