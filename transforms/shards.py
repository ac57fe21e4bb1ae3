"""WriteShards: record batches -> sorted, sharded Parquet files, shuffled through spill files."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from hybridmix.schemas.config import OutputConfig
from hybridmix.schemas.errors import FatalError
from hybridmix.schemas.records import HASH_COLUMNS
from hybridmix.schemas.stats import Figure
from hybridmix.transforms import kernels, parallel, progress
from hybridmix.transforms.batches import byte_bounds, rows_by_value
from hybridmix.transforms.faults import crash_point
from hybridmix.transforms.stats import STATS, emit_by_source
from hybridmix.transforms.storage import (
    content_tag,
    file_size,
    flush_writes,
    read_range,
    write_atomically,
    write_buffers_behind,
)
from hybridmix.transforms.text import is_large, is_variable_width, stable_hash64, value_buffers

FILES = "files"
# Spill files of every folder's shards, inside the staging folder; removed before publishing.
SPILL_FOLDER = "_spill"
ORDER_COLUMN = "__order"
# Rows one merge writes when shards are small: its share of each spill file is one read.
MERGE_ROWS = 100_000
# ... or bytes of text, and a shard holds no more unless bytes_per_shard says so: memory holds a
# merge whole, and 100,000 rows of books are 40 GB.
MERGE_BYTES = 1 << 30
# Merges of one bundle written at the same time, on threads (see _MergeShardFn).
MERGES_AT_ONCE = 2
# The most bytes one Arrow string or binary array holds (its offsets are 32-bit).
MAX_ARRAY_BYTES = 2**31 - 1
# A row group ends before its text passes this (or at row_group_rows rows), a row longer than it
# alone: 10,000 books of 400 KB made one row group of 4 GB, which the writer and every reader hold
# whole (a run of 6,000 books peaked at 7.2 GB with them, 4.0 GB with row groups of 300).
ROW_GROUP_BYTES = 128 << 20


def order_by_id(batch: pa.RecordBatch, seed: int) -> np.ndarray:
    """Position key of output records: a seeded hash of the record id (a global shuffle)."""
    return stable_hash64(batch.column("id"), salt=f"order/{seed}")


def order_by_lineage(batch: pa.RecordBatch) -> np.ndarray:
    keys = [f"{f}\x00{r}" for f, r in zip(batch.column("source_file").to_pylist(),
                                         batch.column("source_row").to_pylist())]
    return stable_hash64(keys, salt="lineage")


def label_by_split(batch: pa.RecordBatch) -> pa.Array:
    return batch.column("split")


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
    label: Callable[[pa.RecordBatch], pa.Array] | None = None
    count_sources: bool = False
    unique: str | None = None  # a column whose values must not repeat (checked while merging)

    def label_rows(self, batch: pa.RecordBatch) -> Iterator[tuple[str, np.ndarray]]:
        """(label, its rows) of each label in a batch, labels in sorted order.

        Through Arrow's dictionary encoding: every row's label in a NumPy object array, sorted
        and compared in Python (a folder without labels too, all "part"), took 1.0-1.2 s for
        517,000 rows, the data/ rows of the real 200k run; this takes 0.02 s.
        """
        if self.label is None:
            if batch.num_rows:
                yield "part", np.arange(batch.num_rows)
            return
        yield from rows_by_value(self.label(batch))


def _count_labels(batch: pa.RecordBatch, spec: ShardSpec):
    text = batch.column("text") if "text" in batch.schema.names else None
    sizes = pc.binary_length(text).fill_null(0).to_numpy(zero_copy_only=False) \
        if text is not None and is_variable_width(text.type) else None
    for name, rows in spec.label_rows(batch):
        yield name, (len(rows), 0 if sizes is None else int(sizes[rows].sum()))


def _sum_pairs(pairs) -> tuple[int, int]:
    rows = text_bytes = 0
    for r, b in pairs:
        rows, text_bytes = rows + r, text_bytes + b
    return rows, text_bytes


def shard_count(rows: int, output: OutputConfig, text_bytes: int = 0) -> int:
    """Shards for a group of rows: about `rows_per_shard` rows, and no more than MERGE_BYTES of
    text; or, when `bytes_per_shard` is set, about that many bytes of text."""
    if output.bytes_per_shard is not None and text_bytes:
        return max(1, -(-text_bytes // output.bytes_per_shard))
    return max(1, -(-rows // output.rows_per_shard), -(-text_bytes // MERGE_BYTES))


def shards_by_split(sizes: dict[str, dict[str, int]], output: OutputConfig) -> dict[str, tuple[int, int, int]]:
    """(shards, rows, bytes of text) per split: the shape of the `shards` side input of WriteShards."""
    return {split: (shard_count(size["rows"], output, size["bytes"]), size["rows"], size["bytes"])
            for split, size in sizes.items()}


def _shards_by_rows(counts: dict[str, tuple[int, int]], output: OutputConfig) -> dict[str, tuple[int, int, int]]:
    return {label: (shard_count(rows, output, text_bytes), rows, text_bytes)
            for label, (rows, text_bytes) in counts.items()}


def shard_file_name(label: str, shard: int, count: int) -> str:
    return f"{label}-{shard:05d}-of-{count:05d}.parquet"


def shards_per_merge(shards: int, rows: int, text_bytes: int = 0) -> int:
    """How many consecutive shards one merge writes: enough for about MERGE_ROWS rows or
    MERGE_BYTES of text, whichever comes first, at least one.

    A merge reads one byte range of every spill file, so the reads (and the runner's keys) grow
    with the rows, not with how small the user asks shards to be.
    """
    return max(1, min(shards, MERGE_ROWS * shards // max(rows, 1), MERGE_BYTES * shards // max(text_bytes, 1)))


def spill_schema(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field(ORDER_COLUMN, pa.uint64()))


def _spill_fragments(batch: pa.RecordBatch, shards: dict[str, tuple[int, int, int]], spec: ShardSpec, spill_dir: str,
                     gate=None):
    """Write a batch's rows, grouped by target shard, as one spill file per label; emit byte ranges.

    The file is the shards' record batches as IPC messages, back to back in shard order (each row
    carries its order key in `__order`), so the rows of a merge's shards are one contiguous range:
    the files written grow with the batches, not with the shards. Each merge gets
    (path, start, end, its shards in that range). File names derive from the rows they hold, so a
    retried bundle rewrites the same file.
    """
    progress.add(progress.STAGED, batch.num_rows)
    keys = spec.order(batch)
    for name, rows in spec.label_rows(batch):
        n, total, text_bytes = shards[name]
        per_merge = shards_per_merge(n, total, text_bytes)
        shard = (keys[rows] % np.uint64(n)).astype(np.int64)
        order = np.argsort(shard, kind="stable")
        picked, shard = rows[order], shard[order]
        table = pa.Table.from_batches([batch.take(pa.array(picked))]).cast(spec.schema).append_column(
            ORDER_COLUMN, pa.array(keys[picked], pa.uint64()))
        part = table.combine_chunks().to_batches()[0]
        bounds = np.flatnonzero(np.diff(shard)) + 1
        starts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [len(shard)]])
        messages = [part.slice(a, b - a).serialize() for a, b in zip(starts, ends)]
        offsets = np.concatenate([[0], np.cumsum([m.size for m in messages])])
        # Named by the rows' keys and a checksum of their bytes: two batches can hold rows of equal keys
        # (an id's ledger rows, one rejected and one kept) and must not share a file; a retried bundle,
        # whose bytes are the same, still rewrites its own.
        crc = 0
        for message in messages:
            crc = zlib.crc32(message, crc)
        path = f"{spill_dir}/{name}/{content_tag(keys[picked])}-{crc:08x}.arrow"
        # Spill files live minutes and are read once: no compression beats a smaller file.
        write_buffers_behind(path, messages)
        merge = shard[starts] // per_merge
        cuts = np.concatenate([[0], np.flatnonzero(np.diff(merge)) + 1, [len(merge)]])
        for a, b in zip(cuts[:-1], cuts[1:]):
            yield (spec.folder, str(name), int(merge[a]), n, per_merge), (
                path, int(offsets[a]), int(offsets[b]), tuple(int(s) for s in shard[starts[a:b]]))


class _SpillFn(parallel.AheadDoFn):
    """`_spill_fragments` of each batch, on a helper thread one batch ahead (`parallel.AheadDoFn`);
    the bundle counts as done only once its files are whole."""

    def __init__(self, spec: ShardSpec, spill_dir: str) -> None:
        self._spec = spec
        self._spill_dir = spill_dir

    def work(self, batch: pa.RecordBatch, shards: dict[str, tuple[int, int, int]], gate=None):
        yield from _spill_fragments(batch, shards, self._spec, self._spill_dir, gate)

    def finish_work(self) -> None:
        flush_writes()


def read_spill(path: str, start: int, end: int, schema: pa.Schema, count: int) -> list[pa.RecordBatch]:
    """The `count` record batches stored in bytes [start, end) of a spill file."""
    stream = pa.BufferReader(read_range(path, start, end))
    return [pa.ipc.read_record_batch(pa.ipc.read_message(stream), schema) for _ in range(count)]


def write_parquet(row_groups: Iterable[pa.Table], schema: pa.Schema, path: str, output: OutputConfig) -> int:
    """Write row groups to a Parquet file under a temporary name, then rename it; returns its size.

    Row groups arrive one at a time, so a shard is never held twice in memory.
    """
    compression = None if output.compression == "none" else output.compression
    # By name only where needed: a name list leaves out the leaves of nested columns.
    hashes = HASH_COLUMNS.intersection(schema.names)
    dictionary = [name for name in schema.names if name not in hashes] if hashes else True

    def write(sink) -> None:
        with pq.ParquetWriter(sink, schema, compression=compression, use_dictionary=dictionary) as writer:
            for table in row_groups:
                writer.write_table(table, row_group_size=output.row_group_rows)

    write_atomically(path, write)
    return file_size(path)


def sorted_row_groups(parts: list[pa.RecordBatch], keys: list[np.ndarray], tiebreak: Iterable[str],
                      rows_per_group: int, group_bytes: int | None = None) -> Iterator[pa.Table]:
    """The rows of `parts` ordered by (key, tiebreak columns), `rows_per_group` rows at a time, or
    fewer where their wide columns would pass `group_bytes` (default `ROW_GROUP_BYTES`).

    Only the sort keys are gathered up front. The narrow columns of every part are copied into one
    batch, and each row group takes its rows from it in one call per column: taking them from each
    part a row group draws on was a call per column and part, 0.5 of the 1.3 CPU seconds sorting
    data/ took for 138,000 rows in 139 spill parts. A wide column (`_wide_columns`: the text) is not
    held twice: each row group copies its values from the parts once (`kernels.copy_values`).
    """
    sizes = [len(k) for k in keys]
    part_of = np.repeat(np.arange(len(keys), dtype=np.int64), sizes)
    row_of = np.arange(len(part_of), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    index = {ORDER_COLUMN: pa.array(np.concatenate(keys), pa.uint64())}
    for column in tiebreak:
        index[column] = pa.chunked_array([p.column(column) for p in parts], type=parts[0].schema.field(column).type)
    order = pc.sort_indices(pa.table(index), sort_keys=[(c, "ascending") for c in index]).to_numpy()
    schema = parts[0].schema
    wide = _wide_columns(parts)
    narrow = [name for name in schema.names if name not in wide]
    together = pa.Table.from_batches([p.select(narrow) for p in parts], schema=pa.schema(
        [schema.field(name) for name in narrow])).combine_chunks()
    wide_parts = {name: [_value_buffers(p.column(name)) for p in parts] for name in wide}
    part_of, row_of = part_of[order], row_of[order]
    # The bytes of each row's wide values, in order.
    row_bytes = np.zeros(len(order), np.int64)
    for buffers in wide_parts.values():
        row_bytes += np.concatenate([np.diff(offsets) for _, offsets, _ in buffers])[order]
    bounds = byte_bounds(row_bytes, rows_per_group, ROW_GROUP_BYTES if group_bytes is None else group_bytes)
    for start, end in zip(bounds[:-1], bounds[1:]):
        chunk = together.take(pa.array(order[start:end]))
        columns = [chunk.column(name) if name in chunk.column_names else None for name in schema.names]
        for name, buffers in wide_parts.items():
            columns[schema.get_field_index(name)] = _gathered(
                schema.field(name).type, buffers, part_of[start:end], row_of[start:end])
        yield pa.Table.from_arrays(columns, schema=schema)


def _wide_columns(parts: list[pa.RecordBatch]) -> list[str]:
    """String and binary columns whose values average 64 bytes or more: gathered by
    `kernels.copy_values` rather than copied into one batch first. Others (ids, counts, flags) are small."""
    rows = sum(p.num_rows for p in parts)
    wide = []
    for i, field in enumerate(parts[0].schema):
        if not is_variable_width(field.type):
            continue
        if rows and sum(p.column(i).nbytes for p in parts) >= 64 * rows:
            wide.append(field.name)
    return wide


def _value_buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`text.value_buffers` and which values are valid (None for all)."""
    valid = values.is_valid().to_numpy(zero_copy_only=False) if values.null_count else None
    return *value_buffers(values), valid


