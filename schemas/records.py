"""Output record types: a pydantic model and an Arrow schema side by side for each.

Writers always pass these Arrow schemas explicitly; tests/schemas checks that each pair agrees.
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from hybridmix.schemas.config import Origin
from hybridmix.schemas.reasons import DuplicateKind, DuplicateLineage, Fate


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Document(_Record):
    """One row of the mixture (`data/`)."""

    id: str
    doc_id: str
    text: str
    origin: Origin
    source: str
    generator: str | None
    generation: int = Field(ge=0, le=127)
    parent_id: str | None
    license: str | None
    url: str | None
    source_file: str
    source_row: int = Field(ge=0)
    content_hash: str
    tokens: int = Field(ge=0)
    chars: int = Field(ge=0)
    script: str  # ISO 15924 code of the script most of the text's units are in (README, "Languages")
    quality_flags: list[str]
    quality_score: float | None
    dup_cluster: str | None
    dup_cluster_size: int = Field(ge=1)
    repeat: int = Field(ge=0)
    split: str
    run_id: str
    config_digest: str
    meta: str | None


DOCUMENT_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("generator", pa.string()),
    pa.field("generation", pa.int8(), nullable=False),
    pa.field("parent_id", pa.string()),
    pa.field("license", pa.string()),
    pa.field("url", pa.string()),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_row", pa.int64(), nullable=False),
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("tokens", pa.int32(), nullable=False),
    pa.field("chars", pa.int32(), nullable=False),
    pa.field("script", pa.string(), nullable=False),
    pa.field("quality_flags", pa.list_(pa.string()), nullable=False),
    pa.field("quality_score", pa.float32()),
    pa.field("dup_cluster", pa.string()),
    pa.field("dup_cluster_size", pa.int32(), nullable=False),
    pa.field("repeat", pa.int16(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("config_digest", pa.string(), nullable=False),
    pa.field("meta", pa.string()),
])


class Rejection(_Record):
    """An input row that could not be used (`rejects/`)."""

    source: str
    source_file: str
    source_row: int | None
    doc_id: str | None
    reason: str
    detail: str
    text: str | None
    run_id: str


REJECTION_SCHEMA = pa.schema([
    pa.field("source", pa.string(), nullable=False),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_row", pa.int64()),
    pa.field("doc_id", pa.string()),
    pa.field("reason", pa.string(), nullable=False),
    pa.field("detail", pa.string(), nullable=False),
    pa.field("text", pa.string()),
    pa.field("run_id", pa.string(), nullable=False),
])


class FilteredRecord(_Record):
    """A document a quality filter dropped (`filtered/`): which filter, what it measured."""

    doc_id: str
    origin: Origin
    source: str
    source_file: str
    source_row: int = Field(ge=0)
    filter: str  # the first filter the document failed (the one `reason` and `value` are of)
    reason: str
    value: float | None
    threshold: float | None  # it failed because `value <comparison> threshold`
    comparison: str | None  # "<", ">" or ">="
    filters_failed: list[str]  # every drop filter it failed, `filter` first
    detail: str
    quality_score: float | None
    # For filter "decontaminate": the evaluation set, the item, and the first span they share.
    eval_set: str | None = None
    eval_item: str | None = None
    matched_span: str | None = None
    text: str
    run_id: str


FILTERED_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_row", pa.int64(), nullable=False),
    pa.field("filter", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),
    pa.field("value", pa.float64()),
    pa.field("threshold", pa.float64()),
    pa.field("comparison", pa.string()),
    pa.field("filters_failed", pa.list_(pa.string()), nullable=False),
    pa.field("detail", pa.string(), nullable=False),
    pa.field("quality_score", pa.float32()),
    pa.field("eval_set", pa.string()),
    pa.field("eval_item", pa.string()),
    pa.field("matched_span", pa.string()),
    pa.field("text", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
])


class DuplicateRecord(_Record):
    """A document removed as a duplicate of the one kept in its place (`duplicates/`)."""

    doc_id: str
    kept_doc_id: str
    cluster: str
    cluster_size: int = Field(ge=2)
    kind: DuplicateKind
    similarity: float = Field(ge=0.0, le=1.0)
    origin: Origin
    source: str
    generator: str | None
    kept_origin: Origin
    kept_source: str
    kept_generator: str | None
    # Set when one of the two was generated from the other (`parent_id`): `child` for a synthetic
    # document removed in favour of its own parent, `parent` for a parent removed in favour of its child.
    lineage: DuplicateLineage | None
    source_file: str
    source_row: int = Field(ge=0)
    run_id: str
    kept_run_id: str  # the run that kept `kept_doc_id`: this one, or an earlier output's (kinds *_prior)


DUPLICATE_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("kept_doc_id", pa.string(), nullable=False),
    pa.field("cluster", pa.string(), nullable=False),
    pa.field("cluster_size", pa.int32(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("similarity", pa.float32(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("generator", pa.string()),
    pa.field("kept_origin", pa.string(), nullable=False),
    pa.field("kept_source", pa.string(), nullable=False),
    pa.field("kept_generator", pa.string()),
    pa.field("lineage", pa.string()),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_row", pa.int64(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("kept_run_id", pa.string(), nullable=False),
])


class IndexEntry(_Record):
    """A document this run published (`index/`), or removed as a near duplicate: what a later run needs
    to find duplicates of it (`dedup.against`) without reading its text again. One row per document,
    not per copy."""

    doc_id: str
    content_hash: str  # as in data/: exact duplicates have the same
    # LSH band keys of the MinHash signature (dedup.near bands x rows); empty without words or near dedup.
    bands: list[int]
    # The low 8 bits of every MinHash value (b-bit minwise hashing): verifies a candidate's similarity.
    minhash8: bytes | None
    origin: Origin
    source: str
    generator: str | None
    generation: int = Field(ge=0, le=127)
    parent_id: str | None  # so a later run can tell a rephrase of this document from other copies
    tokens: int = Field(ge=0)
    run_id: str
    # Null for a document of data/. A document removed as a near duplicate is indexed too, so that a
    # later run follows the chain as one run over all the data would: the document kept in its place,
    # and the run that kept it (null: this run).
    kept_doc_id: str | None
    kept_run_id: str | None
    # Its estimated Jaccard similarity to the document kept (null for a document of data/): a later
    # exact copy of it is that far from the published document, not identical to it.
    kept_similarity: float | None = Field(default=None, ge=0.0, le=1.0)


# Columns of uniformly random hashes: a dictionary never fits them, and Parquet writers try one
# first (index/ was written in 0.41 s with it and 0.15 s without, 6 % smaller, on 143,863 rows).
HASH_COLUMNS = frozenset({"bands", "minhash8"})

INDEX_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("bands", pa.list_(pa.uint64()), nullable=False),
    pa.field("minhash8", pa.binary()),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("generator", pa.string()),
    pa.field("generation", pa.int8(), nullable=False),
    pa.field("parent_id", pa.string()),
    pa.field("tokens", pa.int32(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("kept_doc_id", pa.string()),
    pa.field("kept_run_id", pa.string()),
    pa.field("kept_similarity", pa.float32()),
])


class LedgerEntry(_Record):
    """One input row's fate (`ledger/`): every row read, or one row per unreadable file of unknown size."""

    doc_id: str | None  # null where the row had no usable id (some rejects)
    source: str
    source_file: str
    source_row: int | None = Field(ge=0)  # null for a quarantined file whose rows could not be counted
    fate: Fate
    detail: str  # why, in words: the split and copies, the reason, the failing filters, the kept document


LEDGER_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string()),
    pa.field("source", pa.string(), nullable=False),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_row", pa.int64()),
    pa.field("fate", pa.string(), nullable=False),
    pa.field("detail", pa.string(), nullable=False),
])


RECORD_TYPES: dict[str, tuple[type[_Record], pa.Schema]] = {
    "data": (Document, DOCUMENT_SCHEMA),
    "rejects": (Rejection, REJECTION_SCHEMA),
    "filtered": (FilteredRecord, FILTERED_SCHEMA),
    "duplicates": (DuplicateRecord, DUPLICATE_SCHEMA),
    "ledger": (LedgerEntry, LEDGER_SCHEMA),
    "index": (IndexEntry, INDEX_SCHEMA),
}
