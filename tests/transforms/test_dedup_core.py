import itertools

import numpy as np
import pyarrow as pa
import pytest

from hybridmix.schemas.config import ORIGIN_RANK, Origin
from hybridmix.transforms.batches import int_partitions, rows_by_value, split_rows
from hybridmix.transforms.dedup_core import (
    bucket_pairs,
    directed,
    exact_groups,
    large_star,
    min_components,
    small_star,
    star_labels,
    survivor_keys,
    unique_pairs,
)


def _keys(policy, rows):
    doc_ids, origins, tokens, quality = zip(*rows)
    return survivor_keys(policy, list(doc_ids), list(origins), np.array(tokens), np.array(quality),
                         np.arange(len(rows))).to_pylist()


@pytest.mark.parametrize(
    "policy, rows, winner",
    [
        ("prefer_human", [("b", "synthetic", 50, 1.0), ("z", "human", 10, 0.0)], 1),
        ("prefer_human", [("b", "human", 5, 1.0), ("a", "human", 9, 1.0)], 1),
        ("longest", [("a", "human", 10, 1.0), ("b", "synthetic", 90, 1.0)], 1),
        ("longest", [("b", "human", 10, 1.0), ("a", "synthetic", 10, 1.0)], 1),
        ("lowest_id", [("b", "human", 10, 1.0), ("a", "synthetic", 10, 1.0)], 1),
        ("highest_quality", [("a", "human", 10, 0.5), ("b", "synthetic", 10, 0.9)], 1),
        # The scorer runs on synthetic text by default: an unscored human original is not ranked
        # below its scored synthetic copy, and an unscored synthetic text not above a scored one.
        ("highest_quality", [("a", "synthetic", 10, 0.9), ("z", "human", 10, np.nan)], 1),
        ("highest_quality", [("a", "synthetic", 10, np.nan), ("z", "synthetic", 10, 0.01)], 1),
    ],
    ids=["human-over-synthetic", "human-tie-lowest-id", "longest", "longest-tie-id", "lowest-id", "quality",
         "quality-unscored-human", "quality-unscored-synthetic"],
)
def test_survivor_policies(policy, rows, winner):
    keys = _keys(policy, rows)
    assert keys.index(min(keys)) == winner


def test_survivor_key_ties_break_on_row_not_arrival():
    keys = survivor_keys("lowest_id", ["same", "same"], ["human", "human"], np.array([1, 1]),
                         np.array([1.0, 1.0]), np.array([9, 3])).to_pylist()
    assert min(keys) == keys[1]


def _plain_survivor_key(policy, doc_id, origin, tok, q, uid):
    prefix = {"prefer_human": lambda: f"{ORIGIN_RANK[Origin(origin)]}|",
              "longest": lambda: f"{2**31 - 1 - int(tok):010d}|",
              "lowest_id": lambda: "",
              "highest_quality": lambda: ((("0|" if origin == "human" else "2|") if np.isnan(q)
                                          else f"1{int(round((1.0 - float(q)) * 1_000_000)):07d}|"))}
    return f"{prefix[policy]()}{doc_id}\x00{int(uid):019d}"


@pytest.mark.parametrize("policy", ["prefer_human", "longest", "lowest_id", "highest_quality"])
def test_survivor_keys_are_the_plain_formatting(policy):
    rng = np.random.default_rng(3)
    n = 500
    doc_ids = [f"src/{i:x}é" for i in rng.integers(0, 10**9, n)]
    origins = rng.choice(["human", "synthetic"], n).tolist()
    tokens = rng.integers(0, 2**31 - 1, n).astype(np.int32)
    tokens[:3] = [0, 2**31 - 1, 7]
    # float32 scores as the pipeline has them: halves that round to even, NaN (no score), > 1
    quality = rng.random(n).astype(np.float32)
    quality[:4] = [np.nan, 0.5, 0.0000005, 1.25]
    uids = rng.integers(0, 2**62, n)
    keys = survivor_keys(policy, pa.array(doc_ids), pa.array(origins), tokens, quality, uids).to_pylist()
    assert keys == [_plain_survivor_key(policy, *row) for row in zip(doc_ids, origins, tokens, quality, uids)]
    chunked = survivor_keys(policy, pa.chunked_array([doc_ids[:7], doc_ids[7:]]),
                            pa.chunked_array([origins[:300], origins[300:]]), tokens, quality, uids)
    assert chunked.to_pylist() == keys


