"""Typed errors. Each says what the runner (a person or a scheduler) should do next.

The exit code is part of the error type, so the CLI maps every failure to a documented code
without string matching (README, "Exit codes"): 2 config or unusable output, 3 data, 4 guard
violation, 5 targets the data cannot meet, 75 output locked (retry later), 128+N interrupted by
signal N, 1 anything else.
"""

from __future__ import annotations


class HybridmixError(Exception):
    """Base of every error hybridmix raises on purpose."""

    exit_code = 1
    # A stable prefix survives runners that re-wrap worker exceptions as plain text
    # (portable runners, Flink): the CLI finds it in the message and restores the type.
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"[hybridmix:{self.code}] {self.message}"


class ConfigError(HybridmixError):
    """The configuration is invalid; fix the named key and rerun."""

    exit_code = 2
    code = "config"


class InfeasibleMixtureError(HybridmixError):
    """The data cannot satisfy the configured targets; change targets, budget or max_repeats, or the data."""

    exit_code = 5
    code = "infeasible"


class DataError(HybridmixError):
    """An input file is missing, unreadable or has the wrong shape; fix the data and rerun."""

    exit_code = 3
    code = "data"


class SchemaError(DataError):
    """An input file's columns do not match what the corpus config names."""

    code = "schema"


class GuardViolation(HybridmixError):
    """A collapse guard was violated; nothing was published."""

    exit_code = 4
    code = "guard"


class OutputError(HybridmixError):
    """The output folder cannot be used (finished run without --force, locked, inside an input)."""

    exit_code = 2
    code = "output"


class OutputLocked(OutputError):
    """Another run is writing the same output; retry later (EX_TEMPFAIL)."""

    exit_code = 75
    code = "locked"


class Unreachable(HybridmixError):
    """A service the run needs did not answer (an object store's endpoint, a runner's job server):
    nothing was run; retry later (EX_TEMPFAIL), or fix the address."""

    exit_code = 75
    code = "unreachable"


class Interrupted(BaseException):
    """The run was stopped by a signal; its staging folder was removed and nothing was published.

    Raised by the signal handler wherever the main thread is, so it is a BaseException, as
    KeyboardInterrupt is: library code that catches Exception (Beam's type inference does, while
    the pipeline is built) would otherwise swallow it, and the run would go on and publish.
    """

    code = "interrupted"

    def __init__(self, signum: int, name: str, message: str | None = None) -> None:
        self.message = message or f"interrupted by {name}; nothing was published and the output folder is as it was"
        super().__init__(self.message)
        self.signum = signum
        self.name = name
        self.exit_code = 128 + signum

    def after_publish(self, out: str, run_id: str) -> Interrupted:
        """The same signal, come too late to stop the run: its publish step had passed the last check
        (a worker thread of an engine's job publishes while the main thread waits)."""
        return Interrupted(self.signum, self.name, f"interrupted by {self.name} as the run published: {out} holds "
                                                   f"run {run_id}, complete")

    def __str__(self) -> str:
        return f"[hybridmix:{self.code}] {self.message}"


# The first stop signal this process received, recorded by the CLI's signal handler before it
# raises Interrupted. Publishing checks it before it moves a run into place: with the in-process
# runner it runs in this process, so a signal whose exception library code swallowed still stops
# the run before anything is published.
_stop: Interrupted | None = None


def request_stop(interrupted: Interrupted | None) -> None:
    """Record a stop signal (None: forget it, when a command starts or ends)."""
    global _stop
    _stop = interrupted


def stop_requested() -> Interrupted | None:
    """The recorded stop signal, if any."""
    return _stop


def check_stop() -> None:
    """Raise the recorded stop signal, if any."""
    if _stop is not None:
        raise _stop


class FatalError(HybridmixError):
    """An internal invariant broke; abort and report."""

    code = "fatal"


ERRORS_BY_CODE: dict[str, type[HybridmixError]] = {
    cls.code: cls
    for cls in (
        HybridmixError,
        ConfigError,
        InfeasibleMixtureError,
        DataError,
        SchemaError,
        GuardViolation,
        OutputError,
        OutputLocked,
        Unreachable,
        FatalError,
    )
}
