"""Real text from ../shared/data at a benchmark's scale: the answers and paragraphs themselves,
documents made of 1-4 real paragraphs, and light-edit near copies.

Used by `benchmarks.real_corpus` (the headline corpus) and `benchmarks.incremental` (daily batches).
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq


def answers(shared: str) -> list[str]:
    """The 16,100 AlpacaEval answers of 20 models."""
    return pq.read_table(os.path.join(shared, "synthetic", "alpaca_eval_outputs.parquet"),
                         columns=["text"]).column("text").to_pylist()


def wikipedia(shared: str) -> list[str]:
    """The 1,856 Wikipedia paragraphs."""
    return pq.read_table(os.path.join(shared, "human", "wikipedia.parquet"), columns=["text"]).column("text").to_pylist()


def paragraphs(texts: list[str], min_chars: int = 80) -> list[str]:
    return [p.strip() for t in texts for p in t.split("\n\n") if len(p.strip()) >= min_chars]


def sizes(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Paragraphs per document: 1 to 4."""
    return rng.integers(1, 5, size=shape)


def compose(pool: list[str], counts: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Documents of `counts` paragraphs each, drawn from `pool`: real text at any scale, whose
    documents share a paragraph now and then but are not near copies of each other."""
    return ["\n\n".join(pool[j] for j in rng.choice(len(pool), size=int(k), replace=False)) for k in counts]


def edit(text: str, rng: np.random.Generator) -> str:
    """A light edit: one word in a hundred (at least one) replaced or dropped."""
    words = text.split(" ")
    for _ in range(max(1, len(words) // 100)):
        i = int(rng.integers(len(words)))
        if rng.random() < 0.5:
            words[i] = "indeed"
        else:
            del words[i]
    return " ".join(words)
