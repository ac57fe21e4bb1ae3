"""Earlier hybridmix outputs as inputs of a new run (README, "Generational mixes").

A `format: hybridmix` corpus reads the data/ files of earlier outputs, and the carry-forward guard
compares the new mix with one. Either way the output must be published (`_SUCCESS` and
`manifest.json`), and its manifest says which data files it holds, how large they are and what the
mix held per origin. The corpus takes the rows of its own origin and leaves out upsampled copies
(`repeat > 0`): a copy is the same document again, and a new run upsamples by its own recipe.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from hybridmix.schemas.errors import DataError, HybridmixError
from hybridmix.transforms.objectstore import SUCCESS, read_bytes, read_commit
from hybridmix.transforms.storage import file_identity, is_remote, open_parquet, parquet_threads

MANIFEST = "manifest.json"
# The key of `meta` that lists the runs a document was carried from, oldest first.
CARRIED_FROM = "carried_from"
# Columns read besides the mapped ones: which rows a corpus takes.
FILTER_COLUMNS = ("origin", "repeat")
# The earlier rows' `meta`, carried whole.
META_COLUMN = "meta"


@dataclass(frozen=True)
class EarlierOutput:
    """A published hybridmix output, as its manifest describes it."""

    display: str  # as messages and the new manifest name it
    folder: str  # where its files are: the output itself, or (object store) the run folder `_SUCCESS` names
    run_id: str
    data_files: tuple[tuple[str, int, int], ...]  # (path under `folder`, rows, bytes) of every data/ file
    manifest: dict = field(default_factory=dict, compare=False, repr=False)

    def file_path(self, relative: str) -> str:
        return f"{self.folder.rstrip('/')}/{relative}" if is_remote(self.folder) else os.path.join(self.folder,
                                                                                                   relative)

    def published_file(self, relative: str, size: int, where: str | None = None,
                       missing: str = "the output is incomplete: run the earlier mix again or read another output",
                       ) -> tuple[str, int, float]:
        """(path, size, modified) of a file its manifest lists: missing, or not the size the manifest
        gives, fails (`where` names the output in the message; `missing` says what to do then)."""
        where = where or self.display
        path = self.file_path(relative)
        identity = file_identity(path)
        if identity is None:
            raise DataError(f"{where}: {relative} is listed in its manifest but missing; {missing}")
        if identity[0] != size:
            raise DataError(f"{where}: {relative} is {identity[0]:,} bytes, its manifest says {size:,}: "
                            "the file changed after the run published it")
        return path, identity[0], identity[1]

    def files(self) -> list[tuple[str, int, float]]:
        """(path, size, modified) of each data file (`published_file`)."""
        return [self.published_file(relative, size) for relative, _, size in self.data_files]

    def human_data(self) -> tuple[int, int]:
        """(documents, tokens) of its human documents, one copy each, from three small columns of data/.

        The manifest counts copies in its tokens; what a later mix must keep is the documents.
        """
        documents = tokens = 0
        for path, _, _ in self.files():
            try:
                table = open_parquet(path).read(columns=[*FILTER_COLUMNS, "tokens"], use_threads=parquet_threads(path))
            except (OSError, pa.ArrowException) as exc:
                raise DataError(f"{self.display}: cannot read {path}: {exc}") from None
            human = pc.and_(pc.equal(table.column("origin"), "human"), pc.equal(table.column("repeat"), 0))
            documents += int(pc.sum(human.cast(pa.int64())).as_py() or 0)
            tokens += int(pc.sum(table.column("tokens").filter(human)).as_py() or 0)
        return documents, tokens


@dataclass(frozen=True)
class Carried:
    """What one corpus takes of one data file of an earlier output (planned from its small columns)."""

    output: str  # the earlier output, as the new manifest names it
    run_id: str
    row_group_taken: tuple[int, ...]  # rows of each row group of the corpus's origin, with repeat 0
    copies: int  # upsampled copies (repeat > 0) of either origin: not documents, not read
    other_origin: int  # documents of the other origin: left to a corpus of that origin

    @property
    def taken(self) -> int:
        return sum(self.row_group_taken)


def _display(path: str, base_dir: str) -> str:
    # Relative to the config's folder even when outside it (`../gen1`): as the config names it.
    return path if is_remote(path) else os.path.relpath(path, base_dir)


def _not_published(key: str, display: str, why: str) -> DataError:
    return DataError(f"{key}: {display} is not a published hybridmix output ({why})")


def _read_manifest(path: str) -> dict:
    if is_remote(path):
        return json.loads(read_bytes(path))
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _figures(manifest: dict, key: str, display: str) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """(run id, data files) of a manifest; anything else is not a hybridmix manifest."""
    try:
        run_id = manifest["run_id"]
        data = tuple((f["path"], int(f["rows"]), int(f["size_bytes"])) for f in manifest["outputs"]["data"])
        if not isinstance(run_id, str) or not all(isinstance(p, str) and p.startswith("data/") for p, _, _ in data):
            raise TypeError("run_id or outputs.data malformed")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _not_published(key, display, f"its {MANIFEST} is not a hybridmix manifest: {exc}") from None
    return run_id, data


def open_output(path: str, base_dir: str, key: str) -> EarlierOutput:
    """The published output at `path` (resolved); anything else fails, naming `key` and the folder."""
    display = _display(path, base_dir)
    if is_remote(path):
        try:
            commit = read_commit(path)
        except HybridmixError as exc:
            raise _not_published(key, display, exc.message) from None
        if commit is None:
            raise _not_published(key, display, f"no {SUCCESS}")
        folder = commit.folder(path)
        manifest_path = f"{folder}/{MANIFEST}"
    else:
        if not os.path.isdir(path):
            raise _not_published(key, display, "no such folder")
        if not os.path.isfile(os.path.join(path, SUCCESS)):
            raise _not_published(key, display, f"no {SUCCESS}: its run did not finish, or it is another kind of folder")
        folder, manifest_path = path, os.path.join(path, MANIFEST)
    try:
        manifest = _read_manifest(manifest_path)
    except FileNotFoundError:
        raise _not_published(key, display, f"no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise _not_published(key, display, f"cannot read its {MANIFEST}: {exc}") from None
    run_id, data = _figures(manifest if isinstance(manifest, dict) else {}, key, display)
    return EarlierOutput(display, folder, run_id, data, manifest)


def resolve(path: str, base_dir: str) -> str:
    """A configured path: remote or absolute as given, else relative to the config's folder."""
    if is_remote(path) or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base_dir, path))


