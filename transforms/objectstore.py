"""Outputs on object stores (s3://, gs://, ...): a commit that needs no rename, and a lock that is a
conditional write.

An object store has no folder rename, so a remote output is laid out as

    OUT/_SUCCESS                  the commit point: a small JSON object naming the published run
    OUT/runs/<attempt>/_STARTED   the first object each run attempt writes (who, when)
    OUT/runs/<attempt>/...        that attempt's data/, rejects/, filtered/, duplicates/, manifest.json

Every attempt writes under its own prefix (the run id plus a UTC time and a random suffix, so a
rerun of the same run never writes over the published files). Publishing is one PUT of
`_SUCCESS`, which an object store makes visible whole or not at all: a reader that follows
`_SUCCESS` sees the old run or the new one, never a mix, and a run killed before that PUT left
nothing a reader takes as finished. The PUT is conditional on `_SUCCESS` being exactly what the
run saw when it started (S3 `If-Match`, or `If-None-Match: *` when there was none), so of two runs
into one output only the first to finish publishes; the other fails with exit 75 and publishes
nothing. After the commit, attempts that can no longer publish are deleted (see `clean_attempts`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import secrets
import socket
import time
from typing import Any

from hybridmix.schemas.errors import OutputError, Unreachable
from hybridmix.transforms.storage import (
    create_raw,
    current_options,
    delete_files,
    file_identity,
    is_remote,
    list_files,
    open_raw,
)

SUCCESS = "_SUCCESS"
ATTEMPTS = "runs"
STARTED = "_STARTED"
COMMIT_FORMAT = "hybridmix-commit/1"
# Schemes whose conditional writes hybridmix uses; any other remote output needs --no-lock.
LOCKING_SCHEMES = ("s3",)
# The S3 settings Beam's S3 file system reads from pipeline options (None: boto3's own defaults,
# i.e. the AWS_* environment variables and ~/.aws).
_S3_OPTIONS = ("s3_access_key_id", "s3_secret_access_key", "s3_session_token", "s3_endpoint_url",
               "s3_region_name", "s3_api_version", "s3_verify", "s3_disable_ssl")


# Seconds to wait for an object store to answer the first question of a run.
_ASK_SECONDS = 10


def bucket_key(path: str) -> tuple[str, str]:
    """(bucket, key) of an object-store path."""
    bucket, _, key = path.split("://", 1)[1].partition("/")
    return bucket, key


def check_reachable(paths: list[str]) -> None:
    """Each s3:// bucket among `paths` answers (its existence is the caller's question): fails in
    seconds with Unreachable where Beam's file system would retry for minutes."""
    asked: set[str] = set()
    for path in paths:
        if scheme(path) not in LOCKING_SCHEMES:
            continue
        bucket, _ = bucket_key(path)
        if bucket not in asked:
            asked.add(bucket)
            Store(path).bucket_exists(path)


class PreconditionFailed(Exception):
    """A conditional write found the object changed since the run looked at it."""


def scheme(path: str) -> str:
    return path.split("://", 1)[0].lower() if is_remote(path) else ""


def s3_settings(options) -> dict[str, Any]:
    """The S3 connection settings of Beam pipeline options, for the writes Beam's file system cannot make."""
    from apache_beam.options.pipeline_options import S3Options

    values = options.view_as(S3Options).get_all_options()
    return {key: values.get(key) for key in _S3_OPTIONS}


@dataclasses.dataclass(frozen=True)
class Commit:
    """What an output's `_SUCCESS` says, and which version of it was read."""

    run_id: str
    path: str  # the published attempt's folder, relative to the output
    files: tuple[str, ...]  # every file of the published run, relative to the output
    version: str | None  # the object's ETag: a later commit is conditional on it
    modified: float  # the object's modification time, seconds (the store's clock)

    def folder(self, out: str) -> str:
        return f"{out.rstrip('/')}/{self.path}"


