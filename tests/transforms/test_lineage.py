"""Lineage duplicates: a synthetic document that copies its own parent, recorded and kept or dropped by policy."""

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.testing.util import assert_that, equal_to

from hybridmix.schemas.stats import Figure, RunStats
from hybridmix.transforms.dedup_core import lineage_relation, spare_parent_copies
from hybridmix.transforms.duplicates import self_copies
from tests.builders import dedup_inputs, lineage_rows
from tests.conftest import local_pipeline

ROWS = lineage_rows()
ALL_IDS = sorted(r["doc_id"] for r in ROWS)

# (doc_id, kept_doc_id, kind, cluster, cluster_size, lineage)
DROP_DUPLICATES = [
    ("c0", "h0", "near", "h0", 4, "child"), ("c0x", "h0", "exact", "h0", 4, "child"),
    ("u0", "h0", "near", "h0", 4, None), ("e1", "h1", "exact", "h1", 2, "child"),
    ("u2", "h2", "near", "h2", 2, None), ("s3", "h3", "near", "h3", 3, None), ("g2", "h3", "near", "h3", 3, None),
    ("z-p4", "a-c4", "near", "a-c4", 2, "parent"), ("c5", "h5", "near", "h5", 2, "child"),
]
DROP_SURVIVORS = [("h0", "h0", 4), ("h1", "h1", 2), ("h2", "h2", 2), ("h3", "h3", 3), ("h4", None, 1),
                  ("a-c4", "a-c4", 2), ("h5", "h5", 2)]
# c0 and c5 stay with their own cluster fields; c0's exact copy now points at it, not at h0.
KEEP_DUPLICATES = [
    ("c0x", "c0", "exact", "c0", 2, None), ("u0", "h0", "near", "h0", 2, None),
    ("e1", "h1", "exact", "h1", 2, "child"), ("u2", "h2", "near", "h2", 2, None),
    ("s3", "h3", "near", "h3", 3, None), ("g2", "h3", "near", "h3", 3, None),
    ("z-p4", "a-c4", "near", "a-c4", 2, "parent"),
]
KEEP_SURVIVORS = [("h0", "h0", 2), ("c0", "c0", 2), ("h1", "h1", 2), ("h2", "h2", 2), ("h3", "h3", 3),
                  ("h4", None, 1), ("a-c4", "a-c4", 2), ("h5", None, 1), ("c5", None, 1)]

_COUNTED = {Figure.SELF_COPIES.value, Figure.SELF_COPY_FATES.value, Figure.NEAR_CLUSTERS.value,
            Figure.NEAR_DUPLICATES.value, Figure.EXACT_DUPLICATES.value}
DROP_STATS = [
    (("self_copies", "rephrase", "m-a"), 2), (("self_copies", "rephrase", "m-b"), 2),
    (("self_copies", "gen2", "m-c"), 1),
    (("self_copy_fates", "rephrase", "removed_near"), 2), (("self_copy_fates", "rephrase", "removed_exact"), 2),
    (("self_copy_fates", "gen2", "parent_removed"), 1),
    (("near_clusters", "", ""), 5), (("near_duplicates", "rephrase", ""), 3), (("near_duplicates", "chat", ""), 3),
    (("near_duplicates", "gen2", ""), 1), (("exact_duplicates", "rephrase", ""), 2),
]
KEEP_STATS = [
    (("self_copies", "rephrase", "m-a"), 2), (("self_copies", "rephrase", "m-b"), 1),
    (("self_copies", "gen2", "m-c"), 1),
    (("self_copy_fates", "rephrase", "spared"), 2), (("self_copy_fates", "rephrase", "removed_exact"), 1),
    (("self_copy_fates", "gen2", "parent_removed"), 1),
    (("near_clusters", "", ""), 4), (("near_duplicates", "rephrase", ""), 1), (("near_duplicates", "chat", ""), 3),
    (("near_duplicates", "gen2", ""), 1), (("exact_duplicates", "rephrase", ""), 2),
]


