"""Duplicate records: who was removed in favour of whom, chains resolved to the final survivor,
clusters that mix human and synthetic text, and the rows written to `duplicates/`."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridmix.schemas.reasons import DuplicateKind, DuplicateLineage
from hybridmix.schemas.records import DUPLICATE_SCHEMA
from hybridmix.schemas.stats import Figure, stat
from hybridmix.transforms import columns
from hybridmix.transforms.batches import (
    concat,
    int_partitions,
    split_batch,
    table_to_batch,
)
from hybridmix.transforms.dedup_core import lineage_relation
from hybridmix.transforms.inputs import Lineage
from hybridmix.transforms.text import stable_hash64

DUPS = "dups"
ASSIGNMENTS = "assignments"
# What a near cluster's assignment says about its survivor, copied onto exact duplicates of members.
_KEPT_FIELDS = ("kept_uid", "kept_doc_id", "kept_origin", "kept_source", "kept_generator", "kept_parent_id",
                "cluster_size", "similarity")
# What became of a self-copy and its parent (Figure.SELF_COPY_FATES details).
SPARED = "spared"
PARENT_REMOVED = "parent_removed"


def duplicate_rows(losers: pa.Table, kept: pa.Table, kind: DuplicateKind, cluster_size: np.ndarray,
                   similarity: np.ndarray) -> pa.RecordBatch:
    """Duplicate rows for `losers`, each replaced by the row of `kept` at the same position."""
    n = losers.num_rows
    relation = lineage_relation(losers.column("doc_id"), losers.column("parent_id"), losers.column("origin"),
                                kept.column("doc_id"), kept.column("parent_id"), kept.column("origin"))
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
            "lineage": relation,
            "parent_id": losers.column("parent_id"),
            "kept_parent_id": kept.column("parent_id"),
            "kept_run_id": pa.nulls(n, pa.string()),
        },
        schema=columns.DUPLICATE,
    ))


class ResolveChainsFn(beam.DoFn):
    """(kept-uid partition, {dups, assignments}) -> duplicate rows pointing at the final survivor.

    An exact duplicate points at its group's survivor; when near dedup later clustered that
    survivor under another document, the row is repointed to the cluster's survivor, and its
    lineage is decided again against that document. A survivor that `dedup.parent_copies: keep`
    spared is assigned to itself, so its exact duplicates keep pointing at it.
    """

    def process(self, element):
        _, joined = element
        dups = concat(joined[DUPS], columns.DUPLICATE)
        if dups.num_rows == 0:
            return
        assigned = list(joined[ASSIGNMENTS])
        if not assigned:
            yield table_to_batch(dups)
            return
        table = pa.concat_tables([pa.Table.from_batches([a]) for a in assigned]).combine_chunks()
        table = table.take(pa.array(np.argsort(table.column("uid").to_numpy())))
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
        for name in _KEPT_FIELDS:
            cols[name] = pc.if_else(mask, table.column(name).take(take), cols[name])
        cols["cluster"] = cols["kept_doc_id"]
        cols["lineage"] = lineage_relation(cols["doc_id"], cols["parent_id"], cols["origin"], cols["kept_doc_id"],
                                           cols["kept_parent_id"], cols["kept_origin"])
        yield table_to_batch(pa.Table.from_pydict(cols, schema=columns.DUPLICATE))


def key_by_kept(batch: pa.RecordBatch, partitions: int):
    yield from split_batch(batch, int_partitions(batch.column("kept_uid").to_numpy(), partitions), partitions)


def key_by_cluster(batch: pa.RecordBatch, partitions: int):
    part = (stable_hash64(batch.column("cluster"), "cluster") % np.uint64(partitions)).astype(np.int64)
    yield from split_batch(batch, part, partitions)


_CROSS_ORIGIN_COLUMNS = ("cluster", "origin", "source", "generator", "kept_origin", "kept_source", "kept_generator")


def cross_origin_counts(rows: list[dict]) -> list[tuple[tuple[str, str, str], int]]:
    """Statistics of clusters holding both human and synthetic text, from their duplicate rows.

    Counts each such cluster once, and its synthetic members (removed or kept) per source and
    per (source, generator): synthetic text that copies human text, or is copied by it.
    """
    clusters: dict[str, list[dict]] = {}
    for row in rows:
        clusters.setdefault(row["cluster"], []).append(row)
    counts: dict[tuple[str, str], int] = {}
    mixed = 0
    for members in clusters.values():
        kept = members[0]
        people = [(m["origin"], m["source"], m["generator"]) for m in members]
        people.append((kept["kept_origin"], kept["kept_source"], kept["kept_generator"]))
        if {o for o, _, _ in people} != {"human", "synthetic"}:
            continue
        mixed += 1
        for origin, source, generator in people:
            if origin == "synthetic":
                for key in ((source, ""), (source, generator or "(none)")):
                    counts[key] = counts.get(key, 0) + 1
    out = [stat(Figure.CROSS_ORIGIN_SYNTHETIC, n, source, detail) for (source, detail), n in sorted(counts.items())]
    if mixed:
        out.append(stat(Figure.CROSS_ORIGIN_CLUSTERS, mixed))
    return out


def self_copy_stats(sources: list[str], generators: list[str | None],
                    fates: list[str]) -> list[tuple[tuple[str, str, str], int]]:
    """Self-copies (synthetic documents duplicating their own parent) per source, by generator and by fate."""
    by_generator: dict[tuple[str, str], int] = {}
    by_fate: dict[tuple[str, str], int] = {}
    for source, generator, fate in zip(sources, generators, fates):
        key = (source, generator or "(none)")
        by_generator[key] = by_generator.get(key, 0) + 1
        by_fate[(source, fate)] = by_fate.get((source, fate), 0) + 1
    return ([stat(Figure.SELF_COPIES, n, s, g) for (s, g), n in sorted(by_generator.items())]
            + [stat(Figure.SELF_COPY_FATES, n, s, f) for (s, f), n in sorted(by_fate.items())])


def self_copies(batch: pa.RecordBatch) -> list[tuple[tuple[str, str, str], int]]:
    """Self-copy statistics of final duplicate rows: a `child` row's removed document is the copy, a
    `parent` row's kept document is."""
    sources, generators, fates = [], [], []
    for row in batch.filter(pc.is_valid(batch.column("lineage"))).to_pylist():
        if row["lineage"] == DuplicateLineage.CHILD:
            sources.append(row["source"])
            generators.append(row["generator"])
            fates.append(f"removed_{row['kind']}")
        elif row["lineage"] == DuplicateLineage.PARENT:
            sources.append(row["kept_source"])
            generators.append(row["kept_generator"])
            fates.append(PARENT_REMOVED)
    return self_copy_stats(sources, generators, fates)


