"""Telling the interface from the app's signature (``detect_interface``), and loading."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from uvicorn.config import Config
from uvicorn.exceptions import AppLoadError
from uvicorn.worker.loading import detect_interface, load_app


async def messaging(message: Any, channels: Any) -> None: ...


async def asgi3(scope: Any, receive: Any, send: Any) -> None: ...


def asgi2(scope: Any) -> Any: ...


async def with_defaults(scope: Any, receive: Any, send: Any, extra: int = 0) -> None: ...


async def keyword_only(message: Any, channels: Any, *, debug: bool = False) -> None: ...


async def star_args(*args: Any) -> None: ...


async def nothing() -> None: ...


class ASGI2Class:
    def __init__(self, scope: Any) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None: ...


class MessagingInstance:
    async def __call__(self, message: Any, channels: Any) -> None: ...


class ASGI3Instance:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...

    async def method(self, message: Any, channels: Any) -> None: ...


class ASGI2Instance:
    def __call__(self, scope: Any) -> Any: ...


@pytest.mark.parametrize(
    ("app", "interface"),
    [
        (messaging, "messaging"),
        (asgi3, "asgi3"),
        (asgi2, "asgi2"),
        (lambda scope: None, "asgi2"),
        (with_defaults, "asgi3"),  # positional parameters with defaults count
        (keyword_only, "messaging"),
        (star_args, "asgi3"),
        (ASGI2Class, "asgi2"),
        (MessagingInstance(), "messaging"),
        (ASGI3Instance(), "asgi3"),
        (ASGI2Instance(), "asgi2"),
        (ASGI3Instance().method, "messaging"),  # a bound method: self is not counted
        (functools.partial(with_defaults, extra=1), "asgi3"),
        (functools.partial(asgi3, None), "messaging"),
    ],
)
def test_detect_interface(app: Any, interface: str) -> None:
    assert detect_interface(app) == interface


def test_undetectable_interfaces() -> None:
    with pytest.raises(AppLoadError, match="0 positional parameters"):
        detect_interface(nothing, "nothing")
    with pytest.raises(AppLoadError, match="4 positional parameters"):
        detect_interface(lambda a, b, c, d: None)
    with pytest.raises(AppLoadError, match="--interface"):
        detect_interface(iter)  # no signature


def test_load_app_objects_and_forced_interface() -> None:
    assert load_app(Config(app=messaging)) == (messaging, "messaging")
    assert load_app(Config(app=asgi3)) == (asgi3, "asgi3")
    assert load_app(Config(app=asgi3, interface="asgi2")) == (asgi3, "asgi2")
    assert load_app(Config(app=lambda: asgi3, factory=True)) == (asgi3, "asgi3")
    with pytest.raises(AppLoadError, match="not callable"):
        load_app(Config(app=42))


def test_load_app_from_an_import_string() -> None:
    app, interface = load_app(Config(app="tests.worker.test_loading:MessagingInstance"))
    assert app is MessagingInstance and interface == "asgi2"  # a class: ASGI 2
    app, interface = load_app(Config(app="tests.worker.test_loading:asgi3"))
    assert app is asgi3 and interface == "asgi3"
    with pytest.raises(AppLoadError):
        load_app(Config(app="tests.worker.test_loading:missing"))
