"""Parameters of the registered quality filters, with their defaults and bounds: the one place they are declared.

A `FilterSpec` in the config names a filter; its `params` are validated against the model here
and completed with every default, so the resolved config (and its digest) lists every parameter
of every filter a run used. A value outside its bounds is a config error naming the filter, the
parameter and the bounds (`describe_bounds`). The measures themselves are in
`transforms/filters.py`, registered under the same names.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

# A share of a text's words, lines or characters: 60 meant as a percentage would drop every text a
# `min_share` rule judges, and pass every one a `max_share` rule judges.
Share = Annotated[float, Field(ge=0.0, le=1.0)]


class FilterParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    def _check_order(self, low: str, high: str) -> None:
        a, b = getattr(self, low), getattr(self, high)
        if a is not None and b is not None and a > b:
            # Every text judged would fail: none is both at least `low` and at most `high`.
            raise ValueError(f"{low}: {low} <= {high} (got {a:g} and {b:g})")


class WordCountParams(FilterParams):
    """Gopher keeps 50..100,000 words for web pages; answers can be short."""

    min_words: int | None = Field(default=3, ge=0)
    max_words: int | None = Field(default=100_000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> WordCountParams:
        self._check_order("min_words", "max_words")
        return self


class MeanWordLengthParams(FilterParams):
    # Gopher's 3..10 dropped 4 % of the UDHR's clean documents in 532 translations (README).
    min_chars: float | None = Field(default=2.0, ge=0.0)
    max_chars: float | None = Field(default=15.0, ge=0.0)
    # Shorter texts are too small to judge; from 1, as a text without words would measure 0 and fail.
    min_words: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> MeanWordLengthParams:
        self._check_order("min_chars", "max_chars")
        return self


class SymbolRatioParams(FilterParams):
    max_ratio: float = Field(default=0.1, ge=0.0)  # marks per word, not a share: it can pass 1
    count_hashes: bool = True  # False: ellipses only, no hashtags


class EllipsisLinesParams(FilterParams):
    max_share: Share = 0.3
    min_lines: int = Field(default=2, ge=0)


class BulletLinesParams(FilterParams):
    max_share: Share = 0.9
    min_lines: int = Field(default=3, ge=0)


class DuplicateLinesParams(FilterParams):
    max_line_share: Share = 0.3
    max_char_share: Share = 0.2


class RepeatedNgramsParams(FilterParams):
    ngram: int = Field(default=5, ge=2, le=64)
    max_coverage: Share = 0.3
    min_words: int = Field(default=20, ge=0)


class RepetitionLoopParams(RepeatedNgramsParams):
    """The repeated-n-gram measure tuned for degenerate loops: long n-grams covering most of the text."""

    ngram: int = Field(default=10, ge=2, le=64)
    max_coverage: Share = 0.5
    min_words: int = Field(default=30, ge=0)


class CharRepetitionParams(FilterParams):
    max_share: Share = 0.5
    min_chars: int = Field(default=200, ge=0)


class AlphaWordsParams(FilterParams):
    """Gopher drops web pages below 0.8; 0.6 keeps statistics-heavy prose and answers with numbers."""

    min_share: Share = 0.6
    min_words: int = Field(default=10, ge=1)  # from 1: a text without words would measure 0 and fail


class RefusalParams(FilterParams):
    window_chars: int = Field(default=300, ge=1)
    # Refusals in answers of this many words or more pass: they are a disclaimer and then an answer.
    max_words: int | None = Field(default=None, ge=1)


class TooShortParams(FilterParams):
    min_chars: int = Field(default=20, ge=1)


class TemplateMarkersParams(FilterParams):
    pass


class TruncatedParams(FilterParams):
    min_words: int = Field(default=40, ge=0)


class PromptEchoParams(FilterParams):
    min_overlap: Share = 0.9  # share of the answer's distinct words found in the prompt
    max_length_ratio: float = Field(default=1.5, gt=0.0)  # answer words / prompt words


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


def describe_bounds(model: type[FilterParams], name: str) -> str | None:
    """A parameter's declared bounds as a rule (`0 <= min_share <= 1`, `min_words >= 0`); None without any."""
    field = model.model_fields.get(name)
    low = high = None
    for bound in field.metadata if field is not None else ():
        # pydantic keeps `Field(ge=...)` and its kin as annotated_types' Ge, Gt, Le and Lt.
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(bound, attr, None)
            if value is not None:
                if attr.startswith("g"):
                    low = (sign, value)
                else:
                    high = (sign, value)
    if low and high:
        return f"{low[1]:g} {low[0].replace('>', '<')} {name} {high[0]} {high[1]:g}"
    if low or high:
        sign, value = low or high
        return f"{name} {sign} {value:g}"
    return None
