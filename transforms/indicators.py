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
from hybridmix.transforms.parallel import windowed
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


# The sample ends, before `sample_documents` rows, at the row whose text takes it to this many bytes:
# the rows after it hold no word of the window unless words average over 64 bytes (base64, lists of
# URLs), and 2,000 books of 400 KB held 800 MB of text per group (twice: origin and source), which
# took a run of 6,000 books to 12 GB.
SAMPLE_BYTES = 64 * WINDOW_WORDS


def _sample_rows(sizes: np.ndarray, k: int, most_bytes: int) -> int:
    """How many of the rows (text bytes `sizes`, in sample order) the sample holds."""
    ends = np.cumsum(sizes[:k])
    return min(len(ends), int(np.searchsorted(ends, most_bytes, side="left")) + 1)


def _text_bytes(text: pa.Array) -> np.ndarray:
    return pc.binary_length(text).to_numpy(zero_copy_only=False).astype(np.int64)


# Rows whose keys tie (an id that occurs twice, a 64-bit collision) are ordered by text, then token
# count: a total order, so the sample does not depend on which batch a row arrived in.
_SAMPLE_ORDER = [("key", "ascending"), ("text", "ascending"), ("tokens", "ascending")]


class _BottomK(beam.CombineFn):
    """The k rows (key, text, tokens) with the smallest keys, up to the row whose text reaches
    `most_bytes` (`SAMPLE_BYTES`): a sample every runner agrees on.

    Inputs and accumulators are Arrow batches (one per batch and group), merged in Arrow: made
    into Python strings (every output row, twice: once per origin, once per source), the
    candidates took 1.0-1.4 s of a 200,000-document run, against about 0.5 s now. Merging cut
    samples gives the cut sample of all their rows: the rows of one part that are in the whole's
    sample come first in that part, with fewer bytes before them than in the whole.
    """

    def __init__(self, k: int, most_bytes: int = SAMPLE_BYTES) -> None:
        self._k = k
        self._most_bytes = most_bytes

    def create_accumulator(self) -> pa.RecordBatch | None:
        return None

    def add_input(self, acc: pa.RecordBatch | None, sample: pa.RecordBatch) -> pa.RecordBatch | None:
        return self.merge_accumulators([acc, sample])

    def merge_accumulators(self, accs) -> pa.RecordBatch | None:
        parts = [a for a in accs if a is not None and a.num_rows]
        if not parts:
            return None
        merged = parts[0] if len(parts) == 1 else pa.Table.from_batches(parts).combine_chunks().to_batches()[0]
        if merged.num_rows <= self._k and merged.column("text").nbytes < self._most_bytes:
            return merged
        order = pc.sort_indices(merged, sort_keys=_SAMPLE_ORDER)
        sizes = _text_bytes(merged.column("text")).take(order.to_numpy()[:self._k])
        return merged.take(order[:_sample_rows(sizes, self._k, self._most_bytes)])

    def extract_output(self, acc: pa.RecordBatch | None) -> tuple[list[str], list[int]]:
        if acc is None:
            return [], []
        acc = acc.take(pc.sort_indices(acc, sort_keys=_SAMPLE_ORDER))
        return acc.column("text").to_pylist(), acc.column("tokens").to_pylist()


