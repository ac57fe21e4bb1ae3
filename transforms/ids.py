"""CheckIds: doc_ids are unique across all corpora before anything is deduplicated or selected.

Input ids (a corpus's `id_column`) must not repeat: a repeat fails the run or is rejected.
Derived ids (`<source>/<16 hex of the content hash>`) repeat when a corpus holds the same text
twice: the later rows get `-<k>` appended (k = 1, 2, ... in input order), so every document
has its own id whether or not exact dedup then removes the copies.
"""

from __future__ import annotations

import re

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridmix.schemas.errors import DataError
from hybridmix.schemas.reasons import RejectReason
from hybridmix.transforms import columns, progress
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


def _partition_ids(doc_ids: pa.Array, derived: list[str]) -> pa.Array:
    """The ids that choose partitions: an id of the form `<corpus>/<16 hex>-<k>`, for a corpus whose
    ids are derived, without its `-<k>`. That is the form CheckIds gives a derived id's repeats, so
    an input id of that form meets, in one partition, the derived ids whose repeats it could clash with."""
    if not derived:
        return doc_ids
    names = "|".join(re.escape(name) for name in derived)
    return pc.replace_substring_regex(doc_ids, rf"^((?:{names})/[0-9a-f]{{16}})-[0-9]+$", r"\1")


def _key_by_doc_id(batch: pa.RecordBatch, partitions: int, derived: list[str]):
    """INFO batch -> (doc_id partition, rows)."""
    keys = stable_hash64(_partition_ids(batch.column("doc_id"), derived), "doc_id")
    yield from split_batch(batch, (keys % np.uint64(partitions)).astype(np.int64), partitions)


class _CheckIdsFn(beam.DoFn):
    """(doc_id partition, INFO rows) -> rows with a unique id; a repeated input id fails or is rejected."""

    def __init__(self, spec: ReadSpec) -> None:
        self._spec = spec
        self._derived = [c.name for c in spec.config.corpora if not c.id_column]

    def process(self, element):
        _, batches = element
        table = concat(batches, columns.INFO)
        progress.add(progress.IDS, table.num_rows)
        order = pc.sort_indices(table, sort_keys=[("doc_id", "ascending"), ("uid", "ascending")])
        table = table.take(order)
        doc_ids = table.column("doc_id").combine_chunks()
        repeat = np.zeros(len(doc_ids), bool)
        if len(doc_ids) > 1:
            # Compared in Arrow: ids as Python strings were most of this step, and ids rarely repeat.
            repeat[1:] = pc.equal(doc_ids.slice(1), doc_ids.slice(0, len(doc_ids) - 1)).to_numpy(
                zero_copy_only=False)
        if not repeat.any():
            yield table_to_batch(table)
            return
        ids = np.asarray(doc_ids.to_pylist(), dtype=object)
        first_of = np.maximum.accumulate(np.where(~repeat, np.arange(len(ids)), 0))
        derived = np.isin(np.asarray(table.column("source").to_pylist(), dtype=object), self._derived)
        # Same text twice in corpora without ids: number the copies instead of rejecting them.
        renamed = repeat & derived & derived[first_of]
        if renamed.any():
            k = np.arange(len(ids)) - first_of
            # `-<k>` past the ids the partition already holds: another corpus's input ids may use that form.
            taken = set(ids[~renamed].tolist())
            for i in np.nonzero(renamed)[0]:
                n = int(k[i])
                while f"{ids[i]}-{n}" in taken:
                    n += 1
                ids[i] = f"{ids[i]}-{n}"
                taken.add(ids[i])
            table = table.set_column(table.schema.get_field_index("doc_id"), columns.INFO.field("doc_id"),
                                     pa.array(list(ids), pa.string()))
        clash = repeat & ~renamed
        if not clash.any():
            yield table_to_batch(table)
            return
        uids = table.column("uid").to_numpy()
        lineage = self._spec.lineage
        dup = np.nonzero(clash)[0]
        if self._spec.config.on_bad_file == "fail":
            i = dup[0]
            raise DataError(f"{lineage.where(uids[i])}: doc_id {ids[i]!r} is already used by "
                            f"{lineage.where(uids[first_of[i]])} "
                            "(ids must be unique across corpora; on_bad_file: quarantine rejects the repeats)")
        progress.add(progress.IDS_REPEATED, len(dup))
        yield table_to_batch(table.filter(pa.array(~clash)))
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
    """Keep the first row (by file, then row) of every input id; number repeated derived ids."""

    def __init__(self, spec: ReadSpec, partitions: int) -> None:
        super().__init__()
        self._spec = spec
        self._partitions = partitions

    def expand(self, info: beam.PCollection) -> ReadOutputs:
        result = (
            info
            | "KeyByDocId" >> beam.FlatMap(_key_by_doc_id, self._partitions,
                                           [c.name for c in self._spec.config.corpora if not c.id_column])
            | "GroupByDocId" >> beam.GroupByKey()
            | "KeepFirstOfEachId" >> beam.ParDo(_CheckIdsFn(self._spec)).with_outputs(REJECTED, STATS, main=DOCS)
        )
        return ReadOutputs(docs=result[DOCS], rejected=result[REJECTED], stats=result[STATS])
