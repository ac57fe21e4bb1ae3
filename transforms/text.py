"""Text measures over whole Arrow arrays: normalization, hashing, token counts, word hashes.

Normalization, word splitting, hashing and token counting are one compiled pass over the
UTF-8 bytes (`transforms.kernels.analyze`): RE2 regexes with Unicode classes, then Arrow's
NFKD, were the slowest steps of the whole pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridmix.transforms import kernels, parallel


@dataclass(frozen=True)
class TextAnalysis:
    """What one pass over a batch of texts yields, row-aligned with the input."""

    normalized: pa.Array  # NFKD, lower case, whitespace runs -> one space, trimmed
    word_hashes: np.ndarray  # uint32, every word of every text, in order
    word_offsets: np.ndarray  # int64, len(texts) + 1: text i's words are [off[i], off[i+1])
    word_tokens: np.ndarray  # int32: units plus punctuation marks
    space_tokens: np.ndarray  # int32: whitespace-separated tokens
    script: np.ndarray  # uint8 per text: index into kernels.SCRIPTS (`scripts`)
    estimated_tokens: np.ndarray  # int32: a BPE tokenizer's count, estimated per script (kernels.token_weights)


def fold(text: str) -> str:
    """The normalized form of a text, character by character (see `kernels.fold_table`):
    compatibility forms folded (full-width letters, ligatures, odd spaces), accents split off,
    lower case, and a letter's marks in canonical order (`kernels.mark_order`: NFD's, so "ê" + a dot
    below and "ệ" are the same letter, and Thai and Lao vowels above a consonant before its tone
    mark). The compiled pass applies the same rule; this is its reference."""
    order = kernels.mark_order()
    out: list[str] = []
    run: list[tuple[int, int, str]] = []  # marks of a nonzero order, sorted when the run ends (stable)
    for ch in "".join(kernels.fold_char(ch) for ch in text):
        key = int(order[ord(ch)])
        if key:
            run.append((key, len(run), ch))
            continue
        out.extend(c for _, _, c in sorted(run))
        run = []
        out.append(ch)
    out.extend(c for _, _, c in sorted(run))
    return "".join(out)


def is_variable_width(t: pa.DataType) -> bool:
    """String or binary, with 32- or 64-bit offsets: the types `value_buffers` reads."""
    return pa.types.is_string(t) or pa.types.is_binary(t) or is_large(t)


def is_large(t: pa.DataType) -> bool:
    return pa.types.is_large_string(t) or pa.types.is_large_binary(t)


def value_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, offsets as int64) of a string or binary array (`is_variable_width`), null values empty
    or not as Arrow left them: the offsets start at this array's first value, a slice's too."""
    large = is_large(arr.type)
    offsets = np.frombuffer(arr.buffers()[1], np.int64 if large else np.int32, count=len(arr) + 1,
                            offset=arr.offset * (8 if large else 4)).astype(np.int64)
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return data, offsets


