"""MinHash signatures over whole batches, bit-identical to datasketch, plus LSH banding.

A document's shingles are its word n-grams (words of the normalized text, see
`transforms.text.split_words`), joined by single spaces. Each shingle is hashed with
`shingle_hash32`, a word-wise polynomial hash that can be evaluated over a whole batch in
numpy; datasketch users get identical signatures with

    MinHash(num_perm=P, seed=S, hashfunc=shingle_hash32).update_batch(document_shingles(text, n))

Permutations follow datasketch 2.x's default `affine32` scheme: the input hash is pre-mixed
with the MurmurHash3 32-bit finalizer, then h -> a*h + b in wrapping uint32 arithmetic, with
(a, b) drawn from `np.random.RandomState(seed)` exactly as datasketch draws them.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
import pyarrow as pa

from transforms.text import normalize, split_words

EMPTY_HASH = np.uint32(0xFFFFFFFF)
_SHINGLE_MULT = np.uint32(0x01000193)  # FNV-1 32-bit prime: odd, so each step is a bijection
_FMIX_C1 = np.uint32(0x85EBCA6B)
_FMIX_C2 = np.uint32(0xC2B2AE35)
# Shingle matrix rows per block: bounds the (shingles x num_perm) uint32 scratch to ~64 MB.
_BLOCK_CELLS = 16 * 1024 * 1024


def word_hash32(word: bytes) -> int:
    """First four bytes of SHA-1, little-endian: datasketch's `sha1_hash32` of one word."""
    return int.from_bytes(hashlib.sha1(word).digest()[:4], "little")


def shingle_hash32(shingle: bytes) -> int:
    """Hash of one shingle (words joined by b' '); pass as `hashfunc` to datasketch.MinHash."""
    h = 0
    for word in shingle.split(b" "):
        h = (h * 0x01000193 + word_hash32(word)) & 0xFFFFFFFF
    return h


def document_shingles(text: str, ngram: int) -> list[bytes]:
    """The shingles of one document, as hybridmix computes them (for use with datasketch)."""
    words = split_words(normalize(pa.array([text], pa.string()))).to_pylist()[0]
    if not words:
        return []
    if len(words) < ngram:
        return [" ".join(words).encode("utf-8")]
    return [" ".join(words[i:i + ngram]).encode("utf-8") for i in range(len(words) - ngram + 1)]


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) uint32 arrays of datasketch's affine32 scheme for this num_perm and seed."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def fmix32(h: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint32(16))
        h = h * _FMIX_C1
        h = h ^ (h >> np.uint32(13))
        h = h * _FMIX_C2
        return h ^ (h >> np.uint32(16))


def shingle_hashes(words: pa.ListArray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """All shingle hashes of a batch: (hashes uint32, per-document offsets into them, int64).

    Words are hashed once per distinct word in the batch; n-gram hashes are then combined
    column-wise, so the cost is a few numpy passes over the batch's word count.
    """
    n_docs = len(words)
    word_offsets = words.offsets.to_numpy().astype(np.int64)
    word_offsets = word_offsets - word_offsets[0]
    lengths = np.diff(word_offsets)
    flat = words.flatten()
    if len(flat) == 0:
        return np.empty(0, np.uint32), np.zeros(n_docs + 1, np.int64)
    encoded = flat.dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    distinct_hashes = np.fromiter(
        (word_hash32(w.encode("utf-8")) for w in distinct), dtype=np.uint32, count=len(distinct))
    wh = distinct_hashes[encoded.indices.to_numpy()]

    # counts[d]: n-grams of a long document, one shingle of all words for a short one.
    counts = np.where(lengths >= ngram, lengths - ngram + 1, np.minimum(lengths, 1))
    offsets = np.zeros(n_docs + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])

    total_words = len(wh)
    with np.errstate(over="ignore"):
        # rolling[i] = sum_k wh[i+k] * M^(n-1-k) over a window that may cross documents;
        # only windows that start and end inside one document are used below.
        padded = np.concatenate([wh, np.zeros(ngram, np.uint32)])
        rolling = np.zeros(total_words, np.uint32)
        for k in range(ngram):
            rolling = rolling * _SHINGLE_MULT + padded[k:k + total_words]
    long_docs = lengths >= ngram
    starts = word_offsets[:-1]
    out = np.empty(int(offsets[-1]), np.uint32)
    if long_docs.any():
        long_counts = counts[long_docs]
        doc_ids = np.repeat(np.arange(n_docs)[long_docs], long_counts)
        long_starts = np.cumsum(long_counts) - long_counts
        within = np.arange(len(doc_ids)) - np.repeat(long_starts, long_counts)
        positions = starts[doc_ids] + within
        out_pos = offsets[:-1][doc_ids] + within
        out[out_pos] = rolling[positions]
    for d in np.nonzero((lengths > 0) & ~long_docs)[0]:
        h = np.uint32(0)
        with np.errstate(over="ignore"):
            for v in wh[starts[d]:starts[d] + lengths[d]]:
                h = h * _SHINGLE_MULT + v
        out[offsets[d]] = h
    return out, offsets