def cross_origin(element):
    """(cluster partition, duplicate rows) -> cross-origin statistics of the clusters in it."""
    _, batches = element
    table = concat(batches, columns.DUPLICATE).select(list(_CROSS_ORIGIN_COLUMNS))
    # Only the rows of clusters that may mix origins become Python objects (every row took 0.4 s of
    # the GIL at 200k documents, nearly all in clusters of one origin); they are then counted as before.
    origins = [table.column(c) for c in ("origin", "kept_origin")]
    human = pc.or_kleene(*[pc.equal(o, "human") for o in origins])
    synthetic = pc.or_kleene(*[pc.equal(o, "synthetic") for o in origins])
    seen = pa.table({"cluster": table.column("cluster"), "h": human, "s": synthetic}).group_by("cluster").aggregate(
        [("h", "any"), ("s", "any")])
    mixed = seen.filter(pc.and_kleene(seen.column("h_any"), seen.column("s_any"))).column("cluster")
    yield from cross_origin_counts(table.filter(pc.is_in(table.column("cluster"), value_set=mixed)).to_pylist())


def to_output_rows(batch: pa.RecordBatch, lineage: Lineage) -> pa.RecordBatch:
    """Internal duplicate rows -> `duplicates/` rows with their input file and row."""
    uids = batch.column("uid").to_numpy()
    cols = {name: batch.column(name) for name in columns.DUPLICATE.names if name in DUPLICATE_SCHEMA.names}
    cols["source_file"] = lineage.source_files(uids)
    cols["source_row"] = lineage.source_rows(uids)
    cols["run_id"] = lineage.run_ids(batch.num_rows)
    cols["kept_run_id"] = pc.fill_null(batch.column("kept_run_id"), lineage.run_id)
    return pa.RecordBatch.from_pydict({k: cols[k] for k in DUPLICATE_SCHEMA.names}, schema=DUPLICATE_SCHEMA)
