"""Compiled loops over whole batches of UTF-8 text: word spans, word hashes, MinHash.

Pure functions (numba, no Beam). The text arrives already NFKD-normalized and lower-cased
by Arrow; these loops decode UTF-8 once and classify each code point with a table built
from Python's `unicodedata`, so the pure-Python reference in `transforms.minhash` can apply
exactly the same rules.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import numba as nb
import numpy as np

WORD = np.uint8(1)
SPACE = np.uint8(2)
MASK32 = np.uint64(0xFFFFFFFF)
FNV_OFFSET = np.uint64(0x811C9DC5)
FNV_PRIME = np.uint64(0x01000193)
SHINGLE_MULT = np.uint64(0x01000193)
EMPTY = np.uint32(0xFFFFFFFF)


@lru_cache(maxsize=1)
def char_classes() -> np.ndarray:
    """Class of every code point: WORD for letters, numbers, marks and '_'; SPACE for whitespace."""
    table = np.zeros(0x110000, np.uint8)
    for cp in range(0x110000):
        ch = chr(cp)
        if unicodedata.category(ch)[0] in "LNM" or ch == "_":
            table[cp] = WORD
        elif ch.isspace():
            table[cp] = SPACE
    return table


@nb.njit(cache=True, inline="always")
def _fmix32(h):
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & MASK32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & MASK32
    h ^= h >> np.uint64(16)
    return h


@nb.njit(cache=True)
def _decode(data, i, end):
    """(code point, byte length) of the UTF-8 sequence at data[i]; a bad byte counts as one U+FFFD."""
    b0 = np.int64(data[i])
    if b0 < 0x80:
        return b0, 1
    if b0 >= 0xF0 and i + 3 < end:
        return ((b0 & 0x07) << 18) | ((np.int64(data[i + 1]) & 0x3F) << 12) | (
            (np.int64(data[i + 2]) & 0x3F) << 6) | (np.int64(data[i + 3]) & 0x3F), 4
    if b0 >= 0xE0 and i + 2 < end:
        return ((b0 & 0x0F) << 12) | ((np.int64(data[i + 1]) & 0x3F) << 6) | (np.int64(data[i + 2]) & 0x3F), 3
    if b0 >= 0xC0 and i + 1 < end:
        return ((b0 & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F), 2
    return 0xFFFD, 1


@nb.njit(cache=True)
def analyze(data, offsets, classes):
    """One pass over normalized UTF-8 texts.

    Returns (collapsed bytes, collapsed offsets, word hashes, word offsets per text,
    word-and-punctuation token counts, whitespace token counts). `collapsed` is each text
    with whitespace runs turned into one space and the ends trimmed (the exact-dedup key).
    A word is a maximal run of WORD code points; its hash is fmix32(FNV-1a of its bytes).
    """
    n = len(offsets) - 1
    out = np.empty(len(data), np.uint8)
    out_off = np.zeros(n + 1, np.int64)
    hashes = np.empty(len(data) // 2 + n + 1, np.uint32)
    word_off = np.zeros(n + 1, np.int64)
    tok_words = np.zeros(n, np.int32)
    tok_space = np.zeros(n, np.int32)
    o = 0
    w = 0
    for d in range(n):
        i = offsets[d]
        end = offsets[d + 1]
        in_word = False
        in_token = False
        pending_space = False
        h = FNV_OFFSET
        words = 0
        punct = 0
        space_tokens = 0
        while i < end:
            cp, size = _decode(data, i, end)
            cls = classes[cp] if cp < 0x110000 else 0
            if cls == SPACE:
                if in_word:
                    hashes[w] = _fmix32(h)
                    w += 1
                    words += 1
                    in_word = False
                in_token = False
                if o > out_off[d]:
                    pending_space = True
            else:
                if pending_space:
                    out[o] = 32
                    o += 1
                    pending_space = False
                for k in range(size):
                    out[o + k] = data[i + k]
                o += size
                if not in_token:
                    space_tokens += 1
                    in_token = True
                if cls == WORD:
                    if not in_word:
                        in_word = True
                        h = FNV_OFFSET
                    for k in range(size):
                        h = ((h ^ np.uint64(data[i + k])) * FNV_PRIME) & MASK32
                else:
                    if in_word:
                        hashes[w] = _fmix32(h)
                        w += 1
                        words += 1
                        in_word = False
                    punct += 1
            i += size
        if in_word:
            hashes[w] = _fmix32(h)
            w += 1
            words += 1
        out_off[d + 1] = o
        word_off[d + 1] = w
        tok_words[d] = words + punct
        tok_space[d] = space_tokens
    return out[:o], out_off, hashes[:w], word_off, tok_words, tok_space


@nb.njit(cache=True)
def minhash(word_hashes, word_offsets, ngram, perm_a, perm_b):
    """MinHash signature per text over its word n-gram shingles (datasketch affine32 scheme).

    A shingle's hash is the polynomial sum_k word[i+k] * M^(n-1-k) mod 2^32; a text with
    fewer than `ngram` words has one shingle of all its words; a text with no words keeps
    the empty signature (all 0xFFFFFFFF). Each hash is pre-mixed with fmix32, then
    h -> a*h + b mod 2^32 per permutation, as datasketch.MinHash.update does.
    """
    n = len(word_offsets) - 1
    num_perm = len(perm_a)
    a = perm_a.astype(np.uint64)
    b = perm_b.astype(np.uint64)
    sig = np.full((n, num_perm), EMPTY, np.uint32)
    acc = np.empty(num_perm, np.uint64)
    top = np.uint64(1)
    for _ in range(ngram - 1):
        top = (top * SHINGLE_MULT) & MASK32
    for d in range(n):
        lo = word_offsets[d]
        length = word_offsets[d + 1] - lo
        if length == 0:
            continue
        for k in range(num_perm):
            acc[k] = MASK32
        if length < ngram:
            h = np.uint64(0)
            for j in range(length):
                h = (h * SHINGLE_MULT + np.uint64(word_hashes[lo + j])) & MASK32
            hv = _fmix32(h)
            for k in range(num_perm):
                v = (a[k] * hv + b[k]) & MASK32
                if v < acc[k]:
                    acc[k] = v
        else:
            h = np.uint64(0)
            for j in range(ngram):
                h = (h * SHINGLE_MULT + np.uint64(word_hashes[lo + j])) & MASK32
            for start in range(length - ngram + 1):
                if start > 0:
                    # uint64 arithmetic wraps mod 2^64, so masking afterwards is exact mod 2^32.
                    h = (h - np.uint64(word_hashes[lo + start - 1]) * top) & MASK32
                    h = (h * SHINGLE_MULT + np.uint64(word_hashes[lo + start + ngram - 1])) & MASK32
                hv = _fmix32(h)
                for k in range(num_perm):
                    v = (a[k] * hv + b[k]) & MASK32
                    if v < acc[k]:
                        acc[k] = v
        for k in range(num_perm):
            sig[d, k] = acc[k]
    return sig
