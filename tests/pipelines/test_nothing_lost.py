"""Nothing lost, ever: what a hostile user or a scheduler does to a run, and what must survive it."""

import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tomllib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hybridmix.pipelines.cli import main
from tests.builders import slow_config, words, write_config, write_parquet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _corpus(root, n_human=30, n_synth=30):
    write_parquet(root / "in" / "human.parquet",
                  [{"id": f"h{i:02d}", "text": words(100 + i, 60 + i)} for i in range(n_human)])
    write_parquet(root / "in" / "synth.parquet",
                  [{"id": f"s{i:02d}", "text": words(1000 + i, 50 + i), "model": "m"} for i in range(n_synth)])


def _config(root, **overrides):
    data = {
        "corpora": [
            {"name": "wiki", "origin": "human", "paths": ["human.parquet"], "id_column": "id"},
            {"name": "chat", "origin": "synthetic", "paths": ["synth.parquet"], "id_column": "id",
             "columns": {"generator": "model"}},
        ],
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
        "output": {"rows_per_shard": 10},
        "partitions": 2,
    }
    data.update(overrides)
    return write_config(root / "in" / "config.yaml", data)


def _cli(*args, cwd=None, env=None, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run([sys.executable, "-m", "hybridmix.pipelines.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def _one_error_line(result, code, message):
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0], lines[0]
    return lines[0]


def _complete(out) -> str:
    """The run id of a finished output whose every listed file is there with its rows; fails otherwise."""
    assert (out / "_SUCCESS").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    for files in manifest["outputs"].values():
        for f in files:
            assert pq.ParquetFile(out / f["path"]).metadata.num_rows == f["rows"], f
    assert (out / "_SUCCESS").read_text().strip() == manifest["run_id"]
    return manifest["run_id"]


def _leftovers(out) -> list[str]:
    return sorted(e for e in os.listdir(out.parent) if e.startswith(f".{out.name}.") and not e.endswith(".lock"))


# --- the output folder: never delete what hybridmix did not write -------------------------------


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_a_folder_with_other_files_is_refused_and_left_alone(tmp_path, force):
    _corpus(tmp_path)
    config = _config(tmp_path)
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "notes.txt").write_text("mine")
    (project / "src" / "code.py").write_text("print(1)")
    result = _cli("run", config, "--output", project, *(["--force"] if force else []))
    _one_error_line(result, 2, "is not empty and is not a finished hybridmix output")
    assert (project / "notes.txt").read_text() == "mine" and (project / "src" / "code.py").exists()
    assert sorted(os.listdir(project)) == ["notes.txt", "src"]
    assert _leftovers(project) == []
    assert not (tmp_path / ".project.lock").exists()  # refused before the lock: nothing written beside it


@pytest.mark.parametrize("where", ["data/notes.txt", "ledger/mine/part.parquet", "written over"])
def test_force_keeps_files_put_inside_a_finished_output(tmp_path, where):
    """A finished output's folders may hold files its run did not write, or a file of its own someone
    wrote over (the manifest gives another size): --force replaces nothing then."""
    _corpus(tmp_path)
    config = _config(tmp_path)
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 0
    before = _complete(out)
    if where == "written over":
        where = os.path.relpath(sorted(glob.glob(str(out / "data" / "*.parquet")))[0], out)
    (out / where).parent.mkdir(parents=True, exist_ok=True)
    (out / where).write_text("mine")
    result = _cli("run", config, "--output", out, "--force", "--run-id", "second")
    _one_error_line(result, 2, f"also files its manifest does not list, or lists with another size (written "
                               f"over since; {where.split('/')[0]}/")
    assert (out / where).read_text() == "mine" and _leftovers(out) == []
    assert (out / "_SUCCESS").read_text().strip() == before  # the first run still stands
    os.remove(out / where)
    if os.path.dirname(where) != where.split("/")[0]:
        os.rmdir(out / os.path.dirname(where))
    assert _cli("run", config, "--output", out, "--force", "--run-id", "second").returncode == 0
    assert _complete(out) == "second"


def test_a_file_put_beside_a_finished_outputs_folders_is_named_and_kept(tmp_path):
    _corpus(tmp_path)
    config = _config(tmp_path)
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 0
    before = _complete(out)
    (out / "my_notes.txt").write_text("mine")
    result = _cli("run", config, "--output", out, "--force", "--run-id", "second")
    _one_error_line(result, 2, "is a finished hybridmix output that also holds files it did not write (my_notes.txt)")
    assert (out / "my_notes.txt").read_text() == "mine" and _complete(out) == before


@pytest.mark.parametrize("case", ["into the empty folder", "into data/ of the output it replaces"])
def test_files_put_into_the_output_while_the_run_works_are_kept(tmp_path, case):
    """The output is checked when a run starts; a file put into it after that (a note in the empty
    folder the run was given, a shard copied into the data/ it replaces) was deleted with the folder
    the run moved aside. Now the run publishes nothing and says which files, and they stay."""
    _corpus(tmp_path)
    config = _config(tmp_path)
    out = tmp_path / "out"
    replacing = case != "into the empty folder"
    if replacing:
        assert main(["run", config, "--output", str(out)]) == 0
        before = _complete(out)
    else:
        out.mkdir()
    where = out / ("data" if replacing else "") / "mine.txt"
    release = tmp_path / "go"
    proc = _start(config, out, *(["--force", "--run-id", "second"] if replacing else []),
                  env={"HYBRIDMIX_HOLD_AT": "publish:staged", "HYBRIDMIX_HOLD_UNTIL": str(release)})
    deadline = time.monotonic() + 300
    while not any(os.path.exists(out.parent / e / "_SUCCESS") for e in _leftovers(out)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.05)
    where.write_text("mine")
    release.touch()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert (f"{out} now holds files this run did not write, put there while it worked ({os.path.relpath(where, out)}); "
            "hybridmix never deletes what it did not write, so this run published nothing") in err.splitlines()[-1]
    assert where.read_text() == "mine" and _leftovers(out) == []
    if replacing:
        assert _complete(out) == before
    else:
        assert os.listdir(out) == ["mine.txt"]


@pytest.mark.parametrize("if_exists", ["fail", "skip"])
def test_force_and_another_if_exists_is_a_usage_error(tmp_path, if_exists):
    _corpus(tmp_path)
    result = _cli("run", _config(tmp_path), "--output", tmp_path / "out", "--force", "--if-exists", if_exists)
    _one_error_line(result, 2, f"--force replaces a finished output; --if-exists {if_exists} says otherwise")
    assert not (tmp_path / "out").exists()


def test_output_dot_in_a_project_folder_is_refused(tmp_path):
    _corpus(tmp_path)
    config = _config(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "README").write_text("keep me")
    result = _cli("run", config, "--output", ".", "--force", cwd=project)
    _one_error_line(result, 2, "is not empty and is not a finished hybridmix output")
    assert (project / "README").read_text() == "keep me"


@pytest.mark.parametrize("inside", ["data/v2", "ledger/a/b"])
def test_an_output_inside_a_finished_output_is_refused(tmp_path, inside):
    """`--output out/data/v2` wrote a second run into the first one's data/: load_dataset(data_dir=
    "out/data") read twice the rows its manifest lists."""
    _corpus(tmp_path)
    config = _config(tmp_path)
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 0
    before = _complete(out)
    for command in ("run", "validate"):
        result = _cli(command, config, "--output", out / inside)
        _one_error_line(result, 2, f"output folder {out / inside} is inside the finished hybridmix output {out}")
    assert not (out / inside).exists() and _complete(out) == before and _cli("inspect", out).returncode == 0


def test_an_empty_folder_is_a_fine_output(tmp_path):
    _corpus(tmp_path)
    (tmp_path / "empty").mkdir()
    assert main(["run", _config(tmp_path), "--output", str(tmp_path / "empty")]) == 0
    _complete(tmp_path / "empty")


def test_root_and_unusable_outputs_fail_before_any_work(tmp_path):
    _corpus(tmp_path)
    config = _config(tmp_path)
    started = time.monotonic()
    _one_error_line(_cli("run", config, "--output", "/"), 2, "the root of a file system cannot be an output folder")
    (tmp_path / "a_file").write_text("x")
    _one_error_line(_cli("run", config, "--output", tmp_path / "a_file" / "out"), 2, "a_file")
    _one_error_line(_cli("run", config, "--output", tmp_path / "a_file"), 2, "exists and is not a folder")
    # Each refusal comes from the checks, not from a failed publish at the end of a run.
    assert time.monotonic() - started < 60


def _read_only_mounts_available():
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _in_read_only_folder(folder, command: str, config) -> subprocess.CompletedProcess:
    """`hybridmix COMMAND CONFIG --output FOLDER/out`, with FOLDER (made here) mounted read-only."""
    folder.mkdir()
    # As root a chmod does not stop writes; a read-only bind mount does, even for root.
    script = (f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && "
              f"exec {sys.executable} -m hybridmix.pipelines.cli {command} {config} --output {folder / 'out'}")
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT))


