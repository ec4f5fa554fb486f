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

    async def bounded() -> None:
        await asyncio.wait_for(pyfuncitem.obj(**kwargs), 30 * UNIT)

    uvloop.run(bounded())
    return True
