"""Near-dedup quality on the shared corpora, against brute-force Jaccard (issue: near-dedup).

    .venv/bin/python -m benchmarks.dedup_quality [--data ../shared/data] [--out benchmarks/work/dq]

Builds a deterministic sample (every answer to every fourth AlpacaEval instruction plus every
second Wikipedia paragraph, and a perturbed copy set for near-threshold cases), runs the
hybridmix pipeline on it with quality filters off, and compares the duplicates it removed
with exact Jaccard similarity of word 5-gram sets computed for all pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from benchmarks.dedup_eval import evaluate
from hybridmix.pipelines.cli import main as hybridmix

HERE = os.path.dirname(os.path.abspath(__file__))


def perturb(text: str, rate: float, rng: np.random.RandomState) -> str:
    """Replace about `rate` of the words: near duplicates spread around the threshold."""
    words = text.split()
    for i in range(len(words)):
        if rng.rand() < rate:
            words[i] = f"w{rng.randint(1_000_000)}"
    return " ".join(words)


def build_sample(data_dir: str, work: str) -> dict[str, str]:
    syn = pq.read_table(os.path.join(data_dir, "synthetic", "alpaca_eval_outputs.parquet"))
    hum = pq.read_table(os.path.join(data_dir, "human", "wikipedia.parquet"))
    syn = syn.filter(pc.equal(pc.bit_wise_and(syn["prompt_id"], 3), 0))
    hum = hum.take(pa.array(range(0, hum.num_rows, 2)))
    rng = np.random.RandomState(2024)
    # Copies of real answers with 1-25 % of words replaced: Jaccard from about 0.4 to 0.97.
    base = syn.take(pa.array(rng.choice(syn.num_rows, 300, replace=False)))
    rates = rng.uniform(0.01, 0.25, base.num_rows)
    edited = [perturb(t, r, rng) for t, r in zip(base["text"].to_pylist(), rates)]
    near = pa.table({"id": [f"{i}~edit" for i in base["id"].to_pylist()], "text": edited,
                     "generator": base["generator"]})
    paths = {}
    for name, table in (("human", hum.select(["id", "text"])), ("synthetic", syn.select(["id", "text", "generator"])),
                        ("edited", near)):
        paths[name] = os.path.join(work, "in", f"{name}.parquet")
        os.makedirs(os.path.dirname(paths[name]), exist_ok=True)
        pq.write_table(table, paths[name])
    return paths


def run(data_dir: str, work: str, threshold: float, num_perm: int | None, near: dict | None = None) -> dict:
    paths = build_sample(data_dir, work)
    config = {
        "corpora": [
            {"name": "wiki", "origin": "human", "paths": [paths["human"]], "id_column": "id"},
            {"name": "alpaca", "origin": "synthetic", "paths": [paths["synthetic"]], "id_column": "id",
             "columns": {"generator": "generator"}},
            {"name": "edited", "origin": "synthetic", "paths": [paths["edited"]], "id_column": "id",
             "columns": {"generator": "generator"}},
        ],
        "quality": {"enabled": False},
        "dedup": {"near": {"threshold": threshold, **({"num_perm": num_perm} if num_perm else {}), **(near or {})}},
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
    }
    cfg_path = os.path.join(work, "config.yaml")
    with open(cfg_path, "w") as fh:
        yaml.safe_dump(config, fh)
    out = os.path.join(work, "out")
    started = time.perf_counter()
    code = hybridmix(["run", cfg_path, "--output", out, "--force"])
    wall = time.perf_counter() - started
    assert code == 0, f"hybridmix exited {code}"
    dups = pq.read_table(os.path.join(out, "duplicates")).to_pylist()
    kept_of = {d["doc_id"]: d["kept_doc_id"] for d in dups}
    near = {d["doc_id"] for d in dups if d["kind"] == "near"}
    tables = [pq.read_table(p) for p in paths.values()]
    ids = sum((t["id"].to_pylist() for t in tables), [])
    texts = sum((t["text"].to_pylist() for t in tables), [])
    started = time.perf_counter()
    natural = [i for i, d in enumerate(ids) if not d.endswith("~edit")]
    quality = evaluate([ids[i] for i in natural], [texts[i] for i in natural], 5, threshold, kept_of,
                       near & {ids[i] for i in natural})
    stressed = evaluate(ids, texts, 5, threshold, kept_of, near)
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    near_params = manifest["dedup"]["near"]
    return {
        "threshold": threshold, "num_perm": manifest["dedup"]["near"]["num_perm"], "bands": near_params["bands"], "rows": near_params["rows"],
        "verify_threshold": near_params["verify_threshold"],
        "pipeline_seconds": round(wall, 2), "brute_force_seconds": round(time.perf_counter() - started, 2),
        "natural_sample": quality.as_dict(), "with_edited_copies": stressed.as_dict(),
        "dedup_stats": manifest["dedup"]["stats"], "missed": stressed.missed_examples[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    parser.add_argument("--out", default=os.path.join(HERE, "work", "dedup_quality"))
    parser.add_argument("--threshold", type=float, nargs="*", default=[0.8, 0.7, 0.9])
    parser.add_argument("--num-perm", type=int, default=None, help="default: the config default")
    args = parser.parse_args()
    results = [run(args.data, args.out, t, args.num_perm) for t in args.threshold]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
