"""ASGIAdapter driven directly, with stand-in channels: PEP 3333's calling rules, streaming,
back-pressure, close(), the thread pool."""

from __future__ import annotations

import asyncio
import sys
import threading
import wsgiref.validate
from collections.abc import Iterator
from typing import Any

import pytest

from tests.adapters.fakes import Body, Reply, request
from tests.helpers import UNIT
from uvicorn import ClientDisconnected
from uvicorn.utils import ASGIAdapter


async def call(app: Any, message: dict[str, Any] | None = None, **channels: Any) -> Reply:
    reply = channels.setdefault("reply", Reply())
    await ASGIAdapter(app)(message or request(), channels)
    return reply  # type: ignore[no-any-return]


async def in_thread(event: threading.Event) -> None:
    """Wait for a threading.Event without blocking the loop."""
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, event.wait, 5 * UNIT)


@pytest.mark.filterwarnings("error")  # wsgiref.validate's warnings too
async def test_validated_app_gets_one_message_with_its_body() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        environ["wsgi.errors"].write("")
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-A", "1")])
        return [b"got " + body]

    message = request("POST", headers=[[b"content-length", b"5"]], body=b"he")
    reply = await call(wsgiref.validate.validator(app), message, body=Body([b"llo"]))
    # The validator hides the list (and its len()): the end comes as a message of its own.
    assert reply.messages == [
        {
            "status": 201,
            "headers": [[b"Content-Type", b"text/plain"], [b"X-A", b"1"]],
            "content": b"got hello",
            "more_content": True,
        },
        {"content": b"", "more_content": False},
    ]


async def test_a_one_item_list_is_one_message() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"all of it"]

    reply = await call(app)
    assert reply.messages == [
        {
            "status": 200,
            "headers": [[b"Content-Type", b"text/plain"]],
            "content": b"all of it",
            "more_content": False,
        }
    ]


async def test_streamed_with_back_pressure() -> None:
    produced: list[int] = []  # sends completed when each chunk was produced
    reply = Reply(gated=True)

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(6):
            produced.append(reply.done)
            yield b"%d" % i

    task = asyncio.ensure_future(call(app, reply=reply))
    while not reply.complete:
        await reply.sent.wait()
        reply.sent.clear()
        assert reply.gate is not None
        reply.gate.set()
    await task
    assert reply.body == b"012345"
    assert reply.messages[0]["status"] == 200 and reply.messages[0]["content"] == b"0"
    assert all(m["more_content"] for m in reply.messages[:-1])
    # The thread runs at most one chunk ahead of the client: chunk i is produced only once
    # the send of chunk i - 2 has returned.
    assert all(done >= i - 1 for i, done in enumerate(produced)), produced


async def test_headers_wait_for_the_first_non_empty_chunk_and_exc_info_replaces_them() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b""
        try:
            raise ValueError("broken")
        except ValueError:
            start_response("500 Internal Server Error", [("X-Error", "1")], sys.exc_info())
        yield b"sorry"

    reply = await call(app)
    assert reply.messages[0]["status"] == 500
    assert reply.messages[0]["headers"] == [[b"X-Error", b"1"]]
    assert reply.body == b"sorry"


async def test_exc_info_after_headers_were_sent_reraises_and_close_is_called() -> None:
    closed = threading.Event()

    class Result:
        def __init__(self, start_response: Any) -> None:
            self.start_response = start_response

        def __iter__(self) -> Iterator[bytes]:
            self.start_response("200 OK", [])
            yield b"partial"
            try:
                raise ValueError("failed mid-body")
            except ValueError:
                self.start_response("500 Internal Server Error", [], sys.exc_info())
            yield b"never"

        def close(self) -> None:
            closed.set()

    reply = Reply()
    with pytest.raises(ValueError, match="failed mid-body"):
        await call(lambda environ, start_response: Result(start_response), reply=reply)
    assert reply.body == b"partial" and not reply.complete
    assert closed.is_set()


async def test_start_response_twice_without_exc_info_is_an_error() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        start_response("200 OK", [])
        return []

    with pytest.raises(RuntimeError, match="second time without exc_info"):
        await call(app)


