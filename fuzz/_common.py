"""What the harnesses share: the repository on sys.path, and atheris's instrumentation of our
code (coverage feedback comes from the Python code it instruments; httptools' llhttp is C built
without coverage, so its branches guide the fuzzer only through ours)."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def split_points(length: int, mode: int, seed: int) -> list[int]:
    """Where to cut an input of ``length`` bytes: 0 byte by byte, 1 and 2 in random pieces of
    up to 8 or 64 bytes (seeded), 3 in two pieces."""
    if length < 2:
        return []
    if mode == 0:
        return list(range(1, length))
    if mode == 3:
        return [1 + seed * (length - 1) // 256]
    rng = random.Random(seed * 4 + mode)
    top = 8 if mode == 1 else 64
    cuts, at = [], 0
    while True:
        at += rng.randint(1, top)
        if at >= length:
            return cuts
        cuts.append(at)


def fuzz(test_one_input: Callable[[bytes], None]) -> None:
    """atheris's main loop; crash artifacts go to /tmp/uvicorn-fuzz/ unless told otherwise
    (never into the work tree)."""
    import atheris

    argv = list(sys.argv)
    if not any(arg.startswith("-artifact_prefix=") for arg in argv):
        os.makedirs("/tmp/uvicorn-fuzz", exist_ok=True)
        argv.append("-artifact_prefix=/tmp/uvicorn-fuzz/")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
