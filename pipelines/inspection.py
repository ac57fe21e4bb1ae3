"""`hybridmix inspect`: a finished run's summary, schema and sample rows, from its manifest."""

from __future__ import annotations

import argparse
import json
import os
import sys

import pyarrow.parquet as pq

from hybridmix.pipelines.report import collapse_table, sample_rows, schema_text, scores_table, summary
from hybridmix.schemas.errors import OutputError
from hybridmix.transforms.publish import MANIFEST, SUCCESS

# What `inspect` and the run summary read from a manifest, with the type each must have.
_REQUIRED = {"run_id": str, "config": dict, "counts": dict, "totals": dict, "mixture": dict, "outputs": dict,
             "inputs": list}


def read_manifest(out_dir: str) -> dict:
    path = os.path.join(out_dir, MANIFEST)
    try:
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


def missing_files(out_dir: str, manifest: dict) -> list[str]:
    """Files the manifest lists that are not in the output folder."""
    return [f["path"] for files in manifest["outputs"].values() for f in files
            if not os.path.isfile(os.path.join(out_dir, f["path"]))]


def cmd_inspect(args: argparse.Namespace) -> int:
    manifest = read_manifest(args.out)
    finished = os.path.exists(os.path.join(args.out, SUCCESS))
    if not finished:
        print(f"warning: {args.out} has no {SUCCESS}; the run did not finish", file=sys.stderr)
    missing = missing_files(args.out, manifest)
    if missing:
        print(f"warning: {len(missing)} file(s) listed in the manifest are missing: {', '.join(missing[:5])}"
              + (", ..." if len(missing) > 5 else ""), file=sys.stderr)
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0 if finished and not missing else 2
    print(summary(manifest))
    print()
    print(collapse_table(manifest))
    print()
    print(scores_table(manifest))
    data = [d for d in manifest["outputs"].get("data", []) if d["path"] not in missing]
    if data:
        pf = pq.ParquetFile(os.path.join(args.out, data[0]["path"]))
        print(f"\nschema of data/ ({len(data)} file(s), {sum(d['rows'] for d in data):,} rows):")
        print(schema_text(pf.schema_arrow))
        if args.rows > 0:
            rows = pf.read_row_group(0).slice(0, args.rows).to_pylist() if pf.num_row_groups else []
            print(f"\nfirst {len(rows)} row(s) of {data[0]['path']}:")
            print(sample_rows(rows, ["id", "origin", "source", "tokens", "split", "text"]))
    return 0 if finished and not missing else 2
