"""The pure parts of matching new documents against earlier outputs: key filters, hash words, b-bit
similarity, index/ rows."""

import hashlib

import numpy as np
import pyarrow as pa

from hybridmix.transforms import minhash as mh
from hybridmix.schemas.config import NearDedupConfig
from hybridmix.transforms.index import bbit_similarity, index_rows, low_bytes
from hybridmix.transforms.prior import KeyFilter, _hex_words, _passes, filter_bits
from hybridmix.transforms.sketch import SignatureFiles, lsh_shape, spill_signatures
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



def test_index_rows_take_each_signature_from_the_signature_files(tmp_path):
    """A document with a signature gets its band keys and low bytes; one without (no words) none."""
    near = NearDedupConfig()
    texts = [words(21, 300), "!!! ???", words(22, 80)]
    analysis = analyze(pa.array(texts))
    sig = mh.signatures(analysis.word_hashes, analysis.word_offsets, near.ngram, near.num_perm, near.seed)
    uids = np.array([40, 41, 42], np.int64)
    signed = np.array([0, 2])
    files = SignatureFiles([spill_signatures(uids[signed], sig[signed], str(tmp_path))], near.num_perm)
    docs = pa.RecordBatch.from_pydict({
        "uid": uids, "origin": ["synthetic"] * 3, "source": ["gen"] * 3, "generator": ["m"] * 3,
        "generation": pa.array([1, 1, 1], pa.int8()), "parent_id": pa.nulls(3, pa.string())})
    selection = pa.table({"doc_id": ["a", "b", "c"], "content_hash": ["h1", "h2", "h3"],
                          "tokens": pa.array([300, 2, 80], pa.int32())})
    rows = index_rows(docs, selection, near, "run", files).to_pylist()
    bands, band_rows = lsh_shape(near)
    for r in signed:
        assert rows[r]["bands"] == mh.band_keys(sig[r:r + 1], bands, band_rows)[0].tolist()
        assert rows[r]["minhash8"] == low_bytes(sig[r:r + 1])[0].tobytes()
    assert (rows[1]["bands"], rows[1]["minhash8"]) == ([], None)
    assert [r["doc_id"] for r in rows] == ["a", "b", "c"]
