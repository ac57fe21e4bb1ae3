"""The last step of a run: build the manifest from in-pipeline statistics and publish atomically.

Everything is written under a staging folder first. Publishing moves it into place with a
rename and writes `_SUCCESS` last, so a reader never sees a half-written output as finished.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections import defaultdict
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from schemas.config import Origin, PipelineConfig
from schemas.errors import FatalError
from schemas.manifest import (
    COUNT_FIELDS,
    InputFile,
    Manifest,
    MixtureGroup,
    MixtureReport,
    OutputFile,
    SourceCounts,
)
from transforms.dedup import CROSS_SEP
from transforms.indicators import near_duplicate_rates
from transforms.mixture_core import MixturePlan
from transforms.output import SPILL_FOLDER

MANIFEST = "manifest.json"
SUCCESS = "_SUCCESS"
OUTPUT_FOLDERS = ("data", "rejects", "filtered", "duplicates")


def _counts(stats: dict[tuple[str, str], int], sources: list[str]) -> dict[str, SourceCounts]:
    fields = COUNT_FIELDS + ("written",)
    return {s: SourceCounts(**{f: int(stats.get((s, f), 0)) for f in fields}) for s in sources}


def _group(plan: MixturePlan, names: list[str], stats: dict[tuple[str, str], int], total_units: int) -> MixtureGroup:
    planned = [plan.sources[n] for n in names if n in plan.sources]
    units = sum(int(stats.get((n, "selected_units"), 0)) for n in names)
    target = sum(sp.share for sp in planned)
    achieved = units / total_units if total_units else 0.0
    docs = sum(int(stats.get((n, "selected"), 0)) for n in names)
    rows = sum(int(stats.get((n, "selected_rows"), 0)) for n in names)
    return MixtureGroup(
        available_tokens=sum(sp.available_tokens for sp in planned),
        available_documents=sum(sp.available_documents for sp in planned),
        target_fraction=round(target, 10),
        achieved_fraction=round(achieved, 10),
        fraction_error=round(achieved - target, 10),
        target_units=round(sum(sp.quota_units for sp in planned), 3),
        selected_units=units,
        selected_tokens=sum(int(stats.get((n, "selected_tokens"), 0)) for n in names),
        selected_documents=docs,
        written_rows=rows,
        repeats=round(rows / docs, 6) if docs else 0.0,
    )


def mixture_report(plan: MixturePlan, config: PipelineConfig, stats: dict[tuple[str, str], int]) -> MixtureReport:
    sources = [c.name for c in config.corpora]
    units_total = sum(int(stats.get((n, "selected_units"), 0)) for n in sources)
    by_origin = {}
    for origin in Origin:
        names = [c.name for c in config.corpora if c.origin is origin]
        if names:
            by_origin[origin.value] = _group(plan, names, stats, units_total)
    return MixtureReport(
        unit=plan.unit,
        targets=plan.targets,
        achieved={o: g.achieved_fraction for o, g in by_origin.items()},
        total_units=units_total,
        budget=plan.budget,
        max_repeats=plan.max_repeats,
        origins=by_origin,
        sources={n: _group(plan, [n], stats, units_total) for n in sources},
    )


def build_manifest(
    *,
    config: PipelineConfig,
    run_id: str,
    config_digest: str,
    base_dir: str,
    started_at: str,
    versions: dict[str, str],
    dedup_params: dict[str, Any],
    stats: dict[tuple[str, str], int],
    plan: MixturePlan,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    collapse: dict[str, Any] | None = None,
) -> Manifest:
    sources = [c.name for c in config.corpora]
    counts = _counts(stats, sources)
    unbalanced = [f"{s}: read {c.read} != accounted {c.accounted}" for s, c in counts.items() if not c.balanced]
    if unbalanced:
        raise FatalError("row accounting does not add up (" + "; ".join(unbalanced) + ")")
    totals = SourceCounts(**{f: sum(getattr(c, f) for c in counts.values()) for f in COUNT_FIELDS + ("written",)})
    quality: dict[str, Any] = defaultdict(dict)
    dedup_stats: dict[str, Any] = {}
    cross: dict[str, int] = {}
    rejects: dict[str, dict[str, int]] = defaultdict(dict)
    for (scope, name), value in sorted(stats.items()):
        if scope.startswith("_quality:"):
            _, label, mode = scope.split(":")
            quality[f"{label}"].setdefault("mode", mode)
            quality[f"{label}"].setdefault("by_source", {})[name] = value
        elif scope == "_dedup":
            dedup_stats[name] = value
        elif scope == "_cross":
            cross[name] = value
        elif name.startswith("rejected:"):
            rejects[name.split(":", 1)[1]][scope] = value
    for entry in quality.values():
        entry["total"] = sum(entry["by_source"].values())
    by_folder: dict[str, list[OutputFile]] = {f: [] for f in OUTPUT_FOLDERS}
    for item in sorted(outputs, key=lambda o: o["path"]):
        by_folder[item["folder"]].append(OutputFile(path=item["path"], rows=item["rows"], size_bytes=item["size_bytes"]))
    return Manifest(
        run_id=run_id,
        config_digest=config_digest,
        seed=config.seed,
        started_at=started_at,
        finished_at=_now(),
        versions=versions,
        config=config.model_dump(mode="json"),
        base_dir=base_dir,
        inputs=[InputFile(**i) for i in sorted(inputs, key=lambda i: i["path"])],
        counts=counts,
        totals=totals,
        mixture=mixture_report(plan, config, stats),
        dedup={**dedup_params, "stats": _dedup_summary(dedup_stats), "cross_origin": _cross_summary(cross)},
        quality={"filters": dict(quality), "rejects_by_reason": dict(rejects)},
        collapse=_collapse_report(collapse or {}, counts, {c.name: c.origin.value for c in config.corpora}),
        outputs=by_folder,
    )


def _dedup_summary(raw: dict[str, int]) -> dict[str, Any]:
    sizes = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("near_cluster_docs:")}
    out = {k: v for k, v in raw.items() if ":" not in k}
    out["near_cluster_documents_by_size"] = sizes
    return out


def _collapse_report(measured: dict[str, Any], counts: dict[str, SourceCounts],
                     origins: dict[str, str]) -> dict[str, Any]:
    """Sample-based indicators of the output, plus duplicate rates from the counts."""
    rates = near_duplicate_rates({s: c.model_dump() for s, c in counts.items()}, origins)
    out: dict[str, Any] = {"sample_documents": measured.get("sample_documents"), "by_origin": {}, "by_source": {}}
    for kind in ("by_origin", "by_source"):
        for group in sorted(set(rates[kind]) | set(measured.get(kind, {}))):
            out[kind][group] = {**measured.get(kind, {}).get(group, {}), **rates[kind].get(group, {})}
    return out


def _cross_summary(raw: dict[str, int]) -> dict[str, Any]:
    """Clusters mixing human and synthetic text, and their synthetic members per source and generator."""
    by_source: dict[str, int] = {}
    by_generator: dict[str, dict[str, int]] = {}
    for key, value in raw.items():
        parts = key.split(CROSS_SEP)
        if parts[0] == "source":
            by_source[parts[1]] = value
        elif parts[0] == "generator":
            by_generator.setdefault(parts[1], {})[parts[2]] = value
    return {
        "clusters": raw.get("clusters", 0),
        "synthetic_documents": sum(by_source.values()),
        "by_source": dict(sorted(by_source.items())),
        "by_generator": {s: dict(sorted(g.items())) for s, g in sorted(by_generator.items())},
    }


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def publish_local(stage_dir: str, out_dir: str, manifest: Manifest) -> None:
    """Move the staged folder into place with renames; `_SUCCESS` goes in last."""
    shutil.rmtree(os.path.join(stage_dir, SPILL_FOLDER), ignore_errors=True)
    with open(os.path.join(stage_dir, MANIFEST), "w", encoding="utf-8") as fh:
        fh.write(manifest.model_dump_json(indent=2))
        fh.write("\n")
    if os.path.exists(out_dir):
        parked = f"{stage_dir}.replaced"
        os.replace(out_dir, parked)
        os.replace(stage_dir, out_dir)
        shutil.rmtree(parked, ignore_errors=True)
    else:
        os.replace(stage_dir, out_dir)
    with open(os.path.join(out_dir, SUCCESS), "w", encoding="utf-8") as fh:
        fh.write(manifest.run_id + "\n")


def publish_remote(stage_dir: str, out_dir: str, manifest: Manifest) -> None:
    """Object stores have no folder rename: move each file, then write `_SUCCESS`."""
    stage_dir, out_dir = stage_dir.rstrip("/"), out_dir.rstrip("/")
    old = [m.path for m in FileSystems.match([out_dir + "/**"])[0].metadata_list]
    if old:
        FileSystems.delete(old)
    with FileSystems.create(f"{stage_dir}/{MANIFEST}") as fh:
        fh.write(manifest.model_dump_json(indent=2).encode("utf-8") + b"\n")
    staged = [m.path for m in FileSystems.match([stage_dir + "/**"])[0].metadata_list
              if f"/{SPILL_FOLDER}/" not in m.path]
    FileSystems.rename(staged, [out_dir + p[len(stage_dir):] for p in staged])
    with FileSystems.create(f"{out_dir}/{SUCCESS}") as fh:
        fh.write(manifest.run_id.encode("utf-8") + b"\n")


class _PublishFn(beam.DoFn):
    def __init__(self, **context: Any) -> None:
        self._context = context

    def process(self, _, stats, plan, inputs, outputs, collapse):
        ctx = dict(self._context)
        stage_dir, out_dir = ctx.pop("stage_dir"), ctx.pop("out_dir")
        stats = dict(stats)
        manifest = build_manifest(stats=stats, plan=plan, inputs=list(inputs), outputs=list(outputs),
                                  collapse=collapse, **ctx)
        if "://" in out_dir:
            publish_remote(stage_dir, out_dir, manifest)
        else:
            publish_local(stage_dir, out_dir, manifest)
        yield json.loads(manifest.model_dump_json())


class PublishRun(beam.PTransform):
    """After every writer has finished: write manifest.json, move the run into place, write _SUCCESS."""

    def __init__(self, *, stage_dir: str, out_dir: str, **context: Any) -> None:
        super().__init__()
        self._context = {"stage_dir": stage_dir, "out_dir": out_dir, **context}

    def expand(self, inputs: dict[str, beam.PCollection]) -> beam.PCollection:
        # The side inputs make this step wait for every writer and every statistic.
        return (
            inputs["stats"].pipeline
            | "Once" >> beam.Create([None])
            | "WriteManifestAndPublish" >> beam.ParDo(
                _PublishFn(**self._context),
                stats=beam.pvalue.AsList(inputs["stats"]),
                plan=beam.pvalue.AsSingleton(inputs["plan"]),
                inputs=beam.pvalue.AsList(inputs["inputs"]),
                outputs=beam.pvalue.AsList(inputs["outputs"]),
                collapse=beam.pvalue.AsSingleton(inputs["collapse"]),
            )
        )
