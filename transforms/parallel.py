"""The compiled per-text kernels on more than one core of a process.

Beam's in-process runner runs one bundle at a time on one thread, so a local run would use one
core of a machine that has several. The heaviest kernels (text analysis, document statistics,
MinHash, repetition, the scorer's word features) release the GIL, and each text's result depends
on that text alone: a batch cut into runs of texts, one run per thread, gives the same arrays as
one call, whatever the number of threads.

The number of threads is a property of the process: 1 unless set (`set_threads`). `hybridmix run`
sets it for the in-process runner, where its workers are threads of this process
(`--kernel-threads`); a worker process of another runner keeps 1, since its runner already runs
one worker per core.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# A run of texts is at least this many bytes (or words): a smaller one costs more in hand-offs than it saves.
MIN_SPLIT = 1 << 16

_threads = 1
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_lock = threading.Lock()


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the platform says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def set_threads(n: int) -> None:
    if n < 1:
        raise ValueError(f"kernel threads must be at least 1, not {n}")
    global _threads
    _threads = n


def threads() -> int:
    return _threads


def _pool(n: int) -> ThreadPoolExecutor:
    key = (os.getpid(), n)  # a forked process needs threads of its own
    with _lock:
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="hybridmix-kernel")
        return _pools[key]


def runs(offsets: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Cut texts 0..len(offsets)-2 into at most `parts` runs [lo, hi) of about equal bytes (or
    words: `offsets` are where each text's items start); one run when the batch is small."""
    n = len(offsets) - 1
    size = int(offsets[-1] - offsets[0]) if n > 0 else 0
    parts = min(parts, n, max(1, size // MIN_SPLIT))
    if parts <= 1:
        return [(0, n)]
    targets = offsets[0] + size * np.arange(1, parts) / parts
    cuts = np.unique(np.clip(np.searchsorted(offsets[1:], targets) + 1, 1, n - 1))
    bounds = [0, *cuts.tolist(), n]
    return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


def per_text(kernel: Callable, values: np.ndarray, offsets: np.ndarray, *args, per_text_args: tuple = ()):
    """kernel(values, offsets, *per_text_args, *args) -> array with one row per text, run on
    `threads()` threads over runs of texts and stacked. `offsets` index `values` (text bytes or
    word hashes) absolutely, so each run passes a slice of them and all of `values`; arrays in
    `per_text_args` hold one entry per text and are sliced with it."""
    spans = runs(offsets, _threads)
    if len(spans) == 1:
        return kernel(values, offsets, *per_text_args, *args)
    futures = [_pool(_threads).submit(kernel, values, offsets[lo:hi + 1], *(a[lo:hi] for a in per_text_args), *args)
               for lo, hi in spans]
    return np.concatenate([f.result() for f in futures])


def joined_offsets(runs: list[np.ndarray]) -> np.ndarray:
    """Offsets of runs' outputs (each from 0) as offsets into their concatenation."""
    shift = np.cumsum([0] + [r[-1] for r in runs[:-1]])
    return np.concatenate([runs[0]] + [r[1:] + s for r, s in zip(runs[1:], shift[1:])])


def per_text_parts(kernel: Callable, values: np.ndarray, offsets: np.ndarray, *args) -> list[tuple[int, int, tuple]]:
    """(lo, hi, kernel(values, offsets[lo:hi+1], *args)) per run, for kernels whose results need more
    than stacking (text analysis: normalized bytes and word offsets to shift)."""
    spans = runs(offsets, _threads)
    if len(spans) == 1:
        return [(0, len(offsets) - 1, kernel(values, offsets, *args))]
    futures = [(lo, hi, _pool(_threads).submit(kernel, values, offsets[lo:hi + 1], *args)) for lo, hi in spans]
    return [(lo, hi, f.result()) for lo, hi, f in futures]
