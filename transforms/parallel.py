"""The compiled per-text kernels on more than one core of a process.

Beam's in-process runner runs one bundle at a time on one thread, so a local run would use one
core of a machine that has several. The heaviest kernels (text analysis, document statistics,
MinHash, repetition, the scorer's word features, the rows' text hashes) release the GIL, and each
text's result depends on that text alone: a batch cut into runs of texts, one run per thread,
gives the same arrays as one call, whatever the number of threads.

The number of threads is a property of the process: 1 unless set (`set_threads`). `hybridmix run`
sets it for the in-process runner, where its workers are threads of this process
(`--kernel-threads`); a worker process of another runner keeps 1, since its runner already runs
one worker per core.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

# A run of texts is at least this many bytes (or words): a smaller one costs more in hand-offs than it saves.
MIN_SPLIT = 1 << 16

T = TypeVar("T")
_threads = 1
_pools: dict[tuple[int, str, int], ThreadPoolExecutor] = {}
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


def pool(n: int, name: str = "kernel") -> ThreadPoolExecutor:
    """This process's pool of `n` threads for `name`'s work (the kernels; `storage`'s spill writer)."""
    key = (os.getpid(), name, n)  # a forked process inherits no threads: it needs a pool of its own
    with _lock:
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"hybridmix-{name}")
        return _pools[key]


def discard_pool(n: int, name: str) -> ThreadPoolExecutor | None:
    """Forget this process's pool (`pool(n, name)`) and return it; the next call makes a new one."""
    with _lock:
        return _pools.pop((os.getpid(), name, n), None)


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


def _on_runs(kernel: Callable, values: np.ndarray, offsets: np.ndarray, args: tuple, per_text_args: tuple) -> list:
    """kernel(values, offsets, *per_text_args, *args) per run of texts, on `threads()` threads. `offsets`
    index `values` (text bytes or word hashes) absolutely, so each run passes a slice of them and all
    of `values`; arrays in `per_text_args` hold one entry per text and are sliced with it."""
    spans = runs(offsets, _threads)
    if len(spans) == 1:
        return [kernel(values, offsets, *per_text_args, *args)]
    futures = [pool(_threads).submit(kernel, values, offsets[lo:hi + 1], *(a[lo:hi] for a in per_text_args), *args)
               for lo, hi in spans]
    return [f.result() for f in futures]


def per_text(kernel: Callable, values: np.ndarray, offsets: np.ndarray, *args, per_text_args: tuple = ()):
    """A kernel whose result is one array with a row per text: the runs' results stacked."""
    results = _on_runs(kernel, values, offsets, args, per_text_args)
    return results[0] if len(results) == 1 else np.concatenate(results)


def per_text_joined(kernel: Callable, values: np.ndarray, offsets: np.ndarray, *args, offsets_at: tuple[int, ...]):
    """A kernel whose result is a tuple of arrays: each concatenated over the runs, and those at
    `offsets_at` (offsets from 0 into another of its arrays, as text analysis's normalized bytes and
    word offsets) shifted past the runs before."""
    results = _on_runs(kernel, values, offsets, args, ())
    if len(results) == 1:
        return results[0]
    joined = []
    for k, column in enumerate(zip(*results)):
        if k in offsets_at:
            shift = np.cumsum([0] + [r[-1] for r in column[:-1]])
            joined.append(np.concatenate([column[0]] + [r[1:] + d for r, d in zip(column[1:], shift[1:])]))
        else:
            joined.append(np.concatenate(column))
    return tuple(joined)


_END = object()


def ahead(items: Iterable[T]) -> Iterator[T]:
    """`items` in order, each made on a helper thread while the caller works on the one before.

    For iterators whose work releases the GIL (decoding Parquet row groups, Arrow's take): the
    next batch is decoded while this one is validated, filtered and written. With one kernel thread
    (`threads()`), as in a worker process of another runner, the items are made here, as usual.
    An error making an item is raised here, in its place; leaving early stops the helper after the
    item it is making.
    """
    if _threads <= 1:
        yield from items
        return
    handoff: queue.Queue = queue.Queue(1)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def make() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            put((_END, exc))

    helper = threading.Thread(target=make, name="hybridmix-ahead", daemon=True)
    helper.start()
    try:
        while True:
            item, error = handoff.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        helper.join()
