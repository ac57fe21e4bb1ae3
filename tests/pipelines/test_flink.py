"""The same `hybridmix run` on a real Apache Flink cluster and on the local runner gives the same output.

Runs only when HYBRIDMIX_FLINK_JOB_ENDPOINT names a Beam Flink job server (e.g. localhost:8099);
.ci/flink/setup.sh starts one, with a Flink 1.19 standalone cluster whose REST API is at
HYBRIDMIX_FLINK_REST (default http://localhost:8081). When the variable is set, an unreachable
job server or REST API fails the test instead of skipping it.
"""

import glob
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests import s3
from tests.builders import other_lines, progress_lines, write_config
from tests.pipelines.test_cli import ROOT, _config, _corpus
from tests.pipelines.test_incremental import write_days

JOB_ENDPOINT = os.environ.get("HYBRIDMIX_FLINK_JOB_ENDPOINT", "").strip()
FLINK_REST = os.environ.get("HYBRIDMIX_FLINK_REST", "http://localhost:8081").strip().rstrip("/")

# `make test` runs test files on parallel workers, each file's tests on one worker (--dist
# loadfile): the Flink tests run one after another, as the one cluster (two task slots) and the
# check that no job of a test failed need.
pytestmark = pytest.mark.skipif(
    not JOB_ENDPOINT,
    reason="set HYBRIDMIX_FLINK_JOB_ENDPOINT (e.g. localhost:8099) to run on Flink; see .ci/flink/setup.sh")

FLINK_FLAGS = ["--runner=PortableRunner", f"--job_endpoint={JOB_ENDPOINT}", "--environment_type=LOOPBACK"]
RUN_TIMEOUT_S = 900
# Manifest keys that legitimately differ between two runs of the same thing.
VOLATILE_KEYS = {"started_at", "finished_at"}


def _reachable(endpoint: str, timeout: float = 5.0) -> str | None:
    """None when a TCP connection to host:port succeeds, else why not."""
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=timeout):
            return None
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _flink_jobs() -> dict[str, dict]:
    try:
        with urllib.request.urlopen(f"{FLINK_REST}/jobs/overview", timeout=10) as resp:
            return {job["jid"]: job for job in json.load(resp)["jobs"]}
    except OSError as exc:
        pytest.fail(f"Flink REST API {FLINK_REST}/jobs/overview is unreachable: {exc}")


def _run(*args: str, cwd) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "hybridmix.pipelines.cli", *args], capture_output=True, text=True,
                            cwd=cwd, env=env, timeout=RUN_TIMEOUT_S)
    return result, time.monotonic() - started


def _files(out, folder: str) -> list[str]:
    return sorted(os.path.basename(f) for f in glob.glob(str(out / folder / "*.parquet")))


def _table(out, folder: str) -> pa.Table:
    files = sorted(glob.glob(str(out / folder / "*.parquet")))
    if not files:
        return pa.table({})
    return pa.concat_tables([pq.read_table(f) for f in files])


def _sorted_rows(table: pa.Table, folder: str) -> list[dict]:
    """data/ by id; the side outputs by their whole row (their schemas are not this test's business)."""
    rows = table.to_pylist()
    if folder == "data":
        return sorted(rows, key=lambda r: r["id"])
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def _normalized_manifest(out) -> dict:
    """manifest.json without timestamps, with the run's own output folder (path or name) replaced by OUT."""
    out_dir = str(out)

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in VOLATILE_KEYS}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str):
            return value.replace(out_dir, "OUT").replace(out.name, "OUT")
        return value

    return clean(json.loads((out / "manifest.json").read_text()))


def _first_difference(a, b, path="manifest"):
    if type(a) is not type(b):
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{path}.{key}: only in the {'local' if key in a else 'Flink'} run"
            diff = _first_difference(a[key], b[key], f"{path}.{key}")
            if diff:
                return diff
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items locally, {len(b)} on Flink"
        for i, (x, y) in enumerate(zip(a, b)):
            diff = _first_difference(x, y, f"{path}[{i}]")
            if diff:
                return diff
        return None
    return None if a == b else f"{path}: {a!r} locally, {b!r} on Flink"


def _summary(stdout: str) -> list[str]:
    """The printed run summary without the lines that name the output folder or the wall time."""
    return [line for line in stdout.splitlines() if not line.startswith(("wrote ", "report: "))]


def _unreachable() -> str | None:
    """Why the job server or the Flink REST API cannot be reached, or None."""
    problem = _reachable(JOB_ENDPOINT)
    if problem:
        return (f"HYBRIDMIX_FLINK_JOB_ENDPOINT={JOB_ENDPOINT} is set but unreachable ({problem}); "
                "start it with .ci/flink/setup.sh or unset the variable")
    problem = _reachable(urllib.parse.urlsplit(FLINK_REST).netloc)
    if problem:
        return f"the Flink REST API {FLINK_REST} (HYBRIDMIX_FLINK_REST) is unreachable ({problem})"
    return None


