"""Run a command-line entry point in this process and print its wall time and peak memory as JSON.

    python -m benchmarks.measured hybridmix run CONFIG --output DIR ...
    python -m benchmarks.measured floor CORPUS OUT
    python -m benchmarks.measured rensa CORPUS

Peak RSS is this process's plus its largest child's (Beam's multi-process workers).
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import time


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round((own + children) / 1024, 1)


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
    if tool == "hybridmix":
        from hybridmix.pipelines.cli import main as run

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
                      "peak_rss_mb": peak_rss_mb(), **detail}))


if __name__ == "__main__":
    main()
