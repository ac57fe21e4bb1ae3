"""ConnectedComponents: label every node of an undirected graph with the smallest node of its component."""

from __future__ import annotations

import apache_beam as beam
import numpy as np

from hybridmix.transforms.batches import concat_blocks, int_partitions, split_rows
from hybridmix.transforms.dedup_core import (
    directed,
    large_star,
    min_components,
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


UNFINISHED = "unfinished"


class _StarLabelsFn(beam.DoFn):
    """(node partition, role rows) -> label blocks (node, smallest parent; roots: themselves), and the
    edges of the nodes the rounds left outside a star (UNFINISHED)."""

    def process(self, element):
        _, blocks = element
        node, parent, is_child = concat_blocks(blocks, np.int64, np.int64, bool)
        check = star_labels(node, parent, is_child)
        yield np.concatenate([check.children, check.roots]), np.concatenate([check.parents, check.roots])
        if len(check.unfinished[0]):
            yield beam.pvalue.TaggedOutput(UNFINISHED, check.unfinished)


class _FinishComponents(beam.CombineFn):
    """Every unfinished edge of the graph -> (nodes, smallest node of each one's component).

    Holds only those edges: the rounds have already turned most of the graph into stars."""

    def create_accumulator(self) -> list:
        return []

    def add_input(self, acc: list, edges) -> list:
        acc.append(edges)
        return acc

    def merge_accumulators(self, accumulators) -> list:
        return [edges for acc in accumulators for edges in acc]

    def extract_output(self, acc: list) -> tuple[np.ndarray, np.ndarray]:
        a, b = concat_blocks(acc, np.int64, np.int64)
        return min_components(a, b)


def _finish(labels: tuple[np.ndarray, np.ndarray], finished: tuple[np.ndarray, np.ndarray]):
    """A label block, each label that the unfinished edges reach replaced by its component's smallest node."""
    node, label = labels
    nodes, roots = finished
    if len(nodes):
        at = np.minimum(np.searchsorted(nodes, label), len(nodes) - 1)
        hit = nodes[at] == label
        label = np.where(hit, roots[at], label)
    return node, label


class ConnectedComponents(beam.PTransform):
    """Label every node of an undirected graph with the smallest node of its component.

    `rounds` alternating large-star and small-star rounds (Kiveris et al., "Connected Components
    in MapReduce and Beyond", SoCC 2014), each a shuffle keyed by node partition, turn the graph
    into stars. A Beam graph cannot stop when they are done, so the rounds are few, and whatever
    they leave unfinished (long chains) is finished in one step: a union-find over those edges
    alone. The result never depends on the number of rounds. Input: edge blocks (a, b) of int64.
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
        stars = (
            edges
            | "KeyStarRoles" >> beam.FlatMap(_key_star_roles, self._partitions)
            | "GroupStarRoles" >> beam.GroupByKey()
            | "LabelStars" >> beam.ParDo(_StarLabelsFn()).with_outputs(UNFINISHED, main="labels")
        )
        finished = stars[UNFINISHED] | "FinishUnfinished" >> beam.CombineGlobally(_FinishComponents())
        return stars["labels"] | "RelabelFinished" >> beam.Map(_finish, beam.pvalue.AsSingleton(finished))
