"""JSON Lines against Parquet on a real corpus: planning, reading, ingest and a whole run.

    .venv/bin/python -m benchmarks.jsonl_ingest [--copies 4] [--corpus PATH] [--json]

Writes the corpus (default: the AlpacaEval answers in ../shared/data, repeated `copies` times with
unique ids) as Parquet (zstd, row groups of 10,000 rows), JSON Lines, gzip JSON Lines and zstd JSON
Lines into a temporary folder, then measures each in one process; plan, read and ingest in CPU
seconds of this process (the best of 3: wall time on a shared 2-core machine says more about the
neighbours than about the code), the run in wall and CPU seconds:

- plan: `plan_inputs` (Parquet: footers; JSON Lines: the scan that counts, chunks and hashes)
- read: every work item through `iter_row_group` (decode or parse into Arrow, no validation)
- ingest: the same plus `build_documents` (validation, column mapping, normalization, hashes, tokens):
  the work of the ingest stage
- run: `hybridmix run` end to end on the in-process runner (default config), wall and CPU seconds
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from hybridmix.schemas.config import parse_config
from hybridmix.transforms.ingest import build_documents
from hybridmix.transforms.inputs import ReadSpec, iter_row_group, plan_inputs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CORPUS = os.path.join(ROOT, "..", "shared", "data", "synthetic", "alpaca_eval_outputs.parquet")
REPEATS = 3
FORMATS = {"parquet": "corpus.parquet", "jsonl": "corpus.jsonl", "jsonl.gz": "corpus.jsonl.gz",
           "jsonl.zst": "corpus.jsonl.zst"}


def _corpus_rows(path: str, copies: int) -> pa.Table:
    table = pq.read_table(path)
    parts = []
    for k in range(copies):
        ids = [f"{i}~{k}" for i in table.column("id").to_pylist()]
        parts.append(table.set_column(table.schema.get_field_index("id"), "id", pa.array(ids, pa.string())))
    return pa.concat_tables(parts)


def write_formats(table: pa.Table, folder: str) -> dict[str, str]:
    paths = {}
    for kind, name in FORMATS.items():
        sub = os.path.join(folder, kind)
        os.makedirs(sub, exist_ok=True)
        paths[kind] = os.path.join(sub, name)
    pq.write_table(table, paths["parquet"], compression="zstd", row_group_size=10_000)
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in table.to_pylist()).encode()
    with open(paths["jsonl"], "wb") as fh:
        fh.write(lines)
    with open(paths["jsonl.gz"], "wb") as fh:
        fh.write(gzip.compress(lines, compresslevel=6))
    with open(paths["jsonl.zst"], "wb") as fh:
        fh.write(zstandard.ZstdCompressor(level=3).compress(lines))
    return paths


def _config(folder: str) -> dict:
    return {
        "corpora": [{"name": "alpaca", "origin": "synthetic", "paths": ["corpus*"], "id_column": "id",
                     "prompt_column": "prompt", "columns": {"generator": "generator"},
                     "keep_columns": ["dataset", "prompt_id"]}],
        "mixture": {"targets": {"synthetic": 1.0}, "guards": {"max_synthetic_fraction": 1.0}},
    }


def _warm_up(folder: str) -> None:
    """Compile the text kernels (numba, on first use) before anything is timed."""
    config = parse_config(_config(folder))
    spec = ReadSpec(config.ingest, plan_inputs(config.ingest, folder), "bench")
    file = spec.plan.files[0]
    batch, parsed = next(iter_row_group(file, 0, 256, spec.corpus(file)))
    build_documents(batch, spec, file, 0, parsed=parsed)


def measure(folder: str, text_bytes: int) -> dict:
    config = parse_config(_config(folder))
    started = time.process_time()
    plan = plan_inputs(config.ingest, folder)
    plan_s = time.process_time() - started
    spec = ReadSpec(config.ingest, plan, "bench")
    (file,) = plan.files
    corpus = spec.corpus(file)
    timings = {}
    for step in ("read", "ingest"):
        best = float("inf")
        for _ in range(REPEATS):  # the best of a few: the machine is shared
            rows = 0
            started = time.process_time()
            for item, first in enumerate(file.row_group_starts):
                row = first
                for batch, parsed in iter_row_group(file, item, config.read_batch_rows, corpus):
                    if step == "ingest":
                        build_documents(batch, spec, file, row, parsed=parsed)
                    row += batch.num_rows
                rows += row - first
            best = min(best, time.process_time() - started)
            assert rows == file.rows
        timings[step] = best
    config_path = os.path.join(folder, "config.json")
    with open(config_path, "w") as fh:
        json.dump(_config(folder), fh)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    # The output goes beside the input folder: hybridmix refuses an output inside an input folder.
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "hybridmix"), "run", config_path,
                           "--output", folder + "-out", "--run-id", "bench"], capture_output=True, text=True)
    run_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run_cpu_s = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    if done.returncode != 0:
        raise RuntimeError(f"hybridmix run failed ({done.returncode}): {done.stderr}")
    return {
        "file_mb": round(os.path.getsize(file.path) / 1e6, 1),
        "work_items": len(file.row_group_rows),
        "plan_s": round(plan_s, 2),
        "read_s": round(timings["read"], 2),
        "read_rows_per_s": round(file.rows / timings["read"]),
        "ingest_s": round(timings["ingest"], 2),
        "ingest_rows_per_s": round(file.rows / timings["ingest"]),
        "ingest_text_mb_per_s": round(text_bytes / 1e6 / timings["ingest"], 1),
        "run_s": round(run_s, 1),
        "run_cpu_s": round(run_cpu_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=DEFAULT_CORPUS)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    table = _corpus_rows(args.corpus, args.copies)
    text_bytes = sum(len(t.encode()) for t in table.column("text").to_pylist() if t is not None)
    results = {"rows": table.num_rows, "text_mb": round(text_bytes / 1e6, 1), "formats": {}}
    with tempfile.TemporaryDirectory(prefix="hybridmix-jsonl-bench-") as tmp:
        paths = write_formats(table, tmp)
        _warm_up(os.path.dirname(paths["parquet"]))
        for kind, path in paths.items():
            results["formats"][kind] = measure(os.path.dirname(path), text_bytes)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{results['rows']:,} documents, {results['text_mb']} MB of text")
    keys = list(next(iter(results["formats"].values())))
    print("format     " + "  ".join(f"{k:>19}" for k in keys))
    for kind, row in results["formats"].items():
        print(f"{kind:<10} " + "  ".join(f"{row[k]:>19}" for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
