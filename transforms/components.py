"""ConnectedComponents: label every node of an undirected graph with the smallest node of its component."""

from __future__ import annotations

import apache_beam as beam
import numpy as np

from hybridmix.schemas.errors import FatalError
from hybridmix.transforms.batches import concat_blocks, int_partitions, split_rows
from hybridmix.transforms.dedup_core import (
    directed,
    large_star,
    small_star,
    star_labels,
)

LARGE, SMALL = "large", "small"


def _star_step(element, step: str):
    """(node partition, [(src, dst)]) -> edge blocks after one large- or small-star step."""
    _, blocks = element
    src, dst = concat_blocks(blocks, np.int64, np.int64)
    a, b = (large_star if step == LARGE else small_star)(src, dst)
    if len(a):
        yield a, b


def _key_directed(edges: tuple[np.ndarray, np.ndarray], partitions: int):
    """Edge block -> (partition of source node, (source, target)) for both directions."""
    src, dst = directed(*edges)
    for p, rows in split_rows(int_partitions(src, partitions), partitions):
        yield p, (src[rows], dst[rows])


def _key_star_roles(edges: tuple[np.ndarray, np.ndarray], partitions: int):
    """Edge block -> rows (node, parent, is_child) keyed by the node's partition."""
    a, b = edges
    child, parent = np.maximum(a, b), np.minimum(a, b)
    node = np.concatenate([child, parent])
    par = np.concatenate([parent, parent])
    is_child = np.concatenate([np.ones(len(child), bool), np.zeros(len(parent), bool)])
    for p, rows in split_rows(int_partitions(node, partitions), partitions):
        yield p, (node[rows], par[rows], is_child[rows])


class _StarLabelsFn(beam.DoFn):
    def __init__(self, rounds: int) -> None:
        self._rounds = rounds

    def process(self, element):
        _, blocks = element
        node, parent, is_child = concat_blocks(blocks, np.int64, np.int64, bool)
        check = star_labels(node, parent, is_child)
        if check.violations:
            raise FatalError(
                f"near-duplicate clustering did not converge in {self._rounds} rounds "
                f"({check.violations} nodes still linked to more than one root); "
                "raise dedup.near.max_cc_rounds")
        yield np.concatenate([check.children, check.roots]), np.concatenate([check.parents, check.roots])


class ConnectedComponents(beam.PTransform):
    """Label every node of an undirected graph with the smallest node of its component.

    Alternating large-star and small-star rounds (Kiveris et al., "Connected Components in
    MapReduce and Beyond", SoCC 2014), each a shuffle keyed by node partition; a final
    shuffle checks that the result is a set of stars. Input: edge blocks (a, b) of int64.
    Output: label blocks (node, root), roots labelled with themselves.
    """

    def __init__(self, partitions: int, rounds: int) -> None:
        super().__init__()
        self._partitions = partitions
        self._rounds = rounds

    def expand(self, edges: beam.PCollection) -> beam.PCollection:
        for r in range(self._rounds):
            for step in (LARGE, SMALL):
                edges = (
                    edges
                    | f"KeyForStep{step.title()}Round{r}" >> beam.FlatMap(_key_directed, self._partitions)
                    | f"GroupForStep{step.title()}Round{r}" >> beam.GroupByKey()
                    | f"Star{step.title()}Round{r}" >> beam.FlatMap(_star_step, step)
                )
        return (
            edges
            | "KeyStarRoles" >> beam.FlatMap(_key_star_roles, self._partitions)
            | "GroupStarRoles" >> beam.GroupByKey()
            | "CheckStarsAndLabel" >> beam.ParDo(_StarLabelsFn(self._rounds))
        )
