"""`hybridmix explain OUT DOC_ID`: where one document went and why, from the run's ledger.

The ledger places a document's rows in the shard its doc id hashes to, so one file is read, not the
whole ledger. A duplicate is followed to the document kept in its place.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

import numpy as np
import pyarrow.compute as pc

from hybridmix.pipelines.inspection import missing_files, read_manifest, reading_output, run_folder, shown_files
from hybridmix.pipelines.report import safe_text
from hybridmix.schemas.errors import OutputError
from hybridmix.schemas.reasons import Fate
from hybridmix.transforms.ledger import LEDGER, PUBLISHED_EARLIER, ledger_shard
from hybridmix.transforms.manifest import listed_paths
from hybridmix.transforms.storage import is_remote, open_parquet, parquet_threads

_SHARD_NAME = re.compile(r"^ledger/part-(\d{5})-of-(\d{5})\.parquet$")
_KEPT = re.compile(r"duplicate of (\S+) \(")


def add_parser(sub, parents: list[argparse.ArgumentParser], **how) -> None:
    """`how`: the CLI's epilog and formatter, as its other commands have them."""
    explain = sub.add_parser(
        "explain",
        parents=parents,
        **how,
        help="say where one document of a finished run went, and why",
        description=(
            "Look DOC_ID up in the ledger of the finished run in OUT and print its fate: selected (split and "
            "copies), not selected (its selection priority against its source's cut-off), rejected (the "
            "reason), filtered (every filter it failed, with value and threshold) or duplicate (of which "
            "document, how similar, which cluster, and what became of the document kept). Exit 2 when "
            "the document is not in the run or the run has no ledger."),
    )
    explain.add_argument("out", help="output folder of a finished run")
    explain.add_argument("doc_id", help="the document's doc_id: its corpus's id_column value, or SOURCE/<content hash> for "
                                            "a corpus without one (as data/ and ledger/ show it)")
    explain.add_argument("--json", action="store_true", help="print the ledger rows as JSON")


def _join(folder: str, rel: str) -> str:
    return f"{folder.rstrip('/')}/{rel}" if is_remote(folder) else f"{folder}/{rel}"


def ledger_rows(folder: str, manifest: dict[str, Any], doc_id: str) -> list[dict[str, Any]]:
    """The ledger rows of `doc_id` (several when its id was repeated in the inputs)."""
    files = [f["path"] for f in manifest["outputs"].get(LEDGER, [])]
    if not files:
        raise OutputError(f"run {manifest['run_id']} has no ledger (it ran with output.ledger: false); "
                          "look the document up in data/, rejects/, filtered/ and duplicates/")
    counts = {int(m.group(2)) for m in map(_SHARD_NAME.match, files) if m}
    if len(counts) != 1 or len(files) != counts.pop():
        raise OutputError(f"ledger/ of run {manifest['run_id']} is not a complete set of shards: {files[:3]}")
    path = _join(folder, files[ledger_shard(doc_id, len(files))])
    pf = open_parquet(path)
    threads = parquet_threads(path)
    # The doc_id column first, then only the row groups holding the id: a shard can hold
    # millions of rows, and their detail text is most of its bytes.
    ids = pf.read(columns=["doc_id"], use_threads=threads).column("doc_id")
    rows = np.flatnonzero(pc.equal(ids, doc_id).to_numpy(zero_copy_only=False))
    if not len(rows):
        return []
    starts = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
    groups = np.unique(np.searchsorted(starts, rows, side="right") - 1)
    table = pf.read_row_groups(groups.tolist(), use_threads=threads)
    return table.filter(pc.equal(table.column("doc_id"), doc_id)).to_pylist()


def explain(out: str, doc_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(manifest, ledger rows of the document, each with the kept document's rows for a duplicate)."""
    manifest = read_manifest(out)
    folder, _ = run_folder(out)
    ledger = {p for p in listed_paths(manifest) if p.startswith(f"{LEDGER}/")}
    damaged = {p: note for p, note in missing_files(folder, manifest).items() if p in ledger}
    if damaged:
        raise OutputError(f"{out}: {len(damaged)} file(s) of ledger/ are missing or changed since the run wrote them "
                          f"({shown_files(damaged)}); run the mix again, or restore the folder from a copy")
    with reading_output(out):
        rows = ledger_rows(folder, manifest, doc_id)
        for row in rows:
            kept = _KEPT.search(row["detail"]) if row["fate"] == Fate.DUPLICATE else None
            # A duplicate of a document an earlier run published: that document is in that run's ledger,
            # not this one's (where the same id may be this very row, delivered again).
            if kept and PUBLISHED_EARLIER not in row["detail"]:
                row["kept"] = ledger_rows(folder, manifest, kept.group(1))
    return manifest, rows


def _where(row: dict[str, Any]) -> str:
    at = "unknown row" if row["source_row"] is None else f"row {row['source_row']}"
    return f"{row['source']}, {safe_text(row['source_file'], 200)} {at}"


def describe(doc_id: str, rows: list[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        lines.append(f"{safe_text(doc_id, 200)} ({_where(row)}): {row['fate'].replace('_', ' ')}")
        lines.append(f"  {safe_text(row['detail'], 2000)}")
        for kept in row.get("kept", []):
            lines.append(f"  kept document {safe_text(kept['doc_id'], 200)} ({_where(kept)}): "
                         f"{kept['fate'].replace('_', ' ')}; {safe_text(kept['detail'], 2000)}")
    return "\n".join(lines)


def cmd_explain(args: argparse.Namespace) -> int:
    manifest, rows = explain(args.out, args.doc_id)
    if args.json:
        print(json.dumps({"run_id": manifest["run_id"], "doc_id": args.doc_id, "entries": rows}, indent=2))
    elif rows:
        print(describe(args.doc_id, rows))
    if not rows:
        # data/'s upsampled copies carry `<doc_id>#r<k>`; the ledger knows the document by its own id.
        from hybridmix.transforms.ingest import REPEAT_ID_SUFFIX  # only here: ingest imports Beam and numba

        original = re.sub(REPEAT_ID_SUFFIX, "", args.doc_id)
        hint = f"; {safe_text(args.doc_id, 200)!s} is an upsampled copy: explain {safe_text(original, 200)!s}" \
            if original != args.doc_id else ""
        print(f"hybridmix: error: no document with doc_id {safe_text(args.doc_id, 200)!s} in run {manifest['run_id']} "
              f"({args.out}){hint}", file=sys.stderr)
        return 2
    return 0
