"""Time and memory per Beam stage of a local run (in-process FnApiRunner).

    .venv/bin/python -m benchmarks.stage_profile CONFIG --output DIR [hybridmix run flags]

FnApiRunner logs the start of every bundle at DEBUG level; this listens to that log,
samples the process's resident memory every 50 ms, and prints, per fused stage, the wall time
until the next stage started, the CPU time of all the process's threads in that span
(`cpu_seconds`: a stage that keeps both cores busy shows about twice its seconds), the largest RSS sampled, and by how much the stage raised the
process's peak RSS (`raised_peak_mb`, from VmHWM at each start: the stages that set the peak). Stage names are Beam's
fused step names, e.g. `ReadCorpora/ReadAndValidate+FilterQuality/...`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time

from hybridmix.pipelines.cli import main as hybridmix

_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    """CPU time of every thread of this process so far (user + system)."""
    t = os.times()
    return t.user + t.system


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE / 2**20


def peak_mb() -> float:
    """The process's peak RSS so far (VmHWM): exact, where sampling misses short spikes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    return 0.0


class StageRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[tuple[float, str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("Running bundle for stage "):
            self.events.append((time.perf_counter(), msg.split("\n")[0][len("Running bundle for stage "):],
                                peak_mb(), cpu_seconds()))


def profile(argv: list[str]) -> dict:
    recorder = StageRecorder()
    bundle_logger = logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner.run_bundle")
    bundle_logger.addHandler(recorder)
    bundle_logger.setLevel(logging.DEBUG)
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter(), rss_mb()))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    sampler.start()
    code = hybridmix(["run", *argv])
    end = time.perf_counter()
    done.set()
    sampler.join()
    stages: dict[str, dict[str, float]] = {}
    events = recorder.events + [(end, "(end)", peak_mb(), cpu_seconds())]
    for (t0, name, hwm0, cpu0), (t1, _, hwm1, cpu1) in zip(events, events[1:]):
        peak = max((m for t, m in samples if t0 <= t <= t1), default=0.0)
        entry = stages.setdefault(name, {"seconds": 0.0, "cpu_seconds": 0.0, "bundles": 0, "peak_rss_mb": 0.0,
                                         "raised_peak_mb": 0.0})
        entry["seconds"] += t1 - t0
        entry["cpu_seconds"] += cpu1 - cpu0
        entry["bundles"] += 1
        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], peak)
        entry["raised_peak_mb"] += hwm1 - hwm0
    return {
        "exit_code": code,
        "wall_seconds": round(end - start, 2),
        "before_first_stage_seconds": round((events[0][0] if recorder.events else end) - start, 2),
        "peak_rss_mb": round(max(max(m for _, m in samples), events[-1][2]), 1),
        "stages": {k: {"seconds": round(v["seconds"], 2), "cpu_seconds": round(v["cpu_seconds"], 2),
                       "bundles": v["bundles"],
                       "peak_rss_mb": round(v["peak_rss_mb"], 1), "raised_peak_mb": round(v["raised_peak_mb"], 1)}
                   for k, v in sorted(stages.items(), key=lambda kv: -kv[1]["seconds"])},
    }


if __name__ == "__main__":
    print(json.dumps(profile(sys.argv[1:]), indent=2))
