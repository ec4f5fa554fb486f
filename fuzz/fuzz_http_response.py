"""Fuzz the response framing (Response in http_response.py) with fuzzer-chosen app messages:
statuses, headers (well-formed or not), content and more flags, HEAD or not, HTTP/1.0 or 1.1,
keep-alive or not. Each message either raises TypeError/ValueError/RuntimeError or produces
bytes; all the bytes must read back, with tests/protocols/invariants.py's strict client and
with h11 as an independent second opinion, as exactly the body the app sent (none for HEAD, 204
and 304), with consistent framing, no injected header line, and keep-alive only when the framing
allows it.

Run: .venvs/fuzz/bin/python fuzz/fuzz_http_response.py CORPUS_DIR [libFuzzer options]
"""

from __future__ import annotations

from typing import Any

import _common  # noqa: F401 (puts the repository on sys.path)
import atheris

with atheris.instrument_imports(include=["uvicorn"]):
    import uvicorn.protocols.http_response  # noqa: F401

import h11
from _common import fuzz

from tests.protocols.invariants import fail
from tests.protocols.invariants_response import AppMessage, ResponseRun, header_defaults

DEFAULTS = [
    header_defaults(),
    header_defaults(server=False, date=False),
    header_defaults(extra=[(b"x-extra", b"1"), (b"Server", b"front")]),
]
STATUSES = [200, 204, 304, 100, 103, 101, 404, 500, 299, 199, 205, 600, 99, 0, -1, 2**70]
NAMES = [
    b"content-length",
    b"Content-Length",
    b"connection",
    b"Connection",
    b"transfer-encoding",
    b"date",
    b"Server",
    b"content-type",
    b"x-a",
    b"set-cookie",
]
VALUES = [b"close", b"keep-alive", b"Keep-Alive, close", b"x-closed", b"chunked", b"0", b"5",
          b"", b" padded\t", b"a\r\nx-injected: 1", b"a\nb", b"a\rb", b"a\0b",
          b"gzip, chunked"]  # fmt: skip
ODD = ["str", None, 200, b"a b", b"", b"a:b", bytearray(b"x-b"), memoryview(b"x-c")]


def value(fdp: Any) -> Any:
    choice = fdp.ConsumeIntInRange(0, 9)
    if choice < 4:
        return VALUES[fdp.ConsumeIntInRange(0, len(VALUES) - 1)]
    if choice < 6:
        return b"%d" % fdp.ConsumeIntInRange(0, 40)
    if choice == 6:
        return ODD[fdp.ConsumeIntInRange(0, len(ODD) - 1)]
    # Any bytes but VT and FF: our Response passes control characters other than CR, LF and
    # NUL through (as documented), and h11 refuses VT and FF in a field value.
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 12)).translate(TRANSLATE)


TRANSLATE = bytes(range(256)).replace(b"\x0b", b"_").replace(b"\x0c", b"_")


def name(fdp: Any) -> Any:
    choice = fdp.ConsumeIntInRange(0, 9)
    if choice < 7:
        return NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]
    if choice == 7:
        return ODD[fdp.ConsumeIntInRange(0, len(ODD) - 1)]
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 6))


def headers(fdp: Any) -> Any:
    shape = fdp.ConsumeIntInRange(0, 15)
    items: list[Any] = []
    for _ in range(fdp.ConsumeIntInRange(0, 5)):
        pair = [name(fdp), value(fdp)]
        items.append(tuple(pair) if shape == 1 else pair)
    if shape == 2:
        items.append([b"x-a"])  # not a pair
    if shape == 3:
        return None
    if shape == 4:
        return {b"x-a": b"1"}
    return items


def message(fdp: Any) -> AppMessage:
    start = fdp.ConsumeIntInRange(0, 2) == 0
    content = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 12))
    more = fdp.ConsumeBool()
    if not start:
        return AppMessage(False, content, more)
    pick = fdp.ConsumeIntInRange(0, len(STATUSES) + 1)
    status: Any = STATUSES[pick] if pick < len(STATUSES) else fdp.ConsumeIntInRange(100, 599)
    if pick == len(STATUSES) + 1:
        status = [True, "200", 200.0, None][fdp.ConsumeIntInRange(0, 3)]
    return AppMessage(True, content, more, status, headers(fdp))


def h11_reading(run: ResponseRun) -> None:
    """h11's reading of the same bytes must agree with ours."""
    responses = run.check()
    data = b"".join(run.wire)
    if run.final is None:
        return  # the cycle's own 500, already read back
    client = h11.Connection(h11.CLIENT, max_incomplete_event_size=2**20)
    client.send(h11.Request(method=run.method, target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    eof = not (run.response.state.value == "done" and not run.broken and run.response.keep_alive)
    statuses, body, complete = [], b"", False
    try:
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                if not eof:
                    break
                eof = False
                client.receive_data(b"")
                continue
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                break
            if isinstance(event, (h11.InformationalResponse, h11.Response)):
                statuses.append(event.status_code)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                complete = True
                break
    except h11.RemoteProtocolError as exc:
        if responses[-1].complete:
            fail(f"h11 refuses a response we read as complete: {exc}\n{data!r}")
        return  # h11 saw the truncation as an error: so did we
    final = responses[-1]
    if statuses != [r.status for r in responses]:
        fail(f"h11 read statuses {statuses}, we read {[r.status for r in responses]}")
    if complete != final.complete or (complete and body != final.body):
        fail(f"h11 read {body[:80]!r} (complete {complete}), we read {final.body[:80]!r}")


def test_one_input(buf: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(buf)
    run = ResponseRun(
        method="HEAD" if fdp.ConsumeIntInRange(0, 3) == 0 else "GET",
        version="1.0" if fdp.ConsumeIntInRange(0, 3) == 0 else "1.1",
        keep_alive=fdp.ConsumeIntInRange(0, 3) != 0,
        defaults=DEFAULTS[fdp.ConsumeIntInRange(0, len(DEFAULTS) - 1)],
    )
    run.send(message(fdp) if fdp.ConsumeBool() else AppMessage(True, b"", True))
    for _ in range(fdp.ConsumeIntInRange(0, 5)):
        run.send(message(fdp))
    h11_reading(run)


if __name__ == "__main__":
    fuzz(test_one_input)
