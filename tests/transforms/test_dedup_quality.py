"""Near-dedup against brute force on a fixture with pairs spread around the threshold."""

import json
import uuid

import apache_beam as beam
import numpy as np
import pytest

from benchmarks.dedup_eval import evaluate
from tests.builders import dedup_inputs, words
from tests.conftest import local_pipeline


def _edited(text: str, rate: float, rng: np.random.RandomState) -> str:
    parts = text.rstrip(".").split(" ")
    for i in range(len(parts)):
        if rng.rand() < rate:
            parts[i] = f"x{rng.randint(10**6)}"
    return " ".join(parts) + "."


def _fixture():
    rng = np.random.RandomState(17)
    rows = []
    for i in range(60):
        base = words(4000 + i, int(rng.randint(120, 260)))
        human = i % 3 == 0
        rows.append({"doc_id": f"b{i:03d}", "origin": "human" if human else "synthetic",
                     "source": "wiki" if human else "gen", "text": base})
        if i < 45:
            rate = 0.001 + 0.04 * i / 45  # Jaccard from about 0.99 down to 0.6, dense near 0.8
            rows.append({"doc_id": f"e{i:03d}", "text": _edited(base, rate, rng)})
    for i in range(10):
        short = " ".join(words(9000 + i, 3).rstrip(".").split()[: 2 + i % 3])
        rows.append({"doc_id": f"t{i:02d}", "text": short})
        rows.append({"doc_id": f"u{i:02d}", "text": short.upper() + " "})
        rows.append({"doc_id": f"v{i:02d}", "text": short + " extra"})
    return rows


def _dump(batches, path):
    rows = [r for b in batches for r in b.to_pylist()]
    with open(path, "w") as fh:
        json.dump(rows, fh)


@pytest.mark.parametrize("threshold", [0.8, 0.9])
def test_near_dedup_matches_brute_force(tmp_path, threshold):
    rows = _fixture()
    path = str(tmp_path / f"dups-{uuid.uuid4().hex}.json")
    p = local_pipeline()
    info, dedup = dedup_inputs(p, tmp_path, rows, dedup={"near": {"threshold": threshold}}, partitions=5)
    _ = (info | dedup).duplicates | beam.combiners.ToList() | beam.Map(_dump, path)
    p.run().wait_until_finish()
    dups = json.load(open(path))
    kept_of = {d["doc_id"]: d["kept_doc_id"] for d in dups}
    near = {d["doc_id"] for d in dups if d["kind"] == "near"}
    quality = evaluate([r["doc_id"] for r in rows], [r["text"] for r in rows], 5, threshold, kept_of, near)
    assert quality.docs_with_partner >= 40, quality
    assert quality.recall_all >= 0.99, quality
    assert quality.precision >= 0.99, quality
    # Short texts dedup exactly, and a short text with one more word is not its near duplicate.
    for i in range(10):
        assert kept_of[f"u{i:02d}"] == f"t{i:02d}"
        assert f"v{i:02d}" not in kept_of
