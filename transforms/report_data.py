"""What report.html needs from a finished run's files, read in bounded memory.

The manifest has the counts; the report also shows distributions and examples that only the output
files hold. Each file is read one row group at a time and only the columns a figure needs; text is
read only for the row groups that hold a wanted example, and only until every filter (and reject
reason) has its few. So memory is one row group's few columns plus fixed-size histograms, whatever
the size of the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hybridmix.transforms.filters import CONTAMINATED, DECONTAMINATE
from hybridmix.transforms.storage import is_remote, open_raw, parquet_threads

# Length histograms: 0, then ten bins per decade from 1 to 10^8 (a text is at most
# `max_text_bytes`, 16 MB by default), so any run's lengths fit the same bins.
LENGTH_EDGES = np.concatenate([[0.0], np.logspace(0, 8, 81)])
# Near-duplicate similarity (estimated Jaccard) in bins of 0.01.
SIMILARITY_EDGES = np.linspace(0.0, 1.0, 101)
EXAMPLES = 3  # per filter, flag and reject reason
CROSS_ORIGIN_EXAMPLES = 8  # clusters
TEXT_CHARS = 600  # characters of an example's text kept for the report


@dataclasses.dataclass
class Example:
    """One document shown in the report: where it came from, why it is there, the start of its text."""

    doc_id: str | None
    source: str | None
    origin: str | None
    text: str | None  # the first TEXT_CHARS characters
    chars: int  # the whole text's length
    detail: str | None = None
    value: float | None = None
    threshold: float | None = None
    comparison: str | None = None
    also_failed: tuple[str, ...] = ()  # other drop filters the document failed


@dataclasses.dataclass
class LengthStats:
    """Exact figures of one group's rows in data/ (repeats included: what training reads)."""

    rows: int = 0
    tokens: int = 0
    chars: int = 0
    tokens_min: int | None = None
    tokens_max: int | None = None

    def add(self, tokens: np.ndarray, chars: np.ndarray) -> None:
        if not len(tokens):
            return
        self.rows += len(tokens)
        self.tokens += int(tokens.sum())
        self.chars += int(chars.sum())
        low, high = int(tokens.min()), int(tokens.max())
        self.tokens_min = low if self.tokens_min is None else min(self.tokens_min, low)
        self.tokens_max = high if self.tokens_max is None else max(self.tokens_max, high)


@dataclasses.dataclass
class ReportData:
    """Summaries of data/, filtered/, rejects/ and duplicates/ for the report."""

    # measure (tokens, chars) -> origin -> counts per LENGTH_EDGES bin
    lengths: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    by_source: dict[str, LengthStats] = dataclasses.field(default_factory=dict)
    by_origin: dict[str, LengthStats] = dataclasses.field(default_factory=dict)
    filter_examples: dict[str, list[Example]] = dataclasses.field(default_factory=dict)
    flag_examples: dict[str, list[Example]] = dataclasses.field(default_factory=dict)
    reject_examples: dict[str, list[Example]] = dataclasses.field(default_factory=dict)
    # cluster size (documents, the kept one included) -> clusters
    cluster_sizes: dict[int, int] = dataclasses.field(default_factory=dict)
    # (kind, origin) -> documents removed
    duplicate_rows: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    near_similarity: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(100, np.int64))
    cross_origin_examples: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def _parquet(path: str) -> Iterator[pq.ParquetFile]:
    if is_remote(path):
        with open_raw(path) as fh:
            yield pq.ParquetFile(fh)
    else:
        yield pq.ParquetFile(path)


def _row_groups(folder: str, files: list[str], wanted: tuple[str, ...]) -> Iterator[tuple[pa.Table, Any]]:
    """(the wanted columns that exist, a reader of more columns of the same rows) per row group."""
    for rel in files:
        path = f"{folder.rstrip('/')}/{rel}"
        threads = parquet_threads(path)
        with _parquet(path) as pf:
            names = set(pf.schema_arrow.names)
            present = [c for c in wanted if c in names]
            for i in range(pf.num_row_groups):
                def more(columns: list[str], i: int = i, pf: pq.ParquetFile = pf) -> pa.Table:
                    return pf.read_row_group(i, columns=[c for c in columns if c in names], use_threads=threads)

                yield pf.read_row_group(i, columns=present, use_threads=threads), more


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:TEXT_CHARS]


