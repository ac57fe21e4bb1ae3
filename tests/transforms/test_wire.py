"""Arrow batches and tables between stages: pickled as IPC streams, measured without encoding."""

import copyreg
import pickle
import typing

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest

from hybridmix.transforms import wire
from hybridmix.transforms.batches import split_batch, split_rows
from tests.builders import sketch_inputs, words

SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    ("text", pa.string()),
    ("score", pa.float32()),
    ("flags", pa.list_(pa.string())),
    ("n", pa.int64()),
], metadata={b"origin": b"test"})


def _batch(rows: int) -> pa.RecordBatch:
    return pa.record_batch([
        pa.array([f"d{i}" for i in range(rows)]),
        pa.array([None if i % 7 == 0 else f"第{i}段 text {i}" for i in range(rows)]),
        pa.array(np.arange(rows, dtype=np.float32) / 3),
        pa.array([[] if i % 3 else ["a", None] for i in range(rows)], pa.list_(pa.string())),
        pa.array(np.arange(rows), pa.int64()),
    ], schema=SCHEMA)


@pytest.mark.parametrize("protocol", [4, 5])
def test_batches_and_tables_round_trip(protocol):
    batch = _batch(50)
    back = pickle.loads(pickle.dumps(batch, protocol))
    assert back.equals(batch) and back.schema.equals(batch.schema, check_metadata=True)
    table = pa.Table.from_batches([batch, _batch(3)])
    back = pickle.loads(pickle.dumps(table, protocol))
    assert back.equals(table) and back.schema.equals(table.schema, check_metadata=True)
    empty = pickle.loads(pickle.dumps(table.slice(0, 0), protocol))
    assert empty.num_rows == 0 and empty.schema.equals(table.schema, check_metadata=True)


def test_a_slice_carries_its_own_rows_only():
    parent = _batch(100_000)
    for part in (parent.slice(10, 5), pa.Table.from_batches([parent]).slice(10, 5)):
        pickled = pickle.dumps(part, pickle.HIGHEST_PROTOCOL)
        assert pickle.loads(pickled).equals(part)
        # pyarrow's own pickling writes the parent's buffers (several MB) for a slice of 5 rows.
        assert len(pickled) < 10_000


def test_a_batch_split_by_partition_keeps_each_partitions_rows_in_input_order():
    batch = _batch(1_000)
    part = np.random.default_rng(3).integers(0, 40, batch.num_rows) * 2  # odd partitions stay empty
    parts = list(split_batch(batch, part, 80))
    assert [p for p, _ in parts] == sorted(set(part.tolist()))
    for p, rows in parts:
        assert rows.equals(batch.take(pa.array(np.flatnonzero(part == p))))
        # Each part is a slice of one reordered copy; on the wire it still carries its own rows only.
        assert len(pickle.dumps(rows, pickle.HIGHEST_PROTOCOL)) < 3_000
    assert list(split_batch(batch.slice(0, 0), part[:0], 80)) == []


def test_coders_measure_without_encoding():
    batch = _batch(1_000)
    coder = beam.coders.registry.get_coder(pa.RecordBatch)
    assert isinstance(coder, wire.ArrowBatchCoder)
    assert coder.decode(coder.encode(batch)).equals(batch)
    assert coder.estimate_size(batch) == batch.nbytes
    table = pa.Table.from_batches([batch]).slice(100, 200)
    coder = beam.coders.registry.get_coder(pa.Table)
    assert isinstance(coder, wire.ArrowTableCoder)
    assert coder.decode(coder.encode(table)).equals(table)
    assert coder.estimate_size(table) == table.nbytes


def test_batches_of_text_are_not_encoded_to_be_measured(tmp_path, monkeypatch):
    """Beam encodes the first elements of each step's output to measure them; the batches that carry
    the documents' text are typed, so their coder measures them by their buffers instead."""
    pickled: list[list[str]] = []

    def counting(batch):
        pickled.append(batch.schema.names)
        return wire._reduce_batch(batch)

    monkeypatch.setitem(copyreg.dispatch_table, pa.RecordBatch, counting)
    rows = [{"doc_id": f"d{i}", "text": words(i, 40)} for i in range(120)]
    with beam.Pipeline(runner="apache_beam.runners.portability.fn_api_runner.FnApiRunner") as p:
        _, _, read, sketch = sketch_inputs(p, tmp_path, rows)
        assert read.docs.element_type is pa.RecordBatch and sketch.info.element_type is pa.RecordBatch
        # A shuffle of (key, batch) pairs typed Any, which Beam pickles: the hook is seen working.
        _ = sketch.info | beam.Map(lambda b: (0, b)).with_output_types(typing.Any) | beam.GroupByKey()
    assert pickled, "no batch was pickled: the shuffle did not go through the hook"
    assert not [names for names in pickled if "text" in names]


def test_rows_split_by_partition_are_each_partitions_rows_in_input_order_for_any_partition_count():
    # Partition numbers are sorted as 8-bit, 16-bit or 64-bit integers depending on how many there are.
    rng = np.random.default_rng(5)
    for partitions in (1, 3, 256, 257, 65_536, 65_537, 1 << 20):
        part = rng.integers(0, partitions, 5_000)
        part[:3] = partitions - 1  # the largest partition number is used
        got = list(split_rows(part, partitions))
        assert [p for p, _ in got] == sorted(set(part.tolist())), partitions
        for p, rows in got:
            assert rows.tolist() == np.flatnonzero(part == p).tolist(), (partitions, p)
