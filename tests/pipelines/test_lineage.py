"""Lineage duplicates end to end: a real run of the CLI on Parquet with parent_id, under both policies."""

import glob
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hybridmix.pipelines.cli import main
from hybridmix.schemas.records import DUPLICATE_SCHEMA
from tests.builders import lineage_rows, write_config, write_parquet

SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("model", pa.string()), ("parent", pa.string())])


def _write_inputs(root):
    by_source = {}
    for r in lineage_rows():
        by_source.setdefault(r["source"], []).append(
            {"id": r["doc_id"], "text": r["text"], "model": r.get("generator"), "parent": r.get("parent_id")})
    for source, rows in by_source.items():
        write_parquet(os.path.join(root, "in", f"{source}.parquet"), rows, schema=SCHEMA)
    return {s: len(rows) for s, rows in by_source.items()}


def _config(root, policy):
    synthetic = {"origin": "synthetic", "id_column": "id", "columns": {"generator": "model", "parent_id": "parent"}}
    return write_config(os.path.join(root, "in", f"{policy}.yaml"), {
        "corpora": [
            {"name": "wiki", "origin": "human", "paths": ["wiki.parquet"], "id_column": "id"},
            *({"name": s, "paths": [f"{s}.parquet"], **synthetic} for s in ("rephrase", "chat", "gen2")),
        ],
        "quality": {"enabled": False},
        "dedup": {"parent_copies": policy},
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
        "partitions": 3,
    })


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("lineage"))
    read = _write_inputs(root)
    out = {}
    for policy in ("drop", "keep"):
        out[policy] = os.path.join(root, f"out-{policy}")
        assert main(["run", _config(root, policy), "--output", out[policy]]) == 0
    return out, read


def _table(out, folder):
    return pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(os.path.join(out, folder, "*.parquet")))])


def _manifest(out):
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _fates(out):
    ledger = _table(out, "ledger")
    return {r["doc_id"]: (r["fate"], r["detail"]) for r in ledger.to_pylist()}


@pytest.mark.parametrize("policy", ["drop", "keep"])
def test_every_input_row_has_one_fate_and_the_manifest_adds_up(runs, policy):
    out, read = runs
    manifest = _manifest(out[policy])
    assert os.path.exists(os.path.join(out[policy], "_SUCCESS"))
    for source, n in read.items():
        c = manifest["counts"][source]
        assert c["read"] == n
        assert c["rejected"] + c["filtered"] + c["exact_duplicates"] + c["near_duplicates"] + c["not_selected"] \
            + c["selected"] == n, source
    assert len(_fates(out[policy])) == sum(read.values())


def test_drop_records_lineage_in_duplicates_and_the_manifest(runs):
    out, _ = runs
    dups = _table(out["drop"], "duplicates")
    assert dups.schema.equals(DUPLICATE_SCHEMA)
    lineage = {r["doc_id"]: (r["kept_doc_id"], r["kind"], r["lineage"]) for r in dups.to_pylist()}
    assert lineage == {
        "c0": ("h0", "near", "child"), "c0x": ("h0", "exact", "child"), "u0": ("h0", "near", None),
        "e1": ("h1", "exact", "child"), "u2": ("h2", "near", None), "s3": ("h3", "near", None),
        "g2": ("h3", "near", None), "z-p4": ("a-c4", "near", "parent"), "c5": ("h5", "near", "child"),
    }
    report = _manifest(out["drop"])["dedup"]["lineage"]
    assert report == {
        "parent_copies": "drop",
        "self_copies": 5,
        "by_fate": {"parent_removed": 1, "removed_exact": 2, "removed_near": 2},
        "by_source": {"gen2": {"total": 1, "parent_removed": 1},
                      "rephrase": {"total": 4, "removed_exact": 2, "removed_near": 2}},
        "by_generator": {"gen2": {"m-c": 1}, "rephrase": {"m-a": 2, "m-b": 2}},
    }
    fates = _fates(out["drop"])
    assert fates["c0"][0] == "duplicate" and "a copy of its own parent" in fates["c0"][1]
    assert "the parent of the document kept" in fates["z-p4"][1]
    assert "parent" not in fates["u0"][1]


def test_keep_leaves_near_copies_of_their_parent_in_the_mix(runs):
    out, _ = runs
    drop, keep = _manifest(out["drop"]), _manifest(out["keep"])
    # c0 and c5 leave duplicates/ for the mixture; c0's exact copy now points at c0.
    assert keep["counts"]["rephrase"]["near_duplicates"] == drop["counts"]["rephrase"]["near_duplicates"] - 2
    rephrase = lambda m: m["counts"]["rephrase"]["selected"] + m["counts"]["rephrase"]["not_selected"]  # noqa: E731
    assert rephrase(keep) == rephrase(drop) + 2
    dups = {r["doc_id"]: r for r in _table(out["keep"], "duplicates").to_pylist()}
    assert "c0" not in dups and "c5" not in dups
    assert (dups["c0x"]["kept_doc_id"], dups["c0x"]["cluster"], dups["c0x"]["cluster_size"], dups["c0x"]["lineage"]) \
        == ("c0", "c0", 2, None)
    assert dups["e1"]["lineage"] == "child"  # an exact copy of its parent goes whatever the policy
    assert dups["u0"]["cluster_size"] == 2  # h0 now stands for itself and u0 only
    fates = _fates(out["keep"])
    # The mixture takes every synthetic survivor here (the human side is the larger), spared ones too.
    assert fates["c0"][0] == "selected" and fates["c5"][0] == "selected"
    assert keep["dedup"]["lineage"]["by_fate"] == {"parent_removed": 1, "removed_exact": 1, "spared": 2}
    assert keep["dedup"]["lineage"]["by_generator"] == {"gen2": {"m-c": 1}, "rephrase": {"m-a": 2, "m-b": 1}}
    data = {r["doc_id"]: (r["dup_cluster"], r["dup_cluster_size"]) for r in _table(out["keep"], "data").to_pylist()}
    assert data["c0"] == ("c0", 2) and data["c5"] == (None, 1)


def test_inspect_and_report_show_self_copies(runs, capsys):
    out, _ = runs
    assert main(["inspect", out["keep"], "--rows", "0"]) == 0
    printed = capsys.readouterr().out
    assert "self-copies: 4 synthetic documents duplicate their own parent (dedup.parent_copies: keep)" in printed
    line = next(line for line in printed.splitlines() if line.startswith("rephrase ") and "m-a 2" in line)
    assert line.split()[1:6] == ["3", "1", "0", "2", "0"]
    with open(os.path.join(out["keep"], "report.html"), encoding="utf-8") as fh:
        assert "Copies of their own parent" in fh.read()
