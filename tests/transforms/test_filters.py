import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hybridmix.schemas.config import FilterSpec, QualityConfig
from hybridmix.schemas.errors import ConfigError
from hybridmix.schemas.filters import FILTER_PARAMS
from hybridmix.schemas.reasons import FilterReason
from hybridmix.transforms import kernels
from hybridmix.transforms.filters import (
    REGISTRY,
    TextView,
    _opening,
    _openings,
    build_filter,
    build_filters,
    score_documents,
)
from hybridmix.transforms.inputs import Lineage
from tests.builders import make_config, make_documents

WIKI = ("The castle was built in 1120 by Count Henry, who held the valley until his death in 1141. "
        "Its keep, 30 m high, survived the siege of 1347; the outer walls did not.")
LIST_ANSWER = ("Here are three options:\n- Take the train, which is fastest.\n- Drive, which is flexible.\n"
               "- Fly, which is expensive but short.\nI hope this helps!")
NOVEL = ('"I\'m sorry, but I cannot stay," she said, turning to the window. "The carriage leaves at dawn, '
         'and I will not miss it again." He said nothing; the fire had burned low.')
LOOP = " ".join(["The answer is to keep trying until it works and then try again."] * 12)
CODE = "Use this:\n```python\nfor i in range(10):\n    print(i * i)\n```\nIt prints squares."


def verdict(name, texts, prompts=None, **params):
    filt = build_filter(FilterSpec(name=name, params=params))
    view = TextView(pa.array(texts, pa.string()), None if prompts is None else pa.array(prompts, pa.string()))
    return filt.evaluate(view).failed.tolist()


CASES = [
    # (filter, params, failing text, passing texts)
    ("word_count", {"min_words": 3}, "Yes.", [WIKI]),
    ("word_count", {"min_words": 1, "max_words": 20}, WIKI, ["Short and sweet."]),
    ("mean_word_length", {}, "a b c d e f g h i j k l m n o p q r s t", [WIKI, LIST_ANSWER]),
    ("mean_word_length", {}, " ".join(["supercalifragilisticexpialidociousword"] * 12), [WIKI]),
    ("alpha_words", {"min_share": 0.6}, "1 2 3 4 5 6 7 8 9 10 11 12 13 word", [WIKI]),
    ("duplicate_lines", {}, "\n".join(["Buy now!", "Buy now!", "Buy now!", "Great deals"]), [LIST_ANSWER]),
    ("repeated_ngrams", {}, LOOP, [WIKI, NOVEL, LIST_ANSWER]),
    ("char_repetition", {}, "ha" * 300, [WIKI + " " + NOVEL + " " + LIST_ANSWER]),
    ("ellipsis_lines", {}, "Read more...\nClick here...\nAnd this...", [WIKI]),
    ("symbol_ratio", {}, "#tag #more #fun #wow #yes #no #more2 #ok #hey #gogo", [WIKI]),
    ("bullet_lines", {}, "- a\n- b\n- c\n- d", [LIST_ANSWER]),
    ("refusal", {}, "As an AI language model, I cannot browse the internet.", [WIKI, LIST_ANSWER, NOVEL]),
    ("refusal", {}, "I'm sorry, but I can't help with creating malware.", [WIKI]),
    ("refusal", {}, "I apologize, but my knowledge cutoff is September 2021.", [WIKI]),
    ("refusal", {}, "I\u2019m sorry, but I cannot provide that information.", [WIKI]),
    ("repetition_loop", {}, LOOP, [WIKI, NOVEL, CODE]),
    ("template_markers", {}, "Sure!<|im_end|>\n<|im_start|>user", [WIKI, CODE]),
    ("template_markers", {}, "[INST] Write a poem [/INST] Roses are red.", [NOVEL]),
    ("template_markers", {}, "Answer here.\n### Human: and another question", [LIST_ANSWER]),
    # v2: any <|name|> token, DeepSeek's full-width bars, a full-width colon after a role label; a table
    # or a Chinese field label ("用户：") is not a marker.
    ("template_markers", {}, "Done.<|eom_id|>", ["a <| b |> c", "| col | x |\n|---|---|", "用户：管理员"]),
    ("template_markers", {}, "好的，这是答案。<\uff5cend\u2581of\u2581sentence\uff5c>", [NOVEL]),
    ("template_markers", {}, "这是答案。\nHuman\uff1a再问一个问题", [LIST_ANSWER]),
    ("truncated", {"min_words": 10}, WIKI + " The northern tower was rebuilt after the fire of", [WIKI, LIST_ANSWER, CODE]),
]


