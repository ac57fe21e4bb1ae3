"""MinHash signature throughput: hybridmix's batch kernel vs datasketch per document.

    .venv/bin/python -m benchmarks.minhash_speed [--docs 16100] [--num-perm 256]

Same texts (the AlpacaEval answers of the shared data, or the bundled sample), same
num_perm, word 5-grams. hybridmix: raw text -> normalized words -> signatures, one batch
at a time. datasketch: per document, `MinHash(num_perm).update_batch(shingles)` with its
default SHA-1 hash, shingles built in Python the simplest way a user would.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
from datasketch import MinHash

from hybridmix.transforms import minhash
from hybridmix.transforms.text import analyze

HERE = os.path.dirname(os.path.abspath(__file__))
CANDIDATES = [os.path.join(HERE, "..", "..", "shared", "data", "synthetic", "alpaca_eval_outputs.parquet"),
              os.path.join(HERE, "..", "examples", "data", "synthetic_alpaca_eval.parquet")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=16_100)
    parser.add_argument("--num-perm", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8192)
    args = parser.parse_args()
    path = next(p for p in CANDIDATES if os.path.exists(p))
    texts = pq.read_table(path, columns=["text"]).column("text").combine_chunks()
    while len(texts) < args.docs:
        texts = pa.concat_arrays([texts, texts])
    texts = texts.slice(0, args.docs)
    def sign(batch: pa.Array):
        # What a run does: one compiled pass for normalized word hashes, then MinHash.
        analysis = analyze(batch)
        return minhash.signatures(analysis.word_hashes, analysis.word_offsets, 5, args.num_perm, 1)

    sign(texts.slice(0, 10))  # compile once, outside the clock

    started = time.perf_counter()
    for i in range(0, len(texts), args.batch):
        sign(texts.slice(i, args.batch))
    ours = len(texts) / (time.perf_counter() - started)

    sample = texts.slice(0, min(3000, len(texts))).to_pylist()
    started = time.perf_counter()
    for text in sample:
        words = text.lower().split()
        m = MinHash(num_perm=args.num_perm)
        m.update_batch([" ".join(words[i:i + 5]).encode() for i in range(max(1, len(words) - 4))])
    theirs = len(sample) / (time.perf_counter() - started)

    mean_bytes = sum(len(t.encode()) for t in sample) / len(sample)
    print(json.dumps({
        "texts": path, "documents": len(texts), "mean_bytes": round(mean_bytes), "num_perm": args.num_perm,
        "hybridmix_docs_per_s": round(ours), "datasketch_update_batch_docs_per_s": round(theirs),
        "speedup": round(ours / theirs, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
