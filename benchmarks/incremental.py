"""A week of daily batches: the day-7 run against days 1-6 (`dedup.against`) vs one full run over all seven.

    .venv/bin/python -m benchmarks.incremental [--shared ../shared/data] [--per-day 30000] [--runs 2]

Each day delivers new documents made of real text from ../shared/data (paragraphs of AlpacaEval
answers of 20 models and of Wikipedia articles; or with --per-day 0 the answers themselves), plus
about 10 % re-delivered from earlier days (same text, new ids) and about 5 % near copies of earlier
documents (light edits: one word in a hundred replaced or dropped). Days 1-6 are run one after another, each
against all earlier outputs; day 7 runs against days 1-6 and is timed, as is one full run over the
seven days' files. Costs are CPU seconds (user + sys, `/usr/bin/time -v`) and wall seconds, best
of `--runs`.

Dedup decisions for the day-7 documents are compared with the full run's. A day-7 document is a
duplicate in the incremental run when it is in its duplicates/; in the full run when it is in
duplicates/, or it was kept for a cluster that holds a document of an earlier day (the incremental
run keeps what earlier days published, the full run may keep either; both say the text is not new).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from benchmarks import real_text
from benchmarks.measured import time_v

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAYS = 7


def _fresh(shared: str, per_day: int, rng: np.random.Generator) -> list[list[str]]:
    """Each day's new documents. per_day 0: the 16,100 answers split into seven days. Otherwise
    `per_day` documents a day, each 1-4 paragraphs drawn from the shared corpora (about 60,000): the
    same real text at the scale a daily delivery has, without copies beyond those made below."""
    if not per_day:
        texts = real_text.answers(shared)
        return [[texts[i] for i in part] for part in np.array_split(rng.permutation(len(texts)), DAYS)]
    pool = real_text.paragraphs(real_text.answers(shared) + real_text.wikipedia(shared))
    counts = real_text.sizes(rng, DAYS, per_day)
    return [real_text.compose(pool, day, rng) for day in counts]


def make_days(shared: str, folder: str, per_day: int, seed: int = 7) -> list[str]:
    """Seven day files; returns their paths."""
    rng = np.random.default_rng(seed)
    fresh = _fresh(shared, per_day, rng)
    delivered: list[str] = []
    paths = []
    for day in range(1, DAYS + 1):
        rows = list(fresh[day - 1])
        if delivered:
            n = len(rows)
            rows += [delivered[i] for i in rng.choice(len(delivered), size=n // 10, replace=False)]
            rows += [real_text.edit(delivered[i], rng) for i in rng.choice(len(delivered), size=n // 20, replace=False)]
        delivered.extend(fresh[day - 1])
        path = os.path.join(folder, f"day{day}.parquet")
        pq.write_table(pa.table({"id": [f"day{day}-{k:06d}" for k in range(len(rows))], "text": rows}), path,
                       row_group_size=2048)
        paths.append(path)
    return paths


def _config(folder: str, name: str, paths: list[str], against: list[str]) -> str:
    doc = {
        "seed": 0,
        "corpora": [{"name": "answers", "origin": "synthetic", "paths": paths, "id_column": "id",
                     "defaults": {"generation": 1}}],
        "quality": {"scorer": {"origins": ["synthetic"]}},
        "dedup": {"against": against},
        # Everything that survives filters and dedup is published, so each day's index holds it.
        "mixture": {"unit": "documents", "targets": {"synthetic": 1.0}},
        "output": {"rows_per_shard": 100_000},
    }
    path = os.path.join(folder, f"{name}.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh)
    return path


def _timed(config: str, out: str) -> dict:
    return time_v([sys.executable, "-m", "hybridmix.pipelines.cli", "run", config, "--output", out, "--force", "-q"],
                  ROOT)


def _best(config: str, out: str, runs: int) -> dict:
    results = [_timed(config, out) for _ in range(runs)]
    best = min(results, key=lambda r: r["cpu_seconds"])
    return best | {"cpu_seconds_all": [r["cpu_seconds"] for r in results]}


def _rows(out: str, folder: str, columns: list[str]) -> list[dict]:
    files = sorted(glob.glob(os.path.join(out, folder, "*.parquet")))
    return [r for f in files for r in pq.read_table(f, columns=columns).to_pylist()]


def decisions(incremental: str, full: str) -> dict:
    """Precision and recall of the incremental run's duplicates among day-7 documents, against the full run's."""
    day7 = lambda doc: doc.startswith(f"day{DAYS}-")  # noqa: E731
    inc = {r["doc_id"] for r in _rows(incremental, "duplicates", ["doc_id"]) if day7(r["doc_id"])}
    full_dups = _rows(full, "duplicates", ["doc_id", "cluster"])
    earlier_in = {r["cluster"] for r in full_dups if not day7(r["doc_id"])}
    ref = {r["doc_id"] for r in full_dups if day7(r["doc_id"])}
    ref |= {c for c in earlier_in if day7(c)}
    both = len(inc & ref)
    return {"day7_duplicates_incremental": len(inc), "day7_duplicates_full": len(ref),
            "precision": round(both / len(inc), 4) if inc else 1.0,
            "recall": round(both / len(ref), 4) if ref else 1.0}


def index_bytes_per_document(out: str) -> float:
    files = glob.glob(os.path.join(out, "index", "*.parquet"))
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return round(sum(os.path.getsize(f) for f in files) / max(rows, 1), 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--per-day", type=int, default=30_000,
                        help="new documents a day, made of 1-4 real paragraphs each (default 30,000); 0: the "
                             "16,100 answers as they are, split into seven days")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--keep", help="keep the days and outputs in this folder")
    args = parser.parse_args(argv)
    scratch = os.path.join(ROOT, "benchmarks", "work")  # git-ignored
    os.makedirs(scratch, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        work = os.path.abspath(args.keep) if args.keep else tmp
        os.makedirs(work, exist_ok=True)
        paths = make_days(args.shared, work, args.per_day)
        outs = [os.path.join(work, f"out-day{d}") for d in range(1, DAYS + 1)]
        for day in range(1, DAYS):
            _timed(_config(work, f"day{day}", [paths[day - 1]], outs[:day - 1]), outs[day - 1])
        day7 = _best(_config(work, "day7", [paths[-1]], outs[:-1]), outs[-1], args.runs)
        full_out = os.path.join(work, "out-full")
        full = _best(_config(work, "full", paths, []), full_out, args.runs)
        documents = [pq.ParquetFile(p).metadata.num_rows for p in paths]
        result = {
            "documents_per_day": documents,
            "documents_total": sum(documents),
            "day7_incremental": day7,
            "full_run": full,
            "cpu_ratio": round(day7["cpu_seconds"] / full["cpu_seconds"], 3),
            "wall_ratio": round(day7["wall_seconds"] / full["wall_seconds"], 3),
            "index_bytes_per_document": index_bytes_per_document(outs[0]),
            **decisions(outs[-1], full_out),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
