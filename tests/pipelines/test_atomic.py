"""Crashes and reruns: a killed run leaves nothing that looks finished, a rerun completes, and two
runs into one output folder cannot overlap."""

import fcntl
import os
import signal
import subprocess
import sys
import time

import pytest

from hybridmix.pipelines.cli import main
from tests.builders import slow_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def slow_corpus(tmp_path_factory):
    return slow_config(tmp_path_factory.mktemp("slow"))


def _start(config, out, *extra):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-m", "hybridmix.pipelines.cli", "run", config, "--output", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _staging(out):
    parent, name = os.path.split(str(out))
    return [e for e in os.listdir(parent) if e.startswith(f".{name}.") and e.endswith(".inprogress")]


def _wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _kill_mid_run(config, out, *extra):
    proc = _start(config, out, *extra)
    # Kill once data is being staged: well inside the run, long before publishing.
    assert _wait_for(lambda: any(os.path.isdir(os.path.join(os.path.dirname(str(out)), s, "_spill"))
                                 for s in _staging(out)) or proc.poll() is not None)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def test_killed_run_leaves_nothing_finished_and_a_rerun_completes(slow_corpus, tmp_path):
    out = tmp_path / "out"
    _kill_mid_run(slow_corpus, out)
    assert not (out / "_SUCCESS").exists()
    assert not out.exists()
    rerun = _start(slow_corpus, out)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert (out / "_SUCCESS").exists() and (out / "manifest.json").exists()
    assert _staging(out) == []


def test_killed_forced_rerun_keeps_the_previous_finished_output(slow_corpus, tmp_path):
    out = tmp_path / "out"
    first = _start(slow_corpus, out)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    before = (out / "manifest.json").read_bytes()
    _kill_mid_run(slow_corpus, out, "--force", "--run-id", "second")
    assert (out / "_SUCCESS").exists()
    assert (out / "manifest.json").read_bytes() == before


def test_second_run_into_the_same_output_fails_fast(slow_corpus, tmp_path, capsys):
    """While a run holds the output's lock, another run stops at once and says who holds it."""
    out = tmp_path / "out"
    with open(tmp_path / ".out.lock", "a+") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        holder.write("run hm-running, pid 4242 on host\n")
        holder.flush()
        started = time.monotonic()
        second = _start(slow_corpus, out)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 75, err  # EX_TEMPFAIL: retry later
        assert "is being written by another run (run hm-running, pid 4242 on host)" in err
        assert time.monotonic() - started < 30
        # validate answers as run did, and leaves the holder's lock as it was.
        assert main(["validate", slow_corpus, "--output", str(out)]) == 75
        assert "is being written by another run (run hm-running, pid 4242 on host)" in capsys.readouterr().err
        assert (tmp_path / ".out.lock").read_text() == "run hm-running, pid 4242 on host\n"
    assert not out.exists()
    assert main(["validate", slow_corpus, "--output", str(out)]) == 0
    assert f"output {out}: can be written" in capsys.readouterr().out
    # The lock goes with its holder: the next run goes ahead.
    third = _start(slow_corpus, out)
    _, err = third.communicate(timeout=600)
    assert third.returncode == 0, err
