"""The `hybridmix` command: run, validate, plan, inspect, explain, report, train-scorer, warmup.

Thin by design: parse flags, dispatch to the command, and turn every failure into one line on
stderr and a documented exit code. Everything a run decides is in the config or in the pipeline.
"""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from hybridmix.pipelines.arguments import whole_number
from hybridmix.pipelines.explain import add_parser as add_explain_parser
from hybridmix.pipelines.explain import cmd_explain
from hybridmix.pipelines.inspection import cmd_inspect, cmd_report
from hybridmix.pipelines.logs import setup_logging
from hybridmix.pipelines.outputs import check_log_file
from hybridmix.pipelines.plan import DEFAULT_SAMPLE_ROWS, cmd_plan
from hybridmix.pipelines.report import safe_text
from hybridmix.pipelines.run import DEFAULT_RUNNER, IfExists, cmd_run, cmd_validate, planned_output
from hybridmix.pipelines.train import add_parser as add_train_parser
from hybridmix.pipelines.train import cmd_train
from hybridmix.pipelines.warmup import add_parser as add_warmup_parser
from hybridmix.pipelines.warmup import cmd_warmup
from hybridmix.schemas.errors import (
    ERRORS_BY_CODE,
    ConfigError,
    HybridmixError,
    Interrupted,
    OutputError,
    request_stop,
    stop_requested,
)
from hybridmix.transforms.storage import is_remote, use_options

__all__ = ["DEFAULT_RUNNER", "main"]

log = logging.getLogger("hybridmix")

EXIT_CODES = """exit codes (what a scheduler should do):
  0    success, or --if-exists skip found this run already done
  1    internal or unexpected error (report it; a retry may help)
  2    configuration error or unusable output folder (fix the config or the command; do not retry)
  3    data error: inputs missing, unreadable, malformed, changed during the run, or ids repeated
       (fix the data; do not retry)
  4    a collapse guard was violated; nothing was published (change the recipe; do not retry)
  5    the data cannot meet the mixture's targets (change targets, budget or max_repeats; do not retry)
  75   the output folder is locked by another run, or (object stores) another run published there
       first, or a service the run needs did not answer (an object store, --job_endpoint) and nothing
       was run (temporary: retry later)
  129, 130, 143  interrupted by SIGHUP, SIGINT (Ctrl-C) or SIGTERM; nothing was published
  141  standard output was closed early (e.g. piped into `head`)"""

PLAN_EXIT_CODES = """exit codes:
  0    a plan was printed (feasible or likely infeasible by the estimate)
  1    internal or unexpected error (report it)
  2    configuration error (fix the config or the command)
  3    data error: inputs missing or unreadable (fix the data)
  5    certainly infeasible: even every input row could not fill the mixture (change targets, budget or
       max_repeats)
  129, 130, 143  interrupted by SIGHUP, SIGINT (Ctrl-C) or SIGTERM"""

VALIDATE_EXIT_CODES = """exit codes:
  0    valid: run would start (the config, its input files and columns, the output folder), or with
       --if-exists skip would find this same run done
  1    internal or unexpected error (report it)
  2    configuration error, or an output folder run would refuse: one holding a finished run, without
       --force (fix the config or the command)
  3    data error: inputs missing or unreadable, an earlier output's index incomplete (fix the data)
  5    certainly infeasible: even every input row could not fill the mixture (change targets, budget or
       max_repeats)
  75   another run is writing the output folder, or an object store or --job_endpoint did not answer
       (temporary: retry later)
  129, 130, 143  interrupted by SIGHUP, SIGINT (Ctrl-C) or SIGTERM"""