async def test_write_callable_then_iterable() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"a")
        write(b"")
        write(bytearray(b"b"))
        return [b"c"]

    reply = await call(app)
    assert [m["content"] for m in reply.messages] == [b"a", b"b", b"c"]
    assert [m["more_content"] for m in reply.messages] == [True, True, False]


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ([], "returned its body before calling start_response"),
        (["text"], "PEP 3333 requires bytes, got str"),
    ],
)
async def test_app_mistakes(result: list[Any], error: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[Any]:
        if result:
            start_response("200 OK", [])
        return result

    with pytest.raises((RuntimeError, TypeError), match=error):
        await call(app)


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        ("OK", [], "expected a string like '200 OK'"),
        (200, [], "expected a string like '200 OK'"),
        ("200 OK", [("X", 1)], "latin-1 str"),
        ("200 OK", (("X", "1"),), "requires a list"),
        ("200 OK", [("X", "\u20ac")], "latin-1 str"),
    ],
)
async def test_bad_start_response_arguments(status: Any, headers: Any, error: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, headers)
        return [b""]

    with pytest.raises((ValueError, TypeError), match=error):
        await call(app)


class Closing:
    """A result iterable that records its close()."""

    def __init__(self, chunks: list[bytes], fail_at: int = -1) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.closed = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Closing:
        start_response("200 OK", [])
        return self

    def __iter__(self) -> Iterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise OSError("disk on fire")
            yield chunk

    def close(self) -> None:
        self.closed.set()


async def test_close_is_always_called() -> None:
    app = Closing([b"a", b"b"])
    assert (await call(app)).body == b"ab"
    assert app.closed.is_set()

    app = Closing([b"a", b"b"], fail_at=1)
    with pytest.raises(OSError, match="disk on fire"):
        await call(app)
    assert app.closed.is_set()

    app = Closing([b"a", b"b", b"c"])
    reply = Reply()
    reply.error = ClientDisconnected()
    with pytest.raises(ClientDisconnected):
        await call(app, reply=reply)
    assert app.closed.is_set()


async def test_cancelled_request_releases_its_thread() -> None:
    app = Closing([b"a", b"b", b"c"])
    reply = Reply(gated=True)
    task = asyncio.ensure_future(call(app, reply=reply))
    await reply.sent.wait()  # the thread waits for the gated send
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await in_thread(app.closed)


async def test_input_is_read_only_as_far_as_the_app_reads() -> None:
    body = Body([b"12345", b"67890", b"abcde"])

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        first = environ["wsgi.input"].read(7)
        start_response("200 OK", [])
        return [first]

    message = request("POST", body=b"")
    assert (await call(app, message, body=body)).body == b"1234567"
    assert body.reads == 2


async def test_a_client_gone_mid_body_is_an_error_not_a_short_body() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read()
        raise AssertionError("read() returned")

    with pytest.raises(ClientDisconnected):
        await call(app, request("POST", body=b"x"), body=Body([b"y"], closed=True))


async def test_websocket_connect_is_refused() -> None:
    reply = await call(lambda e, s: [], {"channel": "websocket.connect", "path": "/"})
    assert reply.messages == [{"close": True}]


async def test_bounded_pool_and_a_free_event_loop() -> None:
    release = threading.Event()
    both_busy = threading.Event()
    lock = threading.Lock()
    active = [0, 0]  # now, most
    names: set[str] = set()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/fast":
            start_response("200 OK", [])
            return [b"fast"]
        with lock:
            names.add(threading.current_thread().name)
            active[0] += 1
            active[1] = max(active)
            if active[0] == 2:
                both_busy.set()
        release.wait(5 * UNIT)
        with lock:
            active[0] -= 1
        start_response("200 OK", [])
        return [b"slow"]

    adapter = ASGIAdapter(app, threads=2)
    slow = [
        asyncio.ensure_future(adapter(request(raw_path=b"/slow"), {"reply": Reply()}))
        for _ in range(4)
    ]
    # Both threads block in the app while this loop goes on running (it is waiting here);
    # the other requests, and a fast one, wait their turn in the pool.
    await in_thread(both_busy)
    fast_reply = Reply()
    fast = asyncio.ensure_future(adapter(request(raw_path=b"/fast"), {"reply": fast_reply}))
    release.set()
    await asyncio.gather(*slow, fast)
    assert fast_reply.body == b"fast"
    assert active[1] == 2 and len(names) == 2
