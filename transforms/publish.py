"""The last step of a run: write the manifest and publish the staged output atomically.

A local output is written under a staging folder next to it (`.OUT.<run id>.inprogress`),
`manifest.json` and then `_SUCCESS` last. Publishing is a rename of that folder into place, so a
reader sees the previous output or the new one, complete. Replacing an output takes two renames
(old aside to `<staging>.replaced`, new in); a run killed between them leaves the old output
parked, and the next run into that folder puts it back before doing anything else.

An output on an object store has no rename: the run writes under its own prefix and publishes by
one conditional write of `OUT/_SUCCESS` (see `objectstore`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any, NamedTuple

import apache_beam as beam

from hybridmix.schemas.config import OutputConfig
from hybridmix.schemas.errors import OutputError, OutputLocked, check_stop
from hybridmix.schemas.manifest import Manifest
from hybridmix.schemas.records import RECORD_TYPES
from hybridmix.schemas.stats import RunStats
from hybridmix.transforms import progress
from hybridmix.transforms.faults import crash_point
from hybridmix.transforms.inputs import InputPlan
from hybridmix.transforms.manifest import OUTPUT_FOLDERS, build_manifest, listed_paths, listed_sizes
from hybridmix.transforms.objectstore import (
    STARTED,
    SUCCESS,
    PreconditionFailed,
    Store,
    clean_attempts,
    commit,
    new_attempt,
    read_commit,
)
from hybridmix.transforms.report_html import REPORT, report_or_fallback
from hybridmix.transforms.shards import shard_file_name, write_parquet
from hybridmix.transforms.storage import create_raw, delete_files, is_remote, list_files

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# Everything a finished output holds; a folder holding anything else is not hybridmix's to replace.
# `hybridmix report` rewrites report.html through a temporary file beside it, which a killed rebuild leaves.
OUTPUT_ENTRIES = frozenset(OUTPUT_FOLDERS + (MANIFEST, SUCCESS, REPORT, REPORT + ".inprogress"))
STAGING_SUFFIX = ".inprogress"
# Folders that may get no rows; each always holds at least a schema-only file.
SIDE_FOLDERS = ("rejects", "filtered", "duplicates", "ledger")
PARKED_SUFFIX = ".replaced"


def staging_dir(out_dir: str, run_id: str) -> str:
    """Where a run writes before it publishes: next to a local output; on an object store, a new
    attempt folder under it (each call names a new one)."""
    if is_remote(out_dir):
        return new_attempt(out_dir, run_id)
    parent, name = os.path.split(out_dir)
    return os.path.join(parent, f".{name}.{run_id}{STAGING_SUFFIX}")


def parked_dir(stage_dir: str) -> str:
    """Where a replaced output waits while the new one moves in."""
    return stage_dir + PARKED_SUFFIX


def _manifest_of(out: str) -> Any:
    """A local output's manifest.json as JSON, None where there is none or it does not parse."""
    try:
        with open(os.path.join(out, MANIFEST), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def not_written_here(out: str, manifest: Any = None) -> list[str]:
    """Files and folders inside a finished local output's folders (data/, ledger/, ...) that its manifest
    (read from `out` unless given) does not list, or lists with another size (or as a plain file, where
    a link or folder now stands), relative to `out`: put there by someone else, so a replacing run must
    not delete them."""
    manifest = _manifest_of(out) if manifest is None else manifest
    listed = {os.path.normpath(p) for p in listed_paths(manifest)}
    return sorted(_unlisted(out, listed) + [os.path.normpath(p) for p in changed_files(out, manifest)])


def changed_files(out: str, manifest) -> dict[str, str]:
    """Files of a local output that its manifest lists and that are there, but not as the run wrote them
    (another size, or a link or folder in a file's place), each with what is wrong."""
    changed = {}
    for path, size in listed_sizes(manifest):
        full = os.path.join(out, path)
        if os.path.islink(full) or (os.path.lexists(full) and not os.path.isfile(full)):
            changed[path] = "not a plain file"
        elif os.path.isfile(full) and os.path.getsize(full) != size:
            changed[path] = f"{os.path.getsize(full):,} bytes; the manifest says {size:,}"
    return changed


def _unlisted(out: str, listed: set[str]) -> list[str]:
    holding = {os.path.dirname(p) for p in listed}
    found = []
    for folder in OUTPUT_FOLDERS:
        root = os.path.join(out, folder)
        if os.path.lexists(root) and not os.path.isdir(root):
            found.append(folder)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, out)
            found += [os.path.join(rel, d) for d in dirnames if os.path.join(rel, d) not in holding]
            dirnames[:] = [d for d in dirnames if os.path.join(rel, d) in holding]
            found += [os.path.join(rel, f) for f in filenames if os.path.join(rel, f) not in listed]
    return found


