"""Input planning: resolve every corpus's globs, read the files' footers, and name rows.

Files are listed and their footers read when the pipeline is built (`plan_inputs`), so a
missing or unreadable file stops the run before any work starts, and the work is split by row
group. JSON Lines files are scanned once instead (`transforms.jsonl`), and their chunks of lines
stand in for row groups. Every stage that reads rows gets a `ReadSpec`: the plan, the ingest
config and the run id.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import warnings
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems

from hybridmix.schemas.config import CorpusConfig, IngestConfig
from hybridmix.schemas.errors import ConfigError, DataError, SchemaError
from hybridmix.schemas.reasons import RejectReason
from hybridmix.transforms import jsonl, parallel
from hybridmix.transforms.batches import byte_bounds, row_bytes, uid_file, uid_row
from hybridmix.transforms.earlier import (
    FILTER_COLUMNS,
    META_COLUMN,
    Carried,
    EarlierOutput,
    carried_counts,
    find_outputs,
)
from hybridmix.transforms.objectstore import check_reachable
from hybridmix.transforms.storage import (
    file_identity,
    file_size,
    is_remote,
    open_parquet,
    open_raw,
    parquet_threads,
    read_range,
    sha256_file,
    write_buffers,
)

log = logging.getLogger(__name__)

_FINGERPRINT_TAIL_BYTES = 1 << 16
# Objects whose footers are read at once when planning: each waits on the network, not a core.
_REMOTE_PLANNERS = 16


@dataclass(frozen=True)
class InputFile:
    """One input file, as planned when the pipeline is built."""

    index: int
    corpus: int
    path: str  # what FileSystems opens
    display: str  # how records and the manifest name it (relative to the config's folder)
    size_bytes: int
    modified: float  # modification time (seconds) when planned: with the size, the file's identity
    rows: int
    row_group_rows: tuple[int, ...]
    fingerprint: str
    columns: tuple[str, ...]
    format: str = "parquet"  # parquet | jsonl
    # JSON Lines only: gzip, zstd or None; the byte ranges of the chunks counted in `row_group_rows`.
    compression: str | None = None
    chunks: tuple[jsonl.Chunk, ...] = ()
    # The SHA-256 of the file's bytes, where planning read them all: a local file, a JSON Lines file.
    sha256: str | None = None
    data_bytes: int | None = None  # JSON Lines only: the decompressed size
    # A data/ file of an earlier hybridmix output, read by a `format: hybridmix` corpus: the rows it takes.
    carried: Carried | None = None
    # Parquet only: each row group's uncompressed size (its footer's total_byte_size), which
    # decides how many slices it is read in (`units`).
    row_group_bytes: tuple[int, ...] = ()
    # Parquet only: the text column's uncompressed bytes in all row groups, and whether no chunk of
    # it is dictionary-encoded (the size is then the texts' bytes plus 4 a row); from the footer,
    # for the mixture's feasibility check before the run (`pipelines.plan`).
    text_bytes: int = 0
    text_plain: bool = True

    @property
    def kind(self) -> str:
        """The format as the manifest names it: parquet, jsonl, jsonl.gz, jsonl.zst or hybridmix."""
        if self.carried is not None:
            return "hybridmix"
        return _kind(self.compression) if self.format == "jsonl" else self.format

    @property
    def planned_rows(self) -> int:
        """Rows the run reads of this file: all, or those its hybridmix corpus takes."""
        return self.carried.taken if self.carried is not None else self.rows

    def reads_row_group(self, row_group: int) -> bool:
        return self.row_group_rows[row_group] > 0 and (
            self.carried is None or self.carried.row_group_taken[row_group] > 0)

    def part(self, row_group: int) -> str:
        """A work item, named for messages."""
        return f"chunk {row_group}" if self.format == "jsonl" else f"row group {row_group}"

    def check_unchanged(self) -> None:
        """Fail when the file is not the one that was planned: rows read twice must be the same rows."""
        now = file_identity(self.path)
        if now != (self.size_bytes, self.modified):
            raise DataError(
                f"{self.display} changed during the run (size or modification time differs from when the run "
                "started); nothing was published: rerun once the input files are stable")

    def units(self, batch_rows: int, slice_bytes: int) -> tuple[tuple[int, int, int], ...]:
        """(row group, first row in the file, rows) of every read unit, in file order.

        A work item is a unit. A Parquet row group larger than `slice_bytes` is read in up to
        MAX_SLICES slices of whole batches, so one big row group (pyarrow writes up to a million
        rows in one) is spread over workers instead of being read by one. Parquet cannot start
        reading inside a row group, so a slice decodes and skips the batches before it; the cap
        keeps that extra decoding to at most 1.5x a row group's, a few percent of processing it.
        """
        return _units(self.row_group_rows, self.row_group_bytes, batch_rows, slice_bytes)

    def unit_bytes(self, row_group: int, rows: int) -> int:
        """About how many bytes of data `rows` rows of a row group (a chunk of JSON Lines) hold."""
        if self.format == "jsonl":
            chunk = self.chunks[row_group] if row_group < len(self.chunks) else None
            if chunk is None or chunk.end is None:
                return self.data_bytes or self.size_bytes
            return chunk.end - chunk.start
        if row_group >= len(self.row_group_bytes):
            return 0
        return self.row_group_bytes[row_group] * rows // max(self.row_group_rows[row_group], 1)

    @cached_property
    def row_group_starts(self) -> tuple[int, ...]:
        """First row (in the file) of every row group."""
        starts, first = [], 0
        for rows in self.row_group_rows:
            starts.append(first)
            first += rows
        return tuple(starts)


MAX_SLICES = 4
# The most data (uncompressed, by the footers) held as one piece: small files joined into one work
# item, a batch read (8,192 rows of long texts can be far more), short batches joined after reading.
BATCH_BYTES = 64 << 20
# A read_slice_bytes no row group reaches: every row group is one work item (`pipelines.build.read_as`).
UNSLICED = 1 << 62


@lru_cache(maxsize=256)
def _units(rows: tuple[int, ...], sizes: tuple[int, ...], batch_rows: int, slice_bytes: int
           ) -> tuple[tuple[int, int, int], ...]:
    units, first = [], 0
    for rg, n in enumerate(rows):
        size = sizes[rg] if rg < len(sizes) else 0
        batches = -(-n // batch_rows)
        slices = max(1, min(MAX_SLICES, batches, -(-size // slice_bytes)))
        # Whole batches, spread evenly: the batches are the ones an unsliced read makes.
        cuts = [min(n, k * batches // slices * batch_rows) for k in range(slices + 1)]
        units.extend((rg, first + lo, hi - lo) for lo, hi in zip(cuts, cuts[1:]))
        first += n
    return tuple(units)


def _kind(compression: str | None) -> str:
    return "jsonl" + {"gzip": ".gz", "zstd": ".zst"}.get(compression or "", "")


@dataclass(frozen=True)
class BadFile:
    """An input file that cannot be used, kept (quarantine) so its rows are accounted for."""

    corpus: int
    path: str
    display: str
    size_bytes: int | None
    rows: int | None  # known when the footer could be read
    reason: str
    detail: str
    kind: str = "parquet"

    def error(self) -> DataError:
        cls = SchemaError if self.reason in (RejectReason.MISSING_COLUMN, RejectReason.AMBIGUOUS_COLUMN) else DataError
        return cls(self.detail)


@dataclass(frozen=True)
class InputPlan:
    base_dir: str
    files: tuple[InputFile, ...] = field(default_factory=tuple)
    bad_files: tuple[BadFile, ...] = field(default_factory=tuple)
    # (path, SHA-256) of this plan's bytes in the run's staging folder (`store`); None: not stored.
    stored: tuple[str, str] | None = field(default=None, compare=False, repr=False)

    def __reduce__(self):
        # Beam pickles every DoFn that holds the plan with dill, a pure-Python pickler, compresses
        # that with bz2, and in its in-process runner unpickles, pickles and unpickles it again for
        # every bundle of every stage that uses it: with 20,000 input files each round took about
        # 0.6 s, and dill alone took 0.17-0.26 s per copy of 2,400 files. A stored plan is pickled
        # as its path and digest, read once per process; one that is not stored, by the standard
        # pickler, which these plain dataclasses need no more than.
        if self.stored is not None:
            return _stored_plan, self.stored
        return _unpickle_plan, (self._state(),)

    def _state(self) -> bytes:
        return zlib.compress(pickle.dumps((self.base_dir, self.files, self.bad_files), protocol=5), 1)

    def store(self, path: str) -> InputPlan:
        """This plan, written to `path` (a scratch file of the run's staging folder, where every
        worker reads spill files), as a plan that pickles as a reference to that file."""
        state = self._state()
        write_buffers(path, [state])
        return _remember(replace(self, stored=(path, hashlib.sha256(state).hexdigest())))

    def work_items(self, batch_rows: int, slice_bytes: int) -> list[tuple[int, int, int, int]]:
        """(file index, row group, first row in file, rows) for every read unit (`InputFile.units`)
        of a non-empty row group."""
        return [(f.index, rg, first, rows)
                for f in self.files
                for rg, first, rows in f.units(batch_rows, slice_bytes) if f.reads_row_group(rg)]

    def read_groups(self, batch_rows: int, slice_bytes: int) -> list[tuple[tuple[int, int, int, int], ...]]:
        """The work items of a run: each read unit of `work_items` alone, except that units under half
        of `batch_rows` (files of a few rows) of one corpus are joined, in file order, until they
        reach `batch_rows` rows or `slice_bytes` (at most BATCH_BYTES) of data.

        A corpus of thousands of small files made one work item per file, and its reads, its
        validation and every step after paid their fixed cost per file: about 7 ms each
        (2,400 files of 2-3 rows). A joined item is read file by file and validated as one batch.
        """
        groups: list[tuple[tuple[int, int, int, int], ...]] = []
        open_: dict[int, tuple[list, int, int]] = {}  # corpus -> (units, rows, bytes) being joined
        for unit in self.work_items(batch_rows, slice_bytes):
            index, rg, _, rows = unit
            f = self.files[index]
            if f.carried is not None or 2 * rows >= batch_rows:
                groups.append((unit,))
                continue
            units, n, size = open_.get(f.corpus, ([], 0, 0))
            units.append(unit)
            n += rows
            size += f.unit_bytes(rg, rows)
            if n >= batch_rows or size >= min(slice_bytes, BATCH_BYTES):
                groups.append(tuple(units))
                open_.pop(f.corpus, None)
            else:
                open_[f.corpus] = (units, n, size)
        groups.extend(tuple(units) for units, _, _ in open_.values())
        return groups

    @property
    def planned_rows(self) -> int:
        """Rows known before the run: every planned file's (of a hybridmix output's, those taken), and
        what a quarantined file's footer said."""
        return sum(f.planned_rows for f in self.files) + sum(b.rows or 0 for b in self.bad_files)

    @property
    def ledger_rows(self) -> int:
        """Rows ledger/ will hold: one per planned row, and one per quarantined file of unknown size."""
        return self.planned_rows + sum(1 for b in self.bad_files if b.rows is None)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for f in self.files:
            h.update(f"{f.display}\x00{f.size_bytes}\x00{f.fingerprint}\n".encode())
        for b in self.bad_files:
            h.update(f"bad\x00{b.display}\x00{b.size_bytes}\x00{b.reason}\n".encode())
        return h.hexdigest()


