import json
import uuid

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hybridmix.schemas.config import MixtureConfig
from hybridmix.transforms import columns
from hybridmix.transforms.mixture import MixSources, selection_priority
from tests.conftest import local_pipeline

ORIGINS = {"h": "human", "s": "synthetic"}


def info_batches(n_per_source=400, batch=97, flagged=frozenset()):
    rng = np.random.default_rng(5)
    rows = []
    for source, origin in ORIGINS.items():
        for i in range(n_per_source):
            rows.append({
                "uid": len(rows), "doc_id": f"{source}-{i:05d}", "origin": origin, "source": source,
                "generator": None, "generation": 0 if origin == "human" else 1, "content_hash": f"{len(rows):032x}",
                "tokens": int(rng.integers(5, 400)), "chars": 10, "script": "Latn", "bytes": 10,
                "quality_flags": ["repeated_ngrams_v2"] if f"{source}-{i:05d}" in flagged else [],
                # Synthetic documents have distinct scores (a permutation); human ones are not scored.
                "quality_score": (i * 37 % n_per_source) / n_per_source if origin == "synthetic" else None,
                "skey": "", "exact_count": 1, "dup_cluster": None,
                "dup_cluster_size": 1,
            })
    table = pa.Table.from_pylist(rows, schema=columns.INFO)
    return table, [table.slice(i, batch).to_batches()[0] for i in range(0, table.num_rows, batch)]


def _dump(items, path):
    with open(path, "w") as fh:
        json.dump(sorted(items), fh)


def run_mix(config, tmp_path, seed=0, flagged=frozenset()):
    table, batches = info_batches(flagged=flagged)
    p = local_pipeline()
    out = p | beam.Create(batches) | MixSources(config, ORIGINS, seed)
    path = str(tmp_path / f"selected-{seed}-{uuid.uuid4().hex}.json")
    _ = (out.selected
         | beam.FlatMap(lambda b: zip(b.column("doc_id").to_pylist(), b.column("copies").to_pylist()))
         | beam.combiners.ToList()
         | beam.Map(_dump, path))
    p.run().wait_until_finish()
    with open(path) as fh:
        selected = {d: c for d, c in json.load(fh)}
    tokens = dict(zip(table.column("doc_id").to_pylist(), table.column("tokens").to_pylist()))
    return selected, tokens, table


@pytest.mark.parametrize("total", [None, 30_000], ids=["max", "fixed"])
def test_selection_meets_quota_within_one_document(total, tmp_path):
    config = MixtureConfig(targets={"human": 0.7, "synthetic": 0.3}, total_tokens=total)
    sel, tokens, table = run_mix(config, tmp_path)
    by_source = {s: sum(tokens[d] * c for d, c in sel.items() if d.startswith(s)) for s in ORIGINS}
    total_units = sum(by_source.values())
    biggest = max(tokens.values())
    if total is None:
        human_all = sum(v for k, v in tokens.items() if k.startswith("h"))
        assert by_source["h"] == human_all
    assert abs(by_source["h"] - 0.7 * (total or total_units)) <= biggest
    assert abs(by_source["s"] - 0.3 * (total or total_units)) <= biggest


def test_long_documents_do_not_leave_a_quota_far_from_full(tmp_path):
    """Three human "books" of 20,000 tokens among documents of at most 400, and a quota that the
    first book reaches when 1,000 tokens are left: it is left out and shorter documents fill the rest."""
    table, _ = info_batches()
    books = table.slice(0, 3).to_pylist()
    for k, row in enumerate(books):
        row.update(uid=table.num_rows + k, doc_id=f"h-book-{k}", tokens=20_000, content_hash=f"book{k:028d}")
    table = pa.concat_tables([table, pa.Table.from_pylist(books, schema=columns.INFO)]).combine_chunks()
    batches = [table.slice(i, 97).to_batches()[0] for i in range(0, table.num_rows, 97)]
    human = table.filter(pc.equal(table.column("source"), "h"))
    order = np.argsort(selection_priority(human.column("doc_id"), 0))
    ids = np.asarray(human.column("doc_id").to_pylist())[order]
    before = int(human.column("tokens").to_numpy()[order][:int(np.argmax(np.char.startswith(ids, "h-book")))].sum())
    quota = before + 1_000
    config = MixtureConfig(targets={"human": 0.7, "synthetic": 0.3}, total_tokens=round(quota / 0.7))
    p = local_pipeline()
    out = p | beam.Create(batches) | MixSources(config, ORIGINS, 0)
    path = str(tmp_path / "selected.json")
    _ = (out.selected
         | beam.FlatMap(lambda b: zip(b.column("doc_id").to_pylist(), b.column("copies").to_pylist()))
         | beam.combiners.ToList() | beam.Map(_dump, path))
    p.run().wait_until_finish()
    with open(path) as fh:
        selected = dict(json.load(fh))
    tokens = dict(zip(table.column("doc_id").to_pylist(), table.column("tokens").to_pylist()))
    got = sum(tokens[d] * c for d, c in selected.items() if d.startswith("h"))
    assert abs(got - round(quota / 0.7) * 0.7) <= 400
    assert not any(d.startswith("h-book") for d in selected)


