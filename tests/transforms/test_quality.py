import pyarrow as pa
import pytest

from schemas.config import FilterSpec, QualityConfig
from schemas.errors import ConfigError
from tests.builders import make_documents
from transforms.quality import REGISTRY, TextView, build_filters, score_documents


def verdict(name, texts, **params):
    filt = REGISTRY[name](params)
    return filt.evaluate(TextView(pa.array(texts))).failed.tolist()


@pytest.mark.parametrize(
    "text, refused",
    [
        ("As an AI language model, I cannot browse the internet.", True),
        ("I'm sorry, but I can't help with that request.", True),
        ("I\u2019m sorry, but I cannot provide that.", True),
        ("I cannot assist with creating malware.", True),
        ("My knowledge cutoff is September 2021, so I may not know.", True),
        ("Here is a recipe for bread: mix flour, water and yeast.", False),
        ("The AI industry grew quickly; an AI model can now write code.", False),
        ("x " * 300 + "As an AI language model I mention this late.", False),
    ],
    ids=["ai-model", "sorry-but", "curly-apostrophe", "cannot-assist", "cutoff", "helpful", "mentions-ai",
         "late-mention"],
)
def test_refusal(text, refused):
    assert verdict("refusal", [text]) == [refused]


def test_min_words():
    assert verdict("min_words", ["one two", "one two three", ""], min_words=3) == [True, False, True]


def test_unknown_filter_and_bad_params_name_the_key():
    with pytest.raises(ConfigError, match=r"quality.filters\[0\].name: unknown filter 'nope'"):
        build_filters(QualityConfig(filters=[FilterSpec(name="nope")]))
    with pytest.raises(ConfigError, match=r"quality.filters\[0\].params: min_wrds: unknown key"):
        build_filters(QualityConfig(filters=[FilterSpec(name="min_words", params={"min_wrds": 2})]))


def test_scope_mode_and_first_failing_filter_decides():
    docs = make_documents([
        {"text": "As an AI language model I refuse.", "origin": "synthetic"},
        {"text": "As an AI language model I refuse.", "origin": "human", "source": "h"},
        {"text": "Hi.", "origin": "synthetic"},
        {"text": "A perfectly ordinary answer with more than enough words here.", "origin": "synthetic"},
    ])
    filters = build_filters(QualityConfig(filters=[
        FilterSpec(name="refusal", origins=["synthetic"]),
        FilterSpec(name="min_words", params={"min_words": 3}),
        FilterSpec(name="min_words", params={"min_words": 8}, mode="flag"),
    ]))
    scored = score_documents(docs, filters, ["file.parquet"], "run")
    assert scored.kept.column("doc_id").to_pylist() == ["d1", "d3"]
    assert scored.filtered.column("doc_id").to_pylist() == ["d0", "d2"]
    assert scored.filtered.column("reason").to_pylist() == ["quality_refusal", "quality_min_words"]
    assert scored.filtered.column("filter").to_pylist() == ["refusal_v1", "min_words_v1"]
    assert scored.filtered.column("value").to_pylist() == [1.0, 1.0]
    assert scored.filtered.column("source_file").to_pylist() == ["file.parquet"] * 2
    flags = dict(zip(scored.kept.column("doc_id").to_pylist(), scored.kept.column("quality_flags").to_pylist()))
    assert flags == {"d1": ["min_words_v1"], "d3": []}
    assert scored.kept.num_rows + scored.filtered.num_rows == docs.num_rows


def test_quality_disabled_via_empty_filter_list_keeps_everything():
    docs = make_documents([{"text": "x"}])
    scored = score_documents(docs, [], ["f"], "run")
    assert scored.kept.num_rows == 1 and scored.filtered.num_rows == 0
