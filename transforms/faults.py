"""Crash points for fault-injection tests.

With HYBRIDMIX_CRASH_AT=<point> in the environment the process kills itself (SIGKILL, no cleanup)
when it reaches that point, as a power cut or the OOM killer would. The tests use it to check
that a run killed anywhere leaves either the previous output or the new one, complete. Points:
`read`, `filtered`, `deduplicated`, `selected`, `written` (first element through each stage) and
`publish:staged`, `publish:parked`, `publish:moved`.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "HYBRIDMIX_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
