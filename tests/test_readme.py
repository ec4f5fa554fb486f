"""The README stays true: every flag is documented, and its examples are the ones we run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from uvicorn.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_every_flag_is_documented() -> None:
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}" in README or f"/{flag}`" in README, f"{flag} not in README"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("hello_world", ["hello_world"]),
        ("echo_body", ["read_body", "echo_body"]),
        ("stream_response", ["stream_response"]),
        ("echo", ["echo"]),
        ("tick", ["send_times", "tick"]),
        ("chat/app", ["chat_server"]),
        ("broadcast_chat/app", ["chat_server"]),
    ],
)
def test_readme_examples_are_the_example_files(module: str, names: list[str]) -> None:
    source = (REPO / "examples" / f"{module}.py").read_text()
    for name in names:
        broadcast = module.startswith("broadcast")
        block = next(
            b
            for b in _python_blocks()
            if f"async def {name}(" in b and ("BroadcastMiddleware(chat_server)" in b) == broadcast
        )
        start = block.index(f"async def {name}(")
        function = block[start:].split("\n\n\n")[0].strip()
        if name == "chat_server":
            function = block.strip()  # the whole module, its preamble included
        assert function in source, f"examples/{module}.py differs from the README's {name}"


def test_readme_chat_page_is_the_example_page() -> None:
    page = re.findall(r"```html\n(.*?)```", README, re.S)[0]
    assert page == (REPO / "examples" / "chat" / "index.html").read_text()
