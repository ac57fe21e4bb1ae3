"""Live counts of a run for its progress display: how much each stage has handled so far.

Stages add to a counter once per batch, never per row: a lock, a dict update and a clock read.
The counts live in this process. With the in-process runner (or a LOOPBACK worker) they are
the whole run's; where workers are other processes this process sees none, and the display
says so. They are for people watching a run, never an input: the manifest's figures come from
the statistics the pipeline itself sums (`transforms.stats`), which every runner delivers.
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

# What each counter counts (rows are input or output rows; documents are validated input rows).
READ = "read"  # input rows read, those of quarantined files included (the manifest's `read`)
REJECTED = "rejected"  # input rows sent to rejects/, at reading and for repeated ids (the manifest's `rejected`)
REJECT_RECORDS = "reject_records"  # rows of rejects/: those, and one per file whose rows are unknown
SCORED = "scored"  # documents through the quality filters
FILTERED = "filtered"  # documents the filters (or decontamination) sent to filtered/
IDS = "ids"  # documents whose id was checked
IDS_REPEATED = "ids_repeated"  # of those, rejected for an id already used
EXACT = "exact"  # documents through exact dedup
EXACT_DUPLICATES = "exact_duplicates"
PRIOR = "prior"  # rows of earlier outputs' index/ read (dedup.against)
PRIOR_DUPLICATES = "prior_duplicates"  # new documents removed as duplicates of earlier outputs' documents
SIGNED = "signed"  # near dedup's LSH candidates whose signatures were looked up (after exact dedup)
PAIRS = "pairs"  # near dedup's candidate pairs compared
NEAR = "near"  # documents through near dedup (joined with their cluster labels)
NEAR_DUPLICATES = "near_duplicates"
MIXED = "mixed"  # documents the mixture chose for or against
SELECTED_ROWS = "selected_rows"  # output rows the mixture chose, repeats included
INDEXED = "indexed"  # index/ rows made (one per selected document, and per near duplicate removed)
STAGED = "staged"  # output rows of every folder written to spill fragments
WRITTEN = "written"  # output rows of every folder in finished shard files
PUBLISHED = "published"  # 1 once the manifest is written and the output published


class Tally(NamedTuple):
    count: int
    first: float  # time.monotonic() of the first addition
    last: float  # ... and of the latest


_lock = threading.Lock()
_tallies: dict[str, Tally] = {}


def add(name: str, n: int = 0) -> None:
    """Count n more for `name`; n = 0 only marks the stage as working."""
    now = time.monotonic()
    with _lock:
        old = _tallies.get(name)
        _tallies[name] = Tally(int(n), now, now) if old is None else Tally(old.count + int(n), old.first, now)


def snapshot() -> dict[str, Tally]:
    with _lock:
        return dict(_tallies)


def reset() -> None:
    """Forget every count: a new run in this process starts from zero."""
    with _lock:
        _tallies.clear()