def _unpickle_plan(state: bytes) -> InputPlan:
    return InputPlan(*pickle.loads(zlib.decompress(state)))


# The stored plans this process has read or written, by digest: each stage unpickles its DoFns. A
# worker process may serve many runs: the oldest are forgotten (and read again if asked for).
_STORED: dict[str, InputPlan] = {}
_STORED_MOST = 8


def _remember(plan: InputPlan) -> InputPlan:
    _STORED[plan.stored[1]] = plan
    while len(_STORED) > _STORED_MOST:
        del _STORED[next(iter(_STORED))]
    return plan


def _stored_plan(path: str, digest: str) -> InputPlan:
    plan = _STORED.get(digest)
    if plan is None:
        state = bytes(read_range(path, 0, file_size(path)))
        if hashlib.sha256(state).hexdigest() != digest:
            raise DataError(f"{path}: the run's input plan is not the one the run was built with; "
                            "nothing was published: run again")
        plan = _remember(replace(_unpickle_plan(state), stored=(path, digest)))
    return plan


@dataclass(frozen=True)
class Lineage:
    """Turns internal row keys (uids) into the lineage columns of output records."""

    file_names: tuple[str, ...]
    run_id: str

    def source_files(self, uids: np.ndarray) -> pa.Array:
        # A take from the names: a Python string per row cost more than the rest of a ledger batch.
        return pa.array(self.file_names, pa.string()).take(pa.array(uid_file(uids), pa.int64()))

    def source_rows(self, uids: np.ndarray) -> pa.Array:
        return pa.array(uid_row(uids), pa.int64())

    def run_ids(self, n: int) -> pa.Array:
        return pa.array([self.run_id] * n, pa.string())

    def where(self, uid: int) -> str:
        """`<file> row <n>` for messages."""
        return f"{self.file_names[int(uid_file(np.array([uid]))[0])]} row {int(uid_row(np.array([uid]))[0])}"


