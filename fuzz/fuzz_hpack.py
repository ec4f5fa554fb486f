"""Fuzz the HPACK decoder (uvicorn/protocols/hpack.py) against the ``hpack`` package's, block
after block on one connection: raw fuzzer bytes split into header blocks, or blocks that
``hpack``'s encoder built from fuzzer choices (indexed, Huffman-coded, sensitive, resized),
maybe with one octet changed. Invariants (``check_against_hpack`` in
tests/protocols/test_hpack.py, which the Hypothesis tests run too): only HPACKError escapes;
both decoders refuse the same blocks; an accepted block decodes to the same fields, or to
([], True) past the list limit (never a longer list); the dynamic tables stay the same and
within their limits; and a block after which ``generation`` is unchanged left the table as it
was and decodes again to the same fields (what the core's block cache relies on).

Input layout: byte 0: bits 0-1 the header list limit, bit 2 blocks built from choices (else
raw bytes), bit 3 our SETTINGS_HEADER_TABLE_SIZE changed between blocks, bit 4 one octet of
the built blocks changed, bits 5-6 how raw bytes are cut into blocks (``raw_blocks``); byte 1
seeds the cuts and the limits; the rest is the bytes or the choices.
Run: .venvs/fuzz/bin/python fuzz/fuzz_hpack.py CORPUS_DIR [libFuzzer options]
"""

from __future__ import annotations

import random
from typing import Any

import _common  # noqa: F401 (puts the repository on sys.path)
import atheris

with atheris.instrument_imports(include=["uvicorn"]):
    import uvicorn.protocols.hpack  # noqa: F401

import hpack
from _common import fuzz, split_points

from tests.protocols.invariants import chunks_at
from tests.protocols.test_hpack import check_against_hpack
from uvicorn.protocols.hpack_tables import STATIC_TABLE

LIST_LIMITS = [65536, 300, 40, 0]
TABLE_LIMITS = [None, None, None, 0, 64, 256, 4096, 8192]
TABLE_SIZES = [None, None, None, None, 0, 64, 256, 4096]


def built_blocks(fdp: Any, corrupt: bool) -> list[bytes]:
    """Blocks ``hpack``'s encoder makes of fuzzer-chosen fields (one octet changed if told)."""
    encoder = hpack.Encoder()
    blocks = []
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        size = TABLE_SIZES[fdp.ConsumeIntInRange(0, len(TABLE_SIZES) - 1)]
        if size is not None:
            encoder.header_table_size = size
        headers = []
        for _ in range(fdp.ConsumeIntInRange(0, 8)):
            name, value = STATIC_TABLE[fdp.ConsumeIntInRange(0, len(STATIC_TABLE) - 1)]
            if fdp.ConsumeBool():
                name = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 20))
            if fdp.ConsumeBool():
                value = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200))
            headers.append((name, value, fdp.ConsumeIntInRange(0, 7) == 0))  # sensitive
        blocks.append(encoder.encode(headers, huffman=fdp.ConsumeBool()))
    if corrupt and any(blocks):
        which = fdp.ConsumeIntInRange(0, len(blocks) - 1)
        block = blocks[which] or max(blocks, key=len)
        at = fdp.ConsumeIntInRange(0, len(block) - 1)
        blocks[which] = block[:at] + bytes((fdp.ConsumeIntInRange(0, 255),)) + block[at + 1 :]
    return blocks


def raw_blocks(data: bytes, mode: int, seed: int) -> list[bytes]:
    """0: one block; 1, 2: cut in pieces of up to 8 or 64 bytes; 3: blocks of up to 255
    bytes, each after its length (so that a seed can hold a real sequence of blocks)."""
    if mode == 0:
        return [data]
    if mode < 3:
        return chunks_at(data, split_points(len(data), mode, seed))
    blocks = []
    while data:
        blocks.append(data[1 : 1 + data[0]])
        data = data[1 + data[0] :]
    return blocks


def test_one_input(buf: bytes) -> None:
    if len(buf) < 2:
        return
    flags, seed, rest = buf[0], buf[1], buf[2:]
    if flags & 4:
        blocks = built_blocks(atheris.FuzzedDataProvider(rest), bool(flags & 16))
    else:
        blocks = raw_blocks(rest, (flags >> 5) & 3, seed)
    limits: list[int | None] = []
    if flags & 8:
        rng = random.Random(seed)
        limits = [rng.choice(TABLE_LIMITS) for _ in blocks]
    check_against_hpack(blocks, LIST_LIMITS[flags & 3], limits)


if __name__ == "__main__":
    fuzz(test_one_input)
