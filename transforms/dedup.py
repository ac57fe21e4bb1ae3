"""Deduplicate: exact then near dedup, duplicate chains resolved, cross-origin clusters and self-copies counted."""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam

from hybridmix.schemas.config import DedupConfig
from hybridmix.transforms.batches import key_by_uid
from hybridmix.transforms.duplicates import (
    ASSIGNMENTS,
    DUPS,
    ResolveChainsFn,
    cross_origin,
    key_by_cluster,
    key_by_kept,
    self_copies,
    to_output_rows,
)
from hybridmix.transforms.exact import DedupExact
from hybridmix.transforms.inputs import Lineage
from hybridmix.transforms.near import DedupNear


class DeduplicateOutputs(NamedTuple):
    survivors: beam.PCollection
    duplicates: beam.PCollection
    stats: beam.PCollection
    index: beam.PCollection  # index/ rows of documents removed as near duplicates (with `index`)


class Deduplicate(beam.PTransform):
    """Exact then near dedup; duplicates of duplicates point at the document finally kept.

    Input: (INFO batches, band blocks) from SketchDocuments. `signatures` is CandidateSignatures (or any
    transform of candidate pairs to signature blocks keyed by uid partition). Output duplicates are
    `duplicates/` rows, named by `lineage`. With `index`, documents removed as near duplicates get
    index/ rows too (output.index). `spill_dir`: a folder every worker can read (near dedup's files).
    """

    def __init__(self, config: DedupConfig, partitions: int, lineage: Lineage, signatures: beam.PTransform,
                 spill_dir: str, prior: beam.PTransform | None = None, index: bool = False) -> None:
        super().__init__()
        self._config = config
        self._partitions = partitions
        self._lineage = lineage
        self._signatures = signatures
        self._spill_dir = spill_dir
        # DedupPrior (dedup.against): duplicates of earlier outputs go first, before this run's own.
        self._prior = prior
        self._index = index

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection]) -> DedupOutputs:
        info, bands = inputs
        parts = self._partitions
        stats = []
        prior_dups = []
        index = []
        if self._prior is not None:
            prior = (info, bands) | "Prior" >> self._prior
            info = prior.survivors
            prior_dups.append(prior.duplicates)
            stats.append(prior.stats)
            index.append(prior.index)
        if self._config.exact:
            exact = info | "Exact" >> DedupExact(parts)
            survivors, exact_dups = exact.survivors, exact.duplicates
            stats.append(exact.stats)
        else:
            survivors = info
            exact_dups = info.pipeline | "NoExactDuplicates" >> beam.Create([])
        if self._config.near.enabled:
            near = (survivors, bands) | "Near" >> DedupNear(
                self._config.near, parts, self._signatures, self._spill_dir, self._config.parent_copies,
                self._lineage.run_id if self._index else None)
            survivors = near.survivors
            stats.append(near.stats)
            index.append(near.index)
            resolved = (
                {
                    DUPS: exact_dups | "KeyExactByKept" >> beam.FlatMap(key_by_kept, parts),
                    ASSIGNMENTS: near.assignments | "KeyAssignments" >> beam.FlatMap(key_by_uid, parts),
                }
                | "JoinChains" >> beam.CoGroupByKey()
                | "ResolveChains" >> beam.ParDo(ResolveChainsFn())
            )
            all_dups = (resolved, near.duplicates) | "MergeDuplicates" >> beam.Flatten()
        else:
            all_dups = exact_dups
        if prior_dups:
            all_dups = (all_dups, *prior_dups) | "MergePriorDuplicates" >> beam.Flatten()
        stats.append(
            all_dups
            # (cluster partition, duplicate rows): every row of a cluster meets in one group.
            | "KeyByCluster" >> beam.FlatMap(key_by_cluster, parts)
            | "GroupByCluster" >> beam.GroupByKey()
            | "CountCrossOrigin" >> beam.FlatMap(cross_origin)
        )
        stats.append(all_dups | "CountSelfCopies" >> beam.FlatMap(self_copies))
        duplicates = all_dups | "ToOutputRows" >> beam.Map(to_output_rows, lineage=self._lineage)
        merged_stats = stats | "MergeDedupStats" >> beam.Flatten()
        removed = (index | "MergeRemovedIndex" >> beam.Flatten()) if index else (
            info.pipeline | "NoRemovedIndex" >> beam.Create([]))
        return DeduplicateOutputs(survivors=survivors, duplicates=duplicates, stats=merged_stats, index=removed)
