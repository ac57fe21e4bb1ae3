"""`hybridmix warmup`: compiles into numba's cache once, and a later run loads instead of compiling."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "examples", "demo.yaml")
COUNTS = re.compile(r"hybridmix warmup: (\d+) kernel\(s\) compiled, (\d+) loaded from the cache")
# After a run in the same process: how many of hybridmix's kernels it compiled and loaded.
PROBE = """
import contextlib, io, sys
from hybridmix.pipelines.cli import main
from hybridmix.pipelines.warmup import kernel_cache_stats
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
compiled, loaded, _ = kernel_cache_stats()
print(code, compiled, loaded)
"""


def _run(args, env):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=900, check=False)


def test_warmup_fills_a_cold_cache_that_the_next_run_loads(tmp_path):
    cache, scratch = tmp_path / "numba", tmp_path / "tmp"
    scratch.mkdir()
    # A cache folder of its own: cold, whatever earlier tests compiled into the package's __pycache__.
    env = dict(os.environ, PYTHONPATH=ROOT, NUMBA_CACHE_DIR=str(cache), TMPDIR=str(scratch))

    first = _run(["-m", "hybridmix.pipelines.cli", "warmup"], env)
    assert first.returncode == 0, first.stderr
    compiled, loaded = map(int, COUNTS.search(first.stdout).groups())
    assert compiled > 10 and loaded == 0
    assert f"compiled code kept in {cache}" in first.stdout
    # Its corpus and run went into a temporary folder, which it removed.
    assert list(scratch.iterdir()) == []

    second = _run(["-m", "hybridmix.pipelines.cli", "warmup"], env)
    assert second.returncode == 0, second.stderr
    compiled, loaded = map(int, COUNTS.search(second.stdout).groups())
    assert compiled == 0 and loaded > 0

    # The demo job, the product's main run, compiles nothing after it.
    demo = _run(["-c", PROBE, "run", DEMO, "--output", str(tmp_path / "demo"), "--quiet"], env)
    code, compiled, loaded = map(int, demo.stdout.split())
    assert (code, compiled) == (0, 0) and loaded > 0
