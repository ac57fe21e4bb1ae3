"""Quality filters: a registry of named, versioned measures, and the FilterQuality transform.

A filter measures one value per document over a whole Arrow batch and says which
documents fail its threshold. Scoring is kept apart from the decision: the config says
whether a failure drops the record (to `filtered/`, with the value and threshold) or only
adds a `quality_flags` entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics
from pydantic import BaseModel, ConfigDict, ValidationError

from schemas.config import FilterSpec, QualityConfig, format_validation_error
from schemas.errors import ConfigError
from schemas.records import FILTERED_SCHEMA
from transforms import columns
from transforms.batches import list_parts, uid_file, uid_row
from transforms.text import analyze

KEPT = "kept"
FILTERED = "filtered"
STATS = "stats"


class TextView:
    """Views of one batch's texts shared by all filters; the costly ones are computed on first use."""

    def __init__(self, texts: pa.Array, prompts: pa.Array | None = None,
                 word_hashes: pa.ListArray | None = None) -> None:
        self.texts = texts
        self.prompts = prompts
        self._word_hashes = word_hashes

    def __len__(self) -> int:
        return len(self.texts)

    @cached_property
    def lower(self) -> pa.Array:
        return pc.utf8_lower(self.texts)

    @cached_property
    def words(self) -> tuple[np.ndarray, np.ndarray]:
        """(word hashes, offsets per text) of the normalized text."""
        if self._word_hashes is not None:
            return list_parts(self._word_hashes)
        analysis = analyze(self.texts)
        return analysis.word_hashes, analysis.word_offsets

    @cached_property
    def word_counts(self) -> np.ndarray:
        return np.diff(self.words[1])


@dataclass(frozen=True)
class Verdict:
    values: np.ndarray  # float64, the measured value per document
    failed: np.ndarray  # bool
    threshold: str  # how the threshold reads in `filtered/`


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QualityFilter:
    """Base of registered filters. Subclasses set `name`, `version`, `Params` and `evaluate`."""

    name: ClassVar[str]
    version: ClassVar[int]
    Params: ClassVar[type[_Params]] = _Params
    description: ClassVar[str] = ""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = self.Params.model_validate(params)

    @property
    def label(self) -> str:
        return f"{self.name}_v{self.version}"

    @property
    def reason(self) -> str:
        return f"quality_{self.name}"

    def evaluate(self, view: TextView) -> Verdict:
        raise NotImplementedError

    def description_of(self, value: float) -> str:
        """One line for `filtered/`'s detail column."""
        return f"{self.name} = {value:g}"


REGISTRY: dict[str, type[QualityFilter]] = {}


