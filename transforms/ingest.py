"""Read input rows: validate them, map columns to provenance fields, measure the text.

Row groups of the planned files (`transforms.inputs`) are read as Arrow batches inside the
pipeline. Every row becomes a document batch row or a `rejects/` record with its reason; a
file or row group that cannot be read fails the run or is quarantined (`on_bad_file`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from hybridmix.schemas.config import CorpusConfig, Origin
from hybridmix.schemas.errors import DataError
from hybridmix.schemas.reasons import RejectReason
from hybridmix.schemas.records import REJECTION_SCHEMA
from hybridmix.schemas.stats import Figure
from hybridmix.transforms import columns, kernels, parallel, progress
from hybridmix.transforms.batches import list_array, make_uids, table_to_batch
from hybridmix.transforms.earlier import carried_meta, carried_positions
from hybridmix.transforms.faults import crash_point
from hybridmix.transforms.inputs import (
    BATCH_BYTES,
    BadFile,
    InputFile,
    ReadSpec,
    corpus_columns,
    iter_row_group,
    one_line,
)
from hybridmix.transforms.jsonl import ParsedLines
from hybridmix.transforms.stats import STATS, emit, emit_by_source
from hybridmix.transforms.text import (
    analyze,
    char_counts,
    content_hashes,
    count_tokens,
    scripts,
    string_buffers,
    text_hashes,
)

log = logging.getLogger(__name__)

DOCS = "docs"
REJECTED = "rejected"

# Rejected values are kept for inspection, cut to this many characters.
MAX_REJECT_TEXT_CHARS = 4096
# Output ids of upsampled copies are `<doc_id>#r<k>`; input ids may not end like that.
REPEAT_ID_SUFFIX = r"#r[0-9]+$"


class BuiltDocuments(NamedTuple):
    docs: pa.RecordBatch
    rejects: pa.RecordBatch


def is_stringlike(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def is_binarylike(t: pa.DataType) -> bool:
    return (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
            or pa.types.is_binary_view(t))


def decoded(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """String or binary values as valid pa.string(), and a mask of rows that were not valid UTF-8
    (null in the result). Parquet readers do not check that string columns hold UTF-8."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    try:
        # Casting binary to string checks UTF-8; a string column is checked here too.
        out = values.cast(pa.string())
        out.validate(full=True)
        return out, np.zeros(len(values), bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    raw = values.view(pa.large_binary() if pa.types.is_large_string(values.type) else pa.binary()) \
        if is_stringlike(values.type) else values
    texts: list[str | None] = []
    bad = np.zeros(len(values), bool)
    for i, item in enumerate(raw.to_pylist()):
        try:
            texts.append(None if item is None else item.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(None)
            bad[i] = True
    return pa.array(texts, pa.string()), bad


def _string_column(batch: pa.RecordBatch, column: str | None) -> tuple[pa.Array | None, np.ndarray]:
    """A column as strings (other types as JSON), and a mask of rows that were not valid UTF-8."""
    if column is None:
        return None, np.zeros(batch.num_rows, bool)
    values = batch.column(column)
    if pa.types.is_fixed_size_binary(values.type):
        return _fixed_width_text(values), np.zeros(batch.num_rows, bool)
    if is_stringlike(values.type) or is_binarylike(values.type):
        return decoded(values)
    if pa.types.is_floating(values.type):
        # NaN is how pandas writes a missing value in a float column: null, not the id "nan".
        values = pc.if_else(pc.is_nan(values), pa.nulls(len(values), values.type), values)
    try:
        return values.cast(pa.string()), np.zeros(batch.num_rows, bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = _undecodable_rows(values)
        # As these columns always were: keys in their order, non-ASCII escaped.
        return (pa.array([None if v is None or b else json.dumps(_json_ready(v), default=_json_default,
                                                               allow_nan=False)
                          for v, b in zip(_pylist(values, bad), bad)], pa.string()), bad)


def _fixed_width_text(values: pa.Array) -> pa.Array:
    """Fixed-width binary values (keys, not text: Parquet's UUID type reads as 16 bytes) as text: a UUID
    in its standard form (8-4-4-4-12 hex digits), other widths as hex. Decoded as UTF-8, random UUIDs
    were rejected as invalid UTF-8 and others became ids of control characters."""
    if values.type.byte_width == 16:
        return pa.array([None if v is None else str(uuid.UUID(bytes=v)) for v in values.to_pylist()], pa.string())
    return pa.array([None if v is None else v.hex() for v in values.to_pylist()], pa.string())


def _integers(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """A column that Arrow cannot cast to int64 as a whole, cast value by value: the values (null where
    one cannot be cast) and a mask of those rows. Arrow's own cast, not the JSON Lines reader's rule:
    a row must not be kept or rejected by what the other rows of its batch hold (binary b"2", "0x10")."""
    out: list[int | None] = []
    bad = np.zeros(len(values), bool)
    for i in range(len(values)):
        try:
            out.append(values.slice(i, 1).cast(pa.int64())[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out.append(None)
            bad[i] = True
    return pa.array(out, pa.int64()), bad


def _without_dictionaries(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dictionary-encoded columns (what pandas writes for a categorical) as plain ones: every check
    and mapping reads plain string, binary and number columns."""
    if not any(pa.types.is_dictionary(t) for t in batch.schema.types):
        return batch
    arrays = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(
        [pa.field(f.name, a.type) for f, a in zip(batch.schema, arrays)]))


def _holds_strings(t: pa.DataType) -> bool:
    if is_stringlike(t):
        return True
    if pa.types.is_dictionary(t):
        return _holds_strings(t.value_type)
    return any(_holds_strings(t.field(i).type) for i in range(t.num_fields))


def _undecodable_rows(values: pa.Array) -> np.ndarray:
    """Rows of a nested column (list, struct, map) with a string inside that is not valid UTF-8.

    Parquet readers do not check nested strings either, and such a row cannot become a Python value
    (or JSON) at all; rows are looked at one by one only when the column as a whole fails the check."""
    bad = np.zeros(len(values), bool)
    if not _holds_strings(values.type):
        return bad
    try:
        values.validate(full=True)
        return bad
    except pa.ArrowInvalid:
        pass
    for i in range(len(values)):
        try:
            values.slice(i, 1).to_pylist()
        except UnicodeDecodeError:
            bad[i] = True
    return bad


def _pylist(values: pa.Array, bad: np.ndarray) -> list[Any]:
    """Python values of a column, None for the rows `bad` marks (their strings cannot be decoded)."""
    if not bad.any():
        return values.to_pylist()
    return [None if b else values.slice(i, 1).to_pylist()[0] for i, b in enumerate(bad)]


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex()  # binary is not text: a digest or an image's bytes
    return str(value)  # dates, times, decimals: as Python writes them


def _json_ready(value: Any) -> Any:
    """NaN and infinities as null, so every JSON parser reads `meta` (strict ones refuse NaN)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _json(value: Any) -> str:
    """A value as strict JSON (RFC 8259): binary as UTF-8 text, NaN and infinities as null."""
    try:
        return json.dumps(value, sort_keys=True, default=_json_default, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(_json_ready(value), sort_keys=True, default=_json_default, ensure_ascii=False,
                          allow_nan=False)


def _shown_texts(values: pa.Array) -> list[str | None]:
    """Rejected values as text for `rejects/`: cut, undecodable bytes replaced, other types as JSON."""
    if is_stringlike(values.type):
        values = values.view(pa.large_binary() if pa.types.is_large_string(values.type) else pa.binary())
    bad = np.zeros(len(values), bool) if is_binarylike(values.type) else _undecodable_rows(values)
    shown: list[str | None] = []
    for value, undecodable in zip(_pylist(values, bad), bad):
        if undecodable:
            shown.append("(a value holding bytes that are not UTF-8)")
            continue
        if value is None:
            shown.append(None)
            continue
        if isinstance(value, bytes):
            value = value[:4 * MAX_REJECT_TEXT_CHARS].decode("utf-8", errors="replace")
        elif not isinstance(value, str):
            value = json.dumps(value, default=str, ensure_ascii=False)
        shown.append(value[:MAX_REJECT_TEXT_CHARS])
    return shown


def _filled(values: pa.Array | None, default: str | None, n: int) -> pa.Array:
    if values is None:
        return pa.array([default] * n, pa.string())
    if default is None:
        return values
    return pc.fill_null(values, default)


def build_documents(
    batch: pa.RecordBatch,
    spec: ReadSpec,
    file: InputFile,
    first_row: int,
    positions: np.ndarray | None = None,
    measure: bool = True,
    parsed: ParsedLines | None = None,
    joined: tuple[np.ndarray, np.ndarray] | None = None,
) -> BuiltDocuments:
    """Validate one batch of input rows and map it to the internal document schema.

    `positions` picks rows of the batch (a second read of chosen rows); default: all.
    With `measure=False` only text, provenance and lineage are filled (content hash, derived
    ids, token counts and word hashes are left empty): enough to write a selected row again.
    `parsed`: what parsing JSON Lines found (its problems come first; `meta` is made there).
    `joined`: for a batch of rows of several files of one corpus (`InputPlan.read_groups`),
    each row's file index and row in its file; `file` is then any of those files (its corpus) and
    `first_row` is not read.
    """
    corpus = spec.corpus(file)
    if positions is None:
        positions = np.arange(batch.num_rows, dtype=np.int64)
    else:
        batch = batch.take(pa.array(positions, pa.int64()))
        parsed = parsed.take(positions) if parsed is not None else None
    batch = _without_dictionaries(batch)
    n = batch.num_rows
    if joined is None:
        rows = first_row + positions.astype(np.int64)
        uids = make_uids(file.index, rows)
    else:
        row_files, rows = joined[0][positions], joined[1][positions].astype(np.int64)
        uids = make_uids(row_files, rows)
    reasons = np.full(n, "", dtype=object)
    details = np.full(n, "", dtype=object)
    if parsed is not None:
        reasons[:], details[:] = parsed.reasons, parsed.details

    def reject(mask: np.ndarray, reason: RejectReason, detail: str | list[str]) -> None:
        """Give rows in `mask` that have no reason yet this one: the first problem found is reported."""
        fresh = mask & (reasons == "")
        reasons[fresh] = reason.value
        details[fresh] = detail if isinstance(detail, str) else [d for d, f in zip(detail, fresh[mask]) if f]

    raw_text = batch.column(corpus.text_column)
    # A column of Arrow's null type holds only nulls: null texts, not texts of a wrong type.
    if is_stringlike(raw_text.type) or is_binarylike(raw_text.type) or pa.types.is_null(raw_text.type):
        text, bad = decoded(raw_text)
        reject(bad, RejectReason.INVALID_UTF8, f"column {corpus.text_column!r} is not valid UTF-8")
        reject(text.is_null().to_numpy(zero_copy_only=False), RejectReason.NULL_TEXT, "text is null")
        nbytes = pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False)
        limit = spec.config.max_text_bytes
        reject(nbytes > limit, RejectReason.TOO_LARGE,
               [f"text is {b:,} bytes; the limit is {limit:,} (max_text_bytes)" for b in nbytes[nbytes > limit]])
        data, offsets = string_buffers(pc.fill_null(text, ""))
        reject(kernels.blank(data, offsets, kernels.blank_classes()), RejectReason.EMPTY_TEXT,
               "text is empty or only whitespace and invisible format characters")
    else:
        reject(np.ones(n, bool), RejectReason.TEXT_NOT_STRING,
               f"column {corpus.text_column!r} has type {raw_text.type}, not text")
        text = pa.nulls(n, pa.string())

    # Every other string column read is checked too: a record must be readable by every reader.
    strings = {}
    for role, column in corpus_columns(corpus).items():
        if role in ("text", "generation"):
            continue
        if role.startswith("keep:"):
            if parsed is not None:
                continue  # JSON Lines: every line was checked as UTF-8 when parsed
            values = batch.column(column)
            if is_binarylike(values.type):
                continue  # bytes, not text: `meta` holds them as UTF-8 text, or hex where they are not UTF-8
            bad = decoded(values)[1] if is_stringlike(values.type) else _undecodable_rows(values)
        else:
            strings[role], bad = _string_column(batch, column)
        reject(bad, RejectReason.INVALID_UTF8, f"column {column!r} is not valid UTF-8")
    ids = strings.get("id")
    if ids is not None:
        reject(pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(ids)), 0), True)
               .to_numpy(zero_copy_only=False),
               RejectReason.NULL_ID, f"id column {corpus.id_column!r} is null, empty or only whitespace")
        reject(pc.fill_null(pc.match_substring_regex(ids, REPEAT_ID_SUFFIX), False).to_numpy(zero_copy_only=False),
               RejectReason.RESERVED_ID, "ids ending in '#r<number>' are reserved for upsampled copies")

    generation = np.full(n, corpus.default_generation, dtype=np.int64)
    if corpus.columns.generation:
        gen_raw = batch.column(corpus.columns.generation)
        try:
            gen_vals = gen_raw.cast(pa.int64())
        except pa.ArrowNotImplementedError:
            gen_vals = pa.nulls(n, pa.int64())
            reject(np.ones(n, bool), RejectReason.BAD_GENERATION,
                   f"generation column has type {gen_raw.type}, not an integer")
        except pa.ArrowInvalid:
            # A value that is not a whole number ("two", 1.5) rejects its own row, not its batch.
            gen_vals, unreadable = _integers(gen_raw)
            reject(unreadable, RejectReason.BAD_GENERATION,
                   [f"generation {v!r} is not an integer" if isinstance(v, str) else f"generation {v} is not an integer"
                    for v in gen_raw.filter(pa.array(unreadable)).to_pylist()])
        mask = gen_vals.is_valid().to_numpy(zero_copy_only=False)
        generation[mask] = gen_vals.to_numpy(zero_copy_only=False)[mask]
    lo = 0 if corpus.origin is Origin.HUMAN else 1
    hi = 0 if corpus.origin is Origin.HUMAN else 127
    out_of_range = (generation < lo) | (generation > hi)
    reject(out_of_range, RejectReason.BAD_GENERATION,
           [f"generation {g} is outside {lo}..{hi} for {corpus.origin.value} text" for g in generation[out_of_range]])

    rejected = reasons != ""
    bad_rows = pa.array(np.nonzero(rejected)[0], pa.int64())
    shown = _shown_texts(raw_text.take(bad_rows))
    bad_details = details[rejected]
    if parsed is not None:
        # A JSON Lines row is also named by its line, as an editor numbers it (blank lines too).
        at = np.nonzero(rejected)[0]
        shown = [parsed.shown[i] if parsed.shown[i] is not None else t for i, t in zip(at, shown)]
        bad_details = np.array([f"line {parsed.lines[i]}: {d}" for i, d in zip(at, bad_details)], dtype=object)
    if joined is None:
        source_file = file.display
    else:
        source_file = pa.array([spec.plan.files[i].display for i in row_files[rejected]], pa.string())
    rejects = rejections(
        len(bad_rows), source=corpus.name, source_file=source_file, source_rows=rows[rejected],
        doc_ids=ids.take(bad_rows) if ids is not None else None, reasons=reasons[rejected],
        details=bad_details, texts=shown, run_id=spec.run_id)

    keep = np.nonzero(~rejected)[0]
    take = pa.array(keep, pa.int64())
    m = len(keep)

    def kept(values: pa.Array) -> pa.Array:
        # Most batches reject nothing: taking every row would copy the text and columns for nothing.
        return values if m == len(rejected) else values.take(take)

    kept_text = kept(text)
    if measure:
        analysis = analyze(kept_text)
        hashes = content_hashes(analysis.normalized)
        tokenizer = spec.config.tokenizer
        tokens = count_tokens(kept_text, tokenizer.kind, analysis, tokenizer.path)
        chars = char_counts(kept_text)
        script = scripts(analysis)
        words = list_array(analysis.word_hashes, analysis.word_offsets)
    else:
        hashes = pa.array([""] * m, pa.string())
        tokens = chars = np.zeros(m, np.int32)
        script = pa.array([""] * m, pa.string())
        words = list_array(np.zeros(0, np.uint32), np.zeros(m + 1, np.int64))
    if ids is not None:
        doc_ids = kept(ids)
    else:
        doc_ids = pc.binary_join_element_wise(f"{corpus.name}/", pc.utf8_slice_codeunits(hashes, 0, 16), "")

    def mapped(role: str, default: str | None) -> pa.Array:
        values = strings.get(role)
        return _filled(kept(values) if values is not None else None, default, m)

    prompt = strings.get("prompt")
    if parsed is not None and parsed.meta is not None:
        meta = kept(parsed.meta)
    elif file.carried is not None:
        meta = carried_meta(mapped("meta", None), file.carried.run_id)
    else:
        meta = _meta(batch, corpus, take)
    docs = pa.RecordBatch.from_arrays(
        [
            pa.array(uids[keep], pa.int64()),
            doc_ids,
            kept_text,
            pa.array([corpus.origin.value] * m, pa.string()),
            pa.array([corpus.name] * m, pa.string()),
            mapped("generator", corpus.defaults.generator),
            pa.array(generation[keep], pa.int8()),
            mapped("parent_id", None),
            mapped("license", corpus.defaults.license),
            mapped("url", corpus.defaults.url),
            kept(prompt) if prompt is not None else pa.nulls(m, pa.string()),
            meta,
            hashes,
            pa.array(tokens, pa.int32()),
            pa.array(chars, pa.int32()),
            script,
            pc.binary_length(kept_text).cast(pa.int32()),
            pa.array(text_hashes(kept_text), pa.uint64()),
            words,
        ],
        schema=columns.DOCUMENT,
    )
    return BuiltDocuments(docs=docs, rejects=rejects)


def _meta(batch: pa.RecordBatch, corpus: CorpusConfig, take: pa.Array) -> pa.Array:
    keys = corpus.kept_columns
    if not keys:
        return pa.nulls(len(take), pa.string())
    selected = batch.select(sorted(set(keys.values()))).take(take)
    columns = {name: _meta_values(name, selected.column(name)) for name in selected.schema.names}
    return pa.array([_json({key: columns[column][i] for key, column in keys.items()}) for i in range(len(take))],
                    pa.string())


def _meta_values(name: str, column: pa.Array) -> list:
    """A kept column's values for `meta`: as Python has them, and times Python cannot hold (nanoseconds,
    which pandas writes for every datetime; years past 9999) as Arrow writes them: converting them
    stopped the run with an internal error."""
    type_ = column.type
    temporal = pa.types.is_timestamp(type_) or pa.types.is_time(type_) or pa.types.is_duration(type_)
    if temporal and type_.unit == "ns":
        return column.cast(pa.string()).to_pylist()
    try:
        return column.to_pylist()
    except (ValueError, OverflowError, pa.ArrowException) as exc:
        if temporal or pa.types.is_date(type_):
            if pa.types.is_timestamp(type_) and type_.unit in ("s", "ms"):
                try:  # Arrow writes no date past 9999 in s or ms, and does in us
                    column = column.cast(pa.timestamp("us", type_.tz))
                except pa.ArrowInvalid:
                    pass  # past year 294,247: Arrow writes "<value out of range: ...>"
            return column.cast(pa.string()).to_pylist()
        raise DataError(f"keep_columns: column {name!r} ({type_}) holds values hybridmix cannot write into meta "
                        f"({type(exc).__name__}: {one_line(exc)}); cast it to a plain type (string, "
                        "or timestamp[us]) first, or leave it out of keep_columns") from None


def _column(value: Any, n: int, type_: pa.DataType) -> pa.Array:
    """A column of n values: given whole (array, list) or one value for every row (None: nulls)."""
    if value is None:
        return pa.nulls(n, type_)
    if isinstance(value, (pa.Array, pa.ChunkedArray)):
        return value
    if isinstance(value, (np.ndarray, list, tuple)):
        return pa.array(list(value) if isinstance(value, np.ndarray) and value.dtype == object else value, type_)
    return pa.array([value] * n, type_)


def rejections(n: int, *, source: Any, source_file: Any, source_rows: Any, reasons: Any, details: Any,
               run_id: str, doc_ids: Any = None, texts: Any = None) -> pa.RecordBatch:
    """`rejects/` rows; each column is given whole (n values) or as one value for every row."""
    return pa.RecordBatch.from_arrays(
        [
            _column(source, n, pa.string()),
            _column(source_file, n, pa.string()),
            _column(source_rows, n, pa.int64()),
            _column(doc_ids, n, pa.string()),
            _column(reasons, n, pa.string()),
            _column(details, n, pa.string()),
            _column(texts, n, pa.string()),
            _column(run_id, n, pa.string()),
        ],
        schema=REJECTION_SCHEMA,
    )


def reject_rows(source: str, display: str, first: int | None, end: int | None, reason: str, detail: str,
                run_id: str, chunk: int = 100_000) -> Iterator[pa.RecordBatch]:
    """Reject records for rows [first, end) of a file that could not be read; one record with no
    row number when not even the row count is known."""
    spans = [(None, 1)] if first is None else [
        (start, min(end, start + chunk) - start) for start in range(first, end, chunk)]
    for start, n in spans:
        rows = None if start is None else np.arange(start, start + n)
        yield rejections(n, source=source, source_file=display, source_rows=rows, reasons=reason,
                         details=detail, run_id=run_id)


def emit_rejects(rejects: pa.RecordBatch) -> Iterator[beam.pvalue.TaggedOutput]:
    """The rejected rows and their counts: per source, and per source and reason.

    A file whose rows are unknown has one record without a row number: it counts under its
    reason but not as rejected rows, as no rows of it were counted as read either.
    """
    progress.add(progress.REJECTED, rejects.num_rows - rejects.column("source_row").null_count)
    progress.add(progress.REJECT_RECORDS, rejects.num_rows)
    sources = rejects.column("source")
    yield from emit_by_source(Figure.REJECTED, sources.filter(pc.is_valid(rejects.column("source_row"))))
    reasons = rejects.column("reason")
    for reason in pc.unique(reasons).to_pylist():
        yield from emit_by_source(Figure.REJECTED_BY_REASON, sources.filter(pc.equal(reasons, reason)), reason)
    yield beam.pvalue.TaggedOutput(REJECTED, rejects)


class _ReadRowGroupFn(parallel.AheadDoFn):
    """Read one work item (its number in `InputPlan.read_groups`: a row group, a slice of one, or
    several small files), validate and map its rows; route rejects to their own output.

    On a helper thread, one work item ahead of the filters (`parallel.AheadDoFn`).
    """

    def __init__(self, spec: ReadSpec) -> None:
        self._spec = spec

    def setup(self) -> None:
        ns = ReadCorpora.__name__
        self._rows = Metrics.counter(ns, "rows_read")
        self._rejected = Metrics.counter(ns, "rows_rejected")
        self._groups = self._spec.read_groups()

    def work(self, item: int):
        crash_point("read")
        group = self._groups[item]
        if len(group) == 1:
            yield from self._read_unit(*group[0])
        else:
            yield from self._read_joined(group)

    def _read_unit(self, file_index: int, row_group: int, first_row: int, count: int):
        spec = self._spec
        file = spec.plan.files[file_index]
        corpus = spec.corpus(file)
        unreadable: list = []
        for batch, parsed, row in self._batches(file, row_group, first_row, count, unreadable):
            # An earlier output's rows of this corpus's origin, at their own row numbers; the
            # other rows were counted when the run was planned (its manifest `inputs` entry).
            positions = carried_positions(batch, corpus.origin.value) if file.carried is not None else None
            taken = batch.num_rows if positions is None else len(positions)
            built = build_documents(batch, spec, file, row, positions=positions, parsed=parsed)
            yield from self._built(built, taken, corpus.name)
        yield from unreadable

    def _read_joined(self, group: tuple[tuple[int, int, int, int], ...]):
        """Small files of one corpus: read file by file, validated a batch of one schema at a time."""
        spec = self._spec
        read: list[Piece] = []
        unreadable: list = []
        for file_index, row_group, first_row, count in group:
            for batch, parsed, row in self._batches(spec.plan.files[file_index], row_group, first_row, count,
                                                    unreadable):
                read.append(Piece(batch, file_index, np.arange(row, row + batch.num_rows, dtype=np.int64), parsed))
        # The rows read before an error are kept, as when the file is read alone.
        yield from unreadable
        corpus = spec.corpus(spec.plan.files[group[0][0]])
        for batch, parsed, joined in joined_runs(read):
            built = build_documents(batch, spec, spec.plan.files[int(joined[0][0])], 0, parsed=parsed, joined=joined)
            yield from self._built(built, batch.num_rows, corpus.name)

    def _batches(self, file: InputFile, row_group: int, first_row: int, count: int, unreadable: list):
        """(batch, what parsing found, its first row in the file) of one read unit; the outputs that
        quarantine rows that cannot be read (`_unreadable`) go to `unreadable`, and the reading stops."""
        row = first_row
        file.check_unchanged()
        try:
            for batch, parsed in iter_row_group(file, row_group, self._spec.config.read_batch_rows,
                                                self._spec.corpus(file), (first_row, count)):
                yield batch, parsed, row
                row += batch.num_rows
        except DataError as exc:
            unreadable.extend(self._unreadable(file, row_group, row, first_row + count, exc))

    def _built(self, built: BuiltDocuments, taken: int, source: str):
        yield parallel.Count(self._rows, taken)
        progress.add(progress.READ, taken)
        yield emit(Figure.READ, taken, source)
        if built.rejects.num_rows:
            yield parallel.Count(self._rejected, built.rejects.num_rows)
            yield from emit_rejects(built.rejects)
        if built.docs.num_rows:
            yield built.docs

    def _unreadable(self, file: InputFile, row_group: int, row: int, end: int, exc: DataError):
        """Rows row..end-1 of a row group that could not be read: quarantined, or the run fails."""
        spec = self._spec
        corpus = spec.corpus(file)
        detail = f"{file.display}: rows {row}..{end - 1} ({file.part(row_group)}) cannot be read: {exc.message}"
        # Which unread rows a hybridmix corpus would have taken is unknown: they cannot be counted.
        if spec.config.on_bad_file == "fail" or file.carried is not None:
            raise DataError(detail) from None
        log.warning("quarantined %s", detail)
        progress.add(progress.READ, end - row)
        yield emit(Figure.READ, end - row, corpus.name)
        yield emit(Figure.UNREADABLE_ROWS, end - row, corpus.name, file.display)
        for rejects in reject_rows(corpus.name, file.display, row, end, RejectReason.UNREADABLE_ROW_GROUP.value,
                                   detail, spec.run_id):
            yield from emit_rejects(rejects)


class Piece(NamedTuple):
    """Rows of one file, to be validated with other files' (`joined_runs`)."""

    batch: pa.RecordBatch
    file: int  # its index in the plan
    rows: np.ndarray  # each row's row in its file
    parsed: ParsedLines | None  # JSON Lines: what parsing found


def joined_runs(pieces: list[Piece]) -> Iterator[tuple[pa.RecordBatch, ParsedLines | None, tuple[np.ndarray, np.ndarray]]]:
    """Consecutive pieces of one schema (files written alike) and format, each run joined into one
    batch: (batch, what parsing found, (each row's file, its row in the file)) for `build_documents`."""
    run: list[Piece] = []
    for piece in pieces + [None]:
        if run and (piece is None or not piece.batch.schema.equals(run[0].batch.schema)
                    or (piece.parsed is None) != (run[0].parsed is None)):
            batch = run[0].batch if len(run) == 1 else table_to_batch(pa.Table.from_batches([p.batch for p in run]))
            parsed = None if run[0].parsed is None else ParsedLines.concat([p.parsed for p in run])
            files = np.concatenate([np.full(p.batch.num_rows, p.file, np.int64) for p in run])
            yield batch, parsed, (files, np.concatenate([p.rows for p in run]))
            run = []
        if piece is not None:
            run.append(piece)


class _JoinSmallBatchesFn(beam.DoFn):
    """Join batches of few rows into batches of at least `rows` (or `max_bytes` of buffers).

    Small files are joined when they are read (`InputPlan.read_groups`); what still comes out
    short is the last batch of each larger read unit, the rows an earlier output carries (each of
    its files read alone), and batches that validation left few rows in. Every step after pays its
    fixed cost per batch (filters, the scorer, MinHash, one spill file per batch and split). What
    comes out per document does not depend on how documents are batched.
    """

    def __init__(self, rows: int, max_bytes: int) -> None:
        self._target = rows
        self._max_bytes = max_bytes

    def start_bundle(self) -> None:
        self._held: list[pa.RecordBatch] = []
        self._rows = self._bytes = 0

    def process(self, batch: pa.RecordBatch):
        if batch.num_rows >= self._target:
            yield batch
            return
        self._held.append(batch)
        self._rows += batch.num_rows
        self._bytes += batch.nbytes
        if self._rows >= self._target or self._bytes >= self._max_bytes:
            yield self._joined()

    def finish_bundle(self):
        if self._held:
            yield parallel.windowed(self._joined())

    def _joined(self) -> pa.RecordBatch:
        held, self._held = self._held, []
        self._rows = self._bytes = 0
        return held[0] if len(held) == 1 else table_to_batch(pa.Table.from_batches(held, schema=columns.DOCUMENT))


def _quarantine_file(bad: BadFile, sources: Sequence[str], run_id: str):
    source = sources[bad.corpus]
    first, end = (None, None) if bad.rows is None else (0, bad.rows)
    if bad.rows:
        progress.add(progress.READ, bad.rows)
        yield emit(Figure.READ, bad.rows, source)
    for rejects in reject_rows(source, bad.display, first, end, bad.reason, bad.detail, run_id):
        yield from emit_rejects(rejects)


class ReadOutputs(NamedTuple):
    docs: beam.PCollection
    rejected: beam.PCollection
    stats: beam.PCollection


class ReadCorpora(beam.PTransform):
    """Read every planned row group as validated document batches (`docs`) and `rejected` rows."""

    def __init__(self, spec: ReadSpec) -> None:
        super().__init__()
        self._spec = spec

    def expand(self, pbegin: beam.pvalue.PBegin) -> ReadOutputs:
        plan = self._spec.plan
        outputs = (
            pbegin
            # Work items by number (each DoFn makes the list from the plan): a Create of 20,000 small
            # files' read units took 1 s to pickle.
            | "ListRowGroups" >> beam.Create(
                list(range(len(self._spec.read_groups()))))
            # Spread row groups over workers; Create alone may keep them in one bundle.
            | "SpreadRowGroups" >> beam.Reshuffle()
            # Typed, so Beam measures the batches of text by their buffers (transforms/wire.py).
            | "ReadAndValidate" >> beam.ParDo(_ReadRowGroupFn(self._spec)).with_output_types(pa.RecordBatch)
            .with_outputs(REJECTED, STATS, main=DOCS)
        )
        rejected, stats = outputs[REJECTED], outputs[STATS]
        if plan.bad_files:
            quarantined = (
                pbegin
                | "ListBadFiles" >> beam.Create(list(plan.bad_files))
                | "QuarantineFiles" >> beam.FlatMap(
                    _quarantine_file, [c.name for c in self._spec.config.corpora], self._spec.run_id)
                .with_outputs(REJECTED, STATS)
            )
            rejected = (rejected, quarantined[REJECTED]) | "MergeRejected" >> beam.Flatten()
            stats = (stats, quarantined[STATS]) | "MergeReadStats" >> beam.Flatten()
        config = self._spec.config
        # At most BATCH_BYTES a batch, as the reads join small files: the in-process runner reads
        # unsliced (read_slice_bytes unbounded), and joining 21 batches of 200 books made one of 2.7 GB,
        # past Beam's 32-bit size estimate (an OverflowError that stopped the run).
        docs = outputs[DOCS] | "JoinSmallBatches" >> beam.ParDo(
            _JoinSmallBatchesFn(max(1, config.read_batch_rows // 2), min(config.read_slice_bytes, BATCH_BYTES))
        ).with_output_types(pa.RecordBatch)
        return ReadOutputs(docs=docs, rejected=rejected, stats=stats)
