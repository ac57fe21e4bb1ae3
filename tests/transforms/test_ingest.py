import json
import os
import uuid

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to

from hybridmix.schemas.errors import DataError, SchemaError
from hybridmix.schemas.reasons import RejectReason
from hybridmix.schemas.stats import Figure
from hybridmix.transforms import kernels
from hybridmix.transforms.ingest import ReadCorpora, build_documents
from hybridmix.transforms.inputs import BATCH_BYTES, ReadSpec, iter_row_group, plan_inputs
from tests.builders import make_config, words, write_parquet
from tests.conftest import local_pipeline


def _corpus(tmp_path, rows, schema=None, **corpus):
    write_parquet(tmp_path / "human" / "a.parquet", rows, schema=schema)
    write_parquet(tmp_path / "synth" / "b.parquet", [{"id": "s1", "text": words(9, 20), "model": "m"}])
    base = {"name": "human", "origin": "human", "paths": ["human/*.parquet"], "id_column": "id"}
    base.update(corpus)
    targets = {"human": 0.5, "synthetic": 0.5} if base["origin"] == "human" else {"synthetic": 1.0}
    config = make_config(corpora=[base, {"name": "synth", "origin": "synthetic", "paths": ["synth/*.parquet"],
                                         "id_column": "id", "columns": {"generator": "model"}}],
                         mixture={"targets": targets})
    plan = plan_inputs(config.ingest, str(tmp_path))
    return config, plan


def _build(config, plan, file_index=0):
    import pyarrow.parquet as pq

    f = plan.files[file_index]
    batch = pq.read_table(f.path).to_batches()[0]
    return build_documents(batch, ReadSpec(config.ingest, plan, "run-1"), f, 0)


def test_bad_rows_are_rejected_with_reason_file_and_row(tmp_path):
    rows = [
        {"id": "a", "text": "good text here"},
        {"id": "b", "text": None},
        {"id": "c", "text": ""},
        {"id": "d", "text": "   \n\t "},
        {"id": None, "text": "no id"},
        {"id": "f", "text": "also good"},
    ]
    config, plan = _corpus(tmp_path, rows)
    built = _build(config, plan)
    assert built.docs.column("doc_id").to_pylist() == ["a", "f"]
    rejects = built.rejects.to_pylist()
    assert [(r["source_row"], r["reason"]) for r in rejects] == [
        (1, RejectReason.NULL_TEXT), (2, RejectReason.EMPTY_TEXT), (3, RejectReason.EMPTY_TEXT),
        (4, RejectReason.NULL_ID)]
    assert {r["source_file"] for r in rejects} == {os.path.join("human", "a.parquet")}
    assert rejects[3]["text"] == "no id"


def test_empty_is_what_arrow_trims_to_nothing_or_to_invisible_characters(tmp_path):
    # Every code point of the BMP alone, and runs of them: a text is empty when Arrow's trim leaves
    # nothing, or only default-ignorable code points (zero-width spaces, byte order marks, direction
    # marks), which the normalized text leaves out: such a text has no words.
    points = [c for c in range(0x10000) if not 0xD800 <= c < 0xE000]
    texts = ["\u3000\u2029 \x85\x1c\t", " \u200b ", "\u00a0x\u00a0", "", "\ufeff\u200f\u200e", "\u200bx"]
    texts += [chr(c) for c in points] + ["\U000e0041\U000e0042"]  # tag characters, outside the BMP
    rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)]
    config, plan = _corpus(tmp_path, rows)
    built = _build(config, plan)
    empty = {r["source_row"] for r in built.rejects.to_pylist() if r["reason"] == RejectReason.EMPTY_TEXT}
    trimmed = pc.utf8_length(pc.utf8_trim_whitespace(pa.array(texts))).to_numpy()
    invisible = {i for i, t in enumerate(texts) if t and all(kernels.ignorable(ch) or ch.isspace() for ch in t)}
    assert empty == set(np.flatnonzero(trimmed == 0).tolist()) | invisible
    # Arrow's (and str.isspace's) 29 whitespace characters, the BMP's 66 default-ignorable ones, the
    # whitespace run, "", the run with a zero-width space, the two invisible runs
    assert len(empty) == 29 + 66 + 5 and 5 not in empty


def test_text_column_of_wrong_type_rejects_every_row(tmp_path):
    config, plan = _corpus(tmp_path, [{"id": "a", "text": 5}, {"id": "b", "text": 6}])
    built = _build(config, plan)
    assert built.docs.num_rows == 0
    assert built.rejects.column("reason").to_pylist() == [RejectReason.TEXT_NOT_STRING] * 2
    assert "int64" in built.rejects.column("detail")[0].as_py()


