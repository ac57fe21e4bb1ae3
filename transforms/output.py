"""Materialize selected documents from their input rows and write sharded Parquet.

Dedup and mixing work without text; the text of the selected documents is read again
(`transforms.reread`), so it crosses a shuffle once: into its output shard.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from schemas.config import OutputConfig, PipelineConfig
from schemas.records import DOCUMENT_SCHEMA
from transforms import columns
from transforms.batches import split_rows, uid_file, uid_row
from transforms.ingest import InputPlan
from transforms.reread import ReadRowsAgain
from transforms.mixture import split_of
from transforms.text import stable_hash64

STATS = "stats"
SPILL_FOLDER = "_spill"


def _records(read: tuple[pa.RecordBatch, pa.Table], file_names: list[str], config: PipelineConfig,
             run_id: str, digest: str) -> pa.RecordBatch:
    """Output rows of selected documents: one per copy, ids `<doc_id>#r<k>` for repeats."""
    docs, sel = read
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
            pa.array([file_names[f] for f in uid_file(d.column("uid").to_numpy())], pa.string()),
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
    """Selections -> output records: each selected row is read again, once per row group."""

    def __init__(self, config: PipelineConfig, plan: InputPlan, run_id: str, config_digest: str) -> None:
        super().__init__()
        self._config = config
        self._plan = plan
        self._run_id = run_id
        self._digest = config_digest

    def expand(self, selected: beam.PCollection) -> beam.PCollection:
        file_names = [f.display for f in self._plan.files]
        return (
            selected
            | "ReadSelected" >> ReadRowsAgain(self._config, self._plan, self._run_id, columns.SELECTION,
                                              measure=False)
            | "ToRecords" >> beam.Map(_records, file_names=file_names, config=self._config,
                                           run_id=self._run_id, digest=self._digest)
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


def shard_count(rows: int, text_bytes: int, output: OutputConfig) -> int:
    """Shards for a split: about `rows_per_shard` rows, or `bytes_per_shard` bytes of text."""
    if output.bytes_per_shard is not None:
        return max(1, -(-text_bytes // output.bytes_per_shard))
    return max(1, -(-rows // output.rows_per_shard))


def shards_by_split(sizes: dict[str, dict[str, int]], output: OutputConfig) -> dict[str, int]:
    return {split: shard_count(size["rows"], size["bytes"], output) for split, size in sizes.items()}


def _shards_by_rows(counts: dict[str, int], output: OutputConfig) -> dict[str, int]:
    return {label: max(1, -(-rows // output.rows_per_shard)) for label, rows in counts.items()}


def _spill_fragments(batch: pa.RecordBatch, shards: dict[str, int], label: Callable | None,
                     order: Callable, spill_dir: str, gate=None):
    """Write a batch's rows as one fragment per target shard; emit only the fragment's path.

    Fragment names derive from the rows they hold, so a retried bundle rewrites the same
    files. Each row carries its order key in `__order` for the merge.
    """
    labels = _labels(batch, label)
    keys = order(batch)
    for name in np.unique(labels):
        rows = np.nonzero(labels == name)[0]
        n = shards[str(name)]
        shard = (keys[rows] % np.uint64(n)).astype(np.int64)
        for s, idx in split_rows(shard, n):
            picked = rows[idx]
            fragment = batch.take(pa.array(picked))
            fragment = pa.Table.from_batches([fragment]).append_column(
                ORDER_COLUMN, pa.array(keys[picked], pa.uint64()))
            tag = f"{int(keys[picked].min()):016x}-{int(keys[picked].max()):016x}-{len(picked)}"
            path = f"{spill_dir}/{name}/{s:05d}/{tag}.parquet"
            _write_fragment(fragment, path)
            yield (str(name), s, n), (path, len(picked))


ORDER_COLUMN = "__order"


def _write_fragment(table: pa.Table, path: str) -> None:
    # Fragments live minutes and are read once: no compression beats a smaller file.
    tmp = path + ".inprogress"
    if "://" in path:
        with FileSystems.create(tmp) as fh:
            pq.write_table(table, fh, compression="none")
        FileSystems.rename([tmp], [path])
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, tmp, compression="none")
    os.replace(tmp, path)


def _read_fragment(path: str) -> pa.Table:
    if "://" in path:
        with FileSystems.open(path) as fh:
            return pq.read_table(fh)
    return pq.read_table(path)


def _delete_fragments(paths: list[str]) -> None:
    if paths and "://" in paths[0]:
        FileSystems.delete(paths)
        return
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass  # a retried merge already removed it


def shard_file_name(label: str, shard: int, count: int) -> str:
    return f"{label}-{shard:05d}-of-{count:05d}.parquet"


def write_parquet(row_groups: Iterable[pa.Table], schema: pa.Schema, path: str, output: OutputConfig) -> int:
    """Write row groups to a Parquet file under a temporary name, then rename it; returns its size.

    Row groups arrive one at a time, so a shard is never held twice in memory.
    """
    compression = None if output.compression == "none" else output.compression
    tmp = path + ".inprogress"
    remote = "://" in path
    if not remote:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    sink = FileSystems.create(tmp) if remote else tmp
    try:
        with pq.ParquetWriter(sink, schema, compression=compression) as writer:
            for table in row_groups:
                writer.write_table(table, row_group_size=output.row_group_rows)
    finally:
        if remote:
            sink.close()
    if remote:
        FileSystems.rename([tmp], [path])
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    os.replace(tmp, path)
    return os.path.getsize(path)


def sorted_row_groups(parts: list[pa.RecordBatch], keys: list[np.ndarray], tiebreak: list[str],
                      rows_per_group: int) -> Iterator[pa.Table]:
    """The rows of `parts` ordered by (key, tiebreak columns), `rows_per_group` rows at a time.

    Only the sort keys are gathered up front; each row group is taken from the parts it
    draws on, so the rows are copied once.
    """
    part_of = np.concatenate([np.full(len(k), i, np.int64) for i, k in enumerate(keys)])
    row_of = np.concatenate([np.arange(len(k), dtype=np.int64) for k in keys])
    index = {"__order": pa.array(np.concatenate(keys), pa.uint64())}
    for column in tiebreak:
        index[column] = pa.chunked_array([p.column(column) for p in parts], type=parts[0].schema.field(column).type)
    order = pc.sort_indices(pa.table(index), sort_keys=[(c, "ascending") for c in index]).to_numpy()
    part_of, row_of = part_of[order], row_of[order]
    for start in range(0, len(order), rows_per_group):
        chunk_parts, chunk_rows = part_of[start:start + rows_per_group], row_of[start:start + rows_per_group]
        pieces, positions = [], []
        for p in np.unique(chunk_parts):
            sel = np.nonzero(chunk_parts == p)[0]
            pieces.append(parts[p].take(pa.array(chunk_rows[sel])))
            positions.append(sel)
        chunk = pa.Table.from_batches(pieces).combine_chunks()
        yield chunk.take(pa.array(np.argsort(np.concatenate(positions), kind="stable")))


class _MergeShardFn(beam.DoFn):
    """((label, shard, count), fragment paths) -> one sorted shard file, written in row groups."""

    def __init__(self, folder: str, schema: pa.Schema, stage_dir: str, output: OutputConfig,
                 tiebreak: list[str], count_sources: bool) -> None:
        self._folder = folder
        self._schema = schema
        self._stage_dir = stage_dir
        self._output = output
        self._tiebreak = tiebreak
        self._count_sources = count_sources

    def process(self, element):
        (label, shard, count), fragments = element
        paths = sorted({path for path, _ in fragments})
        tables = [_read_fragment(path) for path in paths]
        batches = [b for t in tables for b in t.drop_columns([ORDER_COLUMN]).cast(self._schema).to_batches()]
        keys = [k for t in tables for k in (c.to_numpy() for c in t.column(ORDER_COLUMN).chunks)]
        rows = sum(b.num_rows for b in batches)
        rel = f"{self._folder}/{shard_file_name(label, shard, count)}"
        groups = sorted_row_groups(batches, keys, self._tiebreak, self._output.row_group_rows)
        size = write_parquet(groups, self._schema, f"{self._stage_dir.rstrip('/')}/{rel}", self._output)
        _delete_fragments(paths)
        if self._count_sources:
            written: dict[str, int] = {}
            for b in batches:
                for item in pc.value_counts(b.column("source")).to_pylist():
                    written[item["values"]] = written.get(item["values"], 0) + item["counts"]
            for source, n in sorted(written.items()):
                yield beam.pvalue.TaggedOutput(STATS, ((source, "written"), n))
        yield {"folder": self._folder, "path": rel, "rows": rows, "size_bytes": size}


class WriteShards(beam.PTransform):
    """Write record batches as `<folder>/<label>-NNNNN-of-MMMMM.parquet` with about `rows_per_shard` rows.

    A row's shard and its position in the shard come from `order` (a seeded hash), so the
    files are the same whatever the order rows arrive in. Rows reach their shard through
    fragment files in the staging folder (`_spill/`), a shuffle through the file system:
    the runner moves only fragment paths, so memory holds one shard at a time, not the
    whole output.
    """

    def __init__(self, folder: str, schema: pa.Schema, stage_dir: str, output: OutputConfig,
                 order: Callable[[pa.RecordBatch], np.ndarray], tiebreak: list[str],
                 label: Callable[[pa.RecordBatch], np.ndarray] | None = None,
                 count_sources: bool = False, shards: beam.PCollection | None = None,
                 gate: beam.PCollection | None = None) -> None:
        super().__init__()
        # Shards per label, when known before the rows exist (a one-element dict PCollection);
        # without it rows are counted here, which holds them all until the count is done.
        self._shards = shards
        # A one-element PCollection that must exist before anything is written (the checked
        # mixture plan): a guard violation then stops the run with nothing on disk.
        self._gate = gate
        self._folder = folder
        self._schema = schema
        self._stage_dir = stage_dir
        self._output = output
        self._order = order
        self._tiebreak = tiebreak
        self._label = label
        self._count_sources = count_sources

    def expand(self, batches: beam.PCollection) -> Any:
        shards = self._shards or (
            batches
            | "CountRows" >> beam.FlatMap(_count_labels, self._label)
            | "SumRows" >> beam.CombinePerKey(sum)
            | "CollectCounts" >> beam.combiners.ToDict()
            | "ShardsByRows" >> beam.Map(_shards_by_rows, self._output)
        )
        gate = {"gate": beam.pvalue.AsSingleton(self._gate)} if self._gate is not None else {}
        written = (
            batches
            | "SpillByShard" >> beam.FlatMap(
                _spill_fragments, shards=beam.pvalue.AsSingleton(shards), label=self._label,
                order=self._order, spill_dir=f"{self._stage_dir.rstrip('/')}/{SPILL_FOLDER}/{self._folder}",
                **gate)
            # ((label, shard, shard count), (fragment path, rows)): paths, not rows, are shuffled.
            | "GroupByShard" >> beam.GroupByKey()
            | "MergeShard" >> beam.ParDo(_MergeShardFn(
                self._folder, self._schema, self._stage_dir, self._output, self._tiebreak,
                self._count_sources)).with_outputs(STATS, main="files")
        )
        return written
