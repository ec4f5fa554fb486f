"""File responses (SPEC: ``file``; ASGI: ``http.response.pathsend`` and
``http.response.zerocopysend``), on both interfaces: plain-TCP HTTP/1.1 sends them straight to
the socket, with ``os.sendfile`` or, to a client on this host, copied (both spied on here), TLS
and HTTP/2 in pieces; HEAD sends none of the file; an app's
content-length is honoured; a file shorter than promised cuts the response; a path that cannot
be opened raises OSError in the app and gets the client a 500; a slow client holds the send."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import UNIT, get, only_connection, running_server, tls_certificate
from tests.worker.h2client import H2Client
from uvicorn.worker import files as files_module

INTERFACES = pytest.mark.parametrize("interface", ["messaging", "asgi3"])
BIG = os.urandom(8 * 1024 * 1024 + 123)  # more than loopback's socket buffers take
SMALL = bytes(range(256)) * 40


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("files")
    (directory / "big.bin").write_bytes(BIG)
    (directory / "small.bin").write_bytes(SMALL)
    return {"big": str(directory / "big.bin"), "small": str(directory / "small.bin"),
            "missing": str(directory / "missing.bin"), "dir": str(directory)}  # fmt: skip


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return tls_certificate(tmp_path_factory.mktemp("tls"))


class SendfileSpy:
    """Counts the calls and bytes that send a file straight to the socket, and sets ``blocked``
    when the socket was full: ``os.sendfile`` (mode "sendfile", files.COPY_TO_LOCAL_CLIENTS
    turned off so that a local client gets it) or the copy's ``os.write`` of the file's bytes
    (mode "copy", what a client on this host gets)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
        self.calls = 0
        self.bytes = 0
        self.blocked = asyncio.Event()
        monkeypatch.setattr(files_module, "COPY_TO_LOCAL_CLIENTS", mode == "copy")
        name = "sendfile" if mode == "sendfile" else "write"
        real = getattr(os, name)

        def spy(fd: int, *args: Any) -> int:
            direct = stat.S_ISSOCK(os.fstat(fd).st_mode)  # (os.write: only to a socket)
            self.calls += direct
            try:
                sent: int = real(fd, *args)
            except BlockingIOError:
                self.blocked.set()
                raise
            self.bytes += sent if direct else 0
            return sent

        monkeypatch.setattr(os, name, spy)


