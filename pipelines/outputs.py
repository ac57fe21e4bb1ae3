"""The output folder of a run: checks before anything runs, a lock while writing, and the leftovers
of runs that did not finish (removed only when this program wrote them).

A local output path is usable when it is absent, an empty folder, or a finished hybridmix output
(replaced only on request). Anything else is refused: hybridmix never deletes what it did not write.
A remote output (an object-store prefix) is usable when it holds nothing but what hybridmix writes
there (`_SUCCESS` and `runs/`, see `transforms.objectstore`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from enum import StrEnum
from typing import IO

from hybridmix.schemas.config import PipelineConfig
from hybridmix.schemas.errors import ConfigError, OutputError, OutputLocked
from hybridmix.transforms import parallel
from hybridmix.transforms.inputs import glob_base, has_wildcards
from hybridmix.transforms.objectstore import (
    LOCKING_SCHEMES,
    Store,
    bucket_key,
    foreign_objects,
    read_commit,
    scheme,
)
from hybridmix.transforms.publish import (
    MANIFEST,
    OUTPUT_ENTRIES,
    PARKED_SUFFIX,
    STAGING_SUFFIX,
    SUCCESS,
)
from hybridmix.transforms.storage import abandon_writes, delete_files, is_remote, list_files

log = logging.getLogger("hybridmix")

# Run ids name staging folders (`.OUT.<run id>.inprogress`): no dots, so the folders of `mix` and
# `mix.v2` can never be mistaken for each other, and nothing that walks out of the parent folder.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


class Existing(StrEnum):
    """What the output path holds before a run."""

    NOTHING = "nothing"  # absent, or an empty folder
    FINISHED = "finished"  # a finished hybridmix output


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise OutputError(
            f"--run-id {run_id!r}: use 1 to 100 letters, digits, '_' or '-', starting with a letter or digit")
    return run_id


def resolve_output(out_dir: str) -> str:
    """The absolute output path with symlinks resolved (so a link cannot get around the lock)."""
    if is_remote(out_dir):
        return out_dir.rstrip("/")
    out = os.path.realpath(os.path.abspath(out_dir))
    if os.path.dirname(out) == out:
        raise OutputError(f"{out_dir}: the root of a file system cannot be an output folder; name a folder in it")
    return out


def finished_run_id(out: str) -> str | None:
    """The run id of the finished hybridmix output at `out`, or None."""
    if is_remote(out):
        published = read_commit(out)
        return published.run_id if published else None
    if not os.path.isfile(os.path.join(out, SUCCESS)):
        return None
    try:
        with open(os.path.join(out, MANIFEST), encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        return None
    run_id = manifest.get("run_id") if isinstance(manifest, dict) else None
    return run_id if isinstance(run_id, str) else None


def check_output(out: str, config: PipelineConfig, base_dir: str, input_paths: list[str]) -> Existing:
    """Refuse an output that would overlap the inputs or replace something hybridmix did not write."""
    if is_remote(out):
        return _check_remote_output(out, input_paths)
    for i, corpus in enumerate(config.corpora):
        for pattern in corpus.paths:
            if is_remote(pattern) or not has_wildcards(pattern):
                continue  # single files are checked below
            folder = os.path.realpath(glob_base(os.path.join(base_dir, pattern)))
            if out == folder or out.startswith(folder + os.sep):
                raise OutputError(
                    f"output folder {out} is inside input folder {folder} (corpora[{i}].paths); "
                    "choose an output folder outside the inputs")
    _check_not_inside_an_output(out)
    folders: dict[str, str] = {}
    for path in input_paths:
        real = path if is_remote(path) else _real_file(path, folders)
        if real == out or real.startswith(out + os.sep):
            raise OutputError(f"output folder {out} holds input file {path}; choose another output folder")
    if not os.path.lexists(out):
        return Existing.NOTHING
    if not os.path.isdir(out):
        raise OutputError(f"{out} exists and is not a folder; choose another output path")
    entries = sorted(os.listdir(out))
    if not entries:
        return Existing.NOTHING
    foreign = [e for e in entries if e not in OUTPUT_ENTRIES]
    if foreign and finished_run_id(out) is not None:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise OutputError(
            f"{out} is a finished hybridmix output that also holds files it did not write ({shown}); hybridmix "
            "never deletes what it did not write: move them, or choose another folder")
    if foreign or finished_run_id(out) is None:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "") if foreign else ", ".join(entries[:5])
        raise OutputError(
            f"{out} is not empty and is not a finished hybridmix output (it holds {shown}); hybridmix only "
            "writes into a new or empty folder, or replaces its own finished output: choose another folder")
    return Existing.FINISHED


def _check_not_inside_an_output(out: str) -> None:
    """Refuse an output folder inside a finished hybridmix output (`--output out/data/v2`): readers of
    that output's folders (`load_dataset(..., data_dir="out/data")`) would read the new run's files
    as its own rows, and a `--force` rerun of it would refuse to replace what it did not write."""
    parent = os.path.dirname(out)
    while parent and parent != os.path.dirname(parent):
        if finished_run_id(parent) is not None:
            raise OutputError(
                f"output folder {out} is inside the finished hybridmix output {parent}, whose readers would take "
                "its files for that output's rows; choose an output folder outside it")
        parent = os.path.dirname(parent)


def _real_file(path: str, folders: dict[str, str]) -> str:
    """os.path.realpath of a file, its folder's resolved once (`folders`): for 20,000 input files of
    a few folders, realpath of each took 0.7 s of every run's start."""
    head, name = os.path.split(path)
    if os.path.islink(path) or name in ("", ".", ".."):
        return os.path.realpath(path)
    if head not in folders:
        folders[head] = os.path.realpath(head)
    return os.path.join(folders[head], name)