@dataclass(frozen=True)
class ReadSpec:
    """What every stage that reads input rows needs: the ingest config, the planned files, the run."""

    config: IngestConfig
    plan: InputPlan
    run_id: str

    def corpus(self, file: InputFile) -> CorpusConfig:
        return self.config.corpora[file.corpus]

    def read_groups(self) -> list[tuple[tuple[int, int, int, int], ...]]:
        """The run's work items (`InputPlan.read_groups` at this config's batch rows and slice bytes).
        Made where needed, not kept: a spec is pickled with every step that reads input rows."""
        return self.plan.read_groups(self.config.read_batch_rows, self.config.read_slice_bytes)

    @property
    def lineage(self) -> Lineage:
        return Lineage(tuple(f.display for f in self.plan.files), self.run_id)


def _resolve(pattern: str, base_dir: str) -> str:
    if is_remote(pattern) or os.path.isabs(pattern):
        return pattern
    return os.path.normpath(os.path.join(base_dir, pattern))


def has_wildcards(pattern: str) -> bool:
    return bool(re.search(r"[*?\[]", pattern))


def glob_base(pattern: str) -> str:
    """The folder a glob searches: its path up to the first wildcard."""
    head = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return head if head.endswith(os.sep) else os.path.dirname(head)


def _unstattable_local(pattern: str) -> list[str]:
    if is_remote(pattern):
        return []
    base = glob_base(pattern)
    if not os.path.isdir(base):
        return []
    regex = re.compile(FileSystem.translate_pattern(pattern))
    missing = []
    for dirpath, _, names in os.walk(base):
        for name in names:
            path = os.path.join(dirpath, name)
            if regex.match(path) and not os.path.exists(path):
                missing.append(path)
    return sorted(missing)


