"""DedupPrior: new documents that duplicate a document of an earlier output (`dedup.against`).

Only the new documents are read and signed; the earlier ones come from their outputs' index/
(transforms.index). Exact: equal content hashes. Near: an LSH band key shared with an earlier
document, verified by the similarity of the new signature's low bytes to the stored ones. A new
document with a match is removed (`exact_prior`, or `near_prior` for its most similar earlier
document); the rest go on to this run's own dedup. Every keyed step moves blocks of arrays tagged
with a hash partition, as near dedup does. Before anything is shuffled, a fixed-size bitset of the
new documents' keys (KeyFilter) leaves out the earlier keys that cannot match, and the rows of
earlier candidates are read from their index file where they are needed: no worker holds the index.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridmix.schemas.config import DedupConfig, NearDedupConfig, Origin
from hybridmix.schemas.errors import ConfigError, DataError
from hybridmix.schemas.reasons import DuplicateKind
from hybridmix.schemas.stats import Figure
from hybridmix.transforms import columns, minhash, progress
from hybridmix.transforms.batches import (
    concat,
    concat_blocks,
    int_partitions,
    key_by_uid,
    list_parts,
    split_rows,
    table_to_batch,
)
from hybridmix.transforms.duplicates import duplicate_rows
from hybridmix.transforms.earlier import open_output, resolve
from hybridmix.transforms.index import INDEX, bbit_similarity, low_bytes, sketch_rows
from hybridmix.transforms.inputs import one_line
from hybridmix.transforms.minhash import EMPTY_HASH
from hybridmix.transforms.sketch import lsh_shape, read_bands
from hybridmix.transforms.stats import STATS, emit_by_source
from hybridmix.transforms.storage import open_parquet, parquet_threads
from hybridmix.transforms.text import EXACT_KEY

# The near-dedup settings an index's band keys and MinHash values depend on.
_SIGNATURE_KEYS = ("num_perm", "ngram", "seed", "bands", "rows", "scheme", "hashfunc")
# What a duplicate row needs of the earlier document it matched, read by ref.
_KEPT_COLUMNS = ("doc_id", "origin", "source", "generator", "parent_id", "run_id", "kept_doc_id", "kept_run_id")
_KEPT_SIMILARITY = "kept_similarity"
_ROW_BITS = 32  # a reference to an index row: (index file ordinal << 32) | row

log = logging.getLogger(__name__)

NEW, PRIOR, PAIRS, SIGS, INFO, EXACT, NEAR, KEPT, DUPLICATES, INDEX_ROWS = (
    "new", "prior", "pairs", "sigs", "info", "exact", "near", "kept", "duplicates", "index")


@dataclass(frozen=True)
class PriorOutput:
    """An earlier output named in `dedup.against`, as planned: its index files and what they allow."""

    display: str  # as the config names it
    location: str  # resolved: absolute, or a remote URL
    run_id: str
    files: tuple[str, ...]  # its index/ files
    indexed: int  # rows of its index: the documents it published and those it removed as near duplicates
    near: bool  # its band keys and MinHash values match this run's near-dedup settings


def plan_prior(config: DedupConfig, base_dir: str, ours: dict[str, Any]) -> tuple[PriorOutput, ...]:
    """Check every earlier output of `dedup.against` and list its index files.

    `ours`: this run's manifest `dedup.near` settings. An index whose band keys were made with other
    settings cannot be matched against; that is a config error naming the differences, before the
    run starts. An earlier run without near dedup is matched exactly only.
    """
    planned = []
    seen: dict[str, str] = {}
    for i, path in enumerate(config.against):
        key = f"dedup.against[{i}]"
        where = resolve(path, base_dir)
        earlier = open_output(where, base_dir, key)
        manifest, run_id = earlier.manifest, earlier.run_id
        if run_id in seen:
            raise ConfigError(f"{key}: {path} is the same run ({run_id}) as {seen[run_id]}")
        seen[run_id] = path
        files = manifest["outputs"].get(INDEX) or []
        if not manifest.get("config", {}).get("output", {}).get("index", False):
            raise ConfigError(
                f"{key}: {path} (run {run_id}) has no index/: it was written with output.index: false or "
                "by an earlier version of hybridmix; run it again to match new documents against it")
        if manifest.get("dedup", {}).get("exact", {}).get("key") != EXACT_KEY:
            # Not an error: most texts hash the same either way, and near dedup still matches the rest.
            log.warning("%s: %s (run %s) was written by an earlier version of hybridmix, which normalized some "
                        "texts differently (invisible format characters such as soft hyphens and zero-width "
                        "spaces; a letter's accents typed in another order, as a Vietnamese keyboard does; the Arabic "
                        "tatweel, Persian typed on an Arabic keyboard; Hebrew and Arabic vowel points; Malayalam's "
                        "chillu letters); its "
                        "documents that hold them are matched by near dedup only", key, path, run_id)
        theirs = manifest.get("dedup", {}).get("near", {})
        near = bool(theirs.get("enabled")) and bool(ours.get("enabled"))
        if near:
            differ = [f"{k} {theirs.get(k)!r} (this run: {ours.get(k)!r})" for k in _SIGNATURE_KEYS
                      if theirs.get(k) != ours.get(k)]
            if differ:
                raise ConfigError(
                    f"{key}: {path} (run {run_id}) was indexed with other near-dedup settings: "
                    f"{'; '.join(differ)}. Use the same dedup.near settings as that run (set bands and rows "
                    "explicitly to keep them when you change the threshold), or turn near dedup off")
        for f in files:
            # As for a data file of an earlier output: what the run matches against is what it published.
            earlier.published_file(f["path"], int(f["size_bytes"]), f"{key}: {path} (run {run_id})",
                                   "its index is incomplete: run that mix again, or leave it out of dedup.against")
        planned.append(PriorOutput(
            display=path,
            location=where,
            run_id=run_id,
            files=tuple(earlier.file_path(f["path"]) for f in files),
            indexed=sum(int(f["rows"]) for f in files),
            near=near,
        ))
    return tuple(planned)


def _refs(ordinal: int, first: int, n: int) -> np.ndarray:
    return (np.int64(ordinal) << np.int64(_ROW_BITS)) + np.arange(first, first + n, dtype=np.int64)


def _fixed_width(values: pa.Array, width: int, what: str) -> np.ndarray:
    """A binary column whose values all have `width` bytes, as an (n, width) uint8 matrix (no copy)."""
    offsets = np.frombuffer(values.buffers()[1], np.int32)[values.offset:values.offset + len(values) + 1]
    if values.null_count or (np.diff(offsets) != width).any():
        raise DataError(f"an index/ {what} value is not {width} bytes: not an index this hybridmix wrote")
    data = np.frombuffer(values.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    return data.reshape(len(values), width)


def _hex_words(hashes: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """128-bit hex content hashes (32 digits) as two uint64 columns (high, low), vectorized."""
    n = len(hashes)
    if not n:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    digits = _fixed_width(pc.cast(hashes, pa.binary()), 32, "content_hash")
    nibbles = np.where(digits >= 97, digits - 87, digits - 48).astype(np.uint64)
    words = []
    for half in (nibbles[:, :16], nibbles[:, 16:]):
        word = np.zeros(n, np.uint64)
        for column in half.T:
            word = (word << np.uint64(4)) | column
        words.append(word)
    return words[0], words[1]


def _hash_keys(hashes: pa.Array, partitions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(high, low, partition) of content hashes: compared as numbers, not Python strings."""
    high, low = _hex_words(hashes)
    return high, low, (high % np.uint64(partitions)).astype(np.int64)


