"""Test plumbing: coroutine tests run on a fresh uvloop event loop, without a plugin."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
import uvloop

from tests.helpers import UNIT


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs: dict[str, Any] = {name: pyfuncitem.funcargs[name] for name in names}

    # 30 s, or more for a test that pytest-timeout's marker gives more (@pytest.mark.timeout).
    marker = pyfuncitem.get_closest_marker("timeout")
    seconds = max(30, marker.args[0] if marker is not None and marker.args else 0)

    async def bounded() -> None:
        await asyncio.wait_for(pyfuncitem.obj(**kwargs), seconds * UNIT)

    uvloop.run(bounded())
    return True
