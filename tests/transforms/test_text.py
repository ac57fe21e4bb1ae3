import hashlib
import re
import unicodedata

import numpy as np
import pyarrow as pa
import pytest

from hybridmix.transforms import kernels, parallel
from hybridmix.transforms.text import (
    analyze,
    content_hashes,
    count_tokens,
    fold,
    stable_hash64,
    string_buffers,
    text_hashes,
)


def test_normalize_folds_case_width_and_whitespace():
    out = analyze(pa.array(["  Hello\u00a0\tWORLD\n ", "ＦＵＬＬ width", "ﬁne"])).normalized.to_pylist()
    assert out == ["hello world", "full width", "fine"]


def test_equal_after_normalization_means_equal_hash():
    a, b, c = content_hashes(analyze(pa.array(["The  Cat", "the cat", "the cats"])).normalized).to_pylist()
    assert a == b
    assert a != c
    assert len(a) == 32


def test_invisible_format_characters_leave_the_text_and_its_words_unchanged():
    # Soft hyphens (PDF and HTML extraction), zero-width spaces and joiners, a byte order mark: a
    # copy that differs only in them is the same text, so exact and near dedup must see one text.
    clean = "An example of hyphenation in Kaffeehaus and Persian میخواهم."
    marked = ["An exam\u00adple of hy\u00adphen\u00ada\u00adtion in Kaffee\u00adhaus and Persian می\u200cخواهم.",
              "\ufeffAn example\u200b of hyphenation in Kaffee\u200dhaus and Persian میخواهم.\u2060"]
    analysis = analyze(pa.array([clean, *marked]))
    assert analysis.normalized.to_pylist() == [analysis.normalized[0].as_py()] * 3
    assert len(set(content_hashes(analysis.normalized).to_pylist())) == 1
    words = [analysis.word_hashes[analysis.word_offsets[i]:analysis.word_offsets[i + 1]].tolist() for i in range(3)]
    assert words[1] == words[0] and words[2] == words[0]
    # The texts keep them, and a tokenizer spends tokens on them: counted as punctuation marks.
    assert (analysis.word_tokens - analysis.word_tokens[0]).tolist() == [0, 6, 4]


def test_arabic_script_spellings_of_the_same_text_normalize_alike():
    """The tatweel only stretches a word (کـــتاب is کتاب); Persian typed on an Arabic keyboard writes ي and
    ك for ی and ک. A copy that differs only in these is the same text to exact and near dedup and to
    decontamination."""
    persian = "من کتاب های زیادی خوانده ام"
    arabic_keyboard = persian.replace("ی", "ي").replace("ک", "ك")
    stretched = persian.replace("کت", "کـــت")
    arabic = "العلم نور"
    analysis = analyze(pa.array([persian, arabic_keyboard, stretched, arabic, arabic.replace("ع", "عـ")]))
    normalized = analysis.normalized.to_pylist()
    assert normalized[1] == normalized[0] and normalized[2] == normalized[0] and normalized[4] == normalized[3]
    assert len(set(content_hashes(analysis.normalized).to_pylist())) == 2
    words = [analysis.word_hashes[analysis.word_offsets[i]:analysis.word_offsets[i + 1]].tolist() for i in range(5)]
    assert words[1] == words[0] == words[2] and words[4] == words[3] and len(words[0]) == 6
    assert fold(stretched) == fold(persian)


def test_pointed_and_unpointed_hebrew_and_arabic_and_both_malayalam_chillus_normalize_alike():
    """Hebrew and Arabic write vowel points only in some texts (Genesis 1:1 below, pointed and with its
    cantillation, and not); Malayalam writes ൻ, or, as older text does, ന + virama + zero-width joiner.
    Each pair was two texts to dedup (a Jaccard similarity of 0.00 for the Hebrew)."""
    pointed = "בְּרֵאשִׁ֖ית בָּרָ֣א אֱלֹהִ֑ים אֵ֥ת הַשָּׁמַ֖יִם וְאֵ֥ת הָאָֽרֶץ׃"
    plain = "בראשית ברא אלהים את השמים ואת הארץ׃"
    arabic_pointed, arabic = "العِلْمُ نُورٌ وَالجَهْلُ ظَلامٌ", "العلم نور والجهل ظلام"
    chillu, legacy = "അവൻ വന്നു, അവൾ പോയി", "അവന്\u200d വന്നു, അവള്\u200d പോയി"
    analysis = analyze(pa.array([pointed, plain, arabic_pointed, arabic, chillu, legacy]))
    normalized = analysis.normalized.to_pylist()
    assert normalized[0] == normalized[1] and normalized[2] == normalized[3] and normalized[4] == normalized[5]
    assert len(set(content_hashes(analysis.normalized).to_pylist())) == 3
    words = [analysis.word_hashes[analysis.word_offsets[i]:analysis.word_offsets[i + 1]].tolist() for i in range(6)]
    assert words[0] == words[1] and len(words[0]) == 7 and words[2] == words[3] and words[4] == words[5]
    # Hebrew's punctuation stays: the maqaf joins words, sof pasuq ends a verse.
    assert fold("על־פני׃") == "על־פני׃" and fold(pointed) == fold(plain)


