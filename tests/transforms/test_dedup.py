import os

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.testing.util import assert_that, equal_to

from hybridmix.schemas.config import NearDedupConfig
from hybridmix.schemas.stats import Figure, RunStats
from hybridmix.transforms.batches import int_partitions, split_rows
from hybridmix.transforms.components import ConnectedComponents
from hybridmix.transforms.duplicates import cross_origin_counts
from hybridmix.transforms.dedup_core import unique_pairs
from hybridmix.transforms.minhash import estimate_jaccard
from hybridmix.transforms.near import (
    _attach_sig_a,
    _keep_signed_b,
    _low_blocks,
    _SignedFiles,
    _spill_signed,
    _UniquePairs,
    _VerifyFn,
)
from hybridmix.schemas.errors import FatalError
from hybridmix.transforms.sketch import (
    CANDIDATE,
    CandidateSignatures,
    SignatureFiles,
    _look_up,
    read_bands,
    signatures_of,
    spill_bands,
    spill_signatures,
)
from hybridmix.transforms.storage import flush_writes
from tests.builders import dedup_inputs, near_copy, sketch_inputs, words
from tests.conftest import local_pipeline
from tests.transforms.test_dedup_core import _union_find

A, B, C = words(1, 200), words(2, 200), words(3, 200)
ROWS = [
    {"doc_id": "h0", "origin": "human", "source": "wiki", "text": A},
    {"doc_id": "s0", "source": "gen", "text": "  " + A.upper()},
    {"doc_id": "s1", "source": "gen", "text": near_copy(A)},
    {"doc_id": "s2", "source": "gen", "text": near_copy(A) + "  "},
    {"doc_id": "s3", "source": "gen", "text": B},
    {"doc_id": "s4", "source": "gen", "text": near_copy(B, 2)},
    {"doc_id": "h1", "origin": "human", "source": "wiki", "text": C},
    {"doc_id": "s5", "source": "gen", "text": "Tiny text"},
    {"doc_id": "s6", "source": "gen", "text": "tiny   text"},
]
SURVIVORS = [("h0", 4), ("s3", 2), ("h1", 1), ("s5", 2)]
DUPLICATES = [
    ("s0", "h0", "exact", 4), ("s1", "h0", "near", 4), ("s2", "h0", "exact", 4),
    ("s4", "s3", "near", 2), ("s6", "s5", "exact", 2),
]


def _run_dedup(tmp_path, partitions):
    p = local_pipeline()
    info, dedup = dedup_inputs(p, tmp_path, ROWS, partitions=partitions)
    out = info | dedup
    survivors = out.survivors | "Survivors" >> beam.FlatMap(
        lambda b: zip(b.column("doc_id").to_pylist(), b.column("dup_cluster_size").to_pylist()))
    dups = out.duplicates | "Dups" >> beam.FlatMap(lambda b: [
        (r["doc_id"], r["kept_doc_id"], r["kind"], r["cluster_size"]) for r in b.to_pylist()])
    similarity = out.duplicates | "Similarity" >> beam.FlatMap(lambda b: [
        (r["doc_id"], r["kind"] == "exact" or 0.75 <= r["similarity"] < 1.0, r["cluster"] == r["kept_doc_id"])
        for r in b.to_pylist()])
    stats = out.stats | beam.CombinePerKey(sum)
    assert_that(survivors, equal_to(SURVIVORS), label="survivors")
    assert_that(dups, equal_to(DUPLICATES), label="duplicates")
    assert_that(similarity, equal_to([(d[0], True, True) for d in DUPLICATES]), label="similarity")
    kinds = {Figure.EXACT_DUPLICATES.value, Figure.NEAR_DUPLICATES.value, Figure.CROSS_ORIGIN_CLUSTERS.value,
             Figure.CROSS_ORIGIN_SYNTHETIC.value}
    assert_that(stats | beam.Filter(lambda kv: kv[0][0] in kinds),
                equal_to([(("exact_duplicates", "gen", ""), 3), (("near_duplicates", "gen", ""), 2),
                          (("cross_origin_clusters", "", ""), 1), (("cross_origin_synthetic", "gen", ""), 3),
                          (("cross_origin_synthetic", "gen", "(none)"), 3)]), label="counts")
    p.run().wait_until_finish()