def signatures_from_hashes(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signature per document (rows), EMPTY_HASH everywhere for a document with no shingles."""
    a, b = permutations(num_perm, seed)
    n_docs = len(offsets) - 1
    sig = np.full((n_docs, num_perm), EMPTY_HASH, dtype=np.uint32)
    mixed = fmix32(hashes)
    block = max(1, _BLOCK_CELLS // num_perm)
    doc = 0
    while doc < n_docs:
        # Take whole documents until the block is full (at least one document).
        end = int(np.searchsorted(offsets, offsets[doc] + block, side="right")) - 1
        end = min(max(end, doc + 1), n_docs)
        lo, hi = int(offsets[doc]), int(offsets[end])
        if hi > lo:
            with np.errstate(over="ignore"):
                phv = mixed[lo:hi, None] * a[None, :] + b[None, :]
            seg = offsets[doc:end] - lo
            nonempty = np.diff(offsets[doc:end + 1]) > 0
            mins = np.minimum.reduceat(phv, seg[nonempty], axis=0)
            sig[doc:end][nonempty] = mins
        doc = end
    return sig


def signatures(texts: pa.Array, ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures of raw texts (normalized and shingled here)."""
    hashes, offsets = shingle_hashes(split_words(normalize(texts)), ngram)
    return signatures_from_hashes(hashes, offsets, num_perm, seed)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (document, band): equal keys mean an equal band, up to 2^-64 collisions.

    The band index is mixed in, so equal values in different bands never share a key.
    """
    n_docs = sig.shape[0]
    keys = np.empty((n_docs, bands), np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            h = np.full(n_docs, np.uint64(0x9E3779B97F4A7C15) * np.uint64(band + 1), np.uint64)
            for col in sig[:, band * rows:(band + 1) * rows].T:
                h = (h ^ col.astype(np.uint64)) * np.uint64(0x100000001B3)
                h ^= h >> np.uint64(29)
            keys[:, band] = h
    return keys


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Share of equal hash values, row by row (datasketch's `MinHash.jaccard`)."""
    return (sig_a == sig_b).mean(axis=-1)


def _integrate(f, lo: float, hi: float, steps: int = 1000) -> float:
    if hi <= lo:
        return 0.0
    xs = np.linspace(lo, hi, steps + 1)
    ys = f(xs)
    return float(np.sum((ys[1:] + ys[:-1]) * (xs[1] - xs[0]) / 2.0))


def optimal_bands(threshold: float, num_perm: int, false_positive_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false positive + false negative probability mass.

    The same objective datasketch's MinHashLSH uses, so the defaults match its choice.
    """
    fn_weight = 1.0 - false_positive_weight
    best = (1, 1)
    best_err = float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = _integrate(lambda s: 1 - (1 - s ** r) ** b, 0.0, threshold)
            fn = _integrate(lambda s: (1 - s ** r) ** b, threshold, 1.0)
            err = fp * false_positive_weight + fn * fn_weight
            if err < best_err:
                best_err, best = err, (b, r)
    return best