def test_ignorable_code_points_are_unicodes_default_ignorable_ones():
    regex = pytest.importorskip("regex")  # Beam's dependency; it knows the Unicode property
    prop = regex.compile(r"\p{Default_Ignorable_Code_Point}")
    want = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF and prop.match(chr(cp))]
    start, length, _, _ = kernels.fold_table()
    # and what is only the Arabic tatweel (kernels.SAME_LETTER) and vowel points (kernels.VOWEL_POINTS):
    # they fold to nothing too, as do the presentation forms made of them (U+FE71, a tatweel with fathatan)
    points = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF and cp not in want
              and {ord(c) for c in unicodedata.normalize("NFKD", chr(cp))} <= {0x0640, *kernels.VOWEL_POINTS}]
    assert 0xFE71 in points and len(points) > len(kernels.VOWEL_POINTS)
    assert np.flatnonzero((start >= 0) & (length == 0)).tolist() == sorted(want + points)


@pytest.mark.parametrize(
    "kind, text, expected",
    [("words", "Hello, world! It's 2024.", 9), ("whitespace", "Hello, world! It's 2024.", 4),
     ("bytes4", "abcdefgh", 2), ("bytes4", "abcdefghi", 3), ("words", "日本語 テキスト", 7),
     ("words", "我们用Python写代码。", 8)],
    ids=["words", "whitespace", "bytes-even", "bytes-round-up", "japanese-characters", "mixed-chinese-english"],
)
def test_count_tokens(kind, text, expected):
    assert count_tokens(pa.array([text]), kind).tolist() == [expected]


def test_analysis_counts_words_and_tokens():
    analysis = analyze(pa.array(["Hi, there -- friend!", "", "!!!", "über café"]))
    assert np.diff(analysis.word_offsets).tolist() == [3, 0, 0, 2]
    assert analysis.word_tokens.tolist() == [7, 0, 3, 2]
    assert analysis.space_tokens.tolist() == [4, 0, 1, 2]
    assert analysis.normalized.to_pylist()[0] == "hi, there -- friend!"


def test_ascii_folds_to_one_ascii_code_point():
    # The word-hash kernel's ASCII path takes one byte for one folded code point: it relies on this.
    start, length, data, _ = kernels.fold_table()
    for cp in range(128):
        assert start[cp] < 0 or (length[cp] == 1 and data[start[cp]] < 128), chr(cp)
    assert analyze(pa.array(["ABC xyz"])).normalized.to_pylist() == ["abc xyz"]


def test_ascii_fast_path_matches_the_general_fold():
    """ASCII bytes skip decoding and the fold table's expansions; the full-width forms of the same
    characters (U+FF01..U+FF5E fold to ASCII) take the general path, and must come out the same:
    normalized text, word hashes and offsets, token counts, script."""
    printable = "".join(chr(c) for c in range(0x21, 0x7F))
    wide = "".join(chr(c - 0x21 + 0xFF01) for c in range(0x21, 0x7F))
    sentence = "Hello, World! It's 2024 -- [OK] {x=1}; path/to/file.txt ~user @me #tag"
    as_wide = "".join(chr(ord(c) - 0x21 + 0xFF01) if 0x21 <= ord(c) < 0x7F else c for c in sentence)
    ascii_side = analyze(pa.array([printable, sentence, "ﬁne ASCII ﬁ", "\tA\n\x0bB\x1fC\x7f"]))
    wide_side = analyze(pa.array([wide, as_wide, "ﬁne ＡＳＣＩＩ ﬁ", "\tＡ\n\x0bＢ\x1fＣ\x7f"]))
    assert ascii_side.normalized.to_pylist() == wide_side.normalized.to_pylist()
    assert ascii_side.normalized.to_pylist()[0] == printable.lower()
    for name in ("word_hashes", "word_offsets", "word_tokens", "space_tokens", "script", "estimated_tokens"):
        assert np.array_equal(getattr(ascii_side, name), getattr(wide_side, name)), name
    assert kernels.ascii_fold().tolist() == [ord(chr(c).lower()) for c in range(128)]


def test_composed_and_decomposed_accents_hash_alike():
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    a, b = content_hashes(analyze(pa.array([composed, decomposed])).normalized).to_pylist()
    assert a == b


