"""The evaluation index and its lookups, on real Wikipedia paragraphs from the bundled sample."""

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hybridmix.schemas.config import DecontaminateConfig
from hybridmix.transforms.decontam_core import PartialIndex, build_index, find_matches, item_words, matched_span
from hybridmix.transforms.text import analyze

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "data")


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    return pq.read_table(os.path.join(EXAMPLES, "human_wikipedia.parquet"), columns=["text"]).column("text").to_pylist()


DEFAULTS = DecontaminateConfig()


def index_of(items: list[str], ngram: int = DEFAULTS.ngram, min_item_words: int = DEFAULTS.min_item_words,
             max_items: int = DEFAULTS.max_items_per_ngram, name: str = "eval"):
    part = item_words(name, [f"item-{i}" for i in range(len(items))], pa.array(items, pa.string()))
    return build_index(part, [name], ngram, min_item_words, max_items, 10**9)


def lookup(index, docs: list[str]):
    analysis = analyze(pa.array(docs, pa.string()))
    return find_matches(index, analysis.word_hashes, analysis.word_offsets)


def test_items_are_found_verbatim_embedded_and_with_casing_spacing_and_punctuation_changed(paragraphs):
    items, clean = paragraphs[:50], paragraphs[50:450]
    index = index_of(items)
    item = items[7]
    docs = [
        item,
        clean[0] + " " + item + " " + clean[1],
        item.upper(),
        "  ".join(item.split()).replace(",", " ;").replace(".", "!"),
        *clean,
    ]
    found = lookup(index, docs)
    assert [index.item_ids[i] for i in found.item[:4]] == ["item-7"] * 4
    words = len(analyze(pa.array([item])).word_hashes)
    assert found.count[0] == words - 13 + 1 and found.share[0] == 1.0
    assert (found.item[4:] == -1).all()  # other paragraphs of the same articles share no 13-gram


def test_short_items_match_whole_and_very_short_items_are_counted_not_indexed():
    items = ["Name three primary colours used in painting and art",  # 9 words: indexed whole
             "Say hello there"]  # 3 words: too short
    index = index_of(items)
    assert index.report["sets"]["eval"] == {"items": 2, "distinct_items": 2, "indexed": 1, "too_short": 1,
                                            "boilerplate_only": 0, "items_with_boilerplate": 0, "ngrams": 1}
    found = lookup(index, ["Please name three primary colours used in painting and art, briefly.",
                           "Name three primary colours used in painting",  # 7 of the 9 words: no match
                           "say hello to everyone"])
    assert found.item.tolist() == [0, -1, -1]


def test_boilerplate_many_items_share_is_cut_out_and_each_items_own_text_still_matches(paragraphs):
    template = ("Below is an instruction that describes a task. Write a response that appropriately "
                "completes the request. ### Instruction: {} ### Response:")
    items = [template.format(p) for p in paragraphs[:12]] + [template.format("Name colours")]
    index = index_of(items, max_items=10)
    report = index.report["sets"]["eval"]
    assert index.report["common_ngrams_ignored"] > 0
    assert report["items_with_boilerplate"] == 13 and report["indexed"] == 12 and report["boilerplate_only"] == 1
    found = lookup(index, [
        template.format(paragraphs[100]),  # clean text in the same format
        paragraphs[3],  # an item's own text, without the template
        template.format(paragraphs[5]),
    ])
    assert found.item[0] == -1
    assert [index.item_ids[i] for i in found.item[1:]] == ["item-3", "item-5"]
    kept = index_of(items, max_items=100)
    assert lookup(kept, [template.format(paragraphs[100])]).item[0] >= 0  # the template alone matches


def test_an_item_repeated_under_many_ids_is_not_boilerplate(paragraphs):
    index = index_of([paragraphs[0]] * 5 + [paragraphs[1]])
    assert index.report["sets"]["eval"]["indexed"] == 6 and index.report["common_ngrams_ignored"] == 0
    assert index.item_ids[lookup(index, [paragraphs[1]]).item[0]] == "item-5"
    assert lookup(index, [paragraphs[0]]).item[0] >= 0


