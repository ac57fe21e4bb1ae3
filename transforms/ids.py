"""CheckIds: input ids must be unique across all corpora that have an id column."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridmix.schemas.errors import DataError
from hybridmix.schemas.reasons import RejectReason
from hybridmix.transforms import columns
from hybridmix.transforms.batches import concat, split_batch, table_to_batch
from hybridmix.transforms.ingest import (
    DOCS,
    REJECTED,
    ReadOutputs,
    emit_rejects,
    rejections,
)
from hybridmix.transforms.inputs import ReadSpec
from hybridmix.transforms.stats import STATS
from hybridmix.transforms.text import stable_hash64

KEYED = "keyed"
UNCHECKED = "unchecked"


def _key_by_doc_id(batch: pa.RecordBatch, partitions: int, checked: frozenset[str]):
    """INFO batch -> (doc_id partition, rows) for sources with input ids; other rows pass through."""
    in_scope = np.isin(np.asarray(batch.column("source").to_pylist(), dtype=object), list(checked))
    if (~in_scope).any():
        yield beam.pvalue.TaggedOutput(UNCHECKED, batch.filter(pa.array(~in_scope)))
    if in_scope.any():
        sub = batch.filter(pa.array(in_scope))
        keys = stable_hash64(sub.column("doc_id").to_pylist(), "doc_id")
        yield from split_batch(sub, (keys % np.uint64(partitions)).astype(np.int64), partitions)


class _CheckIdsFn(beam.DoFn):
    """(doc_id partition, INFO rows) -> rows with a unique id; a repeated id fails or is rejected."""

    def __init__(self, spec: ReadSpec) -> None:
        self._spec = spec

    def process(self, element):
        _, batches = element
        table = concat(batches, columns.INFO)
        order = pc.sort_indices(table, sort_keys=[("doc_id", "ascending"), ("uid", "ascending")])
        table = table.take(order)
        ids = np.asarray(table.column("doc_id").to_pylist(), dtype=object)
        repeat = np.zeros(len(ids), bool)
        repeat[1:] = ids[1:] == ids[:-1]
        if not repeat.any():
            yield table_to_batch(table)
            return
        uids = table.column("uid").to_numpy()
        first_of = np.maximum.accumulate(np.where(~repeat, np.arange(len(ids)), 0))
        lineage = self._spec.lineage
        dup = np.nonzero(repeat)[0]
        if self._spec.config.on_bad_file == "fail":
            i = dup[0]
            raise DataError(f"{lineage.where(uids[i])}: doc_id {ids[i]!r} is already used by "
                            f"{lineage.where(uids[first_of[i]])} "
                            "(ids must be unique across corpora; on_bad_file: quarantine rejects the repeats)")
        yield table_to_batch(table.filter(pa.array(~repeat)))
        yield from emit_rejects(rejections(
            len(dup),
            source=table.column("source").take(pa.array(dup)).combine_chunks(),
            source_file=lineage.source_files(uids[dup]),
            source_rows=lineage.source_rows(uids[dup]),
            doc_ids=list(ids[dup]),
            reasons=RejectReason.DUPLICATE_ID.value,
            details=[f"doc_id already used by {lineage.where(uids[first_of[i]])}" for i in dup],
            run_id=self._spec.run_id,
        ))


class CheckIds(beam.PTransform):
    """Keep the first row (by file, then row) of every doc_id; later rows with it fail or are rejected.

    Only corpora with an `id_column` are checked: derived ids are content hashes, and equal
    content is the exact-dedup stage's business.
    """

    def __init__(self, spec: ReadSpec, partitions: int) -> None:
        super().__init__()
        self._spec = spec
        self._partitions = partitions

    def expand(self, info: beam.PCollection) -> ReadOutputs:
        checked = frozenset(c.name for c in self._spec.config.corpora if c.id_column)
        keyed = info | "KeyByDocId" >> beam.FlatMap(_key_by_doc_id, self._partitions, checked).with_outputs(
            UNCHECKED, main=KEYED)
        result = (
            keyed[KEYED]
            | "GroupByDocId" >> beam.GroupByKey()
            | "KeepFirstOfEachId" >> beam.ParDo(_CheckIdsFn(self._spec)).with_outputs(REJECTED, STATS, main=DOCS)
        )
        docs = (result[DOCS], keyed[UNCHECKED]) | "MergeChecked" >> beam.Flatten()
        return ReadOutputs(docs=docs, rejected=result[REJECTED], stats=result[STATS])
