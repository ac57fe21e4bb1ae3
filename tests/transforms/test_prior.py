"""The pure parts of matching new documents against earlier outputs: key filters, hash words, b-bit similarity."""

import hashlib

import numpy as np
import pyarrow as pa

from hybridmix.transforms import minhash as mh
from hybridmix.transforms.index import bbit_similarity, low_bytes
from hybridmix.transforms.prior import KeyFilter, _hex_words, _passes, filter_bits
from hybridmix.transforms.text import analyze
from tests.builders import near_copy, words


def test_a_key_filter_passes_every_new_key_and_few_others():
    rng = np.random.default_rng(1)
    new = rng.integers(0, 2**63, 50_000, dtype=np.int64).astype(np.uint64)
    other = rng.integers(0, 2**63, 200_000, dtype=np.int64).astype(np.uint64)
    bits = filter_bits(len(new))
    combine = KeyFilter(bits)
    # Two workers' accumulators, merged: as the runner combines them.
    parts = [combine.add_input(combine.create_accumulator(), chunk) for chunk in np.array_split(new, 2)]
    filt = combine.extract_output(combine.merge_accumulators(parts))
    assert _passes(filt, new, bits).all()
    assert 0.0 < _passes(filt, other, bits).mean() < 0.04


def test_hash_words_are_the_hex_digest_as_numbers():
    digests = [hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest() for i in range(20)]
    high, low = _hex_words(pa.array(digests).slice(3))
    assert [(int(h) << 64) | int(lo) for h, lo in zip(high, low)] == [int(d, 16) for d in digests[3:]]


def test_bbit_similarity_estimates_jaccard_from_low_bytes():
    texts = [words(11, 400), near_copy(words(11, 400), 40), words(12, 400)]
    sets = [set(mh.document_shingles(t, 5)) for t in texts]
    analysis = analyze(pa.array(texts))
    sig = mh.signatures(analysis.word_hashes, analysis.word_offsets, 5, 256, 1)
    low = low_bytes(sig)
    for a, b in ((0, 1), (0, 2)):
        exact = len(sets[a] & sets[b]) / len(sets[a] | sets[b])
        assert abs(bbit_similarity(low[a], low[b]) - exact) < 0.08, (a, b, exact)

