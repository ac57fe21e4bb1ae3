"""The `hybridmix` command's entry point (pyproject's [project.scripts]).

Loading the CLI imports Beam, pyarrow and numba: about 2 s before a command can handle a signal
itself. A Ctrl-C in that time printed a KeyboardInterrupt traceback, and SIGTERM ended the process
without a word. So stop signals are handled first, by a handler that needs none of those modules.
"""

from __future__ import annotations

import os
import signal
import sys

from hybridmix.schemas.errors import Interrupted

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop_while_loading(signum: int, _frame) -> None:
    # The command has not started (no lock, no staging folder): there is nothing to undo.
    # os.write and os._exit: the handler may run inside an import or a buffered write to stderr.
    message = Interrupted(signum, signal.Signals(signum).name).message
    os.write(sys.stderr.fileno(), f"hybridmix: {message}\n".encode())
    os._exit(128 + signum)


def main() -> int:
    """Handle stop signals, then load and run the CLI (`cli.console_main` takes them over)."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _stop_while_loading)
    from hybridmix.pipelines.cli import console_main

    return console_main()


if __name__ == "__main__":
    sys.exit(main())
