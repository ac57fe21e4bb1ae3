"""Collapse indicators of the written mixture, per origin and per source.

Model collapse shows as text that is less diverse and more repetitive than human text.
These measures are computed inside the pipeline on a deterministic sample of each group's
output rows (the `sample_documents` rows with the smallest seeded hash of their id, which
any runner picks the same way), so human and synthetic text can be compared side by side.
"""

from __future__ import annotations

import zlib
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridmix.transforms import kernels
from hybridmix.transforms.batches import rows_by_value
from hybridmix.transforms.text import analyze, stable_hash64

QUANTILES = (0.1, 0.5, 0.9, 0.99)


def distinct_ngrams(word_hashes: np.ndarray, word_offsets: np.ndarray, n: int) -> tuple[int, int]:
    """(distinct, total) word n-grams over all texts; n-grams never span two texts."""
    keys = kernels.ngram_hashes(word_hashes, word_offsets, n)
    return int(len(np.unique(keys))), int(len(keys))


# Diversity measures fall as a sample grows, so they are taken over exactly the same number of
# words in every group: documents in sample order, the last one cut at this many words.
WINDOW_WORDS = 50_000


def indicators(texts: list[str], tokens: list[int], window_words: int = WINDOW_WORDS) -> dict[str, Any]:
    """Diversity and repetition measures of a sample of texts (see the README for definitions)."""
    if not texts:
        return {"documents": 0}
    analysis = analyze(pa.array(texts, pa.string()))
    word_hashes, offsets = analysis.word_hashes, analysis.word_offsets
    if offsets[-1] > window_words:
        take = int(np.searchsorted(offsets[1:], window_words)) + 1
        last = len(texts[take - 1])
        kept = window_words - int(offsets[take - 1])
        # The zlib ratio reads the same documents, the last one cut at the same share of its words.
        cut = texts[take - 1][:round(last * kept / int(offsets[take] - offsets[take - 1]))]
        texts, tokens = texts[:take - 1] + [cut], tokens[:take]
        word_hashes, offsets = word_hashes[:window_words], np.minimum(offsets[:take + 1], window_words)
    out: dict[str, Any] = {"documents": len(texts), "words": int(offsets[-1])}
    for n in (1, 2, 3):
        distinct, total = distinct_ngrams(word_hashes, offsets, n)
        out[f"distinct_{n}"] = round(distinct / total, 6) if total else None
    _, counts = np.unique(word_hashes, return_counts=True)
    out["vocabulary"] = int(len(counts))
    p = counts / counts.sum() if len(counts) else counts
    out["unigram_entropy_bits"] = round(float(-(p * np.log2(p)).sum()), 6) if len(counts) else None
    raw = "\n".join(texts).encode("utf-8")
    out["zlib_ratio"] = round(len(zlib.compress(raw, 6)) / len(raw), 6) if raw else None
    lengths = np.asarray(tokens, np.float64)
    out["tokens_quantiles"] = {f"p{int(q * 100)}": float(np.quantile(lengths, q, method="lower")) for q in QUANTILES}
    out["tokens_mean"] = round(float(lengths.mean()), 3)
    return out


# Rows whose keys tie (an id that occurs twice, a 64-bit collision) are ordered by text, then token
# count: a total order, so the sample does not depend on which batch a row arrived in.
_SAMPLE_ORDER = [("key", "ascending"), ("text", "ascending"), ("tokens", "ascending")]


