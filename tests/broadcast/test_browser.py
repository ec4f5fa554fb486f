"""The README's broadcast chat in a real browser: headless Chromium shows two pages, each served
by a different instance of examples/broadcast_chat (unchanged: each page talks to the instance
that served it); a message typed in one appears in both. Over HTTP/1.1, and over TLS, where the
pages and their WebSockets come over HTTP/2 (RFC 8441); and with a Redis Cluster as the Redis
(``redis-cluster://``). Fails, never skips, when Chromium cannot start (``scripts/test`` installs
it)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.e2e.process import REPO, CLIProcess
from tests.e2e.test_browser import chromium, next_hop_protocol, self_signed, type_and_see
from tests.helpers import UNIT


@pytest.mark.parametrize(
    ("tls", "redis"),
    [(False, "redis_server"), (True, "redis_server"), (False, "redis_cluster")],
    ids=["http1", "https-h2", "http1-redis-cluster"],
)
def test_two_pages_on_two_instances_chat(
    request: pytest.FixtureRequest, tls: bool, redis: str, tmp_path: Path
) -> None:
    server = request.getfixturevalue(redis)
    env = {"UVICORN_REDIS_URL": server.url() if redis == "redis_cluster" else server.url}
    cwd = REPO / "examples" / "broadcast_chat"
    flags = self_signed(tmp_path) if tls else []
    with chromium() as browser, contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(
                CLIProcess("app:chat_server", "--port", "0", *flags, cwd=cwd, env=env)
            )
            for _ in range(2)
        ]
        ports = [server.wait_ready() for server in servers]
        assert ports[0] != ports[1]
        context = browser.new_context(ignore_https_errors=tls)
        context.set_default_timeout(10_000 * UNIT)  # milliseconds
        pages = [context.new_page() for _ in ports]
        for page, port in zip(pages, ports, strict=True):
            page.goto(f"{'https' if tls else 'http'}://127.0.0.1:{port}/")
            assert page.title() == "WebSocket demo"
            assert next_hop_protocol(page) == ("h2" if tls else "http/1.1")
            # Open once the handshake is answered, which is once the page is in the group.
            page.wait_for_function("window.ws && window.ws.readyState === WebSocket.OPEN")

        type_and_see(pages, 0, "Hello from the first instance")
        type_and_see(pages, 1, "and from the second", press_enter=True)
        for page in pages:
            assert page.locator("#messages li").all_inner_texts() == [
                "Hello from the first instance",
                "and from the second",
            ]
        context.close()
        for server in servers:
            assert server.stop() == 0
            output = server.output()
            assert "Traceback" not in output and "ERROR" not in output, output
            if tls:
                assert '"CONNECT / HTTP/2" 200' in output, output