@pytest.fixture(params=["sendfile", "copy"])
def spy(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> SendfileSpy:
    return SendfileSpy(monkeypatch, request.param)


def path_app(interface: str, path: str, headers: Any = (), before: bytes = b"") -> Any:
    """Answers with the file at ``path`` (``before``: a first body piece of its own); what its
    send raised is in ``app.errors``, and ``app.sent`` is set once the file's send returned."""
    errors: list[BaseException] = []
    sent = asyncio.Event()

    async def messaging(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        try:
            if before:
                await reply.send({"status": 200, "headers": list(headers), "content": before,
                                  "more_content": True})  # fmt: skip
                await reply.send({"file": path})
            else:
                await reply.send({"status": 200, "headers": list(headers), "file": path})
        except Exception as exc:
            errors.append(exc)
            raise
        sent.set()

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        assert scope["extensions"]["http.response.pathsend"] == {}
        assert scope["extensions"]["http.response.zerocopysend"] == {}
        try:
            await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
            if before:
                await send({"type": "http.response.body", "body": before, "more_body": True})
            await send({"type": "http.response.pathsend", "path": path})
        except Exception as exc:
            errors.append(exc)
            raise
        sent.set()

    app: Any = messaging if interface == "messaging" else asgi
    app.errors = errors
    app.sent = sent
    return app


# Plain-TCP HTTP/1.1: straight to the socket (sendfile, or the local client's copy).


@INTERFACES
async def test_a_file_goes_out_with_sendfile_and_its_length(
    interface: str, files: dict[str, str], spy: SendfileSpy
) -> None:
    async with running_server(path_app(interface, files["small"]), interface=interface) as server:
        response = await server.request(get("/"))
    assert response.status == 200
    assert response.header(b"content-length") == b"%d" % len(SMALL)
    assert response.body == SMALL
    assert spy.calls >= 1 and spy.bytes == len(SMALL)


@INTERFACES
async def test_a_large_file_arrives_exactly_through_curl(
    interface: str, files: dict[str, str], spy: SendfileSpy, tmp_path: Path
) -> None:
    out = tmp_path / "out.bin"
    async with running_server(path_app(interface, files["big"]), interface=interface) as server:
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-o", str(out), "-w", "%{http_code} %{size_download}",
            f"http://127.0.0.1:{server.port}/",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, _ = await asyncio.wait_for(proc.communicate(), 10 * UNIT)
    assert stdout.decode() == f"200 {len(BIG)}"
    assert out.read_bytes() == BIG
    assert spy.bytes == len(BIG)


@INTERFACES
async def test_head_sends_none_of_the_file(
    interface: str, files: dict[str, str], spy: SendfileSpy
) -> None:
    async with running_server(path_app(interface, files["big"]), interface=interface) as server:
        client = await server.connect()
        await client.send(get("/", method="HEAD") + get("/", "connection: close"))
        head = await client.read_response(head=True)
        response = await client.read_response()
    assert head.header(b"content-length") == b"%d" % len(BIG) and head.body == b""
    assert response.body == BIG  # the next response on the same connection is intact
    assert spy.bytes == len(BIG)  # (the GET's: the HEAD sent none)


@INTERFACES
async def test_the_apps_content_length_is_honoured(
    interface: str, files: dict[str, str], spy: SendfileSpy
) -> None:
    app = path_app(interface, files["small"], [(b"content-length", b"1000")])
    async with running_server(app, interface=interface) as server:
        client = await server.connect()
        await client.send(get("/") + get("/"))  # the connection is kept: the framing held
        first, second = await client.read_response(), await client.read_response()
    assert first.header(b"content-length") == b"1000"
    assert first.body == second.body == SMALL[:1000]


@INTERFACES
async def test_a_file_after_a_body_piece_is_chunked(
    interface: str, files: dict[str, str], spy: SendfileSpy
) -> None:
    app = path_app(interface, files["small"], before=b"<<")
    async with running_server(app, interface=interface) as server:
        response = await server.request(get("/"))
    assert response.chunked and response.body == b"<<" + SMALL
    assert spy.bytes == len(SMALL)


@INTERFACES
async def test_a_file_shorter_than_promised_closes_the_connection(
    interface: str, files: dict[str, str], spy: SendfileSpy
) -> None:
    promised = len(SMALL) + 500
    app = path_app(interface, files["small"], [(b"content-length", b"%d" % promised)])
    async with running_server(app, interface=interface) as server:
        client = await server.connect()
        await client.send(get("/"))
        data = await client.read_until_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-length: %d" % promised in head and body == SMALL
    assert isinstance(app.errors[0], RuntimeError)
    assert "ended after" in str(app.errors[0])


@INTERFACES
async def test_a_path_that_cannot_be_opened_raises_oserror_and_gets_a_500(
    interface: str, files: dict[str, str]
) -> None:
    for path in (files["missing"], files["dir"]):
        app = path_app(interface, path)
        async with running_server(app, interface=interface) as server:
            response = await server.request(get("/"))
        assert response.status == 500
        assert isinstance(app.errors[0], OSError)


@INTERFACES
async def test_a_path_that_cannot_be_opened_after_the_head_closes_the_connection(
    interface: str, files: dict[str, str]
) -> None:
    app = path_app(interface, files["missing"], before=b"<<")
    async with running_server(app, interface=interface) as server:
        client = await server.connect()
        await client.send(get("/"))
        data = await client.read_until_closed()
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"2\r\n<<\r\n")  # never ended
    assert isinstance(app.errors[0], FileNotFoundError)


@INTERFACES
async def test_a_slow_client_holds_the_send_and_no_memory(
    interface: str, files: dict[str, str], spy: SendfileSpy
) -> None:
    # The send waits for the client, holding nothing of the file: the transport holds none of
    # it, and a copy (to this local client) gives its buffer back to the worker's pool while it
    # waits, reading again after what the socket had not taken (the bytes must still match).
    files_module._BUFFERS.clear()
    app = path_app(interface, files["big"])
    async with running_server(app, interface=interface) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(get("/", "connection: close"))
        await asyncio.wait_for(spy.blocked.wait(), 5 * UNIT)  # the socket is full
        assert not app.sent.is_set()  # the app's send waits
        assert only_connection(server).transport.get_write_buffer_size() == 0
        copying = files_module.COPY_TO_LOCAL_CLIENTS
        assert len(files_module._BUFFERS) == (1 if copying else 0)  # back in the pool
        data = await asyncio.wait_for(reader.read(), 10 * UNIT)
        await asyncio.wait_for(app.sent.wait(), 5 * UNIT)
        writer.close()
    assert data.partition(b"\r\n\r\n")[2] == BIG


async def test_zerocopysend_with_offsets_and_the_files_own_position(
    files: dict[str, str], spy: SendfileSpy
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        with open(files["small"], "rb") as file:
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.zerocopysend", "file": file, "offset": 10,
                        "count": 5, "more_body": True})  # fmt: skip
            file.seek(100)
            await send({"type": "http.response.zerocopysend", "file": file, "count": 3,
                        "more_body": True})  # fmt: skip
            assert file.tell() == 103  # from its position, which moved past the bytes sent
            await send({"type": "http.response.body", "body": b"|", "more_body": True})
            file.seek(len(SMALL) - 4)
            await send({"type": "http.response.zerocopysend", "file": file})  # to its end

    async with running_server(app, interface="asgi3") as server:
        response = await server.request(get("/"))
    assert response.body == SMALL[10:15] + SMALL[100:103] + b"|" + SMALL[-4:]
    assert spy.bytes == 12