def _run(tmp_path, policy, partitions, survivors, duplicates, stats, exact=True):
    p = local_pipeline()
    inputs, dedup = dedup_inputs(p, tmp_path, ROWS, {"parent_copies": policy, "exact": exact}, partitions)
    out = inputs | dedup
    kept = out.survivors | "Survivors" >> beam.FlatMap(lambda b: zip(
        b.column("doc_id").to_pylist(), b.column("dup_cluster").to_pylist(), b.column("dup_cluster_size").to_pylist()))
    dups = out.duplicates | "Dups" >> beam.FlatMap(lambda b: [
        (r["doc_id"], r["kept_doc_id"], r["kind"], r["cluster"], r["cluster_size"], r["lineage"])
        for r in b.to_pylist()])
    # Every input document has one fate: kept or removed, never both, never neither.
    fates = (
        (kept | "KeptIds" >> beam.Map(lambda r: r[0]), dups | "DupIds" >> beam.Map(lambda r: r[0]))
        | "AllIds" >> beam.Flatten() | beam.combiners.ToList() | beam.Map(sorted))
    counted = out.stats | beam.CombinePerKey(sum) | beam.Filter(lambda kv: kv[0][0] in _COUNTED)
    assert_that(kept, equal_to(survivors), label="survivors")
    assert_that(dups, equal_to(duplicates), label="duplicates")
    assert_that(fates, equal_to([ALL_IDS]), label="one fate each")
    assert_that(counted, equal_to(stats), label="counts")
    p.run().wait_until_finish()


@pytest.mark.parametrize("partitions", [1, 5])
def test_drop_removes_self_copies_and_records_their_lineage(tmp_path, partitions):
    _run(tmp_path, "drop", partitions, DROP_SURVIVORS, DROP_DUPLICATES, DROP_STATS)


@pytest.mark.parametrize("partitions", [1, 5])
def test_keep_spares_near_copies_of_the_survivor_and_their_exact_copies_point_at_them(tmp_path, partitions):
    _run(tmp_path, "keep", partitions, KEEP_SURVIVORS, KEEP_DUPLICATES, KEEP_STATS)


def test_keep_without_exact_dedup_still_drops_copies_with_the_parents_text(tmp_path):
    """With exact dedup off, copies reach the clusters whatever their text: e1 (h1's text) is removed as
    its parent's near duplicate despite `keep`; c0x (c0's text, h0's child too) is spared beside c0."""
    survivors = [("h0", "h0", 2), ("c0", None, 1), ("h1", "h1", 2), ("h2", "h2", 2), ("h3", "h3", 3),
                 ("h4", None, 1), ("a-c4", "a-c4", 2), ("h5", None, 1), ("c5", None, 1), ("c0x", None, 1)]
    duplicates = [
        ("u0", "h0", "near", "h0", 2, None), ("e1", "h1", "near", "h1", 2, "child"),
        ("u2", "h2", "near", "h2", 2, None), ("s3", "h3", "near", "h3", 3, None), ("g2", "h3", "near", "h3", 3, None),
        ("z-p4", "a-c4", "near", "a-c4", 2, "parent"),
    ]
    stats = [
        (("self_copies", "rephrase", "m-a"), 2), (("self_copies", "rephrase", "m-b"), 2),
        (("self_copies", "gen2", "m-c"), 1),
        (("self_copy_fates", "rephrase", "spared"), 3), (("self_copy_fates", "rephrase", "removed_near"), 1),
        (("self_copy_fates", "gen2", "parent_removed"), 1),
        (("near_clusters", "", ""), 5), (("near_duplicates", "rephrase", ""), 2),
        (("near_duplicates", "chat", ""), 3), (("near_duplicates", "gen2", ""), 1),
    ]
    _run(tmp_path, "keep", 3, survivors, duplicates, stats, exact=False)


def _rel(doc, parent, origin, kept, kept_parent, kept_origin):
    out = lineage_relation(*(pa.array([v], pa.string()) for v in (doc, parent, origin, kept, kept_parent, kept_origin)))
    return out.to_pylist()[0]


