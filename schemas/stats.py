"""Run statistics: the figures stages count inside the pipeline, and the manifest is built from.

A statistic is a `StatKey` (which figure, for which source, with which detail: a reason, a
filter, a split, a size bucket) and an integer. Stages emit them with `stat()`; the runner sums
equal keys; `RunStats` reads the sums back as typed values. Keys travel as plain tuples of
strings, so every runner groups them with a deterministic coder.

A new figure is one `Figure` member, one `stat()` call where it is counted, and one `RunStats`
read where it is reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import NamedTuple


class Figure(StrEnum):
    # Per source: where input rows went (manifest `counts`; read = the six fates).
    READ = "read"
    REJECTED = "rejected"
    FILTERED = "filtered"
    EXACT_DUPLICATES = "exact_duplicates"
    NEAR_DUPLICATES = "near_duplicates"
    NOT_SELECTED = "not_selected"
    SELECTED = "selected"
    WRITTEN = "written"
    # Per source: what the mixture took (rows count repeats; units are tokens or documents).
    SELECTED_ROWS = "selected_rows"
    SELECTED_TOKENS = "selected_tokens"
    SELECTED_UNITS = "selected_units"
    # Per source: tokens of the documents selected, one copy each (upsampling adds no data).
    SELECTED_DOCUMENT_TOKENS = "selected_document_tokens"
    # Per source, detail: the earlier run a `format: hybridmix` corpus's documents came from: documents
    # selected, and their tokens (one copy each).
    CARRIED_SELECTED = "carried_selected"
    CARRIED_SELECTED_TOKENS = "carried_selected_tokens"
    # Per source, detail: the script (`script` column): documents selected, rows, tokens and units.
    SCRIPT_SELECTED = "script_selected"
    SCRIPT_SELECTED_ROWS = "script_selected_rows"
    SCRIPT_SELECTED_TOKENS = "script_selected_tokens"
    SCRIPT_SELECTED_UNITS = "script_selected_units"
    # Per source, with a detail: rejected rows by reason; documents failing a filter by its label.
    REJECTED_BY_REASON = "rejected_by_reason"
    # Per source, detail: an input file's path as the manifest lists it: rows of its row groups that
    # could not be read and were quarantined (the file itself was read).
    UNREADABLE_ROWS = "unreadable_rows"
    FILTER_DROPS = "filter_drops"
    FILTER_FLAGS = "filter_flags"
    # Per run: near-dedup work and clusters; documents in near clusters by cluster size bucket.
    CANDIDATE_PAIRS = "candidate_pairs"
    VERIFIED_PAIRS = "verified_pairs"
    NEAR_CLUSTERS = "near_clusters"
    NEAR_CLUSTER_DOCUMENTS = "near_cluster_documents"
    # Per source, detail: exact_prior or near_prior: documents removed as duplicates of a document of an
    # earlier output (dedup.against; also counted in exact_duplicates or near_duplicates).
    PRIOR_DUPLICATES = "prior_duplicates"
    # Clusters holding human and synthetic text, and their synthetic members per source
    # (detail: generator, or "" for the source's total).
    CROSS_ORIGIN_CLUSTERS = "cross_origin_clusters"
    CROSS_ORIGIN_SYNTHETIC = "cross_origin_synthetic"
    # Self-copies: synthetic documents that duplicate their own parent (`parent_id`), per source of
    # the copy. SELF_COPIES by generator (detail; "(none)" when null); SELF_COPY_FATES by what became
    # of the pair (detail: removed_exact, removed_near, spared by dedup.parent_copies: keep, or
    # parent_removed: the parent went, the copy was kept).
    SELF_COPIES = "self_copies"
    SELF_COPY_FATES = "self_copy_fates"
    # Per source, detail: the bin of a quality_score histogram (mixture_core.SCORE_BINS over [0, 1]),
    # for the documents the mixture could use, those it selected, and those the filters dropped.
    SCORES_POOL = "scores_pool"
    SCORES_SELECTED = "scores_selected"
    SCORES_FILTERED = "scores_filtered"
    # Per source, detail pool / selected: documents with quality_flags the mixture could use, and
    # those of them it selected (mixture.flag_penalty ranks them lower).
    FLAGGED = "flagged"
    # Decontamination. Per evaluation set (source), detail: what its index holds (items,
    # distinct_items, indexed, too_short, boilerplate_only, items_with_boilerplate, ngrams);
    # per run (source ""), detail common_ngrams_ignored.
    EVAL_INDEX = "eval_index"
    # Per source, detail: the evaluation set; documents matched and their tokens.
    CONTAMINATED = "contaminated"
    CONTAMINATED_TOKENS = "contaminated_tokens"
    # Per output split (detail): rows and bytes of text written.
    SPLIT_ROWS = "split_rows"
    SPLIT_BYTES = "split_bytes"


class StatKey(NamedTuple):
    figure: Figure
    source: str = ""
    detail: str = ""


def stat(figure: Figure, value: int, source: str = "", detail: str = "") -> tuple[tuple[str, str, str], int]:
    """One statistic as it travels through the pipeline: ((figure, source, detail), value)."""
    return (figure.value, str(source), str(detail)), int(value)


class RunStats:
    """The summed statistics of a run, read back by figure."""

    def __init__(self, pairs: Iterable[tuple[tuple[str, str, str], int]]) -> None:
        self._values: dict[StatKey, int] = {}
        for (figure, source, detail), value in pairs:
            key = StatKey(Figure(figure), source, detail)
            self._values[key] = self._values.get(key, 0) + int(value)

    def get(self, figure: Figure, source: str = "", detail: str = "") -> int:
        return self._values.get(StatKey(figure, source, detail), 0)

    def total(self, figure: Figure) -> int:
        return sum(v for k, v in self._values.items() if k.figure is figure)

    def by_source(self, figure: Figure, detail: str = "") -> dict[str, int]:
        """{source: value} for one figure and detail, sources sorted."""
        return dict(sorted((k.source, v) for k, v in self._values.items() if k.figure is figure and k.detail == detail))

    def by_detail(self, figure: Figure) -> dict[str, dict[str, int]]:
        """{detail: {source: value}} for one figure, both levels sorted."""
        out: dict[str, dict[str, int]] = {}
        for k, v in sorted(self._values.items()):
            if k.figure is figure:
                out.setdefault(k.detail, {})[k.source] = v
        return out

    def split_sizes(self) -> dict[str, dict[str, int]]:
        """{split: {"rows": n, "bytes": n}} of the output text."""
        rows = {k.detail: v for k, v in self._values.items() if k.figure is Figure.SPLIT_ROWS}
        size = {k.detail: v for k, v in self._values.items() if k.figure is Figure.SPLIT_BYTES}
        return {split: {"rows": rows.get(split, 0), "bytes": size.get(split, 0)} for split in sorted(rows | size)}
