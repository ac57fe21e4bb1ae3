import numpy as np
import pyarrow as pa

from hybridmix.schemas.records import DUPLICATE_SCHEMA
from hybridmix.transforms.ledger import duplicate_details, selection_details


def plain_detail(kind, kept, similarity, cluster, size, lineage, kept_run, run):
    """The detail as DESIGN.md words it, one f-string per row."""
    exact = kind in ("exact", "exact_prior")
    measure = f"estimated Jaccard similarity {similarity:.3f}"
    if exact:  # below 1: an exact copy of a document removed as a near duplicate of the kept one
        measure = "same normalized text" if similarity >= 1 else f"an exact copy of one of its near duplicates; {measure}"
    note = {"child": "; a copy of its own parent", "parent": "; the parent of the document kept"}.get(lineage, "")
    if kept_run and kept_run != run:
        return f"{kind} duplicate of {kept} ({measure}){note}, published by earlier run {kept_run}"
    return f"{kind} duplicate of {kept} ({measure}){note}; cluster {cluster} of {size} documents, one kept"


def duplicates(rows):
    columns = {name: [] for name in DUPLICATE_SCHEMA.names}
    for r, (kind, similarity, size, lineage, kept_run) in enumerate(rows):
        values = {"doc_id": f"d{r}", "kept_doc_id": f"k{r % 3}", "cluster": f"c{r % 3}", "cluster_size": size,
                  "kind": kind, "similarity": similarity, "origin": "synthetic", "source": "s", "generator": None,
                  "kept_origin": "human", "kept_source": "h", "kept_generator": None, "lineage": lineage,
                  "source_file": "f.parquet", "source_row": r, "run_id": "run-b", "kept_run_id": kept_run}
        for name, value in values.items():
            columns[name].append(value)
    return pa.RecordBatch.from_pydict(columns, schema=DUPLICATE_SCHEMA)


def test_duplicate_details_match_plain_formatting_for_every_kind_lineage_and_run():
    # Similarities are k / 256 as float32 (0.8984375 and 0.9140625 round at the third decimal), some
    # repeated, plus values that are not multiples of 1/256; runs: this one, an earlier one, none.
    similarities = [np.float32(v) for v in (230 / 256, 234 / 256, 1.0, 0.0, 0.80078125, 0.8125, 0.9995, 0.123456)]
    rows = []
    for i, kind in enumerate(("exact", "near", "exact_prior", "near_prior")):
        for j, lineage in enumerate((None, "child", "parent")):
            for k, kept_run in enumerate(("run-b", "run-a", "")):
                rows.append((kind, similarities[(i + j + k) % len(similarities)], 2 + i * j * k, lineage, kept_run))
    batch = duplicates(rows)
    got = duplicate_details(batch).to_pylist()
    columns = [batch.column(c).to_pylist() for c in ("kind", "kept_doc_id", "similarity", "cluster", "cluster_size",
                                                     "lineage", "kept_run_id", "run_id")]
    assert got == [plain_detail(*row) for row in zip(*columns)]
    assert "published by earlier run run-a" in got[1] and "estimated Jaccard similarity 0.914); cluster c0" in got[9]
    assert got[0].startswith("exact duplicate of k0 (an exact copy of one of its near duplicates; estimated Jaccard "
                             "similarity 0.898)")
    assert "(same normalized text)" in got[2]
    assert duplicate_details(duplicates([])).to_pylist() == []


def plain_selection(copies, split, priority, cutoff, key, mode):
    """The selection detail as DESIGN.md words it, one f-string per row."""
    p = f"priority {int(priority) / 2.0 ** 64:.6f}"
    versus = "" if cutoff is None else f" {'<=' if priority <= cutoff else '>'} cut-off {cutoff / 2.0 ** 64:.6f}"
    how = f"({mode} selection)"
    if copies:
        copy_text = "1 copy" if copies == 1 else f"{copies} copies"
        if cutoff is None:
            return f"{copy_text} in {split}; {p}; every document of {key} got {copy_text} {how}"
        extra = "" if priority <= cutoff else ", outside the last, partial pass"
        return f"{copy_text} in {split}; {p}{versus} of {key}{extra} {how}"
    if cutoff is None:
        return f"{p}; {key} had no quota for it {how}"
    return f"{p}{versus} of {key}: its quota was filled by documents of lower priority {how}"


def test_selection_details_match_plain_formatting_at_rounding_ties_and_the_ends():
    rng = np.random.default_rng(5)
    # Exact ties at the sixth decimal (odd multiples of 2^57: x = k/128), a hair either side of
    # them, priorities whose float product with 1e6 rounds onto the wrong side of a tie (found by
    # search: 0.473189 would read 0.473188), both ends of the range (2^64 - 1 rounds to 1.000000),
    # and random priorities.
    ties = [k << 57 for k in range(1, 128, 2)]
    wrong_side = [8728787158122512384, 11876539566860310528, 7768246747460381696]
    edges = ([0, 1, 2 ** 64 - 1, 2 ** 63, 2 ** 63 - 1] + ties + [t + 2 ** 11 for t in ties]
             + [t - 2 ** 11 for t in ties] + wrong_side)
    priority = np.array(edges + [int(v) for v in rng.integers(0, 2 ** 63, 3000, dtype=np.uint64) * 2], np.uint64)
    copies = rng.choice([0, 0, 1, 2, 3], len(priority)).astype(np.int32)
    splits = pa.array(rng.choice(["train", "validation"], len(priority)))
    for cutoff in (None, 2 ** 62 + 12345, 2 ** 57):
        got = selection_details(copies, splits, priority, cutoff, "web (Han text)", "weighted").to_pylist()
        want = [plain_selection(int(c), s, int(p), cutoff, "web (Han text)", "weighted")
                for c, s, p in zip(copies, splits.to_pylist(), priority)]
        assert got == want
    assert "priority 1.000000" in got[2] and "priority 0.007812" in got[5]
