"""Crash points for fault-injection tests.

With HYBRIDMIX_CRASH_AT=<point> in the environment the process kills itself (SIGKILL, no cleanup)
when it reaches that point, as a power cut or the OOM killer would. The tests use it to check
that a run killed anywhere leaves either the previous output or the new one, complete. Points:
`read`, `filtered`, `deduplicated`, `selected`, `written` (first element through each stage) and
`publish:staged`, `publish:parked`, `publish:moved` (local outputs), `publish:committed` (object
stores).

With HYBRIDMIX_HOLD_AT=<point> and HYBRIDMIX_HOLD_UNTIL=<file> the process instead waits at that
point until <file> exists, so a test can make another run overtake this one at an exact step.

With HYBRIDMIX_FAIL_AT=<point> the process raises an exception at that point instead, as a bug would.
Points: `report` (drawing report.html), which must not cost a run its output.
"""

from __future__ import annotations

import os
import signal
import time

CRASH_ENV = "HYBRIDMIX_CRASH_AT"
HOLD_ENV = "HYBRIDMIX_HOLD_AT"
RELEASE_ENV = "HYBRIDMIX_HOLD_UNTIL"
FAIL_ENV = "HYBRIDMIX_FAIL_AT"


class InjectedFailure(RuntimeError):
    """Raised at a fail point (HYBRIDMIX_FAIL_AT), for tests of what a failure there leaves."""


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    release = os.environ.get(RELEASE_ENV)
    if os.environ.get(HOLD_ENV) == name and release:
        while not os.path.exists(release):
            time.sleep(0.05)


def fail_point(name: str) -> None:
    if os.environ.get(FAIL_ENV) == name:
        raise InjectedFailure(f"injected failure at {name} ({FAIL_ENV})")
