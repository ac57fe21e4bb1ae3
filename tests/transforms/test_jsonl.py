"""JSON Lines inputs: the planning scan, chunks, parsing, and rows equal to the same rows read from Parquet."""

import gzip
import json
import logging
import os
import zlib

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
import zstandard
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridmix.schemas.errors import DataError, SchemaError
from hybridmix.schemas.reasons import RejectReason
from hybridmix.transforms import columns, jsonl
from hybridmix.transforms.batches import uid_row
from hybridmix.transforms.ingest import ReadCorpora, build_documents
from hybridmix.transforms.inputs import ReadSpec, iter_row_group, plan_inputs
from hybridmix.transforms.reread import ReadRowsAgain
from tests.builders import make_config, words, write_parquet
from tests.conftest import local_pipeline


def _lines(rows):
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _write(path, data: bytes, compression=None) -> str:
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    if compression == "gzip":
        data = gzip.compress(data)
    elif compression == "zstd":
        data = zstandard.ZstdCompressor().compress(data)
    with open(path, "wb") as fh:
        fh.write(data)
    return str(path)


def _config(tmp_path, human_paths=("human/*",), on_bad_file="fail", **corpus):
    human = {"name": "human", "origin": "human", "paths": list(human_paths), "id_column": "id"}
    human.update(corpus)
    write_parquet(tmp_path / "synth" / "b.parquet", [{"id": "s1", "text": words(9, 20), "model": "m"}])
    targets = {"human": 0.5, "synthetic": 0.5} if human["origin"] == "human" else {"synthetic": 1.0}
    return make_config(corpora=[human, {"name": "synth", "origin": "synthetic", "paths": ["synth/*.parquet"],
                                        "id_column": "id", "columns": {"generator": "model"}}],
                       mixture={"targets": targets}, on_bad_file=on_bad_file)


def _built(config, plan, file_index=0):
    """Every row of a planned file, through the ingest path (all chunks, all batches)."""
    spec = ReadSpec(config.ingest, plan, "run-1")
    file = plan.files[file_index]
    docs, rejects = [], []
    for chunk, first in enumerate(file.row_group_starts):
        row = first
        for batch, parsed in iter_row_group(file, chunk, config.read_batch_rows, spec.corpus(file)):
            built = build_documents(batch, spec, file, row, parsed=parsed)
            row += batch.num_rows
            docs += built.docs.to_pylist()
            rejects += built.rejects.to_pylist()
    return docs, rejects


# --- the planning scan and chunks ----------------------------------------------------------------

def test_scan_counts_records_not_blank_lines_and_cuts_chunks_at_line_ends(tmp_path):
    data = b'{"a": 1}\n\n  \t\r\n{"a": 2}\r\n{"a": 3}\n\n{"a": 4}'  # CRLF, no final newline
    path = _write(tmp_path / "x.jsonl", data)
    scan = jsonl.scan_file(path, chunk_bytes=12)
    assert (scan.records, scan.lines, scan.data_bytes) == (4, 7, len(data))
    assert scan.keys == ("a",) and scan.objects == 4 and scan.error is None
    assert [(c.start, c.first_line, c.records) for c in scan.chunks] == [(0, 0, 1), (15, 3, 2), (34, 5, 1)]
    assert scan.chunks[-1].end is None
    read = [list(jsonl.iter_records(path, None, c)) for c in scan.chunks]
    assert read == [[(1, b'{"a": 1}')], [(4, b'{"a": 2}\r'), (5, b'{"a": 3}')], [(7, b'{"a": 4}')]]


RECORD_LINES = st.one_of(
    st.dictionaries(st.sampled_from("abc"), st.one_of(st.integers(), st.text(max_size=12)), max_size=3)
    .map(lambda d: json.dumps(d, ensure_ascii=False)),
    st.sampled_from(["not json", "[1, 2]", '"s"', '{"a": "\u00e9\u4e2d"}  ', "\t{}\r"]),
)
LINES = st.lists(st.one_of(RECORD_LINES, st.sampled_from(["", " ", "\t\r", "\r"])), max_size=40)


