import math
import zlib

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.testing.util import assert_that, equal_to

from hybridmix.transforms.indicators import (
    CollapseIndicators,
    distinct_ngrams,
    indicators,
    near_duplicate_rates,
)
from hybridmix.transforms.text import analyze, stable_hash64
from tests.builders import words
from tests.conftest import local_pipeline


def test_known_values():
    out = indicators(["a a a a", "b c"], [4, 2])
    # unigrams: a a a a b c -> 3 distinct of 6; bigrams (within texts): aa aa aa | bc -> 2 of 4
    assert out["distinct_1"] == pytest.approx(3 / 6)
    assert out["distinct_2"] == pytest.approx(2 / 4)
    assert out["distinct_3"] == pytest.approx(1 / 2)  # aaa aaa | (none in "b c")
    assert out["vocabulary"] == 3
    p = np.array([4, 1, 1]) / 6
    assert out["unigram_entropy_bits"] == pytest.approx(-(p * np.log2(p)).sum(), abs=1e-6)
    raw = "a a a a\nb c".encode()
    assert out["zlib_ratio"] == pytest.approx(len(zlib.compress(raw, 6)) / len(raw), abs=1e-6)
    assert out["tokens_quantiles"]["p50"] == 2.0 and out["tokens_mean"] == 3.0


def test_uniform_text_has_maximal_entropy_and_diversity():
    words = [f"w{i}" for i in range(64)]
    out = indicators([" ".join(words)], [64])
    assert out["distinct_1"] == 1.0 and out["distinct_3"] == 1.0
    assert out["unigram_entropy_bits"] == pytest.approx(math.log2(64))


def test_repetition_lowers_every_diversity_measure():
    varied = indicators([f"alpha beta gamma delta {i} epsilon zeta" for i in range(50)], [7] * 50)
    looped = indicators(["alpha beta gamma delta epsilon zeta"] * 50, [6] * 50)
    for key in ("distinct_1", "distinct_2", "distinct_3", "zlib_ratio", "vocabulary"):
        assert looped[key] < varied[key], key


def test_diversity_is_measured_over_the_same_number_of_words():
    texts = [" ".join(f"t{i}w{j}" for j in range(100)) for i in range(50)]
    out = indicators(texts, [100] * 50, window_words=1000)
    assert out["words"] == 1000 and out["documents"] == 10


def test_near_duplicate_rates():
    counts = {"a": {"read": 10, "rejected": 1, "filtered": 1, "near_duplicates": 2, "exact_duplicates": 4},
              "b": {"read": 10, "rejected": 0, "filtered": 0, "near_duplicates": 0, "exact_duplicates": 0}}
    rates = near_duplicate_rates(counts, {"a": "synthetic", "b": "human"})
    assert rates["by_source"]["a"] == {"near_duplicate_rate": 0.25, "exact_duplicate_rate": 0.5}
    assert rates["by_origin"]["human"]["near_duplicate_rate"] == 0.0


def _check_indicators(rows: list[tuple[str, str]], origin: str, source: str, batch_rows: int, expected: dict,
                      **options) -> None:
    """CollapseIndicators over rows (id, text) of one origin and source, in batches of `batch_rows`,
    gives `expected`."""
    parts = [pa.RecordBatch.from_pydict({
        "id": [i for i, _ in chunk], "text": [t for _, t in chunk], "origin": [origin] * len(chunk),
        "source": [source] * len(chunk), "tokens": [len(t.split()) for _, t in chunk]})
        for chunk in (rows[i:i + batch_rows] for i in range(0, len(rows), batch_rows))]
    p = local_pipeline()
    out = p | beam.Create(parts) | CollapseIndicators(**options)
    assert_that(out, equal_to([expected]))
    p.run().wait_until_finish()


@pytest.mark.parametrize("batch_rows", [1, 7, 40])
def test_sample_is_the_same_whatever_the_batching(batch_rows):
    # Ids that occur twice tie on the key: the sample must still not depend on the batching.
    ids = [f"d{i}" for i in range(36)] + ["d3", "d17", "d3", "d30"]
    texts = {i: f"text number {i} " + "filler " * (int(i[1:]) % 5) for i in ids}

    keys = stable_hash64(ids, "indicators/3")
    sample = [ids[k] for k in np.argsort(keys, kind="stable")[:10]]
    assert len(set(sample)) < 10  # the copies are in the sample
    measured = indicators([texts[i] for i in sample], [len(texts[i].split()) for i in sample])
    expected = {"sample_documents": 10, "by_origin": {"human": measured}, "by_source": {"wiki": measured}}
    _check_indicators([(i, texts[i]) for i in ids], "human", "wiki", batch_rows, expected,
                      seed=3, sample_documents=10)


