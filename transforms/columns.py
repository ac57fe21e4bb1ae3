"""Arrow schemas of the data passed between stages (internal; output schemas live in `schemas/`)."""

from __future__ import annotations

import pyarrow as pa

from hybridmix.schemas.records import DOCUMENT_SCHEMA, DUPLICATE_SCHEMA


def _output_fields(schema: pa.Schema, *names: str) -> list[pa.Field]:
    return [schema.field(n) for n in names]


# A validated input row with its provenance, text measures and lineage key (`uid`).
DOCUMENT_FIELDS = (
    [pa.field("uid", pa.int64(), nullable=False)]
    + _output_fields(DOCUMENT_SCHEMA, "doc_id", "text", "origin", "source", "generator", "generation",
                     "parent_id", "license", "url")
    + [pa.field("prompt", pa.string())]
    + _output_fields(DOCUMENT_SCHEMA, "meta", "content_hash", "tokens", "chars", "script")
    + [pa.field("bytes", pa.int32(), nullable=False)]  # UTF-8 length of the text
    # Hash of the text as read: a row read again must have the same (`transforms.reread`).
    + [pa.field("text_hash", pa.uint64(), nullable=False)]
    # Hash of every word of the normalized text, in order: what filters and MinHash read.
    + [pa.field("word_hashes", pa.list_(pa.uint32()), nullable=False)]
)
DOCUMENT = pa.schema(DOCUMENT_FIELDS)

QUALITY_FIELDS = [
    pa.field("quality_flags", pa.list_(pa.string()), nullable=False),
    pa.field("quality_score", pa.float32()),
]
SCORED_DOCUMENT = pa.schema(DOCUMENT_FIELDS + QUALITY_FIELDS)
# What the filters pass on to sketching of a document they keep: no text. The data/ rows of
# selected documents are read again from their input files (`transforms.reread`).
KEPT_DOCUMENT = pa.schema([f for f in SCORED_DOCUMENT if f.name not in ("text", "prompt", "license", "url", "meta")])

# What dedup and mixing need of a document: no text. `skey` orders duplicates for the
# survivor policy (smallest wins); `exact_count` is how many input rows it stands for.
INFO = pa.schema([
    pa.field("uid", pa.int64(), nullable=False),
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("generator", pa.string()),
    pa.field("generation", pa.int8(), nullable=False),
    # Dedup compares it with the doc_id of the document kept in a duplicate's place (lineage duplicates).
    pa.field("parent_id", pa.string()),
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("tokens", pa.int32(), nullable=False),
    pa.field("chars", pa.int32(), nullable=False),
    pa.field("script", pa.string(), nullable=False),
    pa.field("bytes", pa.int32(), nullable=False),
    pa.field("text_hash", pa.uint64(), nullable=False),
    pa.field("quality_flags", pa.list_(pa.string()), nullable=False),
    pa.field("quality_score", pa.float32()),
    pa.field("skey", pa.string(), nullable=False),
    pa.field("exact_count", pa.int32(), nullable=False),
    pa.field("dup_cluster", pa.string()),
    pa.field("dup_cluster_size", pa.int32(), nullable=False),
])

# A selected document's fate: how many copies go out, and where to find its row again.
SELECTION = pa.schema([
    pa.field("uid", pa.int64(), nullable=False),
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("copies", pa.int32(), nullable=False),
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("tokens", pa.int32(), nullable=False),
    pa.field("chars", pa.int32(), nullable=False),
    pa.field("script", pa.string(), nullable=False),
    pa.field("bytes", pa.int32(), nullable=False),
    pa.field("text_hash", pa.uint64(), nullable=False),
    pa.field("quality_flags", pa.list_(pa.string()), nullable=False),
    pa.field("quality_score", pa.float32()),
    pa.field("dup_cluster", pa.string()),
    pa.field("dup_cluster_size", pa.int32(), nullable=False),
])

# Duplicate rows inside the pipeline: the output columns that do not need the file table,
# plus the row keys that resolve chains (an exact duplicate of a near duplicate) and both
# parent ids, so `lineage` can be decided again when a chain moves the row to another kept document.
DUPLICATE = pa.schema(
    [pa.field("uid", pa.int64(), nullable=False), pa.field("kept_uid", pa.int64(), nullable=False)]
    + [f for f in DUPLICATE_SCHEMA if f.name not in ("source_file", "source_row", "run_id", "kept_run_id")]
    + [pa.field("parent_id", pa.string()), pa.field("kept_parent_id", pa.string())]
    # null: kept by this run; an earlier output's run id for duplicates of its documents
    + [pa.field("kept_run_id", pa.string())]
)
