"""WriteShards: record batches -> sorted, sharded Parquet files, shuffled through spill files."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hybridmix.schemas.config import OutputConfig
from hybridmix.schemas.errors import FatalError
from hybridmix.schemas.stats import Figure
from hybridmix.transforms import progress
from hybridmix.transforms.batches import split_rows
from hybridmix.transforms.faults import crash_point
from hybridmix.transforms.stats import STATS, emit_by_source
from hybridmix.transforms.storage import (
    delete_files,
    file_size,
    read_parquet,
    write_atomically,
)
from hybridmix.transforms.text import stable_hash64

FILES = "files"
# Fragments of every folder's shards, inside the staging folder; removed before publishing.
SPILL_FOLDER = "_spill"
ORDER_COLUMN = "__order"


def order_by_id(batch: pa.RecordBatch, seed: int) -> np.ndarray:
    """Position key of output records: a seeded hash of the record id (a global shuffle)."""
    return stable_hash64(batch.column("id").to_pylist(), salt=f"order/{seed}")


def order_by_lineage(batch: pa.RecordBatch) -> np.ndarray:
    keys = [f"{f}\x00{r}" for f, r in zip(batch.column("source_file").to_pylist(),
                                         batch.column("source_row").to_pylist())]
    return stable_hash64(keys, salt="lineage")


def label_by_split(batch: pa.RecordBatch) -> np.ndarray:
    return np.asarray(batch.column("split").to_pylist(), dtype=object)


@dataclass(frozen=True)
class ShardSpec:
    """One output folder: its schema, how rows are ordered, and how files are labelled.

    `order` gives each row a uint64 key that decides its shard and its place in the shard,
    `tiebreak` columns order equal keys; `label` names the file group of each row (a split),
    default "part". With `count_sources` the rows written per source are counted (Figure.WRITTEN).
    `unique` names a column that `order` derives from (equal values, equal keys): its values are
    checked for repeats as the sorted rows go by, at no extra cost.
    """

    folder: str
    schema: pa.Schema
    order: Callable[[pa.RecordBatch], np.ndarray]
    tiebreak: tuple[str, ...]
    label: Callable[[pa.RecordBatch], np.ndarray] | None = None
    count_sources: bool = False
    unique: str | None = None  # a column whose values must not repeat (checked while merging)

    def labels(self, batch: pa.RecordBatch) -> np.ndarray:
        if self.label is None:
            return np.full(batch.num_rows, "part", dtype=object)
        return self.label(batch)


def _count_labels(batch: pa.RecordBatch, spec: ShardSpec):
    labels = spec.labels(batch)
    for name in np.unique(labels):
        yield str(name), int(np.sum(labels == name))


def shard_count(rows: int, output: OutputConfig, text_bytes: int | None = None) -> int:
    """Shards for a group of rows: about `rows_per_shard` rows or, where the size of the text is
    known and `bytes_per_shard` is set, about that many bytes of text."""
    if text_bytes is not None and output.bytes_per_shard is not None:
        return max(1, -(-text_bytes // output.bytes_per_shard))
    return max(1, -(-rows // output.rows_per_shard))


def shards_by_split(sizes: dict[str, dict[str, int]], output: OutputConfig) -> dict[str, int]:
    return {split: shard_count(size["rows"], output, size["bytes"]) for split, size in sizes.items()}


def _shards_by_rows(counts: dict[str, int], output: OutputConfig) -> dict[str, int]:
    return {label: shard_count(rows, output) for label, rows in counts.items()}


def shard_file_name(label: str, shard: int, count: int) -> str:
    return f"{label}-{shard:05d}-of-{count:05d}.parquet"


def _spill_fragments(batch: pa.RecordBatch, shards: dict[str, int], spec: ShardSpec, spill_dir: str, gate=None):
    """Write a batch's rows as one fragment per target shard; emit only the fragment's path.

    Fragment names derive from the rows they hold, so a retried bundle rewrites the same
    files. Each row carries its order key in `__order` for the merge.
    """
    progress.add(progress.STAGED, batch.num_rows)
    labels = spec.labels(batch)
    keys = spec.order(batch)
    for name in np.unique(labels):
        rows = np.nonzero(labels == name)[0]
        n = shards[str(name)]
        shard = (keys[rows] % np.uint64(n)).astype(np.int64)
        for s, idx in split_rows(shard, n):
            picked = rows[idx]
            fragment = pa.Table.from_batches([batch.take(pa.array(picked))]).append_column(
                ORDER_COLUMN, pa.array(keys[picked], pa.uint64()))
            tag = f"{int(keys[picked].min()):016x}-{int(keys[picked].max()):016x}-{len(picked)}"
            # Fragments live minutes and are read once: no compression beats a smaller file.
            write_atomically(f"{spill_dir}/{name}/{s:05d}/{tag}.parquet",
                             lambda sink, t=fragment: pq.write_table(t, sink, compression="none"))
            yield (str(name), s, n), (f"{spill_dir}/{name}/{s:05d}/{tag}.parquet", len(picked))


def write_parquet(row_groups: Iterable[pa.Table], schema: pa.Schema, path: str, output: OutputConfig) -> int:
    """Write row groups to a Parquet file under a temporary name, then rename it; returns its size.

    Row groups arrive one at a time, so a shard is never held twice in memory.
    """
    compression = None if output.compression == "none" else output.compression

    def write(sink) -> None:
        with pq.ParquetWriter(sink, schema, compression=compression) as writer:
            for table in row_groups:
                writer.write_table(table, row_group_size=output.row_group_rows)

    write_atomically(path, write)
    return file_size(path)


def sorted_row_groups(parts: list[pa.RecordBatch], keys: list[np.ndarray], tiebreak: Iterable[str],
                      rows_per_group: int) -> Iterator[pa.Table]:
    """The rows of `parts` ordered by (key, tiebreak columns), `rows_per_group` rows at a time.

    Only the sort keys are gathered up front; each row group is taken from the parts it
    draws on, so the rows are copied once.
    """
    part_of = np.concatenate([np.full(len(k), i, np.int64) for i, k in enumerate(keys)])
    row_of = np.concatenate([np.arange(len(k), dtype=np.int64) for k in keys])
    index = {ORDER_COLUMN: pa.array(np.concatenate(keys), pa.uint64())}
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


def _unique_rows(groups: Iterator[pa.Table], column: str, where: str) -> Iterator[pa.Table]:
    """Pass sorted row groups through, failing on a value of `column` that repeats."""
    last = None
    for table in groups:
        values = table.column(column).to_numpy(zero_copy_only=False)
        if len(values):
            repeats = values[1:] == values[:-1]
            if values[0] == last or repeats.any():
                value = last if values[0] == last else values[1:][repeats][0]
                raise FatalError(f"{where}: {column} {value!r} occurs twice; nothing was published")
            last = values[-1]
        yield table


class _MergeShardFn(beam.DoFn):
    """((label, shard, count), fragment paths) -> one sorted shard file, written in row groups."""

    def __init__(self, spec: ShardSpec, output: OutputConfig, stage_dir: str) -> None:
        self._spec = spec
        self._output = output
        self._stage_dir = stage_dir.rstrip("/")

    def process(self, element):
        (label, shard, count), fragments = element
        spec = self._spec
        paths = sorted({path for path, _ in fragments})
        tables = [read_parquet(path) for path in paths]
        batches = [b for t in tables for b in t.drop_columns([ORDER_COLUMN]).cast(spec.schema).to_batches()]
        keys = [k for t in tables for k in (c.to_numpy() for c in t.column(ORDER_COLUMN).chunks)]
        rows = sum(b.num_rows for b in batches)
        rel = f"{spec.folder}/{shard_file_name(label, shard, count)}"
        groups = sorted_row_groups(batches, keys, spec.tiebreak, self._output.row_group_rows)
        if spec.unique is not None:
            groups = _unique_rows(groups, spec.unique, rel)
        size = write_parquet(groups, spec.schema, f"{self._stage_dir}/{rel}", self._output)
        crash_point("written")
        progress.add(progress.WRITTEN, rows)
        delete_files(paths)
        if spec.count_sources:
            for b in batches:
                yield from emit_by_source(Figure.WRITTEN, b.column("source"))
        yield {"folder": spec.folder, "path": rel, "rows": rows, "size_bytes": size}


class WriteShards(beam.PTransform):
    """Write record batches as `<folder>/<label>-NNNNN-of-MMMMM.parquet` with about `rows_per_shard` rows.

    A row's shard and its position in the shard come from `spec.order` (a seeded hash), so the
    files are the same whatever the order rows arrive in. Rows reach their shard through
    fragment files in the staging folder (`_spill/`), a shuffle through the file system:
    the runner moves only fragment paths, so memory holds one shard at a time, not the
    whole output.
    """

    def __init__(self, spec: ShardSpec, output: OutputConfig, stage_dir: str,
                 shards: beam.PCollection | None = None, gate: beam.PCollection | None = None) -> None:
        super().__init__()
        self._spec = spec
        self._output = output
        self._stage_dir = stage_dir.rstrip("/")
        # Shards per label, when known before the rows exist (a one-element dict PCollection);
        # without it rows are counted here, which holds them all until the count is done.
        self._shards = shards
        # A one-element PCollection that must exist before anything is written (the checked
        # mixture plan): a guard violation then stops the run with nothing on disk.
        self._gate = gate

    def expand(self, batches: beam.PCollection) -> Any:
        shards = self._shards or (
            batches
            | "CountRows" >> beam.FlatMap(_count_labels, self._spec)
            | "SumRows" >> beam.CombinePerKey(sum)
            | "CollectCounts" >> beam.combiners.ToDict()
            | "ShardsByRows" >> beam.Map(_shards_by_rows, self._output)
        )
        gate = {"gate": beam.pvalue.AsSingleton(self._gate)} if self._gate is not None else {}
        return (
            batches
            | "SpillByShard" >> beam.FlatMap(
                _spill_fragments, shards=beam.pvalue.AsSingleton(shards), spec=self._spec,
                spill_dir=f"{self._stage_dir}/{SPILL_FOLDER}/{self._spec.folder}", **gate)
            # ((label, shard, shard count), (fragment path, rows)): paths, not rows, are shuffled.
            | "GroupByShard" >> beam.GroupByKey()
            | "MergeShard" >> beam.ParDo(_MergeShardFn(self._spec, self._output, self._stage_dir))
            .with_outputs(STATS, main=FILES)
        )