@settings(max_examples=150, deadline=None)
@given(lines=LINES, final_newline=st.booleans(), bom=st.booleans(),
       chunk_bytes=st.integers(1, 200), block_bytes=st.integers(4, 64))
def test_chunks_together_hold_every_record_once_in_order(tmp_path_factory, lines, final_newline, bom,
                                                          chunk_bytes, block_bytes):
    data = ("\ufeff" if bom else "") + "\n".join(lines) + ("\n" if final_newline and lines else "")
    raw = data.encode("utf-8")
    expected = [(i + 1, line.encode()) for i, line in enumerate(data.lstrip("\ufeff").split("\n"))
                if line.strip(" \t\r")]
    folder = tmp_path_factory.mktemp("scan")
    path = _write(folder / "x.jsonl", raw)
    scan = jsonl.scan_file(path, chunk_bytes=chunk_bytes, block_bytes=block_bytes)
    assert scan.records == len(expected) == sum(c.records for c in scan.chunks)
    got = []
    for chunk in scan.chunks:
        records = list(jsonl.iter_records(path, None, chunk, block_bytes=block_bytes))
        assert len(records) == chunk.records
        got += records
    assert got == expected
    for compression in ("gzip", "zstd"):
        packed = _write(folder / f"x.jsonl.{compression}", raw, compression)
        scan = jsonl.scan_file(packed, chunk_bytes=chunk_bytes, block_bytes=block_bytes)
        assert scan.compression == compression and len(scan.chunks) == 1
        assert list(jsonl.iter_records(packed, compression, scan.chunks[0], block_bytes=block_bytes)) == expected


def test_compression_is_recognised_by_content_and_the_format_by_name_or_config(tmp_path):
    rows = [{"id": f"h{i}", "text": words(i, 8)} for i in range(5)]
    _write(tmp_path / "human" / "a.jsonl", _lines(rows[:2]), "gzip")  # gzip without .gz
    _write(tmp_path / "human" / "b.ndjson.zstd", _lines(rows[2:4]), "zstd")
    _write(tmp_path / "human" / "part-0002", _lines(rows[4:]))  # no extension: needs format: jsonl
    config = _config(tmp_path, format="jsonl")
    plan = plan_inputs(config.ingest, str(tmp_path))
    human = [f for f in plan.files if f.corpus == 0]
    assert [(f.kind, f.rows) for f in human] == [("jsonl.gz", 2), ("jsonl.zst", 2), ("jsonl", 1)]
    assert [d["doc_id"] for i in range(3) for d in _built(config, plan, i)[0]] == [r["id"] for r in rows]
    with pytest.raises(DataError, match="part-0002: cannot read as Parquet"):
        plan_inputs(_config(tmp_path).ingest, str(tmp_path))  # by name, part-0002 is Parquet


# --- values: the same as Parquet's -----------------------------------------------------------------

def test_a_compressed_file_of_long_documents_is_read_in_batches_of_bounded_bytes(tmp_path, monkeypatch):
    """A compressed file is one chunk, and its batches were cut by rows only: 6,000 books of 400 KB
    failed the run (one batch past what an Arrow string array holds). Here BATCH_BYTES is 20 KB and a
    record about 1.7 KB."""
    from hybridmix.transforms import inputs

    monkeypatch.setattr(inputs, "BATCH_BYTES", 20_000)
    rows = [{"id": f"h{i}", "text": words(i, 250)} for i in range(300)]
    _write(tmp_path / "human" / "a.jsonl.gz", _lines(rows), "gzip")
    config = _config(tmp_path)
    plan = plan_inputs(config.ingest, str(tmp_path))
    file = plan.files[0]
    assert len(file.chunks) == 1
    spec = ReadSpec(config.ingest, plan, "run-1")
    batches = [batch for batch, _ in iter_row_group(file, 0, config.read_batch_rows, spec.corpus(file))]
    assert len(batches) > 1
    assert max(b.column("text").nbytes for b in batches) < 20_000 + 2_000
    assert [t for b in batches for t in b.column("text").to_pylist()] == [r["text"] for r in rows]
    docs, rejects = _built(config, plan)
    assert [d["doc_id"] for d in docs] == [r["id"] for r in rows] and rejects == []
    assert [uid_row(np.array([d["uid"]]))[0] for d in docs] == list(range(300))


