"""How a DoFn reports run statistics: one output tag and the helpers that fill it.

The figures themselves are declared in `schemas/stats.py`; `build_pipeline` sums everything
emitted here and the manifest reads the sums back with `RunStats`.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridmix.schemas.stats import Figure, stat

STATS = "stats"


def emit(figure: Figure, value: int, source: str = "", detail: str = "") -> beam.pvalue.TaggedOutput:
    return beam.pvalue.TaggedOutput(STATS, stat(figure, value, source, detail))


def emit_by_source(figure: Figure, sources: pa.Array | np.ndarray, detail: str = "") -> Iterator[beam.pvalue.TaggedOutput]:
    """One statistic per distinct source: how many of `sources` name it."""
    if not isinstance(sources, (pa.Array, pa.ChunkedArray)):
        sources = pa.array(np.asarray(sources, dtype=object), pa.string())
    for item in pc.value_counts(sources).to_pylist():
        yield emit(figure, item["counts"], item["values"], detail)


def emit_histogram(figure: Figure, counts: np.ndarray, source: str) -> Iterator[beam.pvalue.TaggedOutput]:
    """A histogram as one statistic per non-empty bin (detail: the bin's index)."""
    for index in np.nonzero(counts)[0]:
        yield emit(figure, int(counts[index]), source, str(int(index)))
