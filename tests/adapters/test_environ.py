"""The request translated both ways: message -> PEP 3333 environ, and environ -> message."""

from __future__ import annotations

import io
import sys
import wsgiref.validate
from typing import Any

import pytest

from tests.adapters.fakes import request
from uvicorn.adapters.environ import InputStream, build_environ, message_from_environ


def environ_of(**message: Any) -> dict[str, Any]:
    return build_environ(request(**message), InputStream(b"", None))


@pytest.mark.filterwarnings("error")  # wsgiref's WSGIWarning too
def test_complete_environ_passes_wsgiref_validation() -> None:
    environ = environ_of(
        method="POST",
        raw_path=b"/a%20b/caf%C3%A9",
        query_string=b"x=1&y=%20",
        headers=[
            [b"host", b"example.com"],
            [b"content-type", b"text/plain"],
            [b"content-length", b"5"],
            [b"x-multi", b"a"],
            [b"x-multi", b"b"],
        ],
        root_path="/mount",
    )
    wsgiref.validate.check_environ(environ)  # type: ignore[attr-defined]
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == "/mount"
    # PEP 3333: percent-decoded, the bytes carried as latin-1 code points.
    assert environ["PATH_INFO"] == "/a b/caf\xc3\xa9"
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/a b/café"
    assert environ["QUERY_STRING"] == "x=1&y=%20"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ
    assert environ["HTTP_HOST"] == "example.com"
    assert environ["HTTP_X_MULTI"] == "a,b"
    assert environ["SERVER_NAME"] == "127.0.0.1" and environ["SERVER_PORT"] == "8000"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REMOTE_ADDR"] == "10.0.0.1" and environ["REMOTE_PORT"] == "5000"
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.errors"] is sys.stderr
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is False
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True


def test_cookies_join_with_semicolons_and_underscored_names_are_dropped() -> None:
    environ = environ_of(
        headers=[
            [b"cookie", b"a=1"],
            [b"cookie", b"b=2"],
            [b"x-auth-token", b"real"],
            [b"x-auth_token", b"smuggled"],
        ]
    )
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_X_AUTH_TOKEN"] == "real"


@pytest.mark.filterwarnings("error")
def test_root_path_slash_and_unix_socket_and_https() -> None:
    environ = environ_of(root_path="/", server=["/tmp/sock", None], client=None, scheme="https")
    assert environ["SCRIPT_NAME"] == ""  # PEP 3333: never '/'
    assert environ["SERVER_NAME"] == "localhost" and environ["SERVER_PORT"] == "443"
    assert "REMOTE_ADDR" not in environ
    assert environ["wsgi.url_scheme"] == "https"
    wsgiref.validate.check_environ(environ)  # type: ignore[attr-defined]


def test_non_utf8_header_values_pass_as_latin1() -> None:
    environ = environ_of(headers=[[b"x-name", "café".encode("latin-1")]])
    assert environ["HTTP_X_NAME"] == "café"


def test_input_stream_reads_lazily() -> None:
    chunks = [b"line one\nline", b" two\n", b"tail"]
    fetched: list[bytes] = []

    def fetch() -> tuple[bytes, bool]:
        chunk = chunks.pop(0)
        fetched.append(chunk)
        return chunk, bool(chunks)

    stream = InputStream(b"", fetch)
    assert stream.read(4) == b"line"
    assert len(fetched) == 1  # only what was asked for was fetched
    assert stream.readline() == b" one\n"
    assert stream.readline() == b"line two\n"
    assert len(fetched) == 2
    assert stream.read() == b"tail"
    assert stream.read() == b"" and stream.readline() == b""


def test_input_stream_line_methods() -> None:
    data = b"a\nbb\n\nccc"
    pieces = [data[i : i + 2] for i in range(0, len(data), 2)]

    def stream() -> InputStream:
        remaining = list(pieces[1:])

        def fetch() -> tuple[bytes, bool]:
            return remaining.pop(0), bool(remaining)

        return InputStream(pieces[0], fetch)

    assert list(stream()) == list(io.BytesIO(data))
    assert stream().readlines() == io.BytesIO(data).readlines()
    assert stream().readlines(3) == io.BytesIO(data).readlines(3)
    limited = stream()
    assert limited.readline(1) == b"a"
    assert limited.readline(0) == b""
    assert limited.readline(10) == b"\n"
    assert limited.read(100) == b"bb\n\nccc"


def test_message_from_environ_has_every_key() -> None:
    environ = {
        "REQUEST_METHOD": "post",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/caf\xc3\xa9/a b",
        "QUERY_STRING": "q=%20",
        "SERVER_NAME": "example.com",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.0",
        "REMOTE_ADDR": "10.1.2.3",
        "REMOTE_PORT": "4321",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "",
        "HTTP_HOST": "example.com",
        "HTTP_X_CUSTOM_THING": "v",
        "wsgi.url_scheme": "https",
    }
    message = message_from_environ(environ, b"body")
    assert message == {
        "channel": "http.request",
        "http_version": "1.0",
        "method": "POST",
        "scheme": "https",
        "path": "/café/a b",
        "raw_path": b"/caf%C3%A9/a%20b",
        "query_string": b"q=%20",
        "root_path": "/app",
        "headers": [
            [b"content-type", b"text/plain"],
            [b"host", b"example.com"],
            [b"x-custom-thing", b"v"],
        ],
        "body": b"body",
        "client": ["10.1.2.3", 4321],
        "server": ["example.com", 8080],
    }


def test_message_raw_path_prefers_the_servers_request_target() -> None:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a/b", "RAW_URI": "/a%2Fb?x=1"}
    assert message_from_environ(environ, b"")["raw_path"] == b"/a%2Fb"
    environ["RAW_URI"] = "/other"  # not this path (a rewrite): not used
    assert message_from_environ(environ, b"")["raw_path"] == b"/a/b"
    assert message_from_environ({"REQUEST_METHOD": "GET"}, b"")["client"] is None