def register(cls: type[QualityFilter]) -> type[QualityFilter]:
    if cls.name in REGISTRY:
        raise ValueError(f"quality filter {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


@register
class MinWords(QualityFilter):
    """Fewer words than `min_words` (too short to be useful training text)."""

    name = "min_words"
    version = 1

    class Params(_Params):
        min_words: int = 3

    def evaluate(self, view: TextView) -> Verdict:
        values = view.word_counts.astype(np.float64)
        return Verdict(values, values < self.params.min_words, f"< {self.params.min_words}")


# Phrases models use to decline or to talk about themselves instead of answering.
_REFUSAL_PATTERNS = [
    r"\bas an ai\b",
    r"\bas a language model\b",
    r"\bi(?: am|'m) (?:just |only )?an? (?:ai|artificial intelligence|language model)\b",
    r"\bi(?: am|'m) sorry,? but\b",
    r"\bi apologi[sz]e,? but\b",
    r"\bi (?:cannot|can't|can not|won't|will not|am unable to|'m unable to|am not able to) "
    r"(?:help|assist|provide|fulfill|fulfil|comply|create|generate|write|do that|answer|engage|support)",
    r"\bmy (?:knowledge|training) (?:cutoff|cut-off|data)\b",
    r"\bi do(?: not|n't) have (?:access to )?(?:real-time|personal|the ability)",
]


@register
class Refusal(QualityFilter):
    """Refusals and model disclaimers ("As an AI language model", "I'm sorry, but I can't ...")."""

    name = "refusal"
    version = 1

    class Params(_Params):
        # Only the opening of a long answer decides: a refusal is stated up front, while a
        # long helpful answer may quote such a phrase in passing.
        window_chars: int = 400

    def evaluate(self, view: TextView) -> Verdict:
        head = pc.utf8_slice_codeunits(view.lower, 0, self.params.window_chars)
        head = pc.replace_substring(head, "\u2019", "'")
        hit = np.zeros(len(view), bool)
        for pattern in _REFUSAL_PATTERNS:
            hit |= pc.match_substring_regex(head, pattern).to_numpy(zero_copy_only=False)
        return Verdict(hit.astype(np.float64), hit, "refusal phrase in the opening")


def build_filters(config: QualityConfig) -> list[tuple[FilterSpec, QualityFilter]]:
    """Instantiate the configured filters; unknown names or bad params are config errors."""
    built = []
    for i, spec in enumerate(config.filters):
        cls = REGISTRY.get(spec.name)
        if cls is None:
            raise ConfigError(
                f"quality.filters[{i}].name: unknown filter {spec.name!r}; "
                f"registered: {', '.join(sorted(REGISTRY))}")
        try:
            built.append((spec, cls(spec.params)))
        except ValidationError as exc:
            raise ConfigError(
                f"quality.filters[{i}].params: {format_validation_error(exc)}") from None
    return built


class Scored(NamedTuple):
    kept: pa.RecordBatch
    filtered: pa.RecordBatch
    stats: list[tuple[tuple[str, str], int]]


def _in_scope(spec: FilterSpec, origins: np.ndarray, sources: np.ndarray) -> np.ndarray:
    mask = np.ones(len(origins), bool)
    if spec.origins is not None:
        mask &= np.isin(origins, [o.value for o in spec.origins])
    if spec.sources is not None:
        mask &= np.isin(sources, spec.sources)
    return mask


def score_documents(
    docs: pa.RecordBatch,
    filters: list[tuple[FilterSpec, QualityFilter]],
    file_names: list[str],
    run_id: str,
) -> Scored:
    """Apply every filter to a document batch; the first failing drop-filter decides the reason."""
    n = docs.num_rows
    origins = docs.column("origin").to_numpy(zero_copy_only=False)
    sources = docs.column("source").to_numpy(zero_copy_only=False)
    view = TextView(docs.column("text"), docs.column("prompt"), docs.column("word_hashes"))
    dropped_by = np.full(n, -1, np.int64)
    drop_values = np.full(n, np.nan)
    flags: list[list[str]] = [[] for _ in range(n)]
    applied = np.zeros(n, np.int64)
    failed_any = np.zeros(n, np.int64)
    verdicts: list[Verdict | None] = []
    stats: list[tuple[tuple[str, str], int]] = []
    for index, (spec, filt) in enumerate(filters):
        scope = _in_scope(spec, origins, sources)
        if not scope.any():
            verdicts.append(None)
            continue
        verdict = filt.evaluate(view)
        verdicts.append(verdict)
        failed = verdict.failed & scope
        applied += scope
        failed_any += failed
        if spec.mode == "drop":
            newly = failed & (dropped_by < 0)
            dropped_by[newly] = index
            drop_values[newly] = verdict.values[newly]
        else:
            for row in np.nonzero(failed)[0]:
                flags[row].append(filt.label)
        for source in np.unique(sources[failed]):
            count = int(np.sum(failed & (sources == source)))
            stats.append(((f"_quality:{filt.label}:{spec.mode}", str(source)), count))

    keep = dropped_by < 0
    score = 1.0 - failed_any / np.maximum(applied, 1)
    kept_idx = pa.array(np.nonzero(keep)[0], pa.int64())
    kept = pa.RecordBatch.from_arrays(
        list(docs.take(kept_idx).columns) + [
            pa.array([flags[i] for i in np.nonzero(keep)[0]], pa.list_(pa.string())),
            pa.array(score[keep], pa.float32()),
        ],
        schema=columns.SCORED_DOCUMENT,
    )
    drop_rows = np.nonzero(~keep)[0]
    filtered = _filtered_batch(
        docs, drop_rows, dropped_by[drop_rows], drop_values[drop_rows], filters, verdicts, file_names, run_id)
    for source in np.unique(sources[~keep]):
        stats.append(((str(source), "filtered"), int(np.sum(~keep & (sources == source)))))
    return Scored(kept=kept, filtered=filtered, stats=stats)


def _filtered_batch(
    docs: pa.RecordBatch,
    rows: np.ndarray,
    by: np.ndarray,
    values: np.ndarray,
    filters: list[tuple[FilterSpec, QualityFilter]],
    verdicts: list[Verdict | None],
    file_names: list[str],
    run_id: str,
) -> pa.RecordBatch:
    k = len(rows)
    sub = docs.take(pa.array(rows, pa.int64()))
    uids = sub.column("uid").to_numpy()
    return pa.RecordBatch.from_arrays(
        [
            sub.column("doc_id"),
            sub.column("origin"),
            sub.column("source"),
            pa.array([file_names[f] for f in uid_file(uids)], pa.string()),
            pa.array(uid_row(uids), pa.int64()),
            pa.array([filters[i][1].label for i in by], pa.string()),
            pa.array([filters[i][1].reason for i in by], pa.string()),
            pa.array(values, pa.float64()),
            pa.array([verdicts[i].threshold for i in by], pa.string()),
            pa.array([filters[i][1].description_of(v) for i, v in zip(by, values)], pa.string()),
            sub.column("text"),
            pa.array([run_id] * k, pa.string()),
        ],
        schema=FILTERED_SCHEMA,
    )


class _ScoreFn(beam.DoFn):
    def __init__(self, config: QualityConfig, file_names: list[str], run_id: str) -> None:
        self._config = config
        self._file_names = file_names
        self._run_id = run_id

    def setup(self) -> None:
        self._filters = build_filters(self._config) if self._config.enabled else []
        self._kept = Metrics.counter(FilterQuality.__name__, "kept")
        self._dropped = Metrics.counter(FilterQuality.__name__, "filtered")

    def process(self, docs: pa.RecordBatch):
        scored = score_documents(docs, self._filters, self._file_names, self._run_id)
        self._kept.inc(scored.kept.num_rows)
        for stat in scored.stats:
            yield beam.pvalue.TaggedOutput(STATS, stat)
        if scored.filtered.num_rows:
            self._dropped.inc(scored.filtered.num_rows)
            yield beam.pvalue.TaggedOutput(FILTERED, scored.filtered)
        if scored.kept.num_rows:
            yield scored.kept


class FilterOutputs(NamedTuple):
    kept: beam.PCollection
    filtered: beam.PCollection
    stats: beam.PCollection


class FilterQuality(beam.PTransform):
    """Route each document to `kept` (with flags and a score) or `filtered` (with the reason)."""

    def __init__(self, config: QualityConfig, file_names: list[str], run_id: str) -> None:
        super().__init__()
        build_filters(config)  # fail at construction, naming the bad key
        self._config = config
        self._file_names = file_names
        self._run_id = run_id

    def expand(self, docs: beam.PCollection) -> FilterOutputs:
        routed = docs | "ScoreAndRoute" >> beam.ParDo(
            _ScoreFn(self._config, self._file_names, self._run_id)).with_outputs(FILTERED, STATS, main=KEPT)
        return FilterOutputs(kept=routed[KEPT], filtered=routed[FILTERED], stats=routed[STATS])

