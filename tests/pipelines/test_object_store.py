"""Inputs and outputs on a real S3-compatible server (moto's server mode on loopback), through
Beam's S3 file system: the same bytes as a local run, a commit that needs no rename, kills at
every publish step, and two runs into one output of which only one publishes."""

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import yaml

from tests import s3
from tests.builders import write_config
from tests.pipelines.test_cli import ROOT, _config, _corpus
from tests.pipelines.test_jsonl import JSONL_NAMES, _write_jsonl
from tests.pipelines.test_jsonl import _config as jsonl_config

VOLATILE_KEYS = {"started_at", "finished_at"}


@pytest.fixture(scope="module")
def endpoint():
    with s3.s3_server() as url:
        yield url


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("s3corpus")
    _corpus(root)
    return root, _config(root)


def _cli(endpoint, *args, env=None, wait=True):
    full = [sys.executable, "-m", "hybridmix.pipelines.cli", *map(str, args)]
    if args[0] == "run":
        full += s3.beam_flags(endpoint)
    environment = dict(os.environ, PYTHONPATH=ROOT, **s3.environment(endpoint), **(env or {}))
    if not wait:
        return subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    return subprocess.run(full, capture_output=True, text=True, env=environment, timeout=900)


def _commit(bucket, prefix="out") -> dict:
    return json.loads(bucket.get(f"{prefix}/_SUCCESS"))


def _attempts(bucket, prefix="out") -> set[str]:
    return {k.split("/")[2] for k in bucket.keys(f"{prefix}/runs/")}


def _published(bucket, prefix="out") -> dict[str, bytes]:
    """The files `_SUCCESS` names, by their path in the run folder; each must exist."""
    commit = _commit(bucket, prefix)
    return {f[len(commit["path"]) + 1:]: bucket.get(f"{prefix}/{f}") for f in commit["files"]}


def _manifest(raw: bytes, out: str) -> dict:
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in VOLATILE_KEYS}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value.replace(out, "OUT") if isinstance(value, str) else value

    return clean(json.loads(raw))


def test_inputs_and_output_on_s3_give_the_bytes_of_a_local_run(endpoint, corpus, tmp_path):
    root, _ = corpus
    bucket = s3.Bucket(endpoint)
    for sub in ("human/part-0.parquet", "human/part-1.parquet", "synth/answers.parquet"):
        bucket.upload(root / "in" / sub, f"in/{sub}")
    # The test corpus's config, reading its files from the bucket (globs too).
    local_config = yaml.safe_load((root / "in" / "config.yaml").read_text())
    for corpus_cfg in local_config["corpora"]:
        corpus_cfg["paths"] = [bucket.url(f"in/{p}") for p in corpus_cfg["paths"]]
    config = write_config(tmp_path / "s3.yaml", local_config)

    local = _cli(endpoint, "run", config, "--output", tmp_path / "local", "--run-id", "same")
    assert local.returncode == 0, local.stderr
    remote = _cli(endpoint, "run", config, "--output", bucket.url("out"), "--run-id", "same")
    assert remote.returncode == 0, remote.stderr

    published = _published(bucket)
    local_files = {str(p.relative_to(tmp_path / "local")): p.read_bytes()
                   for p in (tmp_path / "local").rglob("*") if p.is_file()}
    assert set(published) == set(local_files) - {"_SUCCESS"}
    assert any(p.startswith("data/") for p in published)
    for path, data in published.items():
        if path == "manifest.json":
            assert _manifest(data, bucket.url("out")) == _manifest(local_files[path], str(tmp_path / "local"))
        else:
            assert data == local_files[path], path
    manifest = json.loads(published["manifest.json"])
    assert {i["path"] for i in manifest["inputs"]} == {bucket.url(f"in/{s}") for s in
                                                       ("human/part-0.parquet", "human/part-1.parquet",
                                                        "synth/answers.parquet")}
    # One attempt folder, the published one; `inspect` follows `_SUCCESS` to it.
    assert _attempts(bucket) == {_commit(bucket)["path"].split("/")[1]}
    shown = _cli(endpoint, "inspect", bucket.url("out"))
    assert shown.returncode == 0, shown.stderr
    assert f"run folder (named by {bucket.url('out')}/_SUCCESS): {bucket.url('out')}/runs/same." in shown.stdout
    assert "source_file" in shown.stdout


