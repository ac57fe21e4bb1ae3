"""Logging for the CLI: what goes to stderr, what to --log-file, and Beam's worker threads' output."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading

import apache_beam as beam

from hybridmix.pipelines.report import escape_controls

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# How a command ended, as it says on stdout (a run skipped, a run published): logged under this name
# for --log-file, where a scheduled job's record is, and kept off stderr, which would say it twice.
OUTCOME_LOGGER = "hybridmix.outcome"


class _TerminalFormatter(logging.Formatter):
    """Log lines for a terminal: file names and ids in messages cannot drive it. hybridmix's own say
    `hybridmix: warning: ...`, as its errors say `hybridmix: error: ...`; the time and the logger's
    name are for --log-file. Other libraries' lines (Beam's) keep them."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name.startswith("hybridmix") and not record.exc_info:
            level = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
            return escape_controls(f"hybridmix: {level}{record.getMessage()}")
        return escape_controls(super().format(record))


class _Console(logging.StreamHandler):
    """stderr, shared with the progress line: `before_write` takes that line off the screen first."""

    before_write = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.before_write is not None:
            self.before_write()
        super().emit(record)


def console_handler() -> _Console | None:
    """The handler `setup_logging` put on stderr, if any."""
    return next((h for h in logging.getLogger().handlers if isinstance(h, _Console)), None)


def _is_beam(record: logging.LogRecord, beam_dir: str) -> bool:
    # Beam also logs on the root logger (PortableRunner: the job's messages).
    return record.name.startswith("apache_beam") or record.pathname.startswith(beam_dir)


def setup_logging(verbose: bool, log_file: str | None, beam_level: int | None = None) -> None:
    """What goes where. stderr: warnings; hybridmix's progress notes too with --verbose (and Beam's
    warnings); Beam's own log from `beam_level` up (--beam-log). --log-file: all of hybridmix's log
    (the progress lines, tracebacks), Beam's warnings or its log from `beam_level` up, and the
    messages of a portable runner's job.

    Without --beam-log, Beam's INFO log stays out even with --verbose: on a local run it is some 600
    lines about type hints, and the CLI reports failures in one line of its own.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_hybridmix", False):
            root.removeHandler(handler)
    level = logging.DEBUG if log_file else (logging.INFO if verbose else logging.WARNING)
    root.setLevel(min(level, beam_level) if beam_level is not None else level)
    beam_dir = os.path.dirname(os.path.abspath(beam.__file__)) + os.sep
    ours = logging.INFO if verbose else logging.WARNING
    beam_shown = beam_level if beam_level is not None else (logging.WARNING if verbose else logging.CRITICAL + 1)

    def to_console(record: logging.LogRecord) -> bool:
        if record.name.startswith("hybridmix.progress"):
            return False  # the progress display writes stderr itself
        if record.name == OUTCOME_LOGGER:
            return False
        if _is_beam(record, beam_dir):
            return record.levelno >= beam_shown
        return record.levelno >= (ours if record.name.startswith("hybridmix") else logging.WARNING)

    console = _Console(sys.stderr)
    console.setLevel(logging.DEBUG)
    console.addFilter(to_console)
    console.setFormatter(_TerminalFormatter(_LOG_FORMAT))
    handlers = [console]
    if log_file:
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setLevel(logging.DEBUG)
        to_file.setFormatter(logging.Formatter(_LOG_FORMAT))
        handlers.append(to_file)
    for handler in handlers:
        handler._hybridmix = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # Beam logs each worker failure with its traceback; the CLI reports it in one line.
    if beam_level is None:
        beam_level = logging.WARNING if (log_file or verbose) else logging.CRITICAL
    logging.getLogger("apache_beam").setLevel(beam_level)


@contextlib.contextmanager
def worker_stderr_to_log(enabled: bool, log_file: str | None):
    """With --environment_type=LOOPBACK Beam's SDK harness runs in this process, and its threads
    print worker tracebacks straight to stderr (or die with uncaught gRPC errors). The CLI
    reports a failure in one line, so those go to the log file, if any, instead."""
    if not enabled:
        yield
        return
    saved = sys.stderr
    sink = open(log_file, "a", encoding="utf-8") if log_file else None
    sys.stderr = _MainThreadOnly(saved, sink)
    try:
        yield
    finally:
        sys.stderr = saved
        if sink:
            sink.close()


class _MainThreadOnly:
    """A stderr for the main thread only; other threads' writes go to `sink` (or nowhere)."""

    def __init__(self, stream, sink) -> None:
        self._stream = stream
        self._sink = sink

    def write(self, text: str) -> int:
        if threading.current_thread() is threading.main_thread():
            return self._stream.write(text)
        if self._sink is not None:
            self._sink.write(text)
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