def test_binary_text_decodes_or_rejects_invalid_utf8(tmp_path):
    schema = pa.schema([("id", pa.string()), ("text", pa.binary())])
    config, plan = _corpus(tmp_path, [{"id": "a", "text": "fine".encode()}, {"id": "b", "text": b"\xff\xfe bad"}],
                           schema=schema)
    built = _build(config, plan)
    assert built.docs.column("text").to_pylist() == ["fine"]
    assert built.rejects.column("reason").to_pylist() == [RejectReason.INVALID_UTF8]


def test_missing_and_blank_ids_are_null_ids(tmp_path):
    # pandas writes a missing value of a float column as NaN: a null id, not the id "nan".
    schema = pa.schema([("id", pa.float64()), ("text", pa.string())])
    rows = [{"id": 1.0, "text": "one"}, {"id": float("nan"), "text": "two"}, {"id": None, "text": "three"},
            {"id": float("nan"), "text": "four"}]
    config, plan = _corpus(tmp_path, rows, schema=schema)
    built = _build(config, plan)
    assert built.docs.column("doc_id").to_pylist() == ["1"]
    assert built.rejects.column("reason").to_pylist() == [RejectReason.NULL_ID] * 3
    blank = [{"id": i, "text": t} for i, t in (("a", "kept"), (" ", "blank"), ("\t\u3000", "blank too"), ("", "empty"))]
    config, plan = _corpus(tmp_path / "blank", blank)
    built = _build(config, plan)
    assert built.docs.column("doc_id").to_pylist() == ["a"]
    assert built.rejects.column("reason").to_pylist() == [RejectReason.NULL_ID] * 3
    assert "is null, empty or only whitespace" in built.rejects.column("detail")[0].as_py()


@pytest.mark.parametrize("width", [16, 4])
def test_fixed_width_binary_ids_are_hex(tmp_path, width):
    """Keys, not text: UUIDs (16 bytes, Parquet's UUID type) in their standard form, other widths as hex.
    Decoded as UTF-8, random UUIDs were rejected as invalid UTF-8, and bytes 0x09-0x0d as blank ids."""
    keys = [bytes(range(k, k + width)) for k in (0, 9, 200)] + [None]
    schema = pa.schema([("id", pa.binary(width)), ("text", pa.string())])
    config, plan = _corpus(tmp_path, [{"id": k, "text": words(n, 12)} for n, k in enumerate(keys)], schema=schema)
    built = _build(config, plan)
    expected = [str(uuid.UUID(bytes=k)) if width == 16 else k.hex() for k in keys[:3]]
    assert built.docs.column("doc_id").to_pylist() == expected
    assert width != 16 or expected[0] == "00010203-0405-0607-0809-0a0b0c0d0e0f"
    assert built.rejects.column("reason").to_pylist() == [RejectReason.NULL_ID]


def test_provenance_mapping_defaults_and_meta(tmp_path):
    rows = [{"id": "a", "text": "x y z", "lic": None, "gen": 2, "m": "gpt", "p": "seed-1", "extra": 7},
            {"id": "b", "text": "u v w", "lic": "MIT", "gen": None, "m": None, "p": None, "extra": 8}]
    config, plan = _corpus(
        tmp_path, rows, name="human", origin="synthetic",
        columns={"license": "lic", "generation": "gen", "generator": "m", "parent_id": "p"},
        defaults={"license": "CC0", "generator": "unknown"}, keep_columns=["extra"])
    docs = _build(config, plan).docs.to_pylist()
    assert [d["license"] for d in docs] == ["CC0", "MIT"]
    assert [d["generation"] for d in docs] == [2, 1]
    assert [d["generator"] for d in docs] == ["gpt", "unknown"]
    assert [d["parent_id"] for d in docs] == ["seed-1", None]
    assert json.loads(docs[0]["meta"]) == {"extra": 7}
    assert docs[0]["origin"] == "synthetic"


def test_keep_columns_mapping_names_the_meta_keys(tmp_path):
    rows = [{"id": "a", "text": "x y z", "source": "Du Fu", "n": 3}]
    config, plan = _corpus(tmp_path, rows, keep_columns={"title": "source", "n": "n", "again": "n"})
    meta = json.loads(_build(config, plan).docs.column("meta")[0].as_py())
    assert meta == {"title": "Du Fu", "n": 3, "again": 3}
    with pytest.raises(SchemaError, match=r"column 'nope' \(corpora\[0\].keep_columns\) not found"):
        _corpus(tmp_path / "missing", rows, keep_columns={"title": "nope"})


