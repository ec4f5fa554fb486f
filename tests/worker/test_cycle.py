"""RequestCycle is the Response it drives: its __init__ sets Response's fields itself."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http_parser import RequestHead, RequestParser
from uvicorn.protocols.http_response import Response
from uvicorn.worker.asgi import ASGICycle
from uvicorn.worker.connection import HTTPConnection
from uvicorn.worker.messaging import MessagingCycle
from uvicorn.worker.state import ServerState


async def app(*args: Any) -> None:
    pass


async def test_a_cycle_sets_every_field_of_its_response() -> None:
    # Response.__init__ is inlined into RequestCycle.__init__ (a call fewer per request): a
    # field added to Response must be set there too.
    loop = asyncio.get_running_loop()
    head = RequestParser().receive_data(b"HEAD / HTTP/1.0\r\n\r\n")[0]
    assert isinstance(head, RequestHead)
    for cycle_class in (MessagingCycle, ASGICycle):
        state = ServerState(Config(app=app), app, cycle_class, loop)
        cycle = cycle_class(HTTPConnection(state), head)
        reference = Response(state.defaults, True, "1.0", False)
        for name in Response.__slots__:
            assert getattr(cycle, name) == getattr(reference, name), name
