"""MinHash sketches of documents: the text-free INFO rows and LSH band keys that dedup works on,
and full signatures for the LSH candidates, which are signed again from their input rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics

from hybridmix.schemas.config import DedupConfig, NearDedupConfig
from hybridmix.transforms import columns, minhash, progress
from hybridmix.transforms.batches import concat_blocks, int_partitions, list_parts, split_rows
from hybridmix.transforms.dedup_core import survivor_keys
from hybridmix.transforms.inputs import ReadSpec
from hybridmix.transforms.reread import ReadRowsAgain
from hybridmix.transforms.storage import content_tag, read_range, write_buffers

INFO = "info"
BANDS = "bands"
BAND_KEYS = "band_keys"
CANDIDATES = "candidates"
ELIGIBLE = "eligible"


def lsh_shape(config: NearDedupConfig) -> tuple[int, int]:
    """(bands, rows) from the config, or the datasketch-style optimum for its threshold."""
    if config.bands is not None and config.rows is not None:
        return config.bands, config.rows
    return minhash.optimal_bands(config.threshold, config.num_perm, config.false_positive_weight)


# A band row in a spill file: its 64-bit key and its owner's uid.
_BAND_BYTES = 16


def spill_bands(keys: np.ndarray, owners: np.ndarray, partitions: int, spill_dir: str):
    """A batch's LSH band keys -> one spill file, grouped by band partition; (partition, (path, start, end)).

    Grouping band keys is the largest shuffle of a run (32 keys per document, 16 bytes each: 5.1 GB
    at ten million documents), and the in-process runner holds a shuffle's data in memory until
    the stage that reads it; through the file system, the shuffle carries one range per partition
    and batch. A range is the partition's keys, then its owners. The name derives from the owners,
    so a retried bundle rewrites the same file.
    """
    parts = list(split_rows(int_partitions(keys, partitions), partitions))
    ends = np.cumsum([len(rows) for _, rows in parts]) * _BAND_BYTES
    path = f"{spill_dir}/{content_tag(owners)}.bin"
    write_buffers(path, [memoryview(column[rows]).cast("B")
                         for _, rows in parts for column in (keys, owners)])
    for (p, rows), end in zip(parts, ends):
        yield p, (path, int(end) - len(rows) * _BAND_BYTES, int(end))


def read_bands(ranges: Iterable[tuple[str, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(band keys, owner uids) of spill ranges.

    A retried bundle may have reported its ranges twice; they name the same bytes, read once.
    """
    keys, uids = [np.zeros(0, np.uint64)], [np.zeros(0, np.int64)]
    for path, start, end in sorted(set(ranges)):
        n = (end - start) // _BAND_BYTES
        data = np.frombuffer(read_range(path, start, end), np.uint64)
        keys.append(data[:n])
        uids.append(data[n:].view(np.int64))
    return np.concatenate(keys), np.concatenate(uids)


def signatures_of(docs: pa.RecordBatch, near: NearDedupConfig) -> np.ndarray:
    """MinHash signature of every document of a batch, from its word hashes."""
    word_hashes, offsets = list_parts(docs.column("word_hashes"))
    return minhash.signatures(word_hashes, offsets, near.ngram, near.num_perm, near.seed)


class _SketchFn(beam.DoFn):
    """Per document batch: INFO rows with survivor keys, and LSH band keys spilled by partition.

    The signature itself is not kept: LSH candidates are signed again later.
    """

    def __init__(self, config: DedupConfig, partitions: int, spill_dir: str, keys: bool) -> None:
        self._config = config
        self._partitions = partitions
        self._spill_dir = spill_dir
        self._keys = keys

    def setup(self) -> None:
        self._bands, self._rows = lsh_shape(self._config.near)
        self._docs = Metrics.counter(SketchDocuments.__name__, "documents")

    def process(self, docs: pa.RecordBatch):
        n = docs.num_rows
        self._docs.inc(n)
        uids = docs.column("uid").to_numpy()
        skeys = survivor_keys(
            self._config.survivor,
            docs.column("doc_id").to_pylist(),
            docs.column("origin").to_pylist(),
            docs.column("tokens").to_numpy(),
            docs.column("quality_score").to_numpy(zero_copy_only=False),
            uids,
        )
        if self._config.near.enabled:
            has_words = np.diff(list_parts(docs.column("word_hashes"))[1]) > 0
            sig = signatures_of(docs, self._config.near)[has_words]
            # Every band of every document with words.
            keys = minhash.band_keys(sig, self._bands, self._rows).ravel()
            owners = np.repeat(uids[has_words], self._bands)
            if len(keys):
                for ref in spill_bands(keys, owners, self._partitions, self._spill_dir):
                    yield beam.pvalue.TaggedOutput(BANDS, ref)
                if self._keys:
                    yield beam.pvalue.TaggedOutput(BAND_KEYS, keys)
        yield pa.RecordBatch.from_arrays(
            [docs.column(name) for name in columns.INFO.names[:columns.INFO.get_field_index("skey")]]
            + [
                pa.array(skeys, pa.string()),
                pa.array(np.ones(n, np.int32)),
                pa.nulls(n, pa.string()),
                pa.array(np.ones(n, np.int32)),
            ],
            schema=columns.INFO,
        )


