"""Fuzz the HTTP/2 server core (uvicorn/protocols/http2*.py) with client streams: the preface and
a SETTINGS frame, then frames built from fuzzer choices (any type, flags, stream and payload;
header blocks the ``hpack`` package encodes, whole, cut, or spread over CONTINUATION frames),
or raw fuzzer bytes after the preface. Invariants (tests/protocols/invariants_http2.py): only
connection errors escape, and then the core is closed with one GOAWAY last and takes nothing
more; events of the documented kinds on client streams; every byte sent is a whole frame,
within the client's frame size, no more DATA than the windows it opened, no HEADERS or DATA on
a server stream or after a stream's end, each answered body whole before its END_STREAM;
bounded state. Each input runs twice:
with the app answering every request (bodies sent as the windows open), and without, whole
against split at fuzzer-chosen points (the same frames, error and events).

Input layout: byte 0: bits 0-1 the server's settings (``CONFIGS``), bit 2 frames built from
choices (else raw bytes), bits 4-5 how to split; byte 1 seeds the split; the rest is the
choices or the bytes.
Run: .venvs/fuzz/bin/python fuzz/fuzz_http2.py CORPUS_DIR [libFuzzer options]
"""

from __future__ import annotations

from typing import Any

import _common  # noqa: F401 (puts the repository on sys.path)
import atheris

with atheris.instrument_imports(include=["uvicorn"]):
    import uvicorn.protocols.http2  # noqa: F401

from _common import fuzz, split_points

from tests.protocols.h2frames import PREFACE, settings
from tests.protocols.invariants import chunks_at
from tests.protocols.invariants_http2 import (
    FIELD_SETS,
    FrameSpec,
    H2Run,
    client_bytes,
    compare_h2_runs,
)
from uvicorn.protocols.http2 import H2Settings

CONFIGS = [
    H2Settings(),
    H2Settings(max_concurrent_streams=2, initial_window_size=100),
    H2Settings(max_concurrent_streams=1, initial_window_size=0, extended_connect=True),
    H2Settings(max_frame_size=2**24 - 1, initial_window_size=2**20),
]
KINDS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x20]
STREAMS = [0, 1, 3, 5, 7, 2, 2**31 - 1]


def specs(fdp: Any) -> list[FrameSpec]:
    result = []
    for _ in range(fdp.ConsumeIntInRange(1, 40)):
        if fdp.remaining_bytes() == 0:
            break
        kind = KINDS[fdp.ConsumeIntInRange(0, len(KINDS) - 1)]
        flags = fdp.ConsumeIntInRange(0, 255)
        if fdp.ConsumeBool():
            stream_id = STREAMS[fdp.ConsumeIntInRange(0, len(STREAMS) - 1)]
        else:
            stream_id = fdp.ConsumeIntInRange(0, 2**32 - 1)
        if kind in (1, 9) and fdp.ConsumeBool():
            prefix = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 6))
            fields = fdp.ConsumeIntInRange(0, len(FIELD_SETS) - 1)
            cut = fdp.ConsumeIntInRange(-4, 4) if fdp.ConsumeIntInRange(0, 3) == 0 else 0
            parts = fdp.ConsumeIntInRange(0, 3)
            # Now and then a burst of streams: past any concurrency limit, and past what the
            # core remembers of the streams it reset (RESET_MEMORY).
            repeat = fdp.ConsumeIntInRange(1, 300) if fdp.ConsumeIntInRange(0, 15) == 0 else 1
            result.append(FrameSpec(kind, flags, stream_id, prefix, fields, cut, parts, repeat))
            continue
        size = fdp.ConsumeIntInRange(0, 24)
        if kind == 0 and fdp.ConsumeIntInRange(0, 7) == 0:
            size = fdp.ConsumeIntInRange(0, 70_000)  # past a frame, past a window
        payload = fdp.ConsumeBytes(size)
        result.append(FrameSpec(kind, flags, stream_id, payload + b"d" * (size - len(payload))))
    return result


def test_one_input(buf: bytes) -> None:
    if len(buf) < 2:
        return
    flags, seed, rest = buf[0], buf[1], buf[2:]
    config = CONFIGS[flags & 3]
    if flags & 4:
        data = client_bytes(specs(atheris.FuzzedDataProvider(rest)))
    else:
        data = PREFACE + settings() + rest
    answering = H2Run(config, respond=True)
    answering.feed(data)
    whole = H2Run(config)
    whole.feed(data)
    split = H2Run(config)
    for chunk in chunks_at(data, split_points(len(data), (flags >> 4) & 3, seed)):
        split.feed(chunk)
    compare_h2_runs(whole, split)


if __name__ == "__main__":
    fuzz(test_one_input)
