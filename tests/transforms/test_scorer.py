import numpy as np
import pyarrow as pa
import pytest

from hybridmix.transforms import kernels
from hybridmix.transforms.batches import list_array
from hybridmix.transforms.filters import TextView
from hybridmix.transforms.minhash import word_hash32
from hybridmix.transforms.scorer import (
    DENSE_FEATURES,
    TRAINED_FEATURES,
    hashed_dot,
    hashed_features,
    load_scorer,
    score_histogram,
)
from hybridmix.transforms.scorer_fit import UnknownStratum, auc, featurize, fit, fit_strata, train_scorer
from hybridmix.transforms.text import analyze
from tests.builders import words


def _view(texts):
    analysis = analyze(pa.array(texts, pa.string()))
    return TextView(pa.array(texts, pa.string()), None, list_array(analysis.word_hashes, analysis.word_offsets))


def _fmix32(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def test_hashed_features_follow_the_documented_definition():
    """Buckets of unigrams (the word hash) and bigrams (fmix32 of h1*0x01000193 + h2 + 0x9E3779B9), log1p, L2."""
    text, bits = "the cat saw the cat", 8
    hashes = [word_hash32(w.encode()) for w in text.split()]
    keys = [h & 255 for h in hashes]
    keys += [_fmix32((a * 0x01000193 + b + 0x9E3779B9) & 0xFFFFFFFF) & 255 for a, b in zip(hashes, hashes[1:])]
    counts = {k: keys.count(k) for k in set(keys)}
    norm = np.sqrt(sum(np.log1p(c) ** 2 for c in counts.values()))
    analysis = analyze(pa.array([text]))
    indptr, indices, values = hashed_features(analysis.word_hashes, analysis.word_offsets, bits)
    got = dict(zip(indices.tolist(), values.tolist()))
    assert got == pytest.approx({k: np.log1p(c) / norm for k, c in counts.items()}, rel=1e-6)


def test_hashed_dot_is_the_feature_vector_times_the_weights():
    # Counts of a bucket on both sides of the looked-up logarithms (256): a word said 255 and 300 times.
    texts = [words(i, 30 + i) for i in range(20)] + ["", "one", "la " * 255 + "end", "la " * 300 + words(3, 9)]
    analysis = analyze(pa.array(texts))
    weights = np.random.default_rng(0).normal(size=1 << 10).astype(np.float32)
    indptr, indices, values = hashed_features(analysis.word_hashes, analysis.word_offsets, 10)
    expected = [float((weights[indices[a:b]] * values[a:b]).sum()) for a, b in zip(indptr[:-1], indptr[1:])]
    got = hashed_dot(analysis.word_hashes, analysis.word_offsets, weights, 10)
    assert got == pytest.approx(expected, abs=1e-5)


def test_new_document_statistics():
    texts = ["Is it? Yes! Note: **bold** and ***more***.\n\n1. First\n2) Second\n\nDone",
             "```python\nx = 1\n```\nÜber 42 ÉCOLES",
             "no end here  "]
    view = _view(texts)
    assert view.stat("question_marks").tolist() == [1, 0, 0]
    assert view.stat("exclamations").tolist() == [1, 0, 0]
    assert view.stat("colons").tolist() == [1, 0, 0]
    assert view.stat("bold_marks").tolist() == [4, 0, 0]  # ** ** then *** *** (one pair each)
    assert view.stat("fences").tolist() == [0, 2, 0]
    assert view.stat("numbered_lines").tolist() == [2, 0, 0]
    assert view.stat("paragraph_breaks").tolist() == [2, 0, 0]
    assert view.stat("uppers").tolist()[1] == 7  # Ü, É, C, O, L, E, S
    assert view.stat("digits").tolist()[1] == 3  # 1, 4, 2
    assert view.stat("ends_sentence").tolist() == [0, 0, 0]
    assert _view(["Done.", "A list)", "x **", "none"]).stat("ends_sentence").tolist() == [1, 1, 1, 0]


def test_dense_features_have_one_value_per_document():
    view = _view([words(1, 50), "", "As an AI language model, I cannot help.", "这是一个测试。我们今天学习机器翻译。"])
    for name, measure in DENSE_FEATURES.items():
        values = np.asarray(measure(view), np.float64)
        assert values.shape == (4,) and np.isfinite(values).all(), name


def test_v2_features_read_text_without_spaces_as_its_english_translation():
    """v1 knew only ASCII sentence ends and counted repetition and Markdown per character in
    Chinese: with mean word length too, the same UDHR article scored 0.05 in Chinese, 0.30 in English."""
    en = ("**Article 1.** All human beings are born free and equal in dignity and rights. They are endowed "
          "with reason and conscience and should act towards one another in a spirit of brotherhood.")
    zh = "**第一条** 人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。"
    view = _view([en, zh, en + "\u200b", "Read the chapter \u201cIntroduction.\u201d"])
    feature = {name: DENSE_FEATURES[name](view) for name in DENSE_FEATURES}
    assert feature["ends_sentence"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert feature["ends_sentence_v2"].tolist() == [1.0, 1.0, 1.0, 1.0]
    # Markdown per word: a Chinese word is about two characters (units), an English word one unit.
    assert feature["bold_per_word_v2"][0] == feature["bold_per_word"][0]
    assert feature["bold_per_word_v2"][1] == pytest.approx(2 * feature["bold_per_word"][1])
    # What a new scorer is fitted on, and the bundled one: each feature's latest version, no word length.
    assert "ends_sentence_v2" in TRAINED_FEATURES and "ends_sentence" not in TRAINED_FEATURES
    assert "mean_word_len" not in TRAINED_FEATURES
    assert load_scorer(None).dense_names == TRAINED_FEATURES


def test_distinct_words():
    analysis = analyze(pa.array(["a b a c b a", "", "x"]))
    assert kernels.distinct_words(analysis.word_hashes, analysis.word_offsets).tolist() == [3, 0, 1]


def _labelled(n_groups=4, per_group=60):
    """Answers whose quality shows in their words: good ones explain, bad ones refuse or ramble."""
    rng = np.random.default_rng(5)
    texts, target, groups, judge = [], [], [], []
    for g in range(n_groups):
        for i in range(per_group):
            good = rng.random() < 0.5
            body = words(1000 * g + i, 40)
            if good:
                text = f"Here is a clear explanation with steps. First, {body} Second, compare the results."
            else:
                text = f"I'm sorry, but I cannot help with that. {words(5000 + i, 8)}"
            texts.append(text)
            target.append(1.0 if good else 0.0)
            groups.append(f"model{g}")
            judge.append("a" if i % 2 else "b")
    return pa.array(texts), np.array(target), np.array(groups), np.array(judge)


def test_training_measures_on_held_out_groups_and_the_scorer_round_trips(tmp_path):
    texts, target, groups, judge = _labelled()
    scorer, metrics = train_scorer(texts, target, groups, [judge], bits=12, maxiter=100, strata=judge)
    held = metrics["held_out"]
    assert held["groups"] == 4 and held["auc"] > 0.9
    assert set(held["auc_by_group"]) == {"model0", "model1", "model2", "model3"}
    path = str(tmp_path / "scorer.npz")
    scorer.save(path)
    loaded = load_scorer(path)
    view = _view(texts.to_pylist())
    scores = loaded.score(view)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert auc(scores, target > 0.5) > 0.95
    # float16 weights on disk: the same ranking as the trained model
    assert np.corrcoef(scorer.log_odds(view), loaded.log_odds(view))[0, 1] > 0.999
    assert loaded.meta["training"]["documents"] == len(target) and loaded.digest == load_scorer(path).digest


def test_the_bundled_scorer_loads_and_prefers_an_answer_to_a_refusal():
    scorer = load_scorer(None)
    answer = ("To make a good cup of tea, first boil fresh water. Warm the pot, add one teaspoon of leaves per "
              "cup, pour the water and let it steep for three to five minutes. Then strain and serve.")
    low, high = scorer.score(_view(["I'm sorry, but I can't help with that.", answer]))
    assert 0.0 <= low < high <= 1.0
    assert scorer.meta["training"]["documents"] == 7241


def test_score_histogram_ignores_unscored_documents():
    counts = score_histogram(np.array([0.0, 0.01, 0.5, 0.99, 1.0, np.nan]))
    assert counts.sum() == 5 and counts[0] == 2 and counts[-1] == 2 and counts[10] == 1


def _two_judges(n=240):
    """Judge "a" prefers answers with a list, judge "b" short answers: two tastes the words show."""
    rng = np.random.default_rng(11)
    texts, target, judge, listed, short = [], [], [], [], []
    for i in range(n):
        has_list, is_short = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        body = words(i, 6 if is_short else 60)
        texts.append(("Steps:\n1. gather\n2. mix\n" if has_list else "In prose: ") + body)
        judge.append("a" if i % 2 else "b")
        target.append(float(has_list if judge[-1] == "a" else is_short))
        listed.append(has_list)
        short.append(is_short)
    return pa.array(texts), np.array(target), np.array(judge), np.array(listed), np.array(short)


def test_stratum_weights_sum_one_standardized_model_per_judge():
    texts, target, judge, _, _ = _two_judges()
    f = featurize(texts, 12, tuple(DENSE_FEATURES))
    rows = np.arange(len(target))
    weights = {"a": 0.8, "b": 0.2}
    combined = fit_strata(f, rows, target, [], judge, weights, 1.0, 1.0, 5.0, 100)
    shared = (f.dense.mean(0), f.dense.std(0) + 1e-9)
    expected = np.zeros(len(target))
    for value, weight in weights.items():
        own = rows[judge == value]
        z = fit(f, own, target, [], 1.0, 1.0, 5.0, 100, shared).log_odds(f, rows)
        expected += weight * (z - z[own].mean()) / z[own].std()
    np.testing.assert_allclose(combined.log_odds(f, rows), expected, rtol=1e-9, atol=1e-9)


def test_stratum_weights_decide_whose_taste_the_score_follows():
    texts, target, judge, listed, short = _two_judges()
    lists, _ = train_scorer(texts, target, None, [], bits=12, maxiter=100, strata=judge,
                            stratum_weights={"a": 0.9, "b": 0.1})
    shorts, _ = train_scorer(texts, target, None, [], bits=12, maxiter=100, strata=judge,
                             stratum_weights={"a": 0.1, "b": 0.9})
    view = _view(texts.to_pylist())
    assert auc(lists.log_odds(view), listed) > 0.9 > auc(shorts.log_odds(view), listed)
    assert auc(shorts.log_odds(view), short) > 0.9 > auc(lists.log_odds(view), short)
    assert lists.meta["training"]["parameters"]["stratum_weights"] == {"a": 0.9, "b": 0.1}


def test_stratum_weights_must_name_present_strata_with_positive_weights():
    texts, target, judge, _, _ = _two_judges(40)
    with pytest.raises(UnknownStratum, match=r"no value c \(values present: a, b\)"):
        train_scorer(texts, target, None, [], bits=8, strata=judge, stratum_weights={"a": 1.0, "c": 1.0})
    with pytest.raises(ValueError, match="above 0"):
        train_scorer(texts, target, None, [], bits=8, strata=judge, stratum_weights={"a": 0.0})
    with pytest.raises(ValueError, match="stratum column"):
        train_scorer(texts, target, None, [], bits=8, stratum_weights={"a": 1.0})
