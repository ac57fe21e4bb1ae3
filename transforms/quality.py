"""FilterQuality: apply the configured quality filters (`transforms.filters`) to document batches."""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from hybridmix.schemas.config import DecontaminateConfig, Origin, QualityConfig
from hybridmix.transforms import parallel, progress
from hybridmix.transforms.faults import crash_point
from hybridmix.transforms.filters import Contamination, build_filters, score_documents
from hybridmix.transforms.inputs import Lineage
from hybridmix.transforms.scorer import load_scorer
from hybridmix.transforms.stats import STATS

KEPT = "kept"
FILTERED = "filtered"


class _ScoreFn(parallel.AheadDoFn):
    """Filters, decontamination and the scorer, on a helper thread one batch ahead of the sketch."""

    def __init__(self, config: QualityConfig, lineage: Lineage, scorer_path: str | None,
                 decontaminate: DecontaminateConfig | None) -> None:
        self._config = config
        self._lineage = lineage
        self._scorer_path = scorer_path
        self._decontaminate = decontaminate
        self._scored = frozenset(o.value for o in Origin if config.scores(o))

    def setup(self) -> None:
        self._filters = build_filters(self._config) if self._config.enabled else []
        self._scorer = load_scorer(self._scorer_path).score if self._scored else None
        self._kept = Metrics.counter(FilterQuality.__name__, "kept")
        self._dropped = Metrics.counter(FilterQuality.__name__, "filtered")

    def work(self, docs: pa.RecordBatch, index=None):
        crash_point("filtered")
        contamination = Contamination(index, self._decontaminate) if index is not None else None
        scored = score_documents(docs, self._filters, self._lineage, self._scorer, self._scored, contamination)
        yield parallel.Count(self._kept, scored.kept.num_rows)
        progress.add(progress.SCORED, docs.num_rows)
        progress.add(progress.FILTERED, scored.filtered.num_rows)
        for item in scored.stats:
            yield beam.pvalue.TaggedOutput(STATS, item)
        if scored.filtered.num_rows:
            yield parallel.Count(self._dropped, scored.filtered.num_rows)
            yield beam.pvalue.TaggedOutput(FILTERED, scored.filtered)
        if scored.kept.num_rows:
            yield scored.kept


class FilterOutputs(NamedTuple):
    kept: beam.PCollection
    filtered: beam.PCollection
    stats: beam.PCollection


class FilterQuality(beam.PTransform):
    """Route each document to `kept` (with flags and its quality score) or `filtered` (with the reason).

    `scorer_path` is the scorer file the config names, resolved (None: the bundled scorer).
    With `decontaminate` and an evaluation index (a PCollection of one `EvalIndex`), documents
    holding an evaluation item are routed to `filtered` first (or flagged).
    """

    def __init__(self, config: QualityConfig, lineage: Lineage, scorer_path: str | None = None,
                 decontaminate: DecontaminateConfig | None = None, index: beam.PCollection | None = None) -> None:
        super().__init__()
        self._config = config
        self._lineage = lineage
        self._scorer_path = scorer_path
        self._decontaminate = decontaminate
        self._index = index

    def expand(self, docs: beam.PCollection) -> FilterOutputs:
        side = {} if self._index is None else {"index": beam.pvalue.AsSingleton(self._index)}
        routed = docs | "ScoreAndRoute" >> beam.ParDo(
            _ScoreFn(self._config, self._lineage, self._scorer_path, self._decontaminate), **side
        ).with_output_types(pa.RecordBatch).with_outputs(FILTERED, STATS, main=KEPT)  # see transforms/wire.py
        return FilterOutputs(kept=routed[KEPT], filtered=routed[FILTERED], stats=routed[STATS])
