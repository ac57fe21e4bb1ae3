"""Bad inputs, each in both modes: `on_bad_file: fail` stops with a clear error naming the file
(and row); `quarantine` routes the rows to rejects/ with the reason and the accounting holds."""

import glob
import json
import os
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from hybridmix.pipelines.cli import main
from hybridmix.schemas.records import DOCUMENT_SCHEMA, REJECTION_SCHEMA
from tests.builders import words, write_config, write_parquet

HUMAN = [{"id": f"h{i:02d}", "text": words(300 + i, 40)} for i in range(12)]
SYNTH = [{"id": f"s{i:02d}", "text": words(600 + i, 40), "model": "m"} for i in range(12)]


def _setup(tmp_path, on_bad_file="fail", mixture=None, **corpus_overrides):
    write_parquet(tmp_path / "in" / "human" / "a.parquet", HUMAN)
    write_parquet(tmp_path / "in" / "synth" / "b.parquet", SYNTH)
    human = {"name": "wiki", "origin": "human", "paths": ["human/*.parquet"], "id_column": "id"}
    human.update(corpus_overrides)
    return write_config(tmp_path / "in" / "config.yaml", {
        "corpora": [human, {"name": "chat", "origin": "synthetic", "paths": ["synth/*.parquet"],
                            "id_column": "id", "columns": {"generator": "model"}}],
        "mixture": mixture or {"targets": {"human": 0.5, "synthetic": 0.5}},
        "on_bad_file": on_bad_file,
        "partitions": 3,
    })


def _run(tmp_path, config, capsys):
    out = tmp_path / "out"
    code = main(["run", config, "--output", str(out)])
    err = capsys.readouterr().err
    return code, err, out


def _rejects(out):
    files = sorted(glob.glob(str(out / "rejects" / "*.parquet")))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else REJECTION_SCHEMA.empty_table()


def _accounted(out):
    manifest = json.loads((out / "manifest.json").read_text())
    for source, c in manifest["counts"].items():
        assert c["read"] == sum(c[k] for k in ("rejected", "filtered", "exact_duplicates", "near_duplicates",
                                               "not_selected", "selected")), source
    rows = _rejects(out).column("source_row")
    assert (pa.compute.sum(rows.is_valid()).as_py() or 0) == manifest["totals"]["rejected"]
    return manifest


