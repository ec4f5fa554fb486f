"""WSGIAdapter under real WSGI servers: wsgiref's (in a thread, behind wsgiref.validate) and
gunicorn's sync worker (a subprocess); request bodies, streaming both ways, errors."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import wsgiref.simple_server
import wsgiref.validate
from collections.abc import Iterator
from typing import Any

import pytest

from tests.adapters.test_flask import fetch
from tests.e2e.process import CLIProcess
from tests.helpers import UNIT

APP = "tests.adapters.messaging_apps:wsgi"


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def wsgiref_port() -> Iterator[int]:
    from tests.adapters.messaging_apps import wsgi

    app = wsgiref.validate.validator(wsgi)
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture(scope="module")
def gunicorn() -> Iterator[tuple[CLIProcess, int]]:
    args = ["--bind", "127.0.0.1:0", "--workers", "1", "--worker-class", "sync", APP]
    with CLIProcess(*args, module="gunicorn") as server:
        port = int(server.wait_for_line(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))
        yield server, port
        server.stop()


def upload(port: int, data: bytes, chunked: bool = False) -> dict[str, Any]:
    pieces = [data[i : i + 50_000] for i in range(0, len(data), 50_000)] if chunked else data
    response, body = fetch(port, "POST", "/echo?x=1", pieces, [("X-Test", "yes")], chunked)
    assert response.status == 200
    summary: dict[str, Any] = json.loads(body)
    assert summary["size"] == len(data)
    assert summary["sha256"] == hashlib.sha256(data).hexdigest()
    assert summary["query_string"] == "x=1" and ["x-test", "yes"] in summary["headers"]
    return summary


def duplex(port: int, size: int = 300_000) -> bytes:
    """Send the first 64 KiB, wait for the app's 'ready' (it answers before reading the rest),
    then send the rest."""
    head = b"POST /duplex HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % size
    with socket.create_connection(("127.0.0.1", port), timeout=10 * UNIT) as sock:
        sock.sendall(head + b"x" * 65536)
        received = b""
        while b"ready\n" not in received:
            data = sock.recv(65536)
            assert data, received
            received += data
        sock.sendall(b"x" * (size - 65536))
        while b"bytes\n" not in received:
            data = sock.recv(65536)
            assert data, received
            received += data
    assert b"got %d bytes\n" % size in received
    return received


@pytest.mark.filterwarnings("error")  # wsgiref.validate's warnings fail the request
def test_wsgiref(wsgiref_port: int) -> None:
    summary = upload(wsgiref_port, os.urandom(200_000))
    assert summary["first_body"] == 65536 and summary["reads"] == 3
    assert summary["http_version"] == "1.1" and summary["client"][0] == "127.0.0.1"
    response, body = fetch(wsgiref_port, "GET", "/stream")
    assert body == b"".join(b"chunk %d\n" % i for i in range(5))
    duplex(wsgiref_port)
    response, _ = fetch(wsgiref_port, "GET", "/fail")
    assert response.status == 500


def test_gunicorn_sync_worker(gunicorn: tuple[CLIProcess, int]) -> None:
    server, port = gunicorn
    summary = upload(port, os.urandom(1_000_000))
    assert summary["first_body"] == 65536 and summary["reads"] > 1
    assert summary["raw_path"] == "/echo"  # from gunicorn's RAW_URI
    summary = upload(port, os.urandom(300_000), chunked=True)
    assert summary["first_body"] == 0 and summary["reads"] > 1
    response, body = fetch(port, "GET", "/stream")
    assert response.getheader("transfer-encoding") == "chunked"
    assert body == b"".join(b"chunk %d\n" % i for i in range(5))
    assert b"transfer-encoding: chunked" in duplex(port).lower()
    response, _ = fetch(port, "GET", "/fail")
    assert response.status == 500
    server.wait_for_line("RuntimeError: failed before responding")
    with pytest.raises(http.client.IncompleteRead) as info:
        fetch(port, "GET", "/fail-mid-stream")
    assert info.value.partial == b"partial"
    server.wait_for_line("RuntimeError: failed mid-stream")