def _display(path: str, base_dir: str) -> str:
    if is_remote(path):
        return path
    rel = os.path.relpath(path, base_dir)
    return path if rel.startswith("..") else rel


def one_line(exc: BaseException) -> str:
    """An error's message on one line: Arrow's add lines of context ("Deserializing page header
    failed."), which stood alone on stderr and split a reject's detail."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _remote_fingerprint(path: str, size: int, modified: float) -> str:
    """An object's last 64 KiB (its footer) and its modification time, hashed.

    An object store rewrites an object whole and dates it anew, so the time tells a rewrite that
    keeps the size and the footer (rows of equal length swapped, uncompressed). Reading every object
    whole before the run would cost what reading the corpus costs; the pipeline checksums them.
    """
    with open_raw(path) as fh:
        start = max(0, size - _FINGERPRINT_TAIL_BYTES)
        fh.seek(start)
        tail = fh.read()
    return hashlib.sha256(tail + f"\x00{modified!r}".encode()).hexdigest()


def corpus_columns(corpus: CorpusConfig) -> dict[str, str]:
    """Input column for each role this corpus reads (role -> column name)."""
    roles = {"text": corpus.text_column}
    if corpus.id_column:
        roles["id"] = corpus.id_column
    if corpus.prompt_column:
        roles["prompt"] = corpus.prompt_column
    for role, column in corpus.columns.model_dump().items():
        if column:
            roles[role] = column
    for key, column in corpus.kept_columns.items():
        roles[f"keep:{key}"] = column
    if corpus.carried:
        roles["meta"] = META_COLUMN
    return roles


def read_columns(corpus: CorpusConfig) -> list[str]:
    """The columns read of a corpus's Parquet files: its roles', and for a hybridmix corpus which rows it takes."""
    return sorted(set(corpus_columns(corpus).values()) | (set(FILTER_COLUMNS) if corpus.carried else set()))


def _key_for_role(index: int, role: str) -> str:
    if role in ("text", "id", "prompt"):
        return f"corpora[{index}].{role}_column"
    if role.startswith("keep:"):
        return f"corpora[{index}].keep_columns"
    return f"corpora[{index}].columns.{role}"


def match_files(pattern: str, base_dir: str, key: str, name: str) -> list[tuple[str, int, float]]:
    """(path, size, modified) of every file a configured pattern matches; matching nothing is an error.

    Files that cannot be stat'ed have size -1. `key` and `name` say in errors which entry of the
    config the pattern belongs to.
    """
    resolved = _resolve(pattern, base_dir)
    if not is_remote(resolved) and not has_wildcards(resolved) and os.path.isdir(resolved):
        raise ConfigError(f"{key}.paths: {pattern!r} is a folder; give its files as a glob, "
                          f"such as {os.path.join(pattern, '*.parquet')!r}")
    if not is_remote(resolved) and has_wildcards(resolved) and os.path.isfile(resolved):
        # A file whose name holds `[` or `?` (`part[1].parquet`) is that file, not a pattern matching nothing.
        stat = os.stat(resolved)
        return [(resolved, stat.st_size, stat.st_mtime)]
    try:
        with warnings.catch_warnings():
            # fnmatch turns `[[]` (a literal `[`) into a regex Python warns about; the match is right.
            warnings.simplefilter("ignore", FutureWarning)
            results = FileSystems.match([resolved])[0].metadata_list
    except Exception as exc:  # noqa: BLE001 - filesystems raise their own types
        raise DataError(f"{key} ({name}): cannot list {pattern!r}: {exc}") from None
    found = sorted((m.path, m.size_in_bytes, m.last_updated_in_seconds)
                   for m in results if not m.path.endswith("/"))
    # Beam's local listing skips entries it cannot stat (a dangling link, say): find
    # them, so an unreadable file is reported instead of silently missing.
    found += [(path, -1, 0.0) for path in _unstattable_local(resolved)]
    if not found:
        hint = ("; in a glob, [...] matches one of the characters inside: write [[] for a literal ["
                if "[" in pattern else "")
        raise DataError(f"{key} ({name}): no file matches {pattern!r} (resolved to {resolved}){hint}")
    return found


def plan_inputs(config: IngestConfig, base_dir: str, jsonl_chunk_bytes: int = jsonl.CHUNK_BYTES) -> InputPlan:
    """List every corpus's files and read their footers (scan JSON Lines files).

    A glob that matches nothing is always an error. A file that cannot be used raises
    (on_bad_file: fail) or is set aside in `bad_files` (on_bad_file: quarantine).
    """
    files: list[InputFile] = []
    bad: list[BadFile] = []
    seen: dict[str, list[CorpusConfig]] = {}
    run_ids: dict[str, str] = {}
    check_reachable([p for corpus in config.corpora for p in corpus.paths if is_remote(p)])
    for ci, corpus in enumerate(config.corpora):
        matched: list[tuple[str, int, float]] = []
        outputs: dict[str, EarlierOutput] = {}
        for pattern in corpus.paths:
            if not corpus.carried:
                matched.extend(match_files(pattern, base_dir, f"corpora[{ci}]", corpus.name))
                continue
            for output in find_outputs(pattern, base_dir, f"corpora[{ci}] ({corpus.name})"):
                _check_run_id(run_ids, output)
                for found in output.files():
                    outputs[found[0]] = output
                    matched.append(found)
        found = sorted(set(matched))
        for path, _, _ in found:
            _check_one_corpus(path, seen.setdefault(path, []), corpus)
        for described in _describe_files(found, ci, corpus, base_dir, jsonl_chunk_bytes, outputs):
            if isinstance(described, BadFile):
                # Which rows of an earlier output's file a corpus takes is known only by reading it:
                # such a file cannot be quarantined with its rows counted, so it always fails.
                if config.on_bad_file == "fail" or corpus.carried:
                    raise described.error()
                detail = described.detail
                log.warning("quarantined %s", detail if detail.startswith(f"{described.display}: ")
                            else f"{described.display}: {detail}")
                bad.append(described)
            else:
                files.append(replace(described, index=len(files)))
    return InputPlan(base_dir=base_dir, files=tuple(files), bad_files=tuple(bad))


def _describe_files(found: list[tuple[str, int, float]], ci: int, corpus: CorpusConfig, base_dir: str,
                    jsonl_chunk_bytes: int, outputs: dict[str, EarlierOutput]) -> Iterator[InputFile | BadFile]:
    """`_describe_file` of each file, in order; Parquet files on a few threads at a time.

    Hashing a local file whole and reading an object's footer leave the GIL (hashlib, Arrow, the
    network), so files are described side by side: one at a time, a corpus of many objects in an
    object store waited out two round trips per object. JSON Lines files are scanned here, in
    order, as their scan may warn about keys and warnings keep the files' order. `index` is left
    for the caller to number (a quarantined file takes none).
    """
    def describe(item: tuple[str, int, float]) -> InputFile | BadFile:
        path, size, modified = item
        return _describe_file(-1, ci, corpus, path, size, modified, base_dir, jsonl_chunk_bytes, outputs.get(path))

    side = [item for item in found if corpus.carried or input_format(corpus, item[0]) != "jsonl"]
    if len(side) < 2:
        yield from map(describe, found)
        return
    workers = min(len(side), _REMOTE_PLANNERS if any(is_remote(path) for path, _, _ in side)
                  else parallel.available_cores())
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hybridmix-plan") as pool:
        pending = {item[0]: pool.submit(describe, item) for item in side}
        try:
            for item in found:
                yield pending[item[0]].result() if item[0] in pending else describe(item)
        finally:
            for future in pending.values():
                future.cancel()


def _check_one_corpus(path: str, readers: list[CorpusConfig], corpus: CorpusConfig) -> None:
    """A file belongs to one corpus; the data file of an earlier output to one per origin."""
    for other in readers:
        if not (other.carried and corpus.carried):
            raise DataError(f"{path}: matched by both corpus {other.name!r} and corpus {corpus.name!r}; "
                            "a file belongs to one corpus")
        if other.origin is corpus.origin:
            raise DataError(f"{path}: read by both corpus {other.name!r} and corpus {corpus.name!r}, both of origin "
                            f"{corpus.origin.value}; format: hybridmix corpora share an output only with "
                            "different origins")
    readers.append(corpus)


def _check_run_id(run_ids: dict[str, str], output: EarlierOutput) -> None:
    # Carried documents are counted by the run they came from (manifest `carried`, the carry-forward guard).
    known = run_ids.setdefault(output.run_id, output.folder)
    if known != output.folder:
        raise DataError(f"{output.display}: run id {output.run_id} is also the run id of {known}; the outputs of "
                        "two runs named alike (--run-id) cannot be told apart in one mix")


def input_format(corpus: CorpusConfig, path: str) -> str:
    """parquet or jsonl: the corpus's `format`, else by the file's name."""
    return corpus.format or ("jsonl" if jsonl.is_jsonl_name(path) else "parquet")


def _describe_file(index: int, ci: int, corpus: CorpusConfig, path: str, size: int, modified: float,
                   base_dir: str, jsonl_chunk_bytes: int, earlier: EarlierOutput | None = None) -> InputFile | BadFile:
    display = _display(path, base_dir)
    fmt = "parquet" if corpus.carried else input_format(corpus, path)

    def bad(reason: RejectReason, detail: str, rows: int | None = None) -> BadFile:
        return BadFile(ci, path, display, size if size >= 0 else None, rows, reason.value, detail, fmt)

    if size < 0:
        return bad(RejectReason.UNREADABLE_FILE, f"{display}: cannot read: no such file (a dangling link?)")
    if fmt == "jsonl":
        return _describe_jsonl(index, ci, corpus, path, size, modified, display, bad, jsonl_chunk_bytes)
    if size == 0:
        return bad(RejectReason.UNREADABLE_FILE, f"{display}: file is empty (0 bytes), not Parquet")
    sha256 = None
    try:
        if is_remote(path):
            pf = open_parquet(path)
            fingerprint = _remote_fingerprint(path, size, modified)
        elif size <= _FINGERPRINT_TAIL_BYTES:
            # A small local file is read once: its bytes are what the fingerprint hashes, and the
            # footer is parsed from them (a corpus of 20,000 small files opened each file twice).
            with open(path, "rb") as fh:
                whole = fh.read()
            fingerprint = sha256 = hashlib.sha256(whole).hexdigest()
            pf = pq.ParquetFile(pa.BufferReader(whole))
        else:
            # A local file is hashed whole (about 1.5 GB/s here), and the manifest's checksum is that
            # hash. The footer alone missed rewrites that keep the size: rows of equal length swapped
            # in an uncompressed file kept the run id, and `--if-exists skip` kept the old output.
            pf = open_parquet(path)  # first: a file that is not Parquet is refused before it is read whole
            fingerprint = sha256 = sha256_file(path)
        meta = pf.metadata
        schema = pf.schema_arrow
    except Exception as exc:  # noqa: BLE001 - pyarrow and filesystems raise many types for bad files
        return bad(RejectReason.UNREADABLE_FILE, f"{display}: cannot read as Parquet: {one_line(exc)}")
    names = tuple(schema.names)
    missing = [c for c in read_columns(corpus) if c not in names] if earlier is not None else []
    if missing:
        return bad(RejectReason.MISSING_COLUMN, f"{display}: not a hybridmix data file (no column "
                   f"{', '.join(map(repr, missing))}), though {earlier.display}'s manifest lists it")
    roles = corpus_columns(corpus)
    for role, column in roles.items():
        if column not in names:
            return bad(RejectReason.MISSING_COLUMN,
                       f"{display}: column {column!r} ({_key_for_role(ci, role)}) not found; "
                       f"the file has {', '.join(names) or 'no columns'}", rows=meta.num_rows)
    for role, column in roles.items():
        if names.count(column) > 1:
            return bad(RejectReason.AMBIGUOUS_COLUMN,
                       f"{display}: column {column!r} ({_key_for_role(ci, role)}) appears {names.count(column)} "
                       "times in the file; which one to read is ambiguous: write the file with distinct column "
                       "names", rows=meta.num_rows)
    rg_rows = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    rg_bytes = _read_bytes(meta, read_columns(corpus))
    carried = None
    if earlier is not None:
        try:
            taken, copies, other = carried_counts(pf, path, corpus.origin.value)
        except (OSError, pa.ArrowException) as exc:
            return bad(RejectReason.UNREADABLE_FILE, f"{display}: cannot read its origin and repeat columns: {exc}")
        carried = Carried(earlier.display, earlier.run_id, taken, copies, other)
    return InputFile(
        index=index,
        corpus=ci,
        path=path,
        display=display,
        size_bytes=size,
        modified=modified,
        rows=meta.num_rows,
        row_group_rows=rg_rows,
        fingerprint=fingerprint,
        columns=names,
        carried=carried,
        sha256=sha256,
        row_group_bytes=rg_bytes,
        **_text_size(meta, corpus.text_column),
    )


def _read_bytes(meta: pq.FileMetaData, columns: list[str]) -> tuple[int, ...]:
    """Each row group's uncompressed bytes in the columns a run reads: a column it leaves (the page's
    HTML beside its text) made batches of long documents smaller than they need be, and split row
    groups into more slices than their data needs (runners of several workers)."""
    paths = [meta.schema.column(j).path for j in range(meta.num_columns)]
    leaves = [j for j, path in enumerate(paths) if any(path == c or path.startswith(c + ".") for c in columns)]
    return tuple(sum(meta.row_group(i).column(j).total_uncompressed_size for j in leaves)
                 for i in range(meta.num_row_groups))


_DICTIONARY = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}


def _text_size(meta: pq.FileMetaData, column: str) -> dict[str, Any]:
    """`InputFile.text_bytes` and `text_plain` of a Parquet file's footer."""
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    if column not in names:
        return {"text_bytes": 0, "text_plain": False}
    index = names.index(column)
    size, plain = 0, True
    for rg in range(meta.num_row_groups):
        chunk = meta.row_group(rg).column(index)
        size += chunk.total_uncompressed_size
        plain &= not (_DICTIONARY & set(chunk.encodings))
    return {"text_bytes": size, "text_plain": plain}