def test_generation_outside_the_origin_range_is_rejected(tmp_path):
    rows = [{"id": "a", "text": "x", "gen": 0}, {"id": "b", "text": "y", "gen": 3}]
    config, plan = _corpus(tmp_path, rows, origin="synthetic", columns={"generation": "gen"})
    built = _build(config, plan)
    assert built.docs.column("doc_id").to_pylist() == ["b"]
    assert built.rejects.column("reason").to_pylist() == [RejectReason.BAD_GENERATION]


def test_derived_ids_are_content_addressed(tmp_path):
    config, plan = _corpus(tmp_path, [{"text": "Same text"}, {"text": "same  TEXT"}, {"text": "other"}],
                           id_column=None)
    docs = _build(config, plan).docs
    ids = docs.column("doc_id").to_pylist()
    assert ids[0] == ids[1] != ids[2]
    assert ids == [f"human/{h[:16]}" for h in docs.column("content_hash").to_pylist()]


def test_plan_errors_name_the_file(tmp_path):
    config, _ = _corpus(tmp_path, [{"id": "a", "text": "x"}])
    (tmp_path / "human" / "zz.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match=r"zz.parquet: cannot read as Parquet"):
        plan_inputs(config.ingest, str(tmp_path))
    (tmp_path / "human" / "zz.parquet").write_bytes(b"")
    with pytest.raises(DataError, match=r"zz.parquet: file is empty"):
        plan_inputs(config.ingest, str(tmp_path))
    os.remove(tmp_path / "human" / "zz.parquet")
    write_parquet(tmp_path / "human" / "zz.parquet", [{"id": "a", "body": "x"}])
    with pytest.raises(SchemaError, match=r"zz.parquet: column 'text' \(corpora\[0\].text_column\) not found"):
        plan_inputs(config.ingest, str(tmp_path))


def test_files_described_side_by_side_keep_their_order_and_numbers(tmp_path):
    # Planning describes Parquet files on several threads: the plan must still list every corpus's
    # files in path order, numbered 0, 1, ... without the quarantined ones, each hashed whole, and
    # under on_bad_file: fail the error must be the first bad file's, whichever thread finished first.
    import hashlib

    for f in range(12):
        # Every third file is over 64 KiB, so both ways a file is fingerprinted are taken.
        text = words(f, 20000 if f % 3 == 0 else 12)
        write_parquet(tmp_path / "human" / f"p{f:02d}.parquet", [{"id": f"h{f}", "text": text}])
    for bad in ("p03x", "p07x"):
        (tmp_path / "human" / f"{bad}.parquet").write_bytes(b"not parquet" * (10000 if bad == "p03x" else 1))
    (tmp_path / "human" / "p05.jsonl").write_text('{"id": "j5", "text": "a line of json"}\n')
    write_parquet(tmp_path / "synth" / "b.parquet", [{"id": "s1", "text": words(99, 12), "model": "m"}])
    corpora = [{"name": "human", "origin": "human", "paths": ["human/*"], "id_column": "id"},
               {"name": "synth", "origin": "synthetic", "paths": ["synth/*.parquet"], "id_column": "id",
                "columns": {"generator": "model"}}]
    plan = plan_inputs(make_config(corpora=corpora, on_bad_file="quarantine").ingest, str(tmp_path))
    names = [os.path.basename(f.path) for f in plan.files]
    assert names == [f"p{f:02d}.parquet" for f in range(5)] + ["p05.jsonl"] + [
        f"p{f:02d}.parquet" for f in range(5, 12)] + ["b.parquet"]
    assert [f.index for f in plan.files] == list(range(len(names)))
    for f in plan.files:
        assert f.sha256 == hashlib.sha256(open(f.path, "rb").read()).hexdigest(), f.path
    assert [os.path.basename(b.path) for b in plan.bad_files] == ["p03x.parquet", "p07x.parquet"]
    with pytest.raises(DataError, match=r"p03x.parquet: cannot read as Parquet"):
        plan_inputs(make_config(corpora=corpora).ingest, str(tmp_path))


def test_long_documents_come_in_batches_of_bounded_bytes(tmp_path, monkeypatch):
    """Books: a batch of read_batch_rows rows would pass what one Arrow array and Beam's size estimate
    hold (2 GiB), so rows per batch shrink with the row group's bytes per row, and joining short
    batches stops at BATCH_BYTES also in the in-process runner (whose reads are unsliced). Here
    BATCH_BYTES is 20 KB and a document 1-2 KB: 2 GiB and 200 KB documents at scale."""
    from hybridmix.pipelines.build import read_as
    from hybridmix.transforms import ingest, inputs

    monkeypatch.setattr(inputs, "BATCH_BYTES", 20_000)
    monkeypatch.setattr(ingest, "BATCH_BYTES", 20_000)
    # One file of one 300-row row group, and many files of 40 rows each (each read as one short batch).
    write_parquet(tmp_path / "human" / "a.parquet", [{"id": f"a{r}", "text": words(r, 250)} for r in range(300)])
    for f in range(12):
        write_parquet(tmp_path / "human" / f"b{f:02d}.parquet",
                      [{"id": f"b{f}-{r}", "text": words(1000 + 40 * f + r, 250)} for r in range(40)])
    write_parquet(tmp_path / "synth" / "b.parquet", [{"id": "s1", "text": words(999, 12), "model": "m"}])
    config = make_config(read_batch_rows=128)
    plan = plan_inputs(config.ingest, str(tmp_path))
    big = plan.files[0]
    per_row = big.unit_bytes(0, 1)
    assert 1_000 < per_row < 3_000
    rows = 20_000 // per_row
    read = [b.num_rows for b, _ in iter_row_group(big, 0, 128, ReadSpec(config.ingest, plan, "r").corpus(big))]
    assert read == [rows] * (300 // rows) + ([300 % rows] if 300 % rows else [])
    p = local_pipeline()
    out = p | ReadCorpora(ReadSpec(read_as(config.ingest, p.options), plan, "run-1"))
    batches = out.docs | "Sizes" >> beam.Map(lambda b: (b.num_rows, b.column("text").nbytes,
                                                        tuple(b.column("doc_id").to_pylist())))

    def check(found):
        assert sorted(i for _, _, ids in found for i in ids) == sorted(
            [f"a{r}" for r in range(300)] + [f"b{f}-{r}" for f in range(12) for r in range(40)] + ["s1"])
        # Each batch read holds at most 20 KB, and a joined one stops at the first that takes it to 20 KB.
        assert max(text for _, text, _ in found) < 2 * 20_000, sorted((n, t) for n, t, _ in found)

    assert_that(batches, check)
    p.run()


def test_batch_bytes_count_only_the_columns_read(tmp_path, monkeypatch):
    """A page's HTML beside its text (20x its size, not read) made every batch of long documents
    20x smaller than BATCH_BYTES allows; a nested kept column counts, all of its leaves."""
    from hybridmix.transforms import inputs

    monkeypatch.setattr(inputs, "BATCH_BYTES", 20_000)
    rows = [{"id": f"a{r}", "text": words(r, 150), "html": f"<p>{r}" * 7_000, "extra": {"k": f"v{r}" * 250, "n": r}}
            for r in range(200)]
    write_parquet(tmp_path / "human" / "a.parquet", rows)
    write_parquet(tmp_path / "synth" / "b.parquet", [{"id": "s1", "text": words(999, 12), "model": "m"}])
    config = make_config(read_batch_rows=128)
    plan = plan_inputs(config.ingest, str(tmp_path))
    per_row = plan.files[0].unit_bytes(0, 1)
    assert 800 < per_row < 1_500, per_row
    kept = make_config(read_batch_rows=128, corpora=[
        {**config.corpora[0].model_dump(mode="json", exclude_none=True), "keep_columns": ["extra"]},
        config.corpora[1].model_dump(mode="json", exclude_none=True)])
    assert plan_inputs(kept.ingest, str(tmp_path)).files[0].unit_bytes(0, 1) > per_row + 500
    spec = ReadSpec(config.ingest, plan, "r")
    read = [b.num_rows for b, _ in iter_row_group(plan.files[0], 0, 128, spec.corpus(plan.files[0]))]
    assert sum(read) == 200 and read[0] == 20_000 // per_row


@pytest.mark.parametrize("stored", ["dictionary", "repeated"])
def test_text_a_dictionary_holds_once_is_read_in_batches_of_bounded_bytes(tmp_path, monkeypatch, stored):
    """A text that repeats is stored once in a dictionary, so the footer's sizes do not bound what the
    rows decode to: one 600 KB answer 4,000 times (0.7 MB by the footer) read as 2.4 GB, a categorical
    column of 5 MB texts as more than 2 GiB (both stopped the run). Batches are cut by what they decode
    to: BATCH_BYTES is 20 KB here, the repeated text 5 KB."""
    from hybridmix.transforms import inputs

    monkeypatch.setattr(inputs, "BATCH_BYTES", 20_000)
    long = words(7, 900)
    texts = [words(r, 20) if r % 10 else long for r in range(400)]
    if stored == "dictionary":
        others = [r for r in range(400) if r % 10]
        at = {r: k + 1 for k, r in enumerate(others)}
        column = pa.DictionaryArray.from_arrays(pa.array([at.get(r, 0) for r in range(400)], pa.int32()),
                                                pa.array([long] + [texts[r] for r in others]))
    else:
        column = pa.array(texts)
    os.makedirs(tmp_path / "human")
    pq.write_table(pa.table({"id": [f"a{r}" for r in range(400)], "text": column}), tmp_path / "human" / "a.parquet")
    write_parquet(tmp_path / "synth" / "b.parquet", [{"id": "s1", "text": words(999, 12), "model": "m"}])
    config = make_config(read_batch_rows=1000)
    plan = plan_inputs(config.ingest, str(tmp_path))
    # The footer's view: a fraction of what the rows hold.
    assert plan.files[0].unit_bytes(0, 400) * 3 < sum(len(t.encode()) for t in texts)
    spec = ReadSpec(config.ingest, plan, "r")
    batches = [b for b, _ in iter_row_group(plan.files[0], 0, 1000, spec.corpus(plan.files[0]))]
    assert len(batches) > 1
    decoded = [sum(len(t.encode()) for t in b.column("text").to_pylist()) for b in batches]
    assert max(decoded) <= 20_000
    assert [t for b in batches for t in b.column("text").to_pylist()] == texts
    built = [build_documents(b, spec, plan.files[0], sum(x.num_rows for x in batches[:i])).docs
             for i, b in enumerate(batches)]
    assert [d for b in built for d in b.column("doc_id").to_pylist()] == [f"a{r}" for r in range(400)]


def test_nested_column_past_two_gib_in_one_batch_is_read_in_smaller_batches(tmp_path):
    """Arrow returns a nested column in one array, and one batch of a struct kept in `meta` whose
    strings pass 2 GiB could not be read ('Nested data conversions not implemented for chunked array
    outputs'): the file was rejected as damaged. The footer cannot warn: one 1 MB note repeated 2,200
    times is stored once, in a dictionary."""
    note = "n" * 1_000_000
    rows = 2_200
    info = pa.StructArray.from_arrays(
        [pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int32)), pa.array([note])),
         pa.array(np.arange(rows))], names=["note", "k"])
    os.makedirs(tmp_path / "human")
    pq.write_table(pa.table({"id": [f"a{r}" for r in range(rows)], "text": [words(r, 12) for r in range(rows)],
                             "info": info}), tmp_path / "human" / "a.parquet",
                   store_schema=False)  # as other writers store it: a reader decodes the note
    write_parquet(tmp_path / "synth" / "b.parquet", [{"id": "s1", "text": words(999, 12), "model": "m"}])
    config = make_config(read_batch_rows=8192)
    config = make_config(read_batch_rows=8192, corpora=[
        {**config.corpora[0].model_dump(mode="json", exclude_none=True), "keep_columns": ["info"]},
        config.corpora[1].model_dump(mode="json", exclude_none=True)])
    plan = plan_inputs(config.ingest, str(tmp_path))
    assert plan.files[0].unit_bytes(0, rows) < 4 << 20  # the footer's view, of 2.2 GB
    spec = ReadSpec(config.ingest, plan, "r")
    ids, keys, notes = [], [], 0
    for batch, _ in iter_row_group(plan.files[0], 0, 8192, spec.corpus(plan.files[0])):
        assert batch.num_rows <= BATCH_BYTES // len(note)  # and batches hold what others do
        ids += batch.column("id").to_pylist()
        nested = batch.column("info")
        keys += nested.field("k").to_pylist()
        notes += int(pc.sum(pc.binary_length(nested.field("note").cast(pa.string()))).as_py())
    assert ids == [f"a{r}" for r in range(rows)] and keys == list(range(rows)) and notes == rows * len(note)


