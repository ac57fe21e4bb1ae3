"""The last step of a run: write the manifest and publish the staged output atomically.

Everything is written under a staging folder first. Publishing moves it into place with a
rename and writes `_SUCCESS` last, so a reader never sees a half-written output as finished.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from hybridmix.schemas.manifest import Manifest
from hybridmix.schemas.stats import RunStats
from hybridmix.transforms.manifest import build_manifest
from hybridmix.transforms.storage import is_remote

MANIFEST = "manifest.json"
SUCCESS = "_SUCCESS"


def publish_local(stage_dir: str, out_dir: str, manifest: Manifest, scratch: tuple[str, ...]) -> None:
    """Move the staged folder into place with renames; `_SUCCESS` goes in last."""
    for folder in scratch:
        shutil.rmtree(os.path.join(stage_dir, folder), ignore_errors=True)
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


def publish_remote(stage_dir: str, out_dir: str, manifest: Manifest, scratch: tuple[str, ...]) -> None:
    """Object stores have no folder rename: move each file, then write `_SUCCESS`."""
    stage_dir, out_dir = stage_dir.rstrip("/"), out_dir.rstrip("/")
    old = [m.path for m in FileSystems.match([out_dir + "/**"])[0].metadata_list]
    if old:
        FileSystems.delete(old)
    with FileSystems.create(f"{stage_dir}/{MANIFEST}") as fh:
        fh.write(manifest.model_dump_json(indent=2).encode("utf-8") + b"\n")
    staged = [m.path for m in FileSystems.match([stage_dir + "/**"])[0].metadata_list
              if not any(f"/{folder}/" in m.path for folder in scratch)]
    FileSystems.rename(staged, [out_dir + p[len(stage_dir):] for p in staged])
    with FileSystems.create(f"{out_dir}/{SUCCESS}") as fh:
        fh.write(manifest.run_id.encode("utf-8") + b"\n")


class _PublishFn(beam.DoFn):
    def __init__(self, **context: Any) -> None:
        self._context = context

    def process(self, _, stats, plan, inputs, outputs, collapse):
        ctx = dict(self._context)
        stage_dir, out_dir, scratch = ctx.pop("stage_dir"), ctx.pop("out_dir"), ctx.pop("scratch")
        manifest = build_manifest(stats=RunStats(stats), plan=plan, inputs=list(inputs), outputs=list(outputs),
                                  collapse=collapse, **ctx)
        publish = publish_remote if is_remote(out_dir) else publish_local
        publish(stage_dir, out_dir, manifest, scratch)
        yield json.loads(manifest.model_dump_json())


class RunResults(NamedTuple):
    """What a run's manifest is made of; the publish step waits for all of it."""

    stats: beam.PCollection  # summed ((figure, source, detail), value) pairs
    plan: beam.PCollection  # one checked MixturePlan
    inputs: beam.PCollection  # one manifest entry per input file
    outputs: beam.PCollection  # one entry per written file
    collapse: beam.PCollection  # one dict of collapse indicators


class PublishRun(beam.PTransform):
    """After every writer has finished: write manifest.json, move the run into place, write _SUCCESS.

    `scratch` names folders of the staging folder that are not part of the output (spill files);
    `context` is the rest of `build_manifest`'s arguments.
    """

    def __init__(self, *, stage_dir: str, out_dir: str, scratch: tuple[str, ...], **context: Any) -> None:
        super().__init__()
        self._context = {"stage_dir": stage_dir, "out_dir": out_dir, "scratch": scratch, **context}

    def expand(self, results: RunResults) -> beam.PCollection:
        # The side inputs make this step wait for every writer and every statistic.
        return (
            results.stats.pipeline
            | "Once" >> beam.Create([None])
            | "WriteManifestAndPublish" >> beam.ParDo(
                _PublishFn(**self._context),
                stats=beam.pvalue.AsList(results.stats),
                plan=beam.pvalue.AsSingleton(results.plan),
                inputs=beam.pvalue.AsList(results.inputs),
                outputs=beam.pvalue.AsList(results.outputs),
                collapse=beam.pvalue.AsSingleton(results.collapse),
            )
        )
