"""Local paths and Beam file systems (gs://, s3://, ...) behind one set of calls.

Local files use the OS directly (atomic renames, no listing cost); anything with a scheme goes
through Beam's `FileSystems`, which has no folder rename (see `objectstore` for how a remote output
is published without one).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from hybridmix.transforms import parallel


def is_remote(path: str) -> bool:
    """True for paths of a Beam file system other than the local one (`gs://...`, `s3://...`)."""
    return "://" in path


def open_raw(path: str) -> IO[bytes]:
    fast = _s3(path)
    if fast is not None:
        return fast.open(path, "rb")
    # AUTO compression would gunzip a file named *.gz behind pyarrow's back.
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def create_raw(path: str) -> IO[bytes]:
    fast = _s3(path)
    if fast is not None:
        return fast.open(path, "wb")
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


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


_OPTIONS: list = []


def use_options(options) -> None:
    """Give Beam's file systems the pipeline options (S3 endpoint and credentials, ...) before any
    file is listed; Beam itself does so only when the pipeline is built."""
    FileSystems.set_options(options)
    _OPTIONS[:] = [options]


def current_options():
    """The options of `use_options` (None before it was called, as in a worker process)."""
    return _OPTIONS[0] if _OPTIONS else None


_THREAD = threading.local()


def _s3(path: str):
    """Beam's S3 I/O with one client per thread, or None (not s3://, or no options in this process).

    Beam's S3 file system builds a new boto3 client for every call, which costs 0.2-0.3 s of CPU:
    more than moving a small file. Its client object keeps per-download state, hence per thread.
    A worker process without `use_options` goes through Beam's file systems, which have the options.
    """
    options = current_options()
    if options is None or not path.startswith("s3://"):
        return None
    if getattr(_THREAD, "options", None) is not options:
        from apache_beam.io.aws.s3io import S3IO

        _THREAD.s3io, _THREAD.options = S3IO(options=options), options
    return _THREAD.s3io


def list_files(prefix: str) -> list[tuple[str, int, float]]:
    """(path, size, modification time) of every file under a folder-like prefix of any file system."""
    prefix = prefix.rstrip("/") + "/"
    fast = _s3(prefix)
    if fast is not None:
        return [(p, size, updated) for p, (size, updated) in fast.list_files(prefix, with_metadata=True)]
    return [(m.path, m.size_in_bytes, m.last_updated_in_seconds)
            for m in FileSystems.match([prefix + "**"])[0].metadata_list]


def write_atomically(path: str, write: Callable[[str | IO[bytes]], None]) -> None:
    """Write a file so that a reader never sees it half-written, and a retried write replaces it whole.

    `write` receives a local path or, on a remote file system, an open binary stream. Locally the
    file is written under a temporary name and renamed into place. An object store makes an upload
    visible only when it completes, and has no rename (a copy would double the writes).
    """
    if is_remote(path):
        with create_raw(path) as sink:
            write(sink)
        return
    tmp = path + ".inprogress"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write(tmp)
    os.replace(tmp, path)


# Spill files written behind: at most this many bytes wait for the writer at a time. A few files
# are enough to keep it busy (it writes faster than a batch is made), and what waits is memory
# the run holds on top of its peak.
WRITE_BEHIND_BYTES = 64 << 20


def _writer() -> ThreadPoolExecutor:
    # One thread: a process's spill writes stay in submission order, so a file written again (a
    # retried bundle) is never written by two threads at once.
    return parallel.pool(1, "writer")


def write_buffers_behind(path: str, buffers: Iterable) -> None:
    """`write_buffers` on a background thread; `flush_writes` waits for it and raises its errors.

    Copying a spill file into the page cache (and waiting while the kernel throttles dirty pages)
    cost the main thread seconds of a run; on the writer thread it overlaps the next batch's work.
    The caller must not change the buffers afterwards, and must call `flush_writes` before it
    reports the bundle done (a DoFn's `finish_bundle`): a later stage, maybe in another process,
    reads the file. Remote files are written at once.
    """
    buffers = list(buffers)
    if is_remote(path):
        write_buffers(path, buffers)
        return
    pending = _pending()
    pending.append((_writer().submit(write_buffers, path, buffers), sum(memoryview(b).nbytes for b in buffers)))
    # Bounded: a writer that falls behind holds the buffers, so the submitter waits for it.
    while sum(size for _, size in pending) > WRITE_BEHIND_BYTES:
        _wait(pending.popleft()[0])


def flush_writes() -> None:
    """Wait for this thread's writes behind (`write_buffers_behind`); the first that failed raises."""
    pending = _pending()
    while pending:
        _wait(pending.popleft()[0])


def abandon_writes() -> None:
    """Drop the writes behind not yet started and wait for the one under way: a failed or
    interrupted run's staging folder is removed after this, and no spill file may land in it later."""
    writer = parallel.discard_pool(1, "writer")
    if writer is not None:
        writer.shutdown(wait=True, cancel_futures=True)


def _wait(future: Future) -> None:
    if not future.cancelled():  # dropped by `abandon_writes`: its run is over
        future.result()


def _pending() -> deque[tuple[Future, int]]:
    # Per thread: an SDK harness may run bundles on several threads, and each bundle waits for
    # (and answers for) its own writes only.
    if not hasattr(_THREAD, "pending"):
        _THREAD.pending = deque()
    return _THREAD.pending


# A forked child keeps the forking thread's pending writes, which the parent's writer finishes:
# waiting for them there would never end.
os.register_at_fork(after_in_child=lambda: _THREAD.__dict__.pop("pending", None))


def content_tag(key: np.ndarray) -> str:
    """A spill file's name stem from the array that identifies its rows (uids, order keys): a
    retried bundle writes the same rows, so it rewrites the same file instead of adding one."""
    return f"{hashlib.blake2b(memoryview(key).cast('B'), digest_size=12).hexdigest()}-{len(key)}"


def write_buffers(path: str, buffers: Iterable) -> None:
    """Write bytes-like buffers back to back as one file, atomically (see `write_atomically`).

    Buffers must count their length in bytes (a `memoryview(...).cast("B")` of a numpy array,
    not the array): a remote stream may count what it was given with len().
    """
    def write(sink) -> None:
        with open(sink, "wb") if isinstance(sink, str) else contextlib.nullcontext(sink) as fh:
            for buf in buffers:
                fh.write(buf)

    write_atomically(path, write)


def file_identity(path: str) -> tuple[int, float] | None:
    """(size, modification time in seconds) as Beam's listing reports them; None when the file is gone."""
    if is_remote(path):
        if _s3(path) is not None:
            found = [(size, updated) for p, (size, updated) in _s3(path).list_files(path, with_metadata=True)
                     if p == path]
            return found[0] if found else None
        found = FileSystems.match([path])[0].metadata_list
        return (found[0].size_in_bytes, found[0].last_updated_in_seconds) if found else None
    try:
        return os.path.getsize(path), os.path.getmtime(path)
    except OSError:
        return None


def file_size(path: str) -> int:
    if is_remote(path):
        identity = file_identity(path)
        if identity is None:
            raise FileNotFoundError(path)
        return identity[0]
    return os.path.getsize(path)


def parquet_threads(path: str) -> bool:
    """Whether pyarrow may decode this file on its own threads. Not through a Python file object (a
    remote file): those threads calling back into Python aborted the interpreter at exit
    ("terminate called without an active exception") in 2 of 30 `inspect` runs of an S3 output."""
    return not is_remote(path)


def read_range(path: str, start: int, end: int) -> pa.Buffer:
    """Bytes [start, end) of a file, in one read (one ranged GET on an object store)."""
    flush_writes()  # a read never misses a file this thread has still to write
    if not is_remote(path):
        with pa.OSFile(path) as fh:
            return fh.read_at(end - start, start)
    fast = _s3(path)
    # Beam's S3 reader fills a 16 MB buffer on any read: sized to the range, it fetches just that.
    with (fast.open(path, "rb", read_buffer_size=max(1, end - start)) if fast is not None else open_raw(path)) as fh:
        fh.seek(start)
        return pa.py_buffer(fh.read(end - start))


def delete_files(paths: list[str]) -> None:
    """Delete files this run wrote; a file already gone (a retried step removed it) is fine."""
    if not paths:
        return
    if is_remote(paths[0]):
        fast = _s3(paths[0])
        if fast is not None:
            failed = {p: e for p, e in fast.delete_files(paths) if e is not None}
            if failed:
                raise OSError(f"could not delete {len(failed)} file(s), e.g. {next(iter(failed.items()))}")
            return
        FileSystems.delete(paths)
        return
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
