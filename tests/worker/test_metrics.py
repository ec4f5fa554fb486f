"""--metrics, in a worker: each response counted where its access line is written (HTTP/1.1
and HTTP/2, with the access log on or off, with --access-log-format), the access log unchanged,
and the reports the master reads (uvicorn/supervisor/metrics.py) summed exactly."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.helpers import running_server
from tests.worker.h2client import H2Client
from uvicorn.supervisor.metrics import Totals
from uvicorn.supervisor.process import State, Worker
from uvicorn.worker.messaging import MessagingCycle
from uvicorn.worker.metrics import MAX_MESSAGE, WorkerMetrics
from uvicorn.worker.state import ServerState

METRICS = "127.0.0.1:9100"  # (a worker only counts; the master would listen there)


async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
    if message["channel"] == "websocket.connect":
        await channels["reply"].send({"accept": True})
        return
    if message["channel"] != "http.request":
        return
    status = int(message["path"].strip("/") or 200)
    await channels["reply"].send({"status": status, "content": b"x"})


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]


@pytest.mark.parametrize("log", ["off", "default", "format"])
async def test_responses_are_counted_and_the_access_log_is_unchanged(
    log: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    options: dict[str, Any] = {"access_log": log != "off"}
    if log == "format":
        options["access_log_format"] = "%(s)s %(U)s"
    async with running_server(app, metrics=METRICS, **options) as server:
        metrics = server.server.metrics
        assert metrics is not None
        for path in ("/", "/", "/404"):
            response = await server.request(f"GET {path} HTTP/1.1\r\nhost: t\r\n\r\n".encode())
            assert response.status == int(path.strip("/") or 200)
        client = await H2Client.open(server.port)
        assert (await client.response(client.request("/201"))).status == 201
        client.close()
        async with connect(f"ws://127.0.0.1:{server.port}/ws"):
            pass  # a WebSocket: not an HTTP request answered (it is a gauge, at heartbeats)
        assert metrics.statuses() == {200: 2, 404: 1, 201: 1}
        assert sum(metrics.buckets()) == 4
        assert 0 < metrics.seconds() < 4
    lines = access_lines(caplog)
    if log == "off":
        assert lines == []
    elif log == "format":
        assert lines == ["200 /", "200 /", "404 /404", "201 /201", "101 /ws"]
    else:
        assert [line.split(" - ", 1)[1] for line in lines] == [
            '"GET / HTTP/1.1" 200', '"GET / HTTP/1.1" 200', '"GET /404 HTTP/1.1" 404',
            '"GET /201 HTTP/2" 201', '"GET /ws HTTP/1.1" 101',
        ]  # fmt: skip


@pytest.mark.parametrize("log", ["off", "default"])
async def test_requests_refused_before_any_app_are_counted(log: str) -> None:
    # Answered by the server itself, never by the app: a malformed HTTP/1.1 request (400),
    # a body over --limit-request-body (413), and an HTTP/2 request with too many fields (431).
    options: dict[str, Any] = {"access_log": log != "off", "limit_request_body": 10}
    async with running_server(app, metrics=METRICS, limit_request_fields=5, **options) as server:
        metrics = server.server.metrics
        assert metrics is not None
        bad = await server.request(b"GET / HTTP/1.1\r\nhost: t\r\nbad header\r\n\r\n")
        large = await server.request(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 11\r\n\r\n")
        assert (bad.status, large.status) == (400, 413)
        client = await H2Client.open(server.port)
        fields = [(f"x-{i}", "v") for i in range(10)]
        assert (await client.response(client.request("/", headers=fields))).status == 431
        client.close()
        assert metrics.statuses() == {400: 1, 413: 1, 431: 1}
        assert sum(metrics.buckets()) == 3


async def test_without_metrics_nothing_is_counted() -> None:
    async with running_server(app) as server:
        assert server.server.metrics is None
        state = server.server.state
        # Nothing of --metrics is in the request path: the plain classes, no access call.
        assert state is not None and type(state) is ServerState
        assert state.cycle_class is MessagingCycle and state.access_log is False


class FakeState:
    active = 3
    websockets = {1, 2}


def test_a_long_report_comes_in_parts_the_master_merges() -> None:
    metrics = WorkerMetrics()
    for code in range(100, 600):
        metrics.counts[code] = 1_000_000 + code
    metrics.counts[2 * 600 + 200] = 7  # seven 200s in the third bucket
    messages = metrics.messages(FakeState(), 0.25)  # type: ignore[arg-type]
    assert len(messages) > 1 and all(len(m) <= MAX_MESSAGE for m in messages)
    worker = Worker(1, -1, 1, 0.0)
    worker.state = State.SERVING
    totals = Totals()
    for message in messages:
        assert message[:1] == b"P"
        totals.update(worker, message[1:].decode())
    text = totals.render([worker], {"signal": 2}).decode()
    assert 'uvicorn_http_requests_total{status="599"} 1000599' in text
    assert 'uvicorn_http_requests_total{status="200"} 1000207' in text
    assert sum(1 for line in text.splitlines() if "_requests_total{" in line) == 500
    assert "uvicorn_http_requests_in_flight 3\n" in text
    assert "uvicorn_websocket_connections 2\n" in text
    assert "uvicorn_event_loop_lag_seconds 0.25\n" in text
    assert 'uvicorn_worker_restarts_total{reason="signal"} 2\n' in text
    # Gone, its counts stay; a later report of another worker adds to them.
    totals.retire(worker)
    other = Worker(2, -1, 1, 0.0)
    totals.update(other, json.dumps({"st": {"200": 5}, "b": [0] * 14, "s": 0.5}))
    text = totals.render([other], {}).decode()
    assert 'uvicorn_http_requests_total{status="200"} 1000212\n' in text
    assert "uvicorn_http_requests_in_flight 0\n" in text  # gauges: only the live workers
    # The buckets are cumulative: le="0.005" holds the first three.
    first = sum(1_000_000 + code for code in range(100, 600))
    assert f'uvicorn_http_request_duration_seconds_bucket{{le="0.005"}} {first + 7}\n' in text
