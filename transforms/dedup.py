"""Deduplication in Beam: sketch, exact dedup, near dedup (LSH + verified edges + connected components).

Every keyed step moves whole batches tagged with a hash partition, so no worker ever holds
all documents or all edges; the shapes of the keyed data are noted at each step.
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from schemas.config import DedupConfig, NearDedupConfig, PipelineConfig
from schemas.errors import FatalError
from schemas.reasons import DuplicateKind
from schemas.records import DUPLICATE_SCHEMA
from transforms import columns, kernels, minhash
from transforms.batches import (
    concat,
    hex_partitions,
    int_partitions,
    list_parts,
    split_batch,
    split_rows,
    table_to_batch,
    uid_file,
    uid_row,
)
from transforms.dedup_core import (
    bucket_pairs,
    directed,
    exact_groups,
    large_star,
    small_star,
    star_labels,
    survivor_keys,
    unique_pairs,
)
from transforms.ingest import InputPlan
from transforms.reread import ReadRowsAgain
from transforms.text import stable_hash64

STATS = "stats"
BANDS = "bands"
DUPLICATES = "duplicates"
SINGLETONS = "singletons"
MEMBERS = "members"

def lsh_shape(config: NearDedupConfig) -> tuple[int, int]:
    """(bands, rows) from the config, or the datasketch-style optimum for its threshold."""
    if config.bands is not None and config.rows is not None:
        return config.bands, config.rows
    return minhash.optimal_bands(config.threshold, config.num_perm, config.false_positive_weight)


# ---------------------------------------------------------------------------------------
# Sketch: documents -> INFO rows (no text) and signature blocks


class _SketchFn(beam.DoFn):
    """Per document batch: INFO rows with survivor keys, and LSH band keys keyed by partition.

    The signature itself is not kept: LSH candidates are signed again later.
    """

    def __init__(self, config: DedupConfig, partitions: int) -> None:
        self._config = config
        self._partitions = partitions

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
            docs.column("quality_score").to_numpy(),
            uids,
        )
        near = self._config.near
        if near.enabled:
            word_hashes, offsets = list_parts(docs.column("word_hashes"))
            has_words = np.diff(offsets) > 0
            sig = signatures_from_words(word_hashes, offsets, near)[has_words]
            # (band partition, (band keys, uids)): every band of every document with words.
            keys = minhash.band_keys(sig, self._bands, self._rows).ravel()
            owners = np.repeat(uids[has_words], self._bands)
            for p, rows in split_rows(int_partitions(keys, self._partitions), self._partitions):
                yield beam.pvalue.TaggedOutput(BANDS, (p, (keys[rows], owners[rows])))
        yield pa.RecordBatch.from_arrays(
            [
                docs.column("uid"),
                docs.column("doc_id"),
                docs.column("origin"),
                docs.column("source"),
                docs.column("generator"),
                docs.column("generation"),
                docs.column("content_hash"),
                docs.column("tokens"),
                docs.column("chars"),
                docs.column("bytes"),
                docs.column("quality_flags"),
                docs.column("quality_score"),
                pa.array(skeys, pa.string()),
                pa.array(np.ones(n, np.int32)),
                pa.nulls(n, pa.string()),
                pa.array(np.ones(n, np.int32)),
            ],
            schema=columns.INFO,
        )


def signatures_from_words(word_hashes: np.ndarray, offsets: np.ndarray, near: NearDedupConfig) -> np.ndarray:
    a, b = minhash.permutations(near.num_perm, near.seed)
    return kernels.minhash(word_hashes, offsets, near.ngram, a, b)


class SketchOutputs(NamedTuple):
    info: beam.PCollection
    bands: beam.PCollection


class SketchDocuments(beam.PTransform):
    """Drop the text: INFO rows for dedup and mixing, and LSH band keys for near dedup."""

    def __init__(self, config: DedupConfig, partitions: int) -> None:
        super().__init__()
        self._config = config
        self._partitions = partitions

    def expand(self, docs: beam.PCollection) -> SketchOutputs:
        out = docs | "KeyAndBand" >> beam.ParDo(_SketchFn(self._config, self._partitions)).with_outputs(
            BANDS, main="info")
        return SketchOutputs(info=out["info"], bands=out[BANDS])


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
    candidates = list(joined["candidates"])
    eligible = list(joined["eligible"])
    if not candidates or not eligible:
        return
    uids = np.intersect1d(np.concatenate(candidates), np.concatenate(eligible))
    if len(uids):
        yield pa.RecordBatch.from_arrays([pa.array(uids, pa.int64())], schema=CANDIDATE)


def _sign_again(read: tuple[pa.RecordBatch, pa.Table], near: NearDedupConfig, partitions: int):
    """(documents read again, requests) -> (uid partition, (uids, signatures))."""
    docs, _ = read
    uids = docs.column("uid").to_numpy()
    sig = signatures_from_words(*list_parts(docs.column("word_hashes")), near)
    for p, rows in split_rows(int_partitions(uids, partitions), partitions):
        yield p, (uids[rows], sig[rows])


class CandidateSignatures(beam.PTransform):
    """(candidate pairs, eligible INFO) -> signatures of eligible candidates, keyed by uid partition.

    Only LSH candidates need a full signature, and usually they are a small share of the
    corpus: their rows are read again and signed, instead of carrying every signature
    through the shuffles. Candidates that are no longer in play (exact duplicates, rejected
    rows) get no signature, so pairs with them drop out at verification.
    """

    def __init__(self, config: PipelineConfig, plan: InputPlan, run_id: str) -> None:
        super().__init__()
        self._config = config
        self._plan = plan
        self._run_id = run_id

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        pairs, info = inputs
        parts = self._config.partitions
        return (
            {
                "candidates": pairs | "KeyCandidates" >> beam.FlatMap(_key_candidates, parts),
                "eligible": info | "KeyEligible" >> beam.FlatMap(_key_eligible, parts),
            }
            | "JoinCandidates" >> beam.CoGroupByKey()
            | "EligibleCandidates" >> beam.FlatMap(_eligible_candidates)
            | "ReadCandidates" >> ReadRowsAgain(self._config, self._plan, self._run_id, CANDIDATE)
            | "SignCandidates" >> beam.FlatMap(_sign_again, near=self._config.dedup.near, partitions=parts)
        )


# ---------------------------------------------------------------------------------------
# Exact dedup


def _dup_rows(
    losers: pa.Table, kept: pa.Table, kind: DuplicateKind, cluster_size: np.ndarray, similarity: np.ndarray,
) -> pa.RecordBatch:
    """Duplicate rows for `losers`, each replaced by the row of `kept` at the same position."""
    n = losers.num_rows
    return table_to_batch(pa.table(
        {
            "uid": losers.column("uid"),
            "kept_uid": kept.column("uid"),
            "doc_id": losers.column("doc_id"),
            "kept_doc_id": kept.column("doc_id"),
            "cluster": kept.column("doc_id"),
            "cluster_size": pa.array(cluster_size.astype(np.int32), pa.int32()),
            "kind": pa.array([kind.value] * n, pa.string()),
            "similarity": pa.array(similarity.astype(np.float32), pa.float32()),
            "origin": losers.column("origin"),
            "source": losers.column("source"),
            "generator": losers.column("generator"),
            "kept_origin": kept.column("origin"),
            "kept_source": kept.column("source"),
            "kept_generator": kept.column("generator"),
        },
        schema=columns.DUPLICATE,
    ))


def _source_counts(sources: pa.Array, counter: str) -> list[tuple[tuple[str, str], int]]:
    return [((s["values"], counter), s["counts"]) for s in pc.value_counts(sources).to_pylist()]


class _ExactDedupFn(beam.DoFn):
    """One content-hash partition: keep the smallest survivor key of each hash group."""

    def process(self, element: tuple[int, list[pa.RecordBatch]]):
        _, batches = element
        table = concat(batches, columns.INFO)
        if table.num_rows == 0:
            return
        groups = exact_groups(table.column("content_hash"), table.column("skey"))
        survivors = table.take(pa.array(groups.survivors))
        sizes = groups.group_size.astype(np.int32)
        survivors = survivors.set_column(
            survivors.schema.get_field_index("exact_count"), columns.INFO.field("exact_count"), pa.array(sizes))
        survivors = survivors.set_column(
            survivors.schema.get_field_index("dup_cluster_size"), columns.INFO.field("dup_cluster_size"),
            pa.array(sizes))
        cluster = pc.if_else(pa.array(sizes > 1), survivors.column("doc_id"), pa.nulls(len(sizes), pa.string()))
        survivors = survivors.set_column(
            survivors.schema.get_field_index("dup_cluster"), columns.INFO.field("dup_cluster"), cluster)
        yield table_to_batch(survivors)
        if len(groups.losers):
            losers = table.take(pa.array(groups.losers))
            kept = table.take(pa.array(groups.loser_survivor))
            size_of = dict(zip(groups.survivors.tolist(), sizes.tolist()))
            loser_sizes = np.array([size_of[s] for s in groups.loser_survivor.tolist()])
            dups = _dup_rows(losers, kept, DuplicateKind.EXACT, loser_sizes, np.ones(len(loser_sizes)))
            yield beam.pvalue.TaggedOutput(DUPLICATES, dups)
            for stat in _source_counts(losers.column("source"), "exact_duplicates"):
                yield beam.pvalue.TaggedOutput(STATS, stat)


def _key_by_content_hash(batch: pa.RecordBatch, partitions: int):
    part = hex_partitions(batch.column("content_hash").to_pylist(), partitions)
    yield from split_batch(batch, part, partitions)


def _key_by_uid(batch: pa.RecordBatch, partitions: int):
    yield from split_batch(batch, int_partitions(batch.column("uid").to_numpy(), partitions), partitions)


class DedupOutputs(NamedTuple):
    survivors: beam.PCollection
    duplicates: beam.PCollection
    stats: beam.PCollection


class DedupExact(beam.PTransform):
    """Keep one document per normalized-content hash; the others become `duplicates`."""

    def __init__(self, partitions: int) -> None:
        super().__init__()
        self._partitions = partitions

    def expand(self, info: beam.PCollection) -> DedupOutputs:
        out = (
            info
            # (hash partition, INFO batch)
            | "KeyByContentHash" >> beam.FlatMap(_key_by_content_hash, self._partitions)
            | "GroupByContentHash" >> beam.GroupByKey()
            | "KeepOnePerHash" >> beam.ParDo(_ExactDedupFn()).with_outputs(DUPLICATES, STATS, main="kept")
        )
        return DedupOutputs(survivors=out["kept"], duplicates=out[DUPLICATES], stats=out[STATS])


# ---------------------------------------------------------------------------------------
# Near dedup


def _pairs_in_buckets(element, all_pairs_limit: int, partitions: int):
    """(band partition, [(keys, uids)]) -> (partition of a, (a, b)) candidate pairs."""
    _, blocks = element
    keys = np.concatenate([b[0] for b in blocks])
    uids = np.concatenate([b[1] for b in blocks])
    a, b = bucket_pairs(keys, uids, all_pairs_limit)
    yield from _key_pairs(a, b, partitions, by="a")


def _key_pairs(a: np.ndarray, b: np.ndarray, partitions: int, by: str, *extra: np.ndarray):
    key = a if by == "a" else b
    for p, rows in split_rows(int_partitions(key, partitions), partitions):
        yield p, (a[rows], b[rows], *(x[rows] for x in extra))


class _SigIndex:
    """uid -> signature row, for the signature blocks of one partition."""

    def __init__(self, blocks: list[tuple[np.ndarray, np.ndarray]], num_perm: int) -> None:
        if blocks:
            self.uids = np.concatenate([b[0] for b in blocks])
            self.sigs = np.concatenate([b[1] for b in blocks])
        else:
            self.uids = np.zeros(0, np.int64)
            self.sigs = np.zeros((0, num_perm), np.uint32)
        order = np.argsort(self.uids)
        self.uids, self.sigs = self.uids[order], self.sigs[order]

    def find(self, uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(signatures, found) for `uids`; rows not found hold garbage and found=False."""
        if len(self.uids) == 0:
            return np.zeros((len(uids), self.sigs.shape[1]), np.uint32), np.zeros(len(uids), bool)
        pos = np.minimum(np.searchsorted(self.uids, uids), len(self.uids) - 1)
        return self.sigs[pos], self.uids[pos] == uids

    def lookup(self, uids: np.ndarray) -> np.ndarray:
        sigs, found = self.find(uids)
        if not found.all():
            raise FatalError("near dedup: a clustered document has no signature in its partition")
        return sigs


