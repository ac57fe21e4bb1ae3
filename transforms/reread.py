"""Read chosen input rows a second time, a read unit (row group, or slice of one) at a time.

Dedup and mixing carry no text. When a later stage needs a document's text again (the
output writer), it names the rows by `uid` and this reads them back: a shuffle of small keys
instead of a shuffle of all text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa

from hybridmix.schemas.errors import DataError, FatalError
from hybridmix.transforms import parallel
from hybridmix.transforms.batches import concat, make_uids, uid_file, uid_row
from hybridmix.transforms.ingest import Piece, build_documents, joined_runs
from hybridmix.transforms.inputs import InputFile, ReadSpec, iter_row_group


class GroupIndex(NamedTuple):
    """Which work item (`InputPlan.read_groups`) holds each input row, for `key_by_group`: per
    file, its read units' first rows (`InputFile.units`) and each unit's work item."""

    offsets: np.ndarray  # file f's units are starts[offsets[f]:offsets[f + 1]]
    starts: np.ndarray
    groups: np.ndarray  # the work item of each unit; -1 for a unit never read (an empty row group)


def group_index(spec: ReadSpec) -> GroupIndex:
    config = spec.config
    groups = spec.read_groups()
    at = {(file, first): g for g, units in enumerate(groups) for file, _, first, _ in units}
    offsets, starts, owner = [0], [], []
    for f in spec.plan.files:
        for _, first, _ in f.units(config.read_batch_rows, config.read_slice_bytes):
            starts.append(first)
            owner.append(at.get((f.index, first), -1))
        offsets.append(len(starts))
    return GroupIndex(np.array(offsets, np.int64), np.array(starts, np.int64), np.array(owner, np.int64))


def key_by_group(batch: pa.RecordBatch, index: GroupIndex) -> Iterator[tuple[int, pa.RecordBatch]]:
    """A batch with a `uid` column -> (work item, its rows in that item)."""
    uids = batch.column("uid").to_numpy()
    files, rows = uid_file(uids), uid_row(uids)
    units = np.zeros(len(uids), np.int64)
    for f in np.unique(files):
        mine = files == f
        lo, hi = index.offsets[f], index.offsets[f + 1]
        # The last unit starting at or before the row: an empty unit shares its start with the next.
        units[mine] = lo + np.searchsorted(index.starts[lo:hi], rows[mine], side="right") - 1
    keys, inverse = np.unique(index.groups[units], return_inverse=True)
    if len(keys) and keys[0] < 0:
        raise FatalError(f"row {int(rows[inverse == 0][0])} of input file {int(files[inverse == 0][0])} is in no "
                         "work item of the run's plan")
    for i, key in enumerate(keys):
        yield int(key), batch.filter(pa.array(inverse == i))


class KeyByWorkItemFn(beam.DoFn):
    """`key_by_group`, its index made once per worker from the plan (which pickles as a reference,
    where an index of 20,000 files' units would be pickled with the step again and again)."""

    def __init__(self, spec: ReadSpec) -> None:
        self._spec = spec

    def setup(self) -> None:
        self._index = group_index(self._spec)

    def process(self, batch: pa.RecordBatch):
        yield from key_by_group(batch, self._index)


def _check_same_rows(docs: pa.RecordBatch, requests: pa.Table, files: tuple[InputFile, ...]) -> None:
    """Rows read again must be the rows read the first time: same rows, same text, byte for byte."""
    uids = requests.column("uid").to_numpy()
    read, texts = docs.column("uid").to_numpy(), docs.column("text_hash").to_numpy()
    if np.array_equal(read, uids) and np.array_equal(texts, requests.column("text_hash").to_numpy()):
        return
    n = min(len(read), len(uids))
    differ = np.flatnonzero((read[:n] != uids[:n]) | (texts[:n] != requests.column("text_hash").to_numpy()[:n]))
    at = int(uids[differ[0]] if differ.size else uids[n] if n < len(uids) else read[n])
    raise DataError(f"{files[int(uid_file(np.array([at]))[0])].display} changed during the run: rows read a second "
                    f"time differ from the first read (near row {int(uid_row(np.array([at]))[0])}); nothing was "
                    "published: rerun once the input files are stable")


class _ReadAgainFn(parallel.AheadDoFn):
    """(work item, requests) -> (documents, requests) pairs, row-aligned, by batch; on a helper thread,
    one batch ahead of the steps that make and spill the output rows (`parallel.AheadDoFn`)."""

    def __init__(self, spec: ReadSpec, schema: pa.Schema, measure: bool) -> None:
        self._spec = spec
        self._schema = schema
        self._measure = measure

    def setup(self) -> None:
        self._groups = self._spec.read_groups()

    def work(self, element):
        group, batches = element
        requests = concat(batches, self._schema)
        order = np.argsort(requests.column("uid").to_numpy(), kind="stable")
        requests = requests.take(pa.array(order))
        uids = requests.column("uid").to_numpy()
        units = self._groups[group]
        if len(units) == 1:
            yield from self._read_unit(units[0], requests, uids)
            return
        # Small files read one after another, their requested rows validated together per schema:
        # the units are in file order, so the rows come in the requests' (uid) order.
        spec = self._spec
        taken = [Piece(batch.take(pa.array(positions)), unit[0], first + positions,
                       parsed.take(positions) if parsed is not None else None)
                 for unit in units for batch, parsed, first, positions in self._requested(unit, uids)]
        done = 0
        for batch, parsed, joined in joined_runs(taken):
            docs = build_documents(batch, spec, spec.plan.files[int(joined[0][0])], 0, measure=self._measure,
                                   parsed=parsed, joined=joined).docs
            asked = requests.slice(done, batch.num_rows)
            _check_same_rows(docs, asked, spec.plan.files)
            done += batch.num_rows
            yield docs, asked

    def _read_unit(self, unit: tuple[int, int, int, int], requests: pa.Table, uids: np.ndarray):
        spec = self._spec
        file = spec.plan.files[unit[0]]
        done = 0
        for batch, parsed, first, positions in self._requested(unit, uids):
            docs = build_documents(batch, spec, file, first, positions=positions, measure=self._measure,
                                   parsed=parsed).docs
            asked = requests.slice(done, len(positions))
            _check_same_rows(docs, asked, spec.plan.files)
            done += len(positions)
            yield docs, asked

    def _requested(self, unit: tuple[int, int, int, int], uids: np.ndarray):
        """(batch, what parsing found, the batch's first row in its file, positions of the requested
        rows in it) for each batch of a read unit that holds requested rows (`uids`, sorted)."""
        spec = self._spec
        file_index, row_group, first, rows = unit
        file = spec.plan.files[file_index]
        lo, hi = np.searchsorted(uids, make_uids(file_index, np.array([first, first + rows])))
        if hi == lo:
            return  # a unit of the work item with nothing asked of it (unreadable, maybe) is not read
        found = 0
        file.check_unchanged()
        for batch, parsed in iter_row_group(file, row_group, spec.config.read_batch_rows, spec.corpus(file),
                                            (first, rows)):
            base = int(make_uids(file_index, np.array([first]))[0])
            a, b = np.searchsorted(uids, [base, base + batch.num_rows])
            if b > a:
                found += b - a
                yield batch, parsed, first, uids[a:b] - base
            first += batch.num_rows
            if found == hi - lo:
                # Stop early: a quarantined row group may be unreadable past its last good row.
                break
        if found != hi - lo:
            raise DataError(f"{file.display} changed during the run: {hi - lo - found} rows of "
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
            # (work item, request rows): one read per work item (a row group, a slice of one, or
            # small files) holding a requested row.
            | "KeyByReadUnit" >> beam.ParDo(KeyByWorkItemFn(self._spec))
            | "GroupByReadUnit" >> beam.GroupByKey()
            | "ReadRows" >> beam.ParDo(_ReadAgainFn(self._spec, self._schema, self._measure))
            .with_output_types(tuple[pa.RecordBatch, pa.Table])  # see transforms/wire.py
        )
