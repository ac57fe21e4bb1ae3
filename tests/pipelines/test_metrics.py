"""Beam metrics: what a runner shows for a run (Flink's web UI, `result.metrics()`) agrees with its manifest."""

import json

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from hybridmix.pipelines.build import build_pipeline, prepare_run
from hybridmix.pipelines.outputs import make_staging
from hybridmix.schemas.config import load_config
from tests.builders import words, write_config, write_parquet


def _counters(result) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for counter in result.metrics().query(MetricsFilter())["counters"]:
        key = (counter.key.metric.namespace, counter.key.metric.name)
        out[key] = out.get(key, 0) + counter.committed
    return out


def test_counters_agree_with_the_manifest(tmp_path):
    human = [{"id": f"h{i}", "text": words(100 + i, 40)} for i in range(20)]
    human += [{"id": "h0", "text": words(500, 40)},  # a repeated id: rejected
              {"id": "copy", "text": human[1]["text"].upper()},  # an exact copy of h1
              {"id": "short", "text": "Hi"}]  # one word: filtered
    synth = [{"id": f"s{i}", "text": words(300 + i, 40), "model": "m"} for i in range(20)]
    near = synth[2]["text"].split()
    synth.append({"id": "near", "text": " ".join(near[:-1] + ["changed"]), "model": "m"})  # a near copy of s2
    write_parquet(tmp_path / "in" / "human" / "a.parquet", human)
    write_parquet(tmp_path / "in" / "synth" / "b.parquet", synth)
    path = write_config(tmp_path / "in" / "config.yaml", {
        "corpora": [{"name": "wiki", "origin": "human", "paths": ["human/*.parquet"], "id_column": "id"},
                    {"name": "chat", "origin": "synthetic", "paths": ["synth/*.parquet"], "id_column": "id",
                     "columns": {"generator": "model"}}],
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
        "on_bad_file": "quarantine",
        "partitions": 3,
    })
    config = load_config(path)
    ctx = prepare_run(config, str(tmp_path / "in"), str(tmp_path / "out"))
    make_staging(ctx.stage_dir)
    p = beam.Pipeline(options=PipelineOptions([]))
    build_pipeline(p, config, ctx)
    result = p.run()
    result.wait_until_finish()
    counters = _counters(result)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    totals = manifest["totals"]
    assert totals["rejected"] == 1 and totals["filtered"] >= 1
    assert totals["exact_duplicates"] >= 1 and totals["near_duplicates"] >= 1
    assert counters[("ReadCorpora", "rows_read")] == totals["read"]
    assert counters[("FilterQuality", "filtered")] == totals["filtered"]
    assert counters[("CheckIds", "rejected_duplicate_id")] == totals["rejected"]
    assert counters[("CheckIds", "documents")] == totals["read"] - totals["filtered"]
    assert counters[("DedupExact", "exact_duplicates")] == totals["exact_duplicates"]
    assert counters[("DedupNear", "near_duplicates")] == totals["near_duplicates"]
    assert counters[("MixSources", "selected")] == totals["selected"]
    assert counters[("MixSources", "rows")] == totals["written"]
    for folder, files in manifest["outputs"].items():
        assert counters.get(("MergeShards", f"{folder}_rows"), 0) == sum(f["rows"] for f in files), folder