@pytest.mark.parametrize("partitions", [1, 4, 7])
def test_exact_and_near_dedup_keep_the_human_copy(tmp_path, partitions):
    _run_dedup(tmp_path, partitions)


def test_connected_components_in_beam_match_union_find():
    rng = np.random.default_rng(11)
    a, b = rng.integers(0, 500, 400).astype(np.int64), rng.integers(0, 500, 400).astype(np.int64)
    keep = a != b
    a, b = a[keep], b[keep]
    expected = _union_find(a, b)
    p = local_pipeline()
    edges = p | beam.Create([(a[i:i + 50], b[i:i + 50]) for i in range(0, len(a), 50)])
    labels = (edges | ConnectedComponents(partitions=5, rounds=12)
              | beam.FlatMap(lambda blk: zip(blk[0].tolist(), blk[1].tolist())))
    assert_that(labels, equal_to(list(expected.items())))
    p.run().wait_until_finish()


@pytest.mark.parametrize("rounds", [0, 1, 3])
def test_connected_components_finish_long_chains_whatever_the_rounds(rounds):
    n = 2000  # a path: star rounds need about log2(n) of them, more than given here
    perm = np.random.default_rng(1).permutation(n).astype(np.int64)
    p = local_pipeline()
    edges = p | beam.Create([(perm[:-1], perm[1:])])
    labels = (edges | ConnectedComponents(partitions=3, rounds=rounds)
              | beam.FlatMap(lambda blk: zip(blk[0].tolist(), blk[1].tolist())))
    assert_that(labels, equal_to([(node, 0) for node in range(n)]))
    p.run().wait_until_finish()


def test_cross_origin_counts_cover_kept_and_removed_synthetic_members():
    def row(cluster, origin, source, generator, kept_origin, kept_source, kept_generator):
        return {"cluster": cluster, "origin": origin, "source": source, "generator": generator,
                "kept_origin": kept_origin, "kept_source": kept_source, "kept_generator": kept_generator}

    rows = [
        row("h1", "synthetic", "chat", "gpt", "human", "wiki", None),
        row("h1", "synthetic", "chat", "llama", "human", "wiki", None),
        row("s9", "human", "wiki", None, "synthetic", "chat", "gpt"),  # synthetic kept (longest policy)
        row("s7", "synthetic", "chat", "gpt", "synthetic", "chat", "gpt"),  # synthetic only: not counted
    ]
    stats = RunStats(cross_origin_counts(rows))
    assert stats.total(Figure.CROSS_ORIGIN_CLUSTERS) == 2
    assert stats.get(Figure.CROSS_ORIGIN_SYNTHETIC, "chat") == 3
    assert stats.get(Figure.CROSS_ORIGIN_SYNTHETIC, "chat", "gpt") == 2
    assert stats.get(Figure.CROSS_ORIGIN_SYNTHETIC, "chat", "llama") == 1