@pytest.mark.skipif(not _read_only_mounts_available(), reason="needs unshare -rm (user + mount namespaces)")
def test_read_only_output_parent_is_a_clear_error(tmp_path):
    _corpus(tmp_path)
    config = _config(tmp_path)
    result = _in_read_only_folder(tmp_path / "ro", "run", config)
    _one_error_line(result, 2, "cannot")
    assert os.listdir(tmp_path / "ro") == []


def _validate_and_run_errors(config, out, capsys):
    assert main(["validate", config, "--output", str(out)]) == 2
    said = capsys.readouterr().err.strip()
    assert main(["run", config, "--output", str(out)]) == 2
    return said, capsys.readouterr().err.strip()


def test_validate_refuses_an_output_under_a_file_as_run_does(tmp_path, capsys):
    """validate said "can be written" where run then failed; a file on the way fails both, root or not."""
    _corpus(tmp_path)
    config = _config(tmp_path)
    (tmp_path / "a_file").write_text("x")
    before = sorted(os.listdir(tmp_path))
    said, run_said = _validate_and_run_errors(config, tmp_path / "a_file" / "sub" / "out", capsys)
    assert said == run_said
    assert said.endswith("cannot create the output folder's lock in "
                         f"{tmp_path / 'a_file' / 'sub'} (Not a directory)")
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a folder whatever its mode")
def test_validate_refuses_a_parent_without_write_permission_as_run_does(tmp_path, capsys):
    _corpus(tmp_path)
    config = _config(tmp_path)
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0o555)
    try:
        said, run_said = _validate_and_run_errors(config, tmp_path / "locked" / "out", capsys)
        assert os.listdir(tmp_path / "locked") == []
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert said == run_said and said.endswith(f"lock in {tmp_path / 'locked'} (Permission denied)")


@pytest.mark.skipif(not _read_only_mounts_available(), reason="needs unshare -rm (user + mount namespaces)")
def test_validate_refuses_a_read_only_output_parent(tmp_path):
    _corpus(tmp_path)
    config = _config(tmp_path)
    result = _in_read_only_folder(tmp_path / "ro", "validate", config)
    _one_error_line(result, 2, f"cannot create the output folder's lock in {tmp_path / 'ro'} (Read-only file system)")
    assert os.listdir(tmp_path / "ro") == []