def find_outputs(pattern: str, base_dir: str, key: str) -> list[EarlierOutput]:
    """Every published output a configured path names: a folder, or a glob of folders.

    A local glob matches folders, and each must be a published output (so a run that did not
    finish is an error, not silently left out). On an object store there are no folders to match:
    a glob finds the outputs that hold a `_SUCCESS`.
    """
    resolved = resolve(pattern, base_dir)
    if not any(c in resolved for c in "*?["):
        return [open_output(resolved.rstrip("/"), base_dir, key)]
    if is_remote(resolved):
        try:
            found = FileSystems.match([f"{resolved.rstrip('/')}/{SUCCESS}"])[0].metadata_list
        except Exception as exc:  # noqa: BLE001 - file systems raise their own types
            raise DataError(f"{key}: cannot list {pattern!r}: {exc}") from None
        folders = sorted(m.path[:-len(SUCCESS) - 1] for m in found)
    else:
        folders = sorted(p for p in glob.glob(resolved) if os.path.isdir(p))
    if not folders:
        raise DataError(f"{key}: no hybridmix output matches {pattern!r} (resolved to {resolved})")
    return [open_output(folder, base_dir, key) for folder in folders]


def carried_counts(pf: pq.ParquetFile, path: str, origin: str) -> tuple[tuple[int, ...], int, int]:
    """(rows taken per row group, copies, documents of the other origin) of a data file for a corpus of
    `origin`: read from its two small columns when the run is planned, so the plan knows every row
    the run will read."""
    taken, copies, other = [], 0, 0
    for rg in range(pf.num_row_groups):
        table = pf.read_row_group(rg, columns=list(FILTER_COLUMNS), use_threads=parquet_threads(path))
        first = pc.fill_null(pc.equal(table.column("repeat"), 0), False).to_numpy(zero_copy_only=False)
        mine = pc.fill_null(pc.equal(table.column("origin"), origin), False).to_numpy(zero_copy_only=False)
        taken.append(int(np.sum(first & mine)))
        copies += int(np.sum(~first))
        other += int(np.sum(first & ~mine))
    return tuple(taken), copies, other


def carried_positions(batch: pa.RecordBatch, origin: str) -> np.ndarray:
    """Rows of a data/ batch a corpus of `origin` takes: its documents, not their upsampled copies."""
    keep = pc.and_(pc.equal(batch.column("origin"), origin), pc.equal(batch.column("repeat"), 0))
    return np.nonzero(pc.fill_null(keep, False).to_numpy(zero_copy_only=False))[0]


def carried_meta(meta: pa.Array, run_id: str) -> pa.Array:
    """Each row's earlier `meta` with the earlier run appended to its `carried_from`: a document read
    through several generations names every run it came through, oldest first."""
    fresh = json.dumps({CARRIED_FROM: [run_id]}, ensure_ascii=False)
    out = []
    for value in meta.to_pylist():
        if value is None:
            out.append(fresh)
            continue
        try:
            kept = json.loads(value)
        except ValueError:
            kept = None
        if not isinstance(kept, dict):
            kept = {META_COLUMN: value}  # not an object (not written by hybridmix): kept as it was
        runs = kept.get(CARRIED_FROM)
        kept[CARRIED_FROM] = (runs if isinstance(runs, list) else [] if runs is None else [runs]) + [run_id]
        out.append(json.dumps(kept, sort_keys=True, ensure_ascii=False, default=str))
    return pa.array(out, pa.string())
