"""DedupNear: LSH candidate pairs, verified by signature similarity, clustered, one survivor per cluster.

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

from hybridmix.schemas.config import NearDedupConfig
from hybridmix.schemas.errors import FatalError
from hybridmix.schemas.reasons import DuplicateKind
from hybridmix.schemas.stats import Figure
from hybridmix.transforms import columns, minhash, progress
from hybridmix.transforms.batches import (
    concat,
    concat_blocks,
    int_partitions,
    split_rows,
    table_to_batch,
)
from hybridmix.transforms.components import ConnectedComponents
from hybridmix.transforms.dedup_core import (
    bucket_pairs,
    lineage_relation,
    spare_parent_copies,
    unique_pairs,
)
from hybridmix.transforms.duplicates import SPARED, duplicate_rows, self_copy_stats
from hybridmix.transforms.index import sketch_rows
from hybridmix.transforms.sketch import (
    fill_signatures,
    read_bands,
    read_signature_file,
    read_signature_uids,
    spill_signatures,
)
from hybridmix.transforms.stats import STATS, emit, emit_by_source

EDGES = "edges"
KEPT = "kept"
DUPLICATES = "duplicates"
ASSIGNMENTS = "assignments"
SINGLETONS = "singletons"
MEMBERS = "members"
INDEX_ROWS = "index"

# Upper bounds of the cluster-size buckets that the manifest counts clustered documents in.
CLUSTER_SIZE_BUCKETS = (2, 3, 5, 10, 20, 50, 100, 1000)


def size_bucket(size: int) -> str:
    for limit in CLUSTER_SIZE_BUCKETS:
        if size <= limit:
            return f"<={limit}"
    return f">{CLUSTER_SIZE_BUCKETS[-1]}"


def _pairs_in_buckets(element, all_pairs_limit: int, partitions: int):
    """(band partition, [spill ranges of (keys, uids)]) -> (partition of b, (a, b)) candidate pairs."""
    _, ranges = element
    keys, uids = read_bands(ranges)
    a, b = bucket_pairs(keys, uids, all_pairs_limit)
    yield from _key_pairs(a, b, partitions, by_a=False)


def _key_pairs(a: np.ndarray, b: np.ndarray, partitions: int, by_a: bool, *extra: np.ndarray):
    for p, rows in split_rows(int_partitions(a if by_a else b, partitions), partitions):
        yield p, (a[rows], b[rows], *(x[rows] for x in extra))


class _UniquePairs(beam.CombineFn):
    """Candidate pairs of one b partition, each once.

    A pair of near copies shares many of the 32 bands, an exact copy and its original all of
    them, and the bands are spread over every band partition: at 200,000 real documents the
    band partitions emit 1.6M pairs, 255,000 of them distinct. Combined before the shuffle
    (Beam lifts this into the producing stage), the shuffle carries the distinct ones.
    """

    def create_accumulator(self):
        return []

    def add_input(self, acc, pairs):
        acc.append(pairs)
        return self._compact(acc)

    def merge_accumulators(self, accs):
        return self._compact([block for acc in accs for block in acc], force=True)

    def extract_output(self, acc):
        return self._compact(acc, force=True)[0] if acc else (np.zeros(0, np.int64), np.zeros(0, np.int64))

    @staticmethod
    def _compact(acc, force: bool = False):
        # Dedupe once the blocks since the last pass outnumber what it left: linear overall.
        if len(acc) > 1 and (force or sum(len(a) for a, _ in acc[1:]) > max(len(acc[0][0]), 1 << 16)):
            return [unique_pairs(*concat_blocks(acc))]
        return acc


def _keep_signed_b(element, signed: list, partitions: int):
    """(partition of b, distinct pairs (a, b)) -> (partition of a, (a, b)), the pairs whose b has a
    signature; `signed`: the (uid partition, `_spill_signed` reference) pairs, whose files list
    the signed uids first.

    Most candidate pairs of real text involve an exact duplicate, which is never signed (a
    re-delivered document shares every band with its original): dropping them here, on
    integers, keeps them from carrying a signature through the next two shuffles.
    """
    p, (a, b) = element  # DistinctPairs made them distinct: one combined block per partition
    uids = [read_signature_uids(path, n) for path, n in _refs_of(signed, p)]
    keep = np.isin(b, np.concatenate(uids)) if uids else np.zeros(len(b), bool)
    yield from _key_pairs(a[keep], b[keep], partitions, by_a=True)


# What verification compares and moves of a signature: each value's low 16 bits.
_LOW_DTYPE = np.uint16


def _spill_signed(element, spill_dir: str):
    """(uid partition, (uids, signatures)) -> (uid partition, (path, documents)): the LSH
    candidates' signatures, written once to a spill file (`spill_signatures`, written before the
    step returns: later stages may run in other processes) that verification and clustering
    read, so that only references cross the runner's data plane. Carried as elements, the
    200,000-document real corpus's candidate signatures (57 MB) were held by the local runner
    until clustering, which took those of its members from them through one more join.
    """
    p, (uids, sigs) = element
    _, _, path, documents = spill_signatures(uids, sigs, spill_dir, behind=False)
    yield p, (path, documents)


def _low_blocks(refs, num_perm: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(uids, low 16 bits) blocks of `_spill_signed` files; a file a retried bundle reported twice is read once.

    Verification moves signatures of `a` to the partitions of `b`; at half the bytes they were
    the largest data a run held (b-bit minwise hashing, Li and Koenig 2010). Two different
    values agree in their low 16 bits with chance 1/65,536, so a pair's share of equal values
    can only rise, never fall: no pair that full signatures verify is lost, and a pair one
    value short of the threshold passes when a chance agreement fills it (1 candidate pair in
    70,000-90,000 on real text).
    """
    blocks = []
    for path, n in sorted(set(refs)):
        uids, sigs = read_signature_file(path, n, num_perm)
        blocks.append((uids, (sigs & np.uint32(0xFFFF)).astype(_LOW_DTYPE)))
    return blocks