def _require_job_server() -> None:
    problem = _unreachable()
    if problem:
        pytest.fail(problem)


def test_flink_run_matches_local_run(tmp_path):
    _require_job_server()
    jobs_before = _flink_jobs()

    _corpus(tmp_path)
    config = _config(tmp_path)
    local_out, flink_out = tmp_path / "out-local", tmp_path / "out-flink"

    local, local_s = _run("run", config, "--output", str(local_out), cwd=tmp_path)
    assert local.returncode == 0, f"local run failed:\n{local.stderr}"
    submitted_ms = time.time() * 1000
    flink, flink_s = _run("--verbose", "run", config, "--output", str(flink_out), *FLINK_FLAGS, cwd=tmp_path)
    assert flink.returncode == 0, f"Flink run failed:\n{flink.stderr[-20000:]}"
    print(f"\nwall time: local run {local_s:.1f} s, Flink run {flink_s:.1f} s")

    # A job really ran on the cluster, and finished.
    new_jobs = {jid: job for jid, job in _flink_jobs().items() if jid not in jobs_before}
    assert new_jobs, f"no new job on the Flink cluster at {FLINK_REST} (jobs before: {sorted(jobs_before)})"
    states = {job["name"]: job["state"] for job in new_jobs.values()}
    assert "FINISHED" in states.values(), f"no new Flink job FINISHED: {states}"
    assert not {"FAILED", "CANCELED"} & set(states.values()), f"a Flink job did not finish: {states}"
    finished = [job for job in new_jobs.values() if job["state"] == "FINISHED"]
    assert any(job["start-time"] >= submitted_ms - 60_000 for job in finished), new_jobs
    print("Flink job(s): " + ", ".join(f"{j['name']} {j['state']} {j['duration'] / 1000:.1f} s, "
                                       f"{j['tasks']['total']} tasks" for j in finished))

    for out in (local_out, flink_out):
        assert (out / "_SUCCESS").exists(), out
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".inprogress")]

    # Same files, same rows: data/, the three side outputs and the ledger.
    for folder in ("data", "rejects", "filtered", "duplicates", "ledger"):
        assert _files(local_out, folder) == _files(flink_out, folder), folder
        expected, got = _table(local_out, folder), _table(flink_out, folder)
        assert got.schema.equals(expected.schema), f"{folder}/: schema differs:\n{expected.schema}\n{got.schema}"
        assert got.num_rows == expected.num_rows, f"{folder}/: {expected.num_rows} rows locally, {got.num_rows} on Flink"
        want_rows, got_rows = _sorted_rows(expected, folder), _sorted_rows(got, folder)
        if folder == "data":
            assert [r["id"] for r in got_rows] == [r["id"] for r in want_rows], "selected ids differ"
        for want, have in zip(want_rows, got_rows):
            assert have == want, f"{folder}/: a row differs:\nlocal: {want}\nFlink: {have}"
    assert _table(local_out, "data").num_rows > 0

    # Same data files, byte for byte (the same rows in the same shards and order, same Parquet layout).
    for name in _files(local_out, "data"):
        assert (flink_out / "data" / name).read_bytes() == (local_out / "data" / name).read_bytes(), name

    # Same manifest figures (counts, totals, mixture, dedup, filters, outputs, ids); timestamps ignored.
    expected, got = _normalized_manifest(local_out), _normalized_manifest(flink_out)
    for section in ("counts", "totals", "mixture", "dedup"):
        assert section in expected, f"manifest has no {section!r}"
    assert got == expected, _first_difference(expected, got)
    assert _summary(flink.stdout) == _summary(local.stdout)

    # The LOOPBACK worker runs in the hybridmix process, so progress counts the same rows as locally.
    # A stage that runs past 30 s also prints an interim "... so far" line (a loaded CI machine's
    # Flink read did): only the lines of finished stages are compared.
    def stage_lines(stderr):
        texts = [line.split("] ", 1)[1] for line in progress_lines(stderr)]
        return [text.split(" in ")[0] for text in texts
                if not text.startswith("prepare:") and not text.endswith(" so far")]

    assert stage_lines(flink.stderr) == stage_lines(local.stderr), flink.stderr[-5000:]