def test_a_symlink_to_the_output_shares_its_lock(tmp_path):
    _corpus(tmp_path)
    config = _config(tmp_path)
    real = tmp_path / "real"
    assert main(["run", config, "--output", str(real)]) == 0
    os.symlink(real, tmp_path / "link")
    import fcntl

    with open(tmp_path / ".real.lock", "a+") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        result = _cli("run", config, "--output", tmp_path / "link", "--force")
    _one_error_line(result, 75, "is being written by another run")
    _complete(real)


def test_staging_of_a_similarly_named_output_is_not_touched(tmp_path):
    """`mix` and `mix.v2` share a prefix; a run into one must not clean up the other's staging."""
    _corpus(tmp_path)
    other = tmp_path / ".mix.v2.hm-0123456789abcdef.inprogress"
    other.mkdir()
    (other / "part.parquet").write_text("another run's file")
    assert main(["run", _config(tmp_path), "--output", str(tmp_path / "mix")]) == 0
    assert (other / "part.parquet").read_text() == "another run's file"


# --- crashes, signals, kills: a finished-looking output is always complete -----------------------


CRASH_POINTS = ["read", "filtered", "deduplicated", "selected", "written",
                "publish:staged", "publish:parked", "publish:moved"]


@pytest.fixture(scope="module")
def earlier_output(tmp_path_factory):
    """A config, and a finished output of it (run `first`) to copy into each test."""
    root = tmp_path_factory.mktemp("crash")
    _corpus(root, 60, 60)
    config = _config(root)
    assert _cli("run", config, "--output", root / "first", "--run-id", "first").returncode == 0
    return config, root / "first"


def _files(out) -> dict[str, bytes]:
    return {os.path.relpath(p, out): open(p, "rb").read()
            for p in glob.glob(str(out / "**" / "*"), recursive=True) if os.path.isfile(p)}


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_at_every_step_never_loses_the_earlier_output(earlier_output, tmp_path, point):
    config, template = earlier_output
    out = tmp_path / "out"
    shutil.copytree(template, out)
    first = _files(out)
    killed = _cli("run", config, "--output", out, "--run-id", "second", "--force",
                  env={"HYBRIDMIX_CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if out.exists():
        # Whatever looks finished is complete: the earlier run, or the new one if it got published.
        assert _complete(out) in ("first", "second")
    else:
        # Killed between the two renames: the earlier output waits, parked, for the next run.
        assert point == "publish:parked"
    # The next run without --force puts back (or keeps) what was there and refuses to replace it...
    again = _cli("run", config, "--output", out, "--run-id", "third")
    assert again.returncode == 2 and "Traceback" not in again.stderr, again.stderr
    assert "holds a finished run" in again.stderr.strip().splitlines()[-1]
    assert ("restoring" in again.stderr) == (point == "publish:parked")
    if point == "publish:moved":
        assert _complete(out) == "second"
    else:
        assert _complete(out) == "first" and _files(out) == first
    assert _leftovers(out) == []
    if point in ("written", "publish:parked"):
        # ...and with --force it completes.
        assert _cli("run", config, "--output", out, "--run-id", "third", "--force").returncode == 0
        assert _complete(out) == "third" and _leftovers(out) == []


@pytest.fixture(scope="module")
def slow_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("slow")
    return root, slow_config(root)


def _start(config, out, *extra, env=None):
    return subprocess.Popen([sys.executable, "-m", "hybridmix.pipelines.cli", "run", str(config), "--output", str(out),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})))