class _Candidates:
    """One group's rows that may still be among its k smallest (key, text, tokens) in a bundle.

    Keys are compared before any text is copied: once k rows are held, a row whose key is above
    the k-th smallest held cannot be in the sample (k rows come before it in `_SAMPLE_ORDER`), so
    its text is never taken. Rows tying that key stay: their text decides.
    """

    def __init__(self, k: int, most_bytes: int = SAMPLE_BYTES) -> None:
        self._k = k
        self._most_bytes = most_bytes
        self._parts: list[pa.RecordBatch] = []
        # The held rows' keys and text bytes, part after part: with small batches (100 rows) a bundle
        # adds to a group thousands of times, and reading them back from dozens of parts each time
        # took 35 of 87 s of a 100,000-row run.
        self._keys = np.zeros(0, np.uint64)
        self._sizes = np.zeros(0, np.int64)
        self._limit: np.uint64 | None = None

    def add(self, keys: np.ndarray, rows: np.ndarray, text: pa.Array, tokens: pa.Array,
            sizes: np.ndarray) -> None:
        """`sizes`: the text's bytes, row by row (`_text_bytes(text)`)."""
        if self._limit is not None:
            rows = rows[keys[rows] <= self._limit]
        if not len(rows):
            return
        chosen = rows[np.argsort(keys[rows], kind="stable")]
        # Ties on the key at the cut are kept: their text decides which of them the sample holds.
        cut = _sample_rows(sizes[chosen], self._k, self._most_bytes)
        chosen = chosen[keys[chosen] <= keys[chosen[cut - 1]]]
        take = pa.array(chosen)
        # large_string: a sample of up to a million documents may hold more than 2 GB of text.
        self._parts.append(pa.RecordBatch.from_arrays(
            [pa.array(keys[chosen]), text.take(take).cast(pa.large_string()), tokens.take(take).cast(pa.int64())],
            names=["key", "text", "tokens"]))
        self._keys = np.concatenate([self._keys, keys[chosen].astype(np.uint64)])
        self._sizes = np.concatenate([self._sizes, sizes[chosen]])
        if len(self._keys) > 4 * self._k or int(self._sizes.sum()) > 4 * self._most_bytes:
            self._parts = [_BottomK(self._k, self._most_bytes).merge_accumulators(self._parts)]
            self._keys = self._parts[0].column("key").to_numpy().astype(np.uint64)
            self._sizes = _text_bytes(self._parts[0].column("text"))
        if len(self._keys) >= self._k or int(self._sizes.sum()) >= self._most_bytes:
            order = np.argsort(self._keys, kind="stable")
            self._limit = self._keys[order[_sample_rows(self._sizes[order], self._k, self._most_bytes) - 1]]

    def batch(self) -> pa.RecordBatch | None:
        return _BottomK(self._k, self._most_bytes).merge_accumulators(self._parts)


class _SampleCandidatesFn(beam.DoFn):
    """Output rows -> ((group kind, group), batch of key, text, tokens): the bundle's k smallest per group.

    Each batch's k smallest rows per group, taken with their text as before, copied most of the
    output's text twice (once per origin, once per source) and merged it again: 0.8 s of the
    runner's thread in a 200,000-document run. `_Candidates` copies only rows that can still be in
    the sample; `_BottomK` merges the bundles' candidates into the same sample.
    """

    def __init__(self, seed: int, k: int, most_bytes: int) -> None:
        self._seed = seed
        self._k = k
        self._most_bytes = most_bytes

    def start_bundle(self) -> None:
        self._groups: dict[tuple[str, str], _Candidates] = {}

    def process(self, batch: pa.RecordBatch):
        keys = stable_hash64(batch.column("id"), f"indicators/{self._seed}")
        text, tokens = batch.column("text"), batch.column("tokens")
        sizes = _text_bytes(text)
        for kind in ("origin", "source"):
            for group, rows in rows_by_value(batch.column(kind)):
                self._groups.setdefault((kind, group), _Candidates(self._k, self._most_bytes)).add(
                    keys, rows, text, tokens, sizes)
        return ()

    def finish_bundle(self):
        groups, self._groups = self._groups, {}
        for group in sorted(groups):
            candidates = groups[group].batch()
            if candidates is not None:
                yield windowed((group, candidates))


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

    def __init__(self, seed: int, sample_documents: int, sample_bytes: int = SAMPLE_BYTES) -> None:
        super().__init__()
        self._seed = seed
        self._k = sample_documents
        self._most_bytes = sample_bytes

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return (
            records
            | "SampleCandidates" >> beam.ParDo(_SampleCandidatesFn(self._seed, self._k, self._most_bytes))
            # ((kind, group), batch of the k smallest (key, text, tokens)): bounded by k rows and
            # about sample_bytes of text per group.
            | "BottomK" >> beam.CombinePerKey(_BottomK(self._k, self._most_bytes))
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

