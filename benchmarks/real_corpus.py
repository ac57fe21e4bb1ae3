"""The real-text benchmark corpus: documents of real text from ../shared/data at 200k or 1M documents.

    .venv/bin/python -m benchmarks.real_corpus --docs 200000 --out benchmarks/work/real200k
    .venv/bin/python -m benchmarks.compare benchmarks/work/real200k

Generated corpora hide what real text costs (long answers, markdown, code, lists, many languages of
punctuation). This one is made only of the shared data's text: the 16,100 AlpacaEval answers and
1,856 Wikipedia paragraphs themselves, documents of 1-4 of their paragraphs beyond that (answer
paragraphs on the synthetic side, Wikipedia paragraphs on the human side), and copies: 5 % exact
copies (whitespace and case changed, so only normalization finds them) and 5 % near copies (one
word in a hundred replaced or dropped), as `benchmarks.make_corpus` makes for generated text.
Human documents are 30 % of the corpus. Deterministic from `--seed`.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import real_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUMAN_SHARE = 0.3


def _side(originals: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """`n` documents: the originals first, then documents composed of their paragraphs."""
    if n <= len(originals):
        return [originals[i] for i in rng.choice(len(originals), size=n, replace=False)]
    pool = real_text.paragraphs(originals)
    return originals + real_text.compose(pool, real_text.sizes(rng, n - len(originals)), rng)


def _copies(texts: list[str], share: float, rng: np.random.Generator) -> list[str]:
    n = int(len(texts) * share)
    exact = [f"  {texts[i].upper()}\n" for i in rng.choice(len(texts), size=n, replace=False)]
    near = [real_text.edit(texts[i], rng) for i in rng.choice(len(texts), size=n, replace=False)]
    return exact + near


def build(shared: str, docs: int, out: str, seed: int = 7, rows_per_file: int = 50_000) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    originals = {"human": real_text.wikipedia(shared), "synthetic": real_text.answers(shared)}
    wanted = {"human": round(docs * HUMAN_SHARE), "synthetic": docs - round(docs * HUMAN_SHARE)}
    written = {}
    for side, n in wanted.items():
        base = _side(originals[side], round(n / 1.1), rng)
        texts = base + _copies(base, 0.05, rng)
        texts = [texts[i] for i in rng.permutation(len(texts))]
        folder = os.path.join(out, side)
        os.makedirs(folder, exist_ok=True)
        for part, start in enumerate(range(0, len(texts), rows_per_file)):
            chunk = texts[start:start + rows_per_file]
            ids = [f"{side[0]}{start + k:07d}" for k in range(len(chunk))]
            pq.write_table(pa.table({"id": ids, "text": chunk}), os.path.join(folder, f"part-{part:03d}.parquet"))
        written[side] = len(texts)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(build(args.shared, args.docs, args.out, args.seed))


if __name__ == "__main__":
    main()
