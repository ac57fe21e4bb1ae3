"""DedupPrior: new documents that duplicate a document of an earlier output (`dedup.against`).

Only the new documents are read and signed; the earlier ones come from their outputs' index/
(transforms.index). Exact: equal content hashes. Near: an LSH band key shared with an earlier
document, verified by the similarity of the new signature's low bytes to the stored ones. A new
document with a match is removed (`exact_prior`, or `near_prior` for its most similar earlier
document); the rest go on to this run's own dedup. Every keyed step moves blocks of arrays tagged
with a hash partition, as near dedup does, so no worker holds the whole index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa

from hybridmix.schemas.config import DedupConfig, NearDedupConfig, Origin
from hybridmix.schemas.errors import ConfigError, OutputError
from hybridmix.schemas.reasons import DuplicateKind
from hybridmix.schemas.stats import Figure
from hybridmix.transforms import columns, progress
from hybridmix.transforms.batches import (
    concat,
    concat_blocks,
    hex_partitions,
    int_partitions,
    key_by_uid,
    list_parts,
    split_rows,
    table_to_batch,
)
from hybridmix.transforms.duplicates import duplicate_rows
from hybridmix.transforms.index import INDEX, bbit_similarity, low_bytes
from hybridmix.transforms.minhash import EMPTY_HASH
from hybridmix.transforms.earlier import open_output, resolve
from hybridmix.transforms.sketch import lsh_shape
from hybridmix.transforms.stats import STATS, emit_by_source
from hybridmix.transforms.storage import open_parquet, parquet_threads

# The near-dedup settings an index's band keys and MinHash values depend on.
_SIGNATURE_KEYS = ("num_perm", "ngram", "seed", "bands", "rows", "scheme", "hashfunc")
_EXACT, _NEAR = 0, 1
# What matching and duplicate rows need of an earlier document, by its ref.
_ROW_COLUMNS = ("doc_id", "minhash8", "origin", "source", "generator", "parent_id", "run_id")
_ROW_BITS = 32  # a reference to an index row: (index file ordinal << 32) | row

NEW, PRIOR, ROWS, PAIRS, SIGS, INFO, MATCHES, LOSERS, KEPT, DUPLICATES = (
    "new", "prior", "rows", "pairs", "sigs", "info", "matches", "losers", "kept", "duplicates")


@dataclass(frozen=True)
class PriorOutput:
    """An earlier output named in `dedup.against`, as planned: its index files and what they allow."""

    display: str  # as the config names it
    location: str  # resolved: absolute, or a remote URL
    run_id: str
    files: tuple[str, ...]  # its index/ files
    documents: int  # rows of its index: the documents it published
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
        manifest, run_id, folder = earlier.manifest, earlier.run_id, earlier.folder
        if run_id in seen:
            raise ConfigError(f"{key}: {path} is the same run ({run_id}) as {seen[run_id]}")
        seen[run_id] = path
        files = manifest["outputs"].get(INDEX) or []
        if not manifest.get("config", {}).get("output", {}).get("index", False):
            raise ConfigError(
                f"{key}: {path} (run {run_id}) has no index/: it was written with output.index: false or "
                "by an earlier version of hybridmix; run it again to match new documents against it")
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
        planned.append(PriorOutput(
            display=path,
            location=where,
            run_id=run_id,
            files=tuple(earlier.file_path(f["path"]) for f in files),
            documents=sum(int(f["rows"]) for f in files),
            near=near,
        ))
    return tuple(planned)


def _refs(ordinal: int, first: int, n: int) -> np.ndarray:
    return (np.int64(ordinal) << np.int64(_ROW_BITS)) + np.arange(first, first + n, dtype=np.int64)


class _ReadIndexFn(beam.DoFn):
    """(ordinal, index file) -> content hashes and band keys keyed by partition, and the rows by ref."""

    def __init__(self, partitions: int, exact: bool, near: bool) -> None:
        self._partitions = partitions
        self._exact = exact
        self._near = near

    def process(self, item: tuple[int, str]):
        ordinal, path = item
        parts = self._partitions
        row = 0
        pf = open_parquet(path)
        for batch in pf.iter_batches(batch_size=65_536, use_threads=parquet_threads(path)):
            n = batch.num_rows
            refs = _refs(ordinal, row, n)
            row += n
            progress.add(progress.PRIOR, n)
            if self._exact:
                hashes = np.asarray(batch.column("content_hash").to_pylist(), dtype=object)
                for p, rows in split_rows(hex_partitions(hashes, parts), parts):
                    yield beam.pvalue.TaggedOutput(PRIOR, (p, (hashes[rows], refs[rows])))
            if self._near:
                keys, offsets = list_parts(batch.column("bands"))
                owners = np.repeat(refs, np.diff(offsets))
                keys = keys.astype(np.uint64)
                for p, rows in split_rows(int_partitions(keys, parts), parts):
                    yield beam.pvalue.TaggedOutput(PAIRS, (p, (keys[rows], owners[rows])))
            kept = pa.RecordBatch.from_arrays(
                [pa.array(refs, pa.int64())] + [batch.column(c) for c in _ROW_COLUMNS], ["ref", *_ROW_COLUMNS])
            for p, rows in split_rows(int_partitions(refs, parts), parts):
                yield p, kept.take(pa.array(rows))


def _key_hashes(batch: pa.RecordBatch, partitions: int):
    """New INFO batch -> (hash partition, (content hashes, uids))."""
    hashes = np.asarray(batch.column("content_hash").to_pylist(), dtype=object)
    uids = batch.column("uid").to_numpy()
    for p, rows in split_rows(hex_partitions(hashes, partitions), partitions):
        yield p, (hashes[rows], uids[rows])


def _key_matches(uids: np.ndarray, refs: np.ndarray, sims: np.ndarray, kind: int, partitions: int,
                 kept_ids: np.ndarray | None = None):
    """Matches keyed by the new document's partition; `kept_ids`: the earlier documents' ids (near
    matches, so `parent_copies: keep` can spare a rephrase of its own earlier parent)."""
    kinds = np.full(len(uids), kind, np.int8)
    if kept_ids is None:
        kept_ids = np.full(len(uids), "", dtype=object)
    for p, rows in split_rows(int_partitions(uids, partitions), partitions):
        yield p, (uids[rows], refs[rows], sims[rows], kinds[rows], kept_ids[rows])


def _exact_matches(element, partitions: int):
    """(hash partition, {new, prior}) -> (uid partition, (uids, refs, 1.0, exact)) for equal hashes."""
    _, joined = element
    if not joined[NEW] or not joined[PRIOR]:
        return
    hashes, uids = concat_blocks(joined[NEW], object, np.int64)
    prior_hashes, refs = concat_blocks(joined[PRIOR], object, np.int64)
    first: dict[str, int] = {}
    for h, ref in zip(prior_hashes.tolist(), refs.tolist()):
        if h not in first or ref < first[h]:
            first[h] = ref
    hit = np.array([h in first for h in hashes.tolist()], bool)
    if hit.any():
        matched = np.array([first[h] for h in hashes[hit].tolist()], np.int64)
        yield from _key_matches(uids[hit], matched, np.ones(int(hit.sum())), _EXACT, partitions)


def _band_candidates(element, partitions: int):
    """(band partition, {new: [(keys, uids)], pairs: [(keys, refs)]}) -> (ref partition, (uids, refs))."""
    _, joined = element
    if not joined[NEW] or not joined[PAIRS]:
        return
    keys, uids = concat_blocks(joined[NEW], np.uint64, np.int64)
    prior_keys, refs = concat_blocks(joined[PAIRS], np.uint64, np.int64)
    order = np.argsort(prior_keys, kind="stable")
    prior_keys, refs = prior_keys[order], refs[order]
    lo = np.searchsorted(prior_keys, keys, "left")
    hi = np.searchsorted(prior_keys, keys, "right")
    counts = hi - lo
    if not counts.any():
        return
    a = np.repeat(uids, counts)
    starts = np.repeat(lo, counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    b = refs[starts + within]
    pairs = np.unique(np.stack([a, b], axis=1), axis=0)
    a, b = pairs[:, 0], pairs[:, 1]
    for p, rows in split_rows(int_partitions(b, partitions), partitions):
        yield p, (a[rows], b[rows])


def _sorted_rows(blocks) -> pa.Table | None:
    blocks = list(blocks)
    if not blocks:
        return None
    table = pa.Table.from_batches(blocks).combine_chunks()
    return table.take(pa.array(np.argsort(table.column("ref").to_numpy(), kind="stable")))


def _find(table: pa.Table, refs: np.ndarray) -> np.ndarray:
    """Row positions of `refs` in a table sorted by ref (every ref must be there)."""
    have = table.column("ref").to_numpy()
    pos = np.minimum(np.searchsorted(have, refs), len(have) - 1)
    if not (have[pos] == refs).all():
        raise OutputError("an earlier output's index/ changed during the run; nothing was published")
    return pos


def _attach_minhash8(element, num_perm: int, partitions: int):
    """(ref partition, {pairs: [(uids, refs)], rows}) -> (uid partition, (uids, refs, minhash8, doc ids))."""
    _, joined = element
    if not joined[PAIRS]:
        return
    uids, refs = concat_blocks(joined[PAIRS], np.int64, np.int64)
    table = _sorted_rows(joined[ROWS])
    pos = _find(table, refs)
    column = table.column("minhash8").take(pa.array(pos))
    kept_ids = np.asarray(table.column("doc_id").take(pa.array(pos)).to_pylist(), dtype=object)
    if column.null_count:
        keep = column.is_valid().to_numpy(zero_copy_only=False)
        uids, refs, kept_ids, column = uids[keep], refs[keep], kept_ids[keep], column.filter(pa.array(keep))
    flat = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    data = np.frombuffer(flat.buffers()[2], np.uint8)
    offsets = np.frombuffer(flat.buffers()[1], np.int32)[flat.offset:flat.offset + len(flat) + 1]
    sig8 = np.stack([data[o:o + num_perm] for o in offsets[:-1]]) if len(flat) else np.zeros((0, num_perm), np.uint8)
    for p, rows in split_rows(int_partitions(uids, partitions), partitions):
        yield p, (uids[rows], refs[rows], sig8[rows], kept_ids[rows])


def _verify(element, near: NearDedupConfig, partitions: int):
    """(uid partition, {pairs: [(uids, refs, minhash8)], sigs}) -> near matches at the threshold."""
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
        yield from _key_matches(uids[keep], refs[keep], sim[keep], _NEAR, partitions, kept_ids[keep])


def _both_ends_new(element):
    """Candidates (uids, refs) -> a request to sign the new ends, in CandidateSignatures' pair shape."""
    p, (uids, _) = element
    return p, (uids, uids)