def _truncated(path):
    write_parquet(path, HUMAN[:5])
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _not_parquet(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").write("id,text\n1,hello\n")


def _empty(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()


def _broken_link(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(str(path) + ".gone", path)


FILE_PROBLEMS = {
    "truncated": (_truncated, "cannot read as Parquet"),
    "not-parquet": (_not_parquet, "cannot read as Parquet"),
    "empty-file": (_empty, "file is empty (0 bytes), not Parquet"),
    "unreadable": (_broken_link, "cannot read: no such file (a dangling link?)"),
}


@pytest.mark.parametrize("problem", sorted(FILE_PROBLEMS))
def test_unusable_file_fails_naming_it(tmp_path, capsys, problem):
    make, message = FILE_PROBLEMS[problem]
    config = _setup(tmp_path)
    make(tmp_path / "in" / "human" / "z.parquet")
    code, err, out = _run(tmp_path, config, capsys)
    assert code == 3, err
    assert f"human/z.parquet: {message}" in err
    assert not out.exists()


@pytest.mark.parametrize("problem", sorted(FILE_PROBLEMS))
def test_unusable_file_is_quarantined(tmp_path, capsys, problem):
    make, message = FILE_PROBLEMS[problem]
    config = _setup(tmp_path, on_bad_file="quarantine")
    make(tmp_path / "in" / "human" / "z.parquet")
    code, err, out = _run(tmp_path, config, capsys)
    assert code == 0, err
    manifest = _accounted(out)
    bad = [r for r in _rejects(out).to_pylist() if r["source_file"] == os.path.join("human", "z.parquet")]
    assert len(bad) == 1 and bad[0]["source_row"] is None
    assert bad[0]["reason"] == "ingest_unreadable_file" and message in bad[0]["detail"]
    listed = {i["path"]: i for i in manifest["inputs"]}
    assert listed[os.path.join("human", "z.parquet")]["status"] == "quarantined"
    assert manifest["counts"]["wiki"]["read"] == len(HUMAN)


def test_zero_row_file_is_fine(tmp_path, capsys):
    config = _setup(tmp_path)
    write_parquet(tmp_path / "in" / "human" / "z.parquet", [], schema=pa.schema([("id", pa.string()), ("text", pa.string())]))
    code, err, out = _run(tmp_path, config, capsys)
    assert code == 0, err
    manifest = _accounted(out)
    assert {i["path"]: i["rows"] for i in manifest["inputs"]}[os.path.join("human", "z.parquet")] == 0


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
def test_file_without_the_text_column(tmp_path, capsys, mode):
    config = _setup(tmp_path, on_bad_file=mode)
    write_parquet(tmp_path / "in" / "human" / "z.parquet", [{"id": f"z{i}", "body": "x"} for i in range(7)])
    code, err, out = _run(tmp_path, config, capsys)
    if mode == "fail":
        assert code == 3, err
        assert "human/z.parquet: column 'text' (corpora[0].text_column) not found; the file has id, body" in err
        return
    assert code == 0, err
    manifest = _accounted(out)
    bad = [r for r in _rejects(out).to_pylist() if r["reason"] == "ingest_missing_column"]
    assert sorted(r["source_row"] for r in bad) == list(range(7))
    assert manifest["counts"]["wiki"]["read"] == len(HUMAN) + 7


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
def test_files_of_one_corpus_with_different_schemas(tmp_path, capsys, mode):
    config = _setup(tmp_path, on_bad_file=mode, columns={"url": "link"})
    write_parquet(tmp_path / "in" / "human" / "a.parquet", [dict(r, link="u") for r in HUMAN])
    # Same corpus: large_string text and no `link` column.
    write_parquet(tmp_path / "in" / "human" / "b.parquet", [{"id": "h99", "text": words(99, 30)}],
                  schema=pa.schema([("id", pa.string()), ("text", pa.large_string())]))
    code, err, out = _run(tmp_path, config, capsys)
    if mode == "fail":
        assert code == 3 and "human/b.parquet: column 'link' (corpora[0].columns.url) not found" in err
        return
    assert code == 0, err
    _accounted(out)
    assert [r["source_file"] for r in _rejects(out).to_pylist()] == [os.path.join("human", "b.parquet")]


@pytest.mark.parametrize(
    "values, arrow_type, reason",
    [([1, 2], pa.int64(), "ingest_text_not_string"),
     ([b"ok text", b"\xff\xfe bad"], pa.binary(), "ingest_invalid_utf8"),
     ([["a", "b"], ["c"]], pa.list_(pa.string()), "ingest_text_not_string"),
     ([None, None], pa.null(), "ingest_null_text")],
    ids=["integer", "binary-invalid-utf8", "list", "null-type"],
)
def test_text_of_the_wrong_type_is_rejected_per_row(tmp_path, capsys, values, arrow_type, reason):
    config = _setup(tmp_path)
    schema = pa.schema([("id", pa.string()), ("text", arrow_type)])
    write_parquet(tmp_path / "in" / "human" / "z.parquet",
                  [{"id": f"z{i}", "text": v} for i, v in enumerate(values)], schema=schema)
    code, err, out = _run(tmp_path, config, capsys)
    assert code == 0, err
    _accounted(out)
    rows = [r for r in _rejects(out).to_pylist() if r["source_file"].endswith("z.parquet")]
    assert reason in {r["reason"] for r in rows}


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
@pytest.mark.parametrize("where", ["within", "across"])
def test_duplicate_ids(tmp_path, capsys, mode, where):
    config = _setup(tmp_path, on_bad_file=mode)
    clash = "h03" if where == "within" else "s05"
    write_parquet(tmp_path / "in" / "human" / "z.parquet", [{"id": clash, "text": words(999, 30)}])
    code, err, out = _run(tmp_path, config, capsys)
    first = "human/a.parquet row 3" if where == "within" else "synth/b.parquet row 5"
    if where == "across":
        # Files are ordered by corpus, then path: the human file comes first.
        first = "human/z.parquet row 0"
    if mode == "fail":
        assert code == 3, err
        assert f"doc_id '{clash}' is already used by {first}" in err
        return
    assert code == 0, err
    manifest = _accounted(out)
    dup = [r for r in _rejects(out).to_pylist() if r["reason"] == "ingest_duplicate_id"]
    assert len(dup) == 1 and dup[0]["doc_id"] == clash
    assert manifest["quality"]["rejects_by_reason"]["ingest_duplicate_id"]


def _folder(out, name):
    files = sorted(glob.glob(str(out / name / "*.parquet")))
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []


@pytest.mark.parametrize("mode", ["fail", "quarantine"], ids=["fail", "quarantine"])
@pytest.mark.parametrize("filtered_row", [0, 1], ids=["first-copy-filtered", "later-copy-filtered"])
def test_duplicate_id_with_a_filtered_copy(tmp_path, capsys, mode, filtered_row):
    # The quality filters run before the id check: a copy they drop must still count as a use of its id.
    config = _setup(tmp_path, on_bad_file=mode)
    rows = [{"id": "dup", "text": words(999, 30)}, {"id": "dup", "text": words(998, 30)}]
    rows[filtered_row]["text"] = "Hi"  # one word: word_count drops it
    write_parquet(tmp_path / "in" / "human" / "z.parquet", rows)
    code, err, out = _run(tmp_path, config, capsys)
    if mode == "fail":
        assert code == 3, err
        assert "human/z.parquet row 1: doc_id 'dup' is already used by human/z.parquet row 0" in err
        return
    assert code == 0, err
    manifest = _accounted(out)
    dup = [r for r in _rejects(out).to_pylist() if r["reason"] == "ingest_duplicate_id"]
    assert [(r["doc_id"], r["source_row"]) for r in dup] == [("dup", 1)]
    filtered = [r for r in _folder(out, "filtered") if r["doc_id"] == "dup"]
    assert [r["source_row"] for r in filtered] == ([0] if filtered_row == 0 else [])
    assert manifest["counts"]["wiki"]["filtered"] == sum(r["source"] == "wiki" for r in _folder(out, "filtered"))
    data = [r for r in _folder(out, "data") if r["doc_id"] == "dup"]
    assert [r["source_row"] for r in data] == ([] if filtered_row == 0 else [0])
    fates = sorted((r["source_row"], r["fate"]) for r in _folder(out, "ledger") if r["doc_id"] == "dup")
    assert fates == [(0, "filtered" if filtered_row == 0 else "selected"), (1, "rejected")]


def test_repeated_derived_id_with_a_filtered_copy_is_numbered(tmp_path, capsys):
    # Corpora without ids name a document by its text: the same answer twice, one copy dropped for
    # echoing its prompt, gives two documents, and the later one's id is numbered in filtered/ too.
    answer = words(777, 30)
    prompts = {0: "Tell me something.", 1: answer}  # row 1 echoes its prompt
    config = _setup(tmp_path, on_bad_file="quarantine", id_column=None, prompt_column="prompt")
    write_parquet(tmp_path / "in" / "human" / "a.parquet", [
        {"text": answer, "prompt": prompts[r]} for r in (0, 1)] + [
        {"text": h["text"], "prompt": "Q"} for h in HUMAN])
    data = yaml.safe_load(open(config))
    data["quality"] = {"filters": [{"name": "prompt_echo", "mode": "drop"}]}
    config = write_config(config, data)
    code, err, out = _run(tmp_path, config, capsys)
    assert code == 0, err
    _accounted(out)
    filtered = _folder(out, "filtered")
    assert [(r["source_row"], r["filter"]) for r in filtered] == [(1, "prompt_echo_v2")]
    kept = [r for r in _folder(out, "ledger") if r["source_row"] == 0 and r["source"] == "wiki"][0]
    assert filtered[0]["doc_id"] == kept["doc_id"] + "-1"
    assert kept["fate"] != "rejected" and not _rejects(out).num_rows


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
def test_corrupt_row_group(tmp_path, capsys, mode):
    config = _setup(tmp_path, on_bad_file=mode)
    path = tmp_path / "in" / "human" / "z.parquet"
    rows = [{"id": f"z{i:03d}", "text": words(2000 + i, 30)} for i in range(60)]
    pq.write_table(pa.Table.from_pylist(rows), path, compression="zstd", row_group_size=20)
    page = pq.ParquetFile(path).metadata.row_group(1).column(1).data_page_offset
    data = bytearray(open(path, "rb").read())
    for k in range(page + 20, page + 60):
        data[k] ^= 0xFF
    open(path, "wb").write(bytes(data))
    # `plan` samples the row groups as the run reads them: the same exit, not an internal error.
    assert main(["plan", config]) == (3 if mode == "fail" else 0)
    planned = capsys.readouterr()
    assert "internal error" not in planned.err
    if mode == "fail":
        assert "human/z.parquet: row group 1 cannot be read" in planned.err
    else:
        assert "feasible by the estimate" in planned.out
    code, err, out = _run(tmp_path, config, capsys)
    if mode == "fail":
        assert code == 3, err
        assert "human/z.parquet: rows 20..39 (row group 1) cannot be read" in err
        return
    assert code == 0, err
    # A warning is one line, in the form of hybridmix's errors, whatever lines Arrow's message holds.
    warned = [line for line in err.splitlines() if "quarantined" in line]
    assert len(warned) == 1, err
    assert warned[0].startswith("hybridmix: warning: quarantined human/z.parquet: rows 20..39 (row group 1) cannot "
                                "be read"), warned
    assert all(line.startswith("hybridmix") for line in err.splitlines() if line.strip()), err
    manifest = _accounted(out)
    bad = [r["source_row"] for r in _rejects(out).to_pylist() if r["reason"] == "ingest_unreadable_row_group"]
    assert sorted(bad) == list(range(20, 40))
    assert manifest["counts"]["wiki"]["read"] == len(HUMAN) + 60
    entry = [i for i in manifest["inputs"] if i["path"].endswith("z.parquet")][0]
    assert entry["status"] == "partly_quarantined"
    assert entry["problem"] == "20 of its 60 rows are in row groups that cannot be read (rejects/, " \
        "ingest_unreadable_row_group)"
    assert main(["inspect", str(out)]) == 0
    assert "quarantined input files: 0, and 1 in part" in capsys.readouterr().out


@pytest.mark.parametrize("quality", ["defaults", "off"])
def test_ten_megabyte_document(tmp_path, capsys, quality):
    config = _setup(tmp_path, mixture={"targets": {"human": 1.0, "synthetic": 0.0}})
    if quality == "off":
        text = open(config).read() + "quality: {enabled: false}\n"
        open(config, "w").write(text)
    rng = np.random.default_rng(5)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8)
    chunks = []
    while sum(len(c) for c in chunks) < 10_000_000:
        lengths = rng.integers(3, 10, 10_000)
        raw = letters[rng.integers(0, 26, int(lengths.sum()))].tobytes().decode()
        cuts = np.concatenate([[0], np.cumsum(lengths)])
        chunks.append(" ".join(raw[a:b] for a, b in zip(cuts[:-1], cuts[1:])) + ". ")
    big = "".join(chunks)
    write_parquet(tmp_path / "in" / "human" / "z.parquet", [{"id": "big", "text": big}])
    code, err, out = _run(tmp_path, config, capsys)
    assert code == 0, err
    _accounted(out)
    if quality == "defaults":
        # Gopher's 100,000-word ceiling: filtered, with the reason, not lost.
        filtered = pa.concat_tables([pq.read_table(f) for f in glob.glob(str(out / "filtered" / "*.parquet"))])
        assert filtered.select(["doc_id", "filter"]).to_pylist() == [{"doc_id": "big", "filter": "word_count_v3"}]
        return
    data = pa.concat_tables([pq.read_table(f) for f in glob.glob(str(out / "data" / "*.parquet"))])
    assert data.schema.equals(DOCUMENT_SCHEMA)
    texts = {r["doc_id"]: r["text"] for r in data.select(["doc_id", "text"]).to_pylist()}
    assert len(texts["big"]) == len(big) >= 10_000_000


def test_unknown_origin_label(tmp_path, capsys):
    config = _setup(tmp_path, origin="robot")
    code, err, _ = _run(tmp_path, config, capsys)
    assert code == 2
    assert "corpora[0].origin: Input should be 'human' or 'synthetic' (got 'robot')" in err


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
def test_glob_matching_nothing_is_an_error_in_both_modes(tmp_path, capsys, mode):
    config = _setup(tmp_path, on_bad_file=mode, paths=["nowhere/*.parquet"])
    code, err, _ = _run(tmp_path, config, capsys)
    assert code == 3
    assert "corpora[0] (wiki): no file matches 'nowhere/*.parquet'" in err


def _data(out):
    return pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(str(out / "data" / "*.parquet")))])


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
def test_dictionary_encoded_columns(tmp_path, capsys, mode):
    """What pandas writes for categoricals: text, id and generator read like plain columns, and bytes
    that are not UTF-8 inside a dictionary reject their row only."""
    config = _setup(tmp_path, on_bad_file=mode)
    texts = [r["text"].encode() for r in SYNTH]
    texts[3] = b"bad \xff\xfe " + texts[3]
    table = pa.table({
        "id": pa.array([r["id"] for r in SYNTH]).dictionary_encode(),
        "text": pa.array(texts, pa.binary()).view(pa.string()).dictionary_encode(),
        "model": pa.array(["m1" if i % 2 else "m2" for i in range(len(SYNTH))]).dictionary_encode(),
    })
    pq.write_table(table, tmp_path / "in" / "synth" / "b.parquet")
    assert pa.types.is_dictionary(pq.read_schema(tmp_path / "in" / "synth" / "b.parquet").field("model").type)
    code, err, out = _run(tmp_path, config, capsys)
    assert code == 0, err
    manifest = _accounted(out)
    assert [(r["doc_id"], r["reason"]) for r in _rejects(out).to_pylist()] == [("s03", "ingest_invalid_utf8")]
    assert manifest["counts"]["chat"]["read"] == len(SYNTH)
    synthetic = [r for r in _data(out).to_pylist() if r["origin"] == "synthetic"]
    assert synthetic and all(r["generator"] == ("m1" if int(r["doc_id"][1:]) % 2 else "m2") for r in synthetic)