def _attach_sig_a(element, num_perm: int, partitions: int):
    """(partition, {pairs: [(a, b)], sigs: [...]}) -> (partition of b, (a, b, sig_a))."""
    _, joined = element
    pairs = list(joined["pairs"])
    if not pairs:
        return
    a = np.concatenate([x[0] for x in pairs])
    b = np.concatenate([x[1] for x in pairs])
    a, b = unique_pairs(a, b)
    sig_a, found = _SigIndex(list(joined["sigs"]), num_perm).find(a)
    yield from _key_pairs(a[found], b[found], partitions, "b", sig_a[found])


class _VerifyFn(beam.DoFn):
    """(partition, {pairs: [(a, b, sig_a)], sigs}) -> verified edges (a, b, similarity)."""

    def __init__(self, config: NearDedupConfig) -> None:
        self._config = config

    def process(self, element):
        _, joined = element
        pairs = list(joined["pairs"])
        if not pairs:
            return
        a = np.concatenate([x[0] for x in pairs])
        b = np.concatenate([x[1] for x in pairs])
        sig_a = np.concatenate([x[2] for x in pairs])
        sig_b, found = _SigIndex(list(joined["sigs"]), self._config.num_perm).find(b)
        a, b, sig_a, sig_b = a[found], b[found], sig_a[found], sig_b[found]
        sim = minhash.estimate_jaccard(sig_a, sig_b)
        cut = self._config.effective_verify_threshold
        keep = sim >= cut - 1e-9 if self._config.verify else np.ones(len(a), bool)
        yield beam.pvalue.TaggedOutput(STATS, (("_dedup", "candidate_pairs"), len(a)))
        yield beam.pvalue.TaggedOutput(STATS, (("_dedup", "verified_pairs"), int(keep.sum())))
        if keep.any():
            yield a[keep], b[keep]


