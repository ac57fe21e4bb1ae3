"""DedupNear: LSH candidate pairs, verified by signature similarity, clustered, one survivor per cluster.

Every keyed step moves whole batches tagged with a hash partition, so no worker ever holds
all documents or all edges; the shapes of the keyed data are noted at each step.
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa

from hybridmix.schemas.config import NearDedupConfig
from hybridmix.schemas.errors import FatalError
from hybridmix.schemas.reasons import DuplicateKind
from hybridmix.schemas.stats import Figure
from hybridmix.transforms import columns, minhash, progress
from hybridmix.transforms.batches import (
    concat,
    concat_blocks,
    int_partitions,
    key_by_uid,
    split_rows,
    table_to_batch,
)
from hybridmix.transforms.components import ConnectedComponents
from hybridmix.transforms.dedup_core import bucket_pairs, unique_pairs
from hybridmix.transforms.duplicates import duplicate_rows
from hybridmix.transforms.stats import STATS, emit, emit_by_source

PAIRS = "pairs"
SIGS = "sigs"
INFO = "info"
LABELS = "labels"
EDGES = "edges"
KEPT = "kept"
DUPLICATES = "duplicates"
ASSIGNMENTS = "assignments"
SINGLETONS = "singletons"
MEMBERS = "members"

# Upper bounds of the cluster-size buckets that the manifest counts clustered documents in.
CLUSTER_SIZE_BUCKETS = (2, 3, 5, 10, 20, 50, 100, 1000)


def size_bucket(size: int) -> str:
    for limit in CLUSTER_SIZE_BUCKETS:
        if size <= limit:
            return f"<={limit}"
    return f">{CLUSTER_SIZE_BUCKETS[-1]}"


def _pairs_in_buckets(element, all_pairs_limit: int, partitions: int):
    """(band partition, [(keys, uids)]) -> (partition of a, (a, b)) candidate pairs."""
    _, blocks = element
    keys, uids = concat_blocks(blocks, np.uint64, np.int64)
    a, b = bucket_pairs(keys, uids, all_pairs_limit)
    yield from _key_pairs(a, b, partitions, by_a=True)


def _key_pairs(a: np.ndarray, b: np.ndarray, partitions: int, by_a: bool, *extra: np.ndarray):
    for p, rows in split_rows(int_partitions(a if by_a else b, partitions), partitions):
        yield p, (a[rows], b[rows], *(x[rows] for x in extra))


class _SigIndex:
    """uid -> signature row, for the signature blocks of one partition."""

    def __init__(self, blocks: list[tuple[np.ndarray, np.ndarray]], num_perm: int) -> None:
        if blocks:
            self.uids, self.sigs = concat_blocks(blocks)
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
    pairs = list(joined[PAIRS])
    if not pairs:
        return
    a, b = unique_pairs(*concat_blocks(pairs))
    sig_a, found = _SigIndex(list(joined[SIGS]), num_perm).find(a)
    yield from _key_pairs(a[found], b[found], partitions, False, sig_a[found])


class _VerifyFn(beam.DoFn):
    """(partition, {pairs: [(a, b, sig_a)], sigs}) -> verified edges (a, b)."""

    def __init__(self, config: NearDedupConfig) -> None:
        self._config = config

    def process(self, element):
        _, joined = element
        pairs = list(joined[PAIRS])
        if not pairs:
            return
        a, b, sig_a = concat_blocks(pairs)
        sig_b, found = _SigIndex(list(joined[SIGS]), self._config.num_perm).find(b)
        a, b, sig_a, sig_b = a[found], b[found], sig_a[found], sig_b[found]
        progress.add(progress.PAIRS, len(a))
        sim = minhash.estimate_jaccard(sig_a, sig_b)
        cut = self._config.effective_verify_threshold
        keep = sim >= cut - 1e-9 if self._config.verify else np.ones(len(a), bool)
        yield emit(Figure.CANDIDATE_PAIRS, len(a))
        yield emit(Figure.VERIFIED_PAIRS, int(keep.sum()))
        if keep.any():
            yield a[keep], b[keep]


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
        table = concat(joined[INFO], columns.INFO)
        progress.add(progress.NEAR, table.num_rows)
        if table.num_rows == 0:
            return
        node, root = concat_blocks(joined[LABELS], np.int64, np.int64)
        uids = table.column("uid").to_numpy()
        order = np.argsort(node)
        node, root = node[order], root[order]
        pos = np.minimum(np.searchsorted(node, uids), max(len(node) - 1, 0))
        labelled = node[pos] == uids if len(node) else np.zeros(len(uids), bool)
        if (~labelled).any():
            yield table_to_batch(table.filter(pa.array(~labelled)))
        if labelled.any():
            members = table.filter(pa.array(labelled))
            member_roots = root[pos[labelled]]
            sigs = _SigIndex(list(joined[SIGS]), self._num_perm).lookup(members.column("uid").to_numpy())
            for p, rows in split_rows(int_partitions(member_roots, self._partitions), self._partitions):
                yield beam.pvalue.TaggedOutput(
                    MEMBERS, (p, (table_to_batch(members.take(pa.array(rows))), member_roots[rows], sigs[rows])))


class _ClusterFn(beam.DoFn):
    """(root partition, [members]) -> one survivor per cluster, near-duplicate rows for the rest."""

    def process(self, element):
        _, blocks = element
        blocks = list(blocks)
        table = concat([b[0] for b in blocks], columns.INFO)
        _, roots, sigs = concat_blocks(blocks)
        skeys = np.asarray(table.column("skey").to_pylist(), dtype=object)
        order = np.lexsort((skeys, roots))
        table = table.take(pa.array(order))
        roots, sigs = roots[order], sigs[order]
        bounds = np.concatenate([[0], np.nonzero(roots[1:] != roots[:-1])[0] + 1, [len(roots)]])
        starts, sizes = bounds[:-1], np.diff(bounds)
        exact = table.column("exact_count").to_numpy()
        cluster_size = np.add.reduceat(exact, starts).astype(np.int32)
        member_survivor = np.repeat(starts, sizes)
        is_loser = np.ones(len(roots), bool)
        is_loser[starts] = False
        similarity = minhash.estimate_jaccard(sigs, sigs[member_survivor])

        survivors = table.take(pa.array(starts))
        survivors = survivors.set_column(
            survivors.schema.get_field_index("dup_cluster"), columns.INFO.field("dup_cluster"),
            survivors.column("doc_id"))
        survivors = survivors.set_column(
            survivors.schema.get_field_index("dup_cluster_size"), columns.INFO.field("dup_cluster_size"),
            pa.array(cluster_size))
        yield table_to_batch(survivors)

        yield emit(Figure.NEAR_CLUSTERS, len(sizes))
        buckets = np.array([size_bucket(int(s)) for s in sizes], dtype=object)
        for bucket in np.unique(buckets):
            yield emit(Figure.NEAR_CLUSTER_DOCUMENTS, int(sizes[buckets == bucket].sum()), detail=str(bucket))

        # Every member's final cluster, so exact duplicates of any member can point to it.
        members_kept = table.take(pa.array(member_survivor))
        yield beam.pvalue.TaggedOutput(
            ASSIGNMENTS,
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
            progress.add(progress.NEAR_DUPLICATES, int(is_loser.sum()))
            losers = table.filter(pa.array(is_loser))
            kept = members_kept.filter(pa.array(is_loser))
            yield beam.pvalue.TaggedOutput(DUPLICATES, duplicate_rows(
                losers, kept, DuplicateKind.NEAR, np.repeat(cluster_size, sizes)[is_loser], similarity[is_loser]))
            yield from emit_by_source(Figure.NEAR_DUPLICATES, losers.column("source"))


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
            {PAIRS: pairs, SIGS: sigs}
            | "JoinSigA" >> beam.CoGroupByKey()
            | "AttachSigA" >> beam.FlatMap(_attach_sig_a, cfg.num_perm, parts)
        )
        verified = (
            {PAIRS: with_a, SIGS: sigs}
            | "JoinSigB" >> beam.CoGroupByKey()
            | "Verify" >> beam.ParDo(_VerifyFn(cfg)).with_outputs(STATS, main=EDGES)
        )
        labels = verified[EDGES] | "Cluster" >> ConnectedComponents(parts, cfg.max_cc_rounds)
        joined = (
            {
                INFO: info | "KeyInfoByUid" >> beam.FlatMap(key_by_uid, parts),
                LABELS: labels | "KeyLabels" >> beam.FlatMap(_key_labels, parts),
                SIGS: sigs,
            }
            | "JoinLabels" >> beam.CoGroupByKey()
            | "SplitClustered" >> beam.ParDo(_JoinLabelsFn(cfg.num_perm, parts)).with_outputs(
                MEMBERS, main=SINGLETONS)
        )
        clusters = (
            joined[MEMBERS]
            | "GroupByRoot" >> beam.GroupByKey()
            | "KeepOnePerCluster" >> beam.ParDo(_ClusterFn()).with_outputs(
                DUPLICATES, STATS, ASSIGNMENTS, main=KEPT)
        )
        survivors = (joined[SINGLETONS], clusters[KEPT]) | "MergeSurvivors" >> beam.Flatten()
        stats = (verified[STATS], clusters[STATS]) | "MergeStats" >> beam.Flatten()
        return NearOutputs(survivors, clusters[DUPLICATES], clusters[ASSIGNMENTS], stats)
