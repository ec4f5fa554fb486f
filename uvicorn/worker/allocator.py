"""A worker's malloc (glibc's): memory it freed is kept for the next requests, not handed back
to the kernel at once.

glibc gives the free memory at the top of its heap back to the kernel as soon as there is more
than ``M_TRIM_THRESHOLD`` of it, and serves every block from ``M_MMAP_THRESHOLD`` up with a
mapping of its own, unmapped when freed: 128 KiB both at start (they grow by themselves only
once such a mapped block is freed, and never past what that block was). Requests with bodies
of tens of KiB free megabytes a second and take them straight back, each page again through a
page fault that zeroes it: 64 KiB POSTs echoed to 64 connections by one worker (a Zen 4 EPYC),
page faults and the zeroing were about a fifth of the worker's time (perf), and with the
thresholds raised the worker answered 2.0-2.5x the requests a second at half the CPU per
request (docs/architecture.md). The price: after a burst, a worker keeps up to
``TRIM_THRESHOLD`` it no longer uses (glibc's own dynamic thresholds would let it keep 64 MiB).

A user who set glibc's knobs (``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TOP_PAD_``, or ``glibc.malloc.*`` in ``GLIBC_TUNABLES``) keeps them; other C
libraries are left alone.
"""

from __future__ import annotations

import ctypes
import os

TRIM_THRESHOLD = 16 * 1024 * 1024
MMAP_THRESHOLD = 4 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
_KNOBS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory() -> str:
    """Raise glibc's thresholds in this process; what was done (for the debug log)."""
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):  # not a glibc system (the name is unknown)
        libc = ""
    if not libc.startswith("glibc"):
        return "malloc: not glibc's, left as it is"
    if any(knob in os.environ for knob in _KNOBS) or "glibc.malloc." in os.environ.get(
        "GLIBC_TUNABLES", ""
    ):
        return "malloc: glibc's thresholds set in the environment, left as they are"
    mallopt = ctypes.CDLL(None).mallopt
    if mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return "malloc: glibc refused the trim threshold, left as it is"
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        return "malloc: glibc refused the mmap threshold"
    return (
        f"malloc: freed memory kept up to {TRIM_THRESHOLD >> 20} MiB, blocks mapped on their"
        f" own from {MMAP_THRESHOLD >> 20} MiB"
    )
