import functools
import os
import re
import threading

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hybridmix.schemas.config import OutputConfig
from hybridmix.transforms import parallel, shards
from hybridmix.transforms.shards import (
    SPILL_FOLDER,
    MergeShards,
    ShardSpec,
    SpillShards,
    WriteShards,
    label_by_split,
    order_by_id,
)
from tests.conftest import local_pipeline

SCHEMA = pa.schema([("id", pa.string()), ("split", pa.string()), ("value", pa.int64())])
BATCHES, ROWS = 6, 150


def batches(repeat_first=False):
    out = []
    for b in range(BATCHES):
        ids = [f"doc-{b}-{i}" for i in range(ROWS)]
        splits = ["validation" if i % 10 == 0 else "train" for i in range(ROWS)]
        out.append(pa.record_batch([pa.array(ids), pa.array(splits), pa.array(range(b * ROWS, (b + 1) * ROWS))],
                                   schema=SCHEMA))
    # A bundle that is retried delivers its batch again.
    return out + out[:1] if repeat_first else out


def write(tmp_path, rows_per_shard, name, repeat_first=False, inputs=1):
    stage = str(tmp_path / name)
    spec = ShardSpec("data", SCHEMA, functools.partial(order_by_id, seed=3), ("id",), label=label_by_split,
                     unique="id")
    with local_pipeline() as p:
        # `inputs` > 1: the batches dealt over that many PCollections, written by one WriteShards.
        rows = tuple(p | f"Create{i}" >> beam.Create(batches(repeat_first)[i::inputs]) for i in range(inputs))
        _ = (rows if inputs > 1 else rows[0]) | WriteShards(
            spec, OutputConfig(rows_per_shard=rows_per_shard, row_group_rows=7), stage)
    spill = [f for _, _, files in os.walk(os.path.join(stage, SPILL_FOLDER)) for f in files]
    data = sorted(os.listdir(os.path.join(stage, "data")))
    return spill, {f: pq.read_table(os.path.join(stage, "data", f)) for f in data}


def check_shards(files):
    """Every row once, in the shard its key names, sorted by key within the shard."""
    seen = []
    for name, table in files.items():
        label, shard, count = re.fullmatch(r"(\w+)-(\d+)-of-(\d+)\.parquet", name).groups()
        keys = order_by_id(pa.record_batch([table.column("id").combine_chunks()], names=["id"]), seed=3)
        assert (keys % np.uint64(int(count)) == int(shard)).all(), name
        assert (keys[1:] >= keys[:-1]).all(), name
        assert set(table.column("split").to_pylist()) <= {label}, name
        seen += table.column("id").to_pylist()
    assert sorted(seen) == sorted(f"doc-{b}-{i}" for b in range(BATCHES) for i in range(ROWS))


def test_spill_files_do_not_grow_with_the_shard_count(tmp_path):
    many_spill, many = write(tmp_path, 4, "small")
    few_spill, few = write(tmp_path, 100_000, "large")
    # 203 + 23 shards of 4 rows (a few get no rows) against 2.
    assert len(many) > 200 and len(few) == 2
    # A shard no row hashed to is there too, without rows: each label's files are numbered without gaps.
    assert any(t.num_rows == 0 for t in many.values())
    for label in ("train", "validation"):
        numbers = [re.fullmatch(rf"{label}-(\d+)-of-(\d+)\.parquet", f) for f in many]
        numbers = [(int(m[1]), int(m[2])) for m in numbers if m]
        assert sorted(n for n, _ in numbers) == list(range(numbers[0][1])), label
    # One spill file per input batch and label (train, validation), however many shards. They stay
    # until the run publishes, so the folder shows every file written.
    assert len(many_spill) == len(few_spill) == BATCHES * 2
    check_shards(many)
    check_shards(few)


def test_merges_of_many_shards_place_every_row_and_match_one_merge_per_shard(tmp_path, monkeypatch):
    _, whole = write(tmp_path, 4, "whole")  # one merge per label
    # Merges of about 10 rows: 2 shards of 4 rows each; and one merge per shard.
    monkeypatch.setattr(shards, "MERGE_ROWS", 10)
    _, grouped = write(tmp_path, 4, "grouped")
    monkeypatch.setattr(shards, "MERGE_ROWS", 1)
    _, single = write(tmp_path, 4, "single")
    check_shards(grouped)
    # A merge that got no row writes nothing: merges of one or two 4-row shards here; of MERGE_ROWS rows, never.
    with_rows = [{name for name, t in files.items() if t.num_rows} for files in (grouped, single, whole)]
    assert with_rows[0] == with_rows[1] == with_rows[2]
    for name in with_rows[0]:
        assert grouped[name].equals(single[name]) and whole[name].equals(single[name]), name