def test_glob_matching_nothing_is_an_error(tmp_path):
    config, _ = _corpus(tmp_path, [{"id": "a", "text": "x"}])
    os.remove(tmp_path / "human" / "a.parquet")
    with pytest.raises(DataError, match=r"corpora\[0\] \(human\): no file matches 'human/\*.parquet'"):
        plan_inputs(config.ingest, str(tmp_path))


def test_small_files_come_out_as_few_batches_holding_every_row(tmp_path):
    # Thousands of small files must not cost the steps after reading a batch each (filters, scorer,
    # MinHash, a spill file per batch): batches under half of read_batch_rows are joined.
    for f in range(30):
        write_parquet(tmp_path / "human" / f"part-{f:02d}.parquet",
                      [{"id": f"h{f}-{r}", "text": words(f * 10 + r, 12)} for r in range(1 + f % 3)])
    write_parquet(tmp_path / "synth" / "b.parquet", [{"id": "s1", "text": words(999, 12), "model": "m"}])
    config = make_config(read_batch_rows=16)
    plan = plan_inputs(config.ingest, str(tmp_path))
    p = local_pipeline()
    out = p | ReadCorpora(ReadSpec(config.ingest, plan, "run-1"))
    batches = out.docs | "Batches" >> beam.Map(lambda b: (b.num_rows, tuple(b.column("doc_id").to_pylist())))
    ids = [f"h{f}-{r}" for f in range(30) for r in range(1 + f % 3)] + ["s1"]

    def check(found):
        assert sorted(i for _, batch in found for i in batch) == sorted(ids)
        assert len(found) <= 3 + len(ids) // 8, [n for n, _ in found]  # 61 rows: 30 files, 8 rows a batch

    assert_that(batches, check)
    p.run().wait_until_finish()