def strangers(out: str) -> list[str]:
    """What a local output folder holds that no hybridmix run wrote there: entries beside a finished
    output's own (`OUTPUT_ENTRIES`), files inside its folders that its manifest does not list (or lists
    with another size), and anything at all in a folder that holds no finished output."""
    if not os.path.isdir(out) or os.path.islink(out):
        return []
    entries = sorted(os.listdir(out))
    manifest = _manifest_of(out)
    if not os.path.isfile(os.path.join(out, SUCCESS)) or manifest is None:
        return [e for e in entries if e != MANIFEST]
    return [e for e in entries if e not in OUTPUT_ENTRIES] + not_written_here(out, manifest)


def publish_local(stage_dir: str, out_dir: str, manifest: Manifest, scratch: tuple[str, ...],
                  report: str | None = None) -> None:
    """Finish the staged folder (report, manifest, then `_SUCCESS`) and rename it into place."""
    for folder in scratch:
        shutil.rmtree(os.path.join(stage_dir, folder), ignore_errors=True)
    if report is not None:
        with open(os.path.join(stage_dir, REPORT), "w", encoding="utf-8") as fh:
            fh.write(report)
    with open(os.path.join(stage_dir, MANIFEST), "w", encoding="utf-8") as fh:
        fh.write(manifest.model_dump_json(indent=2))
        fh.write("\n")
    with open(os.path.join(stage_dir, SUCCESS), "w", encoding="utf-8") as fh:
        fh.write(manifest.run_id + "\n")
    crash_point("publish:staged")
    # The output was checked when the run started; files put into it since (a note in the empty folder
    # it was given, a shard copied into data/ of the output it replaces) are not the run's to delete.
    found = strangers(out_dir)
    if found:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise OutputError(
            f"{out_dir} now holds files this run did not write, put there while it worked ({shown}); "
            "hybridmix never deletes what it did not write, so this run published nothing: move them out of "
            "the folder, or choose another output folder, and run again")
    parked = parked_dir(stage_dir)
    if os.path.lexists(out_dir):
        os.replace(out_dir, parked)
        crash_point("publish:parked")
    os.replace(stage_dir, out_dir)
    crash_point("publish:moved")
    late = strangers(parked)
    if late:
        # Written in the moment between the check and the move: the replaced output stays where it is.
        log.warning("kept %s, the output this run replaced: it holds files no run wrote (%s)", parked,
                    ", ".join(late[:5]))
        return
    shutil.rmtree(parked, ignore_errors=True)


