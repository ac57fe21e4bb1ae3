"""ledger/ and `hybridmix explain`: every input row's fate, read back from a real run."""

import glob
import json
import os
import re
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hybridmix.pipelines.cli import main
from hybridmix.pipelines.explain import ledger_rows
from hybridmix.schemas.records import LEDGER_SCHEMA
from hybridmix.transforms.ledger import ledger_keys, ledger_shard, order_ledger
from tests.builders import near_copy, words, write_config, write_parquet

_PRIORITY = re.compile(r"priority ([0-9.]+)(?: (<=|>) cut-off ([0-9.]+))?")


def _inputs(tmp_path):
    human = [{"id": f"h{i:02d}", "text": words(100 + i, 60 + i * 3)} for i in range(20)]
    synth = [{"id": f"s{i:02d}", "text": words(1000 + i, 50 + i * 4), "model": f"m{i % 3}"} for i in range(60)]
    synth += [
        {"id": "s_exact_h00", "text": human[0]["text"].upper(), "model": "m0"},
        {"id": "s_near_h01", "text": near_copy(human[1]["text"]), "model": "m1"},
        {"id": "s_loop", "text": "\n".join(["I will repeat this very line again and again."] * 12), "model": "m2"},
        {"id": "s_null", "text": None, "model": "m2"},
    ]
    write_parquet(tmp_path / "in" / "human" / "part-0.parquet", human)
    write_parquet(tmp_path / "in" / "synth" / "answers.parquet", synth, row_group_size=16)
    return human, synth


def _config(tmp_path, **output):
    return write_config(tmp_path / "in" / "config.yaml", {
        "seed": 5,
        "corpora": [
            {"name": "wiki", "origin": "human", "paths": ["human/*.parquet"], "id_column": "id"},
            {"name": "chat", "origin": "synthetic", "paths": ["synth/*.parquet"], "id_column": "id",
             "columns": {"generator": "model"}},
        ],
        # The human side limits the mix: the synthetic side is cut, so some survivors are not selected.
        "mixture": {"targets": {"human": 0.7, "synthetic": 0.3}, "validation_fraction": 0.2},
        # Small row groups: `explain` reads only those holding the id it looks up.
        "output": {"rows_per_shard": 20, "row_group_rows": 5, **output},
        "partitions": 3,
    })


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ledger")
    human, synth = _inputs(tmp_path)
    out = tmp_path / "out"
    assert main(["run", _config(tmp_path), "--output", str(out)]) == 0
    return out, human, synth


def _folder(out, folder):
    return pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(str(out / folder / "*.parquet")))])


def _lineage(table):
    return set(zip(table.column("source_file").to_pylist(), table.column("source_row").to_pylist()))


def test_every_input_row_has_one_ledger_row_and_fates_match_the_manifest(run):
    out, human, synth = run
    ledger = _folder(out, "ledger")
    assert ledger.schema.equals(LEDGER_SCHEMA)
    assert ledger.num_rows == len(human) + len(synth)
    assert len(_lineage(ledger)) == ledger.num_rows
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(f["rows"] for f in manifest["outputs"]["ledger"]) == ledger.num_rows
    fates = Counter(zip(ledger.column("source").to_pylist(), ledger.column("fate").to_pylist()))
    for source, c in manifest["counts"].items():
        assert fates[(source, "selected")] == c["selected"], source
        assert fates[(source, "not_selected")] == c["not_selected"], source
        assert fates[(source, "rejected")] == c["rejected"], source
        assert fates[(source, "filtered")] == c["filtered"], source
        assert fates[(source, "duplicate")] == c["exact_duplicates"] + c["near_duplicates"], source
    assert fates[("chat", "not_selected")] > 0


def test_each_fate_names_the_rows_of_its_folder(run):
    out, _, _ = run
    ledger = _folder(out, "ledger").to_pylist()
    by_fate = {}
    for row in ledger:
        by_fate.setdefault(row["fate"], set()).add((row["source_file"], row["source_row"]))
    assert by_fate["rejected"] == _lineage(_folder(out, "rejects"))
    assert by_fate["filtered"] == _lineage(_folder(out, "filtered"))
    assert by_fate["duplicate"] == _lineage(_folder(out, "duplicates"))
    assert by_fate["selected"] == _lineage(_folder(out, "data"))


