"""benchmarks/measured.py: the peak memory a benchmark reports counts all its worker processes."""

import subprocess
import sys

from benchmarks.measured import TreePeak

_HOLD = "import time; block = bytearray(200 * 2**20); time.sleep(1.0)"  # 200 MB, touched


def test_tree_peak_adds_up_worker_processes_that_run_at_once():
    with TreePeak(interval=0.02) as idle:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.3)"], check=True)
    with TreePeak(interval=0.02) as two:
        workers = [subprocess.Popen([sys.executable, "-c", _HOLD]) for _ in range(2)]
        assert [w.wait() for w in workers] == [0, 0]
    # Both workers at once (getrusage would report the larger one alone: 200 MB).
    assert two.peak_mb >= idle.peak_mb + 380