def _describe_jsonl(index: int, ci: int, corpus: CorpusConfig, path: str, size: int, modified: float,
                    display: str, bad, chunk_bytes: int) -> InputFile | BadFile:
    named = jsonl.named_compression(path)
    if size == 0 and named:
        return bad(RejectReason.UNREADABLE_FILE, f"{display}: file is empty (0 bytes), not {named}-compressed")
    try:
        scan = jsonl.scan_file(path, chunk_bytes)
    except OSError as exc:
        return bad(RejectReason.UNREADABLE_FILE, f"{display}: cannot read: {exc}")
    if scan.error is not None:
        # Records before the break are known and counted; how many follow it is not.
        what = f"{scan.compression}-compressed JSON Lines" if scan.compression else "JSON Lines"
        return replace(bad(RejectReason.UNREADABLE_FILE,
                           f"{display}: cannot read as {what}: {scan.error} after {scan.records:,} records "
                           f"(line {scan.lines + 1}); how many records follow is unknown",
                           rows=scan.records or None), kind=_kind(scan.compression))
    if scan.sniffed and not scan.objects:
        return bad(RejectReason.UNREADABLE_FILE,
                   f"{display}: not JSON Lines: none of its first {scan.sniffed} records is a JSON object "
                   f"({scan.first_problem})")
    if scan.objects:
        problem = _missing_keys(ci, corpus, display, scan)
        if problem:
            return bad(RejectReason.MISSING_COLUMN, problem, rows=scan.records)
    return InputFile(
        index=index,
        corpus=ci,
        path=path,
        display=display,
        size_bytes=size,
        modified=modified,
        rows=scan.records,
        row_group_rows=tuple(c.records for c in scan.chunks),
        fingerprint=scan.sha256,
        columns=scan.keys,
        format="jsonl",
        compression=scan.compression,
        chunks=scan.chunks,
        sha256=scan.sha256,
        data_bytes=scan.data_bytes,
    )


