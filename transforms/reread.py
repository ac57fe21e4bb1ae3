"""Read chosen input rows a second time, a read unit (row group, or slice of one) at a time.

Dedup and mixing carry no text. When a later stage needs a document's text again (the
output writer), it names the rows by `uid` and this reads them back: a shuffle of small keys
instead of a shuffle of all text.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa

from hybridmix.schemas.errors import DataError
from hybridmix.transforms import parallel
from hybridmix.transforms.batches import concat, make_uids, uid_file, uid_row
from hybridmix.transforms.ingest import build_documents
from hybridmix.transforms.inputs import ReadSpec, iter_row_group

_UNIT_BITS = 24


def unit_starts(spec: ReadSpec) -> list[list[int]]:
    """Each input file's read units' first rows (`InputFile.units`), for `key_by_unit`."""
    config = spec.config
    return [[first for _, first, _ in f.units(config.read_batch_rows, config.read_slice_bytes)]
            for f in spec.plan.files]


def key_by_unit(batch: pa.RecordBatch, starts: list[list[int]]) -> Iterator[tuple[tuple[int, int], pa.RecordBatch]]:
    """A batch with a `uid` column -> ((file, read unit), its rows in that unit); `starts`: each
    file's units' first rows (`InputFile.units`)."""
    uids = batch.column("uid").to_numpy()
    files, rows = uid_file(uids), uid_row(uids)
    groups = np.zeros(len(uids), np.int64)
    for f in np.unique(files):
        mine = files == f
        groups[mine] = np.searchsorted(np.asarray(starts[f], np.int64), rows[mine], side="right") - 1
    combined = files * (1 << _UNIT_BITS) + groups
    keys, inverse = np.unique(combined, return_inverse=True)
    for i, key in enumerate(keys):
        yield (int(key >> _UNIT_BITS), int(key & ((1 << _UNIT_BITS) - 1))), batch.filter(pa.array(inverse == i))


def _check_same_rows(docs: pa.RecordBatch, requests: pa.Table, display: str) -> None:
    """Rows read again must be the rows read the first time: same rows, same text, byte for byte."""
    uids = requests.column("uid").to_numpy()
    same = np.array_equal(docs.column("uid").to_numpy(), uids) and np.array_equal(
        docs.column("text_hash").to_numpy(), requests.column("text_hash").to_numpy())
    if not same:
        raise DataError(f"{display} changed during the run: rows read a second time differ from the first read "
                        f"(near row {int(uid_row(uids[:1])[0]) if len(uids) else 0}); nothing was published: rerun "
                        "once the input files are stable")


class _ReadAgainFn(parallel.AheadDoFn):
    """((file, read unit), requests) -> (documents, requests) pairs, row-aligned, by batch; on a helper
    thread, one batch ahead of the steps that make and spill the output rows (`parallel.AheadDoFn`)."""

    def __init__(self, spec: ReadSpec, schema: pa.Schema, measure: bool) -> None:
        self._spec = spec
        self._schema = schema
        self._measure = measure

    def work(self, element):
        (file_index, unit), batches = element
        spec = self._spec
        requests = concat(batches, self._schema)
        file = spec.plan.files[file_index]
        order = np.argsort(requests.column("uid").to_numpy(), kind="stable")
        requests = requests.take(pa.array(order))
        uids = requests.column("uid").to_numpy()
        found = 0
        batch_rows = spec.config.read_batch_rows
        row_group, first, rows = file.units(batch_rows, spec.config.read_slice_bytes)[unit]
        file.check_unchanged()
        for batch, parsed in iter_row_group(file, row_group, batch_rows, spec.corpus(file), (first, rows)):
            base = int(make_uids(file_index, np.array([first]))[0])
            lo, hi = np.searchsorted(uids, [base, base + batch.num_rows])
            if hi > lo:
                positions = uids[lo:hi] - base
                docs = build_documents(batch, spec, file, first, positions=positions, measure=self._measure,
                                       parsed=parsed).docs
                asked = requests.slice(lo, hi - lo)
                _check_same_rows(docs, asked, file.display)
                found += hi - lo
                yield docs, asked
            first += batch.num_rows
            if found == requests.num_rows:
                # Stop early: a quarantined row group may be unreadable past its last good row.
                break
        if found != requests.num_rows:
            raise DataError(f"{file.display} changed during the run: {requests.num_rows - found} rows of "
                            f"{file.part(row_group)} were not found when read again; nothing was published")


class ReadRowsAgain(beam.PTransform):
    """Batches with a `uid` column (schema `schema`) -> (documents, requests), aligned row by row.

    `measure` as in `build_documents`: False when only text and provenance are needed.
    """

    def __init__(self, spec: ReadSpec, schema: pa.Schema, measure: bool = True) -> None:
        super().__init__()
        self._spec = spec
        self._schema = schema
        self._measure = measure

    def expand(self, requests: beam.PCollection) -> beam.PCollection:
        return (
            requests
            # ((file, read unit), request rows): one read per unit (a row group or a slice of one)
            # holding a requested row.
            | "KeyByReadUnit" >> beam.FlatMap(key_by_unit, unit_starts(self._spec))
            | "GroupByReadUnit" >> beam.GroupByKey()
            | "ReadRows" >> beam.ParDo(_ReadAgainFn(self._spec, self._schema, self._measure))
            .with_output_types(tuple[pa.RecordBatch, pa.Table])  # see transforms/wire.py
        )
