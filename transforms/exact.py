"""DedupExact: keep one document per normalized-content hash."""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from hybridmix.schemas.reasons import DuplicateKind
from hybridmix.schemas.stats import Figure
from hybridmix.transforms import columns, progress
from hybridmix.transforms.batches import (
    concat,
    hex_partitions,
    split_batch,
    table_to_batch,
)
from hybridmix.transforms.dedup_core import exact_groups
from hybridmix.transforms.duplicates import duplicate_rows
from hybridmix.transforms.faults import crash_point
from hybridmix.transforms.stats import STATS, emit_by_source

KEPT = "kept"
DUPLICATES = "duplicates"


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), columns.INFO.field(name), values)


class _ExactDedupFn(beam.DoFn):
    """One content-hash partition: keep the smallest survivor key of each hash group."""

    def setup(self) -> None:
        self._documents = Metrics.counter(DedupExact.__name__, "documents")
        self._duplicates = Metrics.counter(DedupExact.__name__, "exact_duplicates")

    def process(self, element: tuple[int, list[pa.RecordBatch]]):
        _, batches = element
        crash_point("deduplicated")
        table = concat(batches, columns.INFO)
        progress.add(progress.EXACT, table.num_rows)
        self._documents.inc(table.num_rows)
        if table.num_rows == 0:
            return
        groups = exact_groups(table.column("content_hash"), table.column("skey"))
        survivors = table.take(pa.array(groups.survivors))
        sizes = groups.group_size.astype(np.int32)
        survivors = _set(survivors, "exact_count", pa.array(sizes))
        survivors = _set(survivors, "dup_cluster_size", pa.array(sizes))
        cluster = pc.if_else(pa.array(sizes > 1), survivors.column("doc_id"), pa.nulls(len(sizes), pa.string()))
        survivors = _set(survivors, "dup_cluster", cluster)
        yield table_to_batch(survivors)
        if len(groups.losers):
            progress.add(progress.EXACT_DUPLICATES, len(groups.losers))
            self._duplicates.inc(len(groups.losers))
            losers = table.take(pa.array(groups.losers))
            kept = table.take(pa.array(groups.loser_survivor))
            size_of = dict(zip(groups.survivors.tolist(), sizes.tolist()))
            loser_sizes = np.array([size_of[s] for s in groups.loser_survivor.tolist()])
            yield beam.pvalue.TaggedOutput(
                DUPLICATES, duplicate_rows(losers, kept, DuplicateKind.EXACT, loser_sizes, np.ones(len(loser_sizes))))
            yield from emit_by_source(Figure.EXACT_DUPLICATES, losers.column("source"))


def _key_by_content_hash(batch: pa.RecordBatch, partitions: int):
    part = hex_partitions(batch.column("content_hash"), partitions)
    yield from split_batch(batch, part, partitions)


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
            | "KeepOnePerHash" >> beam.ParDo(_ExactDedupFn()).with_outputs(DUPLICATES, STATS, main=KEPT)
        )
        return DedupOutputs(survivors=out[KEPT], duplicates=out[DUPLICATES], stats=out[STATS])
