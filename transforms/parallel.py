"""The compiled per-text kernels on more than one core of a process, and the helper threads that
keep the other core busy outside them (`ahead`, `AheadDoFn`).

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

import logging
import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

# A run of texts is at least this many bytes (or words): a smaller one costs more in hand-offs than it saves.
MIN_SPLIT = 1 << 16
# How long stopping an `AheadDoFn` helper waits for it (`_Line.stop`).
STOP_WAIT_SECONDS = 60

log = logging.getLogger(__name__)

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


class Count(NamedTuple):
    """An increment of a Beam counter, made where Beam keeps counts: yielded by `AheadDoFn.work`."""

    counter: Any
    n: int


class AheadDoFn(beam.DoFn):
    """A DoFn whose work on an element runs on a helper thread, one element ahead of the steps after it.

    The in-process runner runs a fused stage on one thread: a batch is read and validated, then
    filtered and scored, then sketched, then the steps after take it, one after another, while the
    second core mostly waits. A subclass's `work` runs on a helper thread of its own and hands its
    outputs over one at a time, so reading the next batch overlaps filtering this one, which
    overlaps sketching the one before: the same outputs in the same order, at most one output
    made ahead of the one taken (memory stays bounded).

    `work(element, *side_inputs)` yields the outputs. It runs on the helper thread, where Beam keeps
    no metrics (they are kept per thread), so it yields `Count(counter, n)` for a counter to add
    to, and the runner's thread adds it. `finish_work()` runs on the same helper thread after the
    bundle's last element: what `work` leaves pending per thread (files written behind) is finished
    there. With one kernel thread (`threads()`), as in a worker process of another runner, which
    runs one worker per core already, everything runs on the runner's thread.
    """

    def work(self, element, *args, **kwargs) -> Iterator:
        raise NotImplementedError

    def finish_work(self) -> None:
        pass

    def start_bundle(self) -> None:
        self._line: _Line | None = None

    def process(self, element, *args, **kwargs):
        if _threads <= 1:
            yield from _counted(self.work(element, *args, **kwargs))
            return
        if self._line is None:
            self._line = _Line(self)
        try:
            yield from _counted(self._line.push((element, args, kwargs)))
        except BaseException:
            self._abandon()
            raise

    def finish_bundle(self):
        if self._line is None:
            self.finish_work()
            return
        try:
            for out in _counted(self._line.close()):
                yield windowed(out)
        except BaseException:
            self._abandon()
            raise
        self._line = None

    def teardown(self) -> None:
        self._abandon()

    def _abandon(self) -> None:
        line, self._line = getattr(self, "_line", None), None
        if line is not None:
            line.stop()


def _counted(outputs: Iterable) -> Iterator:
    for out in outputs:
        if isinstance(out, Count):
            out.counter.inc(out.n)
        else:
            yield out


def windowed(out):
    """An output of `finish_bundle`, which must carry its window: a batch pipeline's is the global one."""
    if isinstance(out, beam.pvalue.TaggedOutput):
        return beam.pvalue.TaggedOutput(out.tag, WindowedValue(out.value, MIN_TIMESTAMP, (GlobalWindow(),)))
    return WindowedValue(out, MIN_TIMESTAMP, (GlobalWindow(),))


_FINISH = object()
_STOP = object()
_lines: set[_Line] = set()  # this process's helpers at work, for `stop_helpers`


def stop_helpers() -> None:
    """Stop every `AheadDoFn` helper of this process and wait until each has left the output it
    was making. A failed or interrupted run's staging folder goes after this: no helper may spill
    a file into it later (an interrupted stage does not always get to stop its own)."""
    with _lock:
        lines = list(_lines)
    for line in lines:
        line.stop()


class _Line:
    """One bundle's helper thread of an `AheadDoFn`: elements in, their outputs out, in order."""

    def __init__(self, fn: AheadDoFn) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._outputs: queue.Queue = queue.Queue(1)
        self._stop = threading.Event()
        self._waiting = 0  # elements handed to the helper whose outputs are not all taken
        self._thread = threading.Thread(target=self._run, args=(fn,), name="hybridmix-ahead-fn", daemon=True)
        with _lock:
            _lines.add(self)
        self._thread.start()

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._outputs.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, fn: AheadDoFn) -> None:
        try:
            while not self._stop.is_set():
                job = self._jobs.get()
                if job is _STOP:
                    return
                if job is _FINISH:
                    fn.finish_work()
                    self._put((_END, None))
                    return
                element, args, kwargs = job
                for out in fn.work(element, *args, **kwargs):
                    if not self._put((out, None)):
                        return
                if not self._put((_END, None)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the runner's thread, raised there
            self._put((_END, exc))

    def _element(self) -> Iterator:
        """The outputs of the oldest element not yet taken, up to its end."""
        while True:
            out, error = self._outputs.get()
            if error is not None:
                raise error
            if out is _END:
                return
            yield out

    def push(self, job) -> Iterator:
        """Hand `job` to the helper; yield the outputs of the element handed before it."""
        self._jobs.put(job)
        self._waiting += 1
        if self._waiting > 1:
            yield from self._element()
            self._waiting -= 1

    def close(self) -> Iterator:
        """The outputs of every element not yet taken, then the helper's `finish_work`."""
        self._jobs.put(_FINISH)
        while self._waiting:
            yield from self._element()
            self._waiting -= 1
        yield from self._element()
        self._thread.join()
        with _lock:
            _lines.discard(self)

    def stop(self) -> None:
        """Stop the helper and wait for it: it leaves at its next output, or when its work is done.

        An element's work takes seconds; a helper still at it after STOP_WAIT_SECONDS is stuck,
        and an interrupted run must end all the same: it is left (a daemon thread, gone with the
        process), and a warning says where it was.
        """
        self._stop.set()
        self._jobs.put(_STOP)  # a helper waiting for a job wakes and leaves
        if threading.current_thread() is not self._thread:
            self._thread.join(STOP_WAIT_SECONDS)
            if self._thread.is_alive():
                frame = sys._current_frames().get(self._thread.ident)
                where = "".join(traceback.format_stack(frame)) if frame is not None else "(no stack)\n"
                log.warning("a helper thread did not stop within %d s; left behind, at:\n%s",
                            STOP_WAIT_SECONDS, where.rstrip("\n"))
        with _lock:
            _lines.discard(self)