def test_rows_of_several_inputs_are_written_as_those_of_one(tmp_path):
    """Index rows come from two stages; each spills on its own and the shards are the same files."""
    _, one = write(tmp_path, 40, "one")
    spill, three = write(tmp_path, 40, "three", inputs=3)
    assert len(spill) == BATCHES * 2
    check_shards(three)
    assert one.keys() == three.keys()
    for name in one:
        assert one[name].equals(three[name]), name


def test_a_batch_delivered_twice_is_written_once(tmp_path):
    """A retried bundle rewrites the same spill file and reports the same ranges: no row twice (the
    `unique` check would fail the run)."""
    _, files = write(tmp_path, 4, "retried", repeat_first=True)
    check_shards(files)


@pytest.mark.parametrize("array_bytes", [shards.MAX_ARRAY_BYTES, 5_000], ids=["2GiB", "5000"])
@pytest.mark.parametrize("text_type", [pa.string(), pa.large_string(), pa.binary()])
def test_row_groups_are_the_parts_sorted_whatever_the_column_widths(text_type, array_bytes, monkeypatch):
    """Wide columns (long texts, gathered part by part) and narrow ones (taken from one batch) come out
    as one sort of all the rows would give them: by key, equal keys by the tiebreak column, from parts
    that are slices of larger batches, with empty and null texts and a narrow nullable column among
    them; a row group's text past what one Arrow array holds (2 GiB; 5,000 bytes here) in several."""
    monkeypatch.setattr(shards, "MAX_ARRAY_BYTES", array_bytes)
    rng = np.random.default_rng(7)
    n = 700
    texts = [None if i % 9 == 4 else "ü" * int(rng.integers(0, 300)) for i in range(n)]
    if text_type == pa.binary():
        texts = [None if t is None else t.encode() for t in texts]
    whole = pa.record_batch({
        "id": pa.array([f"d{i:04d}" for i in rng.permutation(n)]),
        "text": pa.array(texts, text_type),
        "note": pa.array([None if i % 5 == 0 else "x" * (i % 90) for i in range(n)]),
        "value": pa.array(np.arange(n)),
    })
    cuts = [0, 3, 3, 150, 400, 401, n]
    parts = [whole.slice(lo, hi - lo) for lo, hi in zip(cuts[:-1], cuts[1:])]
    keys = [rng.integers(0, 40, p.num_rows).astype(np.uint64) for p in parts]
    assert shards._wide_columns(parts) == ["text"]
    groups = list(shards.sorted_row_groups(parts, keys, ["id"], 64))
    assert [g.num_rows for g in groups] == [64] * 10 + [60]
    got = pa.concat_tables(groups)
    split = array_bytes == 5_000 and text_type != pa.large_string()
    assert all((g.column("text").num_chunks > 1) == split for g in groups)
    expected = pa.Table.from_batches([whole]).append_column("k", pa.array(np.concatenate(keys)))
    expected = expected.sort_by([("k", "ascending"), ("id", "ascending")]).drop_columns(["k"])
    assert got.schema == whole.schema
    assert got.equals(expected)


def test_row_groups_end_before_their_text_passes_row_group_bytes(monkeypatch):
    """Books: 10,000 of them made one row group of 4 GB. A group takes rows until the next would take
    its wide columns past ROW_GROUP_BYTES (2,000 here), or row_group_rows; a longer row is a group alone."""
    monkeypatch.setattr(shards, "ROW_GROUP_BYTES", 2_000)
    rng = np.random.default_rng(3)
    n = 300
    sizes = rng.integers(0, 220, n)
    sizes[[17, 150]] = 2_500
    whole = pa.record_batch({"id": pa.array([f"d{i:04d}" for i in range(n)]),
                             "text": pa.array(["a" * int(k) for k in sizes]), "value": pa.array(np.arange(n))})
    parts = [whole.slice(0, 120), whole.slice(120, 180)]
    keys = [rng.integers(0, 1 << 40, p.num_rows).astype(np.uint64) for p in parts]
    groups = list(shards.sorted_row_groups(parts, keys, ["id"], 16))
    got = pa.concat_tables(groups)
    expected = pa.Table.from_batches([whole]).append_column("k", pa.array(np.concatenate(keys)))
    assert got.equals(expected.sort_by([("k", "ascending"), ("id", "ascending")]).drop_columns(["k"]))
    text_bytes = [sum(map(len, g.column("text").to_pylist())) for g in groups]
    assert [g.num_rows for g in groups if len(g.column("text")[0].as_py()) == 2_500] == [1, 1]
    for g, size, after in zip(groups, text_bytes, groups[1:]):
        assert g.num_rows == 1 or size <= 2_000
        # Nothing more would have fitted: the next group's first row takes it past either bound.
        assert g.num_rows == 16 or size + len(after.column("text")[0].as_py()) > 2_000
    assert max(g.num_rows for g in groups) == 16 and len(groups) > n // 16 + 2