def test_verification_moves_each_signature_once_per_partition_and_never_for_unsigned_pairs(tmp_path):
    parts, num_perm = 2, 8
    sig = {u: np.full(num_perm, u, np.uint32) for u in (2, 4, 6, 8)}
    sig[9] = sig[8].copy()  # 9 copies 8 exactly; 7 has no signature (an exact duplicate, say)
    # Distinct, as DistinctPairs delivers them.
    a = np.array([2, 2, 2, 2, 8], np.int64)
    b = np.array([4, 6, 8, 7, 9], np.int64)
    # The signatures through their spill files, one per signature block as the Sign step makes them
    # (keyed by uid partition).
    signed = []
    for u, s in sig.items():
        uid = np.array([u], np.int64)
        signed += _spill_signed((int(int_partitions(uid, parts)[0]), (uid, s[None, :])), str(tmp_path))
    kept = []
    for p, rows in split_rows(int_partitions(b, parts), parts):  # keyed by b's partition
        kept += _keep_signed_b((p, (a[rows], b[rows])), signed, parts)
    pairs = sorted(zip(*(np.concatenate(c) for c in zip(*(blk for _, blk in kept)))))
    assert pairs == [(2, 4), (2, 6), (2, 8), (8, 9)]  # (2, 7) is gone

    moved = []
    for p in range(parts):
        mine = [blk for q, blk in kept if q == p]
        moved += list(_attach_sig_a((p, mine), signed, num_perm, parts))
    # Document 2 pairs with 4, 6 and 8, all in partition 0: its signature travels once.
    to_zero = [blk for q, blk in moved if q == 0]
    assert sum(len(blk[3]) for blk in to_zero) == len({int(x) for blk in to_zero for x in blk[0]})

    config = NearDedupConfig(num_perm=num_perm, bands=2, rows=4, threshold=0.8)
    edges = []
    for p in range(parts):
        out = _VerifyFn(config).process((p, [blk for q, blk in moved if q == p]), signed)
        edges += [tuple(zip(*e)) for e in out if isinstance(e, tuple) and len(e) == 2
                  and isinstance(e[0], np.ndarray)]
    assert sorted(x for e in edges for x in e) == [(8, 9)]  # only the exact copy verifies


def test_clustering_reads_the_full_signatures_of_its_members_from_the_spill_files(tmp_path):
    parts, num_perm = 3, 16
    rng = np.random.RandomState(11)
    uids = rng.permutation(np.arange(1, 601, dtype=np.int64) * 7919)
    sigs = rng.randint(0, 2**32, (len(uids), num_perm), dtype=np.uint64).astype(np.uint32)
    signed = []
    # Blocks as the Sign step delivers them: by uid partition, uids in no particular order.
    for start in range(0, len(uids), 150):
        block = slice(start, start + 150)
        for p, rows in split_rows(int_partitions(uids[block], parts), parts):
            # A retried bundle reports its file twice.
            signed += 2 * list(_spill_signed((p, (uids[block][rows], sigs[block][rows])), str(tmp_path)))
    want = rng.choice(len(uids), 250, replace=False)
    got = _SignedFiles(signed, num_perm, parts).lookup(uids[want])
    assert got.dtype == np.uint32 and np.array_equal(got, sigs[want])
    with pytest.raises(FatalError, match="no signature"):
        _SignedFiles(signed, num_perm, parts).lookup(np.array([uids[0], 5], np.int64))


def test_distinct_pairs_combine_to_each_pair_once_per_partition():
    # Enough pairs that the accumulator compacts several times on the way.
    rng = np.random.RandomState(7)
    blocks = []
    for _ in range(40):
        a = rng.randint(0, 600, 8000).astype(np.int64)
        b = rng.randint(0, 600, 8000).astype(np.int64)
        blocks.append((int(rng.randint(0, 3)), (a, b)))
    expected = []
    for p in range(3):
        mine = [blk for q, blk in blocks if q == p]
        lo, hi = unique_pairs(np.concatenate([a for a, _ in mine]), np.concatenate([b for _, b in mine]))
        expected += [(p, int(x), int(y)) for x, y in zip(lo, hi)]
    p = local_pipeline()
    out = (p | beam.Create(blocks) | beam.CombinePerKey(_UniquePairs())
           | beam.FlatMap(lambda kv: [(kv[0], int(x), int(y)) for x, y in zip(*kv[1])]))
    assert_that(out, equal_to(expected))
    p.run().wait_until_finish()


