"""MinHash signatures over whole batches, bit-identical to datasketch, plus LSH banding.

A document's shingles are its unit n-grams. Units are the words of the normalized text
(`transforms.text.fold`: NFKD, lower case): maximal runs of letters, numbers, marks and '_',
except that in scripts written without spaces (Han, kana, Hangul, Thai, ...) every code point
is a unit, with the marks that follow it (`kernels._breaks_before`), so Chinese and Japanese
shingles are character n-grams. A shingle is its units joined by single spaces. `shingle_hash32` hashes one shingle; it can be
given to datasketch, so that

    MinHash(num_perm=P, seed=S, hashfunc=shingle_hash32).update_batch(document_shingles(text, n))

gives exactly the signature hybridmix computes (and stores) for `text`. Permutations follow
datasketch 2.x's default `affine32` scheme: the input hash is pre-mixed with the MurmurHash3
32-bit finalizer, then h -> a*h + b in wrapping uint32 arithmetic, with (a, b) drawn from
`np.random.RandomState(seed)` exactly as datasketch draws them.

The batch path never builds shingle strings: words are hashed once, in a compiled pass over
the UTF-8 bytes, and n-gram hashes are rolled from word hashes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from hybridmix.transforms import kernels, parallel
from hybridmix.transforms.text import fold

EMPTY_HASH = kernels.EMPTY
_M32 = 0xFFFFFFFF


def _fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def word_hash32(word: bytes) -> int:
    """fmix32 of the 32-bit FNV-1a hash of a word's UTF-8 bytes."""
    h = 0x811C9DC5
    for byte in word:
        h = ((h ^ byte) * 0x01000193) & _M32
    return _fmix32(h)


def shingle_hash32(shingle: bytes) -> int:
    """Hash of one shingle (words joined by b' '); pass as `hashfunc` to datasketch.MinHash."""
    h = 0
    for word in shingle.split(b" "):
        h = (h * 0x01000193 + word_hash32(word)) & _M32
    return h


def document_words(text: str) -> list[str]:
    """Units of one document (`kernels._breaks_before`), by the same rules as the compiled batch path."""
    classes = kernels.char_classes()
    words: list[str] = []
    current: list[str] = []
    solo = False
    for ch in fold(text):
        cls = int(classes[ord(ch)])
        if not cls & kernels.WORD:
            if current:
                words.append("".join(current))
                current = []
            continue
        if kernels.breaks_before(cls, bool(current), solo):
            if current:
                words.append("".join(current))
            current = []
            solo = bool(cls & kernels.SOLO)
        current.append(ch)
    if current:
        words.append("".join(current))
    return words


def document_shingles(text: str, ngram: int) -> list[bytes]:
    """The shingles of one document (for use with datasketch)."""
    words = document_words(text)
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


def signatures(word_hashes: np.ndarray, word_offsets: np.ndarray, ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signature per document (rows) from its word hashes (`transforms.text.analyze`);
    EMPTY_HASH everywhere for a document without words."""
    a, b = permutations(num_perm, seed)
    return parallel.per_text(kernels.minhash, word_hashes, word_offsets, ngram, a, b)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (document, band): equal keys mean an equal band, up to 2^-64 collisions.

    The band index is mixed in, so equal values in different bands never share a key.
    """
    # Compiled, and without the GIL: a column at a time in numpy cost ~1 s of a 200,000-document
    # run on the thread that sketches, while the other threads waited for the GIL.
    return kernels.band_keys(np.ascontiguousarray(sig, np.uint32), bands, rows)


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Share of equal hash values, row by row (datasketch's `MinHash.jaccard`)."""
    return (sig_a == sig_b).mean(axis=-1)


def _integrate(f, lo: float, hi: float, steps: int = 1000) -> float:
    if hi <= lo:
        return 0.0
    xs = np.linspace(lo, hi, steps + 1)
    ys = f(xs)
    return float(np.sum((ys[1:] + ys[:-1]) * (xs[1] - xs[0]) / 2.0))


@lru_cache(maxsize=64)  # O(num_perm^2) integrals: 0.1 s, asked for by every batch that needs band keys
def optimal_bands(threshold: float, num_perm: int, false_positive_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false positive + false negative probability mass.

    The same objective datasketch's MinHashLSH uses, so the defaults match its choice.
    """
    fn_weight = 1.0 - false_positive_weight
    best = (1, 1)
    best_err = float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = _integrate(lambda s, r=r, b=b: 1 - (1 - s ** r) ** b, 0.0, threshold)
            fn = _integrate(lambda s, r=r, b=b: (1 - s ** r) ** b, threshold, 1.0)
            err = fp * false_positive_weight + fn * fn_weight
            if err < best_err:
                best_err, best = err, (b, r)
    return best
