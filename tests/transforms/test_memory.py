"""The allocator: memory a stage frees goes back to the operating system."""

import json
import os
import subprocess
import sys

import pytest

# Frees a 16 MB block (which raises glibc's default mmap threshold to 16 MB, so the arrays after it
# come from the heap), fills 200 MB with 1 MB arrays, frees all but every tenth, and waits longer
# than the trimming interval: what stays resident is what the heap kept.
PROBE = r"""
import json, sys, time
if sys.argv[1] == "hybridmix":
    import hybridmix.transforms  # noqa: F401  (starts the trimming thread)
import numpy as np

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20

big = np.ones(16 * 2**20, np.uint8); del big
arrays = [np.ones(2**20, np.uint8) for _ in range(200)]
before = rss_mb()
arrays = arrays[::10]
time.sleep(1.6)
print(json.dumps({"freed_mb": before - rss_mb()}))
"""

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")


def _freed(mode: str, **env: str) -> float:
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                            env={**os.environ, **env})
    return json.loads(result.stdout)["freed_mb"]


@linux_only
def test_freed_arrays_leave_the_process():
    assert _freed("plain") < 50  # glibc alone keeps nearly all of the 180 MB freed
    assert _freed("hybridmix") > 150


@linux_only
def test_trimming_can_be_turned_off():
    assert _freed("hybridmix", HYBRIDMIX_TRIM_INTERVAL="0") < 50


# Keeps 1,000,000 small tuples alive (as a runner holds a bundle's elements) and counts the
# collector's passes.
GC_PROBE = r"""
import gc, json, sys
gc.set_threshold(int(sys.argv[1]), 10, 10)
if sys.argv[2] == "hybridmix":
    import hybridmix.transforms  # noqa: F401
passes = []
gc.callbacks.append(lambda phase, info: phase == "start" and passes.append(info["generation"]))
held = [(i, str(i)) for i in range(1_000_000)]
print(json.dumps({"threshold": gc.get_threshold()[0], "passes": len(passes)}))
"""


def _collector(threshold: int, mode: str) -> dict:
    result = subprocess.run([sys.executable, "-c", GC_PROBE, str(threshold), mode], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout)


def test_the_collector_runs_less_often():
    from hybridmix.transforms.memory import GC_YOUNG_THRESHOLD

    plain, tuned = _collector(700, "plain"), _collector(700, "hybridmix")
    assert tuned["threshold"] == GC_YOUNG_THRESHOLD
    assert plain["passes"] > 0.9 * 1_000_000 / 700
    assert tuned["passes"] < 1.1 * 1_000_000 / GC_YOUNG_THRESHOLD
    # A process that set a larger threshold before keeps it.
    assert _collector(100_000, "hybridmix")["threshold"] == 100_000
