"""The README's chat example in a real browser: headless Chromium (Debian's ``chromium``
package, driven by playwright) loads the page from the real command line in two tabs, types a
message in one and sees it in both; over HTTP/1.1, and over TLS, where the page comes over
HTTP/2 (ALPN) and the WebSocket too (RFC 8441).

This test fails, never skips, when Chromium cannot start: ``scripts/test`` installs it."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.process import REPO, CLIProcess
from tests.helpers import UNIT

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL = "install Debian's chromium package (apt-get install -y chromium), as scripts/test does"

# The page hard-codes ws://127.0.0.1:8000/. The example stays unchanged: the browser's
# WebSocket is wrapped so that port 8000 becomes the test server's (and ws: wss: on a page
# served over TLS), and each page records when its socket is open.
WRAP_WEBSOCKET = """
(() => {
    const Native = window.WebSocket;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    window.__openSockets = 0;
    window.WebSocket = class extends Native {
        constructor(url, protocols) {
            super(String(url).replace(/^wss?:(\\/\\/[^\\/:]+):8000(?=\\/|$)/, scheme + "$1:%d"),
                  protocols);
            this.addEventListener("open", () => { window.__openSockets += 1; });
        }
    };
})();
"""


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium; the test fails (not an error in setup, not a skip) when it cannot
    start."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"playwright is missing ({exc}): pip install -e '.[test]'")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=ARGS, timeout=30_000 * UNIT
            )
        except Exception as exc:
            pytest.fail(f"Chromium cannot start ({exc}); {INSTALL}", pytrace=False)
        try:
            yield browser
        finally:
            browser.close()


def self_signed(directory: Path) -> list[str]:
    """A certificate for 127.0.0.1 and its key; the --ssl-* flags that serve them."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return ["--ssl-keyfile", str(key), "--ssl-certfile", str(cert)]


def next_hop_protocol(page: Any) -> str:
    """The protocol that carried the page (ALPN's choice over TLS)."""
    return str(page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol"))


def type_and_see(pages: list[Any], sender: int, text: str, press_enter: bool = False) -> None:
    """Type ``text`` into the chat page ``pages[sender]``; wait until every page lists it."""
    pages[sender].fill("#messageText", text)
    if press_enter:
        pages[sender].press("#messageText", "Enter")
    else:
        pages[sender].click("button")
    for page in pages:
        page.wait_for_selector(f"#messages li:has-text('{text}')")


@pytest.mark.parametrize("tls", [False, True], ids=["http1", "https-h2"])
def test_chat_example_in_two_tabs(tls: bool, tmp_path: Path) -> None:
    timeout = 10_000 * UNIT  # milliseconds
    chat = REPO / "examples" / "chat"
    flags = self_signed(tmp_path) if tls else []
    with (
        chromium() as browser,
        CLIProcess("app:chat_server", "--port", "0", *flags, cwd=chat) as server,
    ):
        port = server.wait_ready()
        context = browser.new_context(ignore_https_errors=tls)
        context.set_default_timeout(timeout)
        context.add_init_script(WRAP_WEBSOCKET % port)
        tabs = [context.new_page(), context.new_page()]
        for tab in tabs:
            tab.goto(f"{'https' if tls else 'http'}://127.0.0.1:{port}/")
            assert tab.title() == "WebSocket demo"
            assert next_hop_protocol(tab) == ("h2" if tls else "http/1.1")
            tab.wait_for_function("window.__openSockets === 1")

        type_and_see(tabs, 0, "Hello from tab one")
        type_and_see(tabs, 1, "and from tab two", press_enter=True)
        for tab in tabs:
            items = tab.locator("#messages li").all_inner_texts()
            assert items == ["Hello from tab one", "and from tab two"]
        assert tabs[0].input_value("#messageText") == ""  # the page's own sendMessage ran

        context.close()  # the tabs' sockets close: the app removes both clients
        assert server.stop() == 0
        output = server.output()
    assert "Traceback" not in output and "ERROR" not in output, output
    if tls:  # the page, and the WebSocket on the same connection (RFC 8441)
        assert '"GET / HTTP/2" 200' in output and '"CONNECT / HTTP/2" 200' in output, output
    else:
        assert '"GET / HTTP/1.1" 200' in output and '"GET / HTTP/1.1" 101' in output, output