def _missing_keys(ci: int, corpus: CorpusConfig, display: str, scan: jsonl.Scan) -> str | None:
    """A required key (text, id) found in none of the first records makes the file unusable, as a
    missing column does a Parquet file. Other keys may be left out of records whose value is null,
    so their absence is only worth a warning."""
    seen = set(scan.keys)
    where = f"its first {scan.objects} records" if scan.sniffed < scan.records else "any record"
    for role, column in corpus_columns(corpus).items():
        if column in seen:
            continue
        if role in ("text", "id"):
            return (f"{display}: key {column!r} ({_key_for_role(ci, role)}) not found in {where} "
                    f"(keys found: {', '.join(map(repr, scan.keys))})")
        log.warning("%s: key %r (%s) not found in %s: records without it read it as null", display, column,
                    _key_for_role(ci, role), where)
    return None


def iter_row_group(file: InputFile, row_group: int, batch_rows: int, corpus: CorpusConfig,
                   unit: tuple[int, int] | None = None) -> Iterator[tuple[pa.RecordBatch, jsonl.ParsedLines | None]]:
    """Batches of one row group (Parquet) or chunk (JSON Lines) with the roles' columns, and for JSON
    Lines what parsing found (`build_documents` takes both). Parquet: with `unit` (first row in the
    file, rows; a slice, `InputFile.units`), only those rows, batches cut where the slice starts and ends."""
    if file.format == "jsonl":
        yield from _iter_chunk(file, row_group, batch_rows, corpus)
        return
    columns = read_columns(corpus)
    # Long documents (books) make fewer rows a batch: 8,192 rows of 400 KB would be 3.3 GB, past what
    # one Arrow string array (2 GiB) and Beam's size estimates (32-bit) hold.
    per_row = file.unit_bytes(row_group, 1)
    if per_row > 0:
        batch_rows = max(1, min(batch_rows, BATCH_BYTES // per_row))
    first = 0 if unit is None else unit[0] - file.row_group_starts[row_group]
    end = file.row_group_rows[row_group] if unit is None else first + unit[1]
    while True:
        try:
            for batch in _row_group_batches(file, row_group, batch_rows, columns, first, end):
                first += batch.num_rows
                yield from _within_batch_bytes(batch)
            return
        except pa.ArrowNotImplementedError as exc:
            # Arrow returns a nested column (a struct kept in `meta`) in one array, and a batch whose
            # nested strings pass 2 GiB cannot be read: the footer gave their dictionary-encoded
            # size (one 600 KB note repeated 4,000 times read as 151 KB). The rest of the row group
            # is read again in smaller batches.
            if "chunked array" not in str(exc) or batch_rows == 1:
                raise DataError(f"{file.display}: cannot read row group {row_group}: {one_line(exc)}") from None
            batch_rows = max(1, batch_rows // 8)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{file.display}: cannot read row group {row_group}: {one_line(exc)}") from None


def _row_group_batches(file: InputFile, row_group: int, batch_rows: int, columns: list[str], first: int,
                       end: int) -> Iterator[pa.RecordBatch]:
    """Rows first..end (within the row group) of `columns`, `batch_rows` at a time."""
    at = 0
    pf = open_parquet(file.path)
    # A few rows (a small file) are decoded on this thread: starting Arrow's threads took 0.25 ms
    # a file, longer than decoding one of 2-3 rows (0.2 ms).
    batches = pf.iter_batches(batch_size=batch_rows, row_groups=[row_group], columns=columns,
                              use_threads=parquet_threads(file.path) and 2 * (end - first) >= batch_rows)
    # The next batch is decoded while the caller works on this one (see `parallel.ahead`); a unit
    # of one batch has no next one, and a helper thread per small file cost more than it read.
    for batch in (parallel.ahead(batches) if end - first > batch_rows else batches):
        lo, hi = max(first - at, 0), min(end - at, batch.num_rows)
        at += batch.num_rows
        if hi > lo:
            yield batch if hi - lo == batch.num_rows else batch.slice(lo, hi - lo)
        if at >= end:
            break


def _within_batch_bytes(batch: pa.RecordBatch) -> Iterator[tuple[pa.RecordBatch, None]]:
    """The batch, or slices of it of at most BATCH_BYTES: the footer's sizes are those of the encoded
    values, and a text that repeats (one 600 KB answer 4,000 times, a categorical column) is stored
    once in a dictionary: 0.7 MB by the footer read as 2.4 GB, past Beam's 32-bit size estimate."""
    sizes = row_bytes(batch)
    if int(sizes.sum()) <= BATCH_BYTES:
        yield batch, None
        return
    bounds = byte_bounds(sizes, batch.num_rows, BATCH_BYTES)
    for start, end in zip(bounds[:-1], bounds[1:]):
        yield batch.slice(start, end - start), None


def _iter_chunk(file: InputFile, chunk: int, batch_rows: int, corpus: CorpusConfig
                ) -> Iterator[tuple[pa.RecordBatch, jsonl.ParsedLines]]:
    roles = jsonl.Roles.of(corpus_columns(corpus), f"corpora[{file.corpus}].text_column")
    expected = file.row_group_rows[chunk]
    seen = size = 0
    records: list[tuple[int, bytes]] = []
    try:
        for record in jsonl.iter_records(file.path, file.compression, file.chunks[chunk]):
            if seen == expected:
                seen += 1  # more records than planned: the file changed
                break
            records.append(record)
            seen += 1
            size += len(record[1])
            # Cut by bytes too: a compressed file is one chunk, and 8,192 books of 400 KB made one
            # batch of 3.3 GB, past what one Arrow string array holds.
            if len(records) == batch_rows or size >= BATCH_BYTES:
                yield jsonl.parse_records(records, roles)
                records, size = [], 0
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{file.display}: cannot read chunk {chunk}: {one_line(exc)}") from None
    if records:
        yield jsonl.parse_records(records, roles)
    if seen != expected:
        raise DataError(f"{file.display} changed during the run: chunk {chunk} no longer holds the "
                        f"{expected:,} records planned")


def checksum_spans(plan: InputPlan, most_bytes: int = 256 << 20, most_files: int = 256) -> list[tuple[int, int]]:
    """The planned files as runs [first, end) of up to `most_files` files or `most_bytes`, for
    `checksum_files`: one Beam element per file cost more than hashing a small one."""
    spans, first, size = [], 0, 0
    for i, f in enumerate(plan.files):
        size += f.size_bytes
        if i + 1 - first >= most_files or size >= most_bytes:
            spans.append((first, i + 1))
            first, size = i + 1, 0
    if first < len(plan.files):
        spans.append((first, len(plan.files)))
    return spans


def checksum_files(span: tuple[int, int], plan: InputPlan, sources: list[str]) -> Iterator[dict[str, Any]]:
    """`checksum_file` of files [first, end) of the plan; `sources`: the corpora's names."""
    for f in plan.files[span[0]:span[1]]:
        yield checksum_file(f, sources[f.corpus])


def checksum_file(file: InputFile, source: str) -> dict[str, Any]:
    """Manifest entry for one input file, with a SHA-256 of its bytes."""
    # A file hashed whole when the run was planned (local files, JSON Lines) need not be read again.
    sha256 = file.sha256 or sha256_file(file.path)
    file.check_unchanged()  # the checksum must be of the file that was planned and read
    entry = {
        "path": file.display,
        "source": source,
        "size_bytes": file.size_bytes,
        "rows": file.rows,
        "sha256": sha256,
        "format": file.kind,
    }
    c = file.carried
    if c is not None:
        # rows = taken + copies_skipped + other_origin: the rows read (taken) are what `counts` accounts for.
        entry["carried"] = {"output": c.output, "run_id": c.run_id, "taken": c.taken, "copies_skipped": c.copies,
                            "other_origin": c.other_origin}
    return entry
