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