@pytest.mark.parametrize(("count", "rows", "expected"),
                         [(1, 5, 1), (3, 0, 3), (4, 1_000_000, 1), (1000, 1_000_000, 100)])
def test_shards_per_merge_follows_rows(count, rows, expected):
    assert shards.shards_per_merge(count, rows) == expected


@pytest.mark.parametrize(("count", "rows", "text_bytes", "expected"),
                         [(1000, 1_000_000, 10 << 30, 100), (1000, 1_000_000, 40 << 30, 25), (7, 6_000, 7 << 30, 1)])
def test_shards_per_merge_follows_text_bytes(count, rows, text_bytes, expected):
    assert shards.shards_per_merge(count, rows, text_bytes) == expected


def test_shards_hold_at_most_merge_bytes_of_text_unless_bytes_per_shard_says_otherwise(tmp_path, monkeypatch):
    """Books: 100,000 rows a shard were 40 GB a file, and a merge holds its shard whole. Counted
    while spilling (filtered/, duplicates/) as planned from the mixture (data/)."""
    assert shards.shard_count(6_000, OutputConfig(), 2_400_000_000) == 3
    assert shards.shard_count(250_000, OutputConfig(), 300_000_000) == 3
    assert shards.shard_count(6_000, OutputConfig(bytes_per_shard=500_000_000), 2_400_000_000) == 5
    assert shards.shards_by_split({"train": {"rows": 10, "bytes": 3 << 30}}, OutputConfig()) == {
        "train": (3, 10, 3 << 30)}
    monkeypatch.setattr(shards, "MERGE_BYTES", 100_000)
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    texts = pa.array(["x" * (1_000 + i) for i in range(150)])
    rows = [pa.record_batch([pa.array([f"d{b}-{i}" for i in range(150)]), texts], schema=schema) for b in range(6)]
    spec = ShardSpec("filtered", schema, functools.partial(order_by_id, seed=3), ("id",))
    stage = str(tmp_path / "stage")
    with local_pipeline() as p:
        _ = p | beam.Create(rows) | WriteShards(spec, OutputConfig(), stage)
    files = sorted(os.listdir(os.path.join(stage, "filtered")))
    text_bytes = sum(1_000 + i for i in range(150)) * 6
    assert len(files) == -(-text_bytes // 100_000) == 10
    written = [pq.read_table(os.path.join(stage, "filtered", f)) for f in files]
    assert sorted(i for t in written for i in t.column("id").to_pylist()) == sorted(
        f"d{b}-{i}" for b in range(6) for i in range(150))
    assert max(sum(map(len, t.column("text").to_pylist())) for t in written) < 2 * 100_000


def test_hash_columns_are_written_without_a_dictionary(tmp_path):
    from hybridmix.schemas.records import INDEX_SCHEMA

    rng = np.random.default_rng(1)
    n = 500
    columns = {
        "doc_id": pa.array([f"d{i}" for i in range(n)]), "content_hash": pa.array([f"h{i}" for i in range(n)]),
        "bands": pa.array(list(rng.integers(0, 2**63, (n, 4), dtype=np.uint64)), pa.list_(pa.uint64())),
        "minhash8": pa.array([rng.bytes(16) for _ in range(n)], pa.binary()),
        "origin": pa.array(["human"] * n), "source": pa.array(["wiki"] * n), "generation": pa.array([0] * n, pa.int8()),
        "tokens": pa.array(range(n), pa.int32()), "run_id": pa.array(["r"] * n),
    }
    table = pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in INDEX_SCHEMA}, schema=INDEX_SCHEMA)
    path = str(tmp_path / "index.parquet")
    shards.write_parquet([table], INDEX_SCHEMA, path, OutputConfig())
    group = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)}
    # Random hashes never fit a dictionary; trying one cost more than writing them.
    assert "RLE_DICTIONARY" not in encodings["bands.list.element"]
    assert "RLE_DICTIONARY" not in encodings["minhash8"]
    assert "RLE_DICTIONARY" in encodings["source"]
    assert pq.read_table(path).equals(table)


