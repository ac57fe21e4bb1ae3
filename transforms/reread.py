"""Read chosen input rows a second time, a row group at a time.

Dedup and mixing carry no text. When a later stage needs a document's text again (the
output writer; MinHash signatures of LSH candidates), it names the rows by `uid` and this
reads them back: a shuffle of small keys instead of a shuffle of all text.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa

from schemas.config import PipelineConfig
from schemas.errors import FatalError
from transforms.batches import concat, uid_file, uid_row
from transforms.ingest import InputPlan, build_documents, corpus_columns, iter_row_group

_RG_BITS = 24


def row_group_starts(plan: InputPlan) -> list[list[int]]:
    """First row of every row group, per file."""
    starts = []
    for f in plan.files:
        acc, s = 0, []
        for rows in f.row_group_rows:
            s.append(acc)
            acc += rows
        starts.append(s)
    return starts


def key_by_row_group(batch: pa.RecordBatch, starts: list[list[int]]) -> Iterator[tuple[tuple[int, int], pa.RecordBatch]]:
    """A batch with a `uid` column -> ((file, row group), its rows in that row group)."""
    uids = batch.column("uid").to_numpy()
    files, rows = uid_file(uids), uid_row(uids)
    groups = np.array([bisect.bisect_right(starts[f], r) - 1 for f, r in zip(files, rows)], np.int64)
    combined = files * (1 << _RG_BITS) + groups
    keys, inverse = np.unique(combined, return_inverse=True)
    for i, key in enumerate(keys):
        yield (int(key >> _RG_BITS), int(key & ((1 << _RG_BITS) - 1))), batch.filter(pa.array(inverse == i))


class _ReadAgainFn(beam.DoFn):
    """((file, row group), requests) -> (documents, requests) pairs, row-aligned, by batch."""

    def __init__(self, config: PipelineConfig, plan: InputPlan, run_id: str, schema: pa.Schema,
                 measure: bool) -> None:
        self._config = config
        self._plan = plan
        self._run_id = run_id
        self._schema = schema
        self._measure = measure

    def process(self, element):
        (file_index, row_group), batches = element
        requests = concat(batches, self._schema)
        file = self._plan.files[file_index]
        corpus = self._config.corpora[file.corpus]
        wanted = sorted(set(corpus_columns(corpus).values()))
        order = np.argsort(requests.column("uid").to_numpy(), kind="stable")
        requests = requests.take(pa.array(order))
        uids = requests.column("uid").to_numpy()
        found = 0
        first = sum(file.row_group_rows[:row_group])
        for batch in iter_row_group(file, row_group, self._config.read_batch_rows, wanted):
            base = (file_index << 40) | first
            lo, hi = np.searchsorted(uids, [base, base + batch.num_rows])
            if hi > lo:
                positions = uids[lo:hi] - base
                docs = build_documents(batch, self._config.corpora[file.corpus], file, first,
                                       self._config.tokenizer.kind, self._run_id, positions=positions,
                                       measure=self._measure).docs
                if not np.array_equal(docs.column("uid").to_numpy(), uids[lo:hi]):
                    raise FatalError(f"{file.display}: rows of row group {row_group} changed between reads; "
                                     "was the file modified during the run?")
                found += hi - lo
                yield docs, requests.slice(lo, hi - lo)
            first += batch.num_rows
            if found == requests.num_rows:
                # Stop early: a quarantined row group may be unreadable past its last good row.
                break
        if found != requests.num_rows:
            raise FatalError(f"{file.display}: {requests.num_rows - found} requested rows of row group "
                             f"{row_group} were not found when read again")


class ReadRowsAgain(beam.PTransform):
    """Batches with a `uid` column (schema `schema`) -> (documents, requests), aligned row by row.

    `measure` as in `build_documents`: False when only text and provenance are needed.
    """

    def __init__(self, config: PipelineConfig, plan: InputPlan, run_id: str, schema: pa.Schema,
                 measure: bool = True) -> None:
        super().__init__()
        self._config = config
        self._plan = plan
        self._run_id = run_id
        self._schema = schema
        self._measure = measure

    def expand(self, requests: beam.PCollection) -> beam.PCollection:
        return (
            requests
            # ((file, row group), request rows): one read per row group holding a requested row.
            | "KeyByRowGroup" >> beam.FlatMap(key_by_row_group, row_group_starts(self._plan))
            | "GroupByRowGroup" >> beam.GroupByKey()
            | "ReadRows" >> beam.ParDo(
                _ReadAgainFn(self._config, self._plan, self._run_id, self._schema, self._measure))
        )