# inspect, explain and report: they read a finished output and write nothing into it (report
# writes report.html).
def read_exit_codes(command: str) -> str:
    """The exit codes of a command that reads a run's output; 2 is what each of them refuses."""
    refused = {
        "inspect": "OUT is not the output of a hybridmix run, or the run did not finish, or files its manifest\n"
                   "       lists are missing (what is there is still shown, and an error line ends it)",
        "report": "OUT is not the output of a finished hybridmix run, or files its manifest lists are missing,\n"
                  "       or --output is inside OUT (or its lock or staging folder)",
        "explain": "OUT is not the output of a finished hybridmix run, files its manifest lists are missing, or\n"
                   "       the doc_id is not in the run",
    }[command]
    return f"""exit codes:
  0    done
  1    internal or unexpected error (report it)
  2    {refused}
  129, 130, 143  interrupted by SIGHUP, SIGINT (Ctrl-C) or SIGTERM"""


TRAIN_EXIT_CODES = """exit codes:
  0    the scorer was written (a warning says when its held-out metrics mean little)
  1    internal or unexpected error (report it)
  2    a wrong option or combination of options (fix the command)
  3    data error: a file or column missing, labels unusable, too few rows or labels that never differ
       (fix the data)
  129, 130, 143  interrupted by SIGHUP, SIGINT (Ctrl-C) or SIGTERM"""

WARMUP_EXIT_CODES = """exit codes:
  0    compiled and cached
  1    internal or unexpected error (report it)
  2    a wrong option (fix the command)
  129, 130, 143  interrupted by SIGHUP, SIGINT (Ctrl-C) or SIGTERM"""

VERBOSE_HELP = "also print hybridmix's notes (run id, staging folder, clean-up) and tracebacks"
QUIET_HELP = "no progress display on stderr (errors and warnings still show; --log-file still gets it)"
LOG_FILE_HELP = "also write the log (progress, one line per stage; warnings, tracebacks) to this file (for run: " \
                "beside the output folder, not in it)"
BEAM_LOG_HELP = "show Apache Beam's own log from this level up, on stderr and in --log-file (default: none on " \
                "stderr, warnings in --log-file)"
BEAM_LEVELS = ("debug", "info", "warning", "error")

