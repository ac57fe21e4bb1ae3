"""End to end: the `hybridmix` entry point on tiny real Parquet files, outputs read back with pyarrow."""

import glob
import json
import os
import socket
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from hybridmix.pipelines.cli import _as_hybridmix_error, main
from hybridmix.schemas.errors import OutputError
from hybridmix.schemas.records import (
    DOCUMENT_SCHEMA,
    DUPLICATE_SCHEMA,
    FILTERED_SCHEMA,
    REJECTION_SCHEMA,
)
from tests.builders import near_copy, other_lines, progress_lines, words, write_config, write_parquet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _corpus(tmp_path):
    human = [{"id": f"h{i:02d}", "text": words(100 + i, 60 + i * 3), "lic": "CC-BY-SA"} for i in range(30)]
    human[1]["text"] = words(500, 200)
    synth = [{"id": f"s{i:02d}", "text": words(1000 + i, 50 + i * 4), "model": f"m{i % 3}"} for i in range(40)]
    synth += [
        {"id": "s_exact_h00", "text": human[0]["text"].upper(), "model": "m0"},
        {"id": "s_near_h01", "text": near_copy(human[1]["text"]), "model": "m1"},
        {"id": "s_refusal", "text": "As an AI language model, I cannot help with that request.", "model": "m2"},
        {"id": "s_short", "text": "ok", "model": "m2"},
        {"id": "s_null", "text": None, "model": "m2"},
        {"id": "s_empty", "text": "", "model": "m2"},
        {"id": "s_dup_a", "text": words(7777, 80), "model": "m0"},
        {"id": "s_dup_b", "text": words(7777, 80), "model": "m1"},
    ]
    write_parquet(tmp_path / "in" / "human" / "part-0.parquet", human[:15])
    write_parquet(tmp_path / "in" / "human" / "part-1.parquet", human[15:])
    write_parquet(tmp_path / "in" / "synth" / "answers.parquet", synth, row_group_size=16)
    return human, synth


def _config(tmp_path, output=None, **mixture):
    mix = {"targets": {"human": 0.6, "synthetic": 0.4}, "validation_fraction": 0.2}
    mix.update(mixture)
    return write_config(tmp_path / "in" / "config.yaml", {
        "seed": 3,
        "corpora": [
            {"name": "wiki", "origin": "human", "paths": ["human/*.parquet"], "id_column": "id",
             "columns": {"license": "lic"}},
            {"name": "chat", "origin": "synthetic", "paths": ["synth/*.parquet"], "id_column": "id",
             "columns": {"generator": "model"}, "defaults": {"license": "CC-BY-NC-4.0"}},
        ],
        "mixture": mix,
        "output": output or {"rows_per_shard": 20},
        "partitions": 4,
    })


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("e2e")
    human, synth = _corpus(tmp_path)
    config = _config(tmp_path)
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 0
    return tmp_path, out, human, synth


def _read(out, folder, schema):
    files = sorted(glob.glob(str(out / folder / "*.parquet")))
    if not files:
        return schema.empty_table()
    return pa.concat_tables([pq.read_table(f) for f in files])


def test_output_has_the_record_schema_and_success_marker(finished_run):
    _, out, _, _ = finished_run
    assert (out / "_SUCCESS").exists()
    for f in glob.glob(str(out / "data" / "*.parquet")):
        assert pq.read_schema(f).equals(DOCUMENT_SCHEMA)
        assert pq.ParquetFile(f).metadata.row_group(0).column(0).compression == "ZSTD"
    assert not [p for p in os.listdir(out.parent) if p.endswith(".inprogress")]
    # The shuffles that went through files (band keys, output rows) leave none behind.
    assert not [os.path.join(d, n) for d, dirs, files in os.walk(out) for n in dirs + files if "spill" in n]