class Store:
    """The few object operations a commit needs, with conditions where the store supports them."""

    def __init__(self, out: str, settings: dict[str, Any] | None = None) -> None:
        self.out = out.rstrip("/")
        self.scheme = scheme(out)
        if settings is None and current_options() is not None:
            settings = s3_settings(current_options())
        self._settings = settings or {}
        self._client = None

    @property
    def conditional(self) -> bool:
        return self.scheme in LOCKING_SCHEMES

    def _s3(self):
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self, config=None):
        import boto3

        s = self._settings
        return boto3.session.Session().client(
            "s3", region_name=s.get("s3_region_name"), api_version=s.get("s3_api_version"),
            use_ssl=not s.get("s3_disable_ssl"), verify=s.get("s3_verify"),
            endpoint_url=s.get("s3_endpoint_url"), aws_access_key_id=s.get("s3_access_key_id"),
            aws_secret_access_key=s.get("s3_secret_access_key"), aws_session_token=s.get("s3_session_token"),
            config=config)

    def bucket_exists(self, path: str) -> bool:
        """Whether the bucket of `path` exists, asked once with short timeouts: Beam's S3 file system
        retries a store that does not answer for about ten minutes, in silence, and then reports a
        missing file. Raises Unreachable when the endpoint does not answer."""
        from botocore.config import Config
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        bucket, _ = bucket_key(path)
        client = self._new_client(Config(connect_timeout=_ASK_SECONDS, read_timeout=_ASK_SECONDS,
                                 retries={"max_attempts": 2, "mode": "standard"}))
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            # The store answered. Anything but "no such bucket" (a policy that allows reading a prefix
            # but not HeadBucket, a region redirect) is left to the reads and writes that follow.
            return str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket", "NotFound")
        except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError) as exc:
            where = self._settings.get("s3_endpoint_url") or client.meta.endpoint_url
            raise Unreachable(f"{path}: the object store at {where} does not answer ({exc}); nothing was run: "
                              "retry later, or check --s3_endpoint_url") from None
        except BotoCoreError:
            return True  # no credentials, say: not this question's to answer
        return True

    def head(self, path: str) -> tuple[str | None, float] | None:
        """(version, modification time) of an object, or None when there is none."""
        if self.conditional:
            from botocore.exceptions import ClientError

            bucket, key = bucket_key(path)
            try:
                found = self._s3().head_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
            return found["ETag"], found["LastModified"].timestamp()
        found = file_identity(path)
        return (None, found[1]) if found else None

    def put(self, path: str, data: bytes, *, expect: str | None = None, absent: bool = False) -> None:
        """Write a whole object; with `expect` only over that version, with `absent` only if there is none."""
        if self.conditional:
            from botocore.exceptions import ClientError

            bucket, key = bucket_key(path)
            condition = {"IfNoneMatch": "*"} if absent else {"IfMatch": expect} if expect else {}
            try:
                self._s3().put_object(Bucket=bucket, Key=key, Body=data, **condition)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise PreconditionFailed(path) from None
                raise
            return
        with create_raw(path) as sink:
            sink.write(data)


def read_bytes(path: str) -> bytes:
    with open_raw(path) as fh:
        return fh.read()


def read_commit(out: str, store: Store | None = None) -> Commit | None:
    """The commit of a remote output, or None when nothing was published there."""
    store = store or Store(out)
    path = f"{out.rstrip('/')}/{SUCCESS}"
    found = store.head(path)
    if found is None:
        return None
    try:
        body = json.loads(read_bytes(path))
        if body.get("format") != COMMIT_FORMAT:
            raise ValueError("not a hybridmix commit")
        commit = Commit(run_id=body["run_id"], path=body["path"], files=tuple(body["files"]),
                        version=found[0], modified=found[1])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise OutputError(f"{path} is not a hybridmix commit ({exc}); hybridmix only replaces its own outputs: "
                          "choose another output") from None
    if not commit.path.startswith(f"{ATTEMPTS}/") or any(not f.startswith(commit.path + "/") for f in commit.files):
        raise OutputError(f"{path} names files outside its run folder; not a hybridmix commit")
    return commit