def test_flink_incremental_run_matches_local_run(tmp_path):
    """dedup.against on Flink: the earlier output's index/ is read and matched in Beam stages."""
    _require_job_server()
    (day1, day2), _ = write_days(tmp_path)
    first, _ = _run("run", day1, "--output", str(tmp_path / "out1"), "-q", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    local_out, flink_out = tmp_path / "out2-local", tmp_path / "out2-flink"
    local, _ = _run("run", day2, "--output", str(local_out), "-q", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    flink, flink_s = _run("run", day2, "--output", str(flink_out), "-q", *FLINK_FLAGS, cwd=tmp_path)
    assert flink.returncode == 0, f"Flink run failed:\n{flink.stderr[-20000:]}"
    print(f"\nincremental run on Flink: {flink_s:.1f} s")
    kinds = _table(flink_out, "duplicates").column("kind").to_pylist()
    assert {"exact_prior", "near_prior"} <= set(kinds), kinds
    for folder in ("data", "duplicates", "ledger", "index"):
        assert _files(local_out, folder) == _files(flink_out, folder), folder
        want, got = _sorted_rows(_table(local_out, folder), folder), _sorted_rows(_table(flink_out, folder), folder)
        assert got == want, f"{folder}/ differs between the local and the Flink run"
    assert _normalized_manifest(flink_out) == _normalized_manifest(local_out)


@pytest.fixture(scope="module")
def guard_failure(tmp_path_factory):
    """A run on Flink that a collapse guard stops inside the pipeline (in Mix/PlanQuotas, on a worker)."""
    if _unreachable():
        return None  # the tests fail on it
    tmp_path = tmp_path_factory.mktemp("flink-guard")
    _corpus(tmp_path)
    config = _config(tmp_path, guards={"max_generation": 0})
    local, _ = _run("run", config, "--output", str(tmp_path / "out-local"), cwd=tmp_path)
    jobs_before = _flink_jobs()
    result, _ = _run("run", config, "--output", str(tmp_path / "out"), *FLINK_FLAGS, cwd=tmp_path)
    new_jobs = {jid: job for jid, job in _flink_jobs().items() if jid not in jobs_before}
    return tmp_path, local, result, new_jobs


def test_flink_failure_keeps_exit_code_and_message(guard_failure):
    _require_job_server()
    tmp_path, local, result, new_jobs = guard_failure
    assert local.returncode == 4 and len(other_lines(local.stderr)) == 1, local.stderr
    assert result.returncode == 4, result.stderr[-20000:]
    lines = other_lines(result.stderr)
    assert lines[-1] == other_lines(local.stderr)[0], result.stderr[-20000:]
    assert lines[-1].startswith("hybridmix: error: guards.max_generation: ")
    assert "FAILED" in {job["state"] for job in new_jobs.values()}, f"no new FAILED job on Flink: {new_jobs}"
    assert not (tmp_path / "out").exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".inprogress")]


def test_flink_failure_is_one_line_on_stderr(guard_failure):
    _require_job_server()
    _, _, result, _ = guard_failure
    lines = other_lines(result.stderr)  # after the progress lines of the stages that finished
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-5000:]


@pytest.fixture(scope="module")
def s3_endpoint():
    with s3.s3_server() as url:
        yield url


def test_flink_run_reads_and_publishes_on_s3(tmp_path, s3_endpoint):
    """Inputs and output on the local S3 server: the Flink run publishes the bytes of a local run."""
    _require_job_server()
    bucket = s3.Bucket(s3_endpoint)
    _corpus(tmp_path)
    for path in sorted((tmp_path / "in").rglob("*.parquet")):
        bucket.upload(path, f"in/{path.relative_to(tmp_path / 'in')}")
    config = yaml.safe_load(open(_config(tmp_path)).read())
    for corpus in config["corpora"]:
        corpus["paths"] = [bucket.url(f"in/{p}") for p in corpus["paths"]]
    config_path = write_config(tmp_path / "s3.yaml", config)
    env_flags = ["--run-id", "same", *s3.beam_flags(s3_endpoint)]

    local, _ = _run("run", config_path, "--output", str(tmp_path / "local"), *env_flags, cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    flink, flink_s = _run("run", config_path, "--output", bucket.url("out"), *env_flags, *FLINK_FLAGS, cwd=tmp_path)
    assert flink.returncode == 0, f"Flink run failed:\n{flink.stderr[-20000:]}"
    print(f"\nFlink run with S3 input and output: {flink_s:.1f} s")

    commit = json.loads(bucket.get("out/_SUCCESS"))
    published = {f[len(commit["path"]) + 1:]: bucket.get(f"out/{f}") for f in commit["files"]}
    local_files = {str(p.relative_to(tmp_path / "local")): p.read_bytes()
                   for p in (tmp_path / "local").rglob("*") if p.is_file()}
    assert set(published) == set(local_files) - {"_SUCCESS"}
    assert any(p.startswith("data/") for p in published)
    for path, data in published.items():
        if path != "manifest.json":
            assert data == local_files[path], path
    got = json.loads(published["manifest.json"])
    want = json.loads(local_files["manifest.json"])
    for section in ("counts", "totals", "mixture", "dedup", "inputs"):
        assert got[section] == want[section], section
