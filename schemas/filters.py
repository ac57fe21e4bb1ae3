"""Parameters of the registered quality filters, with their defaults: the one place they are declared.

A `FilterSpec` in the config names a filter; its `params` are validated against the model here
and completed with every default, so the resolved config (and its digest) lists every parameter
of every filter a run used. The measures themselves are in `transforms/filters.py`, registered
under the same names.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FilterParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class WordCountParams(FilterParams):
    """Gopher keeps 50..100,000 words for web pages; answers can be short."""

    min_words: int | None = Field(default=3, ge=0)
    max_words: int | None = Field(default=100_000, ge=1)


class MeanWordLengthParams(FilterParams):
    # Gopher's 3..10 dropped 4 % of the UDHR's clean documents in 532 translations (README).
    min_chars: float | None = 2.0
    max_chars: float | None = 15.0
    min_words: int = 10  # shorter texts are too small to judge


class SymbolRatioParams(FilterParams):
    max_ratio: float = 0.1
    count_hashes: bool = True  # False: ellipses only (markdown headings use '#')


class EllipsisLinesParams(FilterParams):
    max_share: float = 0.3
    min_lines: int = 2


class BulletLinesParams(FilterParams):
    max_share: float = 0.9
    min_lines: int = 3


class DuplicateLinesParams(FilterParams):
    max_line_share: float = 0.3
    max_char_share: float = 0.2


class RepeatedNgramsParams(FilterParams):
    ngram: int = Field(default=5, ge=2, le=64)
    max_coverage: float = 0.3
    min_words: int = 20


class RepetitionLoopParams(RepeatedNgramsParams):
    """The repeated-n-gram measure tuned for degenerate loops: long n-grams covering most of the text."""

    ngram: int = Field(default=10, ge=2, le=64)
    max_coverage: float = 0.5
    min_words: int = 30


class CharRepetitionParams(FilterParams):
    max_share: float = 0.5
    min_chars: int = 200


class AlphaWordsParams(FilterParams):
    """Gopher drops web pages below 0.8; 0.6 keeps statistics-heavy prose and answers with numbers."""

    min_share: float = 0.6
    min_words: int = 10


class RefusalParams(FilterParams):
    window_chars: int = Field(default=300, ge=1)
    # Refusals in answers of this many words or more pass: they are a disclaimer and then an answer.
    max_words: int | None = Field(default=None, ge=1)


class TooShortParams(FilterParams):
    min_chars: int = Field(default=20, ge=1)


class TemplateMarkersParams(FilterParams):
    pass


class TruncatedParams(FilterParams):
    min_words: int = 40


class PromptEchoParams(FilterParams):
    min_overlap: float = 0.9  # share of the answer's distinct words found in the prompt
    max_length_ratio: float = 1.5  # answer words / prompt words


FILTER_PARAMS: dict[str, type[FilterParams]] = {
    "word_count": WordCountParams,
    "mean_word_length": MeanWordLengthParams,
    "symbol_ratio": SymbolRatioParams,
    "ellipsis_lines": EllipsisLinesParams,
    "bullet_lines": BulletLinesParams,
    "duplicate_lines": DuplicateLinesParams,
    "repeated_ngrams": RepeatedNgramsParams,
    "char_repetition": CharRepetitionParams,
    "alpha_words": AlphaWordsParams,
    "refusal": RefusalParams,
    "too_short": TooShortParams,
    "repetition_loop": RepetitionLoopParams,
    "template_markers": TemplateMarkersParams,
    "truncated": TruncatedParams,
    "prompt_echo": PromptEchoParams,
}
