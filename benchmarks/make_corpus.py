"""Generate a large, deterministic corpus for benchmarks.

    .venv/bin/python -m benchmarks.make_corpus --docs 1000000 --out benchmarks/work/corpus_1m

Texts are drawn from the word frequencies and paragraph lengths of a real corpus (the
bundled sample in examples/data by default), so tokenization, hashing and MinHash see
realistic input. A known share of documents are exact copies (some re-cased or re-spaced)
and near copies (a few words replaced) of earlier ones; `truth.json` records how many.
Half the documents are written as a human corpus, half as a synthetic one, in files of
`--rows-per-file` rows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOURCES = [
    os.path.join(HERE, "..", "examples", "data", "human_wikipedia.parquet"),
    os.path.join(HERE, "..", "examples", "data", "synthetic_alpaca_eval.parquet"),
]
_TOKEN = re.compile(r"\w+|[^\w\s]")


def word_model(paths: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vocabulary, probabilities, observed document lengths in tokens) of real texts."""
    counts: dict[str, int] = {}
    lengths = []
    for path in paths:
        for text in pq.read_table(path, columns=["text"]).column("text").to_pylist():
            if not text:
                continue
            tokens = _TOKEN.findall(text)
            lengths.append(len(tokens))
            for tok in tokens:
                counts[tok] = counts.get(tok, 0) + 1
    vocab = np.array(sorted(counts), dtype=object)
    freq = np.array([counts[w] for w in vocab], np.float64)
    return vocab, freq / freq.sum(), np.array(lengths, np.int64)


def _join(tokens: list[str]) -> str:
    out = " ".join(tokens)
    return out.replace(" ,", ",").replace(" .", ".").replace(" '", "'")


def generate(n_docs: int, seed: int, mean_bytes: int, exact_share: float, near_share: float,
             sources: list[str]) -> tuple[list[str], dict]:
    rng = np.random.default_rng(seed)
    vocab, prob, lengths = word_model(sources)
    # Scale real lengths so the mean document is about `mean_bytes` long (~5.7 bytes per token).
    scale = mean_bytes / (5.7 * lengths.mean())
    texts: list[str] = []
    kinds = rng.random(n_docs)
    n_tokens = np.maximum(3, (rng.choice(lengths, size=n_docs) * scale).astype(np.int64))
    # One draw for every token of a block of documents: a draw per document is 10x slower.
    block, drawn, ends = 50_000, np.zeros(0, np.int32), np.zeros(0, np.int64)
    exact = near = 0
    for i in range(n_docs):
        if i % block == 0:
            sizes = n_tokens[i:i + block]
            drawn = rng.choice(len(vocab), size=int(sizes.sum()), p=prob).astype(np.int32)
            ends = np.cumsum(sizes)
        if i > 100 and kinds[i] < exact_share:
            src = texts[int(rng.integers(0, i))]
            texts.append(src.upper() if rng.random() < 0.3 else src + "  ")
            exact += 1
        elif i > 100 and kinds[i] < exact_share + near_share:
            words = texts[int(rng.integers(0, i))].split(" ")
            for j in rng.choice(len(words), size=max(1, len(words) // 100), replace=False):
                words[j] = str(vocab[rng.choice(len(vocab), p=prob)])
            texts.append(" ".join(words))
            near += 1
        else:
            j = i % block
            texts.append(_join(list(vocab[drawn[ends[j] - n_tokens[i]:ends[j]]])))
    return texts, {"documents": n_docs, "exact_copies": exact, "near_copies": near, "seed": seed}


def write(texts: list[str], out: str, rows_per_file: int, truth: dict) -> None:
    half = len(texts) // 2
    for origin, part in (("human", texts[:half]), ("synthetic", texts[half:])):
        folder = os.path.join(out, origin)
        os.makedirs(folder, exist_ok=True)
        offset = 0 if origin == "human" else half
        for k, start in enumerate(range(0, len(part), rows_per_file)):
            chunk = part[start:start + rows_per_file]
            ids = [f"{origin[0]}{offset + start + j:08d}" for j in range(len(chunk))]
            table = pa.table({"id": ids, "text": chunk, "generator": [None if origin == "human" else "gen"] * len(chunk)})
            pq.write_table(table, os.path.join(folder, f"part-{k:05d}.parquet"), compression="zstd",
                           row_group_size=10_000)
    with open(os.path.join(out, "truth.json"), "w") as fh:
        json.dump({**truth, "bytes": sum(len(t.encode()) for t in texts)}, fh, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mean-bytes", type=int, default=1000)
    parser.add_argument("--exact-share", type=float, default=0.05)
    parser.add_argument("--near-share", type=float, default=0.05)
    parser.add_argument("--rows-per-file", type=int, default=50_000)
    parser.add_argument("--source", action="append", help="Parquet files with a text column (default: examples/data)")
    args = parser.parse_args()
    started = time.perf_counter()
    texts, truth = generate(args.docs, args.seed, args.mean_bytes, args.exact_share, args.near_share,
                            args.source or DEFAULT_SOURCES)
    write(texts, args.out, args.rows_per_file, truth)
    print(json.dumps({**truth, "seconds": round(time.perf_counter() - started, 1), "out": args.out}))


if __name__ == "__main__":
    main()
