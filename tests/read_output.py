"""Open every folder of a hybridmix output with the tools users read it with; print row counts as JSON.

Runs in the readers' own environment (.ci/readers.sh), not hybridmix's: `python read_output.py OUT`.
Offline: `datasets` reads local Parquet files without the Hub.
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import duckdb  # noqa: E402
import pandas as pd  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402

out = sys.argv[1]
counts = {}
with tempfile.TemporaryDirectory() as cache:
    for folder in ("data", "rejects", "filtered", "duplicates", "ledger"):
        path = os.path.join(out, folder)
        table = ds.dataset(path).to_table()
        try:
            hf = {split: d.num_rows for split, d in
                  datasets.load_dataset("parquet", data_dir=path, cache_dir=cache).items()}
        except ValueError as exc:
            # load_dataset refuses a split without rows ("corresponds to no data"), whatever the file
            # holds; such a folder still opens as a Dataset from its Arrow table.
            if table.num_rows or "corresponds to no data" not in str(exc):
                raise
            hf = {"no rows (Dataset from the Arrow table)": datasets.Dataset(table).num_rows}
        counts[folder] = {
            "pyarrow": table.num_rows,
            "polars": pl.read_parquet(os.path.join(path, "*.parquet")).height,
            "duckdb": duckdb.sql(f"select count(*) from '{path}/*.parquet'").fetchall()[0][0],
            "pandas": len(pd.read_parquet(path)),
            "datasets": hf,
        }
print(json.dumps(counts))