def test_rows_are_the_documents_the_same_rows_give_as_parquet(tmp_path):
    """Ints, floats and booleans in string roles, generation, nested kept values (one renamed): as Parquet
    reads them."""
    rows = [{"id": 10 + i, "text": words(i, 10 + i), "m": 1.5 if i % 2 else 2.0, "gen": i % 3 + 1,
             "lic": i % 2 == 0, "p": [i, i + 1], "extra": {"k": i, "tags": ["a", "b"]}, "n": 0.1 * i}
            for i in range(12)]
    corpus = dict(origin="synthetic", columns={"generator": "m", "generation": "gen", "license": "lic",
                                               "parent_id": "p"}, keep_columns={"extra": "extra", "share": "n"})
    write_parquet(tmp_path / "pq" / "human" / "a.parquet", rows)
    _write(tmp_path / "js" / "human" / "a.jsonl", _lines(rows))
    built = {}
    for kind in ("pq", "js"):
        config = _config(tmp_path / kind, **corpus)
        built[kind] = _built(config, plan_inputs(config.ingest, str(tmp_path / kind)))
    assert built["js"] == built["pq"]
    docs = built["js"][0]
    assert len(docs) == 12 and docs[0]["doc_id"] == "10" and docs[0]["generator"] == "2"  # Arrow: 2.0 -> "2"
    assert docs[0]["license"] == "true" and docs[1]["parent_id"] == "[1, 2]"
    assert json.loads(docs[3]["meta"]) == {"extra": {"k": 3, "tags": ["a", "b"]}, "share": 0.30000000000000004}


def test_malformed_lines_become_rejects_with_their_line_and_reason(tmp_path):
    good = [{"id": f"h{i}", "text": words(i, 8)} for i in range(3)]
    lines = [
        json.dumps(good[0]),
        "",
        "{not json",
        b'{"id": "u", "text": "caf\xe9"}',
        "[1, 2, 3]",
        '{"id": "nan", "text": NaN}',
        '{"id": "t", "text": 5}',
        '{"id": "o", "text": {"a": 1}}',
        '{"id": "k", "body": "no text key"}',
        '{"id": "g", "text": "bad generation", "gen": "two"}',
        '{"id": "h", "text": "null generation", "gen": null}',
        '{"id": "s", "text": "lone surrogate \\ud800"}',
        '{"text": "missing id"}',
        json.dumps(good[1]),
        "   ",
        json.dumps(good[2]),
    ]
    data = b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n"
    _write(tmp_path / "human" / "a.jsonl", data)
    config = _config(tmp_path, origin="synthetic", columns={"generation": "gen"})
    plan = plan_inputs(config.ingest, str(tmp_path))
    assert plan.files[0].rows == 14
    docs, rejects = _built(config, plan)
    assert [(d["doc_id"], d["uid"]) for d in docs] == [("h0", 0), ("h", 9), ("h1", 12), ("h2", 13)]
    found = [(r["source_row"], r["reason"], r["detail"].split(":")[0], r["doc_id"]) for r in rejects]
    assert found == [
        (1, RejectReason.INVALID_JSON, "line 3", None),
        (2, RejectReason.INVALID_UTF8, "line 4", None),
        (3, RejectReason.NOT_AN_OBJECT, "line 5", None),
        (4, RejectReason.INVALID_JSON, "line 6", None),
        (5, RejectReason.TEXT_NOT_STRING, "line 7", "t"),
        (6, RejectReason.TEXT_NOT_STRING, "line 8", "o"),
        (7, RejectReason.MISSING_COLUMN, "line 9", "k"),
        (8, RejectReason.BAD_GENERATION, "line 10", "g"),
        (10, RejectReason.INVALID_JSON, "line 12", None),
        (11, RejectReason.NULL_ID, "line 13", None),
    ]
    by_row = {r["source_row"]: r for r in rejects}
    assert by_row[1]["text"] == "{not json" and by_row[2]["text"] == '{"id": "u", "text": "caf\ufffd"}'
    assert by_row[5]["text"] == "5" and by_row[6]["text"] == '{"a": 1}'
    assert "no key 'text' (corpora[0].text_column); the record has 'id', 'body'" in by_row[7]["detail"]
    assert "key 'gen' holds \"two\", not an integer" in by_row[8]["detail"]
    assert "a JSON array, not an object" in by_row[3]["detail"]