def filter_bits(keys: int) -> int:
    """log2 of a key filter's size for about `keys` new keys: 32 bits a key (about 3 % of the earlier
    keys pass by chance), between 64 KiB and 128 MiB."""
    return int(min(30, max(19, math.ceil(math.log2(max(keys, 1) * 32)))))


def _positions(keys: np.ndarray, bits: int) -> np.ndarray:
    """Bit of each uint64 key in a filter of 2^bits bits (Fibonacci hashing: keys need not be mixed)."""
    with np.errstate(over="ignore"):
        return (keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)


def _passes(filt: np.ndarray, keys: np.ndarray, bits: int) -> np.ndarray:
    pos = _positions(keys, bits)
    return ((filt[pos >> np.uint64(3)] >> (pos & np.uint64(7)).astype(np.uint8)) & np.uint8(1)).astype(bool)


class KeyFilter(beam.CombineFn):
    """A bitset of the new documents' keys (band keys, or content hashes' high words), ORed over
    all workers: an earlier key whose bit is clear matches no new document, so only the few earlier
    keys that pass are shuffled to be joined. Fixed size, whatever the number of earlier keys."""

    def __init__(self, bits: int) -> None:
        self._bits = bits

    def create_accumulator(self) -> np.ndarray:
        return np.zeros(1 << (self._bits - 3), np.uint8)

    def add_input(self, acc: np.ndarray, keys: np.ndarray) -> np.ndarray:
        pos = _positions(keys, self._bits)
        np.bitwise_or.at(acc, pos >> np.uint64(3), (np.uint8(1) << (pos & np.uint64(7)).astype(np.uint8)))
        return acc

    def merge_accumulators(self, accumulators) -> np.ndarray:
        accumulators = iter(accumulators)
        out = next(accumulators).copy()
        for acc in accumulators:
            np.bitwise_or(out, acc, out=out)
        return out

    def extract_output(self, acc: np.ndarray) -> np.ndarray:
        return acc