def test_low_bit_verification_can_only_gain_a_match(tmp_path):
    rng = np.random.RandomState(3)
    a = rng.randint(0, 2**32, (2000, 256), dtype=np.uint64).astype(np.uint32)
    b = a.copy()
    differ = rng.rand(*a.shape) < 0.3
    b[differ] = rng.randint(0, 2**32, int(differ.sum()), dtype=np.uint64).astype(np.uint32)
    # Some values differ only above their low 16 bits: a chance agreement of the low bits.
    high_only = rng.rand(*a.shape) < 0.01
    b[high_only] = a[high_only] ^ np.uint32(0x10000)
    low = {}
    for name, sig in (("a", a), ("b", b)):
        refs = [ref for _, ref in _spill_signed((0, (np.arange(2000) + (name == "b") * 5000, sig)), str(tmp_path))]
        # A retried bundle reports its file twice: read once.
        [(uids, low[name])] = _low_blocks(refs + refs, 256)
        assert np.array_equal(uids, np.arange(2000) + (name == "b") * 5000)
    assert low["a"].dtype == np.uint16
    full, partial = estimate_jaccard(a, b), estimate_jaccard(low["a"], low["b"])
    assert (partial >= full).all()
    assert np.array_equal(partial - full, ((a != b) & ((a ^ b) & np.uint32(0xFFFF) == 0)).mean(axis=1))


def test_band_keys_cross_their_shuffle_as_file_ranges_that_read_back_per_partition(tmp_path):
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 2**63, 3_000, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    owners = np.repeat(rng.integers(-2**62, 2**62, 100, dtype=np.int64), 30)
    refs = list(spill_bands(keys, owners, 7, str(tmp_path / "bands")))
    part = int_partitions(keys, 7)
    assert sorted(p for p, _ in refs) == sorted(set(part.tolist()))
    assert len({path for _, (path, _, _) in refs}) == 1  # one file per batch, whatever the partitions
    for p, ref in refs:
        got_keys, got_owners = read_bands([ref])
        # Each partition gets its rows in batch order, keys paired with their owners.
        np.testing.assert_array_equal(got_keys, keys[part == p])
        np.testing.assert_array_equal(got_owners, owners[part == p])
        # A retried bundle's range, reported twice, is read once.
        np.testing.assert_array_equal(read_bands([ref, ref])[0], got_keys)
    # A retry writes the same file under the same name.
    assert list(spill_bands(keys, owners, 7, str(tmp_path / "bands"))) == refs
    flush_writes()  # the file is written behind: until then its temporary sits beside it
    assert len(list((tmp_path / "bands").iterdir())) == 1
    assert [len(a) for a in read_bands([])] == [0, 0]


def test_signatures_cross_the_run_as_files_found_by_uid(tmp_path):
    rng = np.random.default_rng(6)
    # Two batches of one input file: uids in two ranges that do not overlap, some rows missing
    # (filtered, or without words), the second batch out of order.
    first = np.sort(rng.choice(np.arange(100, 200), 60, replace=False)).astype(np.int64)
    second = rng.permutation(np.arange(300, 340)).astype(np.int64)
    sigs = {int(u): rng.integers(0, 2**32, 16, dtype=np.uint64).astype(np.uint32) for u in [*first, *second]}
    refs = [spill_signatures(batch, np.stack([sigs[int(u)] for u in batch]), str(tmp_path / "sigs"))
            for batch in (first, second)]
    assert [(lo, hi, n) for lo, hi, _, n in refs] == [(int(first.min()), int(first.max()), 60), (300, 339, 40)]
    missing = np.setdiff1d(np.arange(100, 200), first)[:5]
    asked = rng.permutation(np.concatenate([first, second, missing, [5, 250, 400]])).astype(np.int64)
    # A retried bundle may report its file twice.
    got, found = SignatureFiles([refs[1], *refs], 16).find(asked)
    assert found.tolist() == [int(u) in sigs for u in asked]
    for u, row, ok in zip(asked, got, found):
        np.testing.assert_array_equal(row, sigs[int(u)] if ok else np.zeros(16, np.uint32))
    # A retry writes the same file under the same name.
    assert spill_signatures(second, np.stack([sigs[int(u)] for u in second]), str(tmp_path / "sigs")) == refs[1]
    flush_writes()
    assert len(list((tmp_path / "sigs").iterdir())) == 2
    assert not SignatureFiles([], 16).find(asked)[1].any()