def _check_remote_output(out: str, input_paths: list[str]) -> Existing:
    if scheme(out) in LOCKING_SCHEMES and not Store(out).bucket_exists(out):
        raise OutputError(f"{out}: bucket {bucket_key(out)[0]!r} does not exist; create it first (hybridmix does "
                          "not create buckets)")
    prefix = out.rstrip("/") + "/"
    for path in input_paths:
        if path.startswith(prefix):
            raise OutputError(f"output {out} holds input file {path}; choose another output")
    foreign = foreign_objects(out)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise OutputError(
            f"{out} holds objects hybridmix did not write there ({shown}); hybridmix writes only under an "
            "empty prefix or its own output: choose another output")
    return Existing.FINISHED if read_commit(out) is not None else Existing.NOTHING


@contextlib.contextmanager
def output_lock(out: str, run_id: str, no_lock: bool = False):
    """Hold an exclusive lock on the output folder for the whole run.

    flock is released by the kernel when the process ends, however it ends, so a killed run
    never leaves a stale lock behind. On an object store the lock is the commit itself, a write
    conditional on the version of `_SUCCESS` the run saw first (`transforms.objectstore`); stores
    hybridmix cannot make such writes to are refused unless `no_lock` says one writer is assured.
    """
    if is_remote(out):
        if not no_lock and scheme(out) not in LOCKING_SCHEMES:
            raise OutputError(
                f"{out}: hybridmix can keep two runs from both publishing only on {', '.join(LOCKING_SCHEMES)}:// "
                "outputs (conditional writes); pass --no-lock if nothing else writes to this output")
        yield
        return
    if no_lock:
        raise OutputError("--no-lock is for object-store outputs; a local output is always locked")
    parent = os.path.dirname(out)
    try:
        os.makedirs(parent, exist_ok=True)
        fh = open(_lock_path(out), "a+", encoding="utf-8")
    except OSError as exc:
        raise _cannot_lock(out, exc) from None
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _locked(out, fh) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"run {run_id}, pid {os.getpid()} on {socket.gethostname()}, "
                 f"since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        fh.flush()
        yield
    finally:
        fh.close()


def check_unlocked(out: str) -> None:
    """Refuse, as `output_lock` would, a local output another run is writing (validate's check).

    Only looks: a shared lock held for an instant conflicts with the writer's exclusive one, and
    no lock file is made where there is none.
    """
    if is_remote(out):
        return
    try:
        fh = open(_lock_path(out), encoding="utf-8")
    except OSError:
        return  # no lock file: no run has locked it; one that cannot be made is check_writable's to say
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _locked(out, fh) from None
        fcntl.flock(fh, fcntl.LOCK_UN)


def _locked(out: str, fh: IO[str]) -> OutputLocked:
    """The refusal of an output another run holds, naming the holder its lock file records."""
    fh.seek(0)
    holder = fh.read().strip() or "another process"
    return OutputLocked(f"{out} is being written by another run ({holder}); "
                        "wait for it to finish or choose another output folder")


def _lock_path(out: str) -> str:
    parent, name = os.path.split(out)
    return os.path.join(parent, f".{name}.lock")


def _cannot_lock(out: str, exc: OSError) -> OutputError:
    """What run and validate say when the lock (and so the staging folder) cannot be made beside `out`."""
    return OutputError(f"{out}: cannot create the output folder's lock in {os.path.dirname(out)} ({exc.strerror})")


def check_writable(out: str) -> None:
    """Refuse a local output whose lock and staging folder `run` could not create beside it.

    The only sure test of a folder's writability is a write (a read-only mount, an ACL, a parent
    that is a file): a folder of our own is made and removed in the nearest existing folder on the
    way to the output (`run` creates the missing ones). mkdtemp picks a name nothing holds, so only
    what this made is removed, and its suffix is one `recover_and_clean` never matches.
    """
    if is_remote(out):
        return
    parent, name = os.path.split(out)
    nearest = parent
    while not os.path.lexists(nearest):
        nearest = os.path.dirname(nearest)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{name}.", suffix=".writable", dir=nearest))
        # An earlier run's lock is opened again, not created: it must take a write too.
        lock = _lock_path(out)
        if os.path.lexists(lock):
            os.close(os.open(lock, os.O_WRONLY | os.O_APPEND))
    except OSError as exc:
        raise _cannot_lock(out, exc) from None


