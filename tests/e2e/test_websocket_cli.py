"""The README's WebSocket examples served by the real command line, as the README runs them."""

from __future__ import annotations

import re

from websockets.sync.client import connect

from tests.e2e.process import CLIProcess
from tests.helpers import UNIT


def test_echo_example() -> None:
    with CLIProcess("examples.echo:echo", "--port", "0") as server:
        port = server.wait_ready()
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=10 * UNIT) as ws:
            ws.send("Hello, world")
            assert ws.recv(timeout=10 * UNIT) == "Hello, world"
        assert server.stop() == 0
        output = server.output()
    assert "Traceback" not in output and "ERROR" not in output, output
    assert '"GET / HTTP/1.1" 101' in output, output


def test_tick_example() -> None:
    with CLIProcess("examples.tick:tick", "--port", "0") as server:
        port = server.wait_ready()
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=10 * UNIT) as ws:
            text = ws.recv(timeout=10 * UNIT)
            assert isinstance(text, str)
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", text), text
        # The client left; SIGTERM: the server closes cleanly, the app's task ends quietly.
        assert server.stop() == 0
        output = server.output()
    assert "Traceback" not in output and "never retrieved" not in output, output
