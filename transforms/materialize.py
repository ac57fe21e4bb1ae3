"""MaterializeDocuments: selected documents, read again from their input rows, as output records.

Dedup and mixing work without text; the text of the selected documents is read again
(`transforms.reread`), so it crosses a shuffle once: into its output shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridmix.schemas.config import NearDedupConfig
from hybridmix.schemas.records import DOCUMENT_SCHEMA
from hybridmix.transforms import columns, progress
from hybridmix.transforms.index import index_rows
from hybridmix.transforms.inputs import Lineage, ReadSpec
from hybridmix.transforms.mixture import split_of
from hybridmix.transforms.reread import ReadRowsAgain
from hybridmix.transforms.sketch import SignatureFiles


@dataclass(frozen=True)
class RecordStamp:
    """What every output record carries about its run: lineage names, split seed and fraction, config digest."""

    lineage: Lineage
    seed: int
    validation_fraction: float
    config_digest: str
    # index/ rows are made too (output.index); `near` None when near dedup is off (no signatures).
    index: bool = False
    near: NearDedupConfig | None = None


def records(read: tuple[pa.RecordBatch, pa.Table], stamp: RecordStamp) -> pa.RecordBatch:
    """Output rows of selected documents: one per copy, ids `<doc_id>#r<k>` for repeats."""
    docs, sel = read
    copies = sel.column("copies").to_numpy()
    n = int(copies.sum())
    # Each row's copy number, 0 for the first: its position past its document's first row.
    repeat = (np.arange(n) - np.repeat(np.cumsum(copies) - copies, copies)).astype(np.int16)
    if (copies == 1).all():  # one row per document: the batches as they are, not a copy of them
        d, s = docs, sel
    else:
        take = pa.array(np.repeat(np.arange(len(copies)), copies), pa.int64())
        d, s = docs.take(take), sel.take(take)
    doc_ids = s.column("doc_id").combine_chunks()
    ids = doc_ids
    if repeat.any():  # repeats are `<doc_id>#r<k>`
        ids = pc.if_else(pa.array(repeat == 0), doc_ids,
                         pc.binary_join_element_wise(doc_ids, pa.array(repeat).cast(pa.string()), "#r"))
    splits = split_of(doc_ids, stamp.seed, stamp.validation_fraction)
    uids = d.column("uid").to_numpy()
    return pa.RecordBatch.from_arrays(
        [
            ids,
            doc_ids,
            d.column("text"),
            d.column("origin"),
            d.column("source"),
            d.column("generator"),
            d.column("generation"),
            d.column("parent_id"),
            d.column("license"),
            d.column("url"),
            stamp.lineage.source_files(uids),
            stamp.lineage.source_rows(uids),
            s.column("content_hash").combine_chunks(),
            s.column("tokens").combine_chunks(),
            s.column("chars").combine_chunks(),
            s.column("script").combine_chunks(),
            s.column("quality_flags").combine_chunks(),
            s.column("quality_score").combine_chunks(),
            s.column("dup_cluster").combine_chunks(),
            s.column("dup_cluster_size").combine_chunks(),
            pa.array(repeat, pa.int16()),
            pa.array(splits, pa.string()),
            stamp.lineage.run_ids(n),
            pa.array([stamp.config_digest] * n, pa.string()),
            d.column("meta"),
        ],
        schema=DOCUMENT_SCHEMA,
    )


INDEX_ROWS = "index"


def records_and_index(read: tuple[pa.RecordBatch, pa.Table], stamp: RecordStamp, signatures: list):
    """Output records, and (tagged INDEX_ROWS) the documents' index/ rows; `signatures`: the
    references of the run's signature files (SketchDocuments)."""
    yield records(read, stamp)
    if stamp.index:
        docs, sel = read
        progress.add(progress.INDEXED, docs.num_rows)
        files = SignatureFiles(signatures, stamp.near.num_perm) if stamp.near is not None else None
        yield beam.pvalue.TaggedOutput(INDEX_ROWS, index_rows(docs, sel, stamp.near, stamp.lineage.run_id, files))


class MaterializeOutputs(NamedTuple):
    records: beam.PCollection
    index: beam.PCollection


class MaterializeDocuments(beam.PTransform):
    """Selections -> output records (and index/ rows): each selected row is read again, once per row group.

    The index needs each document's MinHash signature: it is read from the signature files of
    the first pass (`signatures`, SketchDocuments' references), not carried through the dedup and
    mixture shuffles by every document to be used by the selected ones only.
    """

    def __init__(self, spec: ReadSpec, stamp: RecordStamp, signatures: beam.PCollection) -> None:
        super().__init__()
        self._spec = spec
        self._stamp = stamp
        self._signatures = signatures

    def expand(self, selected: beam.PCollection) -> MaterializeOutputs:
        stamp = self._stamp
        out = (
            selected
            | "ReadSelected" >> ReadRowsAgain(self._spec, columns.SELECTION, measure=False)
            | "ToRecords" >> beam.FlatMap(records_and_index, stamp=stamp,
                                          signatures=beam.pvalue.AsList(self._signatures))
            .with_output_types(pa.RecordBatch).with_outputs(INDEX_ROWS, main="records")  # see transforms/wire.py
        )
        return MaterializeOutputs(records=out["records"], index=out[INDEX_ROWS])