def test_signature_files_of_joined_batches_may_interleave(tmp_path):
    # Batches joined from small input files (ingest._JoinSmallBatchesFn) on two workers: each file
    # spans the other's uids, and a uid inside both ranges is in one file only.
    rng = np.random.default_rng(7)
    batches = [np.array([1, 5, 9, 13], np.int64), np.array([3, 7, 11], np.int64), np.array([6], np.int64)]
    sigs = {int(u): rng.integers(0, 2**32, 16, dtype=np.uint64).astype(np.uint32) for b in batches for u in b}
    refs = [spill_signatures(b, np.stack([sigs[int(u)] for u in b]), str(tmp_path / "sigs")) for b in batches]
    asked = np.array([13, 3, 5, 6, 7, 8, 1, 11, 9], np.int64)
    got, found = SignatureFiles(refs, 16).find(asked)
    assert found.tolist() == [int(u) in sigs for u in asked]
    for u, row, ok in zip(asked, got, found):
        np.testing.assert_array_equal(row, sigs[int(u)] if ok else np.zeros(16, np.uint32))


def test_lsh_candidates_get_the_signatures_their_text_gives(tmp_path):
    p = local_pipeline()
    config, spec, read, sketch = sketch_inputs(p, tmp_path, ROWS)
    near = config.dedup.near
    # Every document a candidate: paired with itself.
    every = sketch.info | "PairEach" >> beam.Map(lambda b: (0, (b.column("uid").to_numpy(), b.column("uid").to_numpy())))
    looked_up = (every, sketch.info) | CandidateSignatures(spec, near, 4, sketch.signatures)
    got = looked_up | "Got" >> beam.FlatMap(lambda e: [(int(u), ("spill", s.tobytes())) for u, s in zip(*e[1])])
    signed = read.docs | "SignText" >> beam.FlatMap(lambda b: [
        (int(u), ("text", s.tobytes())) for u, s in zip(b.column("uid").to_numpy(), signatures_of(b, near))])
    check = ((got, signed) | beam.Flatten() | beam.GroupByKey()
             | beam.MapTuple(lambda _, found: (sorted(k for k, _ in found), len({s for _, s in found}))))
    assert_that(check, equal_to([(["spill", "text"], 1)] * len(ROWS)))
    p.run().wait_until_finish()


def test_a_candidate_without_a_signature_stops_the_run():
    batch = pa.RecordBatch.from_arrays([pa.array([7], pa.int64())], schema=CANDIDATE)
    with pytest.raises(FatalError, match="has no signature"):
        list(_look_up(((0, 0), [batch]), [], NearDedupConfig(), 4))


def test_sketch_spill_files_are_whole_when_the_next_stage_starts(tmp_path, slow_writer):
    # As for WriteShards' spills (tests/transforms/test_shards.py): with a slow writer thread, the
    # band and signature files a bundle reported are whole once the bundle counts as done.
    rows = [{"doc_id": f"d{i}", "text": words(i, 40)} for i in range(120)]

    def bands_whole(element):
        for path, _, end in element[1]:
            assert os.path.getsize(path) >= end, path

    def signatures_whole(element, num_perm):
        _, (_, _, path, n) = element
        assert os.path.getsize(path) == n * (8 + 4 * num_perm), path

    with local_pipeline() as p:
        config, _, _, sketch = sketch_inputs(p, tmp_path, rows)
        _ = sketch.bands | "GroupBands" >> beam.GroupByKey() | "BandsWhole" >> beam.Map(bands_whole)
        _ = (sketch.signatures
             | "KeyRefs" >> beam.Map(lambda ref: (ref[2], ref))
             | "GroupRefs" >> beam.GroupByKey()
             | "SignaturesWhole" >> beam.FlatMap(lambda kv: kv[1])
             | "Check" >> beam.Map(lambda ref: signatures_whole((None, ref), config.dedup.near.num_perm)))
    assert len(list((tmp_path / "spill" / "signatures").iterdir())) == 3
