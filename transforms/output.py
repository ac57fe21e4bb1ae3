"""Materialize selected documents from their input rows and write sharded Parquet.

Dedup and mixing work without text; the text of the selected documents is read again
here, row group by row group, so it crosses the shuffle once (into its output shard).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from schemas.config import OutputConfig, PipelineConfig
from schemas.errors import FatalError
from schemas.records import DOCUMENT_SCHEMA
from transforms import columns
from transforms.batches import concat, split_rows, uid_file, uid_row
from transforms.ingest import InputPlan, build_documents, corpus_columns, iter_row_group
from transforms.mixture import split_of
from transforms.text import stable_hash64

STATS = "stats"


def _row_group_starts(plan: InputPlan) -> list[list[int]]:
    starts = []
    for f in plan.files:
        acc, s = 0, []
        for rows in f.row_group_rows:
            s.append(acc)
            acc += rows
        starts.append(s)
    return starts


def _key_by_row_group(batch: pa.RecordBatch, starts: list[list[int]]):
    """SELECTION batch -> ((file, row group), rows of that row group)."""
    uids = batch.column("uid").to_numpy()
    files, rows = uid_file(uids), uid_row(uids)
    keys = np.array([bisect.bisect_right(starts[f], r) - 1 for f, r in zip(files, rows)], np.int64)
    combined = files * (1 << 24) + keys
    uniq, inverse = np.unique(combined, return_inverse=True)
    for i, key in enumerate(uniq):
        yield (int(key >> 24), int(key & ((1 << 24) - 1))), batch.filter(pa.array(inverse == i))


class _ReadSelectedFn(beam.DoFn):
    """((file, row group), selections) -> output records, one per copy."""

    def __init__(self, config: PipelineConfig, plan: InputPlan, run_id: str, config_digest: str) -> None:
        self._config = config
        self._plan = plan
        self._run_id = run_id
        self._digest = config_digest

    def process(self, element):
        (file_index, row_group), batches = element
        selection = concat(batches, columns.SELECTION)
        file = self._plan.files[file_index]
        corpus = self._config.corpora[file.corpus]
        wanted = sorted(set(corpus_columns(corpus).values()))
        sel_uids = selection.column("uid").to_numpy()
        order = np.argsort(sel_uids)
        selection = selection.take(pa.array(order))
        sel_uids = sel_uids[order]
        found = 0
        row = sum(file.row_group_rows[:row_group])
        for batch in iter_row_group(file, row_group, self._config.read_batch_rows, wanted):
            first = row
            row += batch.num_rows
            lo, hi = np.searchsorted(sel_uids, [file_index << 40 | first, file_index << 40 | row])
            if hi == lo:
                continue
            docs = build_documents(batch, corpus, file, first, self._config.tokenizer.kind, self._run_id).docs
            doc_uids = docs.column("uid").to_numpy()
            pos = np.searchsorted(doc_uids, sel_uids[lo:hi])
            if np.any(pos >= len(doc_uids)) or not np.array_equal(doc_uids[np.minimum(pos, len(doc_uids) - 1)], sel_uids[lo:hi]):
                raise FatalError(f"{file.display}: a selected row was not found when read again; "
                                 "did the file change during the run?")
            found += hi - lo
            yield _records(docs.take(pa.array(pos)), selection.slice(lo, hi - lo), file.display,
                           self._config, self._run_id, self._digest)
        if found != selection.num_rows:
            raise FatalError(f"{file.display}: {selection.num_rows - found} selected rows of row group "
                             f"{row_group} were not found when read again")


def _records(docs: pa.RecordBatch, sel: pa.Table, display: str, config: PipelineConfig,
             run_id: str, digest: str) -> pa.RecordBatch:
    copies = sel.column("copies").to_numpy()
    n = int(copies.sum())
    rep = np.repeat(np.arange(len(copies)), copies)
    repeat = np.concatenate([np.arange(c) for c in copies]).astype(np.int16) if n else np.zeros(0, np.int16)
    take = pa.array(rep, pa.int64())
    d = docs.take(take)
    s = sel.take(take)
    doc_ids = s.column("doc_id").to_pylist()
    ids = [doc if k == 0 else f"{doc}#r{k}" for doc, k in zip(doc_ids, repeat.tolist())]
    splits = split_of(doc_ids, config.seed, config.mixture.validation_fraction)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(ids, pa.string()),
            s.column("doc_id").combine_chunks(),
            d.column("text"),
            d.column("origin"),
            d.column("source"),
            d.column("generator"),
            d.column("generation"),
            d.column("parent_id"),
            d.column("license"),
            d.column("url"),
            pa.array([display] * n, pa.string()),
            pa.array(uid_row(d.column("uid").to_numpy()), pa.int64()),
            s.column("content_hash").combine_chunks(),
            s.column("tokens").combine_chunks(),
            s.column("chars").combine_chunks(),
            s.column("quality_flags").combine_chunks(),
            s.column("dup_cluster").combine_chunks(),
            s.column("dup_cluster_size").combine_chunks(),
            pa.array(repeat, pa.int16()),
            pa.array(splits, pa.string()),
            pa.array([run_id] * n, pa.string()),
            pa.array([digest] * n, pa.string()),
            d.column("meta"),
        ],
        schema=DOCUMENT_SCHEMA,
    )


class MaterializeDocuments(beam.PTransform):
    """Selections -> output records: read each selected row again, once per row group."""

    def __init__(self, config: PipelineConfig, plan: InputPlan, run_id: str, config_digest: str) -> None:
        super().__init__()
        self._config = config
        self._plan = plan
        self._run_id = run_id
        self._digest = config_digest

    def expand(self, selected: beam.PCollection) -> beam.PCollection:
        return (
            selected
            # ((file, row group), SELECTION rows): one read per row group that holds a selected row.
            | "KeyByRowGroup" >> beam.FlatMap(_key_by_row_group, _row_group_starts(self._plan))
            | "GroupByRowGroup" >> beam.GroupByKey()
            | "ReadSelected" >> beam.ParDo(_ReadSelectedFn(self._config, self._plan, self._run_id, self._digest))
        )


# ---------------------------------------------------------------------------------------
# Sharded Parquet writing


def order_by_id(batch: pa.RecordBatch, seed: int) -> np.ndarray:
    """Position key of output records: a seeded hash of the record id (a global shuffle)."""
    return stable_hash64(batch.column("id").to_pylist(), salt=f"order/{seed}")


def order_by_lineage(batch: pa.RecordBatch) -> np.ndarray:
    keys = [f"{f}\x00{r}" for f, r in zip(batch.column("source_file").to_pylist(),
                                         batch.column("source_row").to_pylist())]
    return stable_hash64(keys, salt="lineage")


def label_by_split(batch: pa.RecordBatch) -> np.ndarray:
    return np.asarray(batch.column("split").to_pylist(), dtype=object)


def _labels(batch: pa.RecordBatch, label: Callable | None) -> np.ndarray:
    if label is None:
        return np.full(batch.num_rows, "part", dtype=object)
    return label(batch)


def _count_labels(batch: pa.RecordBatch, label: Callable | None):
    labels = _labels(batch, label)
    for name in np.unique(labels):
        yield str(name), int(np.sum(labels == name))


def _assign_shards(batch: pa.RecordBatch, counts: dict[str, int], label: Callable | None,
                   order: Callable, rows_per_shard: int):
    labels = _labels(batch, label)
    keys = order(batch)
    for name in np.unique(labels):
        rows = np.nonzero(labels == name)[0]
        n = max(1, -(-counts[str(name)] // rows_per_shard))
        shard = (keys[rows] % np.uint64(n)).astype(np.int64)
        for s, idx in split_rows(shard, n):
            picked = rows[idx]
            sub = batch.take(pa.array(picked))
            yield (str(name), s, n), (sub, keys[picked])


def shard_file_name(label: str, shard: int, count: int) -> str:
    return f"{label}-{shard:05d}-of-{count:05d}.parquet"


def write_parquet(table: pa.Table, path: str, output: OutputConfig) -> int:
    """Write a Parquet file under a temporary name, then rename it; returns its size in bytes."""
    compression = None if output.compression == "none" else output.compression
    tmp = path + ".inprogress"
    if "://" in path:
        with FileSystems.create(tmp) as fh:
            pq.write_table(table, fh, compression=compression, row_group_size=output.row_group_rows)
        FileSystems.rename([tmp], [path])
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, tmp, compression=compression, row_group_size=output.row_group_rows)
    os.replace(tmp, path)
    return os.path.getsize(path)


class _WriteShardFn(beam.DoFn):
    def __init__(self, folder: str, schema: pa.Schema, stage_dir: str, output: OutputConfig,
                 tiebreak: list[str], count_sources: bool) -> None:
        self._folder = folder
        self._schema = schema
        self._stage_dir = stage_dir
        self._output = output
        self._tiebreak = tiebreak
        self._count_sources = count_sources

    def process(self, element):
        (label, shard, count), parts = element
        parts = list(parts)
        table = pa.Table.from_batches([p[0] for p in parts], schema=self._schema)
        keys = np.concatenate([p[1] for p in parts])
        table = table.append_column("__order", pa.array(keys, pa.uint64()))
        sort_keys = [("__order", "ascending")] + [(c, "ascending") for c in self._tiebreak]
        table = table.take(pc.sort_indices(table, sort_keys=sort_keys)).drop_columns(["__order"])
        table = table.combine_chunks()
        name = shard_file_name(label, shard, count)
        rel = f"{self._folder}/{name}"
        size = write_parquet(table, f"{self._stage_dir.rstrip('/')}/{rel}", self._output)
        if self._count_sources:
            for item in pc.value_counts(table.column("source")).to_pylist():
                yield beam.pvalue.TaggedOutput(STATS, ((item["values"], "written"), item["counts"]))
        yield {"folder": self._folder, "path": rel, "rows": table.num_rows, "size_bytes": size}


class WriteShards(beam.PTransform):
    """Write record batches as `<folder>/<label>-NNNNN-of-MMMMM.parquet` with about `rows_per_shard` rows.

    A row's shard and its position in the shard come from `order` (a seeded hash), so the
    files are the same whatever the order rows arrive in.
    """

    def __init__(self, folder: str, schema: pa.Schema, stage_dir: str, output: OutputConfig,
                 order: Callable[[pa.RecordBatch], np.ndarray], tiebreak: list[str],
                 label: Callable[[pa.RecordBatch], np.ndarray] | None = None,
                 count_sources: bool = False) -> None:
        super().__init__()
        self._folder = folder
        self._schema = schema
        self._stage_dir = stage_dir
        self._output = output
        self._order = order
        self._tiebreak = tiebreak
        self._label = label
        self._count_sources = count_sources

    def expand(self, batches: beam.PCollection) -> Any:
        counts = (
            batches
            | "CountRows" >> beam.FlatMap(_count_labels, self._label)
            | "SumRows" >> beam.CombinePerKey(sum)
            | "CollectCounts" >> beam.combiners.ToDict()
        )
        written = (
            batches
            | "AssignShards" >> beam.FlatMap(
                _assign_shards, counts=beam.pvalue.AsSingleton(counts), label=self._label,
                order=self._order, rows_per_shard=self._output.rows_per_shard)
            # ((label, shard, shard count), (rows, order keys))
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(_WriteShardFn(
                self._folder, self._schema, self._stage_dir, self._output, self._tiebreak,
                self._count_sources)).with_outputs(STATS, main="files")
        )
        return written