def _refs_of(signed: list, p: int) -> list[tuple[str, int]]:
    """The `_spill_signed` references of uid partition `p`, of all (partition, reference) pairs;
    a file a retried bundle reported twice is named once."""
    return sorted({ref for q, ref in signed if q == p})


class _SignedFiles:
    """uid -> full signature, from the `_spill_signed` files of each uid partition (`signed`: all
    (partition, reference) pairs, a side input), reading only the rows asked for."""

    def __init__(self, signed: list, num_perm: int, partitions: int) -> None:
        self._refs: dict[int, list] = {}
        for p, ref in sorted(set(signed)):
            self._refs.setdefault(p, []).append(ref)
        self._num_perm = num_perm
        self._partitions = partitions

    def lookup(self, uids: np.ndarray) -> np.ndarray:
        out = np.zeros((len(uids), self._num_perm), np.uint32)
        found = np.zeros(len(uids), bool)
        for p, rows in split_rows(int_partitions(uids, self._partitions), self._partitions):
            for path, n in self._refs.get(p, []):
                fill_signatures(path, n, self._num_perm, uids, rows, out, found)
        if not found.all():
            raise FatalError("near dedup: a clustered document has no signature in the run's spill files")
        return out


class _SigIndex:
    """uid -> signature row, for the signature blocks of one partition.

    The blocks are looked up where they are: the join's result already holds them, and
    concatenating (or sorting) them would copy the partition's largest data once more.
    """

    def __init__(self, blocks: list[tuple[np.ndarray, np.ndarray]], num_perm: int, dtype=np.uint32) -> None:
        self.blocks = [sigs for _, sigs in blocks]
        self.num_perm, self.dtype = num_perm, self.blocks[0].dtype if self.blocks else dtype
        uids = np.concatenate([u for u, _ in blocks]) if blocks else np.zeros(0, np.int64)
        order = np.argsort(uids, kind="stable")
        self.uids = uids[order]
        # Where each sorted uid's signature is: its block, and its row in that block.
        self.block = np.concatenate([np.full(len(u), k, np.int64) for k, (u, _) in enumerate(blocks)] or
                                    [np.zeros(0, np.int64)])[order]
        self.row = np.concatenate([np.arange(len(u), dtype=np.int64) for u, _ in blocks] or
                                  [np.zeros(0, np.int64)])[order]

    def find(self, uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(signatures, found) for `uids`; rows not found hold zeros and found=False."""
        out = np.zeros((len(uids), self.num_perm), self.dtype)
        if len(self.uids) == 0:
            return out, np.zeros(len(uids), bool)
        pos = np.minimum(np.searchsorted(self.uids, uids), len(self.uids) - 1)
        found = self.uids[pos] == uids
        at, block, row = np.nonzero(found)[0], self.block[pos[found]], self.row[pos[found]]
        by_block = np.argsort(block, kind="stable")
        cuts = np.searchsorted(block[by_block], np.arange(len(self.blocks) + 1))
        for k in range(len(self.blocks)):
            take = by_block[cuts[k]:cuts[k + 1]]
            if len(take):
                out[at[take]] = self.blocks[k][row[take]]
        return out, found

    def lookup(self, uids: np.ndarray) -> np.ndarray:
        sigs, found = self.find(uids)
        if not found.all():
            raise FatalError("near dedup: a clustered document has no signature in its partition")
        return sigs


def _attach_sig_a(element, signed: list, num_perm: int, partitions: int):
    """(partition of a, [(a, b)]) -> (partition of b, (a, b, row, low bits of a's signature));
    `signed`: the (uid partition, `_spill_signed` reference) pairs.

    Each b partition gets the signature of an `a` once, however many pairs it is in (`row`
    points at it): in a large cluster one document pairs with dozens of others, and copying its
    signature per pair made this the largest data the run held (12 GB at 1M real documents).
    """
    p, pairs = element
    pairs = list(pairs)
    if not pairs:
        return
    a, b = concat_blocks(pairs)
    index = _SigIndex(_low_blocks(_refs_of(signed, p), num_perm), num_perm, _LOW_DTYPE)
    _, found = index.find(a)
    a, b = a[found], b[found]
    for p, rows in split_rows(int_partitions(b, partitions), partitions):
        ends, row = np.unique(a[rows], return_inverse=True)
        yield p, (a[rows], b[rows], row.astype(np.int32), index.lookup(ends))


class _VerifyFn(beam.DoFn):
    """(partition of b, [(a, b, row, low bits of a's signature)]) -> verified edges (a, b), on the
    signatures' low 16 bits (`_low_blocks`); `signed`: the (uid partition, `_spill_signed` reference) pairs."""

    def __init__(self, config: NearDedupConfig) -> None:
        self._config = config

    def process(self, element, signed: list):
        p, pairs = element
        pairs = list(pairs)
        if not pairs:
            return
        index = _SigIndex(_low_blocks(_refs_of(signed, p), self._config.num_perm), self._config.num_perm,
                          _LOW_DTYPE)
        cut = self._config.effective_verify_threshold
        candidates = verified = 0
        for a, b, row, ends in pairs:
            sig_b = index.lookup(b)  # every b has a signature: KeepSignedB saw to it
            # One block at a time: the per-pair copy of a's signature lives only this long.
            sim = minhash.estimate_jaccard(ends[row], sig_b)
            keep = sim >= cut - 1e-9 if self._config.verify else np.ones(len(a), bool)
            candidates += len(a)
            verified += int(keep.sum())
            if keep.any():
                yield a[keep], b[keep]
        progress.add(progress.PAIRS, candidates)
        yield emit(Figure.CANDIDATE_PAIRS, candidates)
        yield emit(Figure.VERIFIED_PAIRS, verified)


class _Labels:
    """node -> root of every clustered document, from the label blocks of ConnectedComponents."""

    def __init__(self, blocks) -> None:
        node, root = concat_blocks(blocks, np.int64, np.int64)
        order = np.argsort(node)
        self.node, self.root = node[order], root[order]

    def find(self, uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labelled, root of each labelled uid)."""
        if len(self.node) == 0:
            return np.zeros(len(uids), bool), np.zeros(0, np.int64)
        pos = np.minimum(np.searchsorted(self.node, uids), len(self.node) - 1)
        labelled = self.node[pos] == uids
        return labelled, self.root[pos[labelled]]


class _SplitClusteredFn(beam.DoFn):
    """INFO batch of exact survivors -> its singletons, and its clustered rows keyed by root partition.

    Rows are routed by the labels, a side input: clustered documents are few (their labels a few
    MB at millions of documents), so every document is looked up where it is, and only the
    clustered ones are shuffled. Joining all of them with the labels and signatures carried every
    survivor through three more hops of the runner's data plane (88 MB on the real 200k corpus).
    """

    def __init__(self, partitions: int) -> None:
        self._partitions = partitions
        self._labels: tuple[list, _Labels] | None = None

    def _find(self, uids: np.ndarray, blocks: list) -> tuple[np.ndarray, np.ndarray]:
        if self._labels is None or self._labels[0] is not blocks:
            self._labels = (blocks, _Labels(blocks))
        return self._labels[1].find(uids)

    def _by_partition(self, roots: np.ndarray):
        return split_rows(int_partitions(roots, self._partitions), self._partitions)

    def process(self, batch: pa.RecordBatch, labels: list):
        progress.add(progress.NEAR, batch.num_rows)
        if batch.num_rows == 0:
            return
        labelled, roots = self._find(batch.column("uid").to_numpy(), labels)
        if not labelled.all():
            yield batch if not labelled.any() else batch.filter(pa.array(~labelled))
        if labelled.any():
            members = batch.filter(pa.array(labelled))
            for p, rows in self._by_partition(roots):
                yield beam.pvalue.TaggedOutput(MEMBERS, (p, (members.take(pa.array(rows)), roots[rows])))


def _members_in_order(blocks, signed: _SignedFiles) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """(INFO rows, roots, signatures) of a partition's cluster members, by root, each survivor first."""
    blocks = list(blocks)
    table = concat([b for b, _ in blocks], columns.INFO)
    roots = concat_blocks(((r,) for _, r in blocks), np.int64)[0]
    # Sorted in Arrow (stable, like lexsort; UTF-8 bytes order as code points do): the survivor
    # keys as Python strings cost more than the rest of this step.
    keys = pa.table({"root": roots, "skey": table.column("skey")})
    order = pc.sort_indices(keys, sort_keys=[("root", "ascending"), ("skey", "ascending")])
    table = table.take(order)
    return table, roots[order.to_numpy()], signed.lookup(table.column("uid").to_numpy())


class _Clusters(NamedTuple):
    """What one partition's clusters decided. Per member: `survivor` (row of its cluster's survivor),
    `removed`, `spared`, `similarity` to the survivor. Per cluster: `starts`, `sizes` (members),
    `left` (members that stay), `rows` (input rows the survivor then stands for)."""

    starts: np.ndarray
    sizes: np.ndarray
    left: np.ndarray
    rows: np.ndarray
    survivor: np.ndarray
    removed: np.ndarray
    spared: np.ndarray
    similarity: np.ndarray

    @property
    def clustered(self) -> np.ndarray:
        """Clusters that still hold more than their survivor once spared copies have left."""
        return self.left > 1


def _decide(table: pa.Table, roots: np.ndarray, sigs: np.ndarray, parent_copies: str) -> _Clusters:
    bounds = np.concatenate([[0], np.nonzero(roots[1:] != roots[:-1])[0] + 1, [len(roots)]])
    starts, sizes = bounds[:-1], np.diff(bounds)
    survivor = np.repeat(starts, sizes)
    kept = table.take(pa.array(survivor))
    is_loser = np.ones(len(roots), bool)
    is_loser[starts] = False
    relation = lineage_relation(
        table.column("doc_id"), table.column("parent_id"), table.column("origin"),
        kept.column("doc_id"), kept.column("parent_id"), kept.column("origin"))
    same_text = pc.equal(table.column("content_hash"), kept.column("content_hash")).to_numpy()
    spared = spare_parent_copies(relation, is_loser, same_text, parent_copies)
    stays = ~spared
    # Sizes count only the members that stay, so that a cluster of n input rows still leaves
    # n - 1 rows in duplicates/, and spared copies are not counted twice.
    rows = np.add.reduceat(np.where(stays, table.column("exact_count").to_numpy(), 0), starts).astype(np.int32)
    left = np.add.reduceat(stays.astype(np.int64), starts)
    similarity = minhash.estimate_jaccard(sigs, sigs[survivor])
    return _Clusters(starts, sizes, left, rows, survivor, is_loser & stays, spared, similarity)


def _kept_survivors(table: pa.Table, c: _Clusters) -> pa.Table:
    """Survivors of clusters that still hold others represent them; the rest keep their own fields."""
    survivors = table.take(pa.array(c.starts))
    cluster = pc.if_else(pa.array(c.clustered), survivors.column("doc_id"), survivors.column("dup_cluster"))
    size = np.where(c.clustered, c.rows, survivors.column("dup_cluster_size").to_numpy()).astype(np.int32)
    survivors = survivors.set_column(
        survivors.schema.get_field_index("dup_cluster"), columns.INFO.field("dup_cluster"), cluster)
    return survivors.set_column(
        survivors.schema.get_field_index("dup_cluster_size"), columns.INFO.field("dup_cluster_size"), pa.array(size))


def _assignments(table: pa.Table, c: _Clusters) -> pa.RecordBatch:
    """Every member's final cluster, so exact duplicates of any member can point to it; a spared
    copy is its own, so its exact duplicates stay with it."""
    assigned = table.take(pa.array(np.where(c.spared, np.arange(table.num_rows), c.survivor)))
    size = np.where(c.spared, table.column("exact_count").to_numpy(), np.repeat(c.rows, c.sizes))
    return table_to_batch(pa.table({
        "uid": table.column("uid"),
        "kept_uid": assigned.column("uid"),
        "kept_doc_id": assigned.column("doc_id"),
        "kept_origin": assigned.column("origin"),
        "kept_source": assigned.column("source"),
        "kept_generator": assigned.column("generator"),
        "kept_parent_id": assigned.column("parent_id"),
        "cluster_size": pa.array(size, pa.int32()),
        "similarity": pa.array(np.where(c.spared, 1.0, c.similarity).astype(np.float32), pa.float32()),
    }))


def _cluster_stats(c: _Clusters):
    clustered = c.left[c.clustered]
    yield emit(Figure.NEAR_CLUSTERS, len(clustered))
    buckets = np.array([size_bucket(int(s)) for s in clustered], dtype=object)
    for bucket in np.unique(buckets):
        yield emit(Figure.NEAR_CLUSTER_DOCUMENTS, int(clustered[buckets == bucket].sum()), detail=str(bucket))


class _ClusterFn(beam.DoFn):
    """(root partition, [members]) -> one survivor per cluster, near-duplicate rows for the rest; the
    members' signatures come from the `_spill_signed` files (`signed`: (uid partition, reference) pairs).

    Under `parent_copies: keep`, a member whose survivor is its own parent is spared: it leaves the
    cluster and goes on as a survivor with its own cluster fields, standing for its exact copies.
    """

    def __init__(self, num_perm: int, partitions: int, parent_copies: str = "drop",
                 index: tuple[NearDedupConfig, str] | None = None) -> None:
        self._num_perm = num_perm
        self._partitions = partitions
        self._parent_copies = parent_copies
        self._index = index

    def setup(self) -> None:
        self._clusters = Metrics.counter(DedupNear.__name__, "cluster_documents")
        self._duplicates = Metrics.counter(DedupNear.__name__, "near_duplicates")

    def process(self, element, signed: list):
        _, members = element
        table, roots, sigs = _members_in_order(members, _SignedFiles(signed, self._num_perm, self._partitions))
        c = _decide(table, roots, sigs, self._parent_copies)
        self._clusters.inc(table.num_rows)
        self._duplicates.inc(int(c.removed.sum()))
        yield table_to_batch(_kept_survivors(table, c))
        if c.spared.any():
            copies = table.filter(pa.array(c.spared))
            yield table_to_batch(copies)
            for item in self_copy_stats(copies.column("source").to_pylist(), copies.column("generator").to_pylist(),
                                        [SPARED] * copies.num_rows):
                yield beam.pvalue.TaggedOutput(STATS, item)
        yield from _cluster_stats(c)
        yield beam.pvalue.TaggedOutput(ASSIGNMENTS, _assignments(table, c))
        if c.removed.any():
            progress.add(progress.NEAR_DUPLICATES, int(c.removed.sum()))
            mask = pa.array(c.removed)
            losers = table.filter(mask)
            kept = table.take(pa.array(c.survivor)).filter(mask)
            yield beam.pvalue.TaggedOutput(DUPLICATES, duplicate_rows(
                losers, kept, DuplicateKind.NEAR, np.repeat(c.rows, c.sizes)[c.removed], c.similarity[c.removed]))
            yield from emit_by_source(Figure.NEAR_DUPLICATES, losers.column("source"))
            if self._index is not None:
                # Indexed too: a later run then finds what one run over all the data would find
                # through this document, a near duplicate of its cluster's survivor.
                near, run_id = self._index
                progress.add(progress.INDEXED, losers.num_rows)
                yield beam.pvalue.TaggedOutput(INDEX_ROWS, sketch_rows(
                    losers, sigs[c.removed], np.ones(losers.num_rows, bool), near, run_id, kept.column("doc_id"),
                    kept_similarity=c.similarity[c.removed]))


class NearOutputs(NamedTuple):
    survivors: beam.PCollection
    duplicates: beam.PCollection
    assignments: beam.PCollection
    stats: beam.PCollection
    index: beam.PCollection  # index/ rows of the removed documents (with `index`)


class DedupNear(beam.PTransform):
    """Near-duplicate removal: LSH candidate pairs, verified by signature similarity, clustered.

    Input: (exact survivors as INFO batches, band blocks from SketchDocuments). `signatures`
    turns candidate pairs into signature blocks keyed by uid partition (CandidateSignatures).
    `parent_copies` is `dedup.parent_copies`: whether a copy of its own cluster survivor stays.
    `spill_dir` is a folder every worker can read, for the signatures' low bits (`_low_bits`).
    """

    def __init__(self, config: NearDedupConfig, partitions: int, signatures: beam.PTransform, spill_dir: str,
                 parent_copies: str = "drop", index_run_id: str | None = None) -> None:
        super().__init__()
        self._config = config
        self._partitions = partitions
        self._signatures = signatures
        self._spill_dir = spill_dir
        self._parent_copies = parent_copies
        # The run id its removed documents' index/ rows carry; None: no index rows.
        self._index_run_id = index_run_id

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection]) -> NearOutputs:
        info, bands = inputs
        cfg, parts = self._config, self._partitions
        # (band partition, spill range of band keys and uids) -> candidate pairs (partition of b, (a, b)).
        # Exact duplicates are in the buckets too; having identical signatures, they add
        # edges but never connectivity, and only exact survivors (`info`) join clusters.
        pairs = (
            bands
            | "GroupBands" >> beam.GroupByKey()
            | "PairsInBuckets" >> beam.FlatMap(_pairs_in_buckets, cfg.all_pairs_bucket_limit, parts)
            | "DistinctPairs" >> beam.CombinePerKey(_UniquePairs())
        )
        sigs = (pairs, info) | "Sign" >> self._signatures
        # The signatures go to files, and the steps that read them get their references as a side
        # input (a few per partition): a join with them put one more pass of the runner's data plane
        # (the local runner materializes what a join flattens) in front of each.
        signed = sigs | "SpillSigned" >> beam.FlatMap(_spill_signed, f"{self._spill_dir}/signed")
        # Pairs whose b has no signature drop out on integers, before any signature moves.
        signed_pairs = pairs | "KeepSignedB" >> beam.FlatMap(_keep_signed_b, beam.pvalue.AsList(signed), parts)
        # Attach sig(a) in a's partition, then compare with sig(b) in b's.
        with_a = (
            signed_pairs
            | "GroupByA" >> beam.GroupByKey()
            | "AttachSigA" >> beam.FlatMap(_attach_sig_a, beam.pvalue.AsList(signed), cfg.num_perm, parts)
        )
        verified = (
            with_a
            | "GroupByB" >> beam.GroupByKey()
            | "Verify" >> beam.ParDo(_VerifyFn(cfg), beam.pvalue.AsList(signed)).with_outputs(STATS, main=EDGES)
        )
        labels = beam.pvalue.AsList(verified[EDGES] | "Cluster" >> ConnectedComponents(parts, cfg.max_cc_rounds))
        split = info | "SplitClustered" >> beam.ParDo(_SplitClusteredFn(parts), labels).with_outputs(
            MEMBERS, main=SINGLETONS)
        clusters = (
            split[MEMBERS]
            | "GroupByRoot" >> beam.GroupByKey()
            | "KeepOnePerCluster" >> beam.ParDo(_ClusterFn(
                cfg.num_perm, parts, self._parent_copies,
                None if self._index_run_id is None else (cfg, self._index_run_id)), beam.pvalue.AsList(signed))
            .with_outputs(DUPLICATES, STATS, ASSIGNMENTS, INDEX_ROWS, main=KEPT)
        )
        survivors = (split[SINGLETONS], clusters[KEPT]) | "MergeSurvivors" >> beam.Flatten()
        stats = (verified[STATS], clusters[STATS]) | "MergeStats" >> beam.Flatten()
        return NearOutputs(survivors, clusters[DUPLICATES], clusters[ASSIGNMENTS], stats, clusters[INDEX_ROWS])