class SketchOutputs(NamedTuple):
    info: beam.PCollection
    bands: beam.PCollection
    band_keys: beam.PCollection | None  # with keys=True: each batch's band keys, one array per batch


class SketchDocuments(beam.PTransform):
    """Drop the text: INFO rows for dedup and mixing, and LSH band keys for near dedup.

    Band keys go to spill files under `spill_dir` (a folder every worker can read: the run's
    staging folder, which publishing clears); `bands` holds (band partition, (path, start, end))
    ranges, read with `read_bands`. With `keys`, `band_keys` also has each batch's keys as an array,
    for a combine that runs where they are made (dedup.against's key filter), so no spill file is
    read for it.
    """

    def __init__(self, config: DedupConfig, partitions: int, spill_dir: str, keys: bool = False) -> None:
        super().__init__()
        self._config = config
        self._partitions = partitions
        self._spill_dir = spill_dir
        self._keys = keys

    def expand(self, docs: beam.PCollection) -> SketchOutputs:
        out = docs | "KeyAndBand" >> beam.ParDo(
            _SketchFn(self._config, self._partitions, self._spill_dir, self._keys)).with_outputs(BANDS, BAND_KEYS, main=INFO)
        return SketchOutputs(info=out[INFO], bands=out[BANDS], band_keys=out[BAND_KEYS] if self._keys else None)


# A candidate to sign again: its row, and the hash of its text when it was first read.
CANDIDATE = pa.schema([pa.field("uid", pa.int64(), nullable=False), pa.field("text_hash", pa.uint64(), nullable=False)])


def _key_candidates(pairs, partitions: int):
    """(partition, (a, b)) candidate pairs -> (uid partition, uids) of both ends."""
    _, (a, b) = pairs
    uids = np.unique(np.concatenate([a, b]))
    for p, rows in split_rows(int_partitions(uids, partitions), partitions):
        yield p, uids[rows]


def _key_eligible(batch: pa.RecordBatch, partitions: int):
    """INFO batch -> (uid partition, (uids, text hashes)): the documents still in play after exact dedup."""
    uids = batch.column("uid").to_numpy()
    hashes = batch.column("text_hash").to_numpy()
    for p, rows in split_rows(int_partitions(uids, partitions), partitions):
        yield p, (uids[rows], hashes[rows])


def _eligible_candidates(element):
    """Candidates that are still in play; exact duplicates and rejected rows drop out here."""
    _, joined = element
    candidates = list(joined[CANDIDATES])
    if not candidates or not joined[ELIGIBLE]:
        return
    uids, hashes = concat_blocks(joined[ELIGIBLE])
    keep = np.isin(uids, np.concatenate(candidates))
    if keep.any():
        order = np.argsort(uids[keep], kind="stable")
        yield pa.RecordBatch.from_arrays(
            [pa.array(uids[keep][order], pa.int64()), pa.array(hashes[keep][order], pa.uint64())], schema=CANDIDATE)


def _sign_again(read: tuple[pa.RecordBatch, pa.Table], near: NearDedupConfig, partitions: int):
    """(documents read again, requests) -> (uid partition, (uids, signatures))."""
    docs, _ = read
    progress.add(progress.SIGNED, docs.num_rows)
    uids = docs.column("uid").to_numpy()
    sig = signatures_of(docs, near)
    for p, rows in split_rows(int_partitions(uids, partitions), partitions):
        yield p, (uids[rows], sig[rows])


class CandidateSignatures(beam.PTransform):
    """(candidate pairs, eligible INFO) -> signatures of eligible candidates, keyed by uid partition.

    Only LSH candidates need a full signature, and usually they are a small share of the
    corpus: their rows are read again and signed, instead of carrying every signature
    through the shuffles. Candidates that are no longer in play (exact duplicates, rejected
    rows) get no signature, so pairs with them drop out at verification.
    """

    def __init__(self, spec: ReadSpec, near: NearDedupConfig, partitions: int) -> None:
        super().__init__()
        self._spec = spec
        self._near = near
        self._partitions = partitions

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        pairs, info = inputs
        parts = self._partitions
        return (
            {
                CANDIDATES: pairs | "KeyCandidates" >> beam.FlatMap(_key_candidates, parts),
                ELIGIBLE: info | "KeyEligible" >> beam.FlatMap(_key_eligible, parts),
            }
            | "JoinCandidates" >> beam.CoGroupByKey()
            | "EligibleCandidates" >> beam.FlatMap(_eligible_candidates)
            # Only the word hashes are needed: no content hash, token or character counts.
            | "ReadCandidates" >> ReadRowsAgain(self._spec, CANDIDATE, measure=False, words=True)
            | "SignCandidates" >> beam.FlatMap(_sign_again, near=self._near, partitions=parts)
        )
