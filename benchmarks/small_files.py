"""A corpus published as thousands of small files: wall time, CPU time and peak RSS of one run.

    .venv/bin/python -m benchmarks.small_files --files 20000 [--format parquet|jsonl] [--runs 2]
        [--shared ../shared/data] [--python OTHER/.venv/bin/python ...]

Writes `--files` Parquet (or JSON Lines) files of 2 or 3 rows each of real text (the AlpacaEval answers of
../shared/data, cycled as needed, each copy with its own id) as the synthetic corpus, and the
1,856 Wikipedia paragraphs as one human file, then runs the default config on them (70/30
tokens, the bundled scorer on the synthetic side, exact and near dedup) `--runs` times. What a
run pays per input file (opening, reading, validating it, and carrying it through the steps
after) is what this measures: the documents are few. With `--python` (once or more), each round
runs every interpreter given, in turn (another checkout's venv: the code before a change,
alternating with it on the same corpus), and the output files of every run must be the same.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from benchmarks import real_text
from benchmarks.measured import time_v

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(shared: str, files: int, out: str, fmt: str = "parquet") -> int:
    """The corpus in `out` (synthetic/part-NNNNN.parquet or .jsonl, human/wikipedia.parquet); its rows."""
    answers = real_text.answers(shared)
    at = 0
    os.makedirs(os.path.join(out, "synthetic"), exist_ok=True)
    for f in range(files):
        rows = [{"id": f"a{at + r}", "text": answers[(at + r) % len(answers)]} for r in range(2 + f % 2)]
        path = os.path.join(out, "synthetic", f"part-{f:05d}.{fmt}")
        if fmt == "jsonl":
            with open(path, "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(row) + "\n" for row in rows)
        else:
            pq.write_table(pa.Table.from_pylist(rows), path)
        at += len(rows)
    human = real_text.wikipedia(shared)
    os.makedirs(os.path.join(out, "human"), exist_ok=True)
    pq.write_table(pa.Table.from_pylist([{"id": f"w{i}", "text": t} for i, t in enumerate(human)]),
                   os.path.join(out, "human", "wikipedia.parquet"))
    return at + len(human)


def config(corpus: str, path: str, fmt: str = "parquet") -> str:
    doc = {
        "seed": 0,
        "corpora": [
            {"name": "wikipedia", "origin": "human", "paths": [os.path.join(corpus, "human", "*.parquet")],
             "id_column": "id"},
            {"name": "answers", "origin": "synthetic", "paths": [os.path.join(corpus, "synthetic", f"*.{fmt}")],
             "id_column": "id"},
        ],
        "mixture": {"unit": "tokens", "targets": {"human": 0.7, "synthetic": 0.3},
                    "guards": {"max_synthetic_fraction": 0.5}},
    }
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--format", choices=("parquet", "jsonl"), default="parquet")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--python", action="append", help="an interpreter with hybridmix installed (default: this one)")
    args = parser.parse_args(argv)
    pythons = args.python or [sys.executable]
    scratch = os.path.join(ROOT, "benchmarks", "work")  # git-ignored
    os.makedirs(scratch, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as work:
        rows = build(args.shared, args.files, os.path.join(work, "corpus"), args.format)
        path = config(os.path.join(work, "corpus"), os.path.join(work, "small_files.yaml"), args.format)
        runs, digests = [], set()
        for i in range(args.runs):
            for python in pythons:
                out = os.path.join(work, f"out-{i}-{len(runs)}")
                runs.append({"python": python} | time_v(
                    [python, "-m", "hybridmix.pipelines.cli", "run", path, "--output", out, "-q"], ROOT))
                digests.add(_digest(out))
    if len(digests) != 1:
        raise SystemExit(f"the runs wrote different files: {len(digests)} different outputs")
    print(json.dumps({"files": args.files + 1, "format": args.format, "rows": rows, "runs": runs}))


def _digest(out: str) -> str:
    """SHA-256 over every Parquet file of an output, by path: two runs writing the same bytes agree."""
    h = hashlib.sha256()
    for folder, _, names in sorted(os.walk(out)):
        for name in sorted(n for n in names if n.endswith(".parquet")):
            path = os.path.join(folder, name)
            h.update(os.path.relpath(path, out).encode())
            with open(path, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


if __name__ == "__main__":
    main()