def test_upsampling_gives_whole_repeats(tmp_path):
    config = MixtureConfig(targets={"human": 0.9, "synthetic": 0.1}, total_tokens=200_000, max_repeats=3)
    sel, tokens, _ = run_mix(config, tmp_path)
    human = {d: c for d, c in sel.items() if d.startswith("h")}
    available = sum(v for d, v in tokens.items() if d.startswith("h"))
    full = int(180_000 // available)
    assert full >= 2
    assert set(human.values()) == {full, full + 1}
    assert len(human) == 400
    assert abs(sum(tokens[d] * c for d, c in human.items()) - 180_000) <= max(tokens.values())


def test_same_seed_same_selection_other_seed_other_selection(tmp_path):
    config = MixtureConfig(targets={"human": 0.5, "synthetic": 0.5}, total_tokens=40_000)
    a, tokens, _ = run_mix(config, tmp_path, seed=1)
    b, _, _ = run_mix(config, tmp_path, seed=1)
    c, _, _ = run_mix(config, tmp_path, seed=2)
    assert a == b
    assert a != c
    size = lambda sel: sum(tokens[d] * k for d, k in sel.items())  # noqa: E731
    assert abs(size(a) - size(c)) <= 2 * max(tokens.values())


def _scores(table):
    return {d: s for d, s in zip(table.column("doc_id").to_pylist(), table.column("quality_score").to_pylist())}


def test_top_selection_takes_the_highest_scores(tmp_path):
    config = MixtureConfig(unit="documents", targets={"human": 0.8, "synthetic": 0.2}, total_documents=100,
                           selection={"synthetic": "top"})
    sel, _, table = run_mix(config, tmp_path)
    scores = _scores(table)
    chosen = sorted(scores[d] for d in sel if d.startswith("s"))
    best = sorted(v for d, v in scores.items() if d.startswith("s"))[-20:]
    assert chosen == best


def test_weighted_selection_prefers_high_scores_without_cutting_the_tail(tmp_path):
    config = MixtureConfig(unit="documents", targets={"human": 0.5, "synthetic": 0.5}, total_documents=200,
                           selection={"synthetic": "weighted"})
    sel, _, table = run_mix(config, tmp_path)
    scores = _scores(table)
    chosen = np.array([scores[d] for d in sel if d.startswith("s")])
    pool = np.array([v for d, v in scores.items() if d.startswith("s")])
    assert len(chosen) == 100
    assert chosen.mean() > pool.mean() + 0.1
    assert (chosen < np.median(pool)).sum() >= 1  # the tail keeps a chance
    again, _, _ = run_mix(config, tmp_path)
    assert again == sel


def test_flagged_documents_rank_as_if_their_score_were_lower(tmp_path):
    _, _, table = run_mix(MixtureConfig(unit="documents", targets={"human": 0.5, "synthetic": 0.5},
                                        total_documents=40), tmp_path)
    scores = _scores(table)
    ranked = sorted((v, d) for d, v in scores.items() if d.startswith("s"))
    best, next_best = {d for _, d in ranked[-20:]}, {d for _, d in ranked[-40:-20]}
    top = dict(unit="documents", targets={"human": 0.8, "synthetic": 0.2}, total_documents=100,
               selection={"synthetic": "top"})
    # The 20 best-scored answers are flagged: at the default penalty (3 standard deviations) the
    # next 20 go first; with penalty 0, or 0 for this source, the flags do not count.
    demoted, _, _ = run_mix(MixtureConfig(**top), tmp_path, flagged=best)
    assert {d for d in demoted if d.startswith("s")} == next_best
    for ignored in (MixtureConfig(**top, flag_penalty=0.0), MixtureConfig(**top, sources={"s": {"flag_penalty": 0}})):
        sel, _, _ = run_mix(ignored, tmp_path, flagged=best)
        assert {d for d in sel if d.startswith("s")} == best
    # A small penalty moves a flagged answer only past answers scored just below it.
    mild, _, _ = run_mix(MixtureConfig(**top, flag_penalty=0.05), tmp_path, flagged={ranked[-1][1]})
    assert ranked[-1][1] in mild
    # Random selection has no score to lower: flags change nothing.
    plain = dict(unit="documents", targets={"human": 0.8, "synthetic": 0.2}, total_documents=100)
    assert run_mix(MixtureConfig(**plain), tmp_path, flagged=best)[0] == run_mix(MixtureConfig(**plain), tmp_path)[0]


def test_min_score_and_per_source_repeat_caps(tmp_path):
    config = MixtureConfig(unit="documents", targets={"human": 0.2, "synthetic": 0.8},
                           sources={"s": {"max_repeats": 3, "min_score": 0.5}})
    sel, _, table = run_mix(config, tmp_path)
    scores = _scores(table)
    synthetic = {d: c for d, c in sel.items() if d.startswith("s")}
    assert min(scores[d] for d in synthetic) >= 0.5
    eligible = sum(1 for d, v in scores.items() if d.startswith("s") and v >= 0.5)
    # Only the small source is upsampled, up to its own cap; human text is used at most once.
    assert len(synthetic) == eligible and set(synthetic.values()) == {3}
    human = {d: c for d, c in sel.items() if d.startswith("h")}
    assert set(human.values()) == {1} and abs(len(human) - 3 * eligible / 4) <= 1


ORIGINS3 = {"h": "human", "s1": "synthetic", "s2": "synthetic"}


def _big_batch(index: int, rows: int = 5000) -> pa.RecordBatch:
    """Batch `index` of a 100k-document INFO table, generated inside the pipeline.

    (beam.Create would pickle and compress the whole table into the pipeline graph.)
    """
    rng = np.random.default_rng(1000 + index)
    source = rng.choice(list(ORIGINS3), size=rows, p=[0.5, 0.3, 0.2])
    tokens = rng.integers(5, 3000, size=rows).astype(np.int32)
    uid = np.arange(index * rows, (index + 1) * rows, dtype=np.int64)
    return pa.RecordBatch.from_pydict({
        "uid": uid, "doc_id": [f"d{u:07d}" for u in uid], "origin": [ORIGINS3[s] for s in source],
        "source": source.astype(str), "generator": pa.nulls(rows, pa.string()),
        "generation": np.where(source == "h", 0, 1).astype(np.int8), "parent_id": pa.nulls(rows, pa.string()),
        "content_hash": [""] * rows,
        "tokens": tokens, "chars": tokens, "script": ["Latn"] * rows, "bytes": tokens, "text_hash": np.zeros(rows, np.uint64),
        "quality_flags": pa.array([[]] * rows, pa.list_(pa.string())), "quality_score": np.ones(rows, np.float32),
        "skey": [""] * rows, "exact_count": np.ones(rows, np.int32), "dup_cluster": pa.nulls(rows, pa.string()),
        "dup_cluster_size": np.ones(rows, np.int32),
    }, schema=columns.INFO)


def test_exact_quotas_at_100k_documents(tmp_path):
    """Each source lands within one document of its quota; fractions within 0.01 pp plus one document."""
    batches = 20
    table = pa.Table.from_batches([_big_batch(i) for i in range(batches)])
    n = table.num_rows
    source = np.asarray(table.column("source").to_pylist())
    tokens = table.column("tokens").to_numpy()
    total = int(tokens.sum() * 0.4)
    config = MixtureConfig(targets={"human": 0.55, "synthetic": 0.45}, total_tokens=total)
    p = local_pipeline()
    out = p | beam.Create(list(range(batches))) | beam.Map(_big_batch) | MixSources(config, ORIGINS3, seed=0)
    path = str(tmp_path / "sel.json")
    _ = (out.selected | beam.FlatMap(lambda b: zip(b.column("uid").to_pylist(), b.column("copies").to_pylist()))
         | beam.combiners.ToList() | beam.Map(_dump, path))
    p.run().wait_until_finish()
    copies = np.zeros(n, np.int64)
    for uid, c in json.load(open(path)):
        copies[uid] = c
    assert n == 100_000 and copies.max() == 1
    got = {s: int((tokens * copies)[source == s].sum()) for s in ORIGINS3}
    syn = {s: tokens[source == s].sum() for s in ("s1", "s2")}
    shares = {"h": 0.55, **{s: 0.45 * syn[s] / (syn["s1"] + syn["s2"]) for s in syn}}
    for s in ORIGINS3:
        assert abs(got[s] - shares[s] * total) <= tokens[source == s].max(), s
    achieved = sum(got.values())
    assert abs(got["h"] / achieved - 0.55) <= 0.0001 + tokens.max() / achieved