# --- files that cannot be used ---------------------------------------------------------------------

def _whole_lines_before_break(data: bytes, compression: str) -> int:
    """Records a broken compressed file holds whole before its break, read 64 bytes at a time."""
    stream, seen = pa.CompressedInputStream(pa.BufferReader(data), compression), b""
    try:
        while block := stream.read(64):
            seen += block
    except OSError:
        pass
    return seen.count(b"\n")


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("rows", [1000, 3000])  # 3,000: 8 MB, several read blocks; 1,000: 0.7 MB, less than one
def test_a_truncated_compressed_file_is_quarantined_with_the_records_known(tmp_path, compression, rows):
    rows = [{"id": f"h{i}", "text": words(i, 400 if rows > 1000 else 100)} for i in range(rows)]
    path = _write(tmp_path / "human" / "a.jsonl.gz", _lines(rows), compression)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) * 2 // 3])
    known = _whole_lines_before_break(data[: len(data) * 2 // 3], compression)
    if compression == "gzip":  # zlib gives what decompresses before the break, to the byte
        assert known == zlib.decompressobj(wbits=31).decompress(data[: len(data) * 2 // 3]).count(b"\n")
    assert 0 < known < len(rows)
    with pytest.raises(DataError, match=r"a.jsonl.gz: cannot read as .*-compressed JSON Lines: .* after [0-9,]+ "
                                        r"records \(line [0-9]+\); how many records follow is unknown"):
        plan_inputs(_config(tmp_path).ingest, str(tmp_path))
    plan = plan_inputs(_config(tmp_path, on_bad_file="quarantine").ingest, str(tmp_path))
    (bad,) = plan.bad_files
    assert bad.reason == RejectReason.UNREADABLE_FILE and bad.rows == known
    assert bad.kind == ("jsonl.gz" if compression == "gzip" else "jsonl.zst")
    assert f"after {known:,} records (line {known + 1})" in bad.detail


def test_files_that_are_not_json_lines(tmp_path, caplog):
    config = _config(tmp_path, columns={"generator": "model"})
    _write(tmp_path / "human" / "a.json", json.dumps([{"id": "a", "text": "x"}]).encode())
    with pytest.raises(DataError, match=r"a.json: not JSON Lines: none of its first 1 records is a JSON object "
                                        r"\(line 1: a JSON array, not an object"):
        plan_inputs(config.ingest, str(tmp_path))
    _write(tmp_path / "human" / "a.json", _lines([{"id": "a", "body": "x"}]))
    with pytest.raises(SchemaError, match=r"a.json: key 'text' \(corpora\[0\].text_column\) not found in any "
                                          r"record \(keys found: 'id', 'body'\)"):
        plan_inputs(config.ingest, str(tmp_path))
    _write(tmp_path / "human" / "a.json", _lines([{"id": "a", "text": "x"}]))
    with caplog.at_level(logging.WARNING):
        plan = plan_inputs(config.ingest, str(tmp_path))
    assert plan.files[0].rows == 1
    assert "key 'model' (corpora[0].columns.generator) not found in any record: records without it read it as null" in caplog.text
    _write(tmp_path / "human" / "a.json.gz", b"")
    _write(tmp_path / "human" / "b.jsonl", b"")  # an empty uncompressed file: no records
    plan = plan_inputs(_config(tmp_path, on_bad_file="quarantine").ingest, str(tmp_path))
    assert [(b.display, b.detail) for b in plan.bad_files] == [
        (os.path.join("human", "a.json.gz"), f"{os.path.join('human', 'a.json.gz')}: file is empty (0 bytes), "
                                             "not gzip-compressed")]
    assert {f.display: f.rows for f in plan.files} == {os.path.join("human", "a.json"): 1,
                                                       os.path.join("human", "b.jsonl"): 0,
                                                       os.path.join("synth", "b.parquet"): 1}


# --- in a pipeline -----------------------------------------------------------------------------------

def _requests(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([batch.column("uid"), batch.column("text_hash")], schema=schema)


def test_read_corpora_and_read_again_over_chunks_of_a_file(tmp_path):
    rows = [{"id": f"h{i}", "text": words(i, 12) if i % 5 else ""} for i in range(60)]
    # A blank line after every row i with i % 7 == 0.
    _write(tmp_path / "human" / "a.jsonl", b"".join(json.dumps(r).encode() + (b"\n\n" if i % 7 == 0 else b"\n")
                                                    for i, r in enumerate(rows)))
    config = _config(tmp_path).model_copy(update={"read_batch_rows": 16})
    plan = plan_inputs(config.ingest, str(tmp_path), jsonl_chunk_bytes=1000)
    human = plan.files[0]
    assert len(human.row_group_rows) > 4 and sum(human.row_group_rows) == 60
    spec = ReadSpec(config.ingest, plan, "run-1")
    schema = pa.schema([columns.SELECTION.field("uid"), columns.SELECTION.field("text_hash")])
    p = local_pipeline()
    read = p | ReadCorpora(spec)
    doc_ids = read.docs | "DocIds" >> beam.FlatMap(lambda b: b.column("doc_id").to_pylist())
    rejected = read.rejected | "Rows" >> beam.FlatMap(
        lambda b: list(zip(b.column("source_row").to_pylist(), b.column("detail").to_pylist())))
    # Every kept row read again by its key, as the output writer asks for rows: chunk by chunk.
    again = (
        read.docs
        | "Requests" >> beam.Map(_requests, schema)
        | ReadRowsAgain(spec, schema, measure=False)
        | "Texts" >> beam.FlatMap(lambda pair: pair[0].select(["doc_id", "text"]).to_pylist()))
    kept = [r for i, r in enumerate(rows) if i % 5]
    assert_that(doc_ids, equal_to([r["id"] for r in kept] + ["s1"]), label="docs")
    # Row i is on line i + 1 + the number of blank lines before it.
    empty = "text is empty or only whitespace and invisible format characters"
    assert_that(rejected, equal_to([(i, f"line {i + 1 + (i + 6) // 7}: {empty}") for i in range(0, 60, 5)]),
                label="rejects")
    assert_that(again, equal_to([{"doc_id": r["id"], "text": r["text"]} for r in kept]
                                + [{"doc_id": "s1", "text": words(9, 20)}]), label="again")
    p.run().wait_until_finish()


def test_rows_read_again_from_a_rewritten_file_fail_the_run(tmp_path):
    """A JSON Lines file rewritten with the same size and time still cannot slip changed rows in."""
    path = tmp_path / "human" / "a.jsonl.gz"
    _write(path, _lines([{"id": f"h{i}", "text": f"text number {i}"} for i in range(5)]), "gzip")
    config = _config(tmp_path)
    spec = ReadSpec(config.ingest, plan_inputs(config.ingest, str(tmp_path)), "run")
    file = spec.plan.files[0]
    batch, parsed = next(iter_row_group(file, 0, 100, spec.corpus(file)))
    docs = build_documents(batch, spec, file, 0, parsed=parsed).docs
    schema = pa.schema([columns.SELECTION.field("uid"), columns.SELECTION.field("text_hash")])
    stat = os.stat(path)
    _write(path, _lines([{"id": f"h{i}", "text": f"text NUMBER {i}"} for i in range(5)]), "gzip")
    assert os.path.getsize(path) == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    p = local_pipeline()
    _ = p | beam.Create([_requests(docs, schema)]) | ReadRowsAgain(spec, schema, measure=False)
    with pytest.raises(Exception, match="a.jsonl.gz changed during the run"):
        p.run().wait_until_finish()