def test_spill_files_are_whole_when_the_next_stage_starts(tmp_path, slow_writer):
    # The writer thread is slowed down; the stage after the spill looks at the files without
    # reading them through `read_range` (which would wait for them itself): the spill's bundle
    # must have waited for its writes before it counted as done.
    spec = ShardSpec("data", SCHEMA, functools.partial(order_by_id, seed=3), ("id",), label=label_by_split)
    sizes = {"train": (3, 810, 0), "validation": (1, 90, 0)}

    def whole(element):
        _, ranges = element
        for path, _, end, _ in ranges:
            assert os.path.getsize(path) >= end, path

    with local_pipeline() as p:
        _ = (
            p
            | beam.Create(batches())
            | beam.ParDo(shards._SpillFn(spec, str(tmp_path / "spill")),
                         shards=beam.pvalue.AsSingleton(p | "Sizes" >> beam.Create([sizes])))
            | beam.GroupByKey()
            | beam.Map(whole)
        )
    assert len(os.listdir(tmp_path / "spill" / "train")) == BATCHES


@pytest.fixture
def two_threads():
    before = parallel.threads()
    parallel.set_threads(2)
    yield
    parallel.set_threads(before)


def _by_value(batch: pa.RecordBatch) -> np.ndarray:
    return batch.column("value").to_numpy().astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)


def _merge_two_folders(tmp_path, name, repeat_in_other=False):
    """data/ and other/ (other rows, another order) spilled apart and merged in one stage."""
    stage = str(tmp_path / name)
    cfg = OutputConfig(rows_per_shard=4, row_group_rows=7)
    data = ShardSpec("data", SCHEMA, functools.partial(order_by_id, seed=3), ("id",), label=label_by_split,
                     unique="id")
    other = ShardSpec("other", SCHEMA, _by_value, ("id",), unique="value")
    repeat = pa.record_batch([pa.array(["again"]), pa.array(["train"]), pa.array([5])], schema=SCHEMA)
    other_rows = batches() + ([repeat] if repeat_in_other else [])
    with local_pipeline() as p:
        ranges = (p | "Data" >> beam.Create(batches()) | "SpillData" >> SpillShards(data, cfg, stage),
                  p | "Other" >> beam.Create(other_rows) | "SpillOther" >> SpillShards(other, cfg, stage))
        _ = ranges | beam.Flatten() | MergeShards((data, other), cfg, stage)
    return {folder: {f: pq.read_table(os.path.join(stage, folder, f)) for f in sorted(os.listdir(os.path.join(stage, folder)))}
            for folder in ("data", "other")}


def test_folders_merged_in_one_stage_on_two_threads_are_the_files_each_folder_writes_alone(
        tmp_path, two_threads, monkeypatch):
    threads_used = set()
    write_parquet = shards.write_parquet

    def noting_thread(*args, **kwargs):
        threads_used.add(threading.current_thread().name)
        return write_parquet(*args, **kwargs)

    monkeypatch.setattr(shards, "write_parquet", noting_thread)
    together = _merge_two_folders(tmp_path, "together")
    # Over 200 shards of 4 rows each, one merge each: both threads of the pool wrote some.
    assert len([t for t in threads_used if t.startswith("hybridmix-merge")]) == 2, threads_used
    _, alone = write(tmp_path, 4, "alone")
    check_shards(together["data"])
    assert together["data"].keys() == alone.keys()
    for name in alone:
        assert together["data"][name].equals(alone[name]), name
    values = pa.concat_tables(together["other"].values()).column("value").to_pylist()
    assert sorted(values) == list(range(BATCHES * ROWS))


def test_a_failed_merge_fails_the_stage_after_the_others_have_ended(tmp_path, two_threads):
    # other/ repeats a value its merge must reject; data/'s merges go on beside it. When the stage
    # fails, none of them is still writing: every data/ shard is whole, and the only half-written
    # file is the one the failed merge stopped in.
    with pytest.raises(Exception, match="value np.int64.5. occurs twice"):
        _merge_two_folders(tmp_path, "failed", repeat_in_other=True)
    partial = [os.path.relpath(os.path.join(d, f), tmp_path / "failed")
               for d, _, files in os.walk(tmp_path / "failed") for f in files if f.endswith(".inprogress")]
    assert len(partial) == 1 and partial[0].startswith("other/"), partial
    _, alone = write(tmp_path, 4, "alone")
    assert sorted(os.listdir(tmp_path / "failed" / "data")) == sorted(alone)
