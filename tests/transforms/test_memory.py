"""The allocator tuning: memory a stage frees goes back to the operating system."""

import json
import os
import subprocess
import sys

import pytest

# Frees a 16 MB block (which raises glibc's default mmap threshold to 16 MB), then fills 200 MB with 1 MB
# arrays and frees all but every tenth: what stays resident is what the heap kept.
PROBE = r"""
import json, sys
if sys.argv[1] == "tuned":
    import hybridmix.transforms  # noqa: F401  (tunes the allocator on import)
import numpy as np

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20

big = np.ones(16 * 2**20, np.uint8); del big
arrays = [np.ones(2**20, np.uint8) for _ in range(200)]
before = rss_mb()
arrays = arrays[::10]
print(json.dumps({"freed_mb": before - rss_mb()}))
"""


def _freed(mode: str, **env: str) -> float:
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                            env={**os.environ, **env})
    return json.loads(result.stdout)["freed_mb"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_arrays_leave_the_process():
    assert _freed("plain") < 50  # the default keeps nearly all of the 180 MB freed
    assert _freed("tuned") > 150


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_users_own_malloc_settings_win():
    from hybridmix.transforms.memory import return_freed_memory

    assert return_freed_memory() is True
    # With the user's setting in the environment, hybridmix leaves the allocator alone.
    assert _freed("tuned", MALLOC_TRIM_THRESHOLD_="1000000000", MALLOC_MMAP_THRESHOLD_="1000000000") < 50