def _hash_keys_of(batch: pa.RecordBatch) -> np.ndarray:
    return _hex_words(batch.column("content_hash"))[0]


class _ReadIndexFn(beam.DoFn):
    """(ordinal, index file) -> the content hash keys and band keys that pass the new documents'
    filters, keyed by partition, with refs."""

    def __init__(self, partitions: int, exact: bool, bits: tuple[int, int]) -> None:
        self._partitions = partitions
        self._exact = exact
        self._hash_bits, self._band_bits = bits

    def process(self, item: tuple[int, tuple[str, bool]], hash_filter=None, band_filter=None):
        ordinal, (path, near) = item  # near: the file's band keys match this run's settings
        near = near and band_filter is not None
        parts = self._partitions
        columns_read = (["content_hash"] if self._exact else []) + (["bands"] if near else [])
        row = 0
        for batch in _index_batches(path, columns_read):
            n = batch.num_rows
            refs = _refs(ordinal, row, n)
            row += n
            progress.add(progress.PRIOR, n)
            if self._exact:
                high, low, part = _hash_keys(batch.column("content_hash"), parts)
                hit = _passes(hash_filter, high, self._hash_bits)
                high, low, part, hit_refs = high[hit], low[hit], part[hit], refs[hit]
                for p, rows in split_rows(part, parts):
                    yield beam.pvalue.TaggedOutput(PRIOR, (p, (high[rows], low[rows], hit_refs[rows])))
            if near:
                keys, offsets = list_parts(batch.column("bands"))
                owners = np.repeat(refs, np.diff(offsets))
                keys = keys.astype(np.uint64)
                hit = _passes(band_filter, keys, self._band_bits)
                keys, owners = keys[hit], owners[hit]
                for p, rows in split_rows(int_partitions(keys, parts), parts):
                    yield p, (keys[rows], owners[rows])


def _key_hashes(batch: pa.RecordBatch, partitions: int):
    """New INFO batch -> (hash partition, (hash high words, low words, uids))."""
    high, low, part = _hash_keys(batch.column("content_hash"), partitions)
    uids = batch.column("uid").to_numpy()
    for p, rows in split_rows(part, partitions):
        yield p, (high[rows], low[rows], uids[rows])


def _key_by_uid(uids: np.ndarray, partitions: int, *columns: np.ndarray):
    for p, rows in split_rows(int_partitions(uids, partitions), partitions):
        yield p, (uids[rows], *(column[rows] for column in columns))


