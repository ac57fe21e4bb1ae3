"""MinHash sketches of documents: the text-free INFO rows and LSH band keys that dedup works on,
and every signature in a spill file, from which LSH candidates and the index/ rows of selected
documents take theirs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics

from hybridmix.schemas.config import DedupConfig, NearDedupConfig
from hybridmix.schemas.errors import FatalError
from hybridmix.transforms import columns, minhash, parallel, progress
from hybridmix.transforms.batches import concat, int_partitions, list_parts, split_rows
from hybridmix.transforms.dedup_core import survivor_keys
from hybridmix.transforms.inputs import ReadSpec
from hybridmix.transforms.reread import KeyByWorkItemFn
from hybridmix.transforms.storage import (
    content_tag,
    flush_writes,
    is_remote,
    read_range,
    write_buffers,
    write_buffers_behind,
)

INFO = "info"
BANDS = "bands"
SIGNATURES = "signatures"
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
    write_buffers_behind(path, [memoryview(column[rows]).cast("B")
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


def spill_signatures(uids: np.ndarray, sig: np.ndarray, spill_dir: str, behind: bool = True
                     ) -> tuple[int, int, str, int]:
    """A batch's MinHash signatures -> one spill file; (first uid, last uid, path, documents).

    LSH candidates and the index/ rows of selected documents need signatures again, later in
    the run. Kept here (num_perm x 4 bytes a document), they are read back instead of reading,
    checking and hashing those documents' text a second time and signing it again. The file
    holds the uids in order, then their signatures; its name derives from the uids, so a retried
    bundle rewrites the same file. `behind`: written on the writer thread, for a step that waits
    for its writes when its bundle finishes (`flush_writes`); else here.
    """
    order = np.argsort(uids, kind="stable")
    uids, sig = np.ascontiguousarray(uids[order], np.int64), np.ascontiguousarray(sig[order], np.uint32)
    path = f"{spill_dir}/{content_tag(uids)}.bin"
    (write_buffers_behind if behind else write_buffers)(path, [memoryview(uids).cast("B"), memoryview(sig).cast("B")])
    return int(uids[0]), int(uids[-1]), path, len(uids)


def read_signature_file(path: str, documents: int, num_perm: int, dtype=np.uint32) -> tuple[np.ndarray, np.ndarray]:
    """(uids, signatures) of a file of uids followed by their signature rows (`spill_signatures`;
    near dedup's low bits use the same layout with uint16)."""
    data = read_range(path, 0, documents * (8 + num_perm * np.dtype(dtype).itemsize))
    uids = np.frombuffer(data, np.int64, count=documents)
    return uids, np.frombuffer(data, dtype, offset=8 * documents).reshape(documents, num_perm)


def read_signature_uids(path: str, documents: int) -> np.ndarray:
    """The uids of a `spill_signatures` file, in order, without its signatures."""
    return np.frombuffer(read_range(path, 0, 8 * documents), np.int64)


def _signature_rows(path: str, documents: int, num_perm: int, rows: np.ndarray) -> np.ndarray:
    """Signature rows `rows` of a `spill_signatures` file; locally only the pages that hold them are read."""
    if is_remote(path):
        return read_signature_file(path, documents, num_perm)[1][rows]
    flush_writes()
    mapped = np.memmap(path, np.uint32, "r", offset=8 * documents, shape=(documents, num_perm))
    return np.array(mapped[rows])


def fill_signatures(path: str, documents: int, num_perm: int, uids: np.ndarray, rows: np.ndarray,
                    out: np.ndarray, found: np.ndarray) -> None:
    """Into `out` and `found` at `rows`: the signatures of `uids[rows]` that a `spill_signatures`
    file holds, found by its uids and read row by row."""
    file_uids = read_signature_uids(path, documents)
    pos = np.minimum(np.searchsorted(file_uids, uids[rows]), documents - 1)
    hit = file_uids[pos] == uids[rows]
    if hit.any():
        out[rows[hit]] = _signature_rows(path, documents, num_perm, pos[hit])
        found[rows[hit]] = True


class SignatureFiles:
    """uid -> MinHash signature, from the spill files of `spill_signatures` (their references).

    A batch's file covers a range of uids (first, last). Most batches are a run of rows of one
    input file, but a batch joined from small files (`ingest._JoinSmallBatchesFn`) spans their
    files, and on several workers such ranges interleave: a uid is looked for in every file whose
    range holds it, until found. A retried bundle may have reported its file twice; it names the
    same bytes.
    """

    def __init__(self, refs: Iterable[tuple[int, int, str, int]], num_perm: int) -> None:
        refs = sorted(set(refs))
        self.first = np.array([r[0] for r in refs], np.int64)
        self.last = np.array([r[1] for r in refs], np.int64)
        self.paths = [r[2] for r in refs]
        self.counts = [r[3] for r in refs]
        self.num_perm = num_perm

    def find(self, uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(signatures, found) for `uids`: a document without words has no signature (zeros, found False)."""
        out = np.zeros((len(uids), self.num_perm), np.uint32)
        found = np.zeros(len(uids), bool)
        order = np.argsort(uids, kind="stable")
        ordered = uids[order]
        lo = np.searchsorted(ordered, self.first, side="left")
        hi = np.searchsorted(ordered, self.last, side="right")
        for f in np.nonzero(lo < hi)[0]:
            rows = order[lo[f]:hi[f]]
            rows = rows[~found[rows]]
            if len(rows):
                fill_signatures(self.paths[f], self.counts[f], self.num_perm, uids, rows, out, found)
        return out, found


def signatures_of(docs: pa.RecordBatch, near: NearDedupConfig) -> np.ndarray:
    """MinHash signature of every document of a batch, from its word hashes."""
    word_hashes, offsets = list_parts(docs.column("word_hashes"))
    return minhash.signatures(word_hashes, offsets, near.ngram, near.num_perm, near.seed)


class _SketchFn(parallel.AheadDoFn):
    """Per document batch: INFO rows with survivor keys, LSH band keys spilled by partition, and
    the signatures spilled whole (`spill_signatures`); on a helper thread, one batch ahead of the
    steps after it (`parallel.AheadDoFn`)."""

    def __init__(self, config: DedupConfig, partitions: int, spill_dir: str, keys: bool) -> None:
        self._config = config
        self._partitions = partitions
        self._spill_dir = spill_dir
        self._keys = keys

    def setup(self) -> None:
        self._bands, self._rows = lsh_shape(self._config.near)
        self._docs = Metrics.counter(SketchDocuments.__name__, "documents")

    def work(self, docs: pa.RecordBatch):
        n = docs.num_rows
        yield parallel.Count(self._docs, n)
        uids = docs.column("uid").to_numpy()
        skeys = survivor_keys(
            self._config.survivor,
            docs.column("doc_id"),
            docs.column("origin"),
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
                for ref in spill_bands(keys, owners, self._partitions, f"{self._spill_dir}/{BANDS}"):
                    yield beam.pvalue.TaggedOutput(BANDS, ref)
                yield beam.pvalue.TaggedOutput(SIGNATURES, spill_signatures(
                    uids[has_words], sig, f"{self._spill_dir}/{SIGNATURES}"))
                if self._keys:
                    yield beam.pvalue.TaggedOutput(BAND_KEYS, keys)
        yield pa.RecordBatch.from_arrays(
            [docs.column(name) for name in columns.INFO.names[:columns.INFO.get_field_index("skey")]]
            + [
                skeys,
                pa.array(np.ones(n, np.int32)),
                pa.nulls(n, pa.string()),
                pa.array(np.ones(n, np.int32)),
            ],
            schema=columns.INFO,
        )

    def finish_work(self) -> None:
        flush_writes()  # the spill files this bundle reported are whole before it counts as done


class SketchOutputs(NamedTuple):
    info: beam.PCollection
    bands: beam.PCollection
    band_keys: beam.PCollection | None  # with keys=True: each batch's band keys, one array per batch
    signatures: beam.PCollection  # references to signature files, for `SignatureFiles`


class SketchDocuments(beam.PTransform):
    """Drop the text: INFO rows for dedup and mixing, LSH band keys and signatures for near dedup.

    Band keys and signatures go to spill files under `spill_dir` (a folder every worker can read:
    the run's staging folder, which publishing clears); `bands` holds (band partition, (path,
    start, end)) ranges, read with `read_bands`, and `signatures` the references of the
    signature files, read with `SignatureFiles`. With `keys`, `band_keys` also has each batch's
    keys as an array, for a combine that runs where they are made (dedup.against's key filter),
    so no spill file is read for it.
    """

    def __init__(self, config: DedupConfig, partitions: int, spill_dir: str, keys: bool = False) -> None:
        super().__init__()
        self._config = config
        self._partitions = partitions
        self._spill_dir = spill_dir
        self._keys = keys

    def expand(self, docs: beam.PCollection) -> SketchOutputs:
        out = docs | "KeyAndBand" >> beam.ParDo(
            _SketchFn(self._config, self._partitions, self._spill_dir, self._keys)
        ).with_output_types(pa.RecordBatch).with_outputs(BANDS, BAND_KEYS, SIGNATURES, main=INFO)  # transforms/wire.py
        return SketchOutputs(info=out[INFO], bands=out[BANDS], band_keys=out[BAND_KEYS] if self._keys else None,
                             signatures=out[SIGNATURES])


# An LSH candidate still in play, whose signature is looked up.
CANDIDATE = pa.schema([pa.field("uid", pa.int64(), nullable=False)])


def _key_candidates(pairs, partitions: int):
    """(partition, (a, b)) candidate pairs -> (uid partition, uids) of both ends."""
    _, (a, b) = pairs
    uids = np.unique(np.concatenate([a, b]))
    for p, rows in split_rows(int_partitions(uids, partitions), partitions):
        yield p, uids[rows]


def _key_eligible(batch: pa.RecordBatch, partitions: int):
    """INFO batch -> (uid partition, uids): the documents still in play after exact dedup."""
    uids = batch.column("uid").to_numpy()
    for p, rows in split_rows(int_partitions(uids, partitions), partitions):
        yield p, uids[rows]


def _eligible_candidates(element):
    """Candidates that are still in play; exact duplicates and rejected rows drop out here."""
    _, joined = element
    candidates = list(joined[CANDIDATES])
    if not candidates or not joined[ELIGIBLE]:
        return
    uids = np.concatenate(list(joined[ELIGIBLE]))
    keep = np.isin(uids, np.concatenate(candidates))
    if keep.any():
        yield pa.RecordBatch.from_arrays([pa.array(np.sort(uids[keep]), pa.int64())], schema=CANDIDATE)


def _look_up(element, refs: list, near: NearDedupConfig, partitions: int):
    """(work item, candidate batches) -> (uid partition, (uids, signatures)), from the
    signature files of the first pass."""
    _, batches = element
    uids = concat(batches, CANDIDATE).column("uid").to_numpy()
    sig, found = SignatureFiles(refs, near.num_perm).find(uids)
    if not found.all():
        raise FatalError("near dedup: an LSH candidate has no signature in the run's signature files")
    progress.add(progress.SIGNED, len(uids))
    for p, rows in split_rows(int_partitions(uids, partitions), partitions):
        yield p, (uids[rows], sig[rows])


class CandidateSignatures(beam.PTransform):
    """(candidate pairs, eligible INFO) -> signatures of eligible candidates, keyed by uid partition.

    Only LSH candidates need a full signature, and usually they are a small share of the corpus:
    theirs are read from the signature files of the first pass (`signatures`, the references
    SketchDocuments made), one read unit of the input at a time, so each file is read once,
    instead of carrying every signature through the shuffles. Candidates that are no longer in
    play (exact duplicates, rejected rows) get no signature, so pairs with them drop out at
    verification.
    """

    def __init__(self, spec: ReadSpec, near: NearDedupConfig, partitions: int, signatures: beam.PCollection) -> None:
        super().__init__()
        self._spec = spec
        self._near = near
        self._partitions = partitions
        self._signatures = signatures

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
            # Grouped by the work item that read them, the candidates of a signature file come together.
            | "KeyByReadUnit" >> beam.ParDo(KeyByWorkItemFn(self._spec))
            | "GroupByReadUnit" >> beam.GroupByKey()
            | "LookUpSignatures" >> beam.FlatMap(
                _look_up, beam.pvalue.AsList(self._signatures), near=self._near, partitions=parts)
        )
