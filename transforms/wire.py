"""How Arrow record batches and tables cross stage boundaries: as one Arrow IPC stream each.

Beam encodes values it has no coder for (ours are mostly typed Any: batches, and tuples holding
them) with pickle, and it also encodes elements of every step's output, fused steps included, to
estimate their size for its metrics (the first ten of each, then fewer and fewer). pyarrow
pickles a batch column by column and buffer by buffer through Python (about 250 microseconds
for a batch of 10 rows, 1.2 ms for 1,000 rows with text; 8,900 batches pickled took 1.9 s of a
200,000-document run), and pickles a sliced array or table with the whole of its parent's
buffers. As one IPC stream a batch is written by Arrow's C++ writer in one call (17-130
microseconds for the same batches), only the rows of a slice are written, and reading it back
does not copy the buffers.

Two mechanisms, both set up by `register()`:
- pickle: a reduction in `copyreg`'s table, which pickle consults before an object's own
  `__reduce_ex__`, covers batches and tables wherever Beam falls back to pickle (inside tuples,
  in shuffles). `transforms/__init__.py` calls `register()` in every process that runs
  hybridmix's transforms; a process that only decodes needs nothing (the pickle names
  `batch_from_ipc` or `table_from_ipc`, which imports this module).
- coders: steps whose main output is declared `pa.RecordBatch` (or a tuple of a batch and a table)
  get `ArrowBatchCoder` / `ArrowTableCoder`, which give Beam an element's size from its buffers
  instead of encoding it: the batches that carry the documents' text (several MB each) were
  encoded about 60 times per 200,000-document run only to be measured.
"""

from __future__ import annotations

import copyreg

import apache_beam as beam
import pyarrow as pa


def _ipc_stream(value: pa.RecordBatch | pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, value.schema) as writer:
        for batch in [value] if isinstance(value, pa.RecordBatch) else value.to_batches():
            writer.write_batch(batch)
    return sink.getvalue()


def batch_from_ipc(data) -> pa.RecordBatch:
    return pa.ipc.open_stream(data).read_next_batch()


def table_from_ipc(data) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def _reduce_batch(batch: pa.RecordBatch):
    return batch_from_ipc, (_ipc_stream(batch),)


def _reduce_table(table: pa.Table):
    return table_from_ipc, (_ipc_stream(table),)


class _ArrowCoder(beam.coders.Coder):
    """An IPC stream per element; the size Beam's metrics sample is the element's buffers."""

    kind: type  # set by each subclass, with `read`

    def encode(self, value) -> bytes:
        return _ipc_stream(value).to_pybytes()

    def decode(self, encoded: bytes):
        return self.read(encoded)

    def estimate_size(self, value) -> int:
        return value.nbytes

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return self.kind


class ArrowBatchCoder(_ArrowCoder):
    kind = pa.RecordBatch
    read = staticmethod(batch_from_ipc)


class ArrowTableCoder(_ArrowCoder):
    kind = pa.Table
    read = staticmethod(table_from_ipc)


def register() -> None:
    copyreg.pickle(pa.RecordBatch, _reduce_batch)
    copyreg.pickle(pa.Table, _reduce_table)
    beam.coders.registry.register_coder(pa.RecordBatch, ArrowBatchCoder)
    beam.coders.registry.register_coder(pa.Table, ArrowTableCoder)