def _star_step(element, step: str):
    """(node partition, [(src, dst)]) -> edge blocks after one large- or small-star step."""
    _, blocks = element
    src = np.concatenate([x[0] for x in blocks])
    dst = np.concatenate([x[1] for x in blocks])
    a, b = (large_star if step == "large" else small_star)(src, dst)
    if len(a):
        yield a, b


def _key_directed(edges: tuple[np.ndarray, np.ndarray], partitions: int):
    """Edge block -> (partition of source node, (source, target)) for both directions."""
    src, dst = directed(*edges)
    for p, rows in split_rows(int_partitions(src, partitions), partitions):
        yield p, (src[rows], dst[rows])


def _key_star_roles(edges: tuple[np.ndarray, np.ndarray], partitions: int):
    """Edge block -> rows (node, parent, is_child) keyed by the node's partition."""
    a, b = edges
    child, parent = np.maximum(a, b), np.minimum(a, b)
    node = np.concatenate([child, parent])
    par = np.concatenate([parent, parent])
    is_child = np.concatenate([np.ones(len(child), bool), np.zeros(len(parent), bool)])
    for p, rows in split_rows(int_partitions(node, partitions), partitions):
        yield p, (node[rows], par[rows], is_child[rows])


class _StarLabelsFn(beam.DoFn):
    def __init__(self, rounds: int) -> None:
        self._rounds = rounds

    def process(self, element):
        _, blocks = element
        node = np.concatenate([x[0] for x in blocks])
        parent = np.concatenate([x[1] for x in blocks])
        is_child = np.concatenate([x[2] for x in blocks])
        check = star_labels(node, parent, is_child)
        if check.violations:
            raise FatalError(
                f"near-duplicate clustering did not converge in {self._rounds} rounds "
                f"({check.violations} nodes still linked to more than one root); "
                "raise dedup.near.max_cc_rounds")
        labels_node = np.concatenate([check.children, check.roots])
        labels_root = np.concatenate([check.parents, check.roots])
        yield labels_node, labels_root


