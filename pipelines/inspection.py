"""`hybridmix inspect` and `hybridmix report`: a finished run's summary, schema and sample rows, from its
manifest, and its report.html rebuilt from the manifest and the output files."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os

import pyarrow as pa

from hybridmix.pipelines.outputs import check_beside_output, output_lock, resolve_output
from hybridmix.pipelines.report import (
    collapse_table,
    filters_table,
    sample_rows,
    schema_text,
    scores_table,
    sources_table,
    summary,
)
from hybridmix.schemas.errors import OutputError
from hybridmix.transforms.manifest import listed_paths, listed_sizes
from hybridmix.transforms.objectstore import read_bytes, read_commit
from hybridmix.transforms.publish import MANIFEST, SUCCESS, changed_files
from hybridmix.transforms.report_html import REPORT, build_report
from hybridmix.transforms.storage import is_remote, list_files, open_parquet, parquet_threads, write_atomically

log = logging.getLogger(__name__)

# What `inspect` and the run summary read from a manifest, with the type each must have.
_REQUIRED = {"run_id": str, "config": dict, "counts": dict, "totals": dict, "mixture": dict, "outputs": dict,
             "inputs": list}


def run_folder(out_dir: str) -> tuple[str, bool]:
    """(folder holding the run's files and manifest, finished) of an output.

    Locally that is the output folder itself, finished when it holds `_SUCCESS`. On an object store
    it is the run folder `_SUCCESS` names; there is nothing to read before a run published.
    """
    if not is_remote(out_dir):
        return out_dir, os.path.exists(os.path.join(out_dir, SUCCESS))
    published = read_commit(out_dir)
    if published is None:
        raise OutputError(f"{out_dir}: no {SUCCESS}; no hybridmix run has published there")
    return published.folder(out_dir), True


def read_manifest(out_dir: str) -> dict:
    if not is_remote(out_dir) and not os.path.isdir(out_dir):
        what = "is a file" if os.path.lexists(out_dir) else "does not exist"
        raise OutputError(f"{out_dir} {what}; give the folder a hybridmix run wrote (its --output)")
    folder, _ = run_folder(out_dir)
    path = f"{folder.rstrip('/')}/{MANIFEST}" if is_remote(folder) else os.path.join(folder, MANIFEST)
    try:
        if is_remote(path):
            manifest = json.loads(read_bytes(path))
        else:
            with open(path, encoding="utf-8") as fh:
                manifest = json.load(fh)
    except FileNotFoundError:
        raise OutputError(f"{out_dir}: no {MANIFEST}; not the output of a finished hybridmix run") from None
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: cannot read ({exc})") from None
    problems = [key for key, kind in _REQUIRED.items()
                if not isinstance(manifest, dict) or not isinstance(manifest.get(key), kind)]
    if problems:
        raise OutputError(f"{path} is not a hybridmix manifest (missing or malformed: {', '.join(problems)})")
    return manifest


def missing_files(folder: str, manifest: dict) -> dict[str, str]:
    """Files the manifest lists that are not in the run's folder, or not as the run wrote them (another
    size: cut short in a copy, or written over), each with what is wrong ("" for missing)."""
    if not is_remote(folder):
        missing = {p: "" for p in listed_paths(manifest) if not os.path.lexists(os.path.join(folder, p))}
        return missing | changed_files(folder, manifest)
    sizes = dict(listed_sizes(manifest))
    base = folder.rstrip("/") + "/"
    present = {p[len(base):]: size for p, size, _ in list_files(folder)}
    return {p: "" if p not in present else f"{present[p]:,} bytes; the manifest says {sizes[p]:,}"
            for p in listed_paths(manifest) if p not in present or present[p] != sizes.get(p, present[p])}


def shown_files(files: dict[str, str], most: int = 5) -> str:
    """`missing_files`' files, each with what is wrong with it, the first `most` of them."""
    shown = [f"{p} ({note})" if note else p for p, note in list(files.items())[:most]]
    return ", ".join(shown) + (", ..." if len(files) > most else "")


@contextlib.contextmanager
def reading_output(out: str):
    """Reads of an output's files: one that is not Parquet any more (damaged in place, the same size)
    is the output's fault, exit 2, not an internal error."""
    try:
        yield
    except BrokenPipeError:
        raise  # standard output closed early (`inspect OUT | head`): exit 141, as the CLI says
    except (OSError, pa.ArrowException) as exc:
        said = " ".join(str(exc).split())
        raise OutputError(f"{out}: a file of the run cannot be read ({said}); the output is damaged: "
                          "run the mix again, or restore the folder from a copy") from None