def test_exact_groups_keep_smallest_key():
    hashes = pa.array(["h1", "h2", "h1", "h1", "h3"])
    skeys = pa.array(["c", "a", "a", "b", "z"])
    g = exact_groups(hashes, skeys)
    assert sorted(g.survivors.tolist()) == [1, 2, 4]
    assert dict(zip(g.losers.tolist(), g.loser_survivor.tolist())) == {0: 2, 3: 2}
    assert dict(zip(g.survivors.tolist(), g.group_size.tolist())) == {2: 3, 1: 1, 4: 1}


def test_bucket_pairs_all_pairs_then_star_and_chain():
    keys = np.array([5, 5, 5, 7, 9, 9], np.uint64)
    uids = np.array([3, 1, 2, 4, 6, 6], np.int64)
    a, b = bucket_pairs(keys, uids, all_pairs_limit=8)
    assert list(zip(a.tolist(), b.tolist())) == [(1, 2), (1, 3), (2, 3)]
    big_keys = np.full(6, 1, np.uint64)
    a, b = bucket_pairs(big_keys, np.arange(6, dtype=np.int64), all_pairs_limit=3)
    pairs = set(zip(a.tolist(), b.tolist()))
    assert {(0, k) for k in range(1, 6)} <= pairs
    assert len(pairs) <= 2 * 6


def test_bucket_pairs_match_a_plain_reading_of_the_rule():
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 300, 4000).astype(np.uint64)  # buckets of 1 to ~30 members
    uids = rng.integers(0, 2000, 4000).astype(np.int64)  # some listed twice in a bucket
    limit = 6
    expected = set()
    for key in np.unique(keys):
        members = sorted(set(uids[keys == key].tolist()))
        if len(members) <= limit:
            expected |= set(itertools.combinations(members, 2))
        else:
            expected |= {(members[0], m) for m in members[1:]}
            expected |= set(zip(members[1:-1], members[2:]))
    a, b = bucket_pairs(keys, uids, all_pairs_limit=limit)
    assert list(zip(a.tolist(), b.tolist())) == sorted(expected)


def test_bucket_pairs_tell_every_64_bit_key_apart():
    """Mostly singleton buckets (as band keys are), and keys that differ in one bit only."""
    rng = np.random.default_rng(9)
    singles = rng.integers(0, 2**63, 3000, dtype=np.uint64) * np.uint64(2)
    twins = np.array([0, 0, 1, 1, 2**63, 2**63 + 1, 2**63 + 1, 2**40, 2**40 + 2**39, 2**40], np.uint64)
    keys = np.concatenate([singles, twins, singles[:5]])  # five singles shared with a copy
    uids = np.arange(len(keys), dtype=np.int64)[::-1].copy()
    order = rng.permutation(len(keys))
    a, b = bucket_pairs(keys[order], uids[order], all_pairs_limit=8)
    expected = set()
    for key in np.unique(keys):
        expected |= set(itertools.combinations(sorted(set(uids[keys == key].tolist())), 2))
    assert list(zip(a.tolist(), b.tolist())) == sorted(expected)
    assert len(expected) == 5 + 4  # the copies; 0, 1, 2^63 + 1 and 2^40 twice each


def test_unique_pairs_are_the_distinct_undirected_pairs_in_order():
    rng = np.random.default_rng(11)
    a = rng.integers(0, 60, 5000).astype(np.int64) + (np.int64(3) << np.int64(40))
    b = rng.integers(0, 60, 5000).astype(np.int64) + (np.int64(3) << np.int64(40))
    lo, hi = unique_pairs(a, b)
    expected = sorted({(min(x, y), max(x, y)) for x, y in zip(a.tolist(), b.tolist()) if x != y})
    assert list(zip(lo.tolist(), hi.tolist())) == expected
    assert unique_pairs(np.array([5, 5], np.int64), np.array([5, 5], np.int64))[0].size == 0


