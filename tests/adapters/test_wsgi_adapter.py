"""WSGIAdapter called directly, as a WSGI server would: the message, the channels' checks, the
response iterable, errors, and close()."""

from __future__ import annotations

import io
import json
import re
import threading
import wsgiref.validate
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from tests.adapters import messaging_apps
from tests.adapters.messaging_apps import read_body
from tests.helpers import UNIT
from uvicorn import ClientDisconnected
from uvicorn.utils import WSGIAdapter


def environ_for(path: str = "/echo", body: bytes | None = None, **extra: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "wsgi.input": io.BytesIO(body or b""),
    }
    if body is not None:
        environ["REQUEST_METHOD"] = "POST"
        environ["CONTENT_LENGTH"] = str(len(body))
    environ.update(extra)
    setup_testing_defaults(environ)
    return environ


class Start:
    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status, self.headers = status, headers
        return None

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name), None)


def run(app: Any, environ: dict[str, Any]) -> tuple[Start, bytes]:
    start = Start()
    result = app(environ, start)
    try:
        return start, b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()


@pytest.mark.filterwarnings("error")  # wsgiref.validate's warnings too
@pytest.mark.parametrize("path", ["/echo", "/stream", "/duplex"])
def test_validated(path: str) -> None:
    app = wsgiref.validate.validator(WSGIAdapter(messaging_apps.router))
    start, body = run(app, environ_for(path, b"x" * 100_000))
    assert start.status == "200 OK"
    assert body


def test_message_and_body_channel() -> None:
    data = bytes(range(256)) * 800  # 200 KiB: the first 64 KiB in the message
    environ = environ_for("/echo", data, QUERY_STRING="a=1", SCRIPT_NAME="/mount")
    environ["HTTP_X_THING"] = "v"
    start, body = run(messaging_apps.wsgi, environ)
    summary = json.loads(body)
    assert start.status == "200 OK"
    assert start.header("content-length") == str(len(body))  # complete in one message
    assert summary["size"] == len(data) and summary["first_body"] == 65536
    assert summary["reads"] == 3  # 200 KiB - 64 KiB, in 64 KiB chunks
    assert summary["channel"] == "http.request" and summary["method"] == "POST"
    assert summary["path"] == "/echo" and summary["raw_path"] == "/echo"
    assert summary["root_path"] == "/mount" and summary["query_string"] == "a=1"
    assert ["x-thing", "v"] in summary["headers"]
    assert ["content-length", str(len(data))] in summary["headers"]
    assert summary["http_version"] == "1.0" and summary["scheme"] == "http"
    assert summary["server"] == ["127.0.0.1", 80]


def test_small_body_has_no_body_channel() -> None:
    summary = json.loads(run(messaging_apps.wsgi, environ_for("/echo", b"tiny"))[1])
    assert summary["first_body"] == 4 and summary["reads"] == 0


def test_short_body_is_a_closed_body_channel() -> None:
    received: list[Any] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        received.append(await channels["body"].receive())
        await channels["reply"].send({"status": 200, "headers": [[b"content-type", b"x/y"]]})

    environ = environ_for("/", b"12345", CONTENT_LENGTH="10")
    run(WSGIAdapter(app), environ)
    assert received == [{"content": b"", "closed": True, "more_content": False}]


def test_streamed_response() -> None:
    start = Start()
    result = messaging_apps.wsgi(environ_for("/stream"), start)
    assert start.header("content-length") is None
    chunks = list(result)
    result.close()  # type: ignore[attr-defined]
    assert chunks == [b"chunk %d\n" % i for i in range(5)]


def test_head_and_no_body_statuses_send_no_body() -> None:
    start, body = run(messaging_apps.wsgi, environ_for("/echo", REQUEST_METHOD="HEAD"))
    assert body == b"" and int(start.header("content-length") or 0) > 0

    async def no_content(message: dict[str, Any], channels: dict[str, Any]) -> None:
        await channels["reply"].send({"status": 204, "content": b"ignored"})

    start, body = run(WSGIAdapter(no_content), environ_for("/"))
    assert start.status == "204 No Content" and body == b""
    assert start.header("content-length") is None