class ConnectedComponents(beam.PTransform):
    """Label every node of an undirected graph with the smallest node of its component.

    Alternating large-star and small-star rounds (Kiveris et al., "Connected Components in
    MapReduce and Beyond", SoCC 2014), each a shuffle keyed by node partition; a final
    shuffle checks that the result is a set of stars. Input: edge blocks (a, b) of int64.
    Output: label blocks (node, root), roots labelled with themselves.
    """

    def __init__(self, partitions: int, rounds: int) -> None:
        super().__init__()
        self._partitions = partitions
        self._rounds = rounds

    def expand(self, edges: beam.PCollection) -> beam.PCollection:
        for r in range(self._rounds):
            for step in ("large", "small"):
                edges = (
                    edges
                    | f"KeyForStep{step.title()}Round{r}" >> beam.FlatMap(_key_directed, self._partitions)
                    | f"GroupForStep{step.title()}Round{r}" >> beam.GroupByKey()
                    | f"Star{step.title()}Round{r}" >> beam.FlatMap(_star_step, step)
                )
        return (
            edges
            | "KeyStarRoles" >> beam.FlatMap(_key_star_roles, self._partitions)
            | "GroupStarRoles" >> beam.GroupByKey()
            | "CheckStarsAndLabel" >> beam.ParDo(_StarLabelsFn(self._rounds))
        )


