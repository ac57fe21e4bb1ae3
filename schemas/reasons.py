"""Reason codes: why a row left the main path. Values are stable; they appear in output files."""

from __future__ import annotations

from enum import StrEnum


class RejectReason(StrEnum):
    """Why an input row was rejected at ingest (written to `rejects/`)."""

    NULL_TEXT = "ingest_null_text"
    EMPTY_TEXT = "ingest_empty_text"
    TEXT_NOT_STRING = "ingest_text_not_string"
    INVALID_UTF8 = "ingest_invalid_utf8"
    TOO_LARGE = "ingest_too_large"
    NULL_ID = "ingest_null_id"
    RESERVED_ID = "ingest_reserved_id"
    DUPLICATE_ID = "ingest_duplicate_id"
    BAD_GENERATION = "ingest_bad_generation"
    UNREADABLE_FILE = "ingest_unreadable_file"
    UNREADABLE_ROW_GROUP = "ingest_unreadable_row_group"
    MISSING_COLUMN = "ingest_missing_column"
    AMBIGUOUS_COLUMN = "ingest_ambiguous_column"  # a configured column name appears twice in a Parquet file
    INVALID_JSON = "ingest_invalid_json"  # a JSON Lines line that does not parse
    NOT_AN_OBJECT = "ingest_not_an_object"  # a JSON Lines line that parses to an array, a string, ...


class FilterReason(StrEnum):
    """Why a quality filter or decontamination dropped a document (`filtered/`'s `reason`): one per
    registered filter (`transforms.filters.REGISTRY`; a test keeps the two in step)."""

    WORD_COUNT = "quality_word_count"
    TOO_SHORT = "quality_too_short"
    MEAN_WORD_LENGTH = "quality_mean_word_length"
    SYMBOL_RATIO = "quality_symbol_ratio"
    ELLIPSIS_LINES = "quality_ellipsis_lines"
    BULLET_LINES = "quality_bullet_lines"
    DUPLICATE_LINES = "quality_duplicate_lines"
    REPEATED_NGRAMS = "quality_repeated_ngrams"
    REPETITION_LOOP = "quality_repetition_loop"
    CHAR_REPETITION = "quality_char_repetition"
    ALPHA_WORDS = "quality_alpha_words"
    REFUSAL = "quality_refusal"
    TEMPLATE_MARKERS = "quality_template_markers"
    TRUNCATED = "quality_truncated"
    PROMPT_ECHO = "quality_prompt_echo"
    CONTAMINATED = "contaminated"  # decontamination: a document holding an evaluation item


class DuplicateKind(StrEnum):
    """How a record was found to duplicate the record kept in its place."""

    EXACT = "exact"
    NEAR = "near"
    # The document kept in its place is in an earlier output (`dedup.against`), kept by that run.
    EXACT_PRIOR = "exact_prior"
    NEAR_PRIOR = "near_prior"


class DuplicateLineage(StrEnum):
    """How a removed document descends from the one kept in its place (`parent_id` links), if it does."""

    CHILD = "child"  # the removed document was generated from the kept one: a copy of its own parent
    PARENT = "parent"  # the kept document was generated from the removed one


class Fate(StrEnum):
    """Where an input row went: one per row in `ledger/`."""

    SELECTED = "selected"  # in data/ (one or more copies)
    NOT_SELECTED = "not_selected"  # survived filters and dedup; its source's quota was filled before it
    REJECTED = "rejected"  # in rejects/
    FILTERED = "filtered"  # in filtered/
    DUPLICATE = "duplicate"  # in duplicates/