def _wait_for_staging(proc, out, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(e.endswith(".inprogress") for e in _leftovers(out)) and os.listdir(out.parent / _leftovers(out)[0]):
            return
        time.sleep(0.05)
    raise AssertionError("the run never started staging, or ended before it could be interrupted")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signals_clean_up_and_exit_128_plus_the_signal(slow_run, tmp_path, signum, code):
    _, config = slow_run
    out = tmp_path / "out"
    proc = _start(config, out)
    _wait_for_staging(proc, out)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = [line for line in err.strip().splitlines() if line]
    assert lines[-1].startswith(f"hybridmix: interrupted by {signal.Signals(signum).name}"), err
    assert "Traceback" not in err and "internal error" not in err
    assert not out.exists() and _leftovers(out) == []
    # The lock went with the process: the next run goes ahead.
    assert _cli("run", config, "--output", out).returncode == 0


def test_a_signal_after_the_publish_says_the_run_was_published(slow_run, tmp_path):
    """On an engine the publish step runs on a worker thread: a Ctrl-C that came as it renamed the
    folder into place was reported as "nothing was published" over a complete output (seen on
    Flink). Here the run is held just after the rename, as that worker would be, and interrupted."""
    _, config = slow_run
    out = tmp_path / "out"
    proc = _start(config, out, env={"HYBRIDMIX_HOLD_AT": "publish:moved",
                                    "HYBRIDMIX_HOLD_UNTIL": str(tmp_path / "never")})
    deadline = time.monotonic() + 300
    while not (out / "_SUCCESS").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (out / "_SUCCESS").exists(), "the run never published"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    run_id = _complete(out)
    assert err.strip().splitlines()[-1] == (f"hybridmix: interrupted by SIGINT as the run published: {out} holds run "
                                            f"{run_id}, complete"), err
    assert _leftovers(out) == []


def test_an_interrupted_run_ends_its_process_though_worker_threads_remain(slow_run, tmp_path):
    """Under an engine's LOOPBACK environment the job's workers are threads of this process; an
    interrupted job's could outlive the run, and the process, its last line printed, never ended
    (a scheduler waited on it). A thread that never ends stands in for them here."""
    _, config = slow_run
    out = tmp_path / "out"
    module, function = _entry_point()
    # SIGUSR1 dumps every thread's stack (faulthandler): what a run that does not end is waiting on.
    lingering = (f"import faulthandler, signal, sys, threading, time; "
                 f"faulthandler.register(signal.SIGUSR1, all_threads=True); "
                 f"threading.Thread(target=time.sleep, args=(3600,)).start(); "
                 f"from {module} import {function}; sys.exit({function}())")
    proc = subprocess.Popen([sys.executable, "-c", lingering, "run", str(config), "--output", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    _wait_for_staging(proc, out)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(5)
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the run did not end within 120 s of SIGINT; its threads then:\n{err[-20000:]}")
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("hybridmix: interrupted by SIGINT"), err
    assert not out.exists() and _leftovers(out) == []


def _entry_point() -> tuple[str, str]:
    """The module and function pip's `hybridmix` script runs, from pyproject.toml (an installed script
    may be older)."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        module, function = tomllib.load(fh)["project"]["scripts"]["hybridmix"].split(":")
    return module, function


def _entry_point_command() -> list[str]:
    module, function = _entry_point()
    return [sys.executable, "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]


def _wait_until_caught(pid: int, signums, limit_s: float) -> None:
    """Until the process handles every one of `signums` (Linux: /proc), at most `limit_s`."""
    mask = sum(1 << (s - 1) for s in signums)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as fh:
                caught = int(next(line for line in fh if line.startswith("SigCgt:")).split()[1], 16)
        except OSError:
            time.sleep(0.3)
            return
        if caught & mask == mask:
            return
        time.sleep(0.01)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_while_the_command_still_loads_is_one_line_too(tmp_path, signum, code):
    """Loading Beam, pyarrow and numba takes about 2 s; a Ctrl-C then printed a KeyboardInterrupt
    traceback, and SIGTERM ended the process without a word."""
    _corpus(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen([*_entry_point_command(), "run", _config(tmp_path), "--output", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    # Signalled once the entry point handles the signals, or after 1 s: well inside the loading
    # either way (the 1 s cap is for a process that does not handle them while loading).
    _wait_until_caught(proc.pid, (signal.SIGTERM, signal.SIGHUP), 1.0)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert err == (f"hybridmix: interrupted by {signal.Signals(signum).name}; nothing was published and the "
                   "output folder is as it was\n")
    assert not out.exists() and _leftovers(out) == []


def test_a_signal_that_lands_in_a_finalizer_still_interrupts():
    """A signal handled inside __del__ (a ParquetWriter's, in a run) raises where Python ignores
    exceptions: the run went on. It is delivered again, and the run stops."""
    from hybridmix.pipelines.cli import _Signals
    from hybridmix.schemas.errors import Interrupted

    class Finalizer:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline:  # the handler runs here, inside __del__
                pass

    with pytest.raises(Interrupted) as caught:
        with _Signals():
            Finalizer()  # collected at once
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # the delivery again interrupts this loop
                pass
    assert caught.value.exit_code == 128 + signal.SIGTERM


def test_a_signal_that_lands_in_a_broad_except_still_interrupts():
    """Library code that catches Exception (Beam's type inference, while the pipeline is built)
    must not swallow the interruption: a CI run once went on after SIGHUP and published."""
    from hybridmix.pipelines.cli import _Signals
    from hybridmix.schemas.errors import Interrupted

    with pytest.raises(Interrupted) as caught:
        with _Signals():
            try:
                os.kill(os.getpid(), signal.SIGHUP)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:  # the handler runs here, inside the try
                    pass
            except Exception:  # noqa: BLE001 - what the library does
                pass
    assert caught.value.exit_code == 128 + signal.SIGHUP


_SWALLOWING_RUN = """
import os, signal, sys, time
from hybridmix.pipelines import cli
from hybridmix.transforms import publish

built = publish.report_or_fallback

def report_in_a_library_that_swallows_everything(*args, **kwargs):
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(2)  # the handler raises here
    except BaseException:
        pass
    return built(*args, **kwargs)

publish.report_or_fallback = report_in_a_library_that_swallows_everything
sys.exit(cli.main(["run", sys.argv[1], "--output", sys.argv[2], "-q"]))
"""


def test_a_signal_whose_exception_was_swallowed_still_stops_the_run_before_it_publishes(tmp_path):
    """The handler also records the signal, and publishing checks it: nothing is published even if
    library code swallowed the exception (CI saw a run go on after a signal and publish)."""
    from tests.builders import slow_config

    config = slow_config(tmp_path, rows=400)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", _SWALLOWING_RUN, config, str(out)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("hybridmix: interrupted by SIGTERM"), proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert not out.exists() and _leftovers(out) == []


def test_an_input_replaced_during_the_run_fails_and_publishes_nothing(slow_run, tmp_path):
    root, config = slow_run
    work = tmp_path / "in"
    work.mkdir()
    for name in ("human.parquet", "synth.parquet"):
        (work / name).write_bytes((root / "in" / name).read_bytes())
    import yaml

    cfg = write_config(work / "config.yaml", yaml.safe_load(open(config)))
    out = tmp_path / "out"
    proc = _start(cfg, out)
    _wait_for_staging(proc, out)
    # The same number of rows and the same size, other texts: only the content changed.
    table = pq.read_table(work / "synth.parquet")
    texts = [t[::-1] for t in table.column("text").to_pylist()]
    pq.write_table(table.set_column(1, "text", pa.array(texts)), work / "synth.parquet.new", row_group_size=2000)
    os.replace(work / "synth.parquet.new", work / "synth.parquet")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err
    assert "synth.parquet changed during the run" in err
    assert not out.exists() and _leftovers(out) == []


def test_rows_read_again_are_verified_byte_for_byte(tmp_path):
    """A rewrite that keeps size and modification time still cannot slip changed rows into the output."""
    import apache_beam as beam

    from hybridmix.transforms import columns
    from hybridmix.transforms.ingest import build_documents
    from hybridmix.transforms.inputs import ReadSpec, plan_inputs
    from hybridmix.transforms.reread import ReadRowsAgain
    from tests.builders import make_config
    from tests.conftest import local_pipeline

    path = tmp_path / "human" / "a.parquet"
    write_parquet(path, [{"id": f"h{i}", "text": f"text number {i}"} for i in range(5)])
    write_parquet(tmp_path / "synth" / "b.parquet", [{"id": "s", "text": "synthetic text", "model": "m"}])
    config = make_config()
    spec = ReadSpec(config.ingest, plan_inputs(config.ingest, str(tmp_path)), "run")
    # Requests as the mixture makes them: row keys and the hashes of the texts as first read.
    docs = build_documents(pq.read_table(path).to_batches()[0], spec, spec.plan.files[0], 0).docs
    schema = pa.schema([columns.SELECTION.field("uid"), columns.SELECTION.field("text_hash")])
    requests = pa.RecordBatch.from_arrays([docs.column("uid"), docs.column("text_hash")], schema=schema)
    stat = os.stat(path)
    write_parquet(path, [{"id": f"h{i}", "text": f"text NUMBER {i}"} for i in range(5)])  # same length
    assert os.path.getsize(path) == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    p = local_pipeline()
    _ = p | beam.Create([requests]) | ReadRowsAgain(spec, schema, measure=False)
    with pytest.raises(Exception, match="a.parquet changed during the run"):
        p.run().wait_until_finish()


# --- data that used to break a run ----------------------------------------------------------------


def test_a_huge_document_of_distinct_words_finishes_or_is_rejected(tmp_path):
    """17M distinct character 10-grams used to turn the counting table's probing quadratic (minutes)."""
    import numpy as np

    rng = np.random.default_rng(0)
    huge = " ".join(f"w{x:x}" for x in rng.integers(0, 2**40, 1_700_000))[:17_500_000]
    write_parquet(tmp_path / "in" / "human.parquet",
                  [{"id": "huge", "text": huge}] + [{"id": f"h{i}", "text": words(i, 40)} for i in range(20)])
    write_parquet(tmp_path / "in" / "synth.parquet", [{"id": f"s{i}", "text": words(50 + i, 40), "model": "m"} for i in range(20)])
    config = _config(tmp_path, max_text_bytes=20_000_000, quality={"enabled": True},
                     dedup={"exact": True, "near": {"enabled": False}})
    result = _cli("run", config, "--output", tmp_path / "out", timeout=240)
    assert result.returncode == 0, result.stderr
    # The same document above the configured limit is a reject with its reason, not a crash.
    config = _config(tmp_path, max_text_bytes=1_000_000)
    assert main(["run", config, "--output", str(tmp_path / "out2")]) == 0
    rejects = pq.read_table(tmp_path / "out2" / "rejects").to_pylist()
    assert [(r["doc_id"], r["reason"]) for r in rejects] == [("huge", "ingest_too_large")]
    assert "the limit is 1,000,000 (max_text_bytes)" in rejects[0]["detail"]


def test_input_ids_that_look_like_repeats_are_rejected(tmp_path):
    write_parquet(tmp_path / "in" / "human.parquet",
                  [{"id": "w0", "text": words(1, 40)}, {"id": "w0#r1", "text": words(2, 40)},
                   {"id": "w1", "text": words(3, 40)}])
    write_parquet(tmp_path / "in" / "synth.parquet", [{"id": f"s{i}", "text": words(50 + i, 40), "model": "m"} for i in range(20)])
    config = _config(tmp_path, mixture={"targets": {"human": 0.5, "synthetic": 0.5}, "max_repeats": 10})
    assert main(["run", config, "--output", str(tmp_path / "out")]) == 0
    rejects = pq.read_table(tmp_path / "out" / "rejects").to_pylist()
    assert [(r["doc_id"], r["reason"]) for r in rejects] == [("w0#r1", "ingest_reserved_id")]
    ids = pq.read_table(tmp_path / "out" / "data").column("id").to_pylist()
    assert len(ids) == len(set(ids)) and "w0#r1" in ids  # the first repeat of w0, not the input row


def test_derived_ids_are_unique_without_dedup(tmp_path):
    same = words(7, 60)
    write_parquet(tmp_path / "in" / "human.parquet", [{"text": same}, {"text": same}, {"text": words(8, 60)}])
    write_parquet(tmp_path / "in" / "synth.parquet", [{"text": same}, {"text": words(9, 60)}])
    config = write_config(tmp_path / "in" / "config.yaml", {
        "corpora": [{"name": "wiki", "origin": "human", "paths": ["human.parquet"]},
                    {"name": "chat", "origin": "synthetic", "paths": ["synth.parquet"]}],
        # Every document is selected: 3 human and 2 synthetic documents at 60 / 40.
        "mixture": {"unit": "documents", "targets": {"human": 0.6, "synthetic": 0.4}},
        "dedup": {"exact": False, "near": {"enabled": False}},
        "quality": {"enabled": False},
    })
    assert main(["run", config, "--output", str(tmp_path / "out")]) == 0
    data = pq.read_table(tmp_path / "out" / "data")
    ids = data.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 5
    by_text: dict[tuple[str, str], list[str]] = {}
    for row in data.to_pylist():
        by_text.setdefault((row["source"], row["content_hash"]), []).append(row["doc_id"])
    copies = sorted(next(v for (source, _), v in by_text.items() if source == "wiki" and len(v) == 2))
    assert copies[0].startswith("wiki/") and copies[1] == copies[0] + "-1"


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
@pytest.mark.parametrize("indicators", [True, False], ids=["indicators", "no-indicators"])
def test_invalid_utf8_in_a_string_column_is_a_reject(tmp_path, mode, indicators):
    bad = pa.array([b"good text here", b"\xff\xfe broken bytes", "caf\u00e9 au lait".encode()], pa.binary())
    table = pa.table({"id": ["a", "b", "c"], "text": bad.view(pa.string())})
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "human.parquet")
    names = pa.array([b"m", b"m\xc3", b"m"], pa.binary()).view(pa.string())  # truncated UTF-8 in a provenance column
    pq.write_table(pa.table({"id": ["s1", "s2", "s3"], "text": [words(1, 20), words(2, 20), words(3, 20)],
                             "model": names}), tmp_path / "in" / "synth.parquet")
    config = _config(tmp_path, on_bad_file=mode, indicators={"enabled": indicators})
    assert main(["run", config, "--output", str(tmp_path / "out")]) == 0
    rejects = pq.read_table(tmp_path / "out" / "rejects").to_pylist()
    assert sorted((r["doc_id"], r["reason"]) for r in rejects) == [
        ("b", "ingest_invalid_utf8"), ("s2", "ingest_invalid_utf8")]
    assert "\ufffd" in [r for r in rejects if r["doc_id"] == "b"][0]["text"]
    data = pq.read_table(tmp_path / "out" / "data").to_pylist()  # every reader can decode it
    assert {r["doc_id"] for r in data} <= {"a", "c", "s1", "s3"}


# --- configuration and command line ---------------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ({"mixture": {"weights": {"wiki": float("inf"), "chat": 1.0}}}, "mixture.weights.wiki: Input should be a finite number"),
    ({"mixture": {"targets": {"human": 0.5, "synthetic": 0.5}, "temperature": float("inf")}},
     "mixture.temperature: Input should be a finite number"),
    ({"seed": True}, "seed: Input should be a valid integer"),
    ({"seed": "5"}, "seed: Input should be a valid integer"),
    ({"partitions": 2.5}, "partitions: Input should be a valid integer"),
], ids=["weights-inf", "temperature-inf", "seed-true", "seed-string", "partitions-float"])
def test_numbers_must_be_numbers(tmp_path, override, message):
    _corpus(tmp_path)
    _one_error_line(_cli("validate", _config(tmp_path, **override)), 2, message)


def test_a_yaml_alias_bomb_is_a_quick_error(tmp_path):
    _corpus(tmp_path)
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines += ["seed: *i", "corpora: [{name: x, origin: human, paths: [human.parquet]}]",
              "mixture: {targets: {human: 1.0}}"]
    config = tmp_path / "in" / "bomb.yaml"
    config.write_text("\n".join(lines) + "\n")
    result = _cli("validate", config, timeout=60)
    _one_error_line(result, 2, "seed: Input should be a valid integer (got [[")


@pytest.mark.parametrize("run_id", ["a/b", "..", "x\ny", "", "r" * 300, "dots.are.out"],
                         ids=["slash", "dotdot", "newline", "empty", "long", "dots"])
def test_run_ids_are_checked_before_anything_runs(tmp_path, run_id):
    _corpus(tmp_path)
    result = _cli("run", _config(tmp_path), "--output", tmp_path / "out", "--run-id", run_id)
    _one_error_line(result, 2, "--run-id")
    assert sorted(os.listdir(tmp_path)) == ["in"]


@pytest.mark.parametrize("flag", ["--dry-run", "--dry_run=True"])
def test_dry_run_is_refused_not_ignored(tmp_path, flag):
    _corpus(tmp_path)
    result = _cli("run", _config(tmp_path), "--output", tmp_path / "out", flag)
    _one_error_line(result, 2, "has no dry run")
    assert not (tmp_path / "out").exists()


def test_validate_is_as_strict_as_run(tmp_path):
    _corpus(tmp_path)
    config = _config(tmp_path, quality={"filters": [{"name": "refusal", "params": {"window": 10}}]})
    _one_error_line(_cli("validate", config), 2, "quality.filters[0].params.window: unknown key")
    config = _config(tmp_path, quality={"filters": [{"name": "no_such_filter"}]})
    _one_error_line(_cli("validate", config), 2, "quality.filters[0].name: unknown filter 'no_such_filter'")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    config = _config(tmp_path, output={"path": "../busy"})
    _one_error_line(_cli("validate", config), 2, "is not empty and is not a finished hybridmix output")
    ok = _cli("validate", _config(tmp_path))
    assert ok.returncode == 0 and "ids unique across corpora" in ok.stdout


def test_single_input_file_next_to_the_output_and_a_folder_as_paths(tmp_path):
    _corpus(tmp_path)
    assert main(["run", _config(tmp_path), "--output", str(tmp_path / "in" / "out")]) == 0
    for mode in ("fail", "quarantine"):
        config = _config(tmp_path, on_bad_file=mode, corpora=[
            {"name": "wiki", "origin": "human", "paths": ["."], "id_column": "id"},
            {"name": "chat", "origin": "synthetic", "paths": ["synth.parquet"], "id_column": "id"}])
        _one_error_line(_cli("run", config, "--output", tmp_path / "out2"), 2,
                        "corpora[0].paths: '.' is a folder; give its files as a glob")


def test_the_manifest_names_an_output_given_relative_to_the_shell_as_the_folder_written(tmp_path):
    """The manifest's paths are read against its base_dir (the config's folder); `--output runs/mix`
    typed in another folder was stored as typed, naming a folder that does not exist."""
    _corpus(tmp_path)
    config = _config(tmp_path)
    (tmp_path / "shell").mkdir()
    assert _cli("run", config, "--output", "runs/mix", cwd=tmp_path / "shell").returncode == 0
    out = tmp_path / "shell" / "runs" / "mix"
    manifest = json.loads((out / "manifest.json").read_text())
    assert os.path.join(manifest["base_dir"], manifest["config"]["output"]["path"]) == str(out)


def test_log_file_in_a_missing_folder_and_escaped_file_names(tmp_path):
    _corpus(tmp_path)
    result = _cli("--log-file", tmp_path / "nope" / "run.log", "validate", _config(tmp_path))
    _one_error_line(result, 2, "--log-file")
    evil = "evil\x1b[31mred\x07.parquet"
    os.rename(tmp_path / "in" / "human.parquet", tmp_path / "in" / evil)
    (tmp_path / "in" / evil).write_bytes(b"not parquet at all")
    config = _config(tmp_path, corpora=[
        {"name": "wiki", "origin": "human", "paths": ["evil*"], "id_column": "id"},
        {"name": "chat", "origin": "synthetic", "paths": ["synth.parquet"], "id_column": "id"}])
    line = _one_error_line(_cli("validate", config), 3, "cannot read as Parquet")
    assert "\x1b" not in line and "\x07" not in line and "\\u001b[31mred\\u0007" in line


def test_a_log_file_inside_the_output_is_refused_before_it_is_written(tmp_path, capsys):
    """The log was opened before the output was checked: the run refused its own log as a file it
    did not write, and that file blocked every later --force into the output."""
    _corpus(tmp_path)
    config = _config(tmp_path)
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 0
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    in_config = _config(tmp_path, output={"path": "../empty"})
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(out))
    for command, log in [
        (["run", config, "--output", str(out), "--force"], out / "run.log"),
        (["validate", config, "--output", str(out)], out / "logs" / "run.log"),
        (["run", in_config], tmp_path / "empty" / "run.log"),
        (["validate", in_config], tmp_path / "empty" / "run.log"),
        (["inspect", str(out)], out / "run.log"),
        (["run", config, "--output", str(out), "--force"], tmp_path / ".out.lock"),
        (["run", config, "--output", str(out), "--force"], tmp_path / ".out.hm-1.inprogress" / "run.log"),
    ]:
        assert main(["--log-file", str(log), *command]) == 2, (command, log)
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"hybridmix: error: --log-file {log} is ") and "\n" not in err, err
        assert err.endswith(".log)") and "put the log beside the output" in err, err
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(out))) == before
    assert os.listdir(tmp_path / "empty") == []
    beside = tmp_path / "out.log"
    assert main(["--log-file", str(beside), "run", config, "--output", str(out), "--force"]) == 0
    assert beside.stat().st_size > 0