class _DecideFn(beam.DoFn):
    """(uid partition, {info, matches}) -> new survivors, and losers keyed by their match's ref partition.

    An exact match beats a near one; then the most similar earlier document; then the first. A
    document read from an earlier output (`carried`: sources of format hybridmix) is not new, so it
    is never removed as a duplicate of itself or of its own run. Under `dedup.parent_copies: keep`
    a synthetic near copy of its own parent stays, as within a run.
    """

    def __init__(self, carried: frozenset[str], partitions: int, parent_copies: str) -> None:
        self._carried = carried
        self._partitions = partitions
        self._parent_copies = parent_copies

    def process(self, element):
        _, joined = element
        table = concat(joined[INFO], columns.INFO)
        if table.num_rows == 0:
            return
        matches = list(joined[MATCHES])
        if not matches:
            yield table_to_batch(table)
            return
        m_uid, m_ref, m_sim, m_kind, m_ids = concat_blocks(matches, np.int64, np.int64, np.float64, np.int8, object)
        # Best first: exact before near, then higher similarity, then the smaller ref.
        order = np.lexsort((m_ref, -m_sim, m_kind, m_uid))
        first = order[np.concatenate([[True], m_uid[order][1:] != m_uid[order][:-1]])]
        m_uid, m_ref, m_sim, m_kind, m_ids = m_uid[first], m_ref[first], m_sim[first], m_kind[first], m_ids[first]
        uids = table.column("uid").to_numpy()
        pos = np.minimum(np.searchsorted(m_uid, uids), len(m_uid) - 1)
        sources = np.asarray(table.column("source").to_pylist(), dtype=object)
        carried = np.array([s in self._carried for s in sources.tolist()], bool)
        lost = (m_uid[pos] == uids) & ~carried
        if self._parent_copies == "keep":
            parents = np.asarray(table.column("parent_id").to_pylist(), dtype=object)
            synthetic = np.asarray(table.column("origin").to_pylist(), dtype=object) == Origin.SYNTHETIC.value
            own_parent = (m_kind[pos] == _NEAR) & (parents == m_ids[pos]) & synthetic
            lost &= ~own_parent
        if (~lost).any():
            yield table_to_batch(table.filter(pa.array(~lost)))
        if lost.any():
            losers = table.filter(pa.array(lost))
            at = pos[lost]
            refs, sims, kinds = m_ref[at], m_sim[at], m_kind[at]
            for p, rows in split_rows(int_partitions(refs, self._partitions), self._partitions):
                yield beam.pvalue.TaggedOutput(
                    LOSERS, (p, (table_to_batch(losers.take(pa.array(rows))), refs[rows], sims[rows], kinds[rows])))


