"""Pure functions of deduplication: survivor keys, exact groups, LSH buckets, connected components.

No Beam here. Each function works on one hash partition's data as numpy / Arrow, so the
Beam transforms (`transforms.exact`, `transforms.near`, `transforms.components`) are thin and these can be tested directly.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridmix.schemas.config import ORIGIN_RANK, Origin
from hybridmix.schemas.reasons import DuplicateLineage
from hybridmix.transforms.batches import group_bounds, zero_padded

_MAX_TOKENS = 2**31 - 1


def survivor_keys(
    policy: str,
    doc_ids: pa.Array | list[str],
    origins: pa.Array | list[str],
    tokens: np.ndarray,
    quality: np.ndarray,
    uids: np.ndarray,
) -> pa.Array:
    """A string per document; in each duplicate group the smallest one is kept.

    Fixed-width numeric prefixes make string order equal the policy's order; the doc id
    and then the row key break ties, so the choice never depends on arrival order. Built in
    Arrow: a Python string per document (ids and origins made Python strings first) took
    0.6 s of a 200,000-document run, against under 0.1 s.
    """
    doc_ids = _strings(doc_ids)
    if policy == "prefer_human":
        encoded = _strings(origins).dictionary_encode()
        ranks = pa.array([f"{ORIGIN_RANK[Origin(o)]}|" for o in encoded.dictionary.to_pylist()], pa.string())
        parts = [ranks.take(encoded.indices)]
    elif policy == "longest":
        parts = [zero_padded(_MAX_TOKENS - np.asarray(tokens, np.int64), 10), "|"]
    elif policy == "lowest_id":
        parts = []
    elif policy == "highest_quality":
        q = np.asarray(quality, np.float64)
        unscored = np.isnan(q)
        # np.rint rounds half to even, as round() does.
        q = np.rint((1.0 - np.where(unscored, 0.0, q)) * 1_000_000).astype(np.int64)
        # A document without a score cannot be ranked by one. The scorer runs on synthetic text by
        # default, so counting "no score" as 0 replaced human originals by their scored synthetic
        # copies: unscored human text goes first ("0"), scored documents by score ("1..."), and
        # unscored synthetic text last ("2"), never above a document whose quality is known.
        human = pc.equal(_strings(origins), Origin.HUMAN.value).to_numpy(zero_copy_only=False)
        lead = zero_padded(np.where(unscored, np.where(human, 0, 2), 1), 1)
        parts = [lead, pc.if_else(pa.array(unscored), "", zero_padded(q, 7)), "|"]
    else:
        raise ValueError(f"unknown survivor policy {policy!r}")
    return pc.binary_join_element_wise(
        *parts, doc_ids, "\x00", zero_padded(np.asarray(uids, np.int64), 19), "")


def _strings(values: pa.Array | pa.ChunkedArray | list[str]) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values if isinstance(values, pa.Array) else pa.array(values, pa.string())


class ExactGroups(NamedTuple):
    survivors: np.ndarray  # row index of each group's survivor
    losers: np.ndarray  # row index of each duplicate
    loser_survivor: np.ndarray  # row index of the survivor each duplicate maps to
    group_size: np.ndarray  # per survivor


def exact_groups(content_hashes: pa.Array, skeys: pa.Array) -> ExactGroups:
    """Group rows by content hash; the row with the smallest survivor key is kept."""
    n = len(content_hashes)
    if n == 0:
        empty = np.zeros(0, np.int64)
        return ExactGroups(empty, empty, empty, empty)
    table = pa.table({"h": content_hashes, "k": skeys, "i": pa.array(np.arange(n), pa.int64())})
    order = pc.sort_indices(table, sort_keys=[("h", "ascending"), ("k", "ascending")]).to_numpy()
    # Runs of equal hashes compared in Arrow: as Python strings they cost 0.2 s of the GIL at 200k rows.
    hashes_sorted = content_hashes.take(pa.array(order))
    change = pc.not_equal(hashes_sorted.slice(1), hashes_sorted.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    bounds = np.concatenate([[0], np.nonzero(change)[0] + 1, [n]]).astype(np.int64)
    starts, ends = bounds[:-1], bounds[1:]
    sizes = ends - starts
    survivors = order[starts]
    is_loser = np.ones(n, bool)
    is_loser[starts] = False
    losers = order[is_loser]
    loser_survivor = np.repeat(survivors, sizes)[is_loser]
    return ExactGroups(survivors, losers, loser_survivor, sizes)


def lineage_relation(doc_ids: pa.Array, parent_ids: pa.Array, origins: pa.Array, kept_doc_ids: pa.Array,
                     kept_parent_ids: pa.Array, kept_origins: pa.Array) -> pa.Array:
    """How each removed document descends from the one kept in its place: `child`, `parent` or null.

    Only synthetic text has a parent: a child is a synthetic document whose parent_id is the kept
    document's doc_id; a parent is the document a kept synthetic one names as its parent_id.
    """
    synthetic = Origin.SYNTHETIC.value
    child = pc.fill_null(pc.and_(pc.equal(parent_ids, kept_doc_ids), pc.equal(origins, synthetic)), False)
    parent = pc.fill_null(pc.and_(pc.equal(kept_parent_ids, doc_ids), pc.equal(kept_origins, synthetic)), False)
    none = pa.scalar(None, pa.string())
    return pc.if_else(child, DuplicateLineage.CHILD.value, pc.if_else(parent, DuplicateLineage.PARENT.value, none))


def spare_parent_copies(relation: pa.Array, is_loser: np.ndarray, same_text: np.ndarray, policy: str) -> np.ndarray:
    """Which cluster members `dedup.parent_copies` keeps in the mix: under `keep`, the near duplicates
    whose cluster survivor is their own parent. A copy with the parent's normalized text is an exact
    duplicate and goes whatever the policy (it only reaches this stage when exact dedup is off)."""
    if policy == "drop":
        return np.zeros(len(is_loser), bool)
    if policy != "keep":
        raise ValueError(f"unknown parent_copies policy {policy!r}")
    child = pc.fill_null(pc.equal(relation, DuplicateLineage.CHILD.value), False).to_numpy(zero_copy_only=False)
    return is_loser & child & ~same_text


@nb.njit(cache=True)
def _bucket_member_pairs(uids, bounds, all_pairs_limit):
    """The pairs of every bucket (rows bounds[g]:bounds[g + 1] of `uids`, sorted by key only).

    Each bucket's members are sorted and deduplicated here, where buckets are small, instead of
    sorting every (key, uid) by both (a lexsort); then all pairs, or a star and a chain."""
    sizes = np.zeros(len(bounds) - 1, np.int64)
    total = 0
    for g in range(len(bounds) - 1):
        lo, hi = bounds[g], bounds[g + 1]
        if hi - lo < 2:
            sizes[g] = hi - lo
            continue
        if hi - lo == 2:  # most buckets: no sort, no allocation
            if uids[lo] > uids[lo + 1]:
                uids[lo], uids[lo + 1] = uids[lo + 1], uids[lo]
            sizes[g] = 2 if uids[lo] != uids[lo + 1] else 1
            total += sizes[g] - 1
            continue
        # Sorted and deduplicated in place: a sorted copy assigned back by slice cost 2 s more to
        # compile (the slice assignment's shape check), for the same result.
        members = uids[lo:hi]
        members.sort()
        k = 1
        for j in range(1, hi - lo):  # a document listed twice in a bucket counts once
            if members[j] != members[k - 1]:
                members[k] = members[j]
                k += 1
        sizes[g] = k
        if k >= 2:
            total += k * (k - 1) // 2 if k <= all_pairs_limit else 2 * k - 3
    a = np.empty(total, np.int64)
    b = np.empty(total, np.int64)
    at = 0
    for g in range(len(bounds) - 1):
        lo = bounds[g]
        hi = lo + sizes[g]
        if hi - lo < 2:
            continue
        if hi - lo <= all_pairs_limit:
            for i in range(lo, hi):
                for j in range(i + 1, hi):
                    a[at] = uids[i]
                    b[at] = uids[j]
                    at += 1
        else:
            for j in range(lo + 1, hi):  # a star on the smallest member
                a[at] = uids[lo]
                b[at] = uids[j]
                at += 1
            for j in range(lo + 1, hi - 1):  # and a chain through the rest
                a[at] = uids[j]
                b[at] = uids[j + 1]
                at += 1
    return a, b


def bucket_pairs(keys: np.ndarray, uids: np.ndarray, all_pairs_limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (a < b) from LSH buckets: documents that share a band key.

    A bucket of up to `all_pairs_limit` members yields all its pairs. A larger one yields a
    star on its smallest member plus a chain through the rest: that connects the bucket
    with work linear in its size, and verification then keeps the edges that hold.
    """
    if len(keys) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # Only keys held by two rows or more make a bucket, and most band keys are held by one (at
    # 200,000 real documents a quarter of the rows are left): sorting every key took 0.8 s of
    # this function's 6.3M keys, counting first and sorting what is left 0.5 s, the same pairs.
    shared = _shared_keys(np.ascontiguousarray(keys, np.uint64))
    keys, uids = keys[shared], uids[shared]
    order = np.argsort(keys)
    uids_s = np.ascontiguousarray(uids[order], np.int64)
    return unique_pairs(*_bucket_member_pairs(uids_s, group_bounds(keys[order]), all_pairs_limit))


