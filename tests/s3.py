"""A real S3-compatible server for the object-store tests: moto's server mode, an HTTP server
speaking the S3 API on loopback (conditional writes included).

`.ci/run` starts one and exports HYBRIDMIX_S3_ENDPOINT; without it each test process starts its
own on a free port. Every test uses its own bucket.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

ENDPOINT_ENV = "HYBRIDMIX_S3_ENDPOINT"
KEY, SECRET, REGION = "testing", "testing", "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(endpoint: str) -> bool:
    host, port = endpoint.split("://", 1)[1].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def s3_server():
    """Yield the endpoint URL of a running S3 server: HYBRIDMIX_S3_ENDPOINT's, or one started here."""
    given = os.environ.get(ENDPOINT_ENV, "").strip()
    if given:
        if not _answers(given):
            raise RuntimeError(f"{ENDPOINT_ENV}={given} is set but nothing answers there")
        yield given
        return
    port = _free_port()
    exe = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
    if exe is None:
        raise RuntimeError("moto_server is not installed (pip install 'moto[server]', part of the dev extra)")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(endpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start on port {port}")
            time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def beam_flags(endpoint: str) -> list[str]:
    """Beam's S3 options for `hybridmix run`."""
    return [f"--s3_endpoint_url={endpoint}", f"--s3_access_key_id={KEY}", f"--s3_secret_access_key={SECRET}",
            f"--s3_region_name={REGION}"]


def environment(endpoint: str) -> dict[str, str]:
    """The same settings as AWS_* variables, for commands without Beam options (`inspect`)."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": REGION}


_BUCKETS = itertools.count()


class Bucket:
    """A fresh bucket on the server, with the reads and writes a test needs (plain boto3)."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                                   region_name=REGION)
        self.name = f"hm-{os.getpid()}-{next(_BUCKETS)}-{uuid.uuid4().hex[:8]}"
        self.client.create_bucket(Bucket=self.name)

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}".rstrip("/")

    def upload(self, local: str, key: str) -> str:
        self.client.upload_file(str(local), self.name, key)
        return self.url(key)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def keys(self, prefix: str = "") -> list[str]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
            found += [o["Key"] for o in page.get("Contents", [])]
        return sorted(found)

    def files(self, prefix: str) -> dict[str, bytes]:
        """Every object under a folder-like prefix, by its path below it."""
        base = prefix.rstrip("/") + "/"
        return {k[len(base):]: self.get(k) for k in self.keys(base)}
