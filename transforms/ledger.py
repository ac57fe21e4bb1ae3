"""The ledger (`ledger/`): one row per input row saying where it went and why.

Every fate already exists as rows somewhere in the pipeline (rejects, filtered, duplicates, and the
mixture's decision for each survivor); the ledger is those rows reduced to six columns, so "why is this
document not in my mix?" is one lookup instead of an anti-join over four folders. Rows are placed in
shards by a hash of the doc id, so `hybridmix explain` opens one file to find a document.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridmix.schemas.reasons import DuplicateKind, DuplicateLineage, Fate
from hybridmix.schemas.records import LEDGER_SCHEMA
from hybridmix.transforms.text import stable_hash64

LEDGER = "ledger"
# Ledger rows are ~20 bytes on disk; a shard of a million of them is a few MB and one merge holds
# it in memory comfortably.
ROWS_PER_SHARD = 1_000_000
_SALT = "ledger"


def ledger_keys(doc_ids: list[str | None], source_files: list[str], source_rows: list[int | None]) -> np.ndarray:
    """Shard and order key per row: the doc id's hash, or the lineage's where a row has no id."""
    return stable_hash64([d if d is not None else f"\x00{f}\x00{r}"
                          for d, f, r in zip(doc_ids, source_files, source_rows)], salt=_SALT)


def order_ledger(batch: pa.RecordBatch) -> np.ndarray:
    """`ledger_keys` of a batch's rows; only the rows without an id become Python strings (every row
    did, 0.3 s of the GIL at 200,000 documents)."""
    doc_ids = batch.column("doc_id")
    if doc_ids.null_count:
        missing = pc.is_null(doc_ids)
        where = [f"\x00{f}\x00{r}" for f, r in zip(batch.column("source_file").filter(missing).to_pylist(),
                                                    batch.column("source_row").filter(missing).to_pylist())]
        doc_ids = pc.replace_with_mask(doc_ids, missing, pa.array(where, doc_ids.type))
    return stable_hash64(doc_ids, salt=_SALT)


def ledger_shard(doc_id: str, shards: int) -> int:
    """The shard of `ledger/` that holds the rows of `doc_id` (WriteShards places rows by key % shards)."""
    return int(ledger_keys([doc_id], [""], [None])[0] % np.uint64(shards))


def ledger_shards(rows: int) -> int:
    return max(1, -(-rows // ROWS_PER_SHARD))


def ledger_batch(doc_ids: pa.Array, sources: pa.Array, source_files: pa.Array, source_rows: pa.Array,
                 fate: Fate | pa.Array, details: list[str] | pa.Array) -> pa.RecordBatch:
    n = len(doc_ids)
    fates = fate if isinstance(fate, pa.Array) else pa.array([fate.value] * n, pa.string())
    return pa.RecordBatch.from_arrays(
        [doc_ids, sources, source_files, source_rows, fates, pa.array(details, pa.string())],
        schema=LEDGER_SCHEMA)


def from_rejects(batch: pa.RecordBatch) -> pa.RecordBatch:
    details = [f"{reason}: {detail}" for reason, detail in
               zip(batch.column("reason").to_pylist(), batch.column("detail").to_pylist())]
    return ledger_batch(batch.column("doc_id"), batch.column("source"), batch.column("source_file"),
                        batch.column("source_row"), Fate.REJECTED, details)


def from_filtered(batch: pa.RecordBatch) -> pa.RecordBatch:
    """filtered/ rows: `detail` there already names every filter the document failed, with its value."""
    return ledger_batch(batch.column("doc_id"), batch.column("source"), batch.column("source_file"),
                        batch.column("source_row"), Fate.FILTERED, batch.column("detail"))


_LINEAGE_NOTE = {DuplicateLineage.CHILD: "; a copy of its own parent",
                 DuplicateLineage.PARENT: "; the parent of the document kept"}


def duplicate_detail(kind: str, kept: str, similarity: float, cluster: str, size: int,
                     lineage: str | None = None, kept_run: str = "", run: str = "") -> str:
    exact = kind in (DuplicateKind.EXACT, DuplicateKind.EXACT_PRIOR)
    measure = "same normalized text" if exact else f"estimated Jaccard similarity {similarity:.3f}"
    note = _LINEAGE_NOTE.get(lineage, "") if lineage else ""
    if kept_run and kept_run != run:
        return f"{kind} duplicate of {kept} ({measure}){note}, published by earlier run {kept_run}"
    return f"{kind} duplicate of {kept} ({measure}){note}; cluster {cluster} of {size} documents, one kept"


def from_duplicates(batch: pa.RecordBatch) -> pa.RecordBatch:
    columns = [batch.column(c).to_pylist() for c in ("kind", "kept_doc_id", "similarity", "cluster", "cluster_size",
                                                     "lineage", "kept_run_id", "run_id")]
    details = [duplicate_detail(*row) for row in zip(*columns)]
    return ledger_batch(batch.column("doc_id"), batch.column("source"), batch.column("source_file"),
                        batch.column("source_row"), Fate.DUPLICATE, details)


def normalized(priority: int) -> float:
    """A selection priority (uint64; lower is taken first) as a number in [0, 1)."""
    return int(priority) / 2.0 ** 64


def key_label(source: str, script: str) -> str:
    """How a planner key reads in a detail: the source, or the source's text in one script."""
    return f"{source} ({script} text)" if script else source


def selection_detail(copies: int, split: str, priority: int, cutoff: int | None, key: str, mode: str) -> str:
    """Why a survivor is or is not in the mixture, against the cut-off of its source (or source and script).

    `cutoff` is the largest priority the key's last, partial pass took; None when there was no
    partial pass (every eligible document got the same number of copies).
    """
    p = f"priority {normalized(priority):.6f}"
    versus = "" if cutoff is None else (
        f" {'<=' if priority <= cutoff else '>'} cut-off {normalized(cutoff):.6f}")
    how = f"({mode} selection)"
    if copies:
        copy_text = "1 copy" if copies == 1 else f"{copies} copies"
        if cutoff is None:
            return f"{copy_text} in {split}; {p}; every document of {key} got {copy_text} {how}"
        extra = "" if priority <= cutoff else ", outside the last, partial pass"
        return f"{copy_text} in {split}; {p}{versus} of {key}{extra} {how}"
    if cutoff is None:
        return f"{p}; {key} had no quota for it {how}"
    return f"{p}{versus} of {key}: its quota was filled by documents of lower priority {how}"
