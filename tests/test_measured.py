"""benchmarks/measured.py: the peak memory a benchmark reports counts all its worker processes."""

import os
import subprocess
import sys

from benchmarks.measured import TreePeak, _tree_rss_mb

_HOLD = "import time; block = b'\\x01' * (200 * 2**20); time.sleep(1.0)"  # 200 MB, every page written


def test_tree_peak_adds_up_worker_processes_that_run_at_once():
    before = _tree_rss_mb(os.getpid())
    with TreePeak(interval=0.02) as two:
        workers = [subprocess.Popen([sys.executable, "-c", _HOLD]) for _ in range(2)]
        assert [w.wait() for w in workers] == [0, 0]
    # Both workers at once (getrusage would report the larger one alone: 200 MB). Sampled sums,
    # not the peak: a test process's own peak is whatever an earlier test in it reached. The bound
    # is 400 MB less room for this process's own RSS shrinking meanwhile (hybridmix's transforms,
    # imported by earlier tests, hand freed heap pages back once a second: a CI run missed 380 by
    # 2 MB), still far above the one worker getrusage would see.
    assert two.sampled_mb >= before + 320
    assert two.peak_mb >= two.sampled_mb


def test_a_failed_run_exits_with_its_code(tmp_path):
    config = tmp_path / "hybridmix.yaml"
    config.write_text("corpora:\n- {name: h, origin: human, paths: [missing/*.parquet]}\n"
                      "mixture: {targets: {human: 1.0}}\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.measured", "hybridmix", "run", str(config),
                           "--output", str(tmp_path / "out")], capture_output=True, text=True, cwd=root)
    # Timed, but not mistaken for a result: compare.py reads the return code.
    assert proc.returncode == 3, proc.stderr
    assert '"exit_code": 3' in proc.stdout
    assert "no file matches" in proc.stderr
