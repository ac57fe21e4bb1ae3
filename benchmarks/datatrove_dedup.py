"""datatrove's four-stage MinHash dedup with its local executor (2 tasks, 2 workers).

Runs in its own virtualenv (datatrove needs dill >= 0.4, Apache Beam 2.62 needs dill < 0.3.2):

    bash benchmarks/setup_datatrove.sh
    benchmarks/work/venv-datatrove/bin/python benchmarks/datatrove_dedup.py CORPUS WORKDIR

Prints one JSON line: wall time per stage, peak RSS (this process and its largest worker).
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import time

from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter


def main(corpus: str, work: str, buckets: int = 32, per_bucket: int = 8, tasks: int = 2, workers: int = 2) -> None:
    shutil.rmtree(work, ignore_errors=True)
    config = MinhashConfig(n_grams=5, num_buckets=buckets, hashes_per_bucket=per_bucket, seed=1)

    def reader():
        return ParquetReader(corpus, glob_pattern="*/*.parquet", text_key="text", id_key="id", read_metadata=False)

    stages = [
        ("signatures", [reader(), MinhashDedupSignature(output_folder=f"{work}/sigs", config=config)], tasks),
        ("buckets", [MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets",
                                         config=config)], buckets),
        ("clusters", [MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids",
                                          config=config)], 1),
        ("filter", [reader(), MinhashDedupFilter(input_folder=f"{work}/remove_ids"),
                    ParquetWriter(f"{work}/out")], tasks),
    ]
    times = {}
    started = time.perf_counter()
    for name, pipeline, n_tasks in stages:
        t = time.perf_counter()
        LocalPipelineExecutor(pipeline=pipeline, tasks=n_tasks, workers=workers,
                              logging_dir=f"{work}/logs/{name}").run()
        times[name] = round(time.perf_counter() - t, 2)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"tool": "datatrove", "seconds": round(time.perf_counter() - started, 2),
                      "peak_rss_mb": round((own + children) / 1024, 1), "stages": times}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