def _key_labels(labels: tuple[np.ndarray, np.ndarray], partitions: int):
    node, root = labels
    for p, rows in split_rows(int_partitions(node, partitions), partitions):
        yield p, (node[rows], root[rows])


class _JoinLabelsFn(beam.DoFn):
    """(uid partition, {info, labels, sigs}) -> singletons, or members keyed by root partition."""

    def __init__(self, num_perm: int, partitions: int) -> None:
        self._num_perm = num_perm
        self._partitions = partitions

    def process(self, element):
        _, joined = element
        table = concat(joined["info"], columns.INFO)
        if table.num_rows == 0:
            return
        labels = list(joined["labels"])
        node = np.concatenate([x[0] for x in labels]) if labels else np.zeros(0, np.int64)
        root = np.concatenate([x[1] for x in labels]) if labels else np.zeros(0, np.int64)
        uids = table.column("uid").to_numpy()
        order = np.argsort(node)
        node, root = node[order], root[order]
        pos = np.searchsorted(node, uids)
        pos_c = np.minimum(pos, max(len(node) - 1, 0))
        labelled = (len(node) > 0) & (node[pos_c] == uids) if len(node) else np.zeros(len(uids), bool)
        if (~labelled).any():
            yield table_to_batch(table.filter(pa.array(~labelled)))
        if labelled.any():
            members = table.filter(pa.array(labelled))
            member_roots = root[pos_c[labelled]]
            sigs = _SigIndex(list(joined["sigs"]), self._num_perm).lookup(members.column("uid").to_numpy())
            for p, rows in split_rows(int_partitions(member_roots, self._partitions), self._partitions):
                yield beam.pvalue.TaggedOutput(
                    MEMBERS, (p, (table_to_batch(members.take(pa.array(rows))), member_roots[rows], sigs[rows])))


