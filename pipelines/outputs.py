"""The output folder of a run: checks before writing, a lock while writing, leftovers of runs
that did not finish."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import time

from hybridmix.schemas.config import PipelineConfig
from hybridmix.schemas.errors import OutputError
from hybridmix.transforms.inputs import glob_base
from hybridmix.transforms.publish import SUCCESS
from hybridmix.transforms.storage import is_remote

log = logging.getLogger("hybridmix")


def check_output(out_dir: str, force: bool, config: PipelineConfig, base_dir: str, input_paths: list[str]) -> None:
    if is_remote(out_dir):
        return
    out = os.path.abspath(out_dir)
    for i, corpus in enumerate(config.corpora):
        for pattern in corpus.paths:
            if is_remote(pattern):
                continue
            folder = os.path.abspath(glob_base(os.path.join(base_dir, pattern)))
            if out == folder or out.startswith(folder + os.sep):
                raise OutputError(
                    f"output folder {out_dir} is inside input folder {folder} (corpora[{i}].paths); "
                    "choose an output folder outside the inputs")
    for path in input_paths:
        if not is_remote(path) and os.path.abspath(path).startswith(out + os.sep):
            raise OutputError(f"output folder {out_dir} holds input file {path}; choose another output folder")
    if os.path.exists(os.path.join(out, SUCCESS)) and not force:
        raise OutputError(f"{out_dir} holds a finished run; pass --force to replace it")
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputError(f"{out_dir} exists and is not a folder")


@contextlib.contextmanager
def output_lock(out_dir: str, run_id: str):
    """Hold an exclusive lock on the output folder for the whole run.

    flock is released by the kernel when the process ends, however it ends, so a killed run
    never leaves a stale lock behind.
    """
    if is_remote(out_dir):
        yield
        return
    parent, name = os.path.split(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    path = os.path.join(parent, f".{name}.lock")
    fh = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise OutputError(f"{out_dir} is being written by another run ({holder}); "
                              "wait for it to finish or choose another output folder") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"run {run_id}, pid {os.getpid()} on {socket.gethostname()}, "
                 f"since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        fh.flush()
        yield
    finally:
        fh.close()


def remove_stale_staging(out_dir: str) -> None:
    """Staging folders of earlier runs into this output that did not finish (the lock is held)."""
    parent, name = os.path.split(os.path.abspath(out_dir))
    for entry in os.listdir(parent):
        if entry.startswith(f".{name}.") and (entry.endswith(".inprogress") or entry.endswith(".replaced")):
            log.info("removing unfinished staging folder %s", entry)
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