def foreign_objects(out: str) -> list[str]:
    """Objects under a remote output that hybridmix did not write there (it never deletes those)."""
    base = out.rstrip("/") + "/"
    return [p[len(base):] for p, _, _ in list_files(out)
            if p[len(base):] != SUCCESS and not p[len(base):].startswith(f"{ATTEMPTS}/")]


def new_attempt(out: str, run_id: str) -> str:
    """A fresh folder for one attempt of a run: the run id, the UTC time and a random suffix."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{out.rstrip('/')}/{ATTEMPTS}/{run_id}.{stamp}.{secrets.token_hex(3)}"


def start_attempt(stage_dir: str, run_id: str, base: Commit | None) -> None:
    """Write the attempt's first object: who runs it, since when, over which commit."""
    note = {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "over": base.run_id if base else None}
    with create_raw(f"{stage_dir}/{STARTED}") as sink:
        sink.write(json.dumps(note).encode("utf-8") + b"\n")


def commit_body(run_id: str, out: str, stage_dir: str, files: list[str]) -> bytes:
    base = out.rstrip("/") + "/"
    body = {"format": COMMIT_FORMAT, "run_id": run_id, "path": stage_dir[len(base):],
            "manifest": f"{stage_dir[len(base):]}/manifest.json",
            "files": sorted(f[len(base):] for f in files),
            "committed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    return json.dumps(body, indent=2).encode("utf-8") + b"\n"


def commit(store: Store, out: str, stage_dir: str, run_id: str, files: list[str], base: Commit | None,
           locked: bool) -> Commit:
    """Publish the attempt at `stage_dir` by writing `_SUCCESS`; raises PreconditionFailed when another
    run published since `base` was read (unless that was this very attempt, in a retried step)."""
    path = f"{out.rstrip('/')}/{SUCCESS}"
    body = commit_body(run_id, out, stage_dir, files)
    try:
        if locked:
            store.put(path, body, expect=base.version if base else None, absent=base is None)
        else:
            store.put(path, body)
    except PreconditionFailed:
        now = read_commit(out, store)
        if now is None or now.folder(out) != stage_dir.rstrip("/"):
            raise
    now = read_commit(out, store)
    assert now is not None
    return now


def clean_attempts(out: str, published: Commit) -> list[str]:
    """Delete the attempts that can no longer publish; returns the folders removed.

    An attempt reads `_SUCCESS` before it writes its `_STARTED`, and publishes only over the
    version it read. So an attempt whose `_STARTED` is older than the current commit (strictly, in
    the store's own clock) read an older version and can never publish: its files go, and so
    does the run the commit replaced. An attempt folder without `_STARTED` is what is left of one
    already being removed. Newer attempts may still be running and are left alone.
    """
    keep = published.folder(out)
    folders: dict[str, list[tuple[str, float]]] = {}
    runs = f"{out.rstrip('/')}/{ATTEMPTS}/"
    for path, _, modified in list_files(runs):
        folder = runs + path[len(runs):].split("/", 1)[0]
        folders.setdefault(folder, []).append((path, modified))
    removed = []
    for folder, files in sorted(folders.items()):
        if folder == keep:
            continue
        started = [m for p, m in files if p == f"{folder}/{STARTED}"]
        # Whole seconds on both sides: a listing and a HEAD may report the same clock at different
        # precisions, and rounding both down keeps "earlier" meaning earlier.
        if started and math.floor(started[0]) >= math.floor(published.modified):
            continue
        delete_files([p for p, _ in files if p != f"{folder}/{STARTED}"])
        delete_files([f"{folder}/{STARTED}"] if started else [])
        removed.append(folder)
    return removed