class _ClusterFn(beam.DoFn):
    """(root partition, [members]) -> one survivor per cluster, near-duplicate rows for the rest."""

    def process(self, element):
        _, blocks = element
        blocks = list(blocks)
        table = concat([b[0] for b in blocks], columns.INFO)
        roots = np.concatenate([b[1] for b in blocks])
        sigs = np.concatenate([b[2] for b in blocks])
        skeys = np.asarray(table.column("skey").to_pylist(), dtype=object)
        order = np.lexsort((skeys, roots))
        table = table.take(pa.array(order))
        roots, sigs = roots[order], sigs[order]
        bounds = np.concatenate([[0], np.nonzero(roots[1:] != roots[:-1])[0] + 1, [len(roots)]])
        starts, sizes = bounds[:-1], np.diff(bounds)
        exact = table.column("exact_count").to_numpy()
        cluster_size = np.add.reduceat(exact, starts).astype(np.int32)
        survivor_rows = starts
        member_survivor = np.repeat(survivor_rows, sizes)
        is_loser = np.ones(len(roots), bool)
        is_loser[survivor_rows] = False
        similarity = minhash.estimate_jaccard(sigs, sigs[member_survivor])

        survivors = table.take(pa.array(survivor_rows))
        survivors = survivors.set_column(
            survivors.schema.get_field_index("dup_cluster"), columns.INFO.field("dup_cluster"),
            survivors.column("doc_id"))
        survivors = survivors.set_column(
            survivors.schema.get_field_index("dup_cluster_size"), columns.INFO.field("dup_cluster_size"),
            pa.array(cluster_size))
        yield table_to_batch(survivors)

        for size in sizes:
            yield beam.pvalue.TaggedOutput(STATS, (("_dedup", "near_clusters"), 1))
            yield beam.pvalue.TaggedOutput(STATS, (("_dedup", f"near_cluster_docs:{_size_bucket(int(size))}"), int(size)))

        # Every member's final cluster, so exact duplicates of any member can point to it.
        members_kept = table.take(pa.array(member_survivor))
        yield beam.pvalue.TaggedOutput(
            "assignments",
            table_to_batch(pa.table({
                "uid": table.column("uid"),
                "kept_uid": members_kept.column("uid"),
                "kept_doc_id": members_kept.column("doc_id"),
                "kept_origin": members_kept.column("origin"),
                "kept_source": members_kept.column("source"),
                "kept_generator": members_kept.column("generator"),
                "cluster_size": pa.array(np.repeat(cluster_size, sizes), pa.int32()),
                "similarity": pa.array(similarity.astype(np.float32), pa.float32()),
            })),
        )
        if is_loser.any():
            losers = table.filter(pa.array(is_loser))
            kept = members_kept.filter(pa.array(is_loser))
            dups = _dup_rows(losers, kept, DuplicateKind.NEAR, np.repeat(cluster_size, sizes)[is_loser],
                             similarity[is_loser])
            yield beam.pvalue.TaggedOutput(DUPLICATES, dups)
            for stat in _source_counts(losers.column("source"), "near_duplicates"):
                yield beam.pvalue.TaggedOutput(STATS, stat)


def _size_bucket(size: int) -> str:
    for limit in (2, 3, 5, 10, 20, 50, 100, 1000):
        if size <= limit:
            return f"<={limit}"
    return ">1000"


class _ResolveChainsFn(beam.DoFn):
    """(kept-uid partition, {dups, assignments}) -> duplicate rows pointing at the final survivor."""

    def process(self, element):
        _, joined = element
        dups = concat(joined["dups"], columns.DUPLICATE)
        if dups.num_rows == 0:
            return
        assigned = list(joined["assignments"])
        if not assigned:
            yield table_to_batch(dups)
            return
        table = pa.concat_tables([pa.Table.from_batches([a]) for a in assigned]).combine_chunks()
        order = np.argsort(table.column("uid").to_numpy())
        table = table.take(pa.array(order))
        a_uid = table.column("uid").to_numpy()
        kept_uid = dups.column("kept_uid").to_numpy()
        pos = np.minimum(np.searchsorted(a_uid, kept_uid), len(a_uid) - 1)
        hit = a_uid[pos] == kept_uid
        if not hit.any():
            yield table_to_batch(dups)
            return
        take = pa.array(pos)
        cols = {name: dups.column(name) for name in columns.DUPLICATE.names}
        mask = pa.array(hit)
        for name in ("kept_uid", "kept_doc_id", "kept_origin", "kept_source", "kept_generator", "cluster_size",
                     "similarity"):
            cols[name] = pc.if_else(mask, table.column(name).take(take), cols[name])
        cols["cluster"] = cols["kept_doc_id"]
        yield table_to_batch(pa.Table.from_pydict(cols, schema=columns.DUPLICATE))


