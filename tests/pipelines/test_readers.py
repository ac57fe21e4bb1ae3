"""Every folder of an output opens in the tools people read Parquet with, also when it has no rows.

The readers run in their own virtualenv (.ci/readers.sh: current pyarrow, Polars, DuckDB, pandas and
`datasets`), named by HYBRIDMIX_READERS_PYTHON; without it that part is skipped, and the folders are
still checked here with this environment's pyarrow.
"""

import json
import os
import subprocess
from collections import Counter

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from hybridmix.pipelines.cli import main
from hybridmix.schemas.records import RECORD_TYPES
from tests.builders import words, write_config, write_parquet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READERS = os.environ.get("HYBRIDMIX_READERS_PYTHON", "").strip()
FOLDERS = ("data", "rejects", "filtered", "duplicates", "ledger")


def _clean_run(root) -> str:
    """A run in which nothing is rejected, filtered or duplicated."""
    write_parquet(root / "in" / "h.parquet", [{"id": f"h{i}", "text": words(10 + i, 80)} for i in range(20)])
    write_parquet(root / "in" / "s.parquet", [{"id": f"s{i}", "text": words(500 + i, 80)} for i in range(20)])
    config = write_config(root / "in" / "config.yaml", {
        "corpora": [{"name": "h", "origin": "human", "paths": ["h.parquet"], "id_column": "id"},
                    {"name": "s", "origin": "synthetic", "paths": ["s.parquet"], "id_column": "id"}],
        "quality": {"filters": []},
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
    })
    out = root / "out"
    assert main(["run", config, "--output", str(out)]) == 0
    return str(out)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    demo = tmp_path_factory.mktemp("demo") / "out"
    assert main(["run", os.path.join(ROOT, "examples", "demo.yaml"), "--output", str(demo)]) == 0
    return {"demo": str(demo), "clean": _clean_run(tmp_path_factory.mktemp("clean"))}


def _rows(out: str) -> dict[str, int]:
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    return {folder: sum(f["rows"] for f in manifest["outputs"].get(folder, [])) for folder in FOLDERS}


@pytest.mark.parametrize("name", ["demo", "clean"])
def test_every_folder_exists_with_its_schema(outputs, name):
    out = outputs[name]
    rows = _rows(out)
    if name == "clean":
        assert rows["rejects"] == rows["filtered"] == rows["duplicates"] == 0
    for folder in FOLDERS:
        files = sorted(os.listdir(os.path.join(out, folder)))
        assert files, folder
        table = ds.dataset(os.path.join(out, folder)).to_table()
        assert table.num_rows == rows[folder], folder
        assert pq.read_schema(os.path.join(out, folder, files[0])).equals(RECORD_TYPES[folder][1]), folder


@pytest.mark.skipif(not READERS, reason="set HYBRIDMIX_READERS_PYTHON (.ci/readers.sh prints it)")
@pytest.mark.parametrize("name", ["demo", "clean"])
def test_pyarrow_polars_duckdb_pandas_and_datasets_read_every_folder(outputs, name):
    out = outputs[name]
    probe = subprocess.run([READERS, os.path.join(ROOT, "tests", "read_output.py"), out],
                           capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=""))
    assert probe.returncode == 0, probe.stderr[-5000:]
    counts = json.loads(probe.stdout.strip().splitlines()[-1])
    for folder, expected in _rows(out).items():
        got = counts[folder]
        assert [got[r] for r in ("pyarrow", "polars", "duckdb", "pandas")] == [expected] * 4, (folder, got)
        assert sum(got["datasets"].values()) == expected, (folder, got)
    assert set(counts["data"]["datasets"]) == ({"train", "validation"} if name == "demo" else {"train"})


def test_filters_failed_accounts_for_the_manifests_per_filter_counts(outputs):
    """filtered/ has one row per document; its filters_failed lists add up to the manifest's
    per-filter drop counts, and each row's rule is numeric."""
    out = outputs["demo"]
    rows = ds.dataset(os.path.join(out, "filtered")).to_table().to_pylist()
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    drops = {label: f["dropped"]["total"] for label, f in manifest["quality"]["filters"].items() if "dropped" in f}
    listed = Counter(label for r in rows for label in r["filters_failed"])
    assert listed == Counter(drops)
    assert len(rows) == sum(c["filtered"] for c in manifest["counts"].values()) < sum(drops.values())
    for r in rows:
        assert r["filters_failed"][0] == r["filter"]
        assert {">": r["value"] > r["threshold"], "<": r["value"] < r["threshold"],
                ">=": r["value"] >= r["threshold"]}[r["comparison"]], r