def test_hop_by_hop_headers_are_left_to_the_server() -> None:
    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        headers = [[b"connection", b"close"], [b"transfer-encoding", b"chunked"], [b"x-a", b"1"]]
        await channels["reply"].send({"status": 599, "headers": headers, "content": b"ok"})

    start, _ = run(WSGIAdapter(app), environ_for("/"))
    assert start.status == "599 Unknown"
    assert start.headers == [("x-a", "1"), ("Content-Length", "2")]


@pytest.mark.parametrize(
    ("messages", "error", "match"),
    [
        ([{"status": "200"}], TypeError, "'status'"),
        ([{"status": 101}], ValueError, "200-599"),
        ([{"status": 200, "headers": [["a", b"b"]]}], TypeError, "header name"),
        ([{"status": 200, "headers": [[b"a", b"b\r\nx: y"]]}], ValueError, "CR, LF"),
        ([{"status": 200, "content": "text"}], TypeError, "'content'"),
        ([{"content": b"x"}], RuntimeError, "before the response started"),
        ([{"headers": []}], ValueError, "missing 'status'"),
        ([{"status": 200}, {"content": b"late"}], RuntimeError, "after the response completed"),
    ],
)
def test_bad_messages_raise_from_send(messages: list[Any], error: type, match: str) -> None:
    raised: list[BaseException] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        try:
            for reply in messages:
                await channels["reply"].send(reply)
        except Exception as exc:
            raised.append(exc)
            if "status" not in messages[0] or len(messages) == 1:
                await channels["reply"].send({"status": 500, "headers": [], "content": b"!"})

    run(WSGIAdapter(app), environ_for("/"))
    assert len(raised) == 1 and isinstance(raised[0], error)
    assert match in str(raised[0])


def test_errors_reach_the_wsgi_server() -> None:
    with pytest.raises(RuntimeError, match="failed before responding"):
        messaging_apps.wsgi(environ_for("/fail"), Start())

    result = messaging_apps.wsgi(environ_for("/fail-mid-stream"), Start())
    assert next(iter(result)) == b"partial"
    with pytest.raises(RuntimeError, match="failed mid-stream"):
        next(iter(result))
    result.close()  # type: ignore[attr-defined]

    async def silent(message: dict[str, Any], channels: dict[str, Any]) -> None:
        pass

    with pytest.raises(RuntimeError, match="without starting a response"):
        WSGIAdapter(silent)(environ_for("/"), Start())


def test_closing_the_iterable_early_tells_the_app() -> None:
    stopped = threading.Event()
    errors: list[BaseException] = []

    async def endless(message: dict[str, Any], channels: dict[str, Any]) -> None:
        reply = channels["reply"]
        try:
            await reply.send({"status": 200, "headers": [], "more_content": True})
            while True:
                await reply.send({"content": b"tick", "more_content": True})
        except ClientDisconnected as exc:
            errors.append(exc)
            stopped.set()

    result = WSGIAdapter(endless)(environ_for("/"), Start())
    chunks = iter(result)
    assert next(chunks) == b"tick"
    assert next(chunks) == b"tick"
    result.close()  # type: ignore[union-attr]  # the client went away: the server closes
    assert stopped.wait(5 * UNIT) and len(errors) == 1


def test_channel_names_follow_the_spec() -> None:
    names: list[str] = []

    async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
        names.extend(channel.name for channel in channels.values())
        await read_body(message, channels)
        await channels["reply"].send({"status": 200, "headers": [[b"content-type", b"x/y"]]})

    run(WSGIAdapter(app), environ_for("/", b"x" * 100_000))
    assert len(names) == 2
    assert all(re.fullmatch(r"(reply|body)![0-9a-f]+\.\d+", name) for name in names), names
