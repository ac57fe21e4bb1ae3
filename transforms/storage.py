"""Local paths and Beam file systems (gs://, s3://, ...) behind one set of calls.

Local files use the OS directly (atomic renames, no listing cost); anything with a scheme goes
through Beam's `FileSystems`, which has no folder rename.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import IO

import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def is_remote(path: str) -> bool:
    """True for paths of a Beam file system other than the local one (`gs://...`, `s3://...`)."""
    return "://" in path


def open_raw(path: str) -> IO[bytes]:
    # AUTO compression would gunzip a file named *.gz behind pyarrow's back.
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def sha256_file(path: str) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MB blocks, on any Beam file system."""
    digest = hashlib.sha256()
    with open_raw(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_parquet(path: str) -> pq.ParquetFile:
    if is_remote(path):
        return pq.ParquetFile(open_raw(path))
    return pq.ParquetFile(path)


def write_atomically(path: str, write: Callable[[str | IO[bytes]], None]) -> None:
    """Write a file under a temporary name, then rename it into place.

    `write` receives a local path or, on a remote file system, an open binary stream. A reader
    never sees a half-written file under `path`, and a retried write replaces it whole.
    """
    tmp = path + ".inprogress"
    if is_remote(path):
        with FileSystems.create(tmp) as sink:
            write(sink)
        FileSystems.rename([tmp], [path])
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write(tmp)
    os.replace(tmp, path)


def file_identity(path: str) -> tuple[int, float] | None:
    """(size, modification time in seconds) as Beam's listing reports them; None when the file is gone."""
    if is_remote(path):
        found = FileSystems.match([path])[0].metadata_list
        return (found[0].size_in_bytes, found[0].last_updated_in_seconds) if found else None
    try:
        return os.path.getsize(path), os.path.getmtime(path)
    except OSError:
        return None


def file_size(path: str) -> int:
    if is_remote(path):
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    return os.path.getsize(path)


def read_parquet(path: str):
    if is_remote(path):
        with FileSystems.open(path) as fh:
            return pq.read_table(fh)
    return pq.read_table(path)


def delete_files(paths: list[str]) -> None:
    """Delete files this run wrote; a file already gone (a retried step removed it) is fine."""
    if not paths:
        return
    if is_remote(paths[0]):
        FileSystems.delete(paths)
        return
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