def _key_dups_by_kept(batch: pa.RecordBatch, partitions: int):
    yield from split_batch(batch, int_partitions(batch.column("kept_uid").to_numpy(), partitions), partitions)


CROSS_SEP = "\x1f"  # joins source and generator in statistic names; not allowed in either


def _key_by_cluster(batch: pa.RecordBatch, partitions: int):
    part = (stable_hash64(batch.column("cluster").to_pylist(), "cluster") % np.uint64(partitions)).astype(np.int64)
    yield from split_batch(batch, part, partitions)


def cross_origin_counts(rows: list[dict]) -> list[tuple[tuple[str, str], int]]:
    """Statistics of clusters holding both human and synthetic text, from their duplicate rows.

    Counts each such cluster once, and its synthetic members (removed or kept) per source and
    per (source, generator): synthetic text that copies human text, or is copied by it.
    """
    clusters: dict[str, list[dict]] = {}
    for row in rows:
        clusters.setdefault(row["cluster"], []).append(row)
    stats: dict[tuple[str, str], int] = {}
    for members in clusters.values():
        kept = members[0]
        people = [(m["origin"], m["source"], m["generator"]) for m in members]
        people.append((kept["kept_origin"], kept["kept_source"], kept["kept_generator"]))
        if {o for o, _, _ in people} != {"human", "synthetic"}:
            continue
        stats[("_cross", "clusters")] = stats.get(("_cross", "clusters"), 0) + 1
        for origin, source, generator in people:
            if origin == "synthetic":
                for key in (f"source{CROSS_SEP}{source}",
                            f"generator{CROSS_SEP}{source}{CROSS_SEP}{generator or '(none)'}"):
                    stats[("_cross", key)] = stats.get(("_cross", key), 0) + 1
    return sorted(stats.items())


def _cross_origin(element):
    _, batches = element
    yield from cross_origin_counts(concat(batches, columns.DUPLICATE).to_pylist())


class NearOutputs(NamedTuple):
    survivors: beam.PCollection
    duplicates: beam.PCollection
    assignments: beam.PCollection
    stats: beam.PCollection


class DedupNear(beam.PTransform):
    """Near-duplicate removal: LSH candidate pairs, verified by signature similarity, clustered.

    Input: (exact survivors as INFO batches, band blocks from SketchDocuments). `signatures`
    turns candidate pairs into signature blocks keyed by uid partition (CandidateSignatures).
    """

    def __init__(self, config: NearDedupConfig, partitions: int, signatures: beam.PTransform) -> None:
        super().__init__()
        self._config = config
        self._partitions = partitions
        self._signatures = signatures

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection]) -> NearOutputs:
        info, bands = inputs
        cfg, parts = self._config, self._partitions
        # (band partition, (band keys, uids)) -> candidate pairs (partition of a, (a, b)).
        # Exact duplicates are in the buckets too; having identical signatures, they add
        # edges but never connectivity, and only exact survivors (`info`) join clusters.
        pairs = (
            bands
            | "GroupBands" >> beam.GroupByKey()
            | "PairsInBuckets" >> beam.FlatMap(_pairs_in_buckets, cfg.all_pairs_bucket_limit, parts)
        )
        sigs = (pairs, info) | "Sign" >> self._signatures
        # Two joins with the signatures: attach sig(a) keyed by a, then compare with sig(b).
        with_a = (
            {"pairs": pairs, "sigs": sigs}
            | "JoinSigA" >> beam.CoGroupByKey()
            | "AttachSigA" >> beam.FlatMap(_attach_sig_a, cfg.num_perm, parts)
        )
        verified = (
            {"pairs": with_a, "sigs": sigs}
            | "JoinSigB" >> beam.CoGroupByKey()
            | "Verify" >> beam.ParDo(_VerifyFn(cfg)).with_outputs(STATS, main="edges")
        )
        labels = verified["edges"] | "Cluster" >> ConnectedComponents(parts, cfg.max_cc_rounds)
        joined = (
            {
                "info": info | "KeyInfoByUid" >> beam.FlatMap(_key_by_uid, parts),
                "labels": labels | "KeyLabels" >> beam.FlatMap(_key_labels, parts),
                "sigs": sigs,
            }
            | "JoinLabels" >> beam.CoGroupByKey()
            | "SplitClustered" >> beam.ParDo(_JoinLabelsFn(cfg.num_perm, parts)).with_outputs(
                MEMBERS, main=SINGLETONS)
        )
        clusters = (
            joined[MEMBERS]
            | "GroupByRoot" >> beam.GroupByKey()
            | "KeepOnePerCluster" >> beam.ParDo(_ClusterFn()).with_outputs(
                DUPLICATES, STATS, "assignments", main="kept")
        )
        survivors = (joined[SINGLETONS], clusters["kept"]) | "MergeSurvivors" >> beam.Flatten()
        stats = (verified[STATS], clusters[STATS]) | "MergeStats" >> beam.Flatten()
        return NearOutputs(survivors, clusters[DUPLICATES], clusters["assignments"], stats)