def test_the_best_item_wins_and_share_thresholds_apply(paragraphs):
    a, b = paragraphs[200], paragraphs[201]
    index = index_of([a, b])
    half_b = " ".join(b.split()[: len(b.split()) // 2])
    doc = " ".join(a.split()[:14]) + " and then " + half_b
    found = lookup(index, [doc])
    assert index.item_ids[found.item[0]] == "item-1"  # more of b's n-grams than of a's
    by_count = DecontaminateConfig(min_matches=1)
    by_share = DecontaminateConfig(min_matches=0.9)
    assert by_count.matched(found.count, found.share)[0]
    assert not by_share.matched(found.count, found.share)[0]


def test_numbering_does_not_depend_on_the_order_files_are_merged(paragraphs):
    def part(name, start):
        texts = paragraphs[start:start + 5]
        return item_words(name, [f"{name}-{i}" for i in range(5)], pa.array(texts))

    one = build_index(part("a", 0).merge(part("b", 5)), ["a", "b"], 13, 8, 10, 10**9)
    two = build_index(part("b", 5).merge(part("a", 0)), ["a", "b"], 13, 8, 10, 10**9)
    assert one.item_ids == two.item_ids and np.array_equal(one.keys, two.keys)
    assert np.array_equal(one.items, two.items) and np.array_equal(one.ptr, two.ptr)


def test_an_index_larger_than_allowed_is_refused(paragraphs):
    part = item_words("eval", ["x"], pa.array([paragraphs[0]]))
    with pytest.raises(ValueError, match="max_index_ngrams"):
        build_index(part, ["eval"], 13, 8, 10, 5)


def test_matched_span_is_the_original_text_of_the_matching_words():
    text = "Intro:  THE Quick, brown fox — jumps over the lazy dog; again and again.  Café crème!"
    assert matched_span(text, 1, 4) == "THE Quick, brown fox"
    assert matched_span(text, 13, 2) == "Café crème"
    assert matched_span(text, 99, 2) == ""


def test_an_empty_partial_builds_an_empty_index():
    index = build_index(PartialIndex(), ["eval"], 13, 8, 10, 10)
    assert index.empty and lookup(index, ["anything at all"]).item.tolist() == [-1]


@pytest.mark.parametrize("value", [0, -1, 1.0, 1.5, 0.0, True])
def test_min_matches_is_a_count_or_a_share(value):
    with pytest.raises(ValueError, match="min_matches"):
        DecontaminateConfig(min_matches=value)


def test_items_in_chinese_are_matched_by_character_ngrams():
    """Units are characters in Chinese, two to a word: 26-character n-grams, and short items matched whole."""
    from tests.multilingual import PARAGRAPHS

    question = "光合作用是植物利用光能把二氧化碳和水转化为葡萄糖的过程吗？请解释。"
    short = "长江是中国最长的河流吗？"  # 11 characters: below one 13-gram, indexed whole
    index = index_of([question, short])
    docs = ["前言。" + question + "答案如下。", "长江是中国最长的河流吗？是的。", *PARAGRAPHS["zh"]]
    found = lookup(index, docs)
    assert found.item[:2].tolist() == [0, 1]
    assert found.share[:2].tolist() == [1.0, 1.0]
    assert matched_span(docs[1], int(found.word_start[1]), int(found.word_len[1])) == "长江是中国最长的河流吗"
    # The Yangtze paragraph opens with the same ten characters, without the question: no match.
    assert (found.item[2:] == -1).all()


def test_a_stock_phrase_of_13_characters_is_not_a_leak_in_chinese_or_japanese():
    """13 units are 13 words in English but a stock phrase in Chinese or Japanese: n-grams and the
    shortest item are scaled by the characters of a word (2 in Chinese, 3 in Japanese), so a clean
    email or news sentence that shares a closing or a slogan with an item is kept, as in English; a
    real leak of the item is still found, also inside a document in another script."""
    items = ["取引先に納品日の延期をお願いするメールを書いてください。"
             "最後は「今後ともどうぞよろしくお願いいたします」で締めてください。",
             "坚持和发展中国特色社会主义，必须坚持以人民为中心的发展思想。下列对此理解正确的是哪一项？",
             "早上好，老师",  # 6 characters: about 3 words, too short to index (English needs 4 words)
             "Write an email to a client asking to postpone the delivery date and thank them for their patience."]
    index = index_of(items)
    assert index.report["sets"]["eval"]["too_short"] == 1 and index.report["sets"]["eval"]["indexed"] == 3
    clean = ["山田様\nいつもお世話になっております。ご依頼の見積書を添付いたします。ご確認のほどお願い申し上げます。"
             "今後ともどうぞよろしくお願いいたします。",
             "会议强调，要坚持和发展中国特色社会主义，扎实推进乡村振兴，不断增强人民群众的获得感。",
             "他大声说：“早上好，老师！”王老师笑着点了点头，让他快回座位。"]
    leaked = ["题目：" + items[1] + "答案：C", "Translate this: " + items[0]]
    found = lookup(index, clean + leaked)
    assert found.item.tolist() == [-1, -1, -1, 1, 0]
    assert not found.whole[3:].any() and found.word_len[3:].tolist() == [26, 39]
    # On the index of v1 (13 units whatever the script) the clean texts matched.
    part = item_words("eval", [f"item-{i}" for i in range(len(items))], pa.array(items))
    part.scales = [1] * len(items)
    assert (lookup(build_index(part, ["eval"], 13, 4, 10, 10**9), clean).item >= 0).all()
