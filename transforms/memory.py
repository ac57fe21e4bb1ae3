"""Give memory back to the operating system once a stage has freed it (glibc's malloc_trim), and
let Python's cyclic garbage collector run less often.

glibc keeps freed heap pages, and raises its mmap threshold each time a large block is freed, so
large blocks (numpy arrays, Arrow buffers, encoded shuffle data) come to live in a heap that keeps
their pages after they are freed. On the in-process runner every stage then starts from the peak
of the stages before it. A thread in each process hands the free pages back every second.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys
import threading

# Each trim costs page faults when the memory is used again: about 7 % of a 200,000-document
# run's time, for 29 % less peak memory at a million documents. HYBRIDMIX_TRIM_INTERVAL=0 turns
# it off.
INTERVAL_SECONDS = 1.0
# Python collects its youngest generation every 700 net allocations of containers and, every
# hundred of those, walks every object alive. Beam allocates tuples and protobuf wrappers per
# element and bundle, so a 200,000-document run made 10 full collections of about 0.1 s each
# (1.2 s of collector time in all); at 20,000, 0.2-0.3 s. Garbage in cycles waits a little longer.
GC_YOUNG_THRESHOLD = 20_000
_started: dict[int, threading.Thread] = {}
_lock = threading.Lock()


def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    # glibc's soname first: find_library runs `ldconfig -p` in a forked child, which costs a
    # process per import and counts the parent's pages as that child's peak memory.
    for find in (lambda: "libc.so.6", lambda: ctypes.util.find_library("c")):
        try:
            name = find()
            return ctypes.CDLL(name).malloc_trim if name else None
        except (OSError, AttributeError):  # not glibc (musl, ...): nothing to trim
            continue
    return None


def trim_interval() -> float:
    value = os.environ.get("HYBRIDMIX_TRIM_INTERVAL", "")
    try:
        return float(value) if value else INTERVAL_SECONDS
    except ValueError:
        logging.getLogger(__name__).warning(
            "HYBRIDMIX_TRIM_INTERVAL=%r is not a number of seconds; trimming every %s s", value, INTERVAL_SECONDS)
        return INTERVAL_SECONDS


def return_freed_memory() -> bool:
    """Start this process's trimming thread (once per process); False where glibc is not in use or
    HYBRIDMIX_TRIM_INTERVAL is 0."""
    interval = trim_interval()
    trim = _malloc_trim()
    if trim is None or interval <= 0:
        return False
    with _lock:
        pid = os.getpid()  # a forked worker needs a thread of its own
        if pid not in _started:
            def run() -> None:
                while True:
                    trim(0)
                    threading.Event().wait(interval)

            _started[pid] = threading.Thread(target=run, name="hybridmix-malloc-trim", daemon=True)
            _started[pid].start()
    return True


def collect_less() -> None:
    """Raise the collector's first threshold to GC_YOUNG_THRESHOLD, keeping a larger one set before."""
    young, *older = gc.get_threshold()
    if young < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, *older)
