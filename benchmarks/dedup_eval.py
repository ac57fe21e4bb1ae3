"""Ground truth for near-dedup quality: exact Jaccard of word n-gram sets, all pairs, brute force.

Used by the dedup-quality test (small fixture) and by `dedup_quality.py` (shared corpora).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from hybridmix.transforms.text import analyze


def shingle_sets(texts: list[str], ngram: int) -> list[np.ndarray]:
    """Each text's set of word n-grams as sorted 64-bit keys (same words as the pipeline uses).

    Texts with fewer than `ngram` words have one shingle of all their words, as in the pipeline.
    """
    analysis = analyze(pa.array(texts, pa.string()))
    words, offsets = analysis.word_hashes.astype(np.uint64), analysis.word_offsets
    sets = []
    with np.errstate(over="ignore"):
        for i in range(len(texts)):
            w = words[offsets[i]:offsets[i + 1]]
            if len(w) == 0:
                sets.append(np.zeros(0, np.uint64))
                continue
            n = min(ngram, len(w))
            key = np.zeros(len(w) - n + 1, np.uint64)
            for k in range(n):
                key = key * np.uint64(0x100000001B3) + (w[k:len(w) - n + 1 + k] ^ np.uint64(0x9E3779B97F4A7C15))
            sets.append(np.unique(key))
    return sets


def similar_pairs(sets: list[np.ndarray], min_jaccard: float) -> list[tuple[int, int, float]]:
    """Every pair (i < j) whose exact Jaccard similarity is at least `min_jaccard`."""
    vocab = np.unique(np.concatenate([s for s in sets if len(s)] or [np.zeros(0, np.uint64)]))
    rows = np.concatenate([np.full(len(s), i) for i, s in enumerate(sets)] or [np.zeros(0, int)])
    cols = np.concatenate([np.searchsorted(vocab, s) for s in sets] or [np.zeros(0, int)])
    m = sp.csr_matrix((np.ones(len(rows), np.int32), (rows, cols)), shape=(len(sets), len(vocab)))
    inter = (m @ m.T).tocoo()
    sizes = np.array([len(s) for s in sets])
    keep = inter.row < inter.col
    i, j, both = inter.row[keep], inter.col[keep], inter.data[keep]
    jac = both / (sizes[i] + sizes[j] - both)
    sel = jac >= min_jaccard - 1e-12
    return list(zip(i[sel].tolist(), j[sel].tolist(), jac[sel].tolist()))


@dataclass(frozen=True)
class DedupQuality:
    documents: int
    true_pairs: int  # pairs at or above the threshold
    docs_with_partner: int
    recall_all: float  # share of those documents in one cluster with every partner
    recall_any: float  # share in one cluster with at least one partner
    removed_near: int
    precision: float  # share of near-removed documents with a true partner >= threshold - 0.1
    missed_examples: list[tuple[str, str, float]]

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "missed_examples"}


def evaluate(doc_ids: list[str], texts: list[str], ngram: int, threshold: float,
             kept_of: dict[str, str], near_removed: set[str]) -> DedupQuality:
    """Compare a dedup result with brute force.

    kept_of: doc_id -> doc_id kept in its place, for every removed document (exact or near);
    documents not in it represent themselves.
    """
    sets = shingle_sets(texts, ngram)
    loose = similar_pairs(sets, threshold - 0.1)
    cluster = [kept_of.get(d, d) for d in doc_ids]
    partners: dict[int, list[int]] = {}
    loose_partner = set()
    true_pairs = 0
    missed = []
    for i, j, jac in loose:
        loose_partner.update((i, j))
        if jac >= threshold:
            true_pairs += 1
            partners.setdefault(i, []).append(j)
            partners.setdefault(j, []).append(i)
            if cluster[i] != cluster[j] and len(missed) < 20:
                missed.append((doc_ids[i], doc_ids[j], round(jac, 4)))
    all_ok = sum(all(cluster[i] == cluster[j] for j in js) for i, js in partners.items())
    any_ok = sum(any(cluster[i] == cluster[j] for j in js) for i, js in partners.items())
    index = {d: i for i, d in enumerate(doc_ids)}
    removed = [index[d] for d in near_removed]
    good = sum(i in loose_partner for i in removed)
    n_partner = len(partners)
    return DedupQuality(
        documents=len(doc_ids),
        true_pairs=true_pairs,
        docs_with_partner=n_partner,
        recall_all=all_ok / n_partner if n_partner else 1.0,
        recall_any=any_ok / n_partner if n_partner else 1.0,
        removed_near=len(removed),
        precision=good / len(removed) if removed else 1.0,
        missed_examples=missed,
    )
