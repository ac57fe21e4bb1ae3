"""The floor: a Beam pipeline that only reads the corpus's Parquet files as Arrow tables and writes
them back, on the same runner hybridmix uses. Nothing can be faster than this on Beam."""

from __future__ import annotations

import glob
import os

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.parquetio import ReadFromParquetBatched, WriteToParquetBatched
from apache_beam.options.pipeline_options import PipelineOptions

from hybridmix.pipelines.cli import DEFAULT_RUNNER


def run(corpus: str, out: str, *beam_flags: str) -> dict:
    files = sorted(glob.glob(os.path.join(corpus, "*", "*.parquet")))
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    options = PipelineOptions([f"--runner={DEFAULT_RUNNER}", *beam_flags])
    with beam.Pipeline(options=options) as p:
        _ = (
            p
            | "Read" >> ReadFromParquetBatched(os.path.join(corpus, "*", "*.parquet"), columns=["id", "text"])
            | "Write" >> WriteToParquetBatched(os.path.join(out, "part"), schema, codec="zstd",
                                               file_name_suffix=".parquet")
        )
    return {"documents": sum(pq.ParquetFile(f).metadata.num_rows for f in files)}
