"""Throughput and memory of the dedup stage at scale (issue: near-dedup that scales).

    .venv/bin/python -m benchmarks.make_corpus --docs 200000 --out benchmarks/work/c200k
    .venv/bin/python -m benchmarks.dedup_scale benchmarks/work/c200k

Runs two pipelines on the same corpus, each in a fresh process so peak RSS is its own:
`read`  reads and validates every document and counts them; `dedup` does the same, then
sketches (MinHash band keys) and deduplicates (exact + near, verified, clustered). The
difference of their wall times is the dedup stage; documents/s are over all documents.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from hybridmix.pipelines.cli import DEFAULT_RUNNER
from hybridmix.schemas.config import parse_config
from hybridmix.transforms.dedup import Deduplicate
from hybridmix.transforms.ingest import ReadCorpora
from hybridmix.transforms.inputs import ReadSpec, plan_inputs
from hybridmix.transforms.quality import FilterQuality
from hybridmix.transforms.sketch import CandidateSignatures, SketchDocuments


def _config(corpus: str) -> dict:
    return {
        "corpora": [
            {"name": "human", "origin": "human", "paths": [os.path.join(corpus, "human", "*.parquet")],
             "id_column": "id"},
            {"name": "synth", "origin": "synthetic", "paths": [os.path.join(corpus, "synthetic", "*.parquet")],
             "id_column": "id", "columns": {"generator": "generator"}},
        ],
        "quality": {"enabled": False},
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
    }


def run_one(corpus: str, mode: str) -> dict:
    config = parse_config(_config(corpus))
    plan = plan_inputs(config.ingest, corpus)
    spec = ReadSpec(config.ingest, plan, "bench")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as spill, beam.Pipeline(options=PipelineOptions([f"--runner={DEFAULT_RUNNER}"])) as p:
        read = p | ReadCorpora(spec)
        if mode == "read":
            _ = read.docs | beam.Map(lambda b: b.num_rows) | beam.CombineGlobally(sum)
        else:
            kept = read.docs | FilterQuality(config.quality, spec.lineage)
            sketch = kept.kept | SketchDocuments(config.dedup, config.partitions, spill)
            out = (sketch.info, sketch.bands) | Deduplicate(
                config.dedup, config.partitions, spec.lineage,
                CandidateSignatures(spec, config.dedup.near, config.partitions, sketch.signatures), spill)
            _ = out.survivors | "CountSurvivors" >> beam.Map(lambda b: b.num_rows) | "SumSurvivors" >> beam.CombineGlobally(sum)
            _ = out.duplicates | "CountDuplicates" >> beam.Map(lambda b: b.num_rows) | "SumDuplicates" >> beam.CombineGlobally(sum)
    wall = time.perf_counter() - started
    return {"mode": mode, "documents": sum(f.rows for f in plan.files), "seconds": round(wall, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", help="folder made by benchmarks.make_corpus")
    parser.add_argument("--mode", choices=["read", "dedup"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_one(args.corpus, args.mode)))
        return
    results = {}
    for mode in ("read", "dedup"):
        out = subprocess.run([sys.executable, "-m", "benchmarks.dedup_scale", args.corpus, "--mode", mode],
                             capture_output=True, text=True, check=True)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    docs = results["dedup"]["documents"]
    stage = results["dedup"]["seconds"] - results["read"]["seconds"]
    print(json.dumps({
        **results,
        "dedup_stage_seconds": round(stage, 2),
        "dedup_stage_docs_per_second": round(docs / stage) if stage > 0 else None,
        "read_plus_dedup_docs_per_second": round(docs / results["dedup"]["seconds"]),
    }, indent=2))


if __name__ == "__main__":
    main()