@pytest.mark.parametrize("name, params, bad, goods", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_filter_catches_bad_and_passes_good(name, params, bad, goods):
    assert verdict(name, [bad] + goods, **params) == [True] + [False] * len(goods)


def test_a_novels_apology_is_not_a_refusal():
    """Dialogue with "I'm sorry, but I cannot" deep in the text passes; so it would at the start
    of a human text, because the default config applies refusal to synthetic text only."""
    assert verdict("refusal", ["Chapter one. " * 40 + NOVEL]) == [False]
    defaults = {s.name: s for s in QualityConfig().filters}
    assert [o.value for o in defaults["refusal"].origins] == ["synthetic"]


def test_markdown_headings_and_code_comments_are_not_hashtags():
    readme = "# hybridmix\n\n## Install\n\nRun make install.\n\n## Usage\n\n### Options\n\nSee the docs."
    script = "#!/bin/bash\n# Build the docs.\nset -e\n# Clean first.\nrm -rf build\nmake html  # render them"
    tags = "New post! #travel #food #sunset #beach #summer #vibes #love #photo #instagood #fun"
    assert verdict("symbol_ratio", [readme, script, tags]) == [False, False, True]


def test_prompt_echo():
    prompt = "Write a short poem about the sea and the moon at night"
    answers = ["Write a short poem about the sea and the moon at night.",
               "The tide climbs silver stairs; the moon keeps count of every wave that breaks."]
    assert verdict("prompt_echo", answers, prompts=[prompt, prompt]) == [True, False]
    assert verdict("prompt_echo", answers, prompts=None) == [False, False]


def test_prompt_echo_reads_words_of_several_characters_in_text_without_spaces():
    """v1 compared single characters: a short Japanese or Chinese answer found all of its characters in
    its prompt, and was flagged as an echo."""
    prompts = ["東京と大阪、どちらの都市の人口が多いですか？", "北京和上海，哪个城市的人口更多？"]
    answers = ["東京の人口が多いです。", "上海的人口更多。"]  # every character of each is in its prompt
    echoes = ["東京と大阪、どちらの都市の人口が多いですか。", "北京和上海，哪个城市的人口更多？"]
    texts, asked = answers + echoes, prompts + prompts
    assert verdict("prompt_echo", texts, prompts=asked) == [False, False, True, True]


def test_defaults_are_valid_and_cover_both_kinds_of_rule():
    built = build_filters(QualityConfig())
    names = {f.name for _, f in built}
    assert {"word_count", "repeated_ngrams", "refusal", "truncated", "prompt_echo", "template_markers"} <= names


def test_unknown_filter_and_bad_params_name_the_key():
    with pytest.raises(ConfigError, match=r"quality.filters\[0\].name: unknown filter 'nope'"):
        make_config(quality={"filters": [{"name": "nope"}]})
    with pytest.raises(ConfigError, match=r"quality.filters\[0\].params.min_wrds: unknown key"):
        make_config(quality={"filters": [{"name": "word_count", "params": {"min_wrds": 2}}]})
    with pytest.raises(ConfigError, match=r"quality.filters\[1\].params.min_share: Input should be a valid number"):
        make_config(quality={"filters": [{"name": "word_count"}, {"name": "alpha_words", "params": {"min_share": "x"}}]})


def test_every_registered_filter_declares_its_parameters_and_back():
    assert set(REGISTRY) == set(FILTER_PARAMS)


def test_every_filter_has_its_reason_code():
    # filtered/'s reason values are declared once, in schemas/reasons.py: a new filter must add its own.
    reasons = {build_filter(FilterSpec(name=name)).reason for name in REGISTRY}
    assert reasons == {r.value for r in FilterReason} - {FilterReason.CONTAMINATED.value}


def test_resolved_config_lists_every_parameter_of_every_filter():
    resolved = {spec.name: spec.params for spec in make_config().quality.filters}
    for name, params in resolved.items():
        assert set(params) == set(FILTER_PARAMS[name].model_fields), name
    assert resolved["alpha_words"] == {"min_share": 0.6, "min_words": 10}
    # Given params keep their value; the rest are filled in.
    spec = FilterSpec(name="repeated_ngrams", params={"ngram": 4})
    assert spec.params == {"ngram": 4, "max_coverage": 0.3, "min_words": 20}


def test_repetition_loop_is_the_repeated_ngram_measure_with_its_own_defaults():
    loop, ngrams = build_filter(FilterSpec(name="repetition_loop")), build_filter(FilterSpec(name="repeated_ngrams"))
    assert type(loop) is type(ngrams)
    assert (loop.label, loop.params.ngram, ngrams.label, ngrams.params.ngram) == (
        "repetition_loop_v5", 10, "repeated_ngrams_v5", 5)


def test_scope_mode_and_first_failing_filter_decides():
    docs = make_documents([
        {"text": "As an AI language model I refuse.", "origin": "synthetic"},
        {"text": "As an AI language model I refuse.", "origin": "human", "source": "h"},
        {"text": "Hi.", "origin": "synthetic"},
        {"text": "A perfectly ordinary answer with more than enough words here.", "origin": "synthetic"},
    ])
    filters = build_filters(QualityConfig(filters=[
        FilterSpec(name="refusal", origins=["synthetic"]),
        FilterSpec(name="word_count", params={"min_words": 3}),
        FilterSpec(name="word_count", params={"min_words": 8}, mode="flag"),
    ]))
    scored = score_documents(docs, filters, Lineage(("file.parquet",), "run"))
    assert scored.kept.column("doc_id").to_pylist() == ["d1", "d3"]
    assert scored.filtered.column("doc_id").to_pylist() == ["d0", "d2"]
    assert scored.filtered.column("reason").to_pylist() == ["quality_refusal", "quality_word_count"]
    assert scored.filtered.column("filter").to_pylist() == ["refusal_v8", "word_count_v3"]
    assert scored.filtered.column("value").to_pylist() == [1.0, 1.0]
    assert scored.filtered.column("source_file").to_pylist() == ["file.parquet"] * 2
    flags = dict(zip(scored.kept.column("doc_id").to_pylist(), scored.kept.column("quality_flags").to_pylist()))
    assert flags == {"d1": ["word_count_v3"], "d3": []}
    assert scored.kept.num_rows + scored.filtered.num_rows == docs.num_rows
    # Without a scorer nothing is scored.
    assert scored.kept.column("quality_score").null_count == scored.kept.num_rows


def test_filtered_rows_name_every_failing_filter_and_a_numeric_rule():
    docs = make_documents([
        {"text": "As an AI language model I refuse.", "origin": "synthetic"},  # refusal, then too few words
        {"text": "Hi.", "origin": "synthetic"},  # too few words only
        {"text": " ".join(["word"] * 30), "origin": "synthetic"},  # too many words
    ])
    filters = build_filters(QualityConfig(filters=[
        FilterSpec(name="refusal"),
        FilterSpec(name="word_count", params={"min_words": 8, "max_words": 20}),
        FilterSpec(name="template_markers", mode="flag"),
    ]))
    rows = score_documents(docs, filters, Lineage(("file.parquet",), "run")).filtered.to_pylist()
    assert [r["filters_failed"] for r in rows] == [["refusal_v8", "word_count_v3"], ["word_count_v3"],
                                                   ["word_count_v3"]]
    assert [(r["filter"], r["value"], r["comparison"], r["threshold"]) for r in rows] == [
        ("refusal_v8", 1.0, ">=", 1.0), ("word_count_v3", 1.0, "<", 8.0), ("word_count_v3", 30.0, ">", 20.0)]
    assert rows[2]["detail"] == "word_count = 30 (> 20)"
    assert rows[0]["detail"].startswith("refusal = 1 (>= 1; refusal or disclaimer in the opening")
    assert score_documents(docs, filters, Lineage(("f",), "r")).filtered.schema.field("threshold").type == pa.float64()


def test_scored_documents_carry_the_score_kept_and_filtered():
    docs = make_documents([
        {"text": "Hi.", "origin": "synthetic"},
        {"text": "A perfectly ordinary answer with more than enough words here.", "origin": "synthetic"},
        {"text": "A human paragraph with enough words to pass every rule here.", "origin": "human"},
    ])
    filters = build_filters(QualityConfig(filters=[FilterSpec(name="word_count", params={"min_words": 3})]))
    scored = score_documents(docs, filters, Lineage(("f",), "run"), lambda view: np.arange(len(view)) / 10.0,
                             frozenset({"synthetic"}))
    assert scored.filtered.column("quality_score").to_pylist() == [0.0]
    kept = scored.kept.column("quality_score").to_pylist()
    assert kept[0] == pytest.approx(0.1) and kept[1] is None  # human text is not scored here


def test_refusal_v3_lets_a_disclaimer_with_a_full_answer_through():
    refusal = "As an AI language model, I cannot browse the internet. "
    answer = refusal + " ".join(["Here is what I know about the topic in some detail."] * 15)
    assert verdict("refusal", [refusal, answer]) == [True, True]
    assert verdict("refusal", [refusal, answer], max_words=100) == [True, False]


def test_too_short_counts_characters_without_surrounding_space():
    assert verdict("too_short", ["  Yes, indeed.  ", "This one is long enough to pass."]) == [True, False]


def test_default_filters_drop_synthetic_failures_and_flag_the_rest():
    defaults = QualityConfig().filters
    drop_synthetic = {s.name for s in defaults if s.mode == "drop" and (s.origins is None or "synthetic" in s.origins)}
    assert drop_synthetic == {"word_count", "too_short", "refusal", "duplicate_lines", "repetition_loop",
                              "template_markers"}
    human_only = {s.name for s in defaults if s.origins == ["human"]}
    assert {"mean_word_length", "alpha_words"} <= human_only


def test_quality_disabled_via_empty_filter_list_keeps_everything():
    docs = make_documents([{"text": "x"}])
    scored = score_documents(docs, [], Lineage(("f",), "run"))
    assert scored.kept.num_rows == 1 and scored.filtered.num_rows == 0


def test_detail_reads_the_spec_a_document_failed_when_two_specs_share_a_label():
    # One label, two scopes: word_count drops short human text at 10 words and flags synthetic text
    # at 20. A human batch has no verdict for the synthetic spec (it crashed a 1M-document run), and a
    # mixed batch must quote the human spec's limit, not the synthetic one's.
    filters = build_filters(QualityConfig(filters=[
        FilterSpec(name="refusal", origins=["human"]),
        FilterSpec(name="word_count", params={"min_words": 10}, origins=["human"]),
        FilterSpec(name="word_count", params={"min_words": 20}, origins=["synthetic"], mode="flag"),
    ]))
    refusing = {"text": "As an AI language model I refuse.", "origin": "human"}  # refusal and 7 words
    for batch in ([refusing], [refusing, {"text": " ".join(["answer"] * 30), "origin": "synthetic"}]):
        row = score_documents(make_documents(batch), filters, Lineage(("f",), "r")).filtered.to_pylist()[0]
        assert row["filters_failed"] == ["refusal_v8", "word_count_v3"]
        assert row["detail"].endswith("; also word_count = 7 (< 10)"), row["detail"]


def test_the_tail_is_taken_after_trailing_whitespace_however_long_it_is():
    body = "word " * 120 + "The last sentence ends here."
    texts = [body, body + " " * 150, body + "\n" * 250 + " \t", "  short text  ", "", " " * 500,
             "é" * 450 + " \u3000" * 180, "長" * 300 + "。" + "\u2003" * 300]
    expected = [t.rstrip()[-200:] for t in texts]
    assert TextView(pa.array(texts)).tail.to_pylist() == expected


def _character_counts(text: str) -> dict[str, int]:
    """Per code point, as `kernels.doc_stats` states its counts: letters, words and marks."""
    classes = kernels.letter_classes()
    counts = dict.fromkeys(["letters", "uppers", "digits", "word_chars", "spaced_word_chars", "words",
                            "alpha_words", "solo_units", "bold_marks", "fences", "ellipses"], 0)
    in_word = in_solo = has_letter = False
    stars = ticks = dots = 0
    previous = ""

    def close() -> None:
        counts["words"] += 1
        counts["alpha_words"] += has_letter
        counts["solo_units"] += in_solo

    for ch in text:
        cls = int(classes[ord(ch)])
        counts["letters"] += bool(cls & kernels.LETTER)
        counts["uppers"] += bool(cls & kernels.UPPER)
        counts["digits"] += bool(cls & kernels.DIGIT)
        stars = stars + 1 if ch == "*" else 0
        if stars == 2:
            counts["bold_marks"] += 1
            stars = 0
        ticks = ticks + 1 if ch == "`" else 0
        if ticks == 3:
            counts["fences"] += 1
            ticks = 0
        dots = dots + 1 if ch == "." else 0
        counts["ellipses"] += dots == 3 or (ch == "\u2026" and previous != "\u2026")
        previous = ch if not kernels.ignorable(ch) else previous  # "…\u200b…" is one mark
        if cls & kernels.WORD:
            counts["word_chars"] += 1
            if kernels.breaks_before(cls, in_word, in_solo):
                if in_word:
                    close()
                in_word, in_solo, has_letter = True, bool(cls & kernels.SOLO), False
            has_letter = has_letter or bool(cls & kernels.LETTER)
            counts["spaced_word_chars"] += not in_solo and not (unicodedata.combining(ch) == 9 or (
                unicodedata.category(ch) == "Mn" and any(lo <= ord(ch) <= hi for lo, hi in kernels._OPTIONAL_MARKS)))
        elif in_word and not kernels.ignorable(ch):  # invisible: the word it sits in goes on, as analyze's
            close()
            in_word = False
    if in_word:
        close()
    return counts


def test_character_and_word_counts_match_a_plain_count():
    """The compiled pass reads the rest of a spaced word in a short loop of its own; every count must
    stay what a code point by code point count gives, for words of letters, digits, '_', upper case,
    accents and combining marks, next to CJK, Hangul with its jamo, Thai, emoji and the marks that
    end a word ('*', '`', '.', '…')."""
    rng = np.random.default_rng(5)
    alphabet = (list("abcXYZ019_ *`.\n\t") + ["É", "ß", "\u0301", "中", "文", "한", "\u1161", "\u11a8", "ก", "\u0e49",
                "🙂", "…", "Ⅻ", "٣", "\u00a0", "#", "?", "\u064e", "\u20dd", "\u093e", "\u0947", "\u094d",
                "\u200c", "\u200b", "\u00ad", "\ufe0f", "\u034f"])
    texts = ["", "word", "**bold** and ``` fences ``` ... …… done.", "Hello World_42 naïve café\u0301",
             "中文words混合text한국어\u1161", "1. one\n2. two\n\nnext"]
    texts += ["".join(rng.choice(alphabet, int(rng.integers(1, 120)))) for _ in range(400)]
    texts += ["".join(rng.choice(list("abcdef") + ["\u0301", " ", "中"], 60, p=[.15] * 6 + [.04, .04, .02]))
              for _ in range(100)]
    view = TextView(pa.array(texts, pa.string()))
    for name in _character_counts(""):
        assert view.stat(name).astype(int).tolist() == [_character_counts(t)[name] for t in texts], name


def test_an_invisible_code_point_inside_a_word_leaves_it_one_word():
    """A zero-width non-joiner inside a Persian word, a soft hyphen inside an English one: the filters'
    word counts are the word hashes' (v1 of mean_word_length, symbol_ratio and alpha_words split them)."""
    texts = ["\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 \u06a9\u062a\u0627\u0628\u200c\u0647\u0627 \u0631\u0627",
             "an in\u00adcred\u00adible re\u00adsult", "zero\u200bwidth space", "\u200c \u200b", "a\u200d\u200cb"]
    view = TextView(pa.array(texts))
    assert view.stat("words").tolist() == view.word_counts.tolist() == [3, 3, 2, 0, 1]
    assert view.stat("spaced_word_chars").tolist() == [15, 18, 14, 0, 2]


def test_repeated_lines_match_a_plain_count():
    """Only lines whose length another line shares are hashed; the counts must stay those of comparing
    every trimmed, non-blank line with every other: repeats of one length beside different lines of
    that length, lines of a length no other has, blank and space-only lines, CJK and emoji."""
    rng = np.random.default_rng(11)
    pool = ["alpha", "bravo", "delta", "x", "中文行", "🙂🙂", "a longer line of text", "  alpha\t", "\u3000bravo", ""]
    texts = ["", "one line", "a\na", "a\nb", "same\nsame\nsame\nsome", "  \n\t\n", "中文\n中文\n英文"]
    texts += ["\n".join(rng.choice(pool, int(rng.integers(1, 30)))) for _ in range(300)]
    view = TextView(pa.array(texts, pa.string()))
    dup_lines, dup_chars, lines, line_chars = [], [], [], []
    for text in texts:
        kept = [line.strip(" \t\u3000") for line in text.split("\n")]
        kept = [line for line in kept if line]
        counts: dict[str, int] = {}
        for line in kept:
            counts[line] = counts.get(line, 0) + 1
        dup_lines.append(sum(c - 1 for c in counts.values()))
        dup_chars.append(sum((c - 1) * len(line) for line, c in counts.items()))
        lines.append(len(kept))
        line_chars.append(sum(len(line) for line in kept))
    assert view.stat("dup_lines").astype(int).tolist() == dup_lines
    assert view.stat("dup_line_chars").astype(int).tolist() == dup_chars
    assert view.stat("lines").astype(int).tolist() == lines
    assert view.stat("line_chars").astype(int).tolist() == line_chars


def test_coverages_counted_together_match_each_counted_alone():
    """Several n at once count each n after the first only where the one before repeats; the shares
    must be those of each n counted alone: loops, near loops that break the longer n-grams, texts
    shorter than an n, Chinese, and texts whose only repeats are short."""
    rng = np.random.default_rng(3)
    words = ["the", "cat", "sat", "on", "mat", "and", "then", "ran", "中", "文"]
    texts = [LOOP, WIKI, NOVEL, "", "one two", "a b c a b c", "a b c d a b c e a b c d", "这是一个测试。" * 20]
    texts += [" ".join(rng.choice(words, int(rng.integers(1, 80)))) for _ in range(300)]
    texts += [" ".join((["x", "y", "z", "w", "v"] * 4)[: int(rng.integers(3, 20))] + list(rng.choice(words, 5)))
              for _ in range(50)]
    alone = TextView(pa.array(texts, pa.string()))
    together = TextView(pa.array(texts, pa.string()))
    for ngrams in ([3, 5, 10], [2, 7], [10, 3]):
        together.__dict__.pop("_coverage", None)
        together.repeated_coverages(ngrams)
        for n in ngrams:
            assert together.repeated_coverage(n).tolist() == alone.repeated_coverage(n).tolist(), (ngrams, n)
    assert together.repeated_coverage(10).max() > 0.5 and (together.repeated_coverage(3) > 0).sum() > 100


def _repeated_char_ngrams(text: str, n: int = 10) -> int:
    grams = [text[j:j + n] for j in range(len(text) - n + 1)]
    counts: dict[str, int] = {}
    for gram in grams:
        counts[gram] = counts.get(gram, 0) + 1
    return sum(1 for gram in grams if counts[gram] > 1) if len(grams) > 1 else 0


def test_repeated_character_ngrams_match_a_plain_count():
    """The compiled single pass over each text counts what a dictionary of its 10-grams counts, text
    by text: nothing carries over from an earlier text of the batch (a long one first, then short ones
    that share its n-grams, the same text twice)."""
    rng = np.random.default_rng(7)
    texts = [
        "ha" * 3000 + " " + WIKI * 5,
        WIKI,
        WIKI,
        "hahahahahahaha and then " + NOVEL,
        LIST_ANSWER + "\n" + LIST_ANSWER,
        "这是一个测试。" * 40 + "不同的结尾🙂🙂",
        "short",
        "exactly 10",
        "abcdefghijk" * 2,
        "",
        " ".join("".join(rng.choice(list("abcde "), 7)) for _ in range(400)),
    ]
    view = TextView(pa.array(texts, pa.string()))
    got = view.stat("dup_char_ngrams").astype(int).tolist()
    assert got == [_repeated_char_ngrams(t) for t in texts]
    assert view.stat("char_ngrams").astype(int).tolist() == [max(len(t) - 9, 0) if len(t) > 10 else 0
                                                               for t in texts]


def test_repeated_character_ngrams_match_a_plain_count_over_many_texts_of_a_batch():
    """Hundreds of texts in one batch, so the table's per-text stamps (one byte) wrap and start over:
    odd and even numbers of n-grams, texts of exactly 10 and 11 code points, NULs, multi-byte text,
    few letters (many repeats) and a few long texts among the short ones."""
    rng = np.random.default_rng(11)
    alphabets = ["ab", "abc", "\x00", "\x00\x01", "xyz \n", "héllo wörld ", "日本語テキスト", "🙂a"]
    texts = []
    for i in range(700):
        length = 3000 if i % 97 == 0 else int(rng.choice([0, 1, 9, 10, 11, 12, 13, 20, 21, 50, 300]))
        alphabet = alphabets[int(rng.integers(len(alphabets)))]
        texts.append("".join(rng.choice(list(alphabet), length)) if length else "")
    view = TextView(pa.array(texts, pa.string()))
    assert view.stat("dup_char_ngrams").astype(int).tolist() == [_repeated_char_ngrams(t) for t in texts]


def test_repeated_character_ngrams_of_a_text_past_the_table_are_counted_by_sorting():
    """A text of more 10-grams than kernels._SORT_FROM (4.2M) counts them by sorting its keys, not in
    the table (4 to 8 slots of 9 bytes each: one 200 MB text took 9.7 GB): the same count, and the
    short texts after it still counted in the table."""
    rng = np.random.default_rng(3)
    alphabet = list("abcdefgh ij\n日本語🙂")
    block = "".join(rng.choice(alphabet, 300_000))
    long = block * 14 + "".join(rng.choice(alphabet, 100_000))
    assert len(long) - 9 > kernels._SORT_FROM
    texts = ["ha" * 30, long, "abcdefghijk" * 2, WIKI]
    view = TextView(pa.array(texts, pa.string()))
    assert view.stat("dup_char_ngrams").astype(int).tolist() == [_repeated_char_ngrams(t) for t in texts]


def test_the_tail_truncation_reads_is_arrows_slice_of_the_trimmed_text():
    # The compiled tail must cut exactly where Arrow does: its whitespace (every kind it trims), its
    # count of characters (code points: emoji, CJK, combining marks each one), slices and nulls.
    texts = ["", " ", "\u3000\u2029 \x85\x1c", "abc\x1f", "é" * 300 + " \n", "😀" * 250 + "\u2003",
             "a\u0301" * 150, "x" * 199, "x" * 200 + "\t", "末尾の文。 \u3000", "ends mid", "\u00a0lead and trail\u202f"]
    batch = pa.array(texts * 3)
    for arr in (batch, batch.slice(5, 20), pa.array(texts + [None])):
        expected = pc.utf8_slice_codeunits(pc.utf8_rtrim_whitespace(arr), -200)
        assert TextView(arr).tail.to_pylist() == expected.to_pylist()
    # Every code point Arrow trims is trimmed here, and no other.
    points = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    ends = pa.array(["a" + chr(c) for c in points])
    trimmed = pc.utf8_length(pc.utf8_rtrim_whitespace(ends)).to_numpy() == 1
    assert np.array_equal(pc.utf8_length(TextView(ends).tail).to_numpy() == 1, trimmed)



def _arrow_opening(texts: pa.Array, window: int) -> pa.Array:
    head = pc.replace_substring(pc.utf8_slice_codeunits(texts, 0, window), "\u2019", "'")
    quoted = (r'"[^"]*"|\x{201c}[^\x{201d}]*\x{201d}|\x{ab}[^\x{bb}]*\x{bb}|\x{201e}[^\x{201c}]*\x{201c}'
              r'|\x{300c}[^\x{300d}]*\x{300d}|\x{300e}[^\x{300f}]*\x{300f}|\x{bb}[^\x{ab}]*\x{ab}'
              r'|\x{201e}[^\x{201d}]*\x{201d}'
              # ‘...’ closed by an apostrophe before a non-letter; dash-led dialogue at a line's start.
              r"|\x{2018}(?:[^']|'\pL)*'(?:\PL|\z)"
              r'|(?m:^)[ \t]*[\x{2014}\x{2013}] [^\n]*?(?: [\x{2014}\x{2013}]|(?m:$))')
    return pc.replace_substring_regex(head, quoted, "")


def test_the_refusal_opening_is_arrows_slice_and_quote_removal():
    # The compiled opening must be what Arrow's slice, replace and RE2's leftmost non-overlapping
    # removal of quoted spans give: quotes closed only past the window, unclosed quotes of either kind
    # before a closed one of the other, nested and adjacent quotes, newlines inside quotes.
    texts = ['"I\'m sorry, but I cannot stay," she said. I am sorry, but no.',
             "\u201cI\u2019m sorry, but I can\u2019t,\u201d he said. I\u2019m sorry, but I can\u2019t.",
             'one "open quote and "a closed one" after', "\u201c unclosed then \"closed\" \u201d",
             '"a\nb" c', '""""', '"', "\u201c\u201d\u201d\u201c", "\u2019" * 5, "", "長い\u201c引用\u201d文", "😀\"x\"😀",
             "« Je suis désolé » dit-il", "„Es tut mir leid“, sagte sie. \u201cno\u201d", "「申し訳」と『言った』",
             "»Es tut mir leid«, sagte er.", "„Przepraszam\u201d – powiedział.", "„a\u201d „b\u201c", "« a » b « c",
             "\u2018I\u2019m sorry, but no,\u2019 she said.", "\u2018don\u2019t", "\u2018a'b' c\u2019é\u2019",
             "Он встал.\n\u2014 Извините, я не могу, \u2014 сказал он.\n \t\u2013 Нет\nдалее",
             "\u2014 one\n\u2014\u2014 two \u2014", "x \u2014 not at a line's start"]
    rng = np.random.default_rng(3)
    alphabet = ['"', "\u201c", "\u201d", "\u2019", "a", "é", "長", "\n", " ", "I", "😀", "\u0301", "я", "\u2026",
                "\u00ab", "\u00bb", "\u201e", "\u300c", "\u300d", "\u300e", "\u300f", "\u2018", "'", ",",
                "\u2014", "\u2013", "\t", "\u2014 ", "\n\u2014 ", " \u2013", "\n \u2013 "]
    texts += ["".join(rng.choice(alphabet, int(rng.integers(0, 40)))) for _ in range(3000)]
    batch = pa.array(texts)
    wide = r"[\x{400}-\x{1fff}\x{2e80}-\x{10ffff}]"  # the scripts of the second group of refusal phrases
    for window in (1, 2, 7, 25, 300):
        for arr in (batch, batch.slice(11, 500)):
            opening, flags = _openings(arr, window)
            assert opening.to_pylist() == _arrow_opening(arr, window).to_pylist(), window
            assert flags.tolist() == pc.match_substring_regex(opening, wide).to_pylist(), window
    with_null = pa.array(texts[:50] + [None])
    assert _opening(with_null, 9).to_pylist() == _arrow_opening(with_null, 9).to_pylist()
    assert _openings(with_null, 9)[1].tolist() == _openings(pa.array(texts[:50] + [""]), 9)[1].tolist()


def test_per_word_coverage_reuses_the_plain_one_only_for_texts_with_spaces():
    texts = ["the cat sat on the mat and the cat sat on the mat again",
             "猫坐在垫子上，猫坐在椅子上，猫坐在桌子上。",
             "no repeats in this one at all, none",
             "这是一个测试。这是一个测试。",
             "Mixed 中文 and English: 中文 and English.",
             "",
             "word " * 40]
    for first_plain in (True, False):
        view = TextView(pa.array(texts))
        if first_plain:
            view.repeated_coverage(3)
        got = view.repeated_coverage(3, per_word=True)
        hashes, offsets = view.words
        expected = kernels.repeated_ngram_coverage(hashes, offsets, 3 * view.chars_per_word)
        assert view.chars_per_word.tolist()[:4] == [1, 2, 1, 2]  # both kinds are in the batch
        assert np.array_equal(got, expected)
        assert not np.array_equal(got, view.repeated_coverage(3))  # the Chinese texts differ
