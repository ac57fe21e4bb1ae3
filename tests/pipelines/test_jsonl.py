"""End to end on JSON Lines corpora (plain, gzip, zstd): the same output as the same rows in Parquet,
malformed lines in rejects/ and counted, a corrupt compressed file quarantined, plan and validate."""

import gzip
import json
import os
import re

import pyarrow.parquet as pq
import pytest
import zstandard

from hybridmix.pipelines.cli import main
from hybridmix.schemas.records import DOCUMENT_SCHEMA, DUPLICATE_SCHEMA, FILTERED_SCHEMA, REJECTION_SCHEMA
from tests.builders import words, write_config
from tests.pipelines.test_bad_inputs import _accounted, _rejects
from tests.pipelines.test_cli import _corpus, _read

FOLDERS = {"data": DOCUMENT_SCHEMA, "rejects": REJECTION_SCHEMA, "filtered": FILTERED_SCHEMA,
           "duplicates": DUPLICATE_SCHEMA}
JSONL_NAMES = {"human/part-0.parquet": ("human/part-0.jsonl", None),
               "human/part-1.parquet": ("human/part-1.jsonl.gz", "gzip"),
               "synth/answers.parquet": ("synth/answers.jsonl.zst", "zstd")}


def _write_jsonl(path, rows, compression=None, blank_every=0):
    lines = []
    for i, row in enumerate(rows):
        lines.append(json.dumps(row, ensure_ascii=False))
        if blank_every and i % blank_every == 0:
            lines.append("  ")
    data = ("\n".join(lines) + "\n").encode()
    if compression == "gzip":
        data = gzip.compress(data)
    elif compression == "zstd":
        data = zstandard.ZstdCompressor().compress(data)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def _config(root, on_bad_file="fail", **mixture):
    mix = {"targets": {"human": 0.6, "synthetic": 0.4}, "validation_fraction": 0.2}
    mix.update(mixture)
    # The same config for both formats (paths match any file name): the same config digest.
    return write_config(root / "in" / "config.yaml", {
        "seed": 3,
        "corpora": [
            {"name": "wiki", "origin": "human", "paths": ["human/*"], "id_column": "id",
             "columns": {"license": "lic"}},
            {"name": "chat", "origin": "synthetic", "paths": ["synth/*"], "id_column": "id",
             "columns": {"generator": "model"}, "defaults": {"license": "CC-BY-NC-4.0"}},
        ],
        "mixture": mix,
        "output": {"rows_per_shard": 20},
        "partitions": 4,
        "on_bad_file": on_bad_file,
    })


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory):
    """The test_cli corpus as Parquet, and the same rows as JSON Lines (one file of each compression),
    each run once with the same config and run id."""
    runs = {}
    for kind in ("parquet", "jsonl"):
        root = tmp_path_factory.mktemp(kind)
        _corpus(root)
        if kind == "jsonl":
            for parquet, (name, compression) in JSONL_NAMES.items():
                path = root / "in" / parquet
                # Blank lines are not records: the rows keep the numbers they have in Parquet.
                _write_jsonl(str(root / "in" / name), pq.read_table(path).to_pylist(), compression, blank_every=4)
                os.remove(path)
        config = _config(root)
        out = root / "out"
        assert main(["run", config, "--output", str(out), "--run-id", "same"]) == 0
        runs[kind] = (root, config, out)
    return runs


def _rows(out, folder):
    """A folder's rows with file names cut to their stem and reject details without the line they
    name: the things the formats change."""
    rows = _read(out, folder, FOLDERS[folder]).to_pylist()
    for row in rows:
        for key in ("source_file", "kept_source_file"):
            if row.get(key):
                row[key] = re.sub(r"\.(parquet|jsonl(\.gz|\.zst)?)$", "", row[key])
        if folder == "rejects":
            row["detail"] = re.sub(r"^line [0-9]+: ", "", row["detail"])
    return rows