def cmd_inspect(args: argparse.Namespace) -> int:
    manifest = read_manifest(args.out)
    folder, finished = run_folder(args.out)
    if not finished:
        log.warning("%s has no %s; the run did not finish", args.out, SUCCESS)
    missing = missing_files(folder, manifest)
    if missing:
        log.warning("%d file(s) listed in the manifest are missing or changed: %s", len(missing), shown_files(missing))
    if args.json:
        print(json.dumps(manifest, indent=2))
        _refuse_unfinished(args.out, finished, missing)
        return 0
    print(summary(manifest))
    print()
    print(sources_table(manifest))
    print()
    print(filters_table(manifest))
    print()
    print(collapse_table(manifest))
    print()
    print(scores_table(manifest))
    if manifest["outputs"].get("ledger"):
        print(f"\nwhere any input row went, and why: ledger/ ({sum(f['rows'] for f in manifest['outputs']['ledger']):,} "
              f"rows), or `hybridmix explain {args.out} DOC_ID`")
    if folder != args.out:
        print(f"\nrun folder (named by {args.out}/{SUCCESS}): {folder}")
    data = [d for d in manifest["outputs"].get("data", []) if d["path"] not in missing]
    if data:
        first = (f"{folder.rstrip('/')}/{data[0]['path']}" if is_remote(folder)
                 else os.path.join(folder, data[0]["path"]))
        with reading_output(args.out):  # only the reads: a closed stdout is not a damaged output
            pf = open_parquet(first)
            schema = pf.schema_arrow
            rows = (pf.read_row_group(0, use_threads=parquet_threads(first)).slice(0, args.rows).to_pylist()
                    if args.rows > 0 and pf.num_row_groups else [])
        print(f"\nschema of data/ ({len(data)} file(s), {sum(d['rows'] for d in data):,} rows):")
        print(schema_text(schema))
        if args.rows > 0:
            print(f"\nfirst {len(rows)} row(s) of {data[0]['path']}:")
            print(sample_rows(rows, ["id", "origin", "source", "tokens", "split", "text"]))
    _refuse_unfinished(args.out, finished, missing)
    return 0


def _refuse_unfinished(out: str, finished: bool, missing: dict[str, str]) -> None:
    """After what an unfinished or incomplete output holds has been shown, the error that ends it (exit
    2): a job that checks outputs with `inspect` sees why on stderr's last line, not only warnings."""
    if not finished:
        raise OutputError(f"{out} has no {SUCCESS}: the run did not finish; the above is what it left")
    if missing:
        raise OutputError(f"{out}: {len(missing)} file(s) listed in the manifest are missing or changed since the "
                          "run wrote them; the above is what is left of the run")


def _write_text(path: str, text: str) -> None:
    data = text.encode("utf-8")

    def write(target) -> None:
        if isinstance(target, str):
            with open(target, "wb") as fh:
                fh.write(data)
        else:
            target.write(data)

    write_atomically(path, write)


def cmd_report(args: argparse.Namespace) -> int:
    """Build report.html again from a finished output: into the output (default) or to --output."""
    manifest = read_manifest(args.out)
    folder, finished = run_folder(args.out)
    if not finished:
        raise OutputError(f"{args.out} has no {SUCCESS}: the run did not finish, so there is nothing to report")
    missing = missing_files(folder, manifest)
    if missing:
        raise OutputError(f"{args.out}: {len(missing)} file(s) listed in the manifest are missing or changed since "
                          f"the run wrote them ({shown_files(missing)}); cannot report on it")
    out = resolve_output(args.out)
    own = f"{folder.rstrip('/')}/{REPORT}" if is_remote(folder) else os.path.join(out, REPORT)
    target = None
    if args.output:
        target = args.output if is_remote(args.output) else os.path.realpath(os.path.abspath(args.output))
        if target == own:
            target = None  # the output's own page: written as without --output, under the output's lock
        else:
            check_beside_output(args.output, out, "--output", "the page", f"{out}.html")
    with reading_output(args.out):
        page = build_report(folder, manifest)
    if target is not None:
        _write_text(target, page)
    elif is_remote(folder):
        target = f"{folder.rstrip('/')}/{REPORT}"
        _write_text(target, page)
    else:
        target = os.path.join(folder, REPORT)
        # The output's own lock: a run replacing this output meanwhile must not get a report of the old one.
        with output_lock(out, manifest["run_id"]):
            if not os.path.exists(os.path.join(folder, SUCCESS)):
                raise OutputError(f"{args.out} changed while the report was built; run `hybridmix report` again")
            _write_text(target, page)
    print(f"wrote {target} ({len(page.encode('utf-8')):,} bytes)")
    return 0
