"""What a run shows while it works: the stage it is in, how far, how fast.

The stages count what they handle in `transforms.progress` (per batch, in this process); a thread
here reads those counts every second. On a terminal it rewrites one line of stderr in place;
elsewhere (a pipe, a CI log) it prints one line per stage when the stage is done, and a line
every 30 s while a long stage runs; `--log-file` gets the same lines. Where the workers are other
processes (Flink with a Docker or process environment, Dataflow, local multi_processing) nothing
is counted here, and the display says the job is running, for how long, and why it shows no counts.

The stages of a run follow each other: each waits for the whole output of the one before (a
shuffle lies between them), so the stage that counted last is the one running, and the stages
before it are done.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from apache_beam.options.pipeline_options import (
    DebugOptions,
    DirectOptions,
    PipelineOptions,
    PortableOptions,
    StandardOptions,
)

from hybridmix.pipelines.logs import console_handler
from hybridmix.transforms import progress as counts
from hybridmix.transforms.inputs import InputPlan

log = logging.getLogger("hybridmix.progress")

Counts = dict[str, int]

# Runners whose workers are threads of this process, unless told to start worker processes.
IN_PROCESS_RUNNERS = ("FnApiRunner", "DirectRunner", "BundleBasedDirectRunner")


@dataclass(frozen=True)
class Stage:
    """A stage as the user sees it: one or more pipeline steps, counted by `counters[0]`.

    Later counters only mark the stage as working (e.g. rows staged before any is written).
    `total` is what it will have counted when done, where known before; None: the output of
    the stage before it. `output` is what it hands on; `notes` add figures worth a glance.
    """

    name: str
    unit: str
    counters: tuple[str, ...]
    total: Callable[[Counts, int, int], int] | None = None  # (counts, planned rows, ledger rows)
    output: Callable[[Counts], int] | None = None
    notes: Callable[[Counts, bool], list[str]] = lambda c, done: []


def _some(figure: str, count: int) -> list[str]:
    return [f"{count:,} {figure}"] if count else []


STAGES = (
    Stage("read", "rows", (counts.READ,), total=lambda c, planned, ledger: planned,
          output=lambda c: c[counts.SCORED] - c[counts.FILTERED],
          notes=lambda c, done: _some("filtered", c[counts.FILTERED])
          + _some("rejected", c[counts.REJECTED] - c[counts.IDS_REPEATED])),
    Stage("check ids", "documents", (counts.IDS,), output=lambda c: c[counts.IDS] - c[counts.IDS_REPEATED],
          notes=lambda c, done: _some("repeated ids rejected", c[counts.IDS_REPEATED])),
    Stage("exact dedup", "documents", (counts.EXACT,), output=lambda c: c[counts.EXACT] - c[counts.EXACT_DUPLICATES],
          notes=lambda c, done: _some("duplicates", c[counts.EXACT_DUPLICATES])
          + _some("duplicates of earlier outputs", c[counts.PRIOR_DUPLICATES])),
    # Signing candidates and comparing pairs come first (and may not happen at all: no candidates).
    Stage("near dedup", "documents", (counts.NEAR, counts.SIGNED, counts.PAIRS),
          output=lambda c: c[counts.NEAR] - c[counts.NEAR_DUPLICATES],
          notes=lambda c, done: _some("duplicates", c[counts.NEAR_DUPLICATES]) if done or c[counts.NEAR]
          else _some("candidates signed", c[counts.SIGNED]) + _some("pairs compared", c[counts.PAIRS])),
    Stage("mix", "documents", (counts.MIXED,),
          notes=lambda c, done: _some("rows selected", c[counts.SELECTED_ROWS])),
    # Every output folder: the selected rows (repeats included), the side outputs and the ledger.
    Stage("write", "rows", (counts.WRITTEN, counts.STAGED),
          total=lambda c, planned, ledger: (c[counts.SELECTED_ROWS] + c[counts.REJECT_RECORDS] + c[counts.FILTERED]
                                            + c[counts.EXACT_DUPLICATES] + c[counts.NEAR_DUPLICATES]
                                            + c[counts.PRIOR_DUPLICATES] + c[counts.INDEXED] + ledger),
          notes=lambda c, done: [] if done else _some("sorted into shards", c[counts.STAGED])),
    Stage("publish", "", (counts.PUBLISHED,)),
)


@dataclass(frozen=True)
class StageState:
    stage: Stage
    count: int
    total: int | None
    start: float  # when the stage before it last counted (or the pipeline started)
    last: float  # when it last counted
    notes: tuple[str, ...]
    done_notes: tuple[str, ...]


class _Zero(dict):
    def __missing__(self, key: str) -> int:
        return 0


def stage_states(tallies: dict[str, counts.Tally], planned_rows: int, started: float,
                 ledger_rows: int = 0) -> list[StageState]:
    """The stages that have counted anything, in order; the last one is the one running."""
    values = _Zero({name: t.count for name, t in tallies.items()})
    states: list[StageState] = []
    start, handed_on = started, None
    for stage in STAGES:
        seen = [tallies[c] for c in stage.counters if c in tallies]
        if not seen:
            continue
        total = stage.total(values, planned_rows, ledger_rows) if stage.total else handed_on
        last = max(t.last for t in seen)
        states.append(StageState(stage, values[stage.counters[0]], total, start, last,
                                 tuple(stage.notes(values, False)), tuple(stage.notes(values, True))))
        start = last
        handed_on = stage.output(values) if stage.output else None
    return states


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _stamp(elapsed: float) -> str:
    """How every progress line starts: distinct from `hybridmix: error: ...` lines."""
    return f"hybridmix [{duration(elapsed):>7}]"


def _amount(state: StageState) -> str:
    if not state.stage.unit:
        return ""
    if state.total is None:
        return f"{state.count:,} {state.stage.unit}"
    return f"{state.count:,} of {state.total:,} {state.stage.unit}"


def _rate(state: StageState) -> str:
    # Until its latest count: a stage waiting for the next one to start does not slow down.
    seconds = state.last - state.start
    if not state.stage.unit or not state.count or seconds < 0.05:
        return ""
    return f"{state.count / seconds:,.0f} {state.stage.unit}/s"


def running_text(state: StageState) -> str:
    """The stage at work: how far, how fast."""
    parts = [_amount(state)]
    if state.total and state.stage.unit:
        parts[0] += f" ({min(state.count / state.total, 1.0):.0%})"
    parts.append(_rate(state))
    text = ", ".join(p for p in parts if p) or "working"
    return f"{state.stage.name}: {text}" + (f" ({', '.join(state.notes)})" if state.notes else "")


def done_text(state: StageState) -> str:
    """A finished stage in one line: what it counted, in how long, how fast."""
    seconds = state.last - state.start
    amount = _amount(state)
    rate = _rate(state)
    text = f"{amount} in {duration(seconds)}" if amount else f"done in {duration(seconds)}"
    text += f", {rate}" if rate else ""
    return f"{state.stage.name}: {text}" + (f" ({', '.join(state.done_notes)})" if state.done_notes else "")


def runner_of(options: PipelineOptions) -> tuple[str, bool]:
    """(runner name, whether its workers run in this process and so count here)."""
    runner = options.view_as(StandardOptions).runner
    name = str(runner if isinstance(runner, str) else type(runner).__name__).rsplit(".", 1)[-1]
    environment = (options.view_as(PortableOptions).environment_type or "").upper()
    if environment == "LOOPBACK":
        # Beam's LOOPBACK worker is threads of this process, unless an experiment makes it a process.
        return name, not options.view_as(DebugOptions).lookup_experiment("use_loopback_process_worker", False)
    processes = options.view_as(DirectOptions).direct_running_mode == "multi_processing"
    return name, name in IN_PROCESS_RUNNERS and not processes and environment in ("", "EMBEDDED")


def in_process(options: PipelineOptions) -> bool:
    """Whether the in-process runner runs the workers in this process: one worker, which runs a
    stage's bundles one after another."""
    name, local = runner_of(options)
    return local and name in IN_PROCESS_RUNNERS


