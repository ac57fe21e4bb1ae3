"""Small input files are read several to a work item (`InputPlan.read_groups`) and validated as one
batch; every row must still name its own file and row, in data/, rejects/ and ledger/, when the
files differ in schema and when a file cannot be read."""

import json
import os

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from hybridmix.pipelines.cli import main
from hybridmix.schemas.config import load_config
from hybridmix.schemas.reasons import RejectReason
from hybridmix.transforms.inputs import UNSLICED, plan_inputs
from tests.builders import words, write_config, write_parquet

BATCH = 16
FILES = 36
LINE_FILES = 20
LARGE_TEXT = pa.schema([("id", pa.string()), ("text", pa.large_string())])


def _rows(f: int) -> list[dict]:
    rows = [{"id": f"m{f}-{r}", "text": words(f * 10 + r, 30)} for r in range(1 + f % 3)]
    if f % 7 == 3:
        rows[0]["text"] = None  # rejected: null text
    if 12 <= f < 18:
        for row in rows:
            row["extra"] = f"x{f}"  # a column the run does not read: what is read keeps one schema
    return rows


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    written = {}
    for f in range(FILES):
        path = root / "in" / "many" / f"part-{f:03d}.parquet"
        # Three files with their text as large_string: another schema, validated in a batch of its own.
        write_parquet(path, _rows(f), schema=LARGE_TEXT if 24 <= f < 27 else None)
        written.update({(f"many/part-{f:03d}.parquet", r): row for r, row in enumerate(_rows(f))})
    # The last file's second row group cannot be read (bytes of its text page flipped).
    broken = root / "in" / "many" / f"part-{FILES:03d}.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": f"b{r}", "text": words(900 + r, 30)} for r in range(4)]),
                   broken, row_group_size=2, compression="zstd")
    page = pq.ParquetFile(broken).metadata.row_group(1).column(1).data_page_offset
    data = bytearray(broken.read_bytes())
    for k in range(page + 20, page + 60):
        data[k] ^= 0xFF
    broken.write_bytes(bytes(data))
    for r in range(2):
        written[(f"many/part-{FILES:03d}.parquet", r)] = {"id": f"b{r}", "text": words(900 + r, 30)}
    # Small JSON Lines files too, some lines not JSON (never a file's only line: that file is
    # not JSON Lines, and quarantined whole).
    for f in range(LINE_FILES):
        lines = []
        for r in range(1 + f % 3):
            row = {"id": f"j{f}-{r}", "text": words(3000 + f * 10 + r, 30)}
            bad = f % 3 > 0 and (f + r) % 5 == 2
            lines.append("{not json" if bad else json.dumps(row))
            written[(f"lines/part-{f:03d}.jsonl", r)] = None if bad else row
        (root / "in" / "lines").mkdir(exist_ok=True)
        (root / "in" / "lines" / f"part-{f:03d}.jsonl").write_text("\n".join(lines) + "\n")
    write_parquet(root / "in" / "s.parquet", [{"id": f"s{i}", "text": words(5000 + i, 40)} for i in range(60)])
    config = write_config(root / "in" / "run.yaml", {
        "read_batch_rows": BATCH,
        "on_bad_file": "quarantine",
        "corpora": [{"name": "many", "origin": "human", "paths": ["many/*.parquet"], "id_column": "id"},
                    {"name": "lines", "origin": "human", "paths": ["lines/*.jsonl"], "id_column": "id"},
                    {"name": "s", "origin": "synthetic", "paths": ["s.parquet"], "id_column": "id"}],
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
    })
    out = str(root / "out")
    assert main(["run", config, "--output", out, "-q"]) == 0
    return config, out, written


def test_small_files_of_one_corpus_are_joined_into_work_items(run):
    config_path, _, _ = run
    config = load_config(config_path)
    plan = plan_inputs(config.ingest, os.path.dirname(config_path))
    groups = plan.read_groups(BATCH, UNSLICED)
    units = [u for g in groups for u in g]
    assert sorted(units) == sorted(plan.work_items(BATCH, UNSLICED))  # each unit once
    many = [g for g in groups if plan.files[g[0][0]].corpus == 0]
    assert len(many) < FILES / 3  # 37 files of 1-3 rows
    assert len([g for g in groups if plan.files[g[0][0]].corpus == 1]) < LINE_FILES / 3
    for g in groups:
        assert len({plan.files[f].corpus for f, *_ in g}) == 1
        assert sum(n for *_, n in g[:-1]) < BATCH  # closed once it reaches the batch size
    big = [g for g in groups if plan.files[g[0][0]].corpus == 2]
    assert [len(g) for g in big] == [1]  # a file of 60 rows is its own work item
    # Joined up to a number of bytes too (each file's footer says how many it holds).
    assert all(len(g) == 1 for g in plan.read_groups(BATCH, 1))


