import unicodedata

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash, MinHashLSH

from hybridmix.transforms import minhash as mh
from hybridmix.transforms.text import analyze
from tests.builders import near_copy, words


def signatures(texts: list[str], ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """What a run computes: words of the normalized text hashed in one pass, then MinHash."""
    analysis = analyze(pa.array(texts, pa.string()))
    return mh.signatures(analysis.word_hashes, analysis.word_offsets, ngram, num_perm, seed)

TEXTS = [
    words(1, 120),
    near_copy(words(1, 120)),
    "Short text.",
    "",
    "!!! ???",
    "Ünïcode ﬁne  TEXT with\u00a0spaces and 数字 123 tokens here",
    words(2, 4),
]


@pytest.mark.parametrize("num_perm, seed, ngram", [(128, 1, 5), (64, 7, 3), (256, 42, 1)],
                         ids=["default", "small-trigram", "large-unigram"])
def test_signatures_are_bit_identical_to_datasketch(num_perm, seed, ngram):
    sig = signatures(TEXTS, ngram, num_perm, seed)
    for i, text in enumerate(TEXTS):
        ref = MinHash(num_perm=num_perm, seed=seed, hashfunc=mh.shingle_hash32)
        ref.update_batch(mh.document_shingles(text, ngram))
        assert np.array_equal(sig[i], ref.hashvalues), f"text {i}"


def test_batch_word_hashes_match_the_reference_words():
    analysis = analyze(pa.array(TEXTS))
    for i, text in enumerate(TEXTS):
        expected = [mh.word_hash32(w.encode("utf-8")) for w in mh.document_words(text)]
        got = analysis.word_hashes[analysis.word_offsets[i]:analysis.word_offsets[i + 1]].tolist()
        assert got == expected, text


@pytest.mark.parametrize("texts, lengthens", [
    (TEXTS + ["한국어 텍스트입니다", "日本語のテキスト", "ป็นภาษาไทย", "ŒUVRE Straße ＦＵＬＬ"], False),
    # U+337F is 3 bytes and folds to 4 Han units (株式会社): more units than bytes.
    (["\u337f" * 40, "\u337f", "x\u337fy \ufdfa"], True),
    # Ignorable code points fold to nothing: inside a word, between words, alone, at the ends.
    (["exam\u00adple soft\u00adhyphen", "zero\u200bwidth \u200d\ufeff", "\u200b", "\u2060a\u2060 b\ufe0f"], False),
    # Marks out of canonical order, which both put in order: after a precomposed letter, after a mark
    # that opens a unit (after a space or punctuation), after a Thai or Han unit, three in a row.
    (["vie\u0302\u0323t \u00ea\u0323 \u0302\u0323x !\u0302\u0323", "\u0e01\u0e49\u0e38 \u4e2d\u0302\u0323",
      "a\u0301\u0302\u0323\u031b b\u0651\u064e",
      "\u0e17\u0e48\u0e35 \u0e19\u0e48\u0e31\u0e19 \u0e01\u0e49\u0e38\u0e35"], False),
], ids=["scripts", "folding-lengthens", "ignorable", "marks-out-of-order"])
def test_word_hashes_of_every_script_equal_the_reference(texts, lengthens):
    analysis = analyze(pa.array(texts))
    hashes, offsets = analysis.word_hashes, analysis.word_offsets
    for i, text in enumerate(texts):
        assert hashes[offsets[i]:offsets[i + 1]].tolist() == [
            mh.word_hash32(w.encode("utf-8")) for w in mh.document_words(text)], text
    assert (offsets[-1] > sum(len(t.encode("utf-8")) + 1 for t in texts)) == lengthens


def test_reference_words_follow_unicode_classes():
    # Han is written without spaces: each ideograph is a unit of its own, and digits after it are a word.
    assert mh.document_words("Don't stop—ever! Ünïcode_ok 数字123") == ["don", "t", "stop", "ever", \
        unicodedata.normalize("NFKD", "ünïcode_ok"), "数", "字", "123"]


def test_units_of_scripts_without_spaces_keep_their_marks():
    nfkd = lambda s: unicodedata.normalize("NFKD", s)  # noqa: E731
    # Kana with a voicing mark (two code points after NFKD) is one unit; so is a Thai consonant
    # with its tone mark, and a Hangul syllable (three jamo after NFKD).
    assert mh.document_words("がぎ") == [nfkd("が"), nfkd("ぎ")]
    assert mh.document_words("ป็น") == ["ป็", "น"]
    assert mh.document_words("한국 어") == [nfkd("한"), nfkd("국"), nfkd("어")]
    # Mixed Chinese and English: English words stay whole.
    assert mh.document_words("用Python写代码") == ["用", "python", "写", "代", "码"]
    assert mh.document_words("مرحبا بالعالم") == ["مرحبا", "بالعالم"]


def test_signatures_do_not_depend_on_batch_composition():
    together = signatures(TEXTS, 5, 128, 1)
    alone = np.vstack([signatures([t], 5, 128, 1) for t in TEXTS])
    assert np.array_equal(together, alone)


def test_empty_text_has_the_empty_signature():
    sig = signatures(["", "..."], 5, 16, 1)
    assert (sig == mh.EMPTY_HASH).all()


def test_near_copies_estimate_high_similarity_and_unrelated_low():
    sig = signatures([words(1, 300), near_copy(words(1, 300)), words(3, 300)], 5, 256, 1)
    assert mh.estimate_jaccard(sig[0], sig[1]) > 0.9
    assert mh.estimate_jaccard(sig[0], sig[2]) < 0.1


@pytest.mark.parametrize("threshold, num_perm", [(0.5, 64), (0.8, 128), (0.9, 256), (0.7, 128)])
def test_band_shape_matches_datasketch_lsh(threshold, num_perm):
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    assert mh.optimal_bands(threshold, num_perm) == (lsh.b, lsh.r)


def test_band_keys_equal_exactly_when_bands_equal():
    sig = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [5, 5, 3, 4]], np.uint32)
    keys = mh.band_keys(sig, 2, 2)
    assert keys[0, 0] == keys[1, 0]
    assert keys[0, 1] != keys[1, 1]
    assert keys[0, 1] != keys[2, 0]
    # Same values in different bands must not collide.
    same = mh.band_keys(np.array([[7, 7, 7, 7]], np.uint32), 2, 2)
    assert same[0, 0] != same[0, 1]


