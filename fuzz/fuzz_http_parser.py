"""Fuzz RequestParser.receive_data: the input, fed whole and split at fuzzer-chosen points,
must give the same events, never raise, and keep every invariant of
tests/protocols/invariants.py (grammar of events, RequestHead rules and limits, bounded
buffers, nothing after a BadRequest, an Upgrade or the last request).

Input layout: byte 0 chooses the limits (bits 0-1), whether the websocket upgrade is spoken
(bit 2) and how to split (bits 3-4); byte 1 seeds the split; the rest is the byte stream.

A second opinion, from h11 as the server-side parser: every request we accept and complete must
be read by h11 as the same request (method, target, version, fields, body). A request we accept
and h11 refuses, or whose body ends elsewhere, is what request smuggling is made of.
And a third, for the heads protocols/http_simple.py reads without llhttp: each it reads, llhttp
reads the same (asked directly, as the pure build this runs never calls it from the parser).
Run: .venvs/fuzz/bin/python fuzz/fuzz_http_parser.py CORPUS_DIR [libFuzzer options]
"""

from __future__ import annotations

import ast
import re
from typing import Any

import _common  # noqa: F401 (puts the repository on sys.path)
import atheris

with atheris.instrument_imports(include=["uvicorn"]):
    from uvicorn.protocols.http_parser import _HOSTS, _METHODS, Limits
    from uvicorn.protocols.http_simple import SIMPLE_MAX, simple_head

import h11
from _common import fuzz, split_points

from tests.protocols.invariants import KNOWN_DEFECTS, fail
from tests.protocols.invariants_http import ParserRun, check_request_stream, normalize

LIMITS = [
    Limits(),
    Limits(request_line=64, fields=4, field_size=64),
    Limits(request_line=16, fields=2, field_size=24),
    Limits(request_line=256, fields=8, field_size=128),
]
WS = frozenset({b"websocket"})


def test_one_input(buf: bytes) -> None:
    if len(buf) < 2:
        return
    flags, seed, data = buf[0], buf[1], buf[2:]
    limits = LIMITS[flags & 3]
    upgrades = WS if flags & 4 else frozenset()
    cuts = split_points(len(data), (flags >> 3) & 3, seed)
    whole, _ = check_request_stream(data, cuts, limits, upgrades)
    h11_agrees(data, whole)
    simple_agrees(data, limits, whole)


def simple_agrees(data: bytes, limits: Limits, run: ParserRun) -> None:
    """A head http_simple.py reads, llhttp reads the same way (the parser calls it in the
    compiled build only, and this harness runs the pure one: asked directly here)."""
    start = data.lstrip(b"\r\n")
    if not start.endswith(b"\r\n\r\n") or len(start) > SIMPLE_MAX:
        return
    head = simple_head(start, limits, _METHODS, _HOSTS)
    if head is not None and run.events != [normalize(head), ("end",)]:
        fail(f"http_simple read {head!r} in {data!r}; llhttp: {run.events!r}")


# h11 departs from RFC 9112 here, and we do not: it refuses the empty lines a server SHOULD
# ignore before a request line (section 2.2).
H11_OWN_REFUSALS = ("no request line received",)
# Where RFC 9112 lets a server be lenient, and llhttp is: section 3, a recipient MAY take any
# whitespace between the words of a request line as the separator ("GET  / HTTP/1.1").
LENIENT_REQUEST_LINE = re.compile(r"illegal request line: bytearray\(b'\S+ +\S+ +HTTP/1\.[01]'\)")
# h11 refuses valid chunk lines: a chunk-size of more than 20 digits (leading zeros), and the BWS
# RFC 9112 section 7.1.1 allows around ';' and '='.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_VALUE = rf'(?:{_TOKEN}|"(?:[^"\\]|\\.)*")'
CHUNK_LINE = re.compile(
    rb"[0-9A-Fa-f]+(?:[ \t]*;[ \t]*%s(?:[ \t]*=[ \t]*%s)?)*\r\n"
    % (_TOKEN.encode(), _VALUE.encode())
)


def h11_requests(data: bytes) -> tuple[list[tuple[Any, bytes]], str | None]:
    """The complete requests h11 reads in ``data``, and its error if it refused one."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=2**20)
    conn.receive_data(data)
    requests: list[tuple[Any, bytes]] = []
    current: Any = None
    body = b""
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                current, body = event, b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                requests.append((current, body))
                if current.method == b"CONNECT" or any(n == b"upgrade" for n, _ in current.headers):
                    return requests, None  # h11 would switch protocols: it reads no further
                conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return requests, None
                conn.start_next_cycle()
            else:  # NEED_DATA, PAUSED, ConnectionClosed
                return requests, None
    except h11.RemoteProtocolError as exc:
        return requests, str(exc)


def h11_agrees(data: bytes, run: ParserRun) -> None:
    ours: list[tuple[Any, bytes]] = []
    head, body = None, b""
    for event in run.events:
        if event[0] == "head":
            head, body = event, b""
        elif event[0] == "body":
            body = event[1]
        elif event[0] == "end":
            ours.append((head, body))
    theirs, error = h11_requests(data)
    for i, (head, body) in enumerate(ours):
        _, method, path, query, version, headers, keep_alive, _, _, _ = head
        names = {name for name, _ in headers}
        if b"upgrade" in names:
            return  # h11 stops at an upgrade request; we go on when we do not speak it
        if i >= len(theirs):
            if error is not None and (
                error.startswith(H11_OWN_REFUSALS) or LENIENT_REQUEST_LINE.fullmatch(error)
            ):
                return
            if error is not None and error.startswith("illegal chunk header: bytearray("):
                line = ast.literal_eval(error[len("illegal chunk header: bytearray(") : -1])
                if CHUNK_LINE.fullmatch(line):
                    return
            if (
                "bare-cr-before-request-line" in KNOWN_DEFECTS
                and error is not None
                and re.match(r"illegal request line: bytearray\(b'(\\r|\\n)", error)
            ):
                return
            fail(f"h11 does not read request {i} ({method} {path!r}) as complete: {error}")
        request, h11_body = theirs[i]
        target = request.target.partition(b"#")[0]
        if target.startswith(b"/"):
            h11_path, _, h11_query = target.partition(b"?")
            if (h11_path, h11_query) != (path, query):
                fail(f"target {request.target!r}: ours {path!r} ? {query!r}")
        h11_headers = tuple((bytes(n), bytes(v)) for n, v in request.headers.raw_items())
        h11_headers = tuple((n.lower(), v) for n, v in h11_headers)
        # (h11 lower-cases the value of Transfer-Encoding.)
        headers = tuple((n, v.lower() if n == b"transfer-encoding" else v) for n, v in headers)
        if (request.method.decode(), request.http_version.decode(), h11_headers) != (
            method,
            version,
            headers,
        ):
            fail(f"h11 read request {i} as {request!r}, we read {head!r}")
        if h11_body != body:
            fail(f"h11 read body {h11_body[:80]!r} for request {i}, we read {body[:80]!r}")
        if version == "1.0" or not keep_alive:
            return  # h11 closes after it


if __name__ == "__main__":
    fuzz(test_one_input)