def _prior_duplicates(element):
    """(ref partition, {losers, rows}) -> duplicate rows naming the earlier document kept."""
    _, joined = element
    blocks = list(joined[LOSERS])
    if not blocks:
        return
    losers = concat([b[0] for b in blocks], columns.INFO)
    _, refs, sims, kinds = concat_blocks(blocks)
    table = _sorted_rows(joined[ROWS])
    kept = table.take(pa.array(_find(table, refs.astype(np.int64))))
    for kind, label in ((_EXACT, DuplicateKind.EXACT_PRIOR), (_NEAR, DuplicateKind.NEAR_PRIOR)):
        rows = np.nonzero(kinds == kind)[0]
        if not len(rows):
            continue
        take = pa.array(rows)
        lost, by = losers.take(take), kept.take(take)
        by_table = pa.table({"uid": pa.array(np.full(len(rows), -1, np.int64)),
                             **{c: by.column(c) for c in ("doc_id", "origin", "source", "generator", "parent_id")}})
        # The cluster is this document and the earlier one; others of this run may join it too.
        dups = duplicate_rows(lost, by_table, label, np.full(len(rows), 2), sims[rows])
        dups = dups.set_column(dups.schema.get_field_index("kept_run_id"), columns.DUPLICATE.field("kept_run_id"),
                               by.column("run_id").combine_chunks())
        yield dups
        figure = Figure.EXACT_DUPLICATES if kind == _EXACT else Figure.NEAR_DUPLICATES
        yield from emit_by_source(figure, lost.column("source"))
        yield from emit_by_source(Figure.PRIOR_DUPLICATES, lost.column("source"), label.value)
        progress.add(progress.PRIOR_DUPLICATES, len(rows))


