"""Read corpora from Parquet: resolve files, validate rows, map columns to provenance fields.

Files are listed and their footers read when the pipeline is built (`plan_inputs`), so a
missing or unreadable file stops the run before any work starts, and the work is split
by row group. Rows are then read as Arrow batches inside the pipeline.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes, FileSystem
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from schemas.config import CorpusConfig, Origin, PipelineConfig
from schemas.errors import DataError, SchemaError
from schemas.reasons import RejectReason
from schemas.records import REJECTION_SCHEMA
from transforms import columns
from transforms.batches import concat, list_array, make_uids, split_batch, table_to_batch, uid_file, uid_row
from transforms.text import analyze, char_counts, content_hashes, count_tokens, stable_hash64

log = logging.getLogger(__name__)

DOCS = "docs"
REJECTED = "rejected"
STATS = "stats"

# Rejected values are kept for inspection, cut to this many characters.
MAX_REJECT_TEXT_CHARS = 4096
_FINGERPRINT_TAIL_BYTES = 1 << 16


@dataclass(frozen=True)
class InputFile:
    """One input file, as planned when the pipeline is built."""

    index: int
    corpus: int
    path: str  # what FileSystems opens
    display: str  # how records and the manifest name it (relative to the config's folder)
    size_bytes: int
    rows: int
    row_group_rows: tuple[int, ...]
    fingerprint: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class BadFile:
    """An input file that cannot be used, kept (quarantine) so its rows are accounted for."""

    corpus: int
    path: str
    display: str
    size_bytes: int | None
    rows: int | None  # known when the footer could be read
    reason: str
    detail: str

    def error(self) -> DataError:
        cls = SchemaError if self.reason == RejectReason.MISSING_COLUMN else DataError
        return cls(self.detail)


@dataclass(frozen=True)
class InputPlan:
    base_dir: str
    files: tuple[InputFile, ...] = field(default_factory=tuple)
    bad_files: tuple[BadFile, ...] = field(default_factory=tuple)

    def work_items(self) -> list[tuple[int, int, int, int]]:
        """(file index, row group, first row in file, rows) for every non-empty row group."""
        items = []
        for f in self.files:
            first = 0
            for rg, rows in enumerate(f.row_group_rows):
                if rows:
                    items.append((f.index, rg, first, rows))
                first += rows
        return items

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for f in self.files:
            h.update(f"{f.display}\x00{f.size_bytes}\x00{f.fingerprint}\n".encode())
        for b in self.bad_files:
            h.update(f"bad\x00{b.display}\x00{b.size_bytes}\x00{b.reason}\n".encode())
        return h.hexdigest()


def _is_remote(path: str) -> bool:
    return "://" in path


def _resolve(pattern: str, base_dir: str) -> str:
    if _is_remote(pattern) or os.path.isabs(pattern):
        return pattern
    return os.path.normpath(os.path.join(base_dir, pattern))


def glob_base(pattern: str) -> str:
    """The folder a glob searches: its path up to the first wildcard."""
    head = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return head if head.endswith(os.sep) else os.path.dirname(head)


def _unstattable_local(pattern: str) -> list[str]:
    if _is_remote(pattern):
        return []
    base = glob_base(pattern)
    if not os.path.isdir(base):
        return []
    regex = re.compile(FileSystem.translate_pattern(pattern))
    missing = []
    for dirpath, _, names in os.walk(base):
        for name in names:
            path = os.path.join(dirpath, name)
            if regex.match(path) and not os.path.exists(path):
                missing.append(path)
    return sorted(missing)


def _display(path: str, base_dir: str) -> str:
    if _is_remote(path):
        return path
    rel = os.path.relpath(path, base_dir)
    return path if rel.startswith("..") else rel


def open_raw(path: str):
    # AUTO compression would gunzip a file named *.gz behind pyarrow's back.
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def open_parquet(path: str) -> pq.ParquetFile:
    if _is_remote(path):
        return pq.ParquetFile(open_raw(path))
    return pq.ParquetFile(path)


def _tail_fingerprint(path: str, size: int) -> str:
    # The footer holds row counts and column statistics: cheap to read, and it changes
    # whenever the content does. Full checksums are computed inside the pipeline.
    with open_raw(path) as fh:
        start = max(0, size - _FINGERPRINT_TAIL_BYTES)
        fh.seek(start)
        return hashlib.sha256(fh.read()).hexdigest()


def corpus_columns(corpus: CorpusConfig) -> dict[str, str]:
    """Input column for each role this corpus reads (role -> column name)."""
    roles = {"text": corpus.text_column}
    if corpus.id_column:
        roles["id"] = corpus.id_column
    if corpus.prompt_column:
        roles["prompt"] = corpus.prompt_column
    for role, column in corpus.columns.model_dump().items():
        if column:
            roles[role] = column
    for column in corpus.keep_columns:
        roles[f"keep:{column}"] = column
    return roles


def _key_for_role(index: int, role: str) -> str:
    if role == "text":
        return f"corpora[{index}].text_column"
    if role == "id":
        return f"corpora[{index}].id_column"
    if role == "prompt":
        return f"corpora[{index}].prompt_column"
    if role.startswith("keep:"):
        return f"corpora[{index}].keep_columns"
    return f"corpora[{index}].columns.{role}"


def plan_inputs(config: PipelineConfig, base_dir: str) -> InputPlan:
    """List every corpus's files and read their footers.

    A glob that matches nothing is always an error. A file that cannot be used raises
    (on_bad_file: fail) or is set aside in `bad_files` (on_bad_file: quarantine).
    """
    files: list[InputFile] = []
    bad: list[BadFile] = []
    seen: dict[str, str] = {}
    for ci, corpus in enumerate(config.corpora):
        matched: list[tuple[str, int]] = []
        for pattern in corpus.paths:
            resolved = _resolve(pattern, base_dir)
            try:
                results = FileSystems.match([resolved])[0].metadata_list
            except Exception as exc:  # noqa: BLE001 - filesystems raise their own types
                raise DataError(f"corpora[{ci}] ({corpus.name}): cannot list {pattern!r}: {exc}") from None
            found = sorted((m.path, m.size_in_bytes) for m in results if not m.path.endswith("/"))
            # Beam's local listing skips entries it cannot stat (a dangling link, say): find
            # them, so an unreadable file is reported instead of silently missing.
            found += [(path, -1) for path in _unstattable_local(resolved)]
            if not found:
                raise DataError(
                    f"corpora[{ci}] ({corpus.name}): no file matches {pattern!r} "
                    f"(resolved to {resolved})")
            matched.extend(found)
        for path, size in sorted(set(matched)):
            if path in seen:
                raise DataError(
                    f"{path}: matched by both corpus {seen[path]!r} and corpus {corpus.name!r}; "
                    "a file belongs to one corpus")
            seen[path] = corpus.name
            described = _describe_file(len(files), ci, corpus, path, size, base_dir)
            if isinstance(described, BadFile):
                if config.on_bad_file == "fail":
                    raise described.error()
                log.warning("quarantined %s: %s", described.display, described.detail)
                bad.append(described)
            else:
                files.append(described)
    return InputPlan(base_dir=base_dir, files=tuple(files), bad_files=tuple(bad))


def _describe_file(index: int, ci: int, corpus: CorpusConfig, path: str, size: int,
                   base_dir: str) -> InputFile | BadFile:
    display = _display(path, base_dir)

    def bad(reason: RejectReason, detail: str, rows: int | None = None) -> BadFile:
        return BadFile(ci, path, display, size if size >= 0 else None, rows, reason.value, detail)

    if size < 0:
        return bad(RejectReason.UNREADABLE_FILE, f"{display}: cannot read: no such file (a dangling link?)")
    if size == 0:
        return bad(RejectReason.UNREADABLE_FILE, f"{display}: file is empty (0 bytes), not Parquet")
    try:
        pf = open_parquet(path)
        meta = pf.metadata
        schema = pf.schema_arrow
        fingerprint = _tail_fingerprint(path, size)
    except Exception as exc:  # noqa: BLE001 - pyarrow and filesystems raise many types for bad files
        return bad(RejectReason.UNREADABLE_FILE, f"{display}: cannot read as Parquet: {exc}")
    names = tuple(schema.names)
    for role, column in corpus_columns(corpus).items():
        if column not in names:
            return bad(RejectReason.MISSING_COLUMN,
                       f"{display}: column {column!r} ({_key_for_role(ci, role)}) not found; "
                       f"the file has {', '.join(names) or 'no columns'}", rows=meta.num_rows)
    rg_rows = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    return InputFile(
        index=index,
        corpus=ci,
        path=path,
        display=display,
        size_bytes=size,
        rows=meta.num_rows,
        row_group_rows=rg_rows,
        fingerprint=fingerprint,
        columns=names,
    )


class BuiltDocuments(NamedTuple):
    docs: pa.RecordBatch
    rejects: pa.RecordBatch


def _as_text(values: pa.Array) -> tuple[pa.Array | None, np.ndarray, str]:
    """Text column as pa.string(), plus a per-row mask of values that are not valid text.

    Returns (strings or None, bad mask, reason when bad).
    """
    t = values.type
    if pa.types.is_dictionary(t):
        values = values.dictionary_decode()
        t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return values.cast(pa.string()), np.zeros(len(values), bool), ""
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        decoded: list[str | None] = []
        bad = np.zeros(len(values), bool)
        for i, raw in enumerate(values.to_pylist()):
            if raw is None:
                decoded.append(None)
                continue
            try:
                decoded.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                decoded.append(None)
                bad[i] = True
        return pa.array(decoded, pa.string()), bad, RejectReason.INVALID_UTF8.value
    return None, np.ones(len(values), bool), RejectReason.TEXT_NOT_STRING.value


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str, ensure_ascii=False)
    return text[:MAX_REJECT_TEXT_CHARS]


def _string_column(batch: pa.RecordBatch, column: str | None) -> pa.Array | None:
    if column is None:
        return None
    values = batch.column(column)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_string(values.type):
        return values
    try:
        return values.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else json.dumps(v, default=str) for v in values.to_pylist()], pa.string())


def _filled(values: pa.Array | None, default: str | None, n: int) -> pa.Array:
    if values is None:
        return pa.array([default] * n, pa.string())
    if default is None:
        return values
    return pc.fill_null(values, default)


def build_documents(
    batch: pa.RecordBatch,
    corpus: CorpusConfig,
    file: InputFile,
    first_row: int,
    tokenizer: str,
    run_id: str,
    positions: np.ndarray | None = None,
    measure: bool = True,
) -> BuiltDocuments:
    """Validate one batch of input rows and map it to the internal document schema.

    `positions` picks rows of the batch (a second read of chosen rows); default: all.
    With `measure=False` only text, provenance and lineage are filled (content hash, derived
    ids, token counts and word hashes are left empty): enough to write a selected row again.
    """
    if positions is None:
        positions = np.arange(batch.num_rows, dtype=np.int64)
    else:
        batch = batch.take(pa.array(positions, pa.int64()))
    n = batch.num_rows
    rows = first_row + positions.astype(np.int64)
    uids = make_uids(file.index, rows)
    reasons = np.full(n, "", dtype=object)
    details = np.full(n, "", dtype=object)

    raw_text = batch.column(corpus.text_column)
    text, bad, bad_reason = _as_text(raw_text)
    if text is None:
        reasons[:] = bad_reason
        details[:] = f"column {corpus.text_column!r} has type {raw_text.type}, not text"
        text = pa.nulls(n, pa.string())
    else:
        reasons[bad] = bad_reason
        details[bad] = "not valid UTF-8"
        nulls = text.is_null().to_numpy(zero_copy_only=False) & ~bad
        reasons[nulls] = RejectReason.NULL_TEXT.value
        details[nulls] = "text is null"
        stripped_len = pc.utf8_length(pc.utf8_trim_whitespace(pc.fill_null(text, ""))).to_numpy(zero_copy_only=False)
        empty = (stripped_len == 0) & (reasons == "")
        reasons[empty] = RejectReason.EMPTY_TEXT.value
        details[empty] = "text is empty or only whitespace"

    ids = _string_column(batch, corpus.id_column)
    if ids is not None:
        id_missing = pc.fill_null(pc.equal(pc.utf8_length(ids), 0), True).to_numpy(zero_copy_only=False)
        fresh = id_missing & (reasons == "")
        reasons[fresh] = RejectReason.NULL_ID.value
        details[fresh] = f"id column {corpus.id_column!r} is null or empty"

    generation = np.full(n, corpus.default_generation, dtype=np.int64)
    if corpus.columns.generation:
        gen_raw = batch.column(corpus.columns.generation)
        try:
            gen_vals = gen_raw.cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            gen_vals = pa.nulls(n, pa.int64())
            fresh = reasons == ""
            reasons[fresh] = RejectReason.BAD_GENERATION.value
            details[fresh] = f"generation column has type {gen_raw.type}, not an integer"
        mask = gen_vals.is_valid().to_numpy(zero_copy_only=False)
        generation[mask] = gen_vals.to_numpy(zero_copy_only=False)[mask]
    lo = 0 if corpus.origin is Origin.HUMAN else 1
    hi = 0 if corpus.origin is Origin.HUMAN else 127
    out_of_range = ((generation < lo) | (generation > hi)) & (reasons == "")
    reasons[out_of_range] = RejectReason.BAD_GENERATION.value
    details[out_of_range] = [
        f"generation {g} is outside {lo}..{hi} for {corpus.origin.value} text" for g in generation[out_of_range]]

    rejected = reasons != ""
    rejects = _rejects_batch(batch, corpus, file, rows[rejected], ids, raw_text, np.nonzero(rejected)[0],
                             reasons[rejected], details[rejected], run_id)

    keep = np.nonzero(~rejected)[0]
    take = pa.array(keep, pa.int64())
    kept_text = text.take(take)
    m = len(keep)
    if measure:
        analysis = analyze(kept_text)
        hashes = content_hashes(analysis.normalized)
        tokens = count_tokens(kept_text, tokenizer, analysis)
        chars = char_counts(kept_text)
        words = list_array(analysis.word_hashes, analysis.word_offsets)
    else:
        hashes = [""] * m
        tokens = chars = np.zeros(m, np.int32)
        words = list_array(np.zeros(0, np.uint32), np.zeros(m + 1, np.int64))
    if ids is not None:
        doc_ids = ids.take(take)
    else:
        doc_ids = pa.array([f"{corpus.name}/{h[:16]}" for h in hashes], pa.string())

    def mapped(role: str, default: str | None) -> pa.Array:
        column = getattr(corpus.columns, role)
        values = _string_column(batch, column)
        return _filled(values.take(take) if values is not None else None, default, m)

    prompt = _string_column(batch, corpus.prompt_column)
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
            prompt.take(take) if prompt is not None else pa.nulls(m, pa.string()),
            _meta(batch, corpus, take),
            pa.array(hashes, pa.string()),
            pa.array(tokens, pa.int32()),
            pa.array(chars, pa.int32()),
            pc.binary_length(kept_text).cast(pa.int32()),
            words,
        ],
        schema=columns.DOCUMENT,
    )
    return BuiltDocuments(docs=docs, rejects=rejects)


def _meta(batch: pa.RecordBatch, corpus: CorpusConfig, take: pa.Array) -> pa.Array:
    if not corpus.keep_columns:
        return pa.nulls(len(take), pa.string())
    kept = batch.select(corpus.keep_columns).take(take).to_pylist()
    return pa.array(
        [json.dumps(row, sort_keys=True, default=str, ensure_ascii=False) for row in kept], pa.string())


def _rejects_batch(
    batch: pa.RecordBatch,
    corpus: CorpusConfig,
    file: InputFile,
    rows: np.ndarray,
    ids: pa.Array | None,
    raw_text: pa.Array,
    index: np.ndarray,
    reasons: np.ndarray,
    details: np.ndarray,
    run_id: str,
) -> pa.RecordBatch:
    k = len(index)
    take = pa.array(index, pa.int64())
    shown = [_shown(v) for v in raw_text.take(take).to_pylist()] if k else []
    return pa.RecordBatch.from_arrays(
        [
            pa.array([corpus.name] * k, pa.string()),
            pa.array([file.display] * k, pa.string()),
            pa.array(rows, pa.int64()),
            ids.take(take) if ids is not None else pa.nulls(k, pa.string()),
            pa.array(list(reasons), pa.string()),
            pa.array(list(details), pa.string()),
            pa.array(shown, pa.string()),
            pa.array([run_id] * k, pa.string()),
        ],
        schema=REJECTION_SCHEMA,
    )


def iter_row_group(file: InputFile, row_group: int, batch_rows: int, columns_: list[str]) -> Iterator[pa.RecordBatch]:
    try:
        pf = open_parquet(file.path)
        yield from pf.iter_batches(batch_size=batch_rows, row_groups=[row_group], columns=columns_)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{file.display}: cannot read row group {row_group}: {exc}") from None


def reject_rows(source: str, display: str, first: int | None, end: int | None, reason: str, detail: str,
                run_id: str, chunk: int = 100_000) -> Iterator[pa.RecordBatch]:
    """Reject records for rows [first, end) of a file that could not be read; one record with no
    row number when not even the row count is known."""
    spans = [(None, 1)] if first is None else [
        (start, min(end, start + chunk) - start) for start in range(first, end, chunk)]
    for start, n in spans:
        rows = pa.nulls(n, pa.int64()) if start is None else pa.array(np.arange(start, start + n), pa.int64())
        yield pa.RecordBatch.from_arrays(
            [pa.array([source] * n, pa.string()), pa.array([display] * n, pa.string()), rows,
             pa.nulls(n, pa.string()), pa.array([reason] * n, pa.string()), pa.array([detail] * n, pa.string()),
             pa.nulls(n, pa.string()), pa.array([run_id] * n, pa.string())],
            schema=REJECTION_SCHEMA,
        )


def _rejected_outputs(source: str, rejects: pa.RecordBatch, read: int):
    """Tagged outputs for rejected rows that also count as read."""
    if read:
        yield beam.pvalue.TaggedOutput(STATS, ((source, "read"), read))
    counted = int(pc.sum(pc.is_valid(rejects.column("source_row"))).as_py() or 0)
    for reason, count in _value_counts(rejects.column("reason")):
        yield beam.pvalue.TaggedOutput(STATS, ((source, f"rejected:{reason}"), count))
    if counted:
        yield beam.pvalue.TaggedOutput(STATS, ((source, "rejected"), counted))
    yield beam.pvalue.TaggedOutput(REJECTED, rejects)


class _ReadRowGroupFn(beam.DoFn):
    """Read one row group, validate and map its rows; route rejects to their own output."""

    def __init__(self, config: PipelineConfig, plan: InputPlan, run_id: str) -> None:
        self._config = config
        self._plan = plan
        self._run_id = run_id

    def setup(self) -> None:
        ns = ReadCorpora.__name__
        self._rows = Metrics.counter(ns, "rows_read")
        self._rejected = Metrics.counter(ns, "rows_rejected")

    def process(self, item: tuple[int, int, int, int]):
        file_index, row_group, first_row, count = item
        file = self._plan.files[file_index]
        corpus = self._config.corpora[file.corpus]
        wanted = sorted(set(corpus_columns(corpus).values()))
        row = first_row
        try:
            for batch in iter_row_group(file, row_group, self._config.read_batch_rows, wanted):
                built = build_documents(batch, corpus, file, row, self._config.tokenizer.kind, self._run_id)
                row += batch.num_rows
                self._rows.inc(batch.num_rows)
                if built.rejects.num_rows:
                    self._rejected.inc(built.rejects.num_rows)
                    yield from _rejected_outputs(corpus.name, built.rejects, 0)
                yield beam.pvalue.TaggedOutput(STATS, ((corpus.name, "read"), batch.num_rows))
                if built.docs.num_rows:
                    yield built.docs
        except DataError as exc:
            end = first_row + count
            detail = f"{file.display}: rows {row}..{end - 1} (row group {row_group}) cannot be read: {exc.message}"
            if self._config.on_bad_file == "fail":
                raise DataError(detail) from None
            log.warning("quarantined %s", detail)
            for rejects in reject_rows(corpus.name, file.display, row, end, RejectReason.UNREADABLE_ROW_GROUP.value,
                                       detail, self._run_id):
                yield from _rejected_outputs(corpus.name, rejects, rejects.num_rows)


def _quarantine_file(bad: BadFile, sources: list[str], run_id: str):
    source = sources[bad.corpus]
    first, end = (None, None) if bad.rows is None else (0, bad.rows)
    for rejects in reject_rows(source, bad.display, first, end, bad.reason, bad.detail, run_id):
        yield from _rejected_outputs(source, rejects, 0 if bad.rows is None else rejects.num_rows)


def _value_counts(values: pa.Array) -> list[tuple[str, int]]:
    return [(s["values"], s["counts"]) for s in pc.value_counts(values).to_pylist()]


class ReadOutputs(NamedTuple):
    docs: beam.PCollection
    rejected: beam.PCollection
    stats: beam.PCollection


class ReadCorpora(beam.PTransform):
    """Read every planned row group as validated document batches (`docs`) and `rejected` rows."""

    def __init__(self, config: PipelineConfig, plan: InputPlan, run_id: str) -> None:
        super().__init__()
        self._config = config
        self._plan = plan
        self._run_id = run_id

    def expand(self, pbegin: beam.pvalue.PBegin) -> ReadOutputs:
        outputs = (
            pbegin
            | "ListRowGroups" >> beam.Create(self._plan.work_items())
            # Spread row groups over workers; Create alone may keep them in one bundle.
            | "SpreadRowGroups" >> beam.Reshuffle()
            | "ReadAndValidate" >> beam.ParDo(_ReadRowGroupFn(self._config, self._plan, self._run_id))
            .with_outputs(REJECTED, STATS, main=DOCS)
        )
        rejected, stats = outputs[REJECTED], outputs[STATS]
        if self._plan.bad_files:
            quarantined = (
                pbegin
                | "ListBadFiles" >> beam.Create(list(self._plan.bad_files))
                | "QuarantineFiles" >> beam.FlatMap(
                    _quarantine_file, [c.name for c in self._config.corpora], self._run_id)
                .with_outputs(REJECTED, STATS)
            )
            rejected = (rejected, quarantined[REJECTED]) | "MergeRejected" >> beam.Flatten()
            stats = (stats, quarantined[STATS]) | "MergeReadStats" >> beam.Flatten()
        return ReadOutputs(docs=outputs[DOCS], rejected=rejected, stats=stats)


def checksum_file(file: InputFile, source: str) -> dict[str, Any]:
    """Manifest entry for one input file, with a SHA-256 of its bytes."""
    h = hashlib.sha256()
    with open_raw(file.path) as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return {
        "path": file.display,
        "source": source,
        "size_bytes": file.size_bytes,
        "rows": file.rows,
        "sha256": h.hexdigest(),
    }


# ---------------------------------------------------------------------------------------
# Ids must be unique across all corpora that have an id column


def _key_by_doc_id(batch: pa.RecordBatch, partitions: int, checked: frozenset[str]):
    """INFO batch -> (doc_id partition, rows) for sources with input ids; other rows pass through."""
    in_scope = np.isin(np.asarray(batch.column("source").to_pylist(), dtype=object), list(checked))
    if (~in_scope).any():
        yield beam.pvalue.TaggedOutput("unchecked", batch.filter(pa.array(~in_scope)))
    if in_scope.any():
        sub = batch.filter(pa.array(in_scope))
        keys = stable_hash64(sub.column("doc_id").to_pylist(), "doc_id")
        yield from split_batch(sub, (keys % np.uint64(partitions)).astype(np.int64), partitions)


class _CheckIdsFn(beam.DoFn):
    """(doc_id partition, INFO rows) -> rows with a unique id; a repeated id fails or is rejected."""

    def __init__(self, on_bad_file: str, file_names: list[str], run_id: str) -> None:
        self._mode = on_bad_file
        self._file_names = file_names
        self._run_id = run_id

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
        where = [f"{self._file_names[f]} row {r}" for f, r in zip(uid_file(uids), uid_row(uids))]
        dup = np.nonzero(repeat)[0]
        if self._mode == "fail":
            i = dup[0]
            raise DataError(f"{where[i]}: doc_id {ids[i]!r} is already used by {where[first_of[i]]} "
                            "(ids must be unique across corpora; on_bad_file: quarantine rejects the repeats)")
        yield table_to_batch(table.filter(pa.array(~repeat)))
        sources = table.column("source").take(pa.array(dup)).combine_chunks()
        rejects = pa.RecordBatch.from_arrays(
            [
                sources,
                pa.array([self._file_names[f] for f in uid_file(uids[dup])], pa.string()),
                pa.array(uid_row(uids[dup]), pa.int64()),
                pa.array(list(ids[dup]), pa.string()),
                pa.array([RejectReason.DUPLICATE_ID.value] * len(dup), pa.string()),
                pa.array([f"doc_id already used by {where[first_of[i]]}" for i in dup], pa.string()),
                pa.nulls(len(dup), pa.string()),
                pa.array([self._run_id] * len(dup), pa.string()),
            ],
            schema=REJECTION_SCHEMA,
        )
        yield from _rejected_outputs_tagged(rejects)


def _rejected_outputs_tagged(rejects: pa.RecordBatch):
    for item in pc.value_counts(rejects.column("source")).to_pylist():
        yield beam.pvalue.TaggedOutput(STATS, ((item["values"], "rejected"), item["counts"]))
        yield beam.pvalue.TaggedOutput(
            STATS, ((item["values"], f"rejected:{RejectReason.DUPLICATE_ID.value}"), item["counts"]))
    yield beam.pvalue.TaggedOutput(REJECTED, rejects)


class CheckIds(beam.PTransform):
    """Keep the first row (by file, then row) of every doc_id; later rows with it fail or are rejected.

    Only corpora with an `id_column` are checked: derived ids are content hashes, and equal
    content is the exact-dedup stage's business.
    """

    def __init__(self, config: PipelineConfig, file_names: list[str], run_id: str) -> None:
        super().__init__()
        self._config = config
        self._file_names = file_names
        self._run_id = run_id

    def expand(self, info: beam.PCollection) -> ReadOutputs:
        checked = frozenset(c.name for c in self._config.corpora if c.id_column)
        parts = self._config.partitions
        keyed = info | "KeyByDocId" >> beam.FlatMap(_key_by_doc_id, parts, checked).with_outputs(
            "unchecked", main="keyed")
        result = (
            keyed["keyed"]
            | "GroupByDocId" >> beam.GroupByKey()
            | "KeepFirstOfEachId" >> beam.ParDo(
                _CheckIdsFn(self._config.on_bad_file, self._file_names, self._run_id))
            .with_outputs(REJECTED, STATS, main=DOCS)
        )
        docs = (result[DOCS], keyed["unchecked"]) | "MergeChecked" >> beam.Flatten()
        return ReadOutputs(docs=docs, rejected=result[REJECTED], stats=result[STATS])