@pytest.mark.parametrize("bands, rows", [(32, 8), (9, 13), (1, 1)])
def test_band_keys_keep_the_formula_stored_indexes_were_built_with(bands, rows):
    # index/ stores band keys and later runs (`dedup.against`) look theirs up in it: a change of
    # formula would find no earlier near copy. The formula, written out once per value:
    sig = np.random.default_rng(3).integers(0, 2**32, (50, 256), dtype=np.uint64).astype(np.uint32)
    mask = (1 << 64) - 1
    for d in (0, 17, 49):
        for band in range(bands):
            h = (0x9E3779B97F4A7C15 * (band + 1)) & mask
            for value in sig[d, band * rows:(band + 1) * rows]:
                h = ((h ^ int(value)) * 0x100000001B3) & mask
                h ^= h >> 29
            assert int(mh.band_keys(sig, bands, rows)[d, band]) == h


def test_signatures_load_into_datasketch_lsh():
    texts = [words(1, 300), near_copy(words(1, 300)), words(5, 300)]
    sig = signatures(texts, 5, 128, 1)
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    for i, row in enumerate(sig):
        lsh.insert(f"d{i}", MinHash(num_perm=128, seed=1, hashvalues=row, scheme="affine32"))
    query = MinHash(num_perm=128, seed=1, hashfunc=mh.shingle_hash32)
    query.update_batch(mh.document_shingles(texts[0], 5))
    assert sorted(lsh.query(query)) == ["d0", "d1"]
