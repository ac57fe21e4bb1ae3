"""Text measures over whole Arrow arrays: normalization, hashing, token counts, word lists.

Everything here is vectorized with pyarrow.compute (RE2 regexes, so `\\w` would be ASCII-only;
the patterns spell out Unicode letter and number classes instead).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# A word: a run of Unicode letters, numbers, marks or underscores.
WORD_CHARS = r"\pL\pN\pM_"
_TOKEN_PATTERNS = {
    # Words plus each punctuation mark on its own: close to how BPE pre-tokenizers split.
    "words": rf"[{WORD_CHARS}]+|[^{WORD_CHARS}\s]",
    "whitespace": r"\S+",
}


def normalize(texts: pa.Array) -> pa.Array:
    """Normalized form used for hashing and shingling, never for output.

    NFKD folds compatibility forms (full-width letters, ligatures, non-breaking spaces) and
    decomposes accents, then lower case, and every whitespace run becomes one space.
    (Not NFKC: pyarrow 25's NFKC leaves text decomposed, so its output would change the day
    that is fixed; NFKD is correct today and stays the same.)
    """
    out = pc.utf8_normalize(texts, form="NFKD")
    out = pc.utf8_lower(out)
    out = pc.replace_substring_regex(out, pattern=r"\s+", replacement=" ")
    return pc.utf8_trim_whitespace(out)


def content_hashes(normalized: pa.Array) -> list[str]:
    """128-bit BLAKE2b of the normalized text, as hex: the exact-duplicate key."""
    return [
        hashlib.blake2b(s.encode("utf-8"), digest_size=16).hexdigest()
        for s in normalized.to_pylist()
    ]


def count_tokens(texts: pa.Array, kind: str) -> np.ndarray:
    """Token count per text for a `TokenizerConfig.kind`."""
    if kind == "bytes4":
        nbytes = pc.binary_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)
        return ((nbytes + 3) // 4).astype(np.int32)
    pattern = _TOKEN_PATTERNS[kind]
    counts = pc.count_substring_regex(texts, pattern=pattern)
    return counts.to_numpy(zero_copy_only=False).astype(np.int32)


def char_counts(texts: pa.Array) -> np.ndarray:
    return pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.int32)


def split_words(normalized: pa.Array) -> pa.ListArray:
    """Words of each normalized text, in order; punctuation and symbols separate words."""
    spaced = pc.replace_substring_regex(normalized, pattern=rf"[^{WORD_CHARS}]+", replacement=" ")
    spaced = pc.utf8_trim_whitespace(spaced)
    words = pc.split_pattern(spaced, pattern=" ")
    # split("") gives [""]; a text with no word characters has no words.
    lengths = pc.list_value_length(words)
    empty = pc.equal(pc.utf8_length(spaced), 0)
    if pc.any(empty).as_py():
        offsets = np.zeros(len(words) + 1, dtype=np.int32)
        keep_len = np.where(empty.to_numpy(zero_copy_only=False), 0,
                            lengths.to_numpy(zero_copy_only=False))
        np.cumsum(keep_len, out=offsets[1:])
        flat = pc.filter(words.flatten(), pc.not_equal(words.flatten(), ""))
        words = pa.ListArray.from_arrays(pa.array(offsets), flat)
    return words


def stable_hash64(values: list[str], salt: str) -> np.ndarray:
    """A seeded 64-bit hash per string that is the same in every process and on every machine.

    Python's hash() is salted per process, so it cannot decide sampling or shard placement.
    """
    prefix = salt.encode("utf-8") + b"\x00"
    out = np.empty(len(values), dtype=np.uint64)
    for i, value in enumerate(values):
        digest = hashlib.blake2b(prefix + value.encode("utf-8"), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little")
    return out


def mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer over uint64: spreads integer keys before taking them modulo."""
    z = values.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z