@pytest.mark.parametrize("row, expected", [
    (("c", "h", "synthetic", "h", None, "human"), "child"),
    (("h", None, "human", "c", "h", "synthetic"), "parent"),
    (("p", None, "synthetic", "c", "p", "synthetic"), "parent"),
    (("u", None, "synthetic", "h", None, "human"), None),
    (("c1", "h", "synthetic", "c2", "h", "synthetic"), None),
    (("x", "h", "human", "h", None, "human"), None),
    (("h", None, "human", "x", "h", "human"), None),
    (("c", "other", "synthetic", "h", None, "human"), None),
], ids=["child", "parent-human", "parent-synthetic", "unrelated", "siblings", "human-child", "human-kept",
        "other-parent"])
def test_lineage_relation(row, expected):
    assert _rel(*row) == expected


def test_lineage_relation_works_row_by_row_on_chunked_columns():
    cols = [pa.chunked_array([v[:2], v[2:]], pa.string()) for v in (
        ["c", "h", "u", "n"], ["h", None, None, None], ["synthetic", "human", "synthetic", "synthetic"],
        ["h", "c", "h", "h"], [None, "h", None, None], ["human", "synthetic", "human", "human"])]
    assert lineage_relation(*cols).to_pylist() == ["child", "parent", None, None]


@pytest.mark.parametrize("policy, relation, is_loser, same_text, expected", [
    ("drop", ["child"], [True], [False], [False]),
    ("keep", ["child"], [True], [False], [True]),
    ("keep", ["child"], [True], [True], [False]),
    ("keep", ["child"], [False], [False], [False]),
    ("keep", ["parent"], [True], [False], [False]),
    ("keep", [None], [True], [False], [False]),
], ids=["drop", "keep-child", "keep-exact-child", "keep-survivor", "keep-parent", "keep-unrelated"])
def test_spare_parent_copies(policy, relation, is_loser, same_text, expected):
    out = spare_parent_copies(pa.array(relation, pa.string()), np.array(is_loser), np.array(same_text), policy)
    assert out.tolist() == expected


def test_spare_parent_copies_refuses_an_unknown_policy():
    with pytest.raises(ValueError, match="parent_copies"):
        spare_parent_copies(pa.array([None], pa.string()), np.array([True]), np.array([False]), "maybe")


def test_self_copies_count_the_copy_whichever_side_was_kept():
    batch = pa.RecordBatch.from_pylist([
        {"kind": "near", "lineage": "child", "source": "r", "generator": "g", "kept_source": "w",
         "kept_generator": None},
        {"kind": "exact", "lineage": "child", "source": "r", "generator": None, "kept_source": "w",
         "kept_generator": None},
        {"kind": "near", "lineage": "parent", "source": "w", "generator": None, "kept_source": "r",
         "kept_generator": "g"},
        {"kind": "near", "lineage": None, "source": "r", "generator": "g", "kept_source": "w", "kept_generator": None},
    ])
    stats = RunStats(self_copies(batch))
    assert stats.total(Figure.SELF_COPIES) == 3
    assert stats.by_detail(Figure.SELF_COPIES) == {"(none)": {"r": 1}, "g": {"r": 2}}
    assert stats.by_detail(Figure.SELF_COPY_FATES) == {
        "parent_removed": {"r": 1}, "removed_exact": {"r": 1}, "removed_near": {"r": 1}}


def _shingles(text, n=5):
    w = text.lower().rstrip(".").split()
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


@pytest.mark.parametrize("copy, source", [("c0", "h0"), ("c0x", "h0"), ("u0", "h0"), ("g2", "h3"), ("a-c4", "z-p4"),
                                          ("c5", "h5")])
def test_fixture_copies_are_light_edits_above_the_threshold(copy, source):
    text = {r["doc_id"]: r["text"] for r in ROWS}
    a, b = _shingles(text[copy]), _shingles(text[source])
    assert 0.8 <= len(a & b) / len(a | b) < 1.0