# --- scheduling -----------------------------------------------------------------------------------


def test_if_exists_skip_does_nothing_for_the_same_run(tmp_path):
    _corpus(tmp_path)
    config = _config(tmp_path)
    out = tmp_path / "out"
    assert _cli("run", config, "--output", out).returncode == 0
    before = (out / "manifest.json").stat().st_mtime_ns
    again = _cli("run", config, "--output", out, "--if-exists", "skip")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert (out / "manifest.json").stat().st_mtime_ns == before
    # Another config is another run: skip does not replace it.
    other = _cli("run", config, "--output", out, "--if-exists", "skip", "--seed", "9")
    _one_error_line(other, 2, "holds a finished run")
    assert "; pass --force instead of --if-exists skip to replace it" in other.stderr
    assert _cli("run", config, "--output", out, "--if-exists", "replace", "--seed", "9").returncode == 0


@pytest.fixture
def read_only_mount(tmp_path):
    """A tmpfs at tmp_path/mnt, and a function that remounts it read-only (needs root, as CI runs)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield mnt, lambda: subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    subprocess.run(["umount", str(mnt)], check=True)


def test_if_exists_skip_needs_no_write_access_to_an_output_that_holds_the_run(tmp_path, read_only_mount):
    """A scheduler reruns a job whose output now sits on a read-only file system (an archive, a
    snapshot): the lock file could not be opened for writing, and run and validate exited 2 (do not
    retry) although there was nothing to do."""
    mnt, make_read_only = read_only_mount
    _corpus(tmp_path)
    config = _config(tmp_path)
    out = mnt / "out"
    assert _cli("run", config, "--output", out).returncode == 0
    make_read_only()
    again = _cli("run", config, "--output", out, "--if-exists", "skip")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr
    checked = _cli("validate", config, "--output", out, "--if-exists", "skip")
    assert checked.returncode == 0 and "run --if-exists skip does nothing" in checked.stdout, checked.stderr
    # Anything that would write there still stops at once, naming the file system.
    _one_error_line(_cli("run", config, "--output", out, "--force", "--seed", "9"), 2, "Read-only file system")


def test_a_rewrite_that_keeps_the_size_and_the_footer_is_another_run(tmp_path):
    """Rows of equal length swapped in an uncompressed file: the size, the footer and the last 64 KiB
    stay; the run id must not, or `--if-exists skip` keeps an output of the old rows."""
    _corpus(tmp_path)
    texts = [words(3000 + i, 90) for i in range(400)]  # about 240 KB, uncompressed
    texts[1] = " ".join(reversed(texts[0].split()))  # as long as row 0
    path = tmp_path / "in" / "synth.parquet"

    def write(rows):
        pq.write_table(pa.table({"id": [f"s{i:03d}" for i in range(400)], "text": rows, "model": ["m"] * 400}),
                       path, compression="none")

    write(texts)
    config = _config(tmp_path)
    out = tmp_path / "out"
    assert _cli("run", config, "--output", out).returncode == 0
    first = _complete(out)
    before = path.read_bytes()
    write([texts[1], texts[0], *texts[2:]])
    after = path.read_bytes()
    assert len(after) == len(before) and after[-(1 << 16):] == before[-(1 << 16):] and after != before  # the premise
    skipped = _cli("run", config, "--output", out, "--if-exists", "skip")
    _one_error_line(skipped, 2, "holds a finished run")
    assert _cli("run", config, "--output", out, "--force").returncode == 0
    assert _complete(out) != first
    # The checksum in the manifest is the hash planning made: the file's bytes.
    entry = [f for f in json.loads((out / "manifest.json").read_text())["inputs"] if f["path"] == "synth.parquet"]
    assert [f["sha256"] for f in entry] == [hashlib.sha256(after).hexdigest()]


def test_the_log_file_says_how_each_run_ended(tmp_path, capsys):
    """A scheduled job's record is its --log-file: a skipped run left no trace there, and a
    published one ended at `publish: done` without saying it succeeded or where it wrote."""
    _corpus(tmp_path)
    config = _config(tmp_path)
    out, log = tmp_path / "out", tmp_path / "out.log"
    assert main(["--log-file", str(log), "run", config, "--output", str(out), "-q"]) == 0
    run_id = _complete(out)
    last = log.read_text().splitlines()[-1]
    assert f" run {run_id} succeeded: wrote {out} in " in last, last
    assert main(["--log-file", str(log), "run", config, "--output", str(out), "--if-exists", "skip", "-v"]) == 0
    said = f"{out} already holds run {run_id} (same config and inputs); nothing to do"
    assert log.read_text().splitlines()[-1].endswith(said)
    # Said once: on stdout, not on stderr too.
    printed = capsys.readouterr()
    assert said in printed.out and said not in printed.err


def test_infeasible_targets_have_their_own_exit_code(tmp_path):
    _corpus(tmp_path)
    config = _config(tmp_path, mixture={"targets": {"human": 0.5, "synthetic": 0.5}, "total_tokens": 10_000_000})
    _one_error_line(_cli("run", config, "--output", tmp_path / "out"), 5, "source 'chat' (synthetic) has")


def test_quarantined_files_show_in_the_summary_and_inspect(tmp_path):
    _corpus(tmp_path)
    (tmp_path / "in" / "broken.parquet").write_bytes(b"garbage")
    config = _config(tmp_path, on_bad_file="quarantine", corpora=[
        {"name": "wiki", "origin": "human", "paths": ["human.parquet", "broken.parquet"], "id_column": "id"},
        {"name": "chat", "origin": "synthetic", "paths": ["synth.parquet"], "id_column": "id"}])
    run = _cli("run", config, "--output", tmp_path / "out")
    assert run.returncode == 0 and "quarantined input files: 1" in run.stdout and "broken.parquet" in run.stdout
    shown = _cli("inspect", tmp_path / "out")
    assert shown.returncode == 0 and "quarantined input files: 1" in shown.stdout


def test_inspect_on_broken_outputs(tmp_path):
    _corpus(tmp_path)
    out = tmp_path / "out"
    assert main(["run", _config(tmp_path), "--output", str(out)]) == 0
    piped = subprocess.run(f"{sys.executable} -m hybridmix.pipelines.cli inspect {out} | head -1", shell=True,
                           capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert piped.stdout.startswith("run ") and piped.stderr == ""
    # The reader gone while the schema of data/ is printed, right after the first reads of a data file:
    # still exit 141, not "the output is damaged" (exit 2).
    breaking = textwrap.dedent(f"""
        import io, os, sys
        from hybridmix.pipelines.cli import main
        class Closed(io.TextIOWrapper):
            def write(self, text):
                if "schema of data/" in text:
                    raise BrokenPipeError(32, "Broken pipe")
                return super().write(text)
        sys.stdout = Closed(open(os.devnull, "wb"))
        sys.exit(main(["inspect", {str(out)!r}]))
    """)
    closed = subprocess.run([sys.executable, "-c", breaking], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert closed.returncode == 141 and closed.stderr == "", closed.stderr
    (out / "_SUCCESS").unlink()
    warned = _cli("inspect", out, "--json")
    assert warned.returncode == 2 and "has no _SUCCESS" in warned.stderr and json.loads(warned.stdout)["run_id"]
    assert warned.stderr.startswith("hybridmix: warning: "), warned.stderr
    victim = sorted((out / "data").iterdir())[0]
    victim.unlink()
    missing = _cli("inspect", out)
    assert missing.returncode == 2 and "missing" in missing.stderr and "Traceback" not in missing.stderr
    for bad in ("{}", "[]", "not json"):
        (out / "manifest.json").write_text(bad)
        _one_error_line(_cli("inspect", out), 2, "manifest")