def test_every_input_row_is_accounted_for(finished_run):
    _, out, human, synth = finished_run
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["wiki"]["read"] == len(human)
    assert counts["chat"]["read"] == len(synth)
    for source, c in counts.items():
        assert c["read"] == (c["rejected"] + c["filtered"] + c["exact_duplicates"] + c["near_duplicates"]
                             + c["not_selected"] + c["selected"]), source
    totals = manifest["totals"]
    assert _read(out, "rejects", REJECTION_SCHEMA).num_rows == totals["rejected"] == 2
    assert _read(out, "filtered", FILTERED_SCHEMA).num_rows == totals["filtered"] == 2
    dups = _read(out, "duplicates", DUPLICATE_SCHEMA)
    assert dups.num_rows == totals["exact_duplicates"] + totals["near_duplicates"]
    data = _read(out, "data", DOCUMENT_SCHEMA)
    assert data.num_rows == totals["written"] == sum(o["rows"] for o in manifest["outputs"]["data"])
    assert len(set(data.column("id").to_pylist())) == data.num_rows


def test_duplicates_across_origins_keep_the_human_copy(finished_run):
    _, out, _, _ = finished_run
    dups = {r["doc_id"]: r for r in _read(out, "duplicates", DUPLICATE_SCHEMA).to_pylist()}
    assert dups["s_exact_h00"]["kept_doc_id"] == "h00" and dups["s_exact_h00"]["kind"] == "exact"
    assert dups["s_near_h01"]["kept_doc_id"] == "h01" and dups["s_near_h01"]["kind"] == "near"
    assert dups["s_near_h01"]["kept_origin"] == "human" and dups["s_near_h01"]["origin"] == "synthetic"
    assert dups["s_dup_b"]["kept_doc_id"] == "s_dup_a"
    assert dups["s_near_h01"]["generator"] == "m1" and dups["s_near_h01"]["kept_generator"] is None
    cross = json.loads((out / "manifest.json").read_text())["dedup"]["cross_origin"]
    assert cross == {"clusters": 2, "synthetic_documents": 2, "by_source": {"chat": 2},
                     "by_generator": {"chat": {"m0": 1, "m1": 1}}}
    rejects = {r["doc_id"]: r["reason"] for r in _read(out, "rejects", REJECTION_SCHEMA).to_pylist()}
    assert rejects == {"s_null": "ingest_null_text", "s_empty": "ingest_empty_text"}
    filtered = {r["doc_id"]: r["reason"] for r in _read(out, "filtered", FILTERED_SCHEMA).to_pylist()}
    assert filtered == {"s_refusal": "quality_refusal", "s_short": "quality_word_count"}


def test_achieved_fractions_within_one_document_of_target(finished_run):
    _, out, _, _ = finished_run
    data = _read(out, "data", DOCUMENT_SCHEMA).to_pylist()
    total = sum(r["tokens"] for r in data)
    for origin, target in (("human", 0.6), ("synthetic", 0.4)):
        rows = [r for r in data if r["origin"] == origin]
        got = sum(r["tokens"] for r in rows)
        assert abs(got - target * total) <= max(r["tokens"] for r in rows), origin
    manifest = json.loads((out / "manifest.json").read_text())
    for origin, target in (("human", 0.6), ("synthetic", 0.4)):
        assert manifest["mixture"]["achieved"][origin] == pytest.approx(target, abs=0.02)


def test_provenance_points_at_the_exact_input_row(finished_run):
    tmp_path, out, _, _ = finished_run
    data = _read(out, "data", DOCUMENT_SCHEMA).to_pylist()
    manifest = json.loads((out / "manifest.json").read_text())
    for row in data[:25]:
        source = pq.read_table(tmp_path / "in" / row["source_file"]).to_pylist()[row["source_row"]]
        assert source["text"] == row["text"]
        assert source["id"] == row["doc_id"]
        assert row["run_id"] == manifest["run_id"] and row["config_digest"] == manifest["config_digest"]
        if row["origin"] == "human":
            assert (row["generation"], row["generator"], row["license"]) == (0, None, "CC-BY-SA")
        else:
            assert row["generation"] == 1 and row["generator"] == source["model"]
            assert row["license"] == "CC-BY-NC-4.0"
    assert {r["split"] for r in data} == {"train", "validation"}