class PriorOutputs(NamedTuple):
    survivors: beam.PCollection
    duplicates: beam.PCollection
    stats: beam.PCollection


class DedupPrior(beam.PTransform):
    """(new INFO batches, new band blocks) -> new documents that duplicate no earlier one, the
    duplicate rows of those that do, and their counts.

    `signatures` is CandidateSignatures (new candidates are read again and signed, as in near dedup).
    """

    def __init__(self, prior: tuple[PriorOutput, ...], config: DedupConfig, partitions: int,
                 signatures: beam.PTransform, carried: frozenset[str]) -> None:
        super().__init__()
        self._prior = prior
        self._config = config
        self._partitions = partitions
        self._signatures = signatures
        self._carried = carried

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection]) -> PriorOutputs:
        info, bands = inputs
        parts, near = self._partitions, self._config.near
        exact = self._config.exact
        use_near = near.enabled and all(p.near for p in self._prior)
        files = [f for p in self._prior for f in p.files]
        index = (
            info.pipeline
            | "ListIndexFiles" >> beam.Create(list(enumerate(files)))
            | "SpreadIndexFiles" >> beam.Reshuffle()
            | "ReadIndex" >> beam.ParDo(_ReadIndexFn(parts, exact, use_near)).with_outputs(PRIOR, PAIRS, main=ROWS)
        )
        rows = index[ROWS]
        matches = []
        if exact:
            matches.append(
                {NEW: info | "KeyByHash" >> beam.FlatMap(_key_hashes, parts), PRIOR: index[PRIOR]}
                | "JoinHashes" >> beam.CoGroupByKey()
                | "ExactMatches" >> beam.FlatMap(_exact_matches, parts))
        if use_near:
            candidates = (
                {NEW: bands, PAIRS: index[PAIRS]}
                | "JoinBands" >> beam.CoGroupByKey()
                | "BandCandidates" >> beam.FlatMap(_band_candidates, parts))
            with_sig8 = (
                {PAIRS: candidates, ROWS: rows}
                | "JoinIndexRows" >> beam.CoGroupByKey()
                | "AttachMinhash8" >> beam.FlatMap(_attach_minhash8, near.num_perm, parts))
            requests = candidates | "RequestSignatures" >> beam.Map(_both_ends_new)
            sigs = (requests, info) | "Sign" >> self._signatures
            matches.append(
                {PAIRS: with_sig8, SIGS: sigs}
                | "JoinSignatures" >> beam.CoGroupByKey()
                | "VerifyPrior" >> beam.FlatMap(_verify, near, parts))
        all_matches = matches | "MergeMatches" >> beam.Flatten() if matches else (
            info.pipeline | "NoMatches" >> beam.Create([]))
        decided = (
            {INFO: info | "KeyInfoByUid" >> beam.FlatMap(key_by_uid, parts), MATCHES: all_matches}
            | "JoinMatches" >> beam.CoGroupByKey()
            | "Decide" >> beam.ParDo(_DecideFn(self._carried, parts, self._config.parent_copies))
            .with_outputs(LOSERS, main=KEPT)
        )
        out = (
            {LOSERS: decided[LOSERS], ROWS: rows}
            | "JoinKept" >> beam.CoGroupByKey()
            | "PriorDuplicates" >> beam.FlatMap(_prior_duplicates).with_outputs(STATS, main=DUPLICATES)
        )
        return PriorOutputs(survivors=decided[KEPT], duplicates=out[DUPLICATES], stats=out[STATS])