class _BottomK(beam.CombineFn):
    """The k rows (key, text, tokens) with the smallest keys: a sample every runner agrees on.

    Inputs and accumulators are Arrow batches (one per batch and group), merged in Arrow: made
    into Python strings (every output row, twice: once per origin, once per source), the
    candidates took 1.0-1.4 s of a 200,000-document run, against about 0.5 s now.
    """

    def __init__(self, k: int) -> None:
        self._k = k

    def create_accumulator(self) -> pa.RecordBatch | None:
        return None

    def add_input(self, acc: pa.RecordBatch | None, sample: pa.RecordBatch) -> pa.RecordBatch | None:
        return self.merge_accumulators([acc, sample])

    def merge_accumulators(self, accs) -> pa.RecordBatch | None:
        parts = [a for a in accs if a is not None and a.num_rows]
        if len(parts) <= 1:
            return parts[0] if parts else None
        merged = pa.Table.from_batches(parts).combine_chunks().to_batches()[0]
        if merged.num_rows <= self._k:
            return merged
        return merged.take(pc.sort_indices(merged, sort_keys=_SAMPLE_ORDER)[:self._k])

    def extract_output(self, acc: pa.RecordBatch | None) -> tuple[list[str], list[int]]:
        if acc is None:
            return [], []
        acc = acc.take(pc.sort_indices(acc, sort_keys=_SAMPLE_ORDER))
        return acc.column("text").to_pylist(), acc.column("tokens").to_pylist()


def _sample_candidates(batch: pa.RecordBatch, seed: int, k: int):
    """Output rows -> ((group kind, group), batch of key, text, tokens): a batch's k smallest per group."""
    keys = stable_hash64(batch.column("id"), f"indicators/{seed}")
    # large_string: a sample of up to a million documents may hold more than 2 GB of text.
    text, tokens = batch.column("text").cast(pa.large_string()), batch.column("tokens").cast(pa.int64())
    for kind in ("origin", "source"):
        for group, rows in rows_by_value(batch.column(kind)):
            chosen = rows[np.argsort(keys[rows], kind="stable")[:k]]
            take = pa.array(chosen)
            yield (kind, group), pa.RecordBatch.from_arrays(
                [pa.array(keys[chosen]), text.take(take), tokens.take(take)], names=["key", "text", "tokens"])


def _measure(element) -> tuple[tuple[str, str], dict[str, Any]]:
    group, (texts, tokens) = element
    return group, indicators(texts, tokens)


def _collect(items: list[tuple[tuple[str, str], dict[str, Any]]], sample_documents: int) -> dict[str, Any]:
    out: dict[str, Any] = {"sample_documents": sample_documents, "by_origin": {}, "by_source": {}}
    for (kind, group), values in sorted(items):
        out[f"by_{kind}"][group] = values
    return out


class CollapseIndicators(beam.PTransform):
    """Output record batches -> one dict of indicators per origin and per source."""

    def __init__(self, seed: int, sample_documents: int) -> None:
        super().__init__()
        self._seed = seed
        self._k = sample_documents

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return (
            records
            | "SampleCandidates" >> beam.FlatMap(_sample_candidates, self._seed, self._k)
            # ((kind, group), batch of the k smallest (key, text, tokens)): bounded by k per group.
            | "BottomK" >> beam.CombinePerKey(_BottomK(self._k))
            | "Measure" >> beam.Map(_measure)
            | "ToList" >> beam.combiners.ToList()
            | "Collect" >> beam.Map(_collect, self._k)
        )


def near_duplicate_rates(counts: dict[str, dict[str, int]], origins: dict[str, str]) -> dict[str, dict[str, float]]:
    """Share of documents entering dedup that were removed as near (and exact) duplicates."""

    def rate(rows: list[dict[str, int]]) -> dict[str, float | None]:
        entered = sum(r["read"] - r["rejected"] - r["filtered"] for r in rows)
        near = sum(r["near_duplicates"] for r in rows)
        exact = sum(r["exact_duplicates"] for r in rows)
        return {"near_duplicate_rate": round(near / entered, 6) if entered else None,
                "exact_duplicate_rate": round(exact / entered, 6) if entered else None}

    out = {"by_source": {s: rate([c]) for s, c in counts.items()}, "by_origin": {}}
    for origin in sorted(set(origins.values())):
        out["by_origin"][origin] = rate([c for s, c in counts.items() if origins.get(s) == origin])
    return out

