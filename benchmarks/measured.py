"""Run a command-line entry point in this process and print its wall time and peak memory as JSON.

    python -m benchmarks.measured hybridmix run CONFIG --output DIR ...
    python -m benchmarks.measured floor CORPUS OUT
    python -m benchmarks.measured rensa CORPUS

Peak RSS is that of this process and all its descendants together (Beam's multi-process workers),
sampled every 0.25 s, and never below this process's own exact peak.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import threading
import time

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def _tree_rss_mb(root: int) -> float:
    """Resident memory of `root` and every process descending from it, now."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone since the listing
            parents.setdefault(ppid, []).append(int(name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(parents.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * _PAGE_MB
        except (OSError, IndexError, ValueError):
            pass
    return total


class TreePeak:
    """The largest resident memory of this process tree while the block runs.

    Summing getrusage's peaks over-counts processes that peaked at different times, and RUSAGE_CHILDREN
    reports only the largest child; sampling the tree's sum is what the machine had to hold. A spike
    shorter than the interval can be missed: this process's own exact peak (VmHWM, since the process
    started: measure in a fresh process) is the floor.
    """

    # A sample walks /proc (1.6 ms here, holding the GIL): every 0.25 s costs the measured run under 1 %.
    def __init__(self, interval: float = 0.25) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self.sampled_mb = 0.0  # the largest sampled sum
        self.peak_mb = 0.0  # that, or this process's own peak since it started if larger

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.sampled_mb = max(self.sampled_mb, _tree_rss_mb(os.getpid()))

    def __enter__(self) -> TreePeak:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.peak_mb = max(self.sampled_mb, own)


def time_v(cmd: list[str], cwd: str) -> dict:
    """Run `cmd` under `/usr/bin/time -v`: its CPU seconds (user + sys), wall seconds and peak RSS.

    A failed command stops the benchmark with the end of its stderr.
    """
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])

    def field(name: str) -> str:
        return re.search(rf"{re.escape(name)}: ([\d.:]+)", proc.stderr).group(1)

    wall = [float(x) for x in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    return {"cpu_seconds": round(float(field("User time (seconds)")) + float(field("System time (seconds)")), 1),
            "wall_seconds": round(sum(w * 60 ** i for i, w in enumerate(reversed(wall))), 1),
            "peak_rss_mb": round(int(field("Maximum resident set size (kbytes)")) / 1024)}


def main() -> None:
    tool, argv = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    with TreePeak() as memory:
        if tool == "hybridmix":
            from hybridmix.pipelines.cli import console_main as run  # as the command runs it

            code = run(argv)
            detail = {}
        elif tool == "floor":
            from benchmarks.floor import run

            code, detail = 0, run(*argv)
        elif tool == "rensa":
            from benchmarks.rensa_dedup import run

            code, detail = 0, run(*argv)
        else:
            raise SystemExit(f"unknown tool {tool!r}")
    print(json.dumps({"tool": tool, "exit_code": code, "seconds": round(time.perf_counter() - started, 2),
                      "peak_rss_mb": round(memory.peak_mb, 1), **detail}))
    # The tool's own exit code: a run that failed in a second must not read as a fast one to
    # callers that check the return code (compare.py did, and timed a config error).
    sys.exit(code)


if __name__ == "__main__":
    main()
