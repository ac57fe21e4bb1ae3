import pytest

from hybridmix.schemas.stats import Figure, RunStats, StatKey, stat


def test_stat_travels_as_plain_strings_and_reads_back_typed():
    key, value = stat(Figure.REJECTED_BY_REASON, 3, "wiki", "ingest_null_text")
    assert key == ("rejected_by_reason", "wiki", "ingest_null_text") and value == 3
    assert all(type(part) is str for part in key)  # deterministic coders group plain strings
    stats = RunStats([(key, value)])
    assert list(stats._values) == [StatKey(Figure.REJECTED_BY_REASON, "wiki", "ingest_null_text")]


def test_run_stats_sum_equal_keys_and_read_by_figure():
    stats = RunStats([
        stat(Figure.READ, 5, "wiki"), stat(Figure.READ, 2, "wiki"), stat(Figure.READ, 4, "chat"),
        stat(Figure.FILTER_DROPS, 1, "chat", "refusal_v2"), stat(Figure.FILTER_DROPS, 2, "wiki", "refusal_v2"),
        stat(Figure.FILTER_DROPS, 3, "chat", "word_count_v1"),
        stat(Figure.SPLIT_ROWS, 10, detail="train"), stat(Figure.SPLIT_BYTES, 900, detail="train"),
        stat(Figure.SPLIT_ROWS, 1, detail="validation"),
    ])
    assert stats.get(Figure.READ, "wiki") == 7
    assert stats.get(Figure.READ, "nobody") == 0
    assert stats.total(Figure.READ) == 11
    assert stats.by_source(Figure.READ) == {"chat": 4, "wiki": 7}
    assert stats.by_detail(Figure.FILTER_DROPS) == {"refusal_v2": {"chat": 1, "wiki": 2}, "word_count_v1": {"chat": 3}}
    assert stats.split_sizes() == {"train": {"rows": 10, "bytes": 900}, "validation": {"rows": 1, "bytes": 0}}


def test_unknown_figure_is_refused():
    with pytest.raises(ValueError):
        RunStats([(("no_such_figure", "", ""), 1)])