# Signals that stop a run: the run cleans up (staging folder, lock) and exits 128 + signal.
_STOP_SIGNALS = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class _Help(argparse.HelpFormatter):
    """Descriptions wrapped to the terminal, exit-code tables as written: RawDescriptionHelpFormatter
    kept descriptions on one line of several hundred characters."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("exit codes"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of `run` that shape the run or decide what it does with its output: `validate` takes
    them too, so that a scheduled command line can be checked as it will run."""
    parser.add_argument("--seed", type=int, help="selection / shuffle seed (overrides seed in the config)")
    parser.add_argument("--run-id", help="name of this run: 1-100 letters, digits, '_' or '-' (default: a digest "
                                         "of the config and the input files, so reruns of the same job match)")
    parser.add_argument("--if-exists", choices=[m.value for m in IfExists], default=None,
                        help="when the output holds a finished run: fail (default), skip (exit 0 if it is this "
                             "same run, else fail), replace")
    parser.add_argument("--force", action="store_true",
                        help="replace a finished output (same as --if-exists replace); refused when its folders "
                             "hold files its manifest does not list")
    parser.add_argument("--against", action="append", default=[], metavar="OUTPUT",
                        help="an earlier hybridmix output: new documents that duplicate one of its documents are "
                             "removed (added to dedup.against; repeat for several, e.g. the last seven daily "
                             "outputs)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridmix",
        description="Build training-data mixtures from human and synthetic text (Apache Beam).",
        epilog=EXIT_CODES,
        formatter_class=_Help,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    parser.add_argument("--log-file", help=LOG_FILE_HELP)
    parser.add_argument("--beam-log", choices=BEAM_LEVELS, help=BEAM_LOG_HELP)
    # The same flags after the command name; SUPPRESS keeps them from resetting the above.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    common.add_argument("--log-file", default=argparse.SUPPRESS, help=LOG_FILE_HELP)
    common.add_argument("--beam-log", choices=BEAM_LEVELS, default=argparse.SUPPRESS, help=BEAM_LOG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run the mixing pipeline",
        description=(
            "Run the mixing pipeline described by CONFIG. Options not listed here are passed to "
            "Apache Beam as pipeline options, e.g. --runner=PortableRunner --job_endpoint=localhost:8099 "
            "--environment_type=LOOPBACK for a Flink job server (README: Running at scale), or "
            "--s3_endpoint_url=URL. "
            "Without --runner Beam's in-process FnApiRunner is used (no network access). The output "
            "folder must be new, empty, or a finished hybridmix output."),
        epilog=EXIT_CODES,
        formatter_class=_Help,
    )
    run.add_argument("config", help="YAML config file")
    run.add_argument("--output", help="output folder (overrides output.path in the config)")
    _add_run_flags(run)
    run.add_argument("--kernel-threads", type=whole_number(1), metavar="N",
                     help="threads for the compiled text kernels (text analysis, document statistics, MinHash, "
                          "repetition, the scorer) when Beam's in-process runner runs the job in this process "
                          "(default: every core this process may use; the output is the same for any N). Other "
                          "runners, and --direct_running_mode=multi_processing, run one worker per core and "
                          "keep 1")
    run.add_argument("--no-lock", action="store_true",
                     help="object-store outputs whose store has no conditional writes (gs://, older S3-compatible "
                          "servers): publish without the check that no other run published meanwhile; use only "
                          "when nothing else writes to the output")

    validate = sub.add_parser(
        "validate",
        parents=[common],
        help="check a config, its input files and its output folder without running",
        description=("Validate CONFIG as `run` does before it starts, with the flags run would get (--seed, "
                     "--run-id, --if-exists, --force, --against, and Beam's pipeline options such as "
                     "--s3_endpoint_url or --job_endpoint): the config, each corpus's files and columns, "
                     "earlier outputs, a mixture no input could fill, and the output folder (--output, or "
                     "output.path), which run must be able to write beside (tested with an empty folder made "
                     "there and removed) and may replace only as those flags say. Nothing else is written."),
        epilog=VALIDATE_EXIT_CODES,
        formatter_class=_Help,
    )
    validate.add_argument("config", help="YAML config file")
    validate.add_argument("--output", help="the output folder to check, as run --output DIR takes it "
                                           "(default: the config's output.path)")
    _add_run_flags(validate)

    plan = sub.add_parser(
        "plan",
        parents=[common],
        help="estimate quotas, repeats and feasibility from the inputs' metadata, without running",
        description=(
            "Plan CONFIG's mixture in seconds from Parquet metadata (rows, text bytes) and a sample of each "
            "corpus (token counts), as if every row were kept: per source the estimated tokens, share, quota "
            "and repeats, the limiting source, and whether the targets are feasible. Exit 5 when they "
            "certainly are not (even keeping every row); `run` makes that check too before it starts. "
            "Nothing is written."),
        epilog=PLAN_EXIT_CODES,
        formatter_class=_Help,
    )
    plan.add_argument("config", help="YAML config file")
    plan.add_argument("--sample-rows", type=whole_number(0), default=DEFAULT_SAMPLE_ROWS,
                      help=f"texts per corpus to count tokens on (default {DEFAULT_SAMPLE_ROWS}; 0: metadata only, "
                           "so a mixture in tokens is not estimated)")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")

    inspect = sub.add_parser(
        "inspect",
        parents=[common],
        help="show a finished run: counts, mixture, schema, sample rows",
        description="Summarize the output folder OUT of a run. Exit 2 when it is unfinished or incomplete.",
        epilog=read_exit_codes("inspect"),
        formatter_class=_Help,
    )
    inspect.add_argument("out", help="output folder of a run")
    inspect.add_argument("--json", action="store_true", help="print manifest.json and nothing else")
    inspect.add_argument("--rows", type=whole_number(0), default=3, help="sample rows to show (default 3)")

    report = sub.add_parser(
        "report",
        parents=[common],
        help="build report.html again from a finished run",
        description=("Build the self-contained HTML report of the finished run in OUT (funnel, target vs achieved, "
                     "lengths, filters with examples, duplicates, collapse indicators, quality scores) from its "
                     "manifest and output files, and write it to OUT's report.html or to --output. A run writes "
                     "it too; this rebuilds it, e.g. after the report failed or with a newer hybridmix."),
        epilog=read_exit_codes("report"),
        formatter_class=_Help,
    )
    report.add_argument("out", help="output folder of a run (local or s3://)")
    report.add_argument("--output", help="write the page here instead of into the output (local path or s3://)")
    add_explain_parser(sub, [common], epilog=read_exit_codes("explain"), formatter_class=_Help)
    add_train_parser(sub, [common], epilog=TRAIN_EXIT_CODES, formatter_class=_Help)
    add_warmup_parser(sub, [common], epilog=WARMUP_EXIT_CODES, formatter_class=_Help)
    return parser


_PREFIX = re.compile(r"^\s*\[hybridmix:([a-z_]+)\]\s*")
# A worker's full disk, as runners re-raise it in text (Beam: "OSError: [Errno 28] ... [while running 'X']").
_DISK_FULL = re.compile(r"\[errno 28\]|No space left on device", re.IGNORECASE)
_STEP = re.compile(r"\[while running '([^']+)'\]")


def _clean(message: str, quoted: bool = False) -> str:
    """The first line of a message, without our type prefix or Beam's step suffix; `quoted`: a message
    found inside a runner's text, which may end in the quote of the repr around it."""
    text = _PREFIX.sub("", message.strip())
    text = text.splitlines()[0] if text else text
    text = text.split(" [while running")[0].strip()
    return text.rstrip("'\"") if quoted else text


def _chain(exc: BaseException):
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _as_hybridmix_error(exc: BaseException) -> HybridmixError | Interrupted | None:
    for current in _chain(exc):
        if isinstance(current, Interrupted):
            return current
        if isinstance(current, HybridmixError):
            return type(current)(_clean(current.message))
    # Runners that re-raise worker failures as plain text keep our "[hybridmix:code]" prefix.
    text = str(exc)
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in _chain(exc)) or _DISK_FULL.search(text):
        step = _STEP.search(text)
        return OutputError(
            "no space left on device" + (f" in step {step.group(1)}" if step else "")
            + ": free space where the output and its staging folder are (next to the output), then run again")
    marker = text.rfind("[hybridmix:")
    if marker < 0:
        return None
    code = _PREFIX.match(text[marker:])
    cls = ERRORS_BY_CODE.get(code.group(1), HybridmixError) if code else HybridmixError
    return cls(_clean(text[marker:], quoted=True))