class Deduplicate(beam.PTransform):
    """Exact then near dedup; duplicates of duplicates point at the document finally kept.

    Input: (INFO batches, band blocks) from SketchDocuments. `signatures` is CandidateSignatures (or any
    transform of candidate pairs to signature blocks keyed by uid partition).
    """

    def __init__(self, config: DedupConfig, partitions: int, file_names: list[str], run_id: str,
                 signatures: beam.PTransform) -> None:
        super().__init__()
        self._config = config
        self._partitions = partitions
        self._file_names = file_names
        self._run_id = run_id
        self._signatures = signatures

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection]) -> DedupOutputs:
        info, bands = inputs
        parts = self._partitions
        stats = []
        if self._config.exact:
            exact = info | "Exact" >> DedupExact(parts)
            survivors, exact_dups = exact.survivors, exact.duplicates
            stats.append(exact.stats)
        else:
            survivors = info
            exact_dups = info.pipeline | "NoExactDuplicates" >> beam.Create([])
        if self._config.near.enabled:
            near = (survivors, bands) | "Near" >> DedupNear(self._config.near, parts, self._signatures)
            survivors = near.survivors
            stats.append(near.stats)
            resolved = (
                {
                    "dups": exact_dups | "KeyExactByKept" >> beam.FlatMap(_key_dups_by_kept, parts),
                    "assignments": near.assignments | "KeyAssignments" >> beam.FlatMap(_key_by_uid, parts),
                }
                | "JoinChains" >> beam.CoGroupByKey()
                | "ResolveChains" >> beam.ParDo(_ResolveChainsFn())
            )
            all_dups = (resolved, near.duplicates) | "MergeDuplicates" >> beam.Flatten()
        else:
            all_dups = exact_dups
        stats.append(
            all_dups
            # (cluster partition, duplicate rows): every row of a cluster meets in one group.
            | "KeyByCluster" >> beam.FlatMap(_key_by_cluster, parts)
            | "GroupByCluster" >> beam.GroupByKey()
            | "CountCrossOrigin" >> beam.FlatMap(_cross_origin)
        )
        duplicates = all_dups | "ToOutputRows" >> beam.Map(
            _to_output_rows, file_names=self._file_names, run_id=self._run_id)
        merged_stats = stats | "MergeDedupStats" >> beam.Flatten()
        return DedupOutputs(survivors=survivors, duplicates=duplicates, stats=merged_stats)


def _to_output_rows(batch: pa.RecordBatch, file_names: list[str], run_id: str) -> pa.RecordBatch:
    uids = batch.column("uid").to_numpy()
    n = batch.num_rows
    cols = {name: batch.column(name) for name in columns.DUPLICATE.names if name in DUPLICATE_SCHEMA.names}
    cols["source_file"] = pa.array([file_names[f] for f in uid_file(uids)], pa.string())
    cols["source_row"] = pa.array(uid_row(uids), pa.int64())
    cols["run_id"] = pa.array([run_id] * n, pa.string())
    return pa.RecordBatch.from_pydict({k: cols[k] for k in DUPLICATE_SCHEMA.names}, schema=DUPLICATE_SCHEMA)