def test_every_row_keeps_its_own_file_and_row(run):
    _, out, written = run
    data = ds.dataset(os.path.join(out, "data")).to_table().to_pylist()
    for source in ("many", "lines"):
        mine = [r for r in data if r["source"] == source]
        assert mine, source
        for row in mine:
            written_row = written[(row["source_file"], row["source_row"])]
            assert (row["doc_id"], row["text"]) == (written_row["id"], written_row["text"])
    rejects = ds.dataset(os.path.join(out, "rejects")).to_table().to_pylist()
    null_text = {(r["source_file"], r["source_row"]) for r in rejects if r["reason"] == RejectReason.NULL_TEXT}
    assert null_text == {k for k, v in written.items() if v is not None and v["text"] is None}
    not_json = {(r["source_file"], r["source_row"]) for r in rejects if r["reason"] == RejectReason.INVALID_JSON}
    assert not_json == {k for k, v in written.items() if v is None}
    assert all(r["detail"].startswith(f"line {r['source_row'] + 1}: ") for r in rejects
               if r["reason"] == RejectReason.INVALID_JSON)
    unreadable = sorted(r["source_row"] for r in rejects if r["reason"] == RejectReason.UNREADABLE_ROW_GROUP)
    assert unreadable == [2, 3]
    ledger = ds.dataset(os.path.join(out, "ledger")).to_table().to_pylist()
    placed = [(r["source_file"], r["source_row"]) for r in ledger if r["source"] in ("many", "lines")]
    assert sorted(placed) == sorted(set(written) | {(f"many/part-{FILES:03d}.parquet", r) for r in (2, 3)})
    for r in ledger:
        if r["source"] in ("many", "lines") and r["doc_id"] is not None:
            assert written[(r["source_file"], r["source_row"])]["id"] == r["doc_id"]
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as fh:
        counts = json.load(fh)["counts"]
    assert counts["many"]["read"] + counts["lines"]["read"] == len(written) + 2


def test_a_stored_plan_pickles_as_a_reference_and_is_read_once(run, tmp_path):
    # Beam pickles every DoFn holding the plan, and its in-process runner does so again for each
    # stage: a stored plan travels as its path and digest.
    import dataclasses
    import pickle

    from hybridmix.schemas.errors import DataError
    from hybridmix.transforms import inputs

    config_path, _, _ = run
    plan = plan_inputs(load_config(config_path).ingest, os.path.dirname(config_path))
    stored = plan.store(str(tmp_path / "plan.bin"))
    assert len(pickle.dumps(stored)) < 400 < len(pickle.dumps(plan))
    inputs._STORED.clear()  # as in a worker process that has not read it yet
    again = pickle.loads(pickle.dumps(stored))
    assert again == plan and again.files == plan.files and again.stored == stored.stored
    assert pickle.loads(pickle.dumps(stored)) is again  # read once per process
    # A worker serving many runs keeps the last few plans, and reads an older one again.
    for i in range(inputs._STORED_MOST):
        dataclasses.replace(plan, base_dir=f"/runs/{i}").store(str(tmp_path / f"other-{i}.bin"))
    assert len(inputs._STORED) == inputs._STORED_MOST and stored.stored[1] not in inputs._STORED
    assert pickle.loads(pickle.dumps(stored)) == plan
    inputs._STORED.clear()
    (tmp_path / "plan.bin").write_bytes(b"not the plan")
    with pytest.raises(DataError, match="input plan is not the one the run was built with"):
        pickle.loads(pickle.dumps(stored))


def test_checksums_run_on_spans_of_files(run):
    from hybridmix.transforms.inputs import checksum_spans

    config_path, _, _ = run
    plan = plan_inputs(load_config(config_path).ingest, os.path.dirname(config_path))
    n = len(plan.files)
    for most_bytes, most_files in ((256 << 20, 256), (1 << 30, 5), (1, 100)):
        spans = checksum_spans(plan, most_bytes, most_files)
        assert [a for a, _ in spans] == [0] + [b for _, b in spans[:-1]] and spans[-1][1] == n
        assert all(0 < b - a <= most_files for a, b in spans)
    assert len(checksum_spans(plan, 1, 100)) == n  # each file over the byte limit alone
