"""CPU time and peak RSS of one run with small shards against one with large shards.

    .venv/bin/python -m benchmarks.shard_cost benchmarks/work/corpus_200k [--small 1000 --large 250000 --runs 2]

The corpus is one written by `make_corpus`; the config is the demo's (the bundled scorer on the
synthetic side, 70/30 tokens, weighted selection) pointed at it. CPU seconds (user + sys, from
`/usr/bin/time -v`) are compared rather than wall time, which a shared machine's load distorts; the
best of `--runs` runs is kept. Both runs' data files must be the same rows, so the script also
checks that the row counts agree.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import pyarrow.parquet as pq
import yaml

from benchmarks.measured import time_v

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(corpus: str, rows_per_shard: int, path: str) -> str:
    doc = {
        "seed": 0,
        "corpora": [
            {"name": "human", "origin": "human", "paths": [os.path.join(corpus, "human", "*.parquet")],
             "id_column": "id"},
            {"name": "synthetic", "origin": "synthetic", "paths": [os.path.join(corpus, "synthetic", "*.parquet")],
             "id_column": "id", "defaults": {"generation": 1}},
        ],
        "quality": {"scorer": {"origins": ["synthetic"]}},
        "dedup": {"near": {"threshold": 0.8, "ngram": 5}},
        "mixture": {"unit": "tokens", "targets": {"human": 0.7, "synthetic": 0.3}, "validation_fraction": 0.05,
                    "selection": {"human": "random", "synthetic": "weighted"},
                    "guards": {"max_synthetic_fraction": 0.5, "max_generation": 1}},
        "output": {"rows_per_shard": rows_per_shard},
    }
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh)
    return path


def timed_run(config_path: str, out: str) -> dict:
    measured = time_v([sys.executable, "-m", "hybridmix.pipelines.cli", "run", config_path, "--output", out,
                       "--run-id", "shard-cost"], ROOT)
    data = os.path.join(out, "data")
    files = sorted(os.listdir(data))
    return {"cpu_seconds": measured["cpu_seconds"], "peak_rss_mb": measured["peak_rss_mb"],
            "data_files": len(files),
            "rows": sum(pq.ParquetFile(os.path.join(data, f)).metadata.num_rows for f in files)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=250_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    corpus = os.path.abspath(args.corpus)
    results = {}
    scratch = os.path.join(ROOT, "benchmarks", "work")  # git-ignored
    os.makedirs(scratch, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as work:
        for rows in (args.small, args.large):
            path = config(corpus, rows, os.path.join(work, f"shards-{rows}.yaml"))
            runs = [timed_run(path, os.path.join(work, f"out-{rows}-{i}")) for i in range(args.runs)]
            results[rows] = min(runs, key=lambda r: r["cpu_seconds"]) | {
                "cpu_seconds_all": [r["cpu_seconds"] for r in runs]}
    small, large = results[args.small], results[args.large]
    if small["rows"] != large["rows"]:
        raise SystemExit(f"the two runs wrote different rows: {small['rows']} and {large['rows']}")
    print(json.dumps({"small": small, "large": large,
                      "cpu_ratio": round(small["cpu_seconds"] / large["cpu_seconds"], 3)}))


if __name__ == "__main__":
    main()
