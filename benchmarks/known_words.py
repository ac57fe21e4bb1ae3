"""Build the token estimate's known-word filter (transforms/vocab/known_words.npy).

    .venv/bin/python -m benchmarks.known_words [--cache DIR] [--out PATH]

The words: every token of cl100k_base, o200k_base and DeepSeek-V3 that is a space followed by
letters only (" because", " человек"), normalized and hashed as `kernels.analyze` does a unit, kept
when it is one unit of a script with a known-word weight (`kernels._KNOWN_TOKENS`, with the scripts
that take its weights). The vocabularies are those `benchmarks/multilingual.py` reads from the
litellm wheel (fetched once into its cache with pip; MIT). Deterministic: the same vocabularies give
the same file byte for byte. Needs `tiktoken` and `tokenizers` (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

import numpy as np
import pyarrow as pa

from benchmarks.multilingual import LITELLM, TOKENIZER_FILES, _bpe_counters, fetch_wheel
from hybridmix.transforms import kernels
from hybridmix.transforms.text import string_buffers

HERE = os.path.dirname(os.path.abspath(__file__))


def vocabulary_words(cache: str) -> dict[str, set[str]]:
    """tokenizer -> the words it holds as one token after a space."""
    _bpe_counters(cache)  # unpacks the tokenizer files from the litellm wheel
    tok_dir = os.path.join(cache, "tokenizers")
    import tiktoken
    from tokenizers import Tokenizer

    out = {}
    pieces = {}
    for name in ("cl100k_base", "o200k_base"):
        pieces[name] = [p.decode("utf-8", "replace") for p in tiktoken.get_encoding(name)._mergeable_ranks]
    deepseek = Tokenizer.from_file(os.path.join(tok_dir, os.path.basename(TOKENIZER_FILES["deepseek"])))
    # Its byte-level decoder turns a token back into text (a broken UTF-8 piece into U+FFFD, not a letter).
    pieces["deepseek_v3"] = [deepseek.decode([i]) for i in sorted(deepseek.get_vocab().values())]
    for name, raw in pieces.items():
        words = set()
        for text in raw:
            if len(text) > 1 and text[0] == " " and all(c.isalpha() for c in text[1:]):
                words.add(text[1:])
        out[name] = words
    return out


def unit_hashes(words: list[str]) -> np.ndarray:
    """The unit hash of each word that `analyze` reads as one unit of a script with a known-word weight."""
    data, offsets = string_buffers(pa.array(words, pa.string()))
    base, per_char, known = kernels.script_token_weights()
    punct = 0.0
    looked_up = np.nonzero(known >= 0)[0]
    unused = np.zeros(1 << kernels.KNOWN_INDEX_BITS, np.uint64)
    _, _, hashes, word_off, _, _, script, _ = kernels.analyze(
        data, offsets, kernels.char_classes(), kernels.script_table(), base, per_char, punct,
        np.full(len(known), -1.0), unused, *kernels.fold_table(), kernels.ascii_fold(), kernels.mark_order())
    one_unit = np.diff(word_off) == 1
    keep = one_unit & np.isin(script, looked_up)
    return np.unique(hashes[word_off[:-1][keep]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=os.path.join(HERE, "work", "multilingual", "cache"),
                        help="where the litellm wheel is kept (default: the one of benchmarks/multilingual.py)")
    parser.add_argument("--out", default=kernels.KNOWN_WORDS_FILE, help="the filter to write")
    parser.add_argument("--min-tokenizers", type=int, default=1, help="keep words that many tokenizers hold whole")
    args = parser.parse_args(argv)
    fetch_wheel(args.cache, LITELLM)
    by_tokenizer = vocabulary_words(args.cache)
    held = Counter(w for words in by_tokenizer.values() for w in words)
    words = sorted(w for w, k in held.items() if k >= args.min_tokenizers)
    hashes = unit_hashes(words)
    table = kernels.known_filter(hashes)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.save(args.out, table, allow_pickle=False)
    fill = float(np.mean([bin(int(x)).count("1") for x in table]) / 64)
    print({"words": {k: len(v) for k, v in by_tokenizer.items()}, "union": len(words), "unit_hashes": len(hashes),
           "bits_set": round(fill, 4), "false_positive_rate": round(fill ** 2, 4), "out": args.out}, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
