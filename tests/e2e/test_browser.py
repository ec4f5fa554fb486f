"""The README's chat example in a real browser: headless Chromium (Debian's ``chromium``
package, driven by playwright) loads the page from the real command line in two tabs, types a
message in one and sees it in both.

This test fails, never skips, when Chromium cannot start: ``scripts/test`` installs it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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
# WebSocket is wrapped so that port 8000 becomes the test server's, and each page records when
# its socket is open.
WRAP_WEBSOCKET = """
(() => {
    const Native = window.WebSocket;
    window.__openSockets = 0;
    window.WebSocket = class extends Native {
        constructor(url, protocols) {
            super(String(url).replace(/^(wss?:\\/\\/[^\\/:]+):8000(?=\\/|$)/, "$1:%d"), protocols);
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


def type_and_see(pages: list[Any], sender: int, text: str, press_enter: bool = False) -> None:
    """Type ``text`` into the chat page ``pages[sender]``; wait until every page lists it."""
    pages[sender].fill("#messageText", text)
    if press_enter:
        pages[sender].press("#messageText", "Enter")
    else:
        pages[sender].click("button")
    for page in pages:
        page.wait_for_selector(f"#messages li:has-text('{text}')")


def test_chat_example_in_two_tabs() -> None:
    timeout = 10_000 * UNIT  # milliseconds
    chat = REPO / "examples" / "chat"
    with chromium() as browser, CLIProcess("app:chat_server", "--port", "0", cwd=chat) as server:
        port = server.wait_ready()
        context = browser.new_context()
        context.set_default_timeout(timeout)
        context.add_init_script(WRAP_WEBSOCKET % port)
        tabs = [context.new_page(), context.new_page()]
        for tab in tabs:
            tab.goto(f"http://127.0.0.1:{port}/")
            assert tab.title() == "WebSocket demo"
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
    assert '"GET / HTTP/1.1" 200' in output and '"GET / HTTP/1.1" 101' in output, output