def test_jsonl_corpora_give_the_output_of_the_same_rows_in_parquet(both_runs):
    (_, _, pq_out), (_, _, js_out) = both_runs["parquet"], both_runs["jsonl"]
    for folder in FOLDERS:
        assert _rows(js_out, folder) == _rows(pq_out, folder), folder
    data = _rows(js_out, "data")
    assert len(data) > 30 and {r["source_file"] for r in data} == {"human/part-0", "human/part-1", "synth/answers"}
    raw = {r["source_file"] for r in _read(js_out, "data", DOCUMENT_SCHEMA).to_pylist()}
    assert raw == {"human/part-0.jsonl", "human/part-1.jsonl.gz", "synth/answers.jsonl.zst"}
    # A record's line counts the blank lines (one after every fourth record); its row does not.
    details = {r["source_row"]: r["detail"] for r in _read(js_out, "rejects", REJECTION_SCHEMA).to_pylist()}
    assert details and all(d.startswith(f"line {row + 1 + (row + 3) // 4}: ") for row, d in details.items())
    manifests = [json.loads((out / "manifest.json").read_text()) for out in (pq_out, js_out)]
    assert manifests[1]["counts"] == manifests[0]["counts"]
    assert manifests[1]["mixture"] == manifests[0]["mixture"]
    inputs = {i["path"]: (i["format"], i["rows"]) for i in manifests[1]["inputs"]}
    assert inputs == {"human/part-0.jsonl": ("jsonl", 15), "human/part-1.jsonl.gz": ("jsonl.gz", 15),
                      "synth/answers.jsonl.zst": ("jsonl.zst", 48)}
    assert {i["format"] for i in manifests[0]["inputs"]} == {"parquet"}


def test_plan_and_validate_read_jsonl_corpora(both_runs, capsys):
    plans = {}
    for kind, (_, config, _) in both_runs.items():
        assert main(["plan", config, "--json"]) == 0
        plans[kind] = json.loads(capsys.readouterr().out)
    pq_corpora, js_corpora = ({c["name"]: c for c in plans[k]["corpora"]} for k in ("parquet", "jsonl"))
    _, config, out = both_runs["jsonl"]
    available = {name: s["available_tokens"] for name, s in json.loads((out / "manifest.json").read_text())
                 ["mixture"]["sources"].items()}
    for name in ("wiki", "chat"):
        assert js_corpora[name]["rows"] == pq_corpora[name]["rows"]
        assert js_corpora[name]["sampled_rows"] == pq_corpora[name]["sampled_rows"]
        # Filters and dedup only remove: the estimate is at least what the run found available.
        assert js_corpora[name]["estimated_tokens"] >= available[name]
    # No wiki row is filtered or a duplicate, and the sample is the whole corpus: the text's share of
    # the lines makes the estimate exact, where Parquet's column size also counts per-value overhead.
    assert js_corpora["wiki"]["estimated_tokens"] == pytest.approx(available["wiki"], rel=0.005)
    assert plans["jsonl"]["certainly_infeasible"] is None
    assert main(["validate", config]) == 0
    text = capsys.readouterr().out
    assert "wiki (human): 2 file(s), 30 rows" in text and "chat (synthetic): 1 file(s), 48 rows" in text


def test_a_mixture_no_jsonl_data_can_fill_fails_before_the_run(tmp_path, capsys):
    _write_jsonl(str(tmp_path / "in" / "human" / "a.jsonl"), [{"id": f"h{i}", "text": words(i, 30)} for i in range(8)])
    _write_jsonl(str(tmp_path / "in" / "synth" / "b.jsonl.gz"),
                 [{"id": f"s{i}", "text": words(50 + i, 30), "model": "m"} for i in range(4)], "gzip")
    config = _config(tmp_path, unit="documents", total_documents=1000, validation_fraction=0.0)
    assert main(["plan", config]) == 5
    assert "certainly infeasible, even if every row were kept: source 'chat'" in capsys.readouterr().out


