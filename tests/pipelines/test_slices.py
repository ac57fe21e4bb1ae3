"""A big Parquet row group is read as several work items (slices), with the same output as one.

pyarrow writes up to a million rows in one row group; read as one work item, such a file is
processed by one worker whatever the engine. `read_slice_bytes` cuts it into up to four slices
of whole batches, on runners with several workers (the in-process runner's one worker reads
whole row groups). Everything read twice (MinHash candidates, selected rows) must find its rows
in the right slice, so a run with slices must write what a run without them writes.
"""

import json
import os

import pyarrow.dataset as ds
import pytest

from hybridmix.pipelines.build import read_as
from hybridmix.pipelines.cli import main
from hybridmix.pipelines.run import beam_options
from hybridmix.schemas.config import load_config
from hybridmix.transforms.inputs import MAX_SLICES, plan_inputs
from tests.builders import near_copy, words, write_config, write_parquet

BATCH = 32
WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def _corpus(root) -> None:
    human = [words(i, 60) for i in range(300)]
    human += [near_copy(human[i], 1) for i in range(0, 300, 7)]  # near copies in other slices
    human += [human[i] for i in range(3, 300, 11)]  # exact copies
    synth = [words(10_000 + i, 40) for i in range(260)] + [near_copy(human[i], 1) for i in range(5, 300, 13)]
    write_parquet(root / "in" / "h.parquet", [{"id": f"h{i}", "text": t} for i, t in enumerate(human)])
    write_parquet(root / "in" / "s.parquet", [{"id": f"s{i}", "text": t} for i, t in enumerate(synth)])


def _config(root, name: str, slice_bytes: int | None) -> str:
    data = {
        "read_batch_rows": BATCH,
        "corpora": [{"name": "h", "origin": "human", "paths": ["h.parquet"], "id_column": "id"},
                    {"name": "s", "origin": "synthetic", "paths": ["s.parquet"], "id_column": "id"}],
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
    }
    if slice_bytes is not None:
        data["read_slice_bytes"] = slice_bytes
    return write_config(root / "in" / name, data)


COLUMNS = {"data": ("doc_id", "text", "source_row"), "filtered": ("doc_id", "text", "source_row"),
           "duplicates": ("doc_id", "kept_doc_id", "kind", "similarity", "source_row")}


def _rows(out: str, folder: str) -> list[tuple]:
    table = ds.dataset(os.path.join(out, folder)).to_table(columns=list(COLUMNS[folder]))
    return sorted(zip(*(table.column(c).to_pylist() for c in COLUMNS[folder])))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("slices")
    _corpus(root)
    outs = {}
    # Two worker processes: where slices are read (the in-process runner reads whole row groups).
    for name, slice_bytes, flags in (("whole", None, []), ("sliced", 1, WORKERS)):
        config = _config(root, f"{name}.yaml", slice_bytes)
        outs[name] = (config, str(root / name))
        assert main(["run", config, "--output", outs[name][1], *flags]) == 0
    return outs


def test_a_big_row_group_is_cut_into_slices_of_whole_batches(runs):
    for name, expected in (("whole", 1), ("sliced", MAX_SLICES)):
        config = load_config(runs[name][0])
        plan = plan_inputs(config.ingest, os.path.dirname(runs[name][0]))
        for f in plan.files:
            assert len(f.row_group_rows) == 1  # the premise: one row group per file
            items = [i for i in plan.work_items(config.read_batch_rows, config.read_slice_bytes) if i[0] == f.index]
            assert len(items) == expected, name
            # Contiguous, covering every row once, each cut on a batch boundary.
            assert [first for _, _, first, _ in items] == [sum(n for *_, n in items[:k]) for k in range(len(items))]
            assert sum(n for *_, n in items) == f.rows
            assert all(n % BATCH == 0 for *_, n in items[:-1])


def test_a_sliced_run_writes_what_an_unsliced_one_does(runs):
    whole, sliced = runs["whole"][1], runs["sliced"][1]
    for folder in ("data", "duplicates", "filtered"):
        assert _rows(sliced, folder) == _rows(whole, folder), folder
    assert _rows(whole, "duplicates")  # the corpus has exact and near copies to find
    counts = []
    for out in (whole, sliced):
        with open(os.path.join(out, "manifest.json"), encoding="utf-8") as fh:
            counts.append(json.load(fh)["counts"])
    assert counts[0] == counts[1]


@pytest.mark.parametrize("flags, sliced", [([], False), (WORKERS, True), (["--runner=FlinkRunner"], True)],
                         ids=["in-process", "two-processes", "flink"])
def test_only_runners_with_several_workers_read_slices(runs, flags, sliced):
    config = load_config(runs["sliced"][0])  # read_slice_bytes: 1
    plan = plan_inputs(config.ingest, os.path.dirname(runs["sliced"][0]))
    ingest = read_as(config.ingest, beam_options(flags))
    items = plan.work_items(ingest.read_batch_rows, ingest.read_slice_bytes)
    assert len(items) == len(plan.files) * (MAX_SLICES if sliced else 1)