@pytest.mark.parametrize("batch_rows", [1, 37])
@pytest.mark.parametrize("smallest_first", [True, False])
def test_sample_of_many_batches_is_the_k_smallest_with_ties_decided_by_text(batch_rows, smallest_first):
    # Rows whose key is above the k-th smallest seen so far are never taken: that must not change
    # the sample. The id at the sample's edge occurs three times with other texts, so the rows
    # tying its key are ordered by text, whichever batch each arrives in.
    base = [f"d{i}" for i in range(1500)]
    rank = np.argsort(stable_hash64(base, "indicators/5"), kind="stable")
    edge = base[int(rank[9])]
    rows = [(i, f"text {i} " + "word " * (n % 4)) for n, i in enumerate(base)]
    # The ten smallest first: the edge's key is the limit before its other rows arrive. In random
    # order, the rows that pass the limit pile up past 4 x 10 and are cut back to 10 on the way.
    first = 10 if smallest_first else 0
    rows = [rows[k] for k in rank[:first]] + [rows[k] for k in np.random.default_rng(1).permutation(rank[first:])]
    rows += [(edge, "zz after the others"), (edge, "aa before the others"), (edge, "text " + edge + " again")]
    keys = stable_hash64([i for i, _ in rows], "indicators/5")
    ranked = sorted(range(len(rows)), key=lambda k: (int(keys[k]), rows[k][1], len(rows[k][1].split())))[:10]
    sample = [rows[k][1] for k in ranked]
    assert "aa before the others" in sample and "zz after the others" not in sample
    measured = indicators(sample, [len(t.split()) for t in sample])
    expected = {"sample_documents": 10, "by_origin": {"synthetic": measured}, "by_source": {"chat": measured}}
    _check_indicators(rows, "synthetic", "chat", batch_rows, expected, seed=5, sample_documents=10)


@pytest.mark.parametrize("batch_rows", [1, 13, 400])
def test_sample_of_long_documents_ends_at_sample_bytes(batch_rows):
    """Books: the sample stops at the row whose text reaches sample_bytes, before k rows, whatever
    the batching, and ties on the key at that row are decided by text as at k rows."""
    base = [f"d{i}" for i in range(300)]
    rank = np.argsort(stable_hash64(base, "indicators/9"), kind="stable")
    rows = [(i, words(n, 20 + 15 * (n % 7))) for n, i in enumerate(base)]
    # Two more rows of the id at the cut, one ordered before its first row (by text), one after.
    ends = np.cumsum([len(rows[k][1].encode()) for k in rank])
    edge = base[int(rank[np.searchsorted(ends, 5_000)])]
    rows += [(edge, "aaa " + words(7, 60)), (edge, "zzz " + words(8, 60))]
    rows = [rows[k] for k in np.random.default_rng(2).permutation(len(rows))]
    keys = stable_hash64([i for i, _ in rows], "indicators/9")
    ranked = sorted(range(len(rows)), key=lambda k: (int(keys[k]), rows[k][1], len(rows[k][1].split())))
    ends = np.cumsum([len(rows[k][1].encode()) for k in ranked])
    cut = int(np.searchsorted(ends, 5_000)) + 1
    sample = [rows[k][1] for k in ranked[:cut]]
    assert 5 < cut < 50 and sample.count("aaa " + words(7, 60)) == 1 and "zzz " + words(8, 60) not in sample
    measured = indicators(sample, [len(t.split()) for t in sample])
    expected = {"sample_documents": 50, "by_origin": {"human": measured}, "by_source": {"books": measured}}
    _check_indicators(rows, "human", "books", batch_rows, expected, seed=9, sample_documents=50, sample_bytes=5_000)


def test_distinct_ngrams_match_a_reference_count():
    texts = ["the cat sat on the mat the cat sat", "", "one", "the cat sat on the mat"]
    analysis = analyze(pa.array(texts))
    for n in (1, 2, 3, 5):
        grams = [tuple(t.split()[i:i + n]) for t in texts for i in range(len(t.split()) - n + 1)]
        assert distinct_ngrams(analysis.word_hashes, analysis.word_offsets, n) == (len(set(grams)), len(grams)), n


def test_every_group_is_measured_over_exactly_the_window():
    """A sample that ends in a long document is cut inside it: equal corpora compare equal."""
    short = [words(i, 100) for i in range(40)]
    long_last = short[:30] + [words(999, 5000)]
    for texts in (short, long_last):
        out = indicators(texts, [100] * len(texts), window_words=3_050)
        assert out["words"] == 3_050
    assert indicators(long_last, [100] * 31, window_words=3_050)["documents"] == 31
    # Fewer words than the window: everything is measured, and says so.
    assert indicators(short[:5], [100] * 5, window_words=3_050)["words"] == 500