def _exact_matches(element, partitions: int):
    """(hash partition, {new, prior}) -> (uid partition, (uids, refs)) of new documents whose hash an
    earlier document has (the first such earlier document)."""
    _, joined = element
    if not joined[NEW] or not joined[PRIOR]:
        return
    high, low, uids = concat_blocks(joined[NEW], np.uint64, np.uint64, np.int64)
    prior_high, prior_low, refs = concat_blocks(joined[PRIOR], np.uint64, np.uint64, np.int64)
    order = np.lexsort((refs, prior_low, prior_high))  # the first ref of each hash wins
    prior_high, prior_low, refs = prior_high[order], prior_low[order], refs[order]
    pos = np.minimum(np.searchsorted(prior_high, high), len(prior_high) - 1)
    hit = (prior_high[pos] == high) & (prior_low[pos] == low)
    # Two hashes sharing their high 64 bits (2^-64) are told apart by the low ones.
    for i in np.nonzero((prior_high[pos] == high) & ~hit)[0]:
        group = np.nonzero((prior_high == high[i]) & (prior_low == low[i]))[0]
        if len(group):
            pos[i], hit[i] = group[0], True
    if hit.any():
        yield from _key_by_uid(uids[hit], partitions, refs[pos[hit]])


def _band_candidates(element, partitions: int):
    """(band partition, {new: [spill ranges of (keys, uids)], pairs: [(keys, refs)]}) -> (uid partition, (uids, refs))."""
    _, joined = element
    if not joined[NEW] or not joined[PAIRS]:
        return
    keys, uids = read_bands(joined[NEW])
    prior_keys, refs = concat_blocks(joined[PAIRS], np.uint64, np.int64)
    order = np.argsort(prior_keys, kind="stable")
    prior_keys, refs = prior_keys[order], refs[order]
    lo = np.searchsorted(prior_keys, keys, "left")
    counts = np.searchsorted(prior_keys, keys, "right") - lo
    if not counts.any():
        return
    a = np.repeat(uids, counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    b = refs[np.repeat(lo, counts) + within]
    pairs = np.unique(np.stack([a, b], axis=1), axis=0)
    yield from _key_by_uid(pairs[:, 0], partitions, pairs[:, 1])


def _not_exact(element):
    """(uid partition, {pairs, exact}) -> (index file, (uids, refs)) of candidates that no exact match
    already decided: those are neither read again nor signed."""
    _, joined = element
    if not joined[PAIRS]:
        return
    uids, refs = concat_blocks(joined[PAIRS], np.int64, np.int64)
    if joined[EXACT]:
        exact_uids, _ = concat_blocks(joined[EXACT], np.int64, np.int64)
        keep = ~np.isin(uids, exact_uids)
        uids, refs = uids[keep], refs[keep]
    ordinal = refs >> np.int64(_ROW_BITS)
    for o in np.unique(ordinal):
        rows = ordinal == o
        yield int(o), (uids[rows], refs[rows])


def _unreadable_index(path: str, exc: Exception) -> DataError:
    """An index file of an earlier output that is not Parquet any more: damaged in place (the size the
    manifest gives, which the plan checks), not an internal error."""
    return DataError(f"{path}: this index file of an earlier output cannot be read ({one_line(exc)}): run that "
                     "mix again, or leave it out of dedup.against")


def _index_batches(path: str, columns_read: list[str]) -> Iterator[pa.RecordBatch]:
    try:
        yield from open_parquet(path).iter_batches(batch_size=65_536, columns=columns_read,
                                                   use_threads=parquet_threads(path))
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable_index(path, exc) from None


def _read_rows(path: str, refs: np.ndarray, columns_read: list[str]) -> pa.Table:
    """Rows `refs` (all of one index file) of its `columns_read`, in the order of `refs`."""
    rows = (refs & np.int64((1 << _ROW_BITS) - 1)).astype(np.int64)
    try:
        table = open_parquet(path).read(columns=columns_read, use_threads=parquet_threads(path))
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable_index(path, exc) from None
    if len(rows) and int(rows.max()) >= table.num_rows:
        raise DataError(f"{path} changed during the run: it has {table.num_rows} rows, fewer than the run read; "
                        "nothing was published")
    return table.take(pa.array(rows))


def _sig8_matrix(column: pa.Array, num_perm: int) -> np.ndarray:
    flat = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not len(flat):
        return np.zeros((0, num_perm), np.uint8)
    return _fixed_width(flat, num_perm, "minhash8")


def _attach_minhash8(element, files: tuple[str, ...], num_perm: int, partitions: int):
    """(ordinal, [(uids, refs)]) -> (uid partition, (uids, refs, minhash8, earlier doc ids)).

    The earlier rows are read from their index file here: only the candidates' rows travel on,
    not the whole index."""
    ordinal, blocks = element
    uids, refs = concat_blocks(blocks, np.int64, np.int64)
    table = _read_rows(files[ordinal], refs, ["doc_id", "minhash8"])
    valid = table.column("minhash8").is_valid().to_numpy(zero_copy_only=False)
    uids, refs, table = uids[valid], refs[valid], table.filter(pa.array(valid))
    sig8 = _sig8_matrix(table.column("minhash8"), num_perm)
    kept_ids = np.asarray(table.column("doc_id").to_pylist(), dtype=object)
    for p, rows in split_rows(int_partitions(uids, partitions), partitions):
        yield p, (uids[rows], refs[rows], sig8[rows], kept_ids[rows])


def _verify(element, near: NearDedupConfig, partitions: int):
    """(uid partition, {pairs: [(uids, refs, minhash8, ids)], sigs}) -> near matches at the threshold:
    (uid partition, (uids, refs, similarity, earlier ids, band keys, 8-bit MinHash values)), the last
    two for the new document's own index row."""
    _, joined = element
    if not joined[PAIRS] or not joined[SIGS]:
        return
    uids, refs, sig8, kept_ids = concat_blocks(joined[PAIRS])
    have, sigs = concat_blocks(joined[SIGS])
    order = np.argsort(have)
    have, sigs = have[order], sigs[order]
    pos = np.minimum(np.searchsorted(have, uids), len(have) - 1)
    found = (have[pos] == uids) & ~(sigs[pos] == EMPTY_HASH).all(axis=1)
    uids, refs, sig8, kept_ids, pos = uids[found], refs[found], sig8[found], kept_ids[found], pos[found]
    sim = bbit_similarity(low_bytes(sigs[pos]), sig8)
    keep = sim >= near.effective_verify_threshold - 1e-9
    if keep.any():
        sig = sigs[pos[keep]]
        bands, rows = lsh_shape(near)
        yield from _key_by_uid(uids[keep], partitions, refs[keep], sim[keep], kept_ids[keep],
                               minhash.band_keys(sig, bands, rows), low_bytes(sig))


def _both_ends_new(element):
    """Candidates (uids, refs) -> a request to sign the new ends, in CandidateSignatures' pair shape."""
    ordinal, (uids, _) = element
    return ordinal, (uids, uids)


def _best(uids: np.ndarray, refs: np.ndarray, sims: np.ndarray) -> np.ndarray:
    """Row of each uid's best match: the most similar, then the smaller ref (sorted by uid)."""
    order = np.lexsort((refs, -sims, uids))
    if not len(order):
        return order
    return order[np.concatenate([[True], uids[order][1:] != uids[order][:-1]])]


def _lookup(sorted_uids: np.ndarray, uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position, found) of `uids` in `sorted_uids`."""
    if not len(sorted_uids):
        return np.zeros(len(uids), np.int64), np.zeros(len(uids), bool)
    pos = np.minimum(np.searchsorted(sorted_uids, uids), len(sorted_uids) - 1)
    return pos, sorted_uids[pos] == uids


class _DecideFn(beam.DoFn):
    """(uid partition, {info, exact, near}) -> new survivors, and losers keyed by their match's index file.

    An exact match beats a near one; among near ones the most similar earlier document wins, then
    the first. Documents of the `exempt` sources stay: those read from an earlier output (format
    hybridmix) are not new, so never removed as duplicates of themselves or of their own run, and
    those of an origin `dedup.against_origins` leaves out are not matched. Under
    `dedup.parent_copies: keep` a synthetic near copy of its own parent stays, as within a run.
    """

    def __init__(self, exempt: frozenset[str], parent_copies: str) -> None:
        self._exempt = exempt
        self._parent_copies = parent_copies

    def process(self, element):
        _, joined = element
        table = concat(joined[INFO], columns.INFO)
        if table.num_rows == 0:
            return
        if not joined[EXACT] and not joined[NEAR]:
            yield table_to_batch(table)
            return
        uids = table.column("uid").to_numpy()
        exempt = np.array([s in self._exempt for s in table.column("source").to_pylist()], bool)
        e_uid, e_ref = concat_blocks(joined[EXACT], np.int64, np.int64)
        first = _best(e_uid, e_ref, np.ones(len(e_uid)))
        e_uid, e_ref = e_uid[first], e_ref[first]
        e_pos, exact = _lookup(e_uid, uids)
        exact &= ~exempt
        near = np.zeros(len(uids), bool)
        if joined[NEAR]:
            n_uid, n_ref, n_sim, n_ids, n_bands, n_sig8 = (np.concatenate(c) for c in zip(*joined[NEAR]))
            best = _best(n_uid, n_ref, n_sim)
            n_uid, n_ref, n_sim, n_ids, n_bands, n_sig8 = (c[best] for c in (n_uid, n_ref, n_sim, n_ids, n_bands,
                                                                               n_sig8))
            n_pos, near = _lookup(n_uid, uids)
            near &= ~exact & ~exempt
            if self._parent_copies == "keep":
                parents = np.asarray(table.column("parent_id").to_pylist(), dtype=object)
                synthetic = np.asarray(table.column("origin").to_pylist(), dtype=object) == Origin.SYNTHETIC.value
                near &= ~((parents == n_ids[n_pos]) & synthetic)
        lost = exact | near
        if (~lost).any():
            yield table_to_batch(table.filter(pa.array(~lost)))
        for tag, mask, pos, refs, extra in (
                (EXACT, exact, e_pos, e_ref, ()),
                (NEAR, near, n_pos if near.any() else None, n_ref if near.any() else None,
                 (n_sim, n_bands, n_sig8) if near.any() else ())):
            if not mask.any():
                continue
            losers = table.filter(pa.array(mask))
            at = pos[mask]
            ordinal = refs[at] >> np.int64(_ROW_BITS)
            for o in np.unique(ordinal):
                rows = np.nonzero(ordinal == o)[0]
                yield beam.pvalue.TaggedOutput(tag, (int(o), (
                    table_to_batch(losers.take(pa.array(rows))), refs[at][rows], *(c[at][rows] for c in extra))))


class _PriorDuplicatesFn(beam.DoFn):
    """(index file, {exact: [losers], near: [losers]}) -> duplicate rows naming the earlier document
    kept, and index rows of the near ones (`index`: (near config, run id)), read from that file.

    An earlier document that was itself removed as a near duplicate (its index row names the one
    kept in its place) stands for that one: as in one run over all the data, the chain leads to the
    document published.
    """

    def __init__(self, files: tuple[str, ...], index: tuple[NearDedupConfig, str] | None) -> None:
        self._files = files
        self._index = index

    def setup(self):
        self._columns: dict[int, list[str]] = {}

    def _kept_columns(self, ordinal: int) -> list[str]:
        # Indexes written before kept_similarity existed are read without it.
        if ordinal not in self._columns:
            names = open_parquet(self._files[ordinal]).schema_arrow.names
            self._columns[ordinal] = list(_KEPT_COLUMNS) + [c for c in (_KEPT_SIMILARITY,) if c in names]
        return self._columns[ordinal]

    def process(self, element):
        ordinal, joined = element
        found = []
        for tag, label in ((EXACT, DuplicateKind.EXACT_PRIOR), (NEAR, DuplicateKind.NEAR_PRIOR)):
            blocks = list(joined[tag])
            if not blocks:
                continue
            refs = np.concatenate([b[1] for b in blocks])
            earlier = _read_rows(self._files[ordinal], refs, self._kept_columns(ordinal))
            removed = earlier.column("kept_doc_id").is_valid()
            kept_doc = pc.if_else(removed, earlier.column("kept_doc_id"), earlier.column("doc_id"))
            kept_run = pc.if_else(removed, pc.coalesce(earlier.column("kept_run_id"), earlier.column("run_id")),
                                  earlier.column("run_id"))
            found.append((tag, label, blocks, refs, earlier, kept_doc, kept_run))
        # A published document's cluster is that document and every new one removed in its place
        # (several copies delivered again); those matched through other index files are not counted.
        published = [f"{run}\x00{doc}" for *_, kept_doc, kept_run in found
                     for doc, run in zip(kept_doc.to_pylist(), kept_run.to_pylist())]
        copies = collections.Counter(published)
        at = 0
        for tag, label, blocks, refs, earlier, kept_doc, kept_run in found:
            lost = concat([b[0] for b in blocks], columns.INFO)
            if tag == NEAR:
                sims = np.concatenate([b[2] for b in blocks])
            else:
                # An exact copy of a removed near duplicate is as far from the published document as
                # that one was (1.0 where an older index does not say).
                sims = np.ones(len(refs))
                if _KEPT_SIMILARITY in earlier.column_names:
                    kept_sim = earlier.column(_KEPT_SIMILARITY).to_numpy(zero_copy_only=False)
                    sims = np.where(np.isnan(kept_sim), 1.0, kept_sim)
            sizes = np.array([1 + copies[key] for key in published[at:at + len(refs)]], np.int64)
            at += len(refs)
            by = pa.table({"uid": pa.array(np.full(len(refs), -1, np.int64)), "doc_id": kept_doc,
                           **{c: earlier.column(c) for c in ("origin", "source", "generator", "parent_id")}})
            dups = duplicate_rows(lost, by, label, sizes, sims)
            yield dups.set_column(dups.schema.get_field_index("kept_run_id"), columns.DUPLICATE.field("kept_run_id"),
                                  kept_run.combine_chunks())
            figure = Figure.EXACT_DUPLICATES if tag == EXACT else Figure.NEAR_DUPLICATES
            yield from emit_by_source(figure, lost.column("source"))
            yield from emit_by_source(Figure.PRIOR_DUPLICATES, lost.column("source"), label.value)
            progress.add(progress.PRIOR_DUPLICATES, len(refs))
            if tag == NEAR and self._index is not None:
                near, run_id = self._index
                progress.add(progress.INDEXED, len(refs))
                sketch = (np.concatenate([b[3] for b in blocks]), np.concatenate([b[4] for b in blocks]))
                yield beam.pvalue.TaggedOutput(INDEX_ROWS, sketch_rows(
                    lost, None, np.ones(len(refs), bool), near, run_id, kept_doc, kept_run, sims, sketch=sketch))


class PriorOutputs(NamedTuple):
    survivors: beam.PCollection
    duplicates: beam.PCollection
    stats: beam.PCollection
    index: beam.PCollection  # index/ rows of the new documents removed as near duplicates


class DedupPrior(beam.PTransform):
    """(new INFO batches, new band blocks) -> new documents that duplicate no earlier one, the
    duplicate rows of those that do, and their counts.

    `signatures` is CandidateSignatures (new candidates are read again and signed, as in near dedup).
    `band_keys`: the new documents' band keys, one array per batch (SketchDocuments with keys=True);
    None when near dedup is off.
    `index_run_id`: this run's id for the index rows of removed near duplicates; None: no index.
    """

    def __init__(self, prior: tuple[PriorOutput, ...], config: DedupConfig, partitions: int,
                 signatures: beam.PTransform, exempt: frozenset[str], band_keys: beam.PCollection | None,
                 index_run_id: str | None = None, new_rows: int = 0) -> None:
        super().__init__()
        self._band_keys = band_keys
        self._new_rows = new_rows  # planned input rows: sizes the key filters
        self._prior = prior
        self._config = config
        self._partitions = partitions
        self._signatures = signatures
        self._exempt = exempt  # sources never removed as duplicates of earlier outputs (`_DecideFn`)
        self._index_run_id = index_run_id

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection]) -> PriorOutputs:
        info, bands = inputs
        parts, near = self._partitions, self._config.near
        exact = self._config.exact
        use_near = near.enabled and any(p.near for p in self._prior)
        files = tuple(f for p in self._prior for f in p.files)
        listed = [(i, (f, p.near)) for i, (f, p) in enumerate((f, p) for p in self._prior for f in p.files)]
        bits = (filter_bits(self._new_rows), filter_bits(self._new_rows * lsh_shape(near)[0]))
        filters = {}
        if exact:
            filters["hash_filter"] = beam.pvalue.AsSingleton(
                info | "NewHashKeys" >> beam.Map(_hash_keys_of) | "HashFilter" >> beam.CombineGlobally(KeyFilter(bits[0])))
        if use_near:
            filters["band_filter"] = beam.pvalue.AsSingleton(
                self._band_keys | "BandFilter" >> beam.CombineGlobally(KeyFilter(bits[1])))
        index = (
            info.pipeline
            | "ListIndexFiles" >> beam.Create(listed)
            | "SpreadIndexFiles" >> beam.Reshuffle()
            | "ReadIndex" >> beam.ParDo(_ReadIndexFn(parts, exact, bits), **filters).with_outputs(PRIOR, main=PAIRS)
        )
        empty = info.pipeline | "NoMatches" >> beam.Create([])
        exact_matches = empty
        if exact:
            exact_matches = (
                {NEW: info | "KeyByHash" >> beam.FlatMap(_key_hashes, parts), PRIOR: index[PRIOR]}
                | "JoinHashes" >> beam.CoGroupByKey()
                | "ExactMatches" >> beam.FlatMap(_exact_matches, parts))
        near_matches = empty
        if use_near:
            # Candidates sharing a band key with an earlier document, less those an exact match decided,
            # by the earlier document's index file: its rows are read there, not shuffled.
            candidates = (
                {
                    PAIRS: (
                        {NEW: bands, PAIRS: index[PAIRS]}
                        | "JoinBands" >> beam.CoGroupByKey()
                        | "BandCandidates" >> beam.FlatMap(_band_candidates, parts)),
                    EXACT: exact_matches,
                }
                | "JoinExact" >> beam.CoGroupByKey()
                | "NotExact" >> beam.FlatMap(_not_exact))
            with_sig8 = (
                candidates
                | "GroupByIndexFile" >> beam.GroupByKey()
                | "AttachMinhash8" >> beam.FlatMap(_attach_minhash8, files, near.num_perm, parts))
            sigs = (candidates | "RequestSignatures" >> beam.Map(_both_ends_new), info) | "Sign" >> self._signatures
            near_matches = (
                {PAIRS: with_sig8, SIGS: sigs}
                | "JoinSignatures" >> beam.CoGroupByKey()
                | "VerifyPrior" >> beam.FlatMap(_verify, near, parts))
        decided = (
            {INFO: info | "KeyInfoByUid" >> beam.FlatMap(key_by_uid, parts), EXACT: exact_matches, NEAR: near_matches}
            | "JoinMatches" >> beam.CoGroupByKey()
            | "Decide" >> beam.ParDo(_DecideFn(self._exempt, self._config.parent_copies))
            .with_outputs(EXACT, NEAR, main=KEPT)
        )
        index_spec = None if self._index_run_id is None else (near, self._index_run_id)
        out = (
            {EXACT: decided[EXACT], NEAR: decided[NEAR]}
            | "JoinLosersByIndexFile" >> beam.CoGroupByKey()
            | "PriorDuplicates" >> beam.ParDo(_PriorDuplicatesFn(files, index_spec))
            .with_outputs(STATS, INDEX_ROWS, main=DUPLICATES)
        )
        return PriorOutputs(survivors=decided[KEPT], duplicates=out[DUPLICATES], stats=out[STATS],
                            index=out[INDEX_ROWS])
