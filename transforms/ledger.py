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
from hybridmix.transforms.batches import zero_padded
from hybridmix.transforms.mixture_core import LONG_FACTOR
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


_LINEAGE_NOTE = {DuplicateLineage.CHILD.value: "; a copy of its own parent",
                 DuplicateLineage.PARENT.value: "; the parent of the document kept"}


def _text_per_value(values: pa.Array, name) -> pa.Array:
    """`name(value)` for each value, called once per distinct value; a null reads as ""."""
    encoded = pc.dictionary_encode(values)
    names = [name(v) for v in encoded.dictionary.to_pylist()]
    return pa.array(names + [""], pa.string()).take(pc.fill_null(encoded.indices, len(names)))


# How a duplicate's detail names a kept document that an earlier run published (`explain` reads it).
PUBLISHED_EARLIER = ", published by earlier run "


def duplicate_details(batch: pa.RecordBatch) -> pa.Array:
    """The ledger's detail of each duplicates/ row, e.g. `near duplicate of d7 (estimated Jaccard similarity
    0.914); cluster c3 of 4 documents, one kept`.

    Joined in Arrow: an f-string per removed document took 0.16 s for the 41,758 of the real 200k
    corpus, this 0.01-0.02 s. Only the distinct similarities (at most num_perm + 1 of them) are
    formatted in Python.
    """
    kind, similarity = batch.column("kind"), batch.column("similarity")
    exact = pc.is_in(kind, pa.array([DuplicateKind.EXACT.value, DuplicateKind.EXACT_PRIOR.value]))
    measures = _text_per_value(similarity, lambda v: f"estimated Jaccard similarity {v:.3f}")
    # An exact copy of a document removed as a near duplicate of the kept one is that far from it.
    chained = pc.binary_join_element_wise("an exact copy of one of its near duplicates; ", measures, "")
    measure = pc.if_else(exact, pc.if_else(pc.less(similarity, 1.0), chained, pa.scalar("same normalized text")),
                         measures)
    note = _text_per_value(batch.column("lineage"), lambda v: _LINEAGE_NOTE.get(v, ""))
    kept_run, run = batch.column("kept_run_id"), batch.column("run_id")
    earlier = pc.and_(pc.not_equal(kept_run, ""), pc.not_equal(kept_run, run))
    cluster = pc.binary_join_element_wise("; cluster ", batch.column("cluster"), " of ",
                                          pc.cast(batch.column("cluster_size"), pa.string()),
                                          " documents, one kept", "")
    published = pc.binary_join_element_wise(PUBLISHED_EARLIER, kept_run, "")
    return pc.binary_join_element_wise(kind, " duplicate of ", batch.column("kept_doc_id"), " (", measure, ")",
                                       note, pc.if_else(earlier, published, cluster), "")


def from_duplicates(batch: pa.RecordBatch) -> pa.RecordBatch:
    return ledger_batch(batch.column("doc_id"), batch.column("source"), batch.column("source_file"),
                        batch.column("source_row"), Fate.DUPLICATE, duplicate_details(batch))


def normalized(priority: int) -> float:
    """A selection priority (uint64; lower is taken first) as a number in [0, 1)."""
    return int(priority) / 2.0 ** 64


def key_label(source: str, script: str) -> str:
    """How a planner key reads in a detail: the source, or the source's text in one script."""
    return f"{source} ({script} text)" if script else source


def _six_decimals(priority: np.ndarray) -> pa.Array:
    """f"{normalized(p):.6f}" of each uint64 priority, in Arrow.

    The product with 1e6, rounded to a double, can land on the wrong side of a .5 when it is within
    an ulp of one (the test has priorities found so); rows that close to a tie (about 1 in 500,000)
    are formatted in Python.
    """
    x = priority.astype(np.float64) * 2.0 ** -64
    scaled = x * 1e6
    n = np.rint(scaled).astype(np.int64)
    whole, frac = np.divmod(n, 1_000_000)
    text = pc.binary_join_element_wise(pa.array(whole).cast(pa.string()), ".", zero_padded(frac, 6), "")
    near_tie = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6
    if near_tie.any():
        exact = pa.array([f"{normalized(p):.6f}" for p in priority[near_tie]], pa.string())
        text = pc.replace_with_mask(text, pa.array(near_tie), exact)
    return text


def large_details(copies: np.ndarray, splits: list[str], priority: np.ndarray, units: np.ndarray,
                  decisions: list[tuple[bool, float]], key: str, unit: str, mode: str) -> list[str]:
    """Why each of a planner key's long documents, decided one by one in its last, partial pass
    (`mixture_core.partial_pass`), is or is not in it; `decisions`: (taken, units left then)."""
    out = []
    for c, split, p, u, (taken, left) in zip(copies.tolist(), splits, priority.tolist(), units.tolist(), decisions):
        copy = f"{c} cop{'y' if c == 1 else 'ies'} in {split}; " if c else ""
        what = (f"priority {normalized(p):.6f}; a long document of {key} ({u:,} {unit}, over {LONG_FACTOR}x its "
                f"mean), decided on its own when {left:,.0f} {unit} of the last, partial pass were left: ")
        why = "taken" if taken else "left out (taking it would overshoot by more than leaving it out falls short)"
        out.append(f"{copy}{what}{why} ({mode} selection)")
    return out


def selection_details(copies: np.ndarray, splits: pa.Array, priority: np.ndarray, cutoff: int | None, key: str,
                      mode: str) -> pa.Array:
    """Why each survivor of one planner key (a source, or a source's text in one script) is or is not
    in the mixture, against the key's cut-off: e.g. `1 copy in train; priority 0.012345 <= cut-off
    0.020000 of web (random selection)`.

    `cutoff` is the largest priority the key's last, partial pass took; None when there was no
    partial pass (every eligible document got the same number of copies). Joined in Arrow: an
    f-string per survivor took 0.18 s for 158,000 of them, this 0.08 s.
    """
    p = pc.binary_join_element_wise("priority ", _six_decimals(priority), "")
    how = f" ({mode} selection)"
    copy_text = pc.if_else(pa.array(copies == 1), pa.scalar("1 copy"), pc.binary_join_element_wise(
        pa.array(copies.astype(np.int64)).cast(pa.string()), " copies", ""))
    taken = pa.array(copies > 0)
    if cutoff is None:
        selected = pc.binary_join_element_wise(copy_text, " in ", splits, "; ", p, f"; every document of {key} got ",
                                               copy_text, how, "")
        return pc.if_else(taken, selected, pc.binary_join_element_wise(p, f"; {key} had no quota for it{how}", ""))
    within = priority <= np.uint64(cutoff)
    versus = f" cut-off {normalized(cutoff):.6f} of {key}"
    p_versus = pc.binary_join_element_wise(p, pc.if_else(pa.array(within), pa.scalar(" <="), pa.scalar(" >")),
                                           versus, "")
    extra = pc.if_else(pa.array(within), pa.scalar(""), pa.scalar(", outside the last, partial pass"))
    selected = pc.binary_join_element_wise(copy_text, " in ", splits, "; ", p_versus, extra, how, "")
    return pc.if_else(taken, selected, pc.binary_join_element_wise(
        p_versus, f": its quota was filled by documents of lower priority{how}", ""))