"""Fuzz the WebSocket frame path: a WebSocketCore after an accepted handshake, fed client bytes
(raw fuzzer bytes, or frames built from fuzzer choices: masked or not, fragmented, compressed,
control frames, close codes), split at fuzzer-chosen points. Invariants
(tests/protocols/invariants.py): only Message/Closed/Pong events, nothing after Closed, no
exception escapes, messages within max_size and bounded buffers, every byte written is a
well-formed server frame, the events and frames do not depend on the split, and a stream of
valid messages is delivered exactly.

Input layout: byte 0: bit 0 permessage-deflate offered and enabled, bit 1 frames built from
choices (else raw bytes), bits 2-3 max_size, bits 4-5 how to split, bits 6-7 the end (EOF,
connection lost, nothing); byte 1 seeds the split; the rest is the bytes or the choices.
Run: .venvs/fuzz/bin/python fuzz/fuzz_websocket.py CORPUS_DIR [libFuzzer options]
"""

from __future__ import annotations

from typing import Any

import _common  # noqa: F401 (puts the repository on sys.path)
import atheris

with atheris.instrument_imports(include=["uvicorn", "websockets"]):
    import websockets.frames
    import websockets.protocol  # noqa: F401

    import uvicorn.protocols.websocket  # noqa: F401

from _common import fuzz, split_points

from tests.protocols.invariants import chunks_at, fail
from tests.protocols.invariants_websocket import (
    RAW,
    WebSocketRun,
    WsOp,
    build_client_stream,
    compare_ws_runs,
)
from tests.protocols.invariants_websocket_frames import BINARY, CLOSE, PING, PONG, TEXT

MAX_SIZES = [2**20, 1000, 125, 1]
CODES = [1000, 1001, 1002, 1003, 1005, 1006, 1007, 1011, 1015, 999, 2999, 3000, 4999, 5000, 65535]
MASKS = [b"\x37\xfa\x21\x3d", b"\0\0\0\0", b"\xff\xff\xff\xff"]


def ops(fdp: Any) -> list[WsOp]:
    result = []
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        kind = fdp.ConsumeIntInRange(0, 9)
        mask = MASKS[fdp.ConsumeIntInRange(0, 2)] if fdp.ConsumeIntInRange(0, 15) else None
        long_length = fdp.ConsumeIntInRange(0, 15) == 0
        if kind <= 4:
            text = kind <= 2
            if text and fdp.ConsumeIntInRange(0, 7):
                payload = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 40)).encode(
                    "utf-8", "surrogatepass"
                )
            else:
                payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40))
            if fdp.ConsumeIntInRange(0, 15) == 0:
                payload *= 50  # past the smaller max_size values
            result.append(
                WsOp(
                    TEXT if text else BINARY,
                    payload,
                    fragments=fdp.ConsumeIntInRange(1, 4),
                    compress=fdp.ConsumeBool(),
                    mask=mask,
                    long_length=long_length,
                )
            )
        elif kind <= 6:
            payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 130))
            result.append(WsOp(PING if kind == 5 else PONG, payload, mask=mask))
        elif kind == 7:
            code = None if fdp.ConsumeIntInRange(0, 7) == 0 else CODES[fdp.ConsumeIntInRange(0, 14)]
            reason = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 20)).encode(
                "utf-8", "surrogatepass"
            )
            result.append(WsOp(CLOSE, reason, code=code, mask=mask))
        else:
            result.append(WsOp(RAW, raw=fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 16))))
    return result


def finish(run: WebSocketRun, how: int) -> None:
    if how == 0:
        run.feed_eof()
    if how <= 1:
        run.connection_lost()


def test_one_input(buf: bytes) -> None:
    if len(buf) < 2:
        return
    flags, seed, rest = buf[0], buf[1], buf[2:]
    deflate = bool(flags & 1)
    max_size = MAX_SIZES[(flags >> 2) & 3]
    whole = WebSocketRun(max_size, deflate, deflate)
    expected = None
    if flags & 2:
        data, expected = build_client_stream(
            ops(atheris.FuzzedDataProvider(rest)), whole.negotiated, max_size
        )
    else:
        data = rest
    whole.feed(data)
    split = WebSocketRun(max_size, deflate, deflate)
    for chunk in chunks_at(data, split_points(len(data), (flags >> 4) & 3, seed)):
        split.feed(chunk)
    compare_ws_runs(whole, split)
    if expected is not None:
        messages = [e for e in whole.events if e[0] != "closed" or e[1] != 1006]
        if messages != expected:
            fail(f"valid client messages {expected!r} were read as {whole.events!r}")
    finish(whole, flags >> 6)
    finish(split, flags >> 6)


if __name__ == "__main__":
    fuzz(test_one_input)