def _example(row: dict[str, Any], also: tuple[str, ...] = ()) -> Example:
    text = row.get("text")
    return Example(doc_id=row.get("doc_id"), source=row.get("source"), origin=row.get("origin"), text=_clip(text),
                   chars=len(text) if text is not None else 0, detail=row.get("detail"), value=row.get("value"),
                   threshold=row.get("threshold"), comparison=row.get("comparison"), also_failed=also)


def _first_rows_by_label(labels: pa.ChunkedArray | pa.Array, parents: np.ndarray | None,
                         need: dict[str, int]) -> dict[str, list[int]]:
    """For each label that still needs examples, its first rows in this row group.

    `labels` is one label per row, or (with `parents`) a flattened list column and each value's row.
    """
    values = labels.to_numpy(zero_copy_only=False) if len(labels) else np.array([], dtype=object)
    rows = parents if parents is not None else np.arange(len(values))
    found: dict[str, list[int]] = {}
    for label, missing in need.items():
        if missing <= 0:
            continue
        hits = rows[values == label]
        if len(hits):
            found[label] = list(dict.fromkeys(hits.tolist()))[:missing]
    return found


def _rows(more, columns: list[str], found: dict[str, list[int]]) -> dict[int, dict[str, Any]]:
    """The rows `found` names, as dicts: a row group's text is read, only the examples become Python."""
    wanted = sorted({r for hits in found.values() for r in hits})
    taken = more(columns).take(pa.array(wanted, pa.int64())).to_pylist()
    return dict(zip(wanted, taken))


def _need(examples: dict[str, list[Example]], labels: set[str]) -> dict[str, int]:
    return {label: EXAMPLES - len(examples.get(label, [])) for label in sorted(labels)}


def _scan_data(data: ReportData, folder: str, files: list[str], flags: set[str]) -> None:
    """Lengths of data/ per origin and source, and the first documents carrying each soft flag."""
    for measure in ("tokens", "chars"):
        data.lengths.setdefault(measure, {})
    for table, more in _row_groups(folder, files, ("origin", "source", "tokens", "chars", "quality_flags")):
        tokens = table.column("tokens").to_numpy().astype(np.int64)
        chars = table.column("chars").to_numpy().astype(np.int64)
        for key, stats in (("origin", data.by_origin), ("source", data.by_source)):
            column = table.column(key).to_numpy(zero_copy_only=False)
            for group in np.unique(column):
                mask = column == group
                stats.setdefault(str(group), LengthStats()).add(tokens[mask], chars[mask])
                if key == "origin":
                    for measure, values in (("tokens", tokens[mask]), ("chars", chars[mask])):
                        counts = np.histogram(np.minimum(values, LENGTH_EDGES[-1]), LENGTH_EDGES)[0]
                        hist = data.lengths[measure].setdefault(str(group), np.zeros(len(counts), np.int64))
                        hist += counts
        need = _need(data.flag_examples, flags)
        if "quality_flags" in table.column_names and any(n > 0 for n in need.values()):
            column = table.column("quality_flags").combine_chunks()
            found = _first_rows_by_label(pc.list_flatten(column), pc.list_parent_indices(column).to_numpy(), need)
            if found:
                rows = _rows(more, ["doc_id", "source", "origin", "text"], found)
                for label, hits in found.items():
                    data.flag_examples.setdefault(label, []).extend(_example(rows[r]) for r in hits)


def _scan_filtered(data: ReportData, folder: str, files: list[str], drops: set[str]) -> None:
    """The first documents each drop filter removed, under every filter they failed."""
    columns = ["doc_id", "source", "origin", "filter", "filters_failed", "detail", "value", "threshold",
               "comparison", "text"]
    for table, more in _row_groups(folder, files, ("filter", "filters_failed")):
        if "filters_failed" in table.column_names:
            column = table.column("filters_failed").combine_chunks()
            labels, parents = pc.list_flatten(column), pc.list_parent_indices(column).to_numpy()
        else:  # outputs written before filters_failed existed: the first filter only
            labels, parents = table.column("filter"), None
        need = _need(data.filter_examples, drops | set(pc.unique(labels).to_pylist()))
        found = _first_rows_by_label(labels, parents, need)
        if found:
            rows = _rows(more, columns, found)
            for label, hits in found.items():
                data.filter_examples.setdefault(label, []).extend(
                    _example(rows[r], tuple(f for f in rows[r].get("filters_failed") or [] if f != label))
                    for r in hits)
        if all(n <= 0 for n in _need(data.filter_examples, drops).values()):
            return