async def test_messaging_file_objects_with_offset_and_count(
    files: dict[str, str], spy: SendfileSpy
) -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        with open(files["small"], "rb") as file:
            await channels["reply"].send({"status": 200, "content": b"[", "file": file,
                                          "offset": 256, "count": 256})  # fmt: skip

    async with running_server(app, interface="messaging") as server:
        response = await server.request(get("/"))
    assert response.header(b"content-length") == b"257"
    assert response.body == b"[" + bytes(range(256))


async def test_a_starlette_file_response_takes_the_zero_copy_path(
    files: dict[str, str], spy: SendfileSpy
) -> None:
    from starlette.applications import Starlette
    from starlette.responses import FileResponse
    from starlette.routing import Route

    async def download(request: Any) -> FileResponse:
        return FileResponse(files["big"], media_type="application/octet-stream")

    app = Starlette(routes=[Route("/big", download, methods=["GET", "HEAD"])])
    async with (
        running_server(app, interface="asgi3", lifespan="off") as server,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(f"http://127.0.0.1:{server.port}/big")
        head = await client.head(f"http://127.0.0.1:{server.port}/big")
    assert response.status_code == 200 and response.content == BIG
    assert response.headers["content-length"] == str(len(BIG))
    assert head.headers["content-length"] == str(len(BIG)) and head.content == b""
    assert spy.bytes == len(BIG)  # all of it straight to the socket


# TLS: in pieces, not os.sendfile.


@INTERFACES
async def test_tls_sends_the_file_in_pieces(
    interface: str, files: dict[str, str], tls: dict[str, str], spy: SendfileSpy
) -> None:
    app = path_app(interface, files["big"])
    async with (
        running_server(app, interface=interface, http="1.1", **tls) as server,
        httpx.AsyncClient(verify=False) as client,
    ):
        response = await client.get(f"https://127.0.0.1:{server.port}/")
        head = await client.head(f"https://127.0.0.1:{server.port}/")
    assert response.http_version == "HTTP/1.1"
    assert response.content == BIG and response.headers["content-length"] == str(len(BIG))
    assert head.content == b"" and head.headers["content-length"] == str(len(BIG))
    assert spy.calls == 0


@INTERFACES
async def test_tls_http2_through_curl(
    interface: str, files: dict[str, str], tls: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out.bin"
    async with running_server(path_app(interface, files["big"]), interface=interface,
                              **tls) as server:  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sSk", "--http2", "-o", str(out), "-w", "%{http_version} %{http_code}",
            f"https://127.0.0.1:{server.port}/",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, _ = await asyncio.wait_for(proc.communicate(), 10 * UNIT)
    assert stdout.decode() == "2 200"
    assert out.read_bytes() == BIG


# HTTP/2 (h2c): DATA frames within the windows.


@INTERFACES
async def test_http2_sends_the_file_within_the_windows(
    interface: str, files: dict[str, str], spy: SendfileSpy
) -> None:
    app = path_app(interface, files["big"])
    async with running_server(app, interface=interface) as server:
        client = await H2Client.open(server.port, auto_ack=False)
        stream_id = client.request("/")
        # With no window given back, the app's send waits once the first 64 KiB went.
        await client.until(lambda: len(client.streams[stream_id].data) == 65535)
        assert not app.sent.is_set()
        client.auto_ack = True
        client.give_window(2**20, 0)
        client.give_window(2**20, stream_id)
        result = await client.response(stream_id, timeout=10 * UNIT)
        head_id = client.request("/", method="HEAD")
        head = await client.response(head_id)
        client.close()
    assert result.status == 200 and result.header(b"content-length") == b"%d" % len(BIG)
    assert bytes(result.data) == BIG
    assert head.header(b"content-length") == b"%d" % len(BIG) and not head.data
    assert spy.calls == 0


@INTERFACES
async def test_http2_a_short_file_resets_the_stream_and_a_bad_path_gets_a_500(
    interface: str, files: dict[str, str]
) -> None:
    short = path_app(interface, files["small"], [(b"content-length", b"99999")])
    async with running_server(short, interface=interface) as server:
        client = await H2Client.open(server.port)
        result = await client.response(client.request("/"))
        client.close()
    assert result.reset == 2 and bytes(result.data) == SMALL  # INTERNAL_ERROR
    assert isinstance(short.errors[0], RuntimeError)
    missing = path_app(interface, files["missing"])
    async with running_server(missing, interface=interface) as server:
        client = await H2Client.open(server.port)
        result = await client.response(client.request("/"))
        client.close()
    assert result.status == 500
    assert isinstance(missing.errors[0], FileNotFoundError)


@pytest.mark.parametrize(
    ("client", "server", "local"),
    [
        (["127.0.0.1", 5000], ["127.0.0.1", 8000], True),
        (["127.8.9.1", 5000], ["0.0.0.0", 8000], True),  # all of 127/8 is loopback
        (["::1", 5000], ["::1", 8000], True),
        (["::ffff:127.0.0.1", 5000], ["::", 8000], True),  # a dual-stack socket's IPv4 peer
        (["10.1.2.3", 5000], ["10.1.2.3", 8000], True),  # its own address: loopback too
        (["10.1.2.4", 5000], ["10.1.2.3", 8000], False),
        (["2001:db8::1", 5000], ["2001:db8::2", 8000], False),
        (None, ["/tmp/sock", None], False),  # a Unix socket
    ],
)
def test_which_clients_are_on_this_host(client: Any, server: Any, local: bool) -> None:
    assert files_module.same_host(client, server) is local


class LoopTurns:
    """What a file send did (``mark``: a write, a read) and, between, each turn the event loop
    gave others: a callback that schedules itself again each time it runs."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self._ticking = False

    def mark(self, event: str) -> None:
        self.events.append(event)

    def start(self) -> None:
        self._ticking = True
        self._tick()

    def stop(self) -> None:
        self._ticking = False

    def _tick(self) -> None:
        self.events.append("turn")
        if self._ticking:
            asyncio.get_running_loop().call_soon(self._tick)

    def without_a_turn(self, event: str) -> tuple[int, int]:
        """(How many ``event`` followed another with no turn between, how many in all.)"""
        at = [i for i, seen in enumerate(self.events) if seen == event]
        return sum(j == i + 1 for i, j in itertools.pairwise(at)), len(at)


async def fetch_with_turns(turns: LoopTurns, port: int, *curl_args: str) -> bytes:
    """curl's ``-w`` output for GET / (to /dev/null), the loop's turns recorded meanwhile
    (from before curl starts: the loop runs while the subprocess is being made, and curl may
    connect and the server start writing then, as it did in a loaded full run of the suite)."""
    turns.start()
    try:
        out = await asyncio.create_subprocess_exec(
            "curl", "-sS", *curl_args, "-o", "/dev/null", f"http://127.0.0.1:{port}/",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, _ = await asyncio.wait_for(out.communicate(), 10 * UNIT)
    finally:
        turns.stop()
    return stdout


@INTERFACES
async def test_a_file_to_a_fast_client_lets_the_loop_run_others(
    interface: str, files: dict[str, str], spy: SendfileSpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client that reads as fast as the server writes never makes a write wait (EAGAIN):
    # the send must still let the loop run between its writes (here after each, FAIR_SHARE
    # 1 byte), or every other connection waits for the whole file.
    monkeypatch.setattr(files_module, "FAIR_SHARE", 1)
    turns = LoopTurns()

    def counting(real: Any) -> Any:
        def call(fd: int, *args: Any) -> int:
            sent: int = real(fd, *args)
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                turns.mark("write")
            return sent

        return call

    monkeypatch.setattr(os, "write", counting(os.write))
    monkeypatch.setattr(os, "sendfile", counting(os.sendfile))
    async with running_server(path_app(interface, files["big"]), interface=interface) as server:
        stdout = await fetch_with_turns(turns, server.port, "-w", "%{size_download}")
    assert stdout == b"%d" % len(BIG)
    together, writes = turns.without_a_turn("write")
    assert writes >= 2
    assert together == 0, f"{together} writes of {writes} had no turn of the loop"

async def test_concurrent_copies_each_have_a_buffer_and_the_worker_keeps_a_few(
    files: dict[str, str], tmp_path: Path
) -> None:
    # Files copied to local clients at once: each send its own buffer (none sees another's
    # bytes), taken from and given back to the worker's pool, which keeps at most a few.
    files_module._BUFFERS.clear()
    app = path_app("messaging", files["big"])
    async with running_server(app) as server:
        outs = [tmp_path / f"out{i}.bin" for i in range(6)]
        url = f"http://127.0.0.1:{server.port}/"
        curl = ("curl", "-sS", "--limit-rate", "20M", "-o")  # (slow: the sends overlap)
        procs = [await asyncio.create_subprocess_exec(*curl, str(out), url) for out in outs]
        for proc in procs:
            assert await asyncio.wait_for(proc.wait(), 20 * UNIT) == 0
    assert all(out.read_bytes() == BIG for out in outs)
    assert 1 <= len(files_module._BUFFERS) <= files_module.POOLED_BUFFERS
    assert all(len(buffer) == files_module.COPY_CHUNK for buffer in files_module._BUFFERS)


@INTERFACES
async def test_http2_a_file_to_a_fast_client_lets_the_loop_run_others(
    interface: str, files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pieces of HTTP/2 (and TLS): between two reads of the file, the loop ran, whether or
    # not the stream had to wait for room (FAIR_SHARE 1 byte: a turn after every piece).
    monkeypatch.setattr(files_module, "FAIR_SHARE", 1)
    turns = LoopTurns()
    real_pread = os.pread

    def pread(fd: int, size: int, offset: int) -> bytes:
        turns.mark("read")
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", pread)
    async with running_server(path_app(interface, files["big"]), interface=interface) as server:
        stdout = await fetch_with_turns(
            turns, server.port, "--http2-prior-knowledge", "-w", "%{size_download} %{http_version}"
        )
    assert stdout == b"%d 2" % len(BIG)
    together, reads = turns.without_a_turn("read")
    assert reads >= len(BIG) // files_module.CHUNK
    assert together == 0, f"{together} reads of {reads} had no turn of the loop"
