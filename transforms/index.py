"""index/: what a later run needs to find duplicates of this run's documents without their text.

Per document of data/ (not per copy): its content hash (exact duplicates), its LSH band keys
(near-duplicate candidates) and the low 8 bits of each MinHash value (b-bit minwise hashing, Li and
König 2010: verifies a candidate's similarity in a quarter of the full signature's bytes). Documents
removed as near duplicates get a row too, naming the document kept in their place, so that a later
run follows near-duplicate chains as one run over all the data would.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hybridmix.schemas.config import NearDedupConfig
from hybridmix.schemas.records import INDEX_SCHEMA
from hybridmix.transforms import minhash
from hybridmix.transforms.sketch import SignatureFiles, lsh_shape
from hybridmix.transforms.text import stable_hash64

INDEX = "index"


def order_index(batch: pa.RecordBatch) -> np.ndarray:
    return stable_hash64(batch.column("doc_id"), salt="index")


def low_bytes(sig: np.ndarray) -> np.ndarray:
    """The low 8 bits of every MinHash value: (documents, num_perm) uint8."""
    return (sig & np.uint32(0xFF)).astype(np.uint8)


def bbit_similarity(a8: np.ndarray, b8: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity from 8-bit MinHash values, row by row.

    Two values of different sets agree by chance with probability 1/256, so the share of equal
    bytes m estimates J + (1 - J)/256; solving for J removes that bias.
    """
    m = (a8 == b8).mean(axis=-1)
    return np.clip((m - 1.0 / 256.0) / (1.0 - 1.0 / 256.0), 0.0, 1.0)


def _array(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def sketch_columns(sig: np.ndarray | None, has_words: np.ndarray, near: NearDedupConfig | None
                   ) -> tuple[pa.Array, pa.Array]:
    """(bands, minhash8) columns of documents with signatures `sig`; empty and null for a document
    without words, or for all when `near` is None (near dedup off)."""
    n = len(has_words)
    if near is None or sig is None or not n:
        return (pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.uint64())),
                pa.nulls(n, pa.binary()))
    bands, rows = lsh_shape(near)
    keys = minhash.band_keys(sig, bands, rows)
    offsets = np.concatenate([[0], np.cumsum(np.where(has_words, bands, 0))]).astype(np.int32)
    low = low_bytes(sig)
    # One binary value per document (its num_perm low bytes, null without words), from buffers.
    width = low.shape[1] if low.ndim == 2 else 0
    ends = np.concatenate([[0], np.cumsum(np.where(has_words, width, 0))]).astype(np.int32)
    present = pa.array(has_words, pa.bool_())
    sig8 = pa.Array.from_buffers(pa.binary(), n, [present.buffers()[1], pa.py_buffer(ends),
                                                  pa.py_buffer(np.ascontiguousarray(low[has_words]).tobytes())],
                                 null_count=int(n - np.count_nonzero(has_words)))
    return (pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(keys[has_words].ravel(), pa.uint64())),
            sig8)


def sketch_rows(docs: pa.Table | pa.RecordBatch, sig: np.ndarray | None, has_words: np.ndarray,
                near: NearDedupConfig | None, run_id: str, kept_doc_id: pa.Array | None = None,
                kept_run_id: pa.Array | None = None, kept_similarity: np.ndarray | None = None,
                sketch: tuple[np.ndarray, np.ndarray] | None = None) -> pa.RecordBatch:
    """index/ rows of `docs` (columns doc_id, content_hash, origin, source, generator, generation,
    parent_id, tokens), row-aligned with their signatures (or `sketch`: their band keys and 8-bit
    values, already made; every document has words). `kept_doc_id`, `kept_run_id`, `kept_similarity`:
    for documents removed as near duplicates, the one kept in their place, the run that kept it and
    their estimated similarity to it."""
    n = docs.num_rows
    if sketch is not None:
        keys, low = sketch
        bands = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * keys.shape[1]),
                                         pa.array(keys.ravel(), pa.uint64()))
        sig8 = pa.array([row.tobytes() for row in low], pa.binary())
    else:
        bands, sig8 = sketch_columns(sig, has_words, near)
    kept_doc_id = kept_doc_id if kept_doc_id is not None else pa.nulls(n, pa.string())
    kept_run_id = kept_run_id if kept_run_id is not None else pa.nulls(n, pa.string())
    similarity = (pa.nulls(n, pa.float32()) if kept_similarity is None
                  else pa.array(np.asarray(kept_similarity, np.float32), pa.float32()))
    return pa.RecordBatch.from_arrays(
        [_array(docs.column(c)) for c in ("doc_id", "content_hash")]
        + [bands, sig8]
        + [_array(docs.column(c)) for c in ("origin", "source", "generator", "generation", "parent_id", "tokens")]
        + [pa.array([run_id] * n, pa.string()), _array(kept_doc_id), _array(kept_run_id), similarity],
        schema=INDEX_SCHEMA,
    )


def index_rows(docs: pa.RecordBatch, selection: pa.Table, near: NearDedupConfig | None,
               run_id: str, signatures: SignatureFiles | None) -> pa.RecordBatch:
    """index/ rows of selected documents (one per document), row-aligned `docs` and `selection`
    rows, their signatures from the run's signature files (a document without words has none).
    `near` None: near dedup was off, so no band keys or MinHash values."""
    if near is not None and signatures is not None:
        sig, has_words = signatures.find(docs.column("uid").to_numpy())
    else:
        sig, has_words = None, np.zeros(docs.num_rows, bool)
    fields = pa.table({
        "doc_id": _array(selection.column("doc_id")), "content_hash": _array(selection.column("content_hash")),
        **{c: docs.column(c) for c in ("origin", "source", "generator", "generation", "parent_id")},
        "tokens": _array(selection.column("tokens")),
    })
    return sketch_rows(fields, sig, has_words, near, run_id)
