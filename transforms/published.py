"""A published hybridmix output, as later runs and the inspection commands read it: the folder that
holds the run's files, and its manifest."""

from __future__ import annotations

import json
import os

from hybridmix.schemas.errors import OutputError
from hybridmix.transforms.objectstore import read_bytes, read_commit
from hybridmix.transforms.publish import MANIFEST, SUCCESS
from hybridmix.transforms.storage import is_remote

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