class _Signals:
    """Turn stop signals into `Interrupted` in the main thread, and remember the first one.

    Beam may wrap an exception raised while it runs; the remembered signal still decides the
    exit code.
    """

    def __init__(self) -> None:
        self._saved: dict[int, object] = {}
        self._swallowed = False
        self._saved_hook = None

    def _handle(self, signum: int, _frame) -> None:
        # Only the first signal interrupts; later ones would break off the cleanup it started.
        # The exception is raised again only when the first one was swallowed (see _unraisable).
        if self.received is None or self._swallowed:
            self._swallowed = False
            request_stop(self.received or Interrupted(signum, _STOP_SIGNALS[signum]))
            raise self.received

    @property
    def received(self) -> Interrupted | None:
        """The first stop signal, as recorded for publishing to check (`request_stop`)."""
        return stop_requested()

    def _unraisable(self, unraisable) -> None:
        # A signal that lands in a finalizer (a ParquetWriter's __del__, say) raises where Python
        # ignores exceptions: the run would go on and publish. Deliver it again to the main thread.
        if unraisable.exc_value is not None and unraisable.exc_value is self.received:
            self._swallowed = True
            # From another thread, a moment later: raised in here, it would be swallowed again.
            threading.Timer(0.01, os.kill, (os.getpid(), self.received.signum)).start()
            return
        self._saved_hook(unraisable)

    def __enter__(self) -> _Signals:
        request_stop(None)
        if threading.current_thread() is threading.main_thread():
            for signum in _STOP_SIGNALS:
                self._saved[signum] = signal.signal(signum, self._handle)
            self._saved_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *exc) -> None:
        request_stop(None)
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        if self._saved_hook is not None:
            sys.unraisablehook = self._saved_hook