def publish_remote(stage_dir: str, out_dir: str, manifest: Manifest, scratch: tuple[str, ...],
                   report: str | None = None, *, base: Any = None, settings: dict | None = None,
                   locked: bool = True) -> None:
    """Finish the attempt folder (scratch out, report and manifest in), then commit it with one write of
    `_SUCCESS`.

    `base` is the commit the run saw when it started (None: none); with `locked` the commit is
    conditional on it still being the current one.
    """
    stage_dir = stage_dir.rstrip("/")
    store = Store(out_dir, settings)
    current = read_commit(out_dir, store)
    if current is not None and current.folder(out_dir) == stage_dir:
        # A retry of this step after the commit: the run is published; only the clean-up remains.
        clean_attempts(out_dir, current)
        return
    files = [p for p, _, _ in list_files(stage_dir)]
    spill = [p for p in files if any(p.startswith(f"{stage_dir}/{folder}/") for folder in scratch)]
    delete_files(spill)
    finished = {f"{stage_dir}/{MANIFEST}"}
    if report is not None:
        with create_raw(f"{stage_dir}/{REPORT}") as fh:
            fh.write(report.encode("utf-8"))
        finished.add(f"{stage_dir}/{REPORT}")
    with create_raw(f"{stage_dir}/{MANIFEST}") as fh:
        fh.write(manifest.model_dump_json(indent=2).encode("utf-8") + b"\n")
    published = sorted({p for p in files if p not in spill and p != f"{stage_dir}/{STARTED}"} | finished)
    crash_point("publish:staged")
    try:
        now = commit(store, out_dir, stage_dir, manifest.run_id, published, base, locked)
    except PreconditionFailed:
        other = read_commit(out_dir, store)
        raise OutputLocked(
            f"{out_dir}: another run (run {other.run_id if other else '?'}) published here while this run was "
            "working; this run published nothing (rerun it to replace that output)") from None
    crash_point("publish:committed")
    clean_attempts(out_dir, now)


def schema_only_files(stage_dir: str, outputs: list[dict], output: OutputConfig) -> list[dict]:
    """One file with the schema and no rows for each side folder that got no rows.

    pyarrow datasets, Polars, DuckDB and the README's own snippets fail on a folder that does not
    exist. Written here, in the step that already waits for every writer, rather than by a branch
    per folder: Flink gives every operator network buffers, and a few more operators were enough
    to exhaust a 4 GB TaskManager's.
    """
    written = {o["folder"] for o in outputs}
    files = []
    for folder in SIDE_FOLDERS:
        if folder == "ledger" and not output.ledger:
            continue
        if folder not in written:
            rel = f"{folder}/{shard_file_name('part', 0, 1)}"
            size = write_parquet([], RECORD_TYPES[folder][1], f"{stage_dir.rstrip('/')}/{rel}", output)
            files.append({"folder": folder, "path": rel, "rows": 0, "size_bytes": size})
    return files


class _PublishFn(beam.DoFn):
    def __init__(self, **context: Any) -> None:
        self._context = context

    def process(self, _, stats, plan, inputs, outputs, collapse):
        progress.add(progress.PUBLISHED, 0)
        ctx = dict(self._context)
        stage_dir, out_dir, scratch = ctx.pop("stage_dir"), ctx.pop("out_dir"), ctx.pop("scratch")
        remote = ctx.pop("remote")
        # Every input must still be the file that was planned, read and checksummed.
        for file in ctx.pop("input_plan").files:
            file.check_unchanged()
        outputs = list(outputs) + schema_only_files(stage_dir, outputs, ctx["config"].output)
        manifest = build_manifest(stats=RunStats(stats), plan=plan, inputs=list(inputs), outputs=outputs,
                                  collapse=collapse, **ctx)
        # From the manifest as JSON, as `hybridmix report` reads it from manifest.json: the same page.
        written = json.loads(manifest.model_dump_json())
        report = report_or_fallback(stage_dir, written)
        # A stop signal this process received stops the run here, even if its exception was lost.
        check_stop()
        if is_remote(out_dir):
            publish_remote(stage_dir, out_dir, manifest, scratch, report, **remote)
        else:
            publish_local(stage_dir, out_dir, manifest, scratch, report)
        progress.add(progress.PUBLISHED, 1)
        yield written


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
    `input_plan` holds the input files, checked once more to be unchanged (the plan rather than its
    files: it pickles fast, see `InputPlan.__reduce__`); `remote` is what `publish_remote` needs
    besides (base commit, S3 settings, locked); `context` is the rest of `build_manifest`'s arguments.
    """

    def __init__(self, *, stage_dir: str, out_dir: str, scratch: tuple[str, ...], input_plan: InputPlan,
                 remote: dict | None = None, **context: Any) -> None:
        super().__init__()
        self._context = {"stage_dir": stage_dir, "out_dir": out_dir, "scratch": scratch,
                         "input_plan": input_plan, "remote": remote or {}, **context}

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