def test_json_lines_inputs_on_s3_read_as_local_ones(endpoint, tmp_path):
    """Plain, gzip and zstd JSON Lines through Beam's S3 file system: planning scan, chunks, checksums."""
    _corpus(tmp_path)
    bucket = s3.Bucket(endpoint)
    for parquet, (name, compression) in JSONL_NAMES.items():
        _write_jsonl(str(tmp_path / "in" / name), pq.read_table(tmp_path / "in" / parquet).to_pylist(), compression)
        os.remove(tmp_path / "in" / parquet)
        bucket.upload(tmp_path / "in" / name, f"jsonl/{name}")
    local_config = yaml.safe_load(open(jsonl_config(tmp_path)).read())
    for corpus_cfg in local_config["corpora"]:
        corpus_cfg["paths"] = [bucket.url(f"jsonl/{p}") for p in corpus_cfg["paths"]]
    config = write_config(tmp_path / "s3.yaml", local_config)
    runs = {}
    for where, path in (("local", tmp_path / "in" / "config.yaml"), ("s3", config)):
        done = _cli(endpoint, "run", path, "--output", tmp_path / f"out-{where}", "--run-id", "same")
        assert done.returncode == 0, done.stderr
        runs[where] = json.loads((tmp_path / f"out-{where}" / "manifest.json").read_text())
    assert runs["s3"]["counts"] == runs["local"]["counts"] and runs["s3"]["counts"]["chat"]["read"] == 48
    checksums = {where: sorted((i["sha256"], i["rows"], i["format"]) for i in m["inputs"])
                 for where, m in runs.items()}
    assert checksums["s3"] == checksums["local"]
    assert {i["format"] for i in runs["s3"]["inputs"]} == {"jsonl", "jsonl.gz", "jsonl.zst"}
    data = {where: sorted((r["doc_id"], r["text"], r["source_row"])
                          for r in pq.read_table(tmp_path / f"out-{where}" / "data").to_pylist())
            for where in runs}
    assert data["s3"] == data["local"] and len(data["s3"]) > 30


@pytest.fixture(scope="module")
def first_output(endpoint, corpus):
    """A bucket holding a finished output `out` (run `first`), and its published files."""
    _, config = corpus
    bucket = s3.Bucket(endpoint)
    done = _cli(endpoint, "run", config, "--output", bucket.url("out"), "--run-id", "first")
    assert done.returncode == 0, done.stderr
    return bucket, _published(bucket)


def _copy_output(source, endpoint) -> s3.Bucket:
    bucket = s3.Bucket(endpoint)
    for key in source.keys("out/"):
        bucket.client.copy_object(Bucket=bucket.name, Key=key, CopySource={"Bucket": source.name, "Key": key})
    return bucket


def test_force_swaps_the_commit_and_removes_the_replaced_run(endpoint, corpus, first_output):
    _, config = corpus
    bucket = _copy_output(first_output[0], endpoint)
    out = bucket.url("out")
    refused = _cli(endpoint, "run", config, "--output", out, "--run-id", "second")
    assert refused.returncode == 2 and "holds a finished run (run first)" in refused.stderr, refused.stderr
    skipped = _cli(endpoint, "run", config, "--output", out, "--run-id", "first", "--if-exists", "skip")
    assert skipped.returncode == 0 and "nothing to do" in skipped.stdout, skipped.stderr
    assert _published(bucket) == first_output[1]

    replaced = _cli(endpoint, "run", config, "--output", out, "--run-id", "second", "--force")
    assert replaced.returncode == 0, replaced.stderr
    assert _commit(bucket)["run_id"] == "second"
    assert {a.split(".")[0] for a in _attempts(bucket)} == {"second"}
    # The same config and inputs give the same data under another run id only in the run_id column.
    assert set(_published(bucket)) == set(first_output[1])


def test_the_report_is_published_with_the_run_and_rebuilt_from_the_store(endpoint, first_output, tmp_path):
    bucket, published = first_output
    assert published["report.html"].startswith(b"<!DOCTYPE html>")
    assert b'<section id="funnel">' in published["report.html"]
    copy = tmp_path / "report.html"
    rebuilt = _cli(endpoint, "report", bucket.url("out"), "--output", copy)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert copy.read_bytes() == published["report.html"]
    inside = _cli(endpoint, "report", bucket.url("out"), "--output", bucket.url("out/data/x.html"))
    assert inside.returncode == 2 and "is inside the output folder" in inside.stderr, inside.stderr
    # In place: into the run folder `_SUCCESS` names, which keeps every other file.
    again = _cli(endpoint, "report", bucket.url("out"))
    assert again.returncode == 0 and f"{bucket.url('out')}/runs/first." in again.stdout, again.stderr
    assert _published(bucket) == published