def _components_by_stars(a, b, partitions=3, rounds=20):
    for _ in range(rounds):
        for step in (large_star, small_star):
            src, dst = directed(a, b)
            outs = [step(src[i], dst[i]) for _, i in split_rows(int_partitions(src, partitions), partitions)]
            a = np.concatenate([o[0] for o in outs] or [np.zeros(0, np.int64)])
            b = np.concatenate([o[1] for o in outs] or [np.zeros(0, np.int64)])
    child, parent = np.maximum(a, b), np.minimum(a, b)
    check = star_labels(np.concatenate([child, parent]), np.concatenate([parent, parent]),
                        np.concatenate([np.ones(len(child), bool), np.zeros(len(parent), bool)]))
    return check, dict(zip(check.children.tolist(), check.parents.tolist()))


def _union_find(a, b):
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist()):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    return {x: find(x) for x in parent}


def _graph(shape, seed, n):
    """Distinct undirected edges of a path through n nodes, a random graph, or two small stars."""
    rng = np.random.default_rng(seed)
    if shape == "path":
        perm = rng.permutation(n)
        a, b = perm[:-1], perm[1:]
    elif shape == "random":
        a, b = rng.integers(0, n + n // 3, n), rng.integers(0, n + n // 3, n)
    else:
        a, b = np.array([10, 10, 10, 50, 50]), np.array([11, 12, 13, 51, 13])
    return unique_pairs(a.astype(np.int64), b.astype(np.int64))


@pytest.mark.parametrize("shape", ["path", "random", "two-stars"])
def test_star_rounds_find_the_same_components_as_union_find(shape):
    a, b = _graph(shape, 3, 300)
    check, labels = _components_by_stars(a, b)
    assert len(check.unfinished[0]) == 0
    expected = _union_find(a, b)
    got = {node: labels.get(node, node) for node in expected}
    assert got == expected


def test_star_check_reports_unfinished_graphs():
    # 3 -> 2 -> 1 is a path, not a star: node 2 is both a child and a parent; 5 has two parents.
    check = star_labels(np.array([3, 2, 2, 1, 5, 5, 4, 6]), np.array([2, 1, 2, 1, 4, 6, 4, 6]),
                        np.array([True, True, False, False, True, True, False, False]))
    assert sorted(zip(*(x.tolist() for x in check.unfinished))) == [(2, 1), (5, 4), (5, 6)]
    assert dict(zip(check.children.tolist(), check.parents.tolist())) == {2: 1, 3: 2, 5: 4}


@pytest.mark.parametrize("shape", ["path", "random", "two-stars"])
@pytest.mark.parametrize("rounds", [0, 1, 2])
def test_unfinished_stars_finished_by_union_find_give_the_components(shape, rounds):
    a, b = _graph(shape, 5, 500)
    check, labels = _components_by_stars(a, b, rounds=rounds)
    if shape == "path":
        assert len(check.unfinished[0]) > 0  # too few rounds for a path: the finish step matters
    nodes, roots = min_components(*check.unfinished)
    finish = dict(zip(nodes.tolist(), roots.tolist()))
    labels.update({r: r for r in check.roots.tolist()})
    got = {node: finish.get(label, label) for node, label in labels.items()}
    assert got == _union_find(a, b)


def test_min_components_labels_with_the_smallest_node():
    nodes, roots = min_components(np.array([9, 7, 3, 20], np.int64), np.array([7, 3, 8, 21], np.int64))
    assert dict(zip(nodes.tolist(), roots.tolist())) == {3: 3, 7: 3, 8: 3, 9: 3, 20: 20, 21: 20}
    empty = min_components(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert [len(x) for x in empty] == [0, 0]


@pytest.mark.parametrize("column", [
    pa.array(["s", "h", "s", "中", "h"]),
    pa.chunked_array([["s", "h"], ["s", "中", "h"]]),
    pa.array(["x", "s", "h", "s", "中", "h"]).slice(1),
], ids=["array", "chunked", "sliced"])
def test_rows_by_value_groups_rows_in_sorted_order(column):
    assert [(value, rows.tolist()) for value, rows in rows_by_value(column)] == [
        ("h", [1, 4]), ("s", [0, 2]), ("中", [3])]
    assert list(rows_by_value(pa.array([], pa.string()))) == []