def test_kept_columns_become_strict_json(tmp_path, capsys):
    """meta is JSON every parser reads: NaN and infinities as null, binary as text; a nested string
    that is not UTF-8 rejects its row instead of failing the run."""
    config = _setup(tmp_path, mixture={"targets": {"human": 1.0, "synthetic": 0.0}},
                    keep_columns=["score", "raw", "tags"])
    scores = [float("nan"), float("inf"), -float("inf")] + [i / 2 for i in range(3, len(HUMAN))]
    tags = [[f"t{i}".encode()] for i in range(len(HUMAN))]
    tags[5] = [b"ok", b"b\xff"]
    table = pa.table({
        "id": [r["id"] for r in HUMAN], "text": [r["text"] for r in HUMAN], "score": scores,
        # A binary column is bytes, not text: a digest that is not UTF-8 goes into meta as hex.
        "raw": pa.array([b"\xd5\x6b\x5c\xff" if i == 3 else f"r{i}".encode() for i in range(len(HUMAN))],
                        pa.binary()),
        "tags": pa.array(tags, pa.list_(pa.binary())).cast(pa.list_(pa.binary())).view(pa.list_(pa.string())),
    })
    pq.write_table(table, tmp_path / "in" / "human" / "a.parquet")
    code, err, out = _run(tmp_path, config, capsys)
    assert code == 0, err
    _accounted(out)
    assert [(r["doc_id"], r["reason"]) for r in _rejects(out).to_pylist()] == [("h05", "ingest_invalid_utf8")]
    meta = {r["doc_id"]: _strict_json(r["meta"]) for r in _data(out).to_pylist() if r["origin"] == "human"}
    assert len(meta) == len(HUMAN) - 1
    assert meta["h00"] == {"score": None, "raw": "r0", "tags": ["t0"]}
    assert meta["h03"]["raw"] == "d56b5cff"
    assert meta["h01"]["score"] is None and meta["h02"]["score"] is None
    assert meta["h04"] == {"score": 2.0, "raw": "r4", "tags": ["t4"]}


