"""Give memory back to the operating system when a stage frees it (glibc's malloc tuning).

By default glibc raises its mmap threshold each time a large block is freed, so later large
blocks (numpy arrays, Arrow buffers, encoded shuffle data) come from the heap, and a heap keeps
its freed pages. On the in-process runner every stage then starts from the previous stage's peak:
a million real-text documents peaked at 7.3 GB RSS with the default and at 5.1 GB with a fixed
128 KiB mmap and trim threshold, in the same time (benchmarks/stage_profile.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 128 * 1024
# The user's own settings (glibc reads them at start) win over ours.
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def return_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds at 128 KiB; False where that does not apply."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _ENV):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))