def _fail(message: str) -> None:
    # One line, whatever file names or ids the message quotes.
    print(f"hybridmix: {safe_text(message, 2000)}", file=sys.stderr)


def _dispatch(args: argparse.Namespace, rest: list[str]) -> int:
    if args.command == "run":
        return cmd_run(args, rest)
    if args.command == "warmup":
        return cmd_warmup(args)
    if args.command == "validate":
        return cmd_validate(args, rest)
    # Remote paths of the other commands reach their store as boto3 and Beam's defaults do (AWS_*
    # environment variables); `run` and `validate` take Beam's --s3_* options too.
    use_options(PipelineOptions([]))
    if args.command == "plan":
        return cmd_plan(args)
    if args.command == "train-scorer":
        return cmd_train(args)
    if args.command == "explain":
        return cmd_explain(args)
    if args.command == "report":
        return cmd_report(args)
    return cmd_inspect(args)


def _output_folder(args: argparse.Namespace) -> str | None:
    """The output folder the command writes or reads, if it has one."""
    if args.command in ("run", "validate"):
        return planned_output(args.config, args.output)
    if args.command in ("inspect", "explain", "report"):
        return args.out if is_remote(args.out) else os.path.realpath(args.out)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("run", "validate"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    out = _output_folder(args) if args.log_file else None
    if out is not None:
        try:
            # Before the log is opened: opening it writes it.
            check_log_file(args.log_file, out)
        except ConfigError as exc:
            _fail(f"error: {exc.message}")
            return exc.exit_code
    try:
        setup_logging(args.verbose, args.log_file,
                      getattr(logging, args.beam_log.upper()) if args.beam_log else None)
    except OSError as exc:
        _fail(f"error: --log-file {args.log_file}: cannot open ({exc.strerror})")
        return ConfigError.exit_code
    with _Signals() as signals:
        try:
            return _dispatch(args, rest)
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as other command-line tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 128 + signal.SIGPIPE
        except BaseException as exc:  # noqa: BLE001 - the one place that turns failures into exit codes
            if isinstance(exc, SystemExit):
                raise
            # An Interrupted that reaches here says best what happened (a run may have published first).
            known = exc if isinstance(exc, Interrupted) else (signals.received or _as_hybridmix_error(exc))
            if known is None and any(isinstance(e, KeyboardInterrupt) for e in _chain(exc)):
                known = Interrupted(signal.SIGINT, "SIGINT")
            log.debug("run failed", exc_info=True)
            if args.verbose:
                traceback.print_exc()
            if isinstance(known, Interrupted):
                _fail(known.message)
                return known.exit_code
            if known is not None:
                _fail(f"error: {known.message}")
                return known.exit_code
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _fail(f"internal error: {type(exc).__name__}: {first[:500]} (rerun with --verbose for the traceback)")
            return 1


def console_main(argv: Sequence[str] | None = None) -> int:
    """The `hybridmix` command (pyproject's entry point): `main` in a process that ends with it.

    What this process imported, and what the run leaves, lives until the process ends, so both
    are frozen out of the garbage collector's traversals: the interpreter's exit collected over
    every object a run left for 0.5-0.6 s after a 200,000-document run's last line (0.1 s frozen),
    and the run's own collections traversed every imported module's objects (0.15 s of their
    0.3 s). Nothing of the run's output depends on a collection: its files are written, closed
    and published before `main` returns. Not in `main`, which tests call in their own process.
    """
    gc.freeze()
    code = main(argv)
    # The outcome is decided and reported: the handler the entry point (console.py) installed for
    # loading would now call a late signal an interruption that published nothing.
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
    if code > 128 and any(t.is_alive() and not t.daemon for t in threading.enumerate()
                          if t is not threading.main_thread()):
        # An interrupted run whose engine's workers are threads of this process (LOOPBACK) can leave
        # some that never end, and the interpreter would wait for them after the last line: a
        # scheduler waited on a process that had said "interrupted". Everything is reported and
        # removed, and the lock goes with the process.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(console_main())
