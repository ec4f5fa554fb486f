"""worker/allocator.py, in fresh interpreters (glibc's thresholds are per process): freed
blocks of 512 KiB stay resident once the thresholds are raised, and go back to the kernel with
glibc's defaults or with the thresholds a user set in glibc's environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import os, sys
from uvicorn.worker.allocator import keep_freed_memory
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
said = keep_freed_memory() if sys.argv[1] == "tune" else "-"
before = rss()
blocks = [b"x" * (512 * 1024) for _ in range(16)]
del blocks
print(rss() - before)
print(said)
"""

pytestmark = pytest.mark.skipif(
    not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"), reason="glibc's malloc"
)


def kept_kib(how: str, **env: str) -> tuple[int, str]:
    """(KiB of 8 MiB freed still resident, what keep_freed_memory() said)."""
    out = subprocess.run([sys.executable, "-c", PROBE, how], env=dict(os.environ, **env),
                         capture_output=True, text=True, check=True).stdout.split("\n")  # fmt: skip
    return int(out[0]), out[1]


def test_raised_thresholds_keep_what_was_freed() -> None:
    kept, said = kept_kib("tune")
    assert said.startswith("malloc: freed memory kept up to 16 MiB")
    assert kept > 6 * 1024


def test_glibc_s_defaults_give_it_back() -> None:
    # (What the other test is compared with: blocks of 512 KiB are mapped on their own.)
    kept, _ = kept_kib("leave")
    assert kept < 2 * 1024


@pytest.mark.parametrize(
    "env",
    [{"MALLOC_TRIM_THRESHOLD_": "131072"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}],
)
def test_thresholds_set_in_glibc_s_environment_are_kept(env: dict[str, str]) -> None:
    kept, said = kept_kib("tune", **env)
    assert said == "malloc: glibc's thresholds set in the environment, left as they are"
    assert kept < 2 * 1024
