"""CheckIds: doc_ids are unique across all corpora before anything is deduplicated or selected.

Input ids (a corpus's `id_column`) must not repeat: a repeat fails the run or is rejected.
Derived ids (`<source>/<16 hex of the content hash>`) repeat when a corpus holds the same text
twice: the later rows get `-<k>` appended (k = 1, 2, ... in input order), so every document
has its own id whether or not exact dedup then removes the copies.

The documents the quality filters dropped take part too: their ids go to filtered/ and ledger/,
so a copy the filters dropped and a copy they kept must not share one. The check runs after the
filters (it is a shuffle of the kept documents' small columns, not of their text), so each
filtered row's verdict (renamed, or rejected as a repeat) is applied on its way to filtered/.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from hybridmix.schemas.errors import DataError, FatalError
from hybridmix.schemas.reasons import RejectReason
from hybridmix.schemas.stats import Figure
from hybridmix.transforms import columns, progress
from hybridmix.transforms.batches import concat, make_uids, split_batch, table_to_batch
from hybridmix.transforms.ingest import DOCS, REJECTED, emit_rejects, rejections
from hybridmix.transforms.inputs import ReadSpec
from hybridmix.transforms.scorer import score_histogram
from hybridmix.transforms.stats import STATS, emit, emit_histogram
from hybridmix.transforms.text import stable_hash64


def _partition_ids(doc_ids: pa.Array, derived: list[str]) -> pa.Array:
    """The ids that choose partitions: an id of the form `<corpus>/<16 hex>-<k>`, for a corpus whose
    ids are derived, without its `-<k>`. That is the form CheckIds gives a derived id's repeats, so
    an input id of that form meets, in one partition, the derived ids whose repeats it could clash with."""
    if not derived:
        return doc_ids
    names = "|".join(re.escape(name) for name in derived)
    return pc.replace_substring_regex(doc_ids, rf"^((?:{names})/[0-9a-f]{{16}})-[0-9]+$", r"\1")


# What the check needs of a document the filters dropped (its filtered/ row has no uid).
FILTERED_IDS = pa.schema([
    pa.field("uid", pa.int64(), nullable=False),
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("quality_score", pa.float32()),
])
# Filtered rows whose id the check changed: {uid: new doc_id, or None for a repeat rejected}.
FIXES = "fixes"


def _uids_of_filtered(rows: pa.RecordBatch, file_names: tuple[str, ...]) -> np.ndarray:
    """The uid of each filtered/ row, from its lineage columns."""
    files = pc.index_in(rows.column("source_file"), value_set=pa.array(file_names, pa.string()))
    if files.null_count:
        unknown = rows.column("source_file").filter(files.is_null())[0].as_py()
        raise FatalError(f"a filtered row names input file {unknown!r}, which is not in the run's plan")
    return make_uids(files.to_numpy(zero_copy_only=False).astype(np.int64), rows.column("source_row").to_numpy())


def _key_by_doc_id(batch: pa.RecordBatch, partitions: int, derived: list[str], filtered: bool = False):
    """INFO batch (or FILTERED_IDS batch, `filtered`) -> (doc_id partition, (filtered, rows))."""
    keys = stable_hash64(_partition_ids(batch.column("doc_id"), derived), "doc_id")
    for part, rows in split_batch(batch, (keys % np.uint64(partitions)).astype(np.int64), partitions):
        yield part, (filtered, rows)


def _key_filtered(rows: pa.RecordBatch, file_names: tuple[str, ...], partitions: int, derived: list[str]):
    """filtered/ rows -> (doc_id partition, (True, their FILTERED_IDS rows))."""
    claims = pa.RecordBatch.from_arrays(
        [pa.array(_uids_of_filtered(rows, file_names), pa.int64()), rows.column("doc_id"), rows.column("source"),
         rows.column("quality_score")], schema=FILTERED_IDS)
    yield from _key_by_doc_id(claims, partitions, derived, filtered=True)


def _shares_ids(filtered: pa.ChunkedArray, kept: pa.ChunkedArray) -> bool:
    """Whether a filtered document's id repeats, among them or in `kept`: a hash lookup, so the usual
    partition (no repeat) is not sorted a second time with its filtered documents."""
    return (pc.count_distinct(filtered).as_py() < len(filtered)
            or pc.any(pc.is_in(filtered, value_set=kept.combine_chunks())).as_py() is True)


class _CheckIdsFn(beam.DoFn):
    """(doc_id partition, INFO rows and filtered rows' ids) -> kept rows with a unique id; a repeated
    input id fails or is rejected; FIXES for the filtered rows renamed or rejected."""

    def __init__(self, spec: ReadSpec) -> None:
        self._spec = spec
        self._derived = [c.name for c in spec.config.corpora if not c.id_column]

    def setup(self) -> None:
        self._checked = Metrics.counter(CheckIds.__name__, "documents")
        self._renamed = Metrics.counter(CheckIds.__name__, "ids_numbered")
        self._rejected = Metrics.counter(CheckIds.__name__, "rejected_duplicate_id")

    def process(self, element):
        values = list(element[1])  # read twice below; a runner's grouped values may be a one-pass iterable
        table = concat([rows for filtered, rows in values if not filtered], columns.INFO)
        claims = [rows for filtered, rows in values if filtered]
        progress.add(progress.IDS, table.num_rows)
        self._checked.inc(table.num_rows)
        table = table.take(pc.sort_indices(table, sort_keys=[("doc_id", "ascending"), ("uid", "ascending")]))
        kept = table.num_rows
        # Every id of the partition, kept and filtered, in (doc_id, uid) order; `order` < kept: a kept row.
        keys = table.select(["doc_id", "uid", "source"])
        order = np.arange(kept)
        claimed = pa.Table.from_batches(claims, FILTERED_IDS) if claims else None
        if claimed is not None and _shares_ids(claimed.column("doc_id"), keys.column("doc_id")):
            keys = pa.concat_tables([keys, claimed.select(keys.column_names)])
            order = pc.sort_indices(keys, sort_keys=[("doc_id", "ascending"), ("uid", "ascending")]).to_numpy()
            keys = keys.take(order)
        doc_ids = keys.column("doc_id").combine_chunks()
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
        sources = np.asarray(keys.column("source").to_pylist(), dtype=object)
        derived = np.isin(sources, self._derived)
        # Same text twice in corpora without ids: number the copies instead of rejecting them.
        renamed = repeat & derived & derived[first_of]
        if renamed.any():
            k = np.arange(len(ids)) - first_of
            # `-<k>` past the ids the partition already holds: another corpus's input ids may use that form.
            taken = set(ids[~renamed].tolist())
            if claimed is not None:  # filtered documents' ids too, when none of them repeats
                taken.update(claimed.column("doc_id").to_pylist())
            for i in np.nonzero(renamed)[0]:
                n = int(k[i])
                while f"{ids[i]}-{n}" in taken:
                    n += 1
                ids[i] = f"{ids[i]}-{n}"
                taken.add(ids[i])
        clash = repeat & ~renamed
        uids = keys.column("uid").to_numpy()
        lineage = self._spec.lineage
        dup = np.nonzero(clash)[0]
        if len(dup) and self._spec.config.on_bad_file == "fail":
            i = dup[0]
            raise DataError(f"{lineage.where(uids[i])}: doc_id {ids[i]!r} is already used by "
                            f"{lineage.where(uids[first_of[i]])} "
                            "(ids must be unique across corpora; on_bad_file: quarantine rejects the repeats)")
        is_kept = order < kept
        self._renamed.inc(int(renamed.sum()))
        self._rejected.inc(len(dup))
        if renamed[is_kept].any():
            table = table.set_column(table.schema.get_field_index("doc_id"), columns.INFO.field("doc_id"),
                                     pa.array(list(ids[is_kept]), pa.string()))
        yield table_to_batch(table.filter(pa.array(~clash[is_kept])) if clash[is_kept].any() else table)
        fixed = np.nonzero(~is_kept & (renamed | clash))[0]
        for i in fixed:
            yield beam.pvalue.TaggedOutput(FIXES, (int(uids[i]), None if clash[i] else str(ids[i])))
        dropped = ~is_kept & clash
        if dropped.any():
            # A rejected filtered row leaves filtered/ for rejects/: counted as rejected, no longer as filtered.
            scores = claimed.take(pa.array(order[dropped] - kept))
            for source in np.unique(sources[dropped]):
                mine = sources[dropped] == source
                yield emit(Figure.FILTERED, -int(mine.sum()), str(source))
                histogram = score_histogram(
                    scores.column("quality_score").to_numpy(zero_copy_only=False).astype(np.float64)[mine])
                yield from emit_histogram(Figure.SCORES_FILTERED, -histogram, str(source))
        if not len(dup):
            return
        progress.add(progress.IDS_REPEATED, len(dup))
        yield from emit_rejects(rejections(
            len(dup),
            source=pa.array(list(sources[dup]), pa.string()),
            source_file=lineage.source_files(uids[dup]),
            source_rows=lineage.source_rows(uids[dup]),
            doc_ids=list(ids[dup]),
            reasons=RejectReason.DUPLICATE_ID.value,
            details=[f"doc_id already used by {lineage.where(uids[first_of[i]])}" for i in dup],
            run_id=self._spec.run_id,
        ))


def _fix_filtered(rows: pa.RecordBatch, fixes: dict[int, str | None], file_names: tuple[str, ...]):
    """filtered/ rows with CheckIds' verdicts applied: a repeated id renamed, or the row left out
    (it went to rejects/)."""
    if not fixes:
        yield rows
        return
    uids = _uids_of_filtered(rows, file_names)
    verdicts = [fixes.get(int(u), False) for u in uids]
    if all(v is False for v in verdicts):
        yield rows
        return
    ids = [old if new is False else new for old, new in zip(rows.column("doc_id").to_pylist(), verdicts)]
    at = rows.schema.get_field_index("doc_id")
    rows = rows.set_column(at, rows.schema.field(at), pa.array(ids, pa.string()))
    keep = np.array([v is not None for v in verdicts])
    if keep.any():
        yield rows if keep.all() else rows.filter(pa.array(keep))


class IdOutputs(NamedTuple):
    docs: beam.PCollection
    filtered: beam.PCollection  # the filtered/ rows, with their ids checked too
    rejected: beam.PCollection
    stats: beam.PCollection


class CheckIds(beam.PTransform):
    """(kept INFO rows, filtered/ rows) -> the same, each id used once: the first row (by file, then
    row) of every input id keeps it, kept or filtered; repeated derived ids are numbered."""

    def __init__(self, spec: ReadSpec, partitions: int) -> None:
        super().__init__()
        self._spec = spec
        self._partitions = partitions

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection]) -> IdOutputs:
        info, filtered = inputs
        derived = [c.name for c in self._spec.config.corpora if not c.id_column]
        names = self._spec.lineage.file_names
        result = (
            (
                info | "KeyByDocId" >> beam.FlatMap(_key_by_doc_id, self._partitions, derived),
                filtered | "KeyFilteredByDocId" >> beam.FlatMap(_key_filtered, names, self._partitions, derived),
            )
            | "MergeIds" >> beam.Flatten()
            | "GroupByDocId" >> beam.GroupByKey()
            | "KeepFirstOfEachId" >> beam.ParDo(_CheckIdsFn(self._spec)).with_outputs(REJECTED, STATS, FIXES,
                                                                                        main=DOCS)
        )
        fixes = result[FIXES] | "CollectFixes" >> beam.combiners.ToDict()
        checked = filtered | "FixFilteredIds" >> beam.FlatMap(_fix_filtered, beam.pvalue.AsSingleton(fixes), names)
        return IdOutputs(docs=result[DOCS], filtered=checked, rejected=result[REJECTED], stats=result[STATS])