def _scan_rejects(data: ReportData, folder: str, files: list[str], reasons: set[str]) -> None:
    """The first rows rejected for each reason."""
    for table, more in _row_groups(folder, files, ("reason",)):
        need = _need(data.reject_examples, reasons | set(table.column("reason").unique().to_pylist()))
        found = _first_rows_by_label(table.column("reason"), None, need)
        if found:
            rows = _rows(more, ["doc_id", "source", "detail", "text", "source_file", "source_row"], found)
            for label, hits in found.items():
                data.reject_examples.setdefault(label, []).extend(_example(rows[r]) for r in hits)
        if all(n <= 0 for n in _need(data.reject_examples, reasons).values()):
            return


def _scan_duplicates(data: ReportData, folder: str, files: list[str]) -> None:
    """Cluster sizes, removed documents per kind and origin, near-duplicate similarity, and the first
    clusters that hold both human and synthetic text."""
    removed_by_size: dict[int, int] = {}
    seen_cross: set[str] = set()
    wanted = ("cluster", "cluster_size", "kind", "similarity", "origin", "kept_origin", "source", "kept_source",
              "generator", "doc_id", "kept_doc_id")
    for table, _ in _row_groups(folder, files, wanted):
        sizes, counts = np.unique(table.column("cluster_size").to_numpy(), return_counts=True)
        for size, n in zip(sizes.tolist(), counts.tolist()):
            removed_by_size[size] = removed_by_size.get(size, 0) + n
        kinds = table.column("kind").to_numpy(zero_copy_only=False)
        origins = table.column("origin").to_numpy(zero_copy_only=False)
        for kind, origin in set(zip(kinds.tolist(), origins.tolist())):
            key = (kind, origin)
            data.duplicate_rows[key] = data.duplicate_rows.get(key, 0) + int(np.sum((kinds == kind) & (origins == origin)))
        near = table.column("similarity").to_numpy()[kinds == "near"]
        data.near_similarity += np.histogram(near, SIMILARITY_EDGES)[0]
        if len(seen_cross) < CROSS_ORIGIN_EXAMPLES:
            crossing = pc.not_equal(table.column("origin"), table.column("kept_origin"))
            for row in table.filter(crossing).to_pylist():
                if len(seen_cross) >= CROSS_ORIGIN_EXAMPLES:
                    break
                if row["cluster"] not in seen_cross:
                    seen_cross.add(row["cluster"])
                    data.cross_origin_examples.append(row)
    # Every cluster of n documents left n - 1 rows in duplicates/ (all but the one kept).
    data.cluster_sizes = {size: rows // (size - 1) for size, rows in sorted(removed_by_size.items()) if size > 1}


def read_report_data(folder: str, manifest: dict[str, Any]) -> ReportData:
    """Summaries of the files the manifest lists under `folder` (a local path or a remote prefix)."""
    outputs = manifest.get("outputs") or {}

    def files(name: str) -> list[str]:
        return sorted(f["path"] for f in outputs.get(name, []) if f.get("rows"))

    quality = manifest.get("quality") or {}
    filters = quality.get("filters") or {}
    drops = {label for label, modes in filters.items() if modes.get("dropped")}
    flags = {label for label, modes in filters.items() if modes.get("flagged")}
    decon = manifest.get("decontamination") or {}
    if decon.get("mode") == "drop":
        drops.add(DECONTAMINATE)
    elif decon:
        flags |= {f"{CONTAMINATED}:{name}" for name in decon.get("sets") or {}}
    data = ReportData()
    _scan_data(data, folder, files("data"), flags)
    _scan_filtered(data, folder, files("filtered"), drops)
    _scan_rejects(data, folder, files("rejects"), set(quality.get("rejects_by_reason") or {}))
    _scan_duplicates(data, folder, files("duplicates"))
    return data