class RunProgress:
    """Shows a run's progress on `stream` (None: not at all) and in the log; a context manager.

    `live`: rewrite one line in place (a terminal), else print a line per finished stage.
    """

    def __init__(self, stream, live: bool, runner: str, local: bool, interval_s: float = 1.0,
                 every_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._live = live
        self._runner = runner
        self._local = local
        self._interval = interval_s
        self._every = every_s
        self._clock = clock
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = clock()
        self._pipeline_started: float | None = None
        self._planned_rows = 0
        self._ledger_rows = 0
        self._reported = 0  # stages whose line is out
        self._last_line = self._started
        self._shown = 0  # characters of the live line on screen
        self._console = None

    # -- what the run tells it ---------------------------------------------------------------

    def running(self, plan: InputPlan, ledger: bool = False) -> None:
        """The pipeline is about to start: preparing (planning inputs, building the graph) is done.
        With `ledger`, ledger/ gets a row per input row (one per quarantined file of unknown size)."""
        now = self._clock()
        self._planned_rows = plan.planned_rows
        self._ledger_rows = plan.ledger_rows if ledger else 0
        quarantined = f" ({len(plan.bad_files)} quarantined)" if plan.bad_files else ""
        with self._lock:
            self._pipeline_started = now
            self._line(f"prepare: {len(plan.files) + len(plan.bad_files)} input files{quarantined}, "
                       f"{self._planned_rows:,} rows, in {duration(now - self._started)}", now)
            if not self._local:
                self._line(f"running on {self._runner}: its workers are other processes and their counts stay "
                           "there; the summary follows when the job is done", now)

    # -- the display ------------------------------------------------------------------------

    def _line(self, text: str, now: float) -> None:
        """One line for the record: on the stream (unless live) and in the log."""
        log.info("%s", text)
        self._last_line = now
        if self._stream is not None and not self._live:
            self._write(f"{_stamp(now - self._started)} {text}\n")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            # A closed or broken stderr must not stop the run; the display just ends.
            self._stream = None

    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self._stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        columns = columns or 80  # 0: a terminal that never said its size
        # One column short: a line that fills the last column wraps on some terminals.
        return max(20, columns - 1)

    def _show(self, text: str) -> None:
        text = text[:self._width()]
        # Spaces over what is left of a longer line: no terminal escape codes needed.
        self._write("\r" + text.ljust(self._shown))
        self._shown = len(text)

    def clear(self) -> None:
        """Take the live line off the screen (before a log message is printed, and at the end)."""
        with self._lock:
            if self._shown and self._stream is not None:
                self._write("\r" + " " * self._shown + "\r")
            self._shown = 0

    def _states(self) -> list[StageState]:
        return stage_states(counts.snapshot(), self._planned_rows, self._pipeline_started, self._ledger_rows)

    def _tick(self) -> None:
        with self._lock:
            now = self._clock()
            if self._pipeline_started is None:
                if self._live:
                    self._show(f"{_stamp(now - self._started)} prepare: planning the inputs, building the pipeline")
                return
            states = self._states()
            self._report_done(states[:-1], now)
            text, since = self._current(states)
            if now - self._last_line >= self._every:
                self._line(f"{text}, {duration(now - since)} so far", now)
            if self._live:
                self._show(f"{_stamp(now - self._started)} {text}")

    def _current(self, states: list[StageState]) -> tuple[str, float]:
        """What the running stage has done, and since when it runs; a stage that has counted all it
        will count waits for the next one, since its last count (the next step's kernels compiling,
        say): its "so far" went on growing while its "done" line later gave only its counting time."""
        if states:
            state = states[-1]
            if state.total and state.count >= state.total:
                return f"{running_text(state)}; waiting for the next step", state.last
            return running_text(state), state.start
        if self._local:
            return f"read: 0 of {self._planned_rows:,} rows", self._pipeline_started
        return f"running on {self._runner} (workers in other processes: no counts here)", self._pipeline_started

    def _report_done(self, states: list[StageState], now: float) -> None:
        # Stamped when printed, so stamps never go back: a stage is known done only once the next
        # one counts, which can be long after its own last count (the kernels compiling, say).
        for state in states[self._reported:]:
            self._line(done_text(state), now)
        self._reported = max(self._reported, len(states))

    def _finish(self, ok: bool) -> None:
        with self._lock:
            self.clear()
            if self._pipeline_started is None:
                if not ok:
                    log.info("stopped while preparing, after %s", duration(self._clock() - self._started))
                return
            states = self._states()
            now = self._clock()
            if ok:
                self._report_done(states, now)
                if not states:
                    self._line(f"{self._runner} finished the job in {duration(now - self._pipeline_started)}", now)
                return
            self._report_done(states[:-1], now)
            log.info("stopped during %s, after %s", self._current(states)[0], duration(now - self._started))

    # -- the thread ---------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - a display problem must never fail the run
                log.debug("progress display stopped", exc_info=True)
                return

    def __enter__(self) -> RunProgress:
        counts.reset()
        if self._live:
            self._console = console_handler()
            if self._console is not None:
                self._console.before_write = self.clear
        self._thread = threading.Thread(target=self._loop, name="hybridmix-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._console is not None:
            self._console.before_write = None
        try:
            self._finish(exc_type is None)
        except Exception:  # noqa: BLE001 - never hide the run's own outcome behind a display error
            log.debug("progress display failed", exc_info=True)


class NoProgress:
    """--quiet without --log-file: nothing to show, nothing to record."""

    def running(self, plan: InputPlan, ledger: bool = False) -> None:
        pass

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc) -> None:
        pass


def watch_run(stream, options: PipelineOptions, quiet: bool, log_file: str | None) -> RunProgress | NoProgress:
    """The progress display `run` uses: live on a terminal, lines elsewhere, only the log with --quiet."""
    if quiet and not log_file:
        return NoProgress()
    runner, local = runner_of(options)
    isatty = getattr(stream, "isatty", None)
    live = bool(isatty and isatty())
    return RunProgress(None if quiet else stream, live, runner, local)
