"""BuildEvalIndex: the evaluation sets' n-gram index, built once per run as a side input.

Each evaluation file is read and its items analysed into word hashes by its own worker; one
combine builds the index every `FilterQuality` worker holds (`transforms.decontam_core`).
Evaluation sets are small next to a corpus (10,000 items of 100 words: about 750,000 n-grams,
50-80 MB with the lookup tables); `decontaminate.max_index_ngrams` bounds the index, and a run
whose sets exceed it stops with a config error before any output is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import NamedTuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from hybridmix.schemas.config import DecontaminateConfig, EvalSetConfig
from hybridmix.schemas.errors import ConfigError, DataError
from hybridmix.schemas.reasons import RejectReason
from hybridmix.schemas.stats import Figure, stat
from hybridmix.transforms import jsonl
from hybridmix.transforms.decontam_core import EvalIndex, PartialIndex, build_index, item_words
from hybridmix.transforms.inputs import _display, match_files
from hybridmix.transforms.jsonl import decompressed_bytes, is_jsonl_name
from hybridmix.transforms.storage import open_raw, sha256_file


class EvalFile(NamedTuple):
    set_name: str
    path: str
    display: str
    size: int
    sha256: str
    format: str


def _file_format(spec: EvalSetConfig, path: str) -> str:
    if spec.format:
        return spec.format
    return "jsonl" if is_jsonl_name(path) else "parquet"


def plan_eval_sets(config: DecontaminateConfig, base_dir: str) -> tuple[EvalFile, ...]:
    """Every evaluation file with its size and checksum; a pattern that matches nothing is an error."""
    files: list[EvalFile] = []
    for si, spec in enumerate(config.against):
        for pattern in spec.paths:
            found = match_files(pattern, base_dir, f"decontaminate.against[{si}]", spec.name)
            for path, size, _ in found:
                try:
                    checksum = sha256_file(path)
                except OSError as exc:
                    raise DataError(f"{path}: cannot read evaluation file: {exc}") from None
                file = EvalFile(spec.name, path, _display(path, base_dir), size, checksum, _file_format(spec, path))
                _check_columns(file, spec)
                files.append(file)
    return tuple(sorted(set(files), key=lambda f: (f.set_name, f.path)))


def _columns(file: EvalFile) -> list[str]:
    with open_raw(file.path) as fh:
        if file.format == "parquet":
            return pq.read_schema(fh).names
        data = fh.read()
    for line in decompressed_bytes(data).splitlines():  # JSON Lines: the keys of the first row
        if line.strip():
            row = json.loads(line)
            return list(row) if isinstance(row, dict) else []
    return []


def _check_columns(file: EvalFile, spec: EvalSetConfig) -> None:
    try:
        names = _columns(file)
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise DataError(f"{file.display}: cannot read evaluation set {spec.name!r} as {file.format}: {exc}") from None
    _require_columns(names, file, spec)


def _require_columns(names: list[str], file: EvalFile, spec: EvalSetConfig) -> None:
    for role, column in (("text_column", spec.text_column), ("id_column", spec.id_column)):
        if column is not None and column not in names:
            raise DataError(f"decontaminate.against ({spec.name}).{role}: {file.display} has no column "
                            f"{column!r} (columns: {', '.join(map(str, names)) or 'none'})")


def read_eval_file(file: EvalFile, config: DecontaminateConfig) -> PartialIndex:
    """One evaluation file's n-gram keys; the file must be the one the run planned with."""
    with open_raw(file.path) as fh:
        data = fh.read()
    if hashlib.sha256(data).hexdigest() != file.sha256:
        raise DataError(f"{file.display}: evaluation file changed during the run; run again")
    spec = next(s for s in config.against if s.name == file.set_name)
    try:
        table = (_jsonl_table(decompressed_bytes(data), file, spec) if file.format == "jsonl"
                 else pq.read_table(pa.BufferReader(data)))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{file.display}: cannot read evaluation set {spec.name!r} as {file.format}: {exc}") from None
    _require_columns(table.column_names, file, spec)
    texts = table.column(spec.text_column).combine_chunks()
    if not pa.types.is_string(texts.type) and not pa.types.is_large_string(texts.type):
        try:
            texts = texts.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(f"decontaminate.against ({spec.name}).text_column: {spec.text_column!r} in "
                            f"{file.display} is {texts.type}, not text") from None
    texts = texts.cast(pa.string())
    if spec.id_column is not None:
        ids = [str(v) if v is not None else f"{os.path.basename(file.path)}:{row}"
               for row, v in enumerate(table.column(spec.id_column).to_pylist())]
    else:
        ids = [f"{os.path.basename(file.path)}:{row}" for row in range(table.num_rows)]
    return item_words(spec.name, ids, texts)


