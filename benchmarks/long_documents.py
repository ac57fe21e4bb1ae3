"""Long documents: a corpus of books, end to end, and whether every byte of their text is written.

    .venv/bin/python -m benchmarks.long_documents [--books 6000] [--kb 400] [--format jsonl.gz|parquet]

Generated books (words drawn from a vocabulary of 20,000, deterministic from `--seed`), one human
corpus, default config: a gzip JSON Lines file is one chunk read from start to end; a Parquet file
has row groups of 200 books. Reports wall and CPU seconds and peak RSS (`/usr/bin/time -v`), the
data files and row groups written, the largest row group's text, and checks that data/ holds every
book with all of its text. Books once stopped a run (a read batch or a row group past what one Arrow
array holds) and took 12.6 GB for 2.8 GB of text; see the README, "Benchmarks".
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from benchmarks.measured import time_v

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORD_BYTES = 7  # "w01234 "


def books(n: int, kb: int, seed: int):
    """(id, text) of `n` books of about `kb` KB each."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i:05d}" for i in range(20_000)], dtype=object)
    words = kb * 1000 // WORD_BYTES
    for i in range(n):
        yield f"book-{i}", " ".join(vocab[rng.integers(0, len(vocab), words)])


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def write_corpus(folder: str, n: int, kb: int, fmt: str, seed: int) -> tuple[int, dict[str, str]]:
    """Write the books; returns the bytes of their text and each book's digest."""
    os.makedirs(folder, exist_ok=True)
    total, digests = 0, {}
    if fmt == "jsonl.gz":
        with gzip.open(os.path.join(folder, "books.jsonl.gz"), "wb", compresslevel=1) as fh:
            for doc_id, text in books(n, kb, seed):
                total += len(text.encode())
                digests[doc_id] = _digest(text)
                fh.write(json.dumps({"id": doc_id, "text": text}).encode() + b"\n")
        return total, digests
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    with pq.ParquetWriter(os.path.join(folder, "books.parquet"), schema) as writer:
        rows: list[tuple[str, str]] = []
        for doc_id, text in books(n, kb, seed):
            rows.append((doc_id, text))
            total += len(text.encode())
            digests[doc_id] = _digest(text)
            if len(rows) == 200:
                writer.write_table(pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows]}, schema=schema))
                rows = []
        if rows:
            writer.write_table(pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows]}, schema=schema))
    return total, digests


def config(corpus: str, path: str) -> str:
    doc = {"seed": 0,
           "corpora": [{"name": "books", "origin": "human", "paths": [os.path.join(corpus, "books.*")],
                        "id_column": "id", "defaults": {"license": "generated"}}],
           "mixture": {"unit": "tokens", "targets": {"human": 1.0}}}
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh)
    return path


def written(out: str) -> tuple[dict, dict[str, str]]:
    """data/'s files, row groups, rows and text bytes, the largest row group's text; each row's digest."""
    data = os.path.join(out, "data")
    files = sorted(os.listdir(data))
    rows = text = groups = largest = 0
    digests = {}
    for name in files:
        pf = pq.ParquetFile(os.path.join(data, name))
        for g in range(pf.num_row_groups):
            table = pf.read_row_group(g, columns=["doc_id", "text"])
            size = int(pc.sum(pc.binary_length(table.column("text"))).as_py() or 0)
            rows, text, groups, largest = rows + table.num_rows, text + size, groups + 1, max(largest, size)
            for doc_id, value in zip(table.column("doc_id").to_pylist(), table.column("text").to_pylist()):
                digests[doc_id] = _digest(value)
    return {"data_files": len(files), "row_groups": groups, "rows": rows, "text_bytes": text,
            "largest_row_group_text_bytes": largest}, digests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=6000)
    parser.add_argument("--kb", type=int, default=400)
    parser.add_argument("--format", choices=["jsonl.gz", "parquet"], default="jsonl.gz")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    scratch = os.path.join(ROOT, "benchmarks", "work")  # git-ignored
    os.makedirs(scratch, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as work:
        corpus = os.path.join(work, "corpus")
        text_bytes, expected = write_corpus(corpus, args.books, args.kb, args.format, args.seed)
        out = os.path.join(work, "out")
        measured = time_v([sys.executable, "-m", "hybridmix.pipelines.cli", "run",
                           config(corpus, os.path.join(work, "books.yaml")), "--output", out], ROOT)
        found, digests = written(out)
    result = {"books": args.books, "format": args.format, "input_text_bytes": text_bytes, **measured, **found,
              "every_byte_written": found["rows"] == args.books and digests == expected}
    print(json.dumps(result))
    if not result["every_byte_written"]:
        raise SystemExit("data/ does not hold every book whole")


if __name__ == "__main__":
    main()