def string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """`value_buffers` of `arr` as UTF-8 text (other types cast to string first)."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())
    return value_buffers(arr)


def analyze(texts: pa.Array) -> TextAnalysis:
    """Normalize, split into words and hash them, count tokens: one compiled pass per batch."""
    data, offsets = string_buffers(pc.fill_null(texts, ""))
    # Offsets 1 and 3 point into the normalized bytes and the word hashes.
    out, out_off, hashes, word_off, tok_words, tok_space, script, tok_est = parallel.per_text_joined(
        kernels.analyze, data, offsets, kernels.char_classes(), kernels.script_table(), *kernels.token_weights(),
        *kernels.fold_table(), kernels.ascii_fold(), kernels.mark_order(), offsets_at=(1, 3))
    normalized = pa.StringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(out_off.astype(np.int32)), pa.py_buffer(out))
    return TextAnalysis(normalized, hashes, word_off, tok_words, tok_space, script, tok_est)


def scripts(analysis: TextAnalysis) -> pa.Array:
    """The script of each text as an ISO 15924 code ("Latn", "Hani", "Jpan", "Hang", ...)."""
    codes = pa.array(kernels.SCRIPTS, pa.string())
    return codes.take(pa.array(analysis.script.astype(np.int32)))


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


# What the exact-dedup key is, as the manifest names it: an earlier output whose manifest names
# another key hashed some texts differently (before default-ignorable code points were left out,
# before a letter's marks were put in canonical order, before the Arabic tatweel was left out, or
# before Hebrew and Arabic vowel points were left out and Malayalam's chillu letters spelled out).
EXACT_KEY = ("blake2b-128 of normalized text: NFKD, lower case, default-ignorable code points removed, "
             "combining marks in canonical order, Arabic tatweel removed, Persian yeh and keheh as Arabic "
             "yeh and kaf, Hebrew and Arabic vowel points removed, Malayalam chillu letters as consonant "
             "and virama, whitespace collapsed")


def content_hashes(normalized: pa.Array) -> pa.Array:
    """128-bit BLAKE2b of each normalized text, as hex (hashlib's hexdigest): the exact-duplicate key.

    Compiled (`kernels.blake2b`, on the kernel threads) and turned into hex strings by numpy: a
    hashlib call and a Python string per text held the GIL for 0.87 s of a 205,000-document run
    (py-spy --gil), the largest share of the ingest stage's Python time.
    """
    data, offsets = string_buffers(normalized)
    n = len(offsets) - 1
    words = parallel.per_text(kernels.blake2b, data, offsets, np.zeros(0, np.uint8), 2)
    # The digest is the two words' little-endian bytes in order; two hex digits per byte.
    digest = np.ascontiguousarray(words, "<u8").view(np.uint8).reshape(n, 16)
    hexed = np.empty((n, 32), np.uint8)
    hexed[:, 0::2] = _HEX[digest >> 4]
    hexed[:, 1::2] = _HEX[digest & 15]
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(np.arange(0, 32 * n + 1, 32, dtype=np.int32)), pa.py_buffer(hexed))


@lru_cache(maxsize=4)
def load_tokenizer(path: str):
    """A Hugging Face tokenizer from a local tokenizer.json (never the network)."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError("tokenizer kind 'file' needs the tokenizers package: "
                          "pip install 'hybridmix[tokenizers]'") from None
    return Tokenizer.from_file(path)


def count_tokens(texts: pa.Array, kind: str, analysis: TextAnalysis | None = None,
                 path: str | None = None) -> np.ndarray:
    """Token count per text for a `TokenizerConfig.kind` (`path`: the tokenizer file of kind file)."""
    if kind == "file":
        encoded = load_tokenizer(path).encode_batch(pc.fill_null(texts, "").to_pylist(), add_special_tokens=False)
        return np.array([len(e.ids) for e in encoded], np.int32)
    if kind == "bytes4":
        nbytes = pc.binary_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)
        return ((nbytes + 3) // 4).astype(np.int32)
    analysis = analysis or analyze(texts)
    if kind == "estimate":
        return analysis.estimated_tokens
    return analysis.word_tokens if kind == "words" else analysis.space_tokens


def text_hashes(texts: pa.Array) -> np.ndarray:
    """A 64-bit hash of each text exactly as read (no normalization): the identity of a row's text."""
    data, offsets = string_buffers(pc.fill_null(texts, ""))
    return parallel.per_text(kernels.raw_hashes, data, offsets)


def char_counts(texts: pa.Array) -> np.ndarray:
    return pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.int32)


def stable_hash64(values: list[str] | pa.Array | pa.ChunkedArray, salt: str) -> np.ndarray:
    """A seeded 64-bit hash per string that is the same in every process and on every machine:
    BLAKE2b (8-byte digest) of the salt, a zero byte and the string's UTF-8 bytes, read as a
    little-endian uint64.

    Python's hash() is salted per process, so it cannot decide sampling or shard placement.
    Compiled (`kernels.blake2b`, on the kernel threads) and given Arrow strings as they are:
    hashlib's per-call cost and Python strings made from every id took about 1 s of a
    200,000-document run.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(values, pa.string())
    if values.null_count:
        raise ValueError("stable_hash64: null values have no hash")
    if len(values) == 0:
        return np.zeros(0, np.uint64)
    data, offsets = string_buffers(values)
    prefix = np.frombuffer(salt.encode("utf-8") + b"\x00", np.uint8)
    return parallel.per_text(kernels.blake2b, data, offsets, prefix, 1)[:, 0].copy()


def mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer over uint64: spreads integer keys before taking them modulo."""
    return kernels.mix64(np.ascontiguousarray(values, np.uint64))
