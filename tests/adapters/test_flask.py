"""A Flask app on our server: through the CLI with --interface wsgi (a subprocess), and
in-process through ASGIAdapter. The same checks run against both."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.adapters import flask_app
from tests.e2e.process import CLIProcess
from tests.helpers import UNIT, running_server
from uvicorn.utils import ASGIAdapter

ROOT = "/mount"


def fetch(
    port: int, method: str, path: str, body: Any = None, headers: Any = (), chunked: bool = False
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10 * UNIT)
    conn.putrequest(method, path)
    for name, value in headers:
        conn.putheader(name, value)
    if chunked:
        conn.putheader("Transfer-Encoding", "chunked")
    elif body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    if chunked:
        for chunk in body:
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    elif body is not None:
        conn.send(body)
    response = conn.getresponse()
    try:
        return response, response.read()
    finally:
        conn.close()


def check_hello(port: int) -> None:
    response, body = fetch(port, "GET", "/hello")
    assert response.status == 200 and body == b"Hello from Flask"
    assert response.getheader("content-length") == str(len(body))


def check_query_headers_cookies_and_root_path(port: int) -> None:
    headers = [("X-Multi", "a"), ("X-Multi", "b"), ("Cookie", "c=1"), ("Cookie", "d=2")]
    response, body = fetch(port, "GET", "/info?a=1&a=2&b=%20x%C3%A9", headers=headers)
    assert response.status == 200
    info = json.loads(body)
    assert info["args"] == {"a": ["1", "2"], "b": [" xé"]}
    assert info["headers"]["X-Multi"] == "a,b"
    assert info["cookies"] == {"c": "1", "d": "2"}
    assert info["script_root"] == ROOT and info["path"] == "/info"
    assert info["url"].startswith(f"http://127.0.0.1:{port}{ROOT}/info?a=1&a=2&b=")
    assert info["remote_addr"] == "127.0.0.1"


def check_form(port: int) -> None:
    headers = [("Content-Type", "application/x-www-form-urlencoded")]
    _response, body = fetch(port, "POST", "/info", b"name=caf%C3%A9&x=1", headers)
    assert json.loads(body)["form"] == {"name": "café", "x": "1"}


def check_large_upload(port: int) -> None:
    data = os.urandom(3 * 1024 * 1024)
    response, body = fetch(port, "POST", "/upload", data)
    assert response.status == 200
    expected = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert json.loads(body) == dict(expected, content_length=len(data))


def check_chunked_upload(port: int) -> None:
    chunks = [os.urandom(size) for size in (1, 70000, 5, 200000)]
    _response, body = fetch(port, "POST", "/upload", chunks, chunked=True)
    data = b"".join(chunks)
    expected = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert json.loads(body) == dict(expected, content_length=None)


def check_streaming_response(port: int) -> None:
    response, body = fetch(port, "GET", "/stream")
    assert response.getheader("transfer-encoding") == "chunked"
    assert body == b"".join(b"chunk %d\n" % i for i in range(5))


def check_duplex(port: int) -> None:
    """The first chunk of the response reaches the client while the app still waits for the
    rest of the upload: both directions stream."""
    with socket.create_connection(("127.0.0.1", port), timeout=10 * UNIT) as sock:
        sock.sendall(
            b"POST /duplex HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
            b"connection: close\r\n\r\n"
        )
        received = b""
        while b"ready\n" not in received:
            data = sock.recv(65536)
            assert data, received
            received += data
        sock.sendall(b"6\r\nhello\n\r\n0\r\n\r\n")
        while data := sock.recv(65536):
            received += data
    assert received.endswith(b"0\r\n\r\n")
    assert b"got hello\n" in received


def check_response_headers(port: int) -> None:
    response, _body = fetch(port, "GET", "/cookies")
    assert response.msg.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.getheader("X-Custom") == "yes"


def check_not_found(port: int) -> None:
    response, _ = fetch(port, "GET", "/nowhere")
    assert response.status == 404


def check_flask_error(port: int) -> None:
    response, _ = fetch(port, "GET", "/error")
    assert response.status == 500  # Flask's own, logged by Flask on wsgi.errors


def check_error_mid_stream(port: int) -> None:
    with pytest.raises(http.client.IncompleteRead) as info:
        fetch(port, "GET", "/error-mid-stream")
    assert info.value.partial == b"partial\n"  # then the connection closed


CHECKS: list[Callable[[int], None]] = [
    check_hello,
    check_query_headers_cookies_and_root_path,
    check_form,
    check_large_upload,
    check_chunked_upload,
    check_streaming_response,
    check_duplex,
    check_response_headers,
    check_not_found,
    check_flask_error,
    check_error_mid_stream,
]


@pytest.fixture(scope="module")
def cli() -> Iterator[tuple[CLIProcess, int]]:
    args = ["tests.adapters.flask_app:app", "--interface", "wsgi", "--wsgi-threads", "4"]
    with CLIProcess(*args, "--port", "0", "--root-path", ROOT, "--no-access-log") as server:
        yield server, server.wait_ready()
        assert server.stop() == 0


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__[6:])
def test_cli_interface_wsgi(cli: tuple[CLIProcess, int], check: Callable[[int], None]) -> None:
    server, port = cli
    check(port)
    if check is check_flask_error:
        server.wait_for_line(r"RuntimeError: flask view failed on purpose")
    if check is check_error_mid_stream:
        server.wait_for_line(r"ERROR: +Exception in app for GET /error-mid-stream")
        server.wait_for_line(r"RuntimeError: stream failed on purpose")


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__[6:])
async def test_in_process(check: Callable[[int], None], caplog: Any) -> None:
    async with running_server(ASGIAdapter(flask_app.app), root_path=ROOT) as server:
        await asyncio.get_running_loop().run_in_executor(None, check, server.port)
    if check is check_error_mid_stream:
        (record,) = [r for r in caplog.records if r.name == "uvicorn.error"]
        assert record.exc_info and "stream failed on purpose" in str(record.exc_info[1])


async def test_exception_before_the_response_is_a_500_with_its_traceback(caplog: Any) -> None:
    caplog.set_level(logging.ERROR)
    async with running_server(ASGIAdapter(flask_app.propagating)) as server:
        loop = asyncio.get_running_loop()
        response, body = await loop.run_in_executor(None, fetch, server.port, "GET", "/")
    assert response.status == 500 and body.startswith(b"Internal Server Error")
    (record,) = [r for r in caplog.records if r.name == "uvicorn.error"]
    assert record.getMessage() == "Exception in app for GET /"
    assert record.exc_info is not None
    assert "propagated on purpose" in str(record.exc_info[1])
    assert "propagated" in caplog.text  # the traceback names the view
