"""rensa, used the way its README suggests: shingle in Python, one RMinHash per document,
RMinHashLSH to find candidates, verify by signature similarity, union-find for clusters."""

from __future__ import annotations

import glob
import os
import time

import pyarrow.parquet as pq
from rensa import RMinHash, RMinHashLSH


def run(corpus: str, num_perm: str = "256", bands: str = "32", threshold: str = "0.8", ngram: str = "5") -> dict:
    num_perm, bands, threshold, ngram = int(num_perm), int(bands), float(threshold), int(ngram)
    stages = {}
    t = time.perf_counter()
    texts = []
    for path in sorted(glob.glob(os.path.join(corpus, "*", "*.parquet"))):
        texts += pq.read_table(path, columns=["text"]).column("text").to_pylist()
    stages["read"] = time.perf_counter() - t

    t = time.perf_counter()
    shingles = []
    for text in texts:
        words = (text or "").lower().split()
        shingles.append([" ".join(words[i:i + ngram]) for i in range(max(1, len(words) - ngram + 1))])
    stages["shingle"] = time.perf_counter() - t

    t = time.perf_counter()
    hashes = []
    for sh in shingles:
        m = RMinHash(num_perm=num_perm, seed=1)
        m.update(sh)
        hashes.append(m)
    stages["minhash"] = time.perf_counter() - t

    t = time.perf_counter()
    lsh = RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=bands)
    for i, m in enumerate(hashes):
        lsh.insert(i, m)
    parent = list(range(len(hashes)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            if j != i and m.jaccard(hashes[j]) >= threshold:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    removed = sum(1 for i in range(len(hashes)) if find(i) != i)
    stages["lsh_and_clusters"] = time.perf_counter() - t
    return {"documents": len(texts), "removed_as_duplicates": removed,
            "stages": {k: round(v, 2) for k, v in stages.items()}}