def test_kept_times_python_cannot_hold_are_written_as_arrow_writes_them(tmp_path, capsys):
    """pandas writes datetimes in nanoseconds: converting a kept timestamp[ns] with digits below the
    microsecond (or a time or duration in ns, or a date past 9999) stopped the run, internal error."""
    config = _setup(tmp_path, mixture={"targets": {"human": 1.0, "synthetic": 0.0}},
                    keep_columns=["at", "clock", "took", "until", "day"])
    n = len(HUMAN)
    table = pa.table({
        "id": [r["id"] for r in HUMAN], "text": [r["text"] for r in HUMAN],
        "at": pa.array([1700000000123456789 + i for i in range(n)], pa.timestamp("ns", "UTC")),
        "clock": pa.array([3723123456789] * n, pa.time64("ns")),
        "took": pa.array([1234567891] * n, pa.duration("ns")),
        "until": pa.array([253402300800000000] * n, pa.timestamp("us")),  # 10000-01-01
        "day": pa.array([19000] * n, pa.date32()),
    })
    pq.write_table(table, tmp_path / "in" / "human" / "a.parquet")
    code, err, out = _run(tmp_path, config, capsys)
    assert code == 0, err
    _accounted(out)
    meta = {r["doc_id"]: _strict_json(r["meta"]) for r in _data(out).to_pylist() if r["origin"] == "human"}
    assert len(meta) == n
    assert meta["h02"] == {"at": "2023-11-14 22:13:20.123456791Z", "clock": "01:02:03.123456789",
                           "took": "1234567891", "until": "10000-01-01 00:00:00.000000", "day": "2022-01-08"}


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
def test_column_name_used_twice(tmp_path, capsys, mode):
    config = _setup(tmp_path, on_bad_file=mode)
    texts = pa.array([words(900 + i, 30) for i in range(4)])
    pq.write_table(pa.Table.from_arrays([pa.array([f"z{i}" for i in range(4)]), texts, texts],
                                        names=["id", "text", "text"]), tmp_path / "in" / "human" / "z.parquet")
    code, err, out = _run(tmp_path, config, capsys)
    message = "human/z.parquet: column 'text' (corpora[0].text_column) appears 2 times in the file"
    if mode == "fail":
        assert code == 3 and message in err, err
        return
    assert code == 0, err
    manifest = _accounted(out)
    bad = [r for r in _rejects(out).to_pylist() if r["reason"] == "ingest_ambiguous_column"]
    assert sorted(r["source_row"] for r in bad) == [0, 1, 2, 3] and message in bad[0]["detail"]
    assert manifest["counts"]["wiki"]["read"] == len(HUMAN) + 4