def test_a_folder_named_with_brackets_is_matched_with_an_escaped_bracket(tmp_path, recwarn):
    write_parquet(tmp_path / "data [2024]" / "a.parquet", [{"id": "a", "text": "x"}])
    with pytest.raises(DataError, match=r"write \[\[\] for a literal \["):
        _corpus(tmp_path, [{"id": "b", "text": "y"}], paths=["data [2024]/*.parquet"])
    _, plan = _corpus(tmp_path, [{"id": "b", "text": "y"}], paths=["data [[]2024]/*.parquet"])
    assert [f.display for f in plan.files][:1] == ["data [2024]/a.parquet"]
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]


def test_read_corpora_splits_rows_and_counts_them(tmp_path):
    rows = [{"id": f"h{i}", "text": words(i, 12) if i % 4 else None} for i in range(40)]
    write_parquet(tmp_path / "human" / "a.parquet", rows, row_group_size=7)
    write_parquet(tmp_path / "synth" / "b.parquet", [{"id": "s1", "text": words(99, 12), "model": "m"}])
    config = make_config(read_batch_rows=16)
    plan = plan_inputs(config.ingest, str(tmp_path))
    assert plan.files[0].row_group_rows == (7, 7, 7, 7, 7, 5)
    p = local_pipeline()
    out = p | ReadCorpora(ReadSpec(config.ingest, plan, "run-1"))
    doc_ids = out.docs | "DocIds" >> beam.FlatMap(lambda b: b.column("doc_id").to_pylist())
    rejected_rows = out.rejected | "RejectRows" >> beam.FlatMap(lambda b: b.column("source_row").to_pylist())
    stats = out.stats | beam.CombinePerKey(sum)
    assert_that(doc_ids, equal_to([f"h{i}" for i in range(40) if i % 4] + ["s1"]), label="docs")
    assert_that(rejected_rows, equal_to([i for i in range(40) if i % 4 == 0]), label="rejects")
    assert_that(stats, equal_to([
        ((Figure.READ.value, "human", ""), 40), ((Figure.READ.value, "synth", ""), 1),
        ((Figure.REJECTED.value, "human", ""), 10),
        ((Figure.REJECTED_BY_REASON.value, "human", "ingest_null_text"), 10)]), label="stats")
    p.run().wait_until_finish()


def test_a_file_named_with_brackets_is_that_file(tmp_path):
    """`part[1].parquet` names a file that exists; as a glob it would match `part1.parquet` instead."""
    from hybridmix.transforms.inputs import match_files

    (tmp_path / "part[1].parquet").write_bytes(b"x")
    (tmp_path / "part1.parquet").write_bytes(b"yy")
    found = match_files("part[1].parquet", str(tmp_path), "corpora[0]", "c")
    assert [(os.path.basename(p), size) for p, size, _ in found] == [("part[1].parquet", 1)]
    found = match_files("part[12].parquet", str(tmp_path), "corpora[0]", "c")
    assert [os.path.basename(p) for p, _, _ in found] == ["part1.parquet"]