def _gathered(kind: pa.DataType, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
              part_of: np.ndarray, row_of: np.ndarray) -> pa.Array | pa.ChunkedArray:
    """The values (part_of[k], row_of[k]) of a string or binary column, in that order, copied once."""
    lengths = np.empty(len(part_of), np.int64)
    valid = np.ones(len(part_of), bool)
    by_part = np.argsort(part_of, kind="stable")
    cuts = np.flatnonzero(np.diff(part_of[by_part])) + 1
    groups = np.split(by_part, cuts) if len(by_part) else []
    for at in groups:
        _, offsets, part_valid = parts[part_of[at[0]]]
        lengths[at] = offsets[row_of[at] + 1] - offsets[row_of[at]]
        if part_valid is not None:
            valid[at] = part_valid[row_of[at]]
    lengths[~valid] = 0
    offsets = np.zeros(len(part_of) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.empty(int(offsets[-1]), np.uint8)
    for at in groups:
        data, part_offsets, part_valid = parts[part_of[at[0]]]
        if part_valid is not None:
            at = at[part_valid[row_of[at]]]
        kernels.copy_values(data, part_offsets, row_of[at], out, offsets, at)

    def validity(lo: int, hi: int):
        return None if valid[lo:hi].all() else pa.array(valid[lo:hi], pa.bool_()).buffers()[1]

    if is_large(kind):
        return pa.Array.from_buffers(kind, len(part_of), [validity(0, len(part_of)), pa.py_buffer(offsets),
                                                          pa.py_buffer(out)])
    # 32-bit offsets reach 2 GiB: a row group of long documents (10,000 books) is written from
    # several arrays. Arrow's take failed on it ("offset overflow while concatenating arrays").
    pieces, lo = [], 0
    while lo < len(part_of) or not pieces:
        hi = lo + max(1, int(np.searchsorted(offsets[lo + 1:], offsets[lo] + MAX_ARRAY_BYTES, side="right")))
        hi = min(hi, len(part_of))
        piece = (offsets[lo:hi + 1] - offsets[lo]).astype(np.int32)
        pieces.append(pa.Array.from_buffers(kind, hi - lo, [validity(lo, hi), pa.py_buffer(piece),
                                                            pa.py_buffer(out[offsets[lo]:offsets[hi]])]))
        lo = hi
    return pa.chunked_array(pieces, kind) if len(pieces) > 1 else pieces[0]


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
    """((folder, label, merge, count, shards per merge), spill ranges) -> the merge's shards, each sorted
    and written in row groups. A shard no row hashed to is written too, with no rows, so the files of a
    label are numbered without gaps (`-00000-of-00021` to `-00020-of-00021`; tiny shards leave some empty).
    A merge that gets no row at all writes nothing; with merges of about MERGE_ROWS rows that does not happen.

    The merge holds its byte ranges (about MERGE_ROWS rows, or one shard if larger) and sorts and
    writes one shard at a time. Spill files stay until the run publishes: other merges read them.

    One stage merges the shards of every folder (`MergeShards`), and a bundle's merges run two at a
    time when the kernels have threads (`parallel.threads()`): each writes files of its own, and
    Parquet encodes and compresses without the GIL. A stage per folder wrote data/, index/, ledger/
    and the side outputs one after another. Two, not one per core: each merge holds its rows, and a
    run's memory is sized for one merge (two raised the peak at a million documents from 2,093 to
    2,257 MiB). The bundle ends once every merge has ended, the failed ones too: none writes after it.
    """

    def __init__(self, specs: Iterable[ShardSpec], output: OutputConfig, stage_dir: str) -> None:
        self._specs = {spec.folder: spec for spec in specs}
        self._output = output
        self._stage_dir = stage_dir.rstrip("/")
        self._pending: list = []

    def setup(self) -> None:
        self._rows = {folder: Metrics.counter(MergeShards.__name__, f"{folder}_rows") for folder in self._specs}

    def start_bundle(self) -> None:
        self._pending = []

    def process(self, element):
        if parallel.threads() <= 1:
            for out in self._merge(element):
                self._count(out)
                yield out
        else:
            self._pending.append(parallel.pool(MERGES_AT_ONCE, "merge").submit(self._merged, element))

    def finish_bundle(self):
        pending, self._pending = self._pending, []
        errors = [future.exception() for future in pending]  # waits for each
        for error in errors:
            if error is not None:
                raise error
        for future in pending:
            for out in future.result():
                self._count(out)
                yield parallel.windowed(out)

    def _count(self, out) -> None:
        """Rows written per folder, counted here: Beam keeps counts on the bundle's thread, not the merges'."""
        if isinstance(out, dict):
            self._rows[out["folder"]].inc(out["rows"])

    def _merged(self, element) -> list:
        return list(self._merge(element))

    def _merge(self, element):
        (folder, label, merge, count, per_merge), ranges = element
        spec = self._specs[folder]
        schema = spill_schema(spec.schema)
        parts: dict[int, list[pa.RecordBatch]] = {}
        # A retried spill bundle may have reported its ranges twice; they name the same bytes.
        for path, start, end, shards in sorted(set(ranges)):
            for shard, batch in zip(shards, read_spill(path, start, end, schema, len(shards))):
                parts.setdefault(shard, []).append(batch)
        for shard in range(merge * per_merge, min((merge + 1) * per_merge, count)):
            yield from self._write_shard(spec, label, shard, count, parts.pop(shard, []))

    def _write_shard(self, spec: ShardSpec, label: str, shard: int, count: int, parts: list[pa.RecordBatch]):
        output = self._output
        rows = sum(p.num_rows for p in parts)
        if len(parts) > 1 and rows <= output.row_group_rows:
            # Small shards gather a few rows from each of many spill files: one copy up front
            # makes the sort and the take work on one batch instead of hundreds of slivers.
            parts = pa.Table.from_batches(parts).combine_chunks().to_batches()
        keys = [p.column(ORDER_COLUMN).to_numpy() for p in parts]
        batches = [p.drop_columns([ORDER_COLUMN]) for p in parts]
        rel = f"{spec.folder}/{shard_file_name(label, shard, count)}"
        # The next row group is gathered while Parquet encodes this one (see `parallel.ahead`).
        groups = parallel.ahead(sorted_row_groups(batches, keys, spec.tiebreak, output.row_group_rows)) \
            if parts else iter(())
        if spec.unique is not None:
            groups = _unique_rows(groups, spec.unique, rel)
        size = write_parquet(groups, spec.schema, f"{self._stage_dir}/{rel}", output)
        crash_point("written")
        progress.add(progress.WRITTEN, rows)
        if spec.count_sources:
            for b in batches:
                yield from emit_by_source(Figure.WRITTEN, b.column("source"))
        yield {"folder": spec.folder, "path": rel, "rows": rows, "size_bytes": size}


class SpillShards(beam.PTransform):
    """Record batches (a PCollection, or a tuple of them) -> the byte ranges of their rows in spill
    files, keyed by (folder, label, merge, shard count, shards per merge): the first half of `WriteShards`, for
    `MergeShards` to write, together with other folders' ranges.

    `shards`: (shards, rows, bytes of text) per label, when known before the rows exist (a one-element dict
    PCollection); without it rows are counted here, which holds them all until the count is done.
    `gate`: a one-element PCollection that must exist before anything is written (the checked
    mixture plan): a guard violation then stops the run with nothing on disk.
    """

    def __init__(self, spec: ShardSpec, output: OutputConfig, stage_dir: str,
                 shards: beam.PCollection | None = None, gate: beam.PCollection | None = None) -> None:
        super().__init__()
        self._spec = spec
        self._output = output
        self._stage_dir = stage_dir.rstrip("/")
        self._shards = shards
        self._gate = gate

    def expand(self, batches: beam.PCollection | tuple[beam.PCollection, ...]) -> beam.PCollection:
        # Several inputs spill each on its own: a Flatten of rows before the spill is a buffer
        # that the in-process runner holds whole (index/ rows at ten million documents: 10.6 GB).
        inputs = batches if isinstance(batches, tuple) else (batches,)
        shards = self._shards or (
            [rows | f"CountRows{i or ''}" >> beam.FlatMap(_count_labels, self._spec) for i, rows in enumerate(inputs)]
            | "MergeCounts" >> beam.Flatten()
            | "SumRows" >> beam.CombinePerKey(_sum_pairs)
            | "CollectCounts" >> beam.combiners.ToDict()
            | "ShardsByRows" >> beam.Map(_shards_by_rows, self._output)
        )
        gate = {"gate": beam.pvalue.AsSingleton(self._gate)} if self._gate is not None else {}
        spill_dir = f"{self._stage_dir}/{SPILL_FOLDER}/{self._spec.folder}"
        ranges = [
            rows | f"SpillByShard{i or ''}" >> beam.ParDo(
                _SpillFn(self._spec, spill_dir), shards=beam.pvalue.AsSingleton(shards), **gate)
            for i, rows in enumerate(inputs)
        ]
        return ranges[0] if len(ranges) == 1 else ranges | "MergeRanges" >> beam.Flatten()


class MergeShards(beam.PTransform):
    """Spill ranges of one or more folders (`SpillShards`, flattened) -> their Parquet files, in one
    stage: a FILES output of {folder, path, rows, size_bytes} and a STATS output (rows written
    per source, for folders that count them)."""

    def __init__(self, specs: Iterable[ShardSpec], output: OutputConfig, stage_dir: str) -> None:
        super().__init__()
        self._specs = tuple(specs)
        self._output = output
        self._stage_dir = stage_dir

    def expand(self, ranges: beam.PCollection) -> Any:
        return (
            ranges
            # ((folder, label, merge, shard count, shards per merge), (spill path, start, end, shards)): byte
            # ranges, not rows, are shuffled.
            | "GroupByShard" >> beam.GroupByKey()
            | "MergeShard" >> beam.ParDo(_MergeShardFn(self._specs, self._output, self._stage_dir))
            .with_outputs(STATS, main=FILES)
        )


class WriteShards(beam.PTransform):
    """Write record batches (a PCollection, or a tuple of them) as `<folder>/<label>-NNNNN-of-MMMMM.parquet`
    with about `rows_per_shard` rows: `SpillShards`, then `MergeShards` of this one folder.

    A row's shard and its position in the shard come from `spec.order` (a seeded hash), so the
    files are the same whatever the order rows arrive in. Rows reach their shard through
    spill files in the staging folder (`_spill/`), a shuffle through the file system: the
    runner moves only byte ranges, so memory holds the rows of the merges at work (MERGES_AT_ONCE,
    each about MERGE_ROWS rows, or one shard if larger), not the whole output. One spill file per
    input batch and label, whatever the number of shards: small shards cost what large ones do.
    """

    def __init__(self, spec: ShardSpec, output: OutputConfig, stage_dir: str,
                 shards: beam.PCollection | None = None, gate: beam.PCollection | None = None) -> None:
        super().__init__()
        self._spill = SpillShards(spec, output, stage_dir, shards, gate)
        self._merge = MergeShards((spec,), output, stage_dir)

    def expand(self, batches: beam.PCollection | tuple[beam.PCollection, ...]) -> Any:
        return batches | "Spill" >> self._spill | "Merge" >> self._merge