@pytest.mark.parametrize("bad, good, shown", [("two", "2", "'two'"), (b"x", b"2", "b'x'"),
                                               (Decimal("1.5"), Decimal("2.00"), "1.50")])
def test_a_bad_generation_value_rejects_its_row_only(tmp_path, capsys, bad, good, shown):
    config = _setup(tmp_path)
    settings = yaml.safe_load(open(config))
    settings["corpora"][1]["columns"]["generation"] = "gen"
    write_config(config, settings)
    rows = [dict(r, gen=bad if i == 4 else good) for i, r in enumerate(SYNTH)]
    write_parquet(tmp_path / "in" / "synth" / "b.parquet", rows)
    code, err, out = _run(tmp_path, config, capsys)
    assert code == 0, err
    _accounted(out)
    assert [(r["doc_id"], r["reason"], r["detail"]) for r in _rejects(out).to_pylist()] == [
        ("s04", "ingest_bad_generation", f"generation {shown} is not an integer")]
    assert {r["generation"] for r in _data(out).to_pylist() if r["origin"] == "synthetic"} == {2}


def test_derived_ids_of_repeated_texts_skip_ids_another_corpus_uses(tmp_path, capsys):
    """A corpus without ids numbers its repeated texts `-1`, `-2`, ...; an input id of another corpus
    that already has that form is not given to a repeat a second time."""
    from hybridmix.transforms.text import analyze, content_hashes

    config = _setup(tmp_path, id_column=None, mixture={"unit": "documents",
                                                       "targets": {"human": 0.5, "synthetic": 0.5}})
    text = open(config).read() + "dedup: {exact: false, near: {enabled: false}}\n"
    open(config, "w").write(text)
    human = [dict(r) for r in HUMAN]
    human[7]["text"] = human[2]["text"]
    write_parquet(tmp_path / "in" / "human" / "a.parquet", human)
    base = "wiki/" + content_hashes(analyze(pa.array([human[2]["text"]])).normalized)[0].as_py()[:16]
    synth = [dict(r) for r in SYNTH]
    synth[0]["id"] = f"{base}-1"
    write_parquet(tmp_path / "in" / "synth" / "b.parquet", synth)
    code, err, out = _run(tmp_path, config, capsys)
    assert code == 0, err
    _accounted(out)
    assert _rejects(out).num_rows == 0
    ledger = pa.concat_tables([pq.read_table(f) for f in glob.glob(str(out / "ledger" / "*.parquet"))])
    ids = ledger.column("doc_id").to_pylist()
    assert len(ids) == len(set(ids)) == len(HUMAN) + len(SYNTH)
    assert {base, f"{base}-1", f"{base}-2"} <= set(ids)


def test_an_id_twice_in_a_two_row_corpus_is_quarantined(tmp_path, capsys):
    """The id's two ledger rows (one kept, one rejected) arrive in batches of their own with equal order
    keys: their spill files once took the same name, and the run failed reading them back."""
    write_parquet(tmp_path / "in" / "ids.parquet", [{"id": "x", "text": words(70, 12)}, {"id": "x", "text": words(71, 12)}])
    config = write_config(tmp_path / "in" / "config.yaml", {
        "corpora": [{"name": "p", "origin": "human", "paths": ["ids.parquet"], "id_column": "id"}],
        "mixture": {"unit": "documents", "targets": {"human": 1.0, "synthetic": 0.0}},
        "on_bad_file": "quarantine",
    })
    code, err, out = _run(tmp_path, config, capsys)
    assert code == 0, err
    _accounted(out)
    assert [(r["doc_id"], r["reason"]) for r in _rejects(out).to_pylist()] == [("x", "ingest_duplicate_id")]
    ledger = pq.read_table(out / "ledger").select(["doc_id", "fate"]).to_pylist()
    assert sorted((r["doc_id"], r["fate"]) for r in ledger) == [("x", "rejected"), ("x", "selected")]
