"""The README's two adapter snippets, with real apps in place of their ``...``: the README shows
examples/asgi_adapter.py and examples/wsgi_adapter.py, and both run on real servers."""

from __future__ import annotations

import re
import threading
import wsgiref.simple_server
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.test_flask import fetch
from tests.e2e.process import CLIProcess
from uvicorn.config import Config
from uvicorn.utils import ASGIAdapter
from uvicorn.worker.loading import detect_interface, load_app

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("example", "marker"),
    [("asgi_adapter", "def app(environ, start_response):"), ("wsgi_adapter", "wsgi = WSGIAdapter")],
)
def test_readme_snippets_are_the_example_files(example: str, marker: str) -> None:
    readme = (REPO / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if marker in b]
    assert block.strip() in (REPO / "examples" / f"{example}.py").read_text()


@pytest.mark.parametrize(
    "args",
    [["examples.asgi_adapter:asgi"], ["--interface", "wsgi", "examples.asgi_adapter:app"]],
)
def test_asgi_adapter_example_on_our_server(args: list[str]) -> None:
    with CLIProcess(*args, "--port", "0") as server:
        port = server.wait_ready()
        response, body = fetch(port, "GET", "/uvicorn")
        assert (response.status, body) == (200, b"Hello, uvicorn, from WSGI")
        response, body = fetch(port, "POST", "/", b"some data")
        assert body == b"You sent: some data"
        assert server.stop() == 0
        assert "Traceback" not in server.output()


def test_wsgi_adapter_example_under_wsgiref() -> None:
    from examples.wsgi_adapter import wsgi

    server = wsgiref.simple_server.make_server("127.0.0.1", 0, wsgi)
    server.RequestHandlerClass.log_message = lambda *args: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        assert fetch(server.server_port, "POST", "/", b"some data")[1] == b"You sent: some data"
        assert fetch(server.server_port, "GET", "/")[1] == b"You sent: nothing"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_wsgi_adapter_example_under_gunicorn() -> None:
    args = ["--bind", "127.0.0.1:0", "--workers", "1", "examples.wsgi_adapter:wsgi"]
    with CLIProcess(*args, module="gunicorn") as server:
        port = int(server.wait_for_line(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))
        response, body = fetch(port, "POST", "/", b"x" * 100_000)
        assert (response.status, body) == (200, b"You sent: " + b"x" * 100_000)
        server.stop()


def test_wsgi_is_never_guessed_and_the_flag_wraps_the_app() -> None:
    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        return []

    assert detect_interface(wsgi_app) == "messaging"  # two parameters, like a messaging app
    app, interface = load_app(Config(app=wsgi_app, interface="wsgi", wsgi_threads=3))
    assert interface == "messaging"
    assert isinstance(app, ASGIAdapter) and app.app is wsgi_app and app._pool.size == 3
    assert app.multiprocess is False
    app, _ = load_app(Config(app=wsgi_app, interface="wsgi", workers=2))
    assert app.multiprocess is True  # PEP 3333's wsgi.multiprocess
    assert detect_interface(app) == "messaging"