def _jsonl_table(data: bytes, file: EvalFile, spec: EvalSetConfig) -> pa.Table:
    """An evaluation set's text and id keys, read as a corpus reads JSON Lines: record by record, so
    other keys may hold any type (Arrow's reader inferred one type per key over the whole file, and an
    unused `meta` that was an object in one record and a string in the next stopped the run), and an
    id may be a number in one record and a string in another. A record without the text key has no
    text; a line that is not a JSON object, or a text that is not a string, is an error naming the line:
    an item left out would let a contaminated document through."""
    roles = {"text": spec.text_column, **({"id": spec.id_column} if spec.id_column else {})}
    batch, parsed = jsonl.parse_records(list(jsonl.records_of(data)),
                                        jsonl.Roles.of(roles, f"decontaminate.against ({spec.name}).text_column"))
    for line, reason, detail in zip(parsed.lines, parsed.reasons, parsed.details):
        if reason and reason != RejectReason.MISSING_COLUMN.value:
            raise DataError(f"{file.display}: line {line} of evaluation set {spec.name!r}: {detail}")
    return pa.Table.from_batches([batch])


class _MergeIndex(beam.CombineFn):
    def __init__(self, config: DecontaminateConfig) -> None:
        self._config = config

    def create_accumulator(self) -> PartialIndex:
        return PartialIndex()

    def add_input(self, acc: PartialIndex, part: PartialIndex) -> PartialIndex:
        return acc.merge(part)

    def merge_accumulators(self, accs) -> PartialIndex:
        out = PartialIndex()
        for acc in accs:
            out.merge(acc)
        return out

    def extract_output(self, acc: PartialIndex) -> EvalIndex:
        try:
            config = self._config
            index = build_index(acc, [s.name for s in config.against], config.ngram, config.min_item_words,
                                config.max_items_per_ngram, config.max_index_ngrams)
        except ValueError as exc:
            raise ConfigError(f"decontaminate: {exc}; raise max_index_ngrams or split the run") from None
        for i, spec in enumerate(self._config.against):
            figures = index.report["sets"][spec.name]
            if not figures["indexed"]:
                # A set that matches nothing would let every run pass as decontaminated against it.
                raise DataError(
                    f"decontaminate.against[{i}] ({spec.name}): none of its {figures['items']:,} items can be "
                    f"matched ({figures['too_short']:,} shorter than min_item_words {self._config.min_item_words}, "
                    f"{figures['boilerplate_only']:,} only boilerplate); check its files and text_column "
                    f"{spec.text_column!r}")
        return index


def index_stats(index: EvalIndex):
    for name, figures in index.report["sets"].items():
        for detail, value in figures.items():
            yield stat(Figure.EVAL_INDEX, value, name, detail)
    yield stat(Figure.EVAL_INDEX, index.report["common_ngrams_ignored"], "", "common_ngrams_ignored")


class EvalIndexOutputs(NamedTuple):
    index: beam.PCollection  # one EvalIndex
    stats: beam.PCollection


class BuildEvalIndex(beam.PTransform):
    def __init__(self, config: DecontaminateConfig, files: tuple[EvalFile, ...]) -> None:
        super().__init__()
        self._config = config
        self._files = files

    def expand(self, p: beam.pvalue.PBegin) -> EvalIndexOutputs:
        index = (
            p
            | "ListEvalFiles" >> beam.Create(list(self._files))
            | "ReadEvalFiles" >> beam.Map(read_eval_file, self._config)
            | "MergeIndex" >> beam.CombineGlobally(_MergeIndex(self._config))
        )
        return EvalIndexOutputs(index=index, stats=index | "IndexStats" >> beam.FlatMap(index_stats))