def test_same_inputs_config_and_seed_give_byte_identical_data(finished_run, tmp_path):
    src, out, _, _ = finished_run
    again = tmp_path / "again"
    assert main(["run", str(src / "in" / "config.yaml"), "--output", str(again)]) == 0
    first = sorted(os.listdir(out / "data"))
    assert first == sorted(os.listdir(again / "data"))
    for name in first:
        assert (out / "data" / name).read_bytes() == (again / "data" / name).read_bytes()


def test_inspect_and_validate(finished_run, capsys):
    tmp_path, out, _, _ = finished_run
    assert main(["inspect", str(out), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["run_id"].startswith("hm-")
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mixture by tokens" in text and "schema of data/" in text and "wiki" in text
    # Per source: target against achieved, and each filter's drops (the corpus has a refusal and "ok").
    by_source = text.split("mixture by source (tokens)\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert by_source[0].split() == ["source", "target", "achieved", "available", "selected", "documents", "repeats",
                                    "selection"]
    assert [line.split()[:2] for line in by_source[2:]] == [["wiki", "60.00%"], ["chat", "40.00%"]]
    filters = text.split("quality filters, documents per source", 1)[1].split("\n\n", 1)[0].splitlines()
    refusal = [line.split() for line in filters if line.startswith("refusal_v8")]
    assert refusal == [["refusal_v8", "dropped", "0", "1", "1"]]
    assert main(["validate", str(tmp_path / "in" / "config.yaml")]) == 0
    text = capsys.readouterr().out
    assert "wiki (human): 2 file(s), 30 rows" in text
    assert "no output folder: output.path is not set, so run needs --output DIR" in text
    # With run's flags, validate answers as run would: a finished output is refused without --force, and
    # --if-exists skip finds this same run done.
    config = str(tmp_path / "in" / "config.yaml")
    assert main(["validate", config, "--output", str(out)]) == 2
    assert f"{out} holds a finished run (run {manifest['run_id']}); pass --force to replace it" in \
        capsys.readouterr().err
    assert main(["validate", config, "--output", str(out), "--force"]) == 0
    assert f"output {out}: holds a finished run, which run --force replaces" in capsys.readouterr().out
    assert main(["validate", config, "--output", str(out), "--if-exists", "skip"]) == 0
    assert f"output {out}: holds this same run ({manifest['run_id']})" in capsys.readouterr().out
    assert main(["validate", config, "--output", str(out), "--if-exists", "skip", "--seed", "9"]) == 2
    assert "instead of --if-exists skip" in capsys.readouterr().err
    assert main(["validate", config, "--output", str(out), "--force", "--if-exists", "fail"]) == 2
    assert main(["validate", config, "--output", str(out), "--force", "--against", str(out)]) == 2
    assert "is this run's own output" in capsys.readouterr().err


def test_finished_output_is_not_overwritten_without_force(finished_run, capsys):
    tmp_path, out, _, _ = finished_run
    config = str(tmp_path / "in" / "config.yaml")
    assert main(["run", config, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a finished run" in err and "pass --force to replace it" in err


def test_a_filter_share_given_as_a_percentage_stops_validate_and_run(tmp_path, capsys):
    # 60 for 0.6 passed validate, then dropped every human document: exit 5, naming neither filter nor parameter.
    _corpus(tmp_path)
    config = _config(tmp_path)
    data = yaml.safe_load(open(config))
    data["quality"] = {"filters": [{"name": "alpha_words", "params": {"min_share": 60}, "origins": ["human"]}]}
    write_config(config, data)
    out = tmp_path / "out"
    for command in ("validate", "run"):
        assert main([command, config, "--output", str(out)]) == 2, command
        err = capsys.readouterr().err
        assert "quality.filters[0].params.min_share: alpha_words needs 0 <= min_share <= 1 (got 60)" in err
        assert not out.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_validate_takes_beam_options_and_asks_the_job_server(tmp_path):
    _corpus(tmp_path)
    config = _config(tmp_path)
    out = str(tmp_path / "out")
    assert _cli("validate", config, "--output", out, "--s3_region_name=eu-west-1").returncode == 0
    down = _cli("validate", config, "--output", out, "--runner=PortableRunner",
                f"--job_endpoint=localhost:{_free_port()}")
    assert down.returncode == 75 and "no Beam job server answers there" in down.stderr, down.stderr
    assert _cli("validate", config, "--output", out, "--runer=x").returncode == 2
    misspelt = _cli("validate", config, "--output", out, "--runner=FlinkRuner")
    assert misspelt.returncode == 2 and "--runner=FlinkRuner: Unexpected pipeline runner" in misspelt.stderr


def _cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "hybridmix.pipelines.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.mark.parametrize(
    "case, code, message",
    [
        ("bad-config", 2, "mixture.targets: fractions must sum to 1"),
        ("missing-files", 3, "no file matches 'nothing/*.parquet'"),
        ("guard", 4, "guards.max_generation: source 'chat' holds generation-1"),
        # Infeasible once filters and dedup have run, and infeasible whatever they keep (found before the run).
        ("infeasible", 5, "source 'chat' (synthetic) has 5,241 tokens after filters and dedup; the mixture needs 8,000"),
        # The default estimate's most: 3.77 tokens per byte of text (43,174 bytes), and a token per row (rounding).
        ("impossible", 5, "source 'chat' (synthetic) has 162,814 tokens at most, counting 3.77 per byte of text; "
                          "the mixture needs 4,000,000 (40.00% of 10,000,000)"),
        ("unknown-flag", 2, "unknown option(s): --runer"),
        ("unknown-runner", 2, "--runner=FlinkRuner: Unexpected pipeline runner: FlinkRuner. Valid values are"),
        ("output-inside-input", 2, "is inside input folder"),
        ("no-job-server", 75, "no Beam job server answers there"),
    ],
    ids=["bad-config", "missing-files", "guard", "infeasible", "impossible", "unknown-flag", "unknown-runner",
         "output-inside-input", "no-job-server"],
)
def test_errors_exit_with_documented_code_and_one_line(tmp_path, case, code, message):
    _corpus(tmp_path)
    extra = []
    if case == "bad-config":
        config = _config(tmp_path, targets={"human": 0.6, "synthetic": 0.3})
    elif case == "missing-files":
        config = _config(tmp_path)
        text = open(config).read().replace("human/*.parquet", "nothing/*.parquet")
        open(config, "w").write(text)
    elif case == "guard":
        config = _config(tmp_path, guards={"max_generation": 0})
    elif case == "infeasible":
        config = _config(tmp_path, total_tokens=20_000)
    elif case == "impossible":
        config = _config(tmp_path, total_tokens=10_000_000)
    elif case == "unknown-flag":
        config = _config(tmp_path)
        extra = ["--runer=FlinkRunner"]
    elif case == "unknown-runner":
        config = _config(tmp_path)
        extra = ["--runner=FlinkRuner"]
    elif case == "no-job-server":
        config = _config(tmp_path)
        extra = ["--runner=PortableRunner", f"--job_endpoint=localhost:{_free_port()}", "--environment_type=LOOPBACK"]
    else:
        config = _config(tmp_path)
    out = tmp_path / "in" / "human" / "out" if case == "output-inside-input" else tmp_path / "out"
    result = _cli("run", config, "--output", str(out), *extra)
    assert result.returncode == code, result.stderr
    # Progress lines of the stages that finished may come first; the error is one line, the last.
    lines = other_lines(result.stderr)
    assert len(lines) == 1 and result.stderr.strip().splitlines()[-1] == lines[0], result.stderr
    assert lines[0].startswith("hybridmix: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert not [p for p in os.listdir(out.parent) if p.endswith(".inprogress")]


def _network_namespace_available():
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not _network_namespace_available(), reason="needs unshare -rn (user + network namespaces)")
def test_local_run_needs_no_network(tmp_path):
    """The default runner must not even try to download anything: run with no network at all."""
    _corpus(tmp_path)
    config = _config(tmp_path)
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(
        ["unshare", "-rn", sys.executable, "-m", "hybridmix.pipelines.cli", "run", config, "--output", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "_SUCCESS").exists()


def test_other_seed_other_selection_same_sizes(finished_run, tmp_path):
    src, out, _, _ = finished_run
    other = tmp_path / "seed4"
    assert main(["run", str(src / "in" / "config.yaml"), "--output", str(other), "--seed", "4"]) == 0
    first = json.loads((out / "manifest.json").read_text())
    second = json.loads((other / "manifest.json").read_text())
    ids = lambda o: set(_read(o, "data", DOCUMENT_SCHEMA).column("doc_id").to_pylist())  # noqa: E731
    assert ids(out) != ids(other)
    assert second["seed"] == 4 and second["run_id"] != first["run_id"]
    for origin in ("human", "synthetic"):
        assert second["mixture"]["achieved"][origin] == pytest.approx(first["mixture"]["achieved"][origin], abs=0.03)


def test_upsampling_splits_and_shard_layout(tmp_path):
    _corpus(tmp_path)
    config = _config(tmp_path, output={"bytes_per_shard": 20_000, "row_group_rows": 7},
                     targets={"human": 0.8, "synthetic": 0.2}, total_tokens=11_000, max_repeats=3,
                     validation_fraction=0.3)
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 0
    data = _read(out, "data", DOCUMENT_SCHEMA).to_pylist()
    human = [r for r in data if r["origin"] == "human"]
    assert {r["repeat"] for r in human} >= {0, 1, 2}
    for r in data:
        assert r["id"] == (r["doc_id"] if r["repeat"] == 0 else f"{r['doc_id']}#r{r['repeat']}")
    assert len({r["id"] for r in data}) == len(data)
    split_of = {}
    for r in data:
        assert split_of.setdefault(r["doc_id"], r["split"]) == r["split"], "a document is in both splits"
    train_bytes = sum(len(r["text"].encode()) for r in data if r["split"] == "train")
    files = sorted(os.listdir(out / "data"))
    train = [f for f in files if f.startswith("train-")]
    assert len(train) == -(-train_bytes // 20_000)
    assert all(f.endswith(f"-of-{len(train):05d}.parquet") for f in train)
    meta = pq.ParquetFile(out / "data" / train[0]).metadata
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == 7
    manifest = json.loads((out / "manifest.json").read_text())
    wiki = manifest["mixture"]["sources"]["wiki"]
    assert wiki["repeats"] > 2 and wiki["target_units"] == pytest.approx(8_800)
    assert abs(wiki["selected_units"] - 8_800) <= max(r["tokens"] for r in human)


def test_a_validation_split_that_drew_no_document_is_said_in_the_summary(tmp_path, capsys):
    """Each document goes to validation with the fraction's chance: 0.001 of 70 documents drew none,
    and the run wrote no validation file without a word."""
    _corpus(tmp_path)
    out = tmp_path / "out"
    assert main(["run", _config(tmp_path, validation_fraction=0.001), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert not glob.glob(str(out / "data" / "validation-*"))
    assert "note: no document went to the validation split (validation_fraction 0.001 of " in printed
    assert main(["run", _config(tmp_path), "--output", str(tmp_path / "other")]) == 0
    assert "no document went to the validation split" not in capsys.readouterr().out


def test_log_file_after_the_command(finished_run, tmp_path):
    src, _, _, _ = finished_run
    log_file = tmp_path / "run.log"
    result = _cli("run", str(src / "in" / "config.yaml"), "--output", str(tmp_path / "o"), "--log-file",
                  str(log_file), "--total-nonsense")
    assert result.returncode == 2 and "unknown option(s): --total-nonsense" in result.stderr
    assert "Traceback" in log_file.read_text()
    result = _cli("run", str(src / "in" / "config.yaml"), "--output", str(tmp_path / "o"), "--log-file", str(log_file))
    assert result.returncode == 0, result.stderr
    assert "hybridmix: run hm-" in log_file.read_text()


def test_two_local_worker_processes_give_the_same_output(finished_run, tmp_path):
    """The parallel local mode we offer (multi_processing) loses nothing: same rows, same files."""
    src, out, _, _ = finished_run
    parallel = tmp_path / "parallel"
    result = _cli("run", str(src / "in" / "config.yaml"), "--output", str(parallel),
                  "--direct_num_workers=2", "--direct_running_mode=multi_processing")
    assert result.returncode == 0, result.stderr
    # The workers count in their own processes: the progress display says so instead of showing zeros.
    shown = [line.split("] ", 1)[1] for line in progress_lines(result.stderr)]
    assert shown[1].startswith("running on FnApiRunner: its workers are other processes"), shown
    assert shown[2].startswith("FnApiRunner finished the job in "), shown
    first = json.loads((out / "manifest.json").read_text())
    second = json.loads((parallel / "manifest.json").read_text())
    assert second["counts"] == first["counts"] and second["totals"]["written"] == first["totals"]["written"]
    for folder in ("data", "rejects", "filtered", "duplicates"):
        names = sorted(os.listdir(out / folder)) if (out / folder).exists() else []
        assert names == (sorted(os.listdir(parallel / folder)) if (parallel / folder).exists() else [])
        for name in names:
            assert (out / folder / name).read_bytes() == (parallel / folder / name).read_bytes(), name


def test_threaded_local_mode_is_refused(finished_run, tmp_path):
    src, _, _, _ = finished_run
    result = _cli("run", str(src / "in" / "config.yaml"), "--output", str(tmp_path / "t"),
                  "--direct_running_mode=multi_threading")
    assert result.returncode == 2
    assert "multi_threading is not supported" in result.stderr


def test_a_full_disk_is_named_as_such_not_as_an_internal_error():
    # What the in-process runner raised when a run filled this machine's disk, word for word.
    beam_text = ("OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device "
                 "[while running 'WriteData/MergeShard/ParDo(_MergeShardFn)']")
    error = _as_hybridmix_error(RuntimeError(beam_text))
    assert isinstance(error, OutputError) and error.exit_code == 2
    assert error.message.startswith("no space left on device in step WriteData/MergeShard/ParDo(_MergeShardFn): ")
    # The OSError itself, from a real full device, wrapped as Beam wraps a worker's exception.
    with pytest.raises(OSError) as full:
        with open("/dev/full", "wb", buffering=0) as fh:
            fh.write(b"x")
    wrapped = RuntimeError("a step failed")
    wrapped.__cause__ = full.value
    assert isinstance(_as_hybridmix_error(wrapped), OutputError)
    assert _as_hybridmix_error(RuntimeError("OSError: [Errno 5] Input/output error")) is None


def test_inspect_names_a_path_that_is_no_output_folder(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    assert f"{tmp_path / 'nope'} does not exist; give the folder a hybridmix run wrote" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "config.yaml")]) == 2
    assert f"{tmp_path / 'config.yaml'} is a file; give the folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["inspect", str(tmp_path), "--rows", "-1"])


def test_pipeline_options_views_are_made_once_and_share_their_values():
    import pickle

    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions, TypeOptions

    from hybridmix.pipelines.run import DEFAULT_RUNNER, beam_options

    options = beam_options(["--direct_num_workers=2"])
    assert options.view_as(TypeOptions) is options.view_as(TypeOptions)
    assert options.view_as(StandardOptions).runner == DEFAULT_RUNNER
    assert options.view_as(DirectOptions).direct_num_workers == 2
    # A value set through one view shows through the options and every other view of them.
    options.view_as(TypeOptions).pipeline_type_check = False
    assert options.get_all_options()["pipeline_type_check"] is False
    assert options.view_as(TypeOptions).pipeline_type_check is False
    copy = pickle.loads(pickle.dumps(options))
    assert copy.get_all_options()["direct_num_workers"] == 2
    assert copy.view_as(TypeOptions).pipeline_type_check is False


@pytest.mark.parametrize("command", ["run", "validate", "plan", "inspect", "explain", "report", "train-scorer",
                                     "warmup"])
def test_every_command_help_lists_its_exit_codes_and_wraps_its_description(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "\nexit codes" in out and "\n  2    " in out
    description = out.split("\n\n")[1]
    assert max(len(line) for line in description.splitlines()) <= 100, description