def check_log_file(log_file: str, out: str) -> None:
    """Refuse a --log-file in the output folder or in what a run keeps beside it (lock, staging).

    The log is opened before the output is checked, so in the folder it would be a file hybridmix
    did not write there: this run and every later --force into it would be refused because of it.
    """
    check_beside_output(log_file, out, "--log-file", "the log", f"{out}.log")


def check_beside_output(path: str, out: str, flag: str, what: str, example: str) -> None:
    """Refuse a file (`flag` names it, `what` says what it is) written into the output folder `out`
    or into what a run keeps beside it (lock, staging): readers of the output, and every later run
    into it, would meet a file no manifest lists."""
    if is_remote(out):
        root = out.rstrip("/")
        if path.startswith(f"{root}/"):
            raise ConfigError(f"{flag} {path} is inside the output folder {out}, which holds only what "
                              f"hybridmix writes: put {what} beside the output (e.g. {example})")
        return
    real = os.path.realpath(os.path.abspath(path))
    parent, name = os.path.split(out)
    own = re.compile(rf"\.{re.escape(name)}\.(lock|{RUN_ID_PATTERN.pattern}{re.escape(STAGING_SUFFIX)}"
                     rf"({re.escape(PARKED_SUFFIX)})?)")
    first = os.path.relpath(real, parent).split(os.sep)[0]
    if first == name:
        raise ConfigError(f"{flag} {path} is inside the output folder {out}, which holds only what "
                          f"hybridmix writes: put {what} beside the output (e.g. {example})")
    if own.fullmatch(first):
        raise ConfigError(f"{flag} {path} is the lock or in a staging folder of the output {out}: put {what} "
                          f"beside the output (e.g. {example})")


def _own_leftovers(out: str) -> tuple[list[str], list[str]]:
    """(staging folders, parked outputs) of earlier runs into exactly this output."""
    parent, name = os.path.split(out)
    pattern = re.compile(rf"\.{re.escape(name)}\.{RUN_ID_PATTERN.pattern}{re.escape(STAGING_SUFFIX)}"
                         rf"(?P<parked>{re.escape(PARKED_SUFFIX)})?")
    staging, parked = [], []
    for entry in sorted(os.listdir(parent)):
        found = pattern.fullmatch(entry)
        if found and os.path.isdir(os.path.join(parent, entry)):
            (parked if found.group("parked") else staging).append(os.path.join(parent, entry))
    return staging, parked


def recover_and_clean(out: str) -> None:
    """Finish what an interrupted run left (the lock is held).

    A publish that was killed after it moved the old output aside and before it moved the new
    one in leaves the old output parked: it goes back into place. A parked output whose
    replacement was published is removed (that run was asked to replace it). Staging folders of
    unfinished runs are removed.
    """
    staging, parked = _own_leftovers(out)
    for path in parked:
        if not os.path.lexists(out):
            log.warning("restoring %s: a run was interrupted while replacing it", out)
            os.replace(path, out)
        else:
            shutil.rmtree(path, ignore_errors=True)
    for path in staging:
        log.info("removing the staging folder of an unfinished run: %s", path)
        shutil.rmtree(path, ignore_errors=True)


def make_staging(stage_dir: str) -> None:
    """Create the run's staging folder now, so an unusable output location fails before any work."""
    if is_remote(stage_dir):
        return
    try:
        os.mkdir(stage_dir)
    except FileExistsError:
        shutil.rmtree(stage_dir)
        os.mkdir(stage_dir)
    except OSError as exc:
        reason = "permission denied" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else exc.strerror
        raise OutputError(f"cannot write next to the output folder ({os.path.dirname(stage_dir)}): {reason}") from None


def remove_staging(stage_dir: str, out: str) -> None:
    """The staging folder of this run, after it failed or was interrupted (its files are ours).

    After a successful publish a local staging folder is the output (renamed away); a remote one
    is what `_SUCCESS` names, and stays.
    """
    parallel.stop_helpers()  # they spill files: first, so none lands after the writes are dropped
    abandon_writes()
    if is_remote(stage_dir):
        try:
            published = read_commit(out)
            if published is None or published.folder(out) != stage_dir.rstrip("/"):
                delete_files([p for p, _, _ in list_files(stage_dir)])
        except Exception as exc:  # noqa: BLE001 - the run's own failure is the one to report
            log.warning("could not remove this run's unpublished files under %s (%s); the next run that "
                        "publishes to %s removes them", stage_dir, exc, out)
        return
    if os.path.exists(stage_dir):
        shutil.rmtree(stage_dir, ignore_errors=True)