def test_a_letters_marks_typed_in_any_order_normalize_alike():
    """Vietnamese typed on Windows' keyboard is a precomposed letter plus a tone mark ("ê" + U+0323 for
    "ệ"): canonically the same text as NFC and NFD, whose marks come in another order (dot below
    first). So are Thai tone marks typed before a vowel sign, and Arabic's shadda before a vowel. A Thai
    tone mark typed before a vowel above the consonant (ท่ี for ที่) is another spelling in Unicode (the
    vowel has combining class 0); it looks the same, and is put in the same order too."""
    nfc = "Việt Nam, một nước ở châu Á; hoặc Nhật Bản. กุ้ง شَدَّة ที่นั่น"
    typed = (nfc.replace("ệ", "ê\u0323").replace("ộ", "ô\u0323").replace("ặ", "ă\u0323")
             .replace("ậ", "â\u0323").replace("\u0e38\u0e49", "\u0e49\u0e38").replace("\u064e\u0651", "\u0651\u064e"))
    assert typed != nfc and unicodedata.normalize("NFC", typed) == nfc
    tone_first = re.sub("([\u0e31\u0e34-\u0e37])([\u0e48-\u0e4b])", r"\2\1", typed)
    assert tone_first != typed and unicodedata.normalize("NFC", tone_first) != nfc
    forms = [nfc, unicodedata.normalize("NFD", nfc), typed, tone_first]
    analysis = analyze(pa.array(forms))
    assert len(set(analysis.normalized.to_pylist())) == 1
    assert len(set(content_hashes(analysis.normalized).to_pylist())) == 1
    words = [analysis.word_hashes[analysis.word_offsets[i]:analysis.word_offsets[i + 1]].tolist() for i in range(4)]
    assert words[1:] == [words[0]] * 3 and len(words[0]) == 16
    assert analysis.normalized.to_pylist()[0] == fold(nfc)


@pytest.mark.parametrize("threads", [1, 2])
def test_content_hash_is_hashlib_blake2b_hex_of_normalized_text(threads):
    # Lengths around BLAKE2b's 128-byte block, empty and multi-byte text, and a sliced array
    # (offsets not starting at 0); with two kernel threads the batch is hashed in two runs.
    texts = ["", "a", "é" * 64, "x" * 127, "y" * 128, "z" * 129, "中文 " * 100, "w" * 256] * 700
    normalized = analyze(pa.array(texts)).normalized.slice(5)
    want = [hashlib.blake2b(t.encode(), digest_size=16).hexdigest() for t in normalized.to_pylist()]
    before = parallel.threads()
    parallel.set_threads(threads)
    try:
        assert len(parallel.runs(string_buffers(normalized)[1], threads)) == threads
        assert content_hashes(normalized).to_pylist() == want
        assert content_hashes(normalized.slice(0, 0)).to_pylist() == []
    finally:
        parallel.set_threads(before)


def test_stable_hash_is_seeded_and_repeatable():
    a = stable_hash64(["x", "y"], "s1")
    assert np.array_equal(a, stable_hash64(["x", "y"], "s1"))
    assert not np.array_equal(a, stable_hash64(["x", "y"], "s2"))
    # A fixed value: the hash must not change between processes or releases.
    assert int(stable_hash64(["doc-1"], "select/0")[0]) == 0x6CEBBF83DBA4D74B


# Around BLAKE2b's 128-byte blocks, for salts that fill a block on their own too.
_LENGTHS = (0, 1, 7, 8, 100, 118, 119, 127, 128, 129, 255, 256, 257, 1000)


@pytest.mark.parametrize("salt", ["", "select/0", "s" * 127, "长" * 50])
def test_stable_hash_is_blake2b_of_salt_and_text(salt):
    values = [("文" * n)[: n // 3] + "x" * (n - 3 * (n // 3)) for n in _LENGTHS] + ["doc-1", "é"]
    want = [int.from_bytes(hashlib.blake2b(salt.encode() + b"\x00" + v.encode(), digest_size=8).digest(), "little")
            for v in values]
    assert stable_hash64(values, salt).tolist() == want
    arrow = pa.chunked_array([pa.array(values[:5]), pa.array(values[5:])])
    assert stable_hash64(arrow, salt).tolist() == want
    assert stable_hash64(pa.array(values).slice(3), salt).tolist() == want[3:]


def test_blake2b_kernel_gives_every_digest_size():
    texts = [bytes(range(n % 256)) * (n // 256 + 1) for n in _LENGTHS]
    data = np.frombuffer(b"".join(texts), np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in texts])]).astype(np.int64)
    for prefix in (b"", b"p" * 200):
        for words in (1, 2, 8):
            got = kernels.blake2b(data, offsets, np.frombuffer(prefix, np.uint8), words)
            want = [hashlib.blake2b(prefix + t, digest_size=8 * words).digest() for t in texts]
            assert [row.astype("<u8").tobytes() for row in got] == want


def test_stable_hash_refuses_nulls():
    assert stable_hash64([], "s").shape == (0,)
    with pytest.raises(ValueError, match="null"):
        stable_hash64(pa.array(["a", None]), "s")


def test_text_hash_tells_every_one_character_change_and_ignores_where_the_text_sits():
    # Lengths on both sides of the 8-byte step, each character changed in turn.
    base = ["", "a", "abcdefg", "abcdefgh", "abcdefghi", "héllo wörld, 中文 text" * 3]
    variants = [t[:i] + chr(ord(t[i]) ^ 1) + t[i + 1:] for t in base for i in range(len(t))]
    texts = base + variants + [t + " " for t in base]
    hashes = text_hashes(pa.array(texts))
    assert len(set(hashes.tolist())) == len(set(texts))
    # The same text hashes alike at any offset of any batch.
    shifted = text_hashes(pa.array(["x"] * 3 + texts).slice(3))
    assert shifted.tolist() == hashes.tolist()