@pytest.mark.parametrize("point", ["written", "publish:staged", "publish:committed"])
def test_kill_at_every_publish_step_never_loses_the_earlier_output(endpoint, corpus, first_output, point):
    _, config = corpus
    bucket = _copy_output(first_output[0], endpoint)
    out = bucket.url("out")
    killed = _cli(endpoint, "run", config, "--output", out, "--run-id", "second", "--force",
                  env={"HYBRIDMIX_CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # Whatever `_SUCCESS` names is complete: the earlier run, or the new one once committed.
    expected = "second" if point == "publish:committed" else "first"
    assert _commit(bucket)["run_id"] == expected
    published = _published(bucket)
    if expected == "first":
        assert published == first_output[1]
    shown = _cli(endpoint, "inspect", out)
    assert shown.returncode == 0 and f"run {expected}" in shown.stdout, shown.stderr
    # The killed run left its attempt folder; the next run to publish removes it.
    assert len(_attempts(bucket)) == 2
    again = _cli(endpoint, "run", config, "--output", out, "--run-id", "third", "--force")
    assert again.returncode == 0, again.stderr
    assert _commit(bucket)["run_id"] == "third"
    assert {a.split(".")[0] for a in _attempts(bucket)} == {"third"}


def test_of_two_runs_into_one_output_only_one_publishes(endpoint, corpus, tmp_path):
    _, config = corpus
    bucket = s3.Bucket(endpoint)
    out = bucket.url("out")
    release = tmp_path / "go"
    # Run a gets as far as its commit and waits there; run b starts later and publishes first.
    held = _cli(endpoint, "run", config, "--output", out, "--run-id", "a", wait=False,
                env={"HYBRIDMIX_HOLD_AT": "publish:staged", "HYBRIDMIX_HOLD_UNTIL": str(release)})
    deadline = time.monotonic() + 300
    while not any(k.endswith("/manifest.json") for k in bucket.keys("out/runs/a.")):
        assert held.poll() is None, held.communicate()[1]
        assert time.monotonic() < deadline, "run a never reached its commit"
        time.sleep(0.2)
    other = _cli(endpoint, "run", config, "--output", out, "--run-id", "b")
    assert other.returncode == 0, other.stderr
    release.touch()
    _, err = held.communicate(timeout=300)
    assert held.returncode == 75, err
    assert "another run (run b) published here while this run was working; this run published nothing" in err
    assert _commit(bucket)["run_id"] == "b"
    assert {a.split(".")[0] for a in _attempts(bucket)} == {"b"}
    assert all(_published(bucket).values())


def test_objects_hybridmix_did_not_write_are_never_touched(endpoint, corpus):
    _, config = corpus
    bucket = s3.Bucket(endpoint)
    bucket.put("out/notes.txt", b"mine")
    refused = _cli(endpoint, "run", config, "--output", bucket.url("out"))
    assert refused.returncode == 2, refused.stderr
    assert "holds objects hybridmix did not write there (notes.txt)" in refused.stderr
    assert bucket.keys() == ["out/notes.txt"] and bucket.get("out/notes.txt") == b"mine"


def test_a_store_without_conditional_writes_needs_no_lock_said_out_loud(corpus, tmp_path):
    _, config = corpus
    env = dict(os.environ, PYTHONPATH=ROOT)
    cli = [sys.executable, "-m", "hybridmix.pipelines.cli", "run", str(config)]
    refused = subprocess.run(cli + ["--output", "gs://bucket/out"], capture_output=True, text=True, env=env)
    assert refused.returncode == 2, refused.stderr
    assert "pass --no-lock if nothing else writes to this output" in refused.stderr
    local = subprocess.run(cli + ["--output", str(tmp_path / "out"), "--no-lock"], capture_output=True, text=True,
                           env=env)
    assert local.returncode == 2 and "a local output is always locked" in local.stderr, local.stderr
    assert not (tmp_path / "out").exists()


def test_an_output_bucket_that_does_not_exist_is_refused_before_the_run(endpoint, corpus):
    _, config = corpus
    out = f"s3://hm-absent-{os.getpid()}/out"
    for command in ("validate", "run"):
        flags = s3.beam_flags(endpoint) if command == "validate" else []
        refused = _cli(endpoint, command, config, "--output", out, *flags)
        assert refused.returncode == 2, refused.stderr
        assert f"bucket 'hm-absent-{os.getpid()}' does not exist" in refused.stderr, refused.stderr
        assert "internal error" not in refused.stderr


def test_a_store_that_does_not_answer_fails_in_seconds_with_exit_75(corpus, tmp_path):
    # Beam's S3 file system retried an endpoint that did not answer for about ten minutes, in silence,
    # then called it a data error (exit 3).
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
    root, _ = corpus
    local_config = yaml.safe_load((root / "in" / "config.yaml").read_text())
    local_config["corpora"][0]["paths"] = ["s3://hm-nowhere/in/human/*.parquet"]
    config = write_config(tmp_path / "remote.yaml", local_config)
    for command in ("validate", "run"):
        started = time.monotonic()
        flags = s3.beam_flags(down) if command == "validate" else []
        failed = _cli(down, command, config, "--output", str(tmp_path / "out"), *flags)
        assert failed.returncode == 75, failed.stderr
        assert f"the object store at {down} does not answer" in failed.stderr, failed.stderr
        assert time.monotonic() - started < 120
    assert not (tmp_path / "out").exists()
