"""hybridmix end to end, side by side with the Beam floor, rensa and datatrove, on one corpus.

    .venv/bin/pip install -e '.[bench]'          # rensa, pyinstrument
    bash benchmarks/setup_datatrove.sh            # datatrove, in a virtualenv of its own
    .venv/bin/python -m benchmarks.make_corpus --docs 205000 --mean-bytes 1400 --out benchmarks/work/c205k
    .venv/bin/python -m benchmarks.compare benchmarks/work/c205k [--workers 2] [--kernel-threads 1]

A corpus folder holds human/*.parquet and synthetic/*.parquet with `id` and `text` columns
(`benchmarks.make_corpus` writes one; `--shared` converts ../shared/data). Every tool reads the
same files with the same dedup parameters: word 5-grams, 256 permutations, 32 bands x 8 rows,
threshold 0.8. Each runs in a fresh process; the table gives wall time, documents/s, MB/s of
text, peak RSS, and the ratios the targets are stated in.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NUM_PERM, BANDS, ROWS, THRESHOLD = 256, 32, 8, 0.8


def corpus_size(corpus: str) -> tuple[int, int]:
    docs = text_bytes = 0
    for path in glob.glob(os.path.join(corpus, "*", "*.parquet")):
        col = pq.read_table(path, columns=["text"]).column("text")
        docs += len(col)
        text_bytes += int(pc.sum(pc.binary_length(col)).as_py() or 0)
    return docs, text_bytes


def hybridmix_config(corpus: str, path: str) -> str:
    # Paths in a config resolve against the config's folder, not the working directory.
    corpus = os.path.abspath(corpus)
    config = {
        "corpora": [
            {"name": "human", "origin": "human", "paths": [os.path.join(corpus, "human", "*.parquet")],
             "id_column": "id"},
            {"name": "synthetic", "origin": "synthetic", "id_column": "id",
             "paths": [os.path.join(corpus, "synthetic", "*.parquet")]},
        ],
        "dedup": {"near": {"num_perm": NUM_PERM, "bands": BANDS, "rows": ROWS, "threshold": THRESHOLD}},
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
        "output": {"rows_per_shard": 250_000},
    }
    with open(path, "w") as fh:
        yaml.safe_dump(config, fh)
    return path


def _run(cmd: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:], "seconds": round(wall, 2)}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(wall, 2)
    return result


def compare(corpus: str, work: str, workers: int, skip: set[str], kernel_threads: int | None = None) -> dict:
    os.makedirs(work, exist_ok=True)
    docs, text_bytes = corpus_size(corpus)
    beam_flags = [] if workers <= 1 else [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    python = sys.executable
    runs: dict[str, dict] = {}
    if "floor" not in skip:
        shutil.rmtree(os.path.join(work, "floor"), ignore_errors=True)
        runs["floor"] = _run([python, "-m", "benchmarks.measured", "floor", corpus, os.path.join(work, "floor"),
                              *beam_flags])
    if "hybridmix" not in skip:
        config = hybridmix_config(corpus, os.path.join(work, "hybridmix.yaml"))
        runs["hybridmix"] = _run([python, "-m", "benchmarks.measured", "hybridmix", "run", config, "--output",
                                  os.path.join(work, "hybridmix-out"), "--force", *beam_flags,
                                  *([f"--kernel-threads={kernel_threads}"] if kernel_threads else [])])
        manifest = os.path.join(work, "hybridmix-out", "manifest.json")
        if os.path.exists(manifest):
            totals = json.load(open(manifest))["totals"]
            runs["hybridmix"]["removed_as_duplicates"] = totals["exact_duplicates"] + totals["near_duplicates"]
    if "rensa" not in skip:
        runs["rensa"] = _run([python, "-m", "benchmarks.measured", "rensa", corpus, str(NUM_PERM), str(BANDS),
                              str(THRESHOLD), "5"])
    datatrove_python = os.path.join(HERE, "work", "venv-datatrove", "bin", "python")
    if "datatrove" not in skip:
        if os.path.exists(datatrove_python):
            runs["datatrove"] = _run([datatrove_python, os.path.join(HERE, "datatrove_dedup.py"), corpus,
                                      os.path.join(work, "datatrove")])
        else:
            runs["datatrove"] = {"error": ["run benchmarks/setup_datatrove.sh first"]}
    for run in runs.values():
        if "seconds" in run and "error" not in run:
            run["docs_per_s"] = round(docs / run["seconds"])
            run["text_mb_per_s"] = round(text_bytes / 2**20 / run["seconds"], 2)
    ratios = {}
    hm = runs.get("hybridmix", {}).get("seconds")
    if hm:
        for other in ("floor", "rensa", "datatrove"):
            seconds = runs.get(other, {}).get("seconds")
            if seconds and "error" not in runs[other]:
                ratios[f"{other}_time / hybridmix_time"] = round(seconds / hm, 2)
    return {"corpus": corpus, "documents": docs, "text_mb": round(text_bytes / 2**20, 1), "workers": workers,
            "kernel_threads": kernel_threads or "default",
            "params": {"ngram": 5, "num_perm": NUM_PERM, "bands": BANDS, "rows": ROWS, "threshold": THRESHOLD},
            "runs": runs, "ratios": ratios}


def table(result: dict) -> str:
    lines = [f"{result['documents']:,} documents, {result['text_mb']} MB of text, workers={result['workers']}, "
             f"hybridmix kernel threads={result['kernel_threads']}",
             f"{'tool':<11} {'seconds':>8} {'docs/s':>9} {'MB/s':>7} {'peak RSS MB':>12}  removed"]
    for tool, run in result["runs"].items():
        if "error" in run:
            lines.append(f"{tool:<11} error: {' '.join(run['error'])}")
            continue
        lines.append(f"{tool:<11} {run['seconds']:>8.2f} {run['docs_per_s']:>9,} {run['text_mb_per_s']:>7.2f} "
                     f"{run['peak_rss_mb']:>12,.0f}  {run.get('removed_as_duplicates', '')}")
    for name, value in result["ratios"].items():
        lines.append(f"{name}: {value}")
    return "\n".join(lines)


def shared_corpus(data: str, out: str) -> str:
    """../shared/data as a corpus folder (id and text columns)."""
    for origin, path in (("human", os.path.join(data, "human", "wikipedia.parquet")),
                         ("synthetic", os.path.join(data, "synthetic", "alpaca_eval_outputs.parquet"))):
        os.makedirs(os.path.join(out, origin), exist_ok=True)
        pq.write_table(pq.read_table(path, columns=["id", "text"]), os.path.join(out, origin, "part-00000.parquet"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", help="corpus folder (human/*.parquet, synthetic/*.parquet)")
    parser.add_argument("--shared", help="build the corpus from this ../shared/data folder instead")
    parser.add_argument("--work", default=os.path.join(HERE, "work", "compare"))
    parser.add_argument("--workers", type=int, default=1, help="local Beam workers (multi_processing when > 1)")
    parser.add_argument("--kernel-threads", type=int,
                        help="hybridmix run --kernel-threads (default: hybridmix's, every core for one process)")
    parser.add_argument("--skip", default="", help="comma-separated tools to leave out")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    corpus = shared_corpus(args.shared, os.path.join(args.work, "shared-corpus")) if args.shared else args.corpus
    result = compare(corpus, args.work, args.workers, set(filter(None, args.skip.split(","))), args.kernel_threads)
    print(table(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