def test_selection_details_compare_each_priority_with_the_sources_cut_off(run):
    out, _, _ = run
    rows = [r for r in _folder(out, "ledger").to_pylist() if r["source"] == "chat"
            and r["fate"] in ("selected", "not_selected")]
    parsed = [(r["fate"], _PRIORITY.search(r["detail"])) for r in rows]
    assert all(m and m.group(3) for _, m in parsed), rows[:3]
    cutoffs = {m.group(3) for _, m in parsed}
    assert len(cutoffs) == 1  # one source, one cut-off
    cutoff = float(cutoffs.pop())
    taken = [float(m.group(1)) for fate, m in parsed if fate == "selected"]
    left = [float(m.group(1)) for fate, m in parsed if fate == "not_selected"]
    # The cut-off is the largest priority taken: everything at or below it is in, everything above out.
    assert max(taken) == pytest.approx(cutoff, abs=1e-6)
    assert min(left) > cutoff
    assert all(m.group(2) == ("<=" if fate == "selected" else ">") for fate, m in parsed)


def test_filtered_detail_names_every_failing_filter(run):
    out, _, _ = run
    filtered = {r["doc_id"]: r for r in _folder(out, "filtered").to_pylist()}
    loop = filtered["s_loop"]
    assert len(loop["filters_failed"]) >= 2, loop
    for label in loop["filters_failed"]:
        assert label.rsplit("_v", 1)[0] + " = " in loop["detail"]
    ledger = {r["doc_id"]: r for r in _folder(out, "ledger").to_pylist() if r["doc_id"]}
    assert ledger["s_loop"]["detail"] == loop["detail"]


def _explain(capsys, *args):
    code = main(["explain", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_says_where_each_kind_of_document_went(run, capsys):
    out, _, _ = run
    ledger = {r["doc_id"]: r for r in _folder(out, "ledger").to_pylist() if r["doc_id"]}
    for doc_id, fate in [("s_null", "rejected"), ("s_loop", "filtered"), ("s_exact_h00", "duplicate")]:
        code, text, _ = _explain(capsys, out, doc_id)
        assert code == 0
        assert text.splitlines()[0].endswith(f": {fate}")
        assert ledger[doc_id]["detail"] in text
    code, text, _ = _explain(capsys, out, "s_exact_h00")
    assert "exact duplicate of h00" in text and "kept document h00" in text
    not_selected = next(d for d, r in ledger.items() if r["fate"] == "not_selected")
    code, text, _ = _explain(capsys, out, not_selected)
    assert code == 0 and ": not selected" in text and "> cut-off" in text
    code, text, _ = _explain(capsys, out, not_selected, "--json")
    entries = json.loads(text)["entries"]
    assert [e["fate"] for e in entries] == ["not_selected"]


def test_explain_reads_the_rows_of_every_document_from_shards_of_many_row_groups(run):
    out, _, _ = run
    assert all(pq.ParquetFile(f).num_row_groups > 1 for f in glob.glob(str(out / "ledger" / "*.parquet")))
    manifest = json.loads((out / "manifest.json").read_text())
    ledger = _folder(out, "ledger").to_pylist()
    for doc_id in {r["doc_id"] for r in ledger if r["doc_id"]}:
        assert ledger_rows(str(out), manifest, doc_id) == [r for r in ledger if r["doc_id"] == doc_id]


def test_explain_of_an_unknown_document_exits_2(run, capsys):
    out, _, _ = run
    code, text, err = _explain(capsys, out, "no-such-doc")
    assert code == 2 and text == ""
    assert "no document with doc_id no-such-doc" in err and "upsampled copy" not in err
    code, _, err = _explain(capsys, out, "s03#r2")  # an id as data/ writes an upsampled copy's
    assert code == 2 and "s03#r2 is an upsampled copy: explain s03" in err


def test_a_run_without_ledger_writes_none_and_explain_says_so(tmp_path, capsys):
    _inputs(tmp_path)
    out = tmp_path / "out"
    assert main(["run", _config(tmp_path, ledger=False), "--output", str(out)]) == 0
    assert not os.path.exists(out / "ledger")
    code, _, err = _explain(capsys, out, "h00")
    assert code == 2 and "no ledger" in err


def test_ledger_rows_are_ordered_by_the_key_explain_looks_them_up_by():
    # Rows with an id: the id's key (`explain` finds the shard by it); rows without one (a reject
    # whose id is null): their file and row.
    batch = pa.RecordBatch.from_pydict({
        "doc_id": ["a", None, "c/ü", None], "source_file": ["f1", "f2", "f3", None],
        "source_row": pa.array([1, 2, None, 4], pa.int64())})
    expected = ledger_keys(batch.column("doc_id").to_pylist(), batch.column("source_file").to_pylist(),
                           batch.column("source_row").to_pylist())
    assert order_ledger(batch).tolist() == expected.tolist()
    assert order_ledger(batch.slice(2)).tolist() == expected[2:].tolist()
    assert int(expected[0] % 7) == ledger_shard("a", 7)
