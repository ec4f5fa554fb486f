"""Invariants of the sans-I/O protocol cores, checked on any input: what the checks share.

One set of checks, two drivers: the Hypothesis property tests (``test_properties_*.py``) and the
atheris fuzz harnesses (``fuzz/``). Each checker drives a core the way the worker does and raises
``Violation`` (an ``AssertionError``) the moment a promise is broken. The checks of each core
live in their own module, so that a driver imports only the core it exercises:

* ``invariants_http``: ``ParserRun``, ``RequestParser`` fed in pieces, the grammar of its events
  and RFC 9112's rules on every ``RequestHead``; ``compare_splits`` and ``check_request_stream``.
* ``invariants_response``: ``ResponseRun``, ``Response`` driven by app messages and read back by
  ``read_response``, a strict client of our own.
* ``invariants_websocket``: ``WebSocketRun``, a ``WebSocketCore`` fed client bytes, and
  ``build_client_stream``; ``invariants_websocket_frames``: the wire format both ways
  (``client_frame``, ``Deflater``, ``ServerFrameReader``).

This module holds what they all rely on: ``Violation`` and ``fail``, so that a broken promise is
told apart from any other exception; ``KNOWN_DEFECTS``, the defects a fix is under way for, whose
checks are skipped while they are listed (each has a strict xfail reproducer in the property
tests), one list for every core so that the fuzz harnesses and the property tests skip the same
checks; and ``chunks_at``, the one way both the HTTP and the WebSocket checks split a stream.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

# Defects found by fuzzing, reported, not fixed yet: their invariant is not checked while listed
# here (so that the fuzzer can look for the next one). Remove an entry once its fix lands; its
# xfail(strict) reproducer in tests/protocols/test_properties_http.py fails until then.
KNOWN_DEFECTS: set[str] = {
    # A bare CR before a request line is skipped like an empty line (b"\rGET / HTTP/1.1...", or
    # b"\r\r", b"\n\r" between pipelined requests; llhttp skips them too). RFC 9112 section 2.2
    # allows ignoring empty lines (CRLF) only, and says a bare CR MUST be taken as invalid: 400.
    "bare-cr-before-request-line",
}


class Violation(AssertionError):
    """A protocol core broke one of its promises."""


def fail(message: str) -> None:
    raise Violation(message)


def chunks_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets (clamped, sorted, deduplicated)."""
    points = sorted({min(max(c, 0), len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]