def test_malformed_lines_are_rejected_and_every_line_is_accounted_for(tmp_path, capsys):
    human = [{"id": f"h{i:02d}", "text": words(300 + i, 40), "lic": "CC0"} for i in range(12)]
    synth = [{"id": f"s{i:02d}", "text": words(600 + i, 40), "model": "m"} for i in range(12)]
    _write_jsonl(str(tmp_path / "in" / "synth" / "b.jsonl"), synth)
    lines = [json.dumps(r) for r in human[:6]] + [
        "",
        '{"id": "x1", "text": "unterminated',
        '["an", "array"]',
        '{"id": "x2", "text": ["a", "list"]}',
        '{"id": "x3", "content": "text under another key"}',
        "\t",
        '{"id": "x4", "text": "   "}',
    ] + [json.dumps(r) for r in human[6:]]
    path = tmp_path / "in" / "human" / "a.jsonl.gz"
    os.makedirs(path.parent)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()) + gzip.compress(b'{"id": "x5", "text": 1}\n'))
    out = tmp_path / "out"
    assert main(["run", _config(tmp_path), "--output", str(out)]) == 0, capsys.readouterr().err
    manifest = _accounted(out)
    assert manifest["counts"]["wiki"]["read"] == 12 + 6  # lines that are not blank, in both gzip members
    rejects = sorted((r["source_row"], r["reason"], r["detail"], r["text"]) for r in _rejects(out).to_pylist())
    assert rejects == [
        (6, "ingest_invalid_json", "line 8: not valid JSON: unexpected end of data at column 35",
         '{"id": "x1", "text": "unterminated'),
        (7, "ingest_not_an_object", "line 9: a JSON array, not an object (JSON Lines holds one object per line)",
         '["an", "array"]'),
        (8, "ingest_text_not_string", "line 10: key 'text' holds a JSON array, not text", '["a", "list"]'),
        (9, "ingest_missing_column", "line 11: no key 'text' (corpora[0].text_column); the record has 'id', "
         "'content'", '{"id": "x3", "content": "text under another key"}'),
        (10, "ingest_empty_text", "line 13: text is empty or only whitespace and invisible format characters", "   "),
        (17, "ingest_text_not_string", "line 20: key 'text' holds a JSON number, not text", "1"),
    ]
    assert manifest["quality"]["rejects_by_reason"]["ingest_invalid_json"] == {"wiki": 1}
    data = _read(out, "data", DOCUMENT_SCHEMA).to_pylist()
    rows = {r["doc_id"]: r["source_row"] for r in data if r["source"] == "wiki"}
    assert rows == {h["id"]: i if i < 6 else i + 5 for i, h in enumerate(human)}  # 5 bad records before h06


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
def test_a_corrupt_gzip_file_is_quarantined_or_fails_naming_it(tmp_path, capsys, mode):
    _write_jsonl(str(tmp_path / "in" / "human" / "a.jsonl"),
                 [{"id": f"h{i}", "text": words(i, 40), "lic": "CC0"} for i in range(10)])
    _write_jsonl(str(tmp_path / "in" / "synth" / "b.jsonl"),
                 [{"id": f"s{i}", "text": words(100 + i, 40), "model": "m"} for i in range(10)])
    # 3,000 records of about 2.8 KB: the break comes after several blocks of records were read.
    path = tmp_path / "in" / "human" / "z.jsonl.gz"
    _write_jsonl(str(path), [{"id": f"z{i}", "text": words(1000 + i, 400)} for i in range(3000)], "gzip")
    data = bytearray(path.read_bytes())
    for k in range(len(data) // 2, len(data) // 2 + 64):
        data[k] ^= 0x5A
    path.write_bytes(bytes(data))
    out = tmp_path / "out"
    code = main(["run", _config(tmp_path, on_bad_file=mode), "--output", str(out)])
    err = capsys.readouterr().err
    if mode == "fail":
        assert code == 3, err
        assert "human/z.jsonl.gz: cannot read as gzip-compressed JSON Lines:" in err
        assert not out.exists()
        return
    assert code == 0, err
    manifest = _accounted(out)
    (entry,) = [i for i in manifest["inputs"] if i["path"] == "human/z.jsonl.gz"]
    assert entry["status"] == "quarantined" and entry["format"] == "jsonl.gz" and 0 < entry["rows"] < 3000
    bad = [r for r in _rejects(out).to_pylist() if r["source_file"] == "human/z.jsonl.gz"]
    assert sorted(r["source_row"] for r in bad) == list(range(entry["rows"]))
    assert {r["reason"] for r in bad} == {"ingest_unreadable_file"}
    assert "how many records follow is unknown" in bad[0]["detail"]
    assert manifest["counts"]["wiki"]["read"] == 10 + entry["rows"]


def test_integer_ids_beyond_64_bits_keep_every_digit(tmp_path, capsys):
    """orjson reads such integers as floats: two ids that differ in the last digit became one."""
    big = 123456789012345678901234567890
    lines = [f'{{"id": {big + i}, "text": "{words(800 + i, 20)}", "extra": [{big}]}}' for i in range(2)]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ids.jsonl").write_text("\n".join(lines) + "\n")
    config = write_config(tmp_path / "in" / "config.yaml", {
        "corpora": [{"name": "js", "origin": "human", "paths": ["ids.jsonl"], "id_column": "id",
                     "keep_columns": ["extra"]}],
        "mixture": {"unit": "documents", "targets": {"human": 1.0, "synthetic": 0.0}},
    })
    assert main(["run", config, "--output", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    rows = pq.read_table(tmp_path / "out" / "data", columns=["doc_id", "meta"]).to_pylist()
    assert sorted(r["doc_id"] for r in rows) == [str(big), str(big + 1)]
    assert all(json.loads(r["meta"]) == {"extra": [big]} for r in rows)
