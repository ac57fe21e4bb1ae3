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


class _TerminalFormatter(logging.Formatter):
    """Log lines for a terminal: file names and ids in messages cannot drive it."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))


def setup_logging(verbose: bool, log_file: str | None) -> None:
    """stderr: warnings (everything with --verbose); --log-file: progress and tracebacks too."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_hybridmix", False):
            root.removeHandler(handler)
    root.setLevel(logging.DEBUG if log_file else (logging.INFO if verbose else logging.WARNING))
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
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
    beam_level = logging.INFO if verbose else (logging.WARNING if log_file else logging.CRITICAL)
    logging.getLogger("apache_beam").setLevel(beam_level)
    if not verbose:
        beam_dir = os.path.dirname(os.path.abspath(beam.__file__)) + os.sep
        # Beam also logs on the root logger (PortableRunner: the job's error messages).
        console.addFilter(lambda record: not record.name.startswith("apache_beam")
                          and not record.pathname.startswith(beam_dir))


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


