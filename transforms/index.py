"""index/: what a later run needs to find duplicates of this run's documents without their text.

Per document of data/ (not per copy): its content hash (exact duplicates), its LSH band keys
(near-duplicate candidates) and the low 8 bits of each MinHash value (b-bit minwise hashing, Li and
König 2010: verifies a candidate's similarity in a quarter of the full signature's bytes).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hybridmix.schemas.config import NearDedupConfig
from hybridmix.schemas.records import INDEX_SCHEMA
from hybridmix.transforms import minhash
from hybridmix.transforms.batches import list_parts
from hybridmix.transforms.sketch import lsh_shape, signatures_of
from hybridmix.transforms.text import stable_hash64

INDEX = "index"


def order_index(batch: pa.RecordBatch) -> np.ndarray:
    return stable_hash64(batch.column("doc_id").to_pylist(), salt="index")


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


def index_rows(docs: pa.RecordBatch, selection: pa.Table, near: NearDedupConfig | None,
               run_id: str) -> pa.RecordBatch:
    """index/ rows of selected documents (one per document), row-aligned `docs` (with word hashes)
    and `selection` rows. `near` None: near dedup was off, so no band keys or MinHash values."""
    n = docs.num_rows
    bands_offsets = np.zeros(n + 1, np.int32)
    band_values = np.zeros(0, np.uint64)
    sig8: list[bytes | None] = [None] * n
    if near is not None and n:
        bands, rows = lsh_shape(near)
        has_words = np.diff(list_parts(docs.column("word_hashes"))[1]) > 0
        sig = signatures_of(docs, near)
        keys = minhash.band_keys(sig, bands, rows)
        bands_offsets = np.concatenate([[0], np.cumsum(np.where(has_words, bands, 0))]).astype(np.int32)
        band_values = keys[has_words].ravel()
        low = low_bytes(sig)
        sig8 = [low[i].tobytes() if has_words[i] else None for i in range(n)]
    return pa.RecordBatch.from_arrays(
        [
            _array(selection.column("doc_id")),
            _array(selection.column("content_hash")),
            pa.ListArray.from_arrays(pa.array(bands_offsets, pa.int32()), pa.array(band_values, pa.uint64())),
            pa.array(sig8, pa.binary()),
            docs.column("origin"),
            docs.column("source"),
            docs.column("generator"),
            docs.column("generation"),
            docs.column("parent_id"),
            _array(selection.column("tokens")),
            pa.array([run_id] * n, pa.string()),
        ],
        schema=INDEX_SCHEMA,
    )