@nb.njit(cache=True, nogil=True)
def _shared_keys(keys):
    """Which rows hold a key that another row holds too: an open-addressing count (linear time),
    each slot at 0 (empty), 1 (one row) or 2 (more)."""
    n = len(keys)
    bits = 1
    while (1 << bits) < 2 * n + 2:
        bits += 1
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    slots = np.empty(1 << bits, np.uint64)
    state = np.zeros(1 << bits, np.uint8)
    where = np.empty(n, np.int64)
    for i in range(n):
        key = keys[i]
        pos = np.int64((key * np.uint64(0x9E3779B97F4A7C15)) >> shift) & mask
        while state[pos] != 0 and slots[pos] != key:
            pos = (pos + 1) & mask
        if state[pos] == 0:
            slots[pos] = key
            state[pos] = 1
        else:
            state[pos] = 2
        where[i] = pos
    shared = np.empty(n, np.bool_)
    for i in range(n):
        shared[i] = state[where[i]] == 2
    return shared


@nb.njit(cache=True)
def _first_of_each_pair(lo, hi, slot):
    """Marks the first occurrence of every (lo, hi), through an open-addressing table (linear
    time); `slot`: a power of two of at least 2 * len(lo) entries, all -1 (each: the row holding it)."""
    n = len(lo)
    size = len(slot)
    mask = np.uint64(size - 1)
    first = np.zeros(n, np.bool_)
    for i in range(n):
        h = np.uint64(lo[i]) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(hi[i]) * np.uint64(0xC2B2AE3D27D4EB4F)
        pos = np.int64((h ^ (h >> np.uint64(29))) & mask)
        while slot[pos] >= 0 and (lo[slot[pos]] != lo[i] or hi[slot[pos]] != hi[i]):
            pos = (pos + 1) & np.int64(size - 1)
        if slot[pos] < 0:
            slot[pos] = i
            first[i] = True
    return first


def unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct undirected pairs as (smaller, larger), self-pairs removed, ordered by (lo, hi)."""
    lo = np.minimum(a, b).astype(np.int64)
    hi = np.maximum(a, b).astype(np.int64)
    keep = lo != hi
    if not keep.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo, hi = lo[keep], hi[keep]
    # Repeats go first, through a hash table, and only the distinct pairs are sorted: a pair of
    # near copies comes once per band they share, and sorting every copy (a lexsort) took 18 s of
    # a million-document run.
    size = 1 << max(1, int(2 * len(lo) - 1).bit_length())
    # Row numbers as int32 where they fit: the table is the largest thing this step allocates.
    first = _first_of_each_pair(lo, hi, np.full(size, -1, np.int32 if len(lo) < 2**31 else np.int64))
    lo, hi = lo[first], hi[first]
    order = np.lexsort((hi, lo))
    return lo[order], hi[order]


def directed(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both directions of each undirected edge, as (source, target)."""
    return np.concatenate([a, b]), np.concatenate([b, a])


def _grouped(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    bounds = group_bounds(src)
    return src, dst, bounds[:-1], np.diff(bounds)


def large_star(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Large-star step (Kiveris et al., 2014) for the nodes whose adjacency is given.

    For each node u with neighbours N(u): m = min(N(u) + u); every neighbour v > u is
    linked to m instead of u. Input: directed edges holding all of each node's neighbours.
    """
    if len(src) == 0:
        return src.copy(), dst.copy()
    src, dst, starts, counts = _grouped(src, dst)
    mins = np.minimum(np.minimum.reduceat(dst, starts), src[starts])
    m = np.repeat(mins, counts)
    sel = dst > src
    return unique_pairs(dst[sel], m[sel])


def small_star(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Small-star step: each node u and its smaller neighbours are all linked to their minimum."""
    sel = dst < src
    src, dst = src[sel], dst[sel]
    if len(src) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    src, dst, starts, counts = _grouped(src, dst)
    mins = np.minimum.reduceat(dst, starts)
    m = np.repeat(mins, counts)
    a = np.concatenate([dst, src[starts]])
    b = np.concatenate([m, mins])
    return unique_pairs(a, b)


class StarCheck(NamedTuple):
    children: np.ndarray
    parents: np.ndarray  # each child's smallest parent: its root where the stars are done
    roots: np.ndarray
    unfinished: tuple[np.ndarray, np.ndarray]  # (child, parent) edges of the nodes that are not in a star


def star_labels(node: np.ndarray, parent: np.ndarray, is_child: np.ndarray) -> StarCheck:
    """Child -> parent labels of one partition's nodes, and the edges where they are not yet stars.

    Rows: (node, parent, True) says "node has this parent"; (node, _, False) says "node is
    someone's parent". A node is in a finished star when it has exactly one parent and is no one's
    parent. Every edge of the other nodes is returned in `unfinished`: with them, the edges of
    the finished nodes only attach leaves, so labelling through `min_components` of the
    unfinished edges gives each node its component's smallest node.
    """
    pairs = np.unique(np.stack([node[is_child], parent[is_child]], axis=1), axis=0)
    children, first, n_parents = np.unique(pairs[:, 0], return_index=True, return_counts=True)
    parent_nodes = np.unique(node[~is_child])
    open_nodes = np.union1d(children[n_parents > 1], np.intersect1d(children, parent_nodes))
    unfinished = np.isin(pairs[:, 0], open_nodes)
    roots = np.setdiff1d(parent_nodes, children)
    return StarCheck(children, pairs[first, 1], roots, (pairs[unfinished, 0], pairs[unfinished, 1]))


@nb.njit(cache=True)
def _smallest_roots(a, b, n):
    """Union-find over nodes 0..n-1: each node's root is the smallest node of its component."""
    parent = np.arange(n)
    for i in range(len(a)):
        x, y = a[i], b[i]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x < y:
            parent[y] = x
        elif y < x:
            parent[x] = y
    for i in range(n):  # roots are smaller than their nodes: ascending order finds each once
        parent[i] = parent[parent[i]]
    return parent


def min_components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, the smallest node of each one's component) of an undirected edge list; nodes sorted."""
    nodes, dense = np.unique(np.concatenate([a, b]).astype(np.int64), return_inverse=True)
    return nodes, nodes[_smallest_roots(dense[:len(a)], dense[len(a):], len(nodes))]
