"""The `hybridmix` command: run, validate, inspect.

Thin by design: parse flags, load the config, plan the inputs, build the pipeline, run,
print what happened. Everything a run decides is in the config or in the pipeline.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import time
import traceback
from collections.abc import Sequence

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions

from hybridmix.pipelines.build import build_pipeline, prepare_run
from hybridmix.pipelines.logs import setup_logging, worker_stderr_to_log
from hybridmix.pipelines.outputs import check_output, output_lock, remove_stale_staging
from hybridmix.pipelines.report import collapse_table, sample_rows, schema_text, summary
from hybridmix.schemas.config import load_config
from hybridmix.schemas.errors import (
    ERRORS_BY_CODE,
    ConfigError,
    HybridmixError,
    OutputError,
)
from hybridmix.transforms.inputs import plan_inputs
from hybridmix.transforms.publish import MANIFEST, SUCCESS
from hybridmix.transforms.storage import is_remote

log = logging.getLogger("hybridmix")

# Beam's in-process runner, by its full name: Beam 2.62 has no short name for it, and its
# DirectRunner may hand pipelines to runners that fetch components from the network.
DEFAULT_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
EXIT_CODES = """exit codes:
  0  success
  1  internal or unexpected error
  2  configuration error (including targets the data cannot meet, or an unusable output folder)
  3  data error (missing, unreadable or malformed input files)
  4  collapse guard violated (nothing published)"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridmix",
        description="Build training-data mixtures from human and synthetic text (Apache Beam).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and show tracebacks")
    parser.add_argument("--log-file", help="also write the log (progress, warnings, tracebacks) to this file")
    # The same two flags after the command name; SUPPRESS keeps them from resetting the above.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log progress and show tracebacks")
    common.add_argument("--log-file", default=argparse.SUPPRESS,
                        help="also write the log (progress, warnings, tracebacks) to this file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run the mixing pipeline",
        description=(
            "Run the mixing pipeline described by CONFIG. Options not listed here are passed to "
            "Apache Beam as pipeline options, e.g. --runner=FlinkRunner --flink_master=host:8081. "
            "Without --runner Beam's in-process FnApiRunner is used (no network access)."),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("config", help="YAML config file")
    run.add_argument("--output", help="output folder (overrides output.path in the config)")
    run.add_argument("--seed", type=int, help="selection / shuffle seed (overrides seed in the config)")
    run.add_argument("--run-id", help="name of this run (default: derived from config and input files)")
    run.add_argument("--force", action="store_true", help="replace a finished output folder")

    validate = sub.add_parser(
        "validate",
        parents=[common],
        help="check a config and its input files without running",
        description="Validate CONFIG, list each corpus's files and check that the configured columns exist.",
    )
    validate.add_argument("config", help="YAML config file")

    inspect = sub.add_parser(
        "inspect",
        parents=[common],
        help="show a finished run: counts, mixture, schema, sample rows",
        description="Summarize the output folder OUT of a run.",
    )
    inspect.add_argument("out", help="output folder of a run")
    inspect.add_argument("--json", action="store_true", help="print manifest.json and nothing else")
    inspect.add_argument("--rows", type=int, default=3, help="sample rows to show (default 3)")
    return parser


def beam_options(flags: list[str]) -> PipelineOptions:
    """Pipeline options from the flags hybridmix does not own; unknown flags are errors."""
    known = set(PipelineOptions(flags).get_all_options(retain_unknown_options=False))
    everything = PipelineOptions(flags).get_all_options(retain_unknown_options=True)
    unknown = set(everything) - known
    if unknown:
        # Beam keys options by destination (dashes become underscores); show them as typed.
        typed = [f.split("=", 1)[0] for f in flags if f.startswith("--")]
        shown = sorted({t for t in typed if t[2:].replace("-", "_") in unknown} or {"--" + u for u in unknown})
        raise ConfigError(
            f"unknown option(s): {', '.join(shown)} "
            "(not a hybridmix option and not an Apache Beam pipeline option)")
    expects_value = False
    for flag in flags:
        if flag.startswith("-"):
            expects_value = flag.startswith("--") and "=" not in flag
        elif expects_value:
            expects_value = False
        else:
            raise ConfigError(f"unexpected argument {flag!r} (run takes one CONFIG)")
    options = PipelineOptions(flags)
    values = options.get_all_options()
    if values.get("direct_running_mode") == "multi_threading":
        raise ConfigError(
            "--direct_running_mode=multi_threading is not supported: Beam's threaded mode was "
            "measured to lose elements; use multi_processing or in_memory")
    if not values.get("runner"):
        options = PipelineOptions(flags + [f"--runner={DEFAULT_RUNNER}"])
    return options


def cmd_run(args: argparse.Namespace, beam_flags: list[str]) -> int:
    started = time.monotonic()
    config = load_config(args.config).with_overrides(seed=args.seed, output_path=args.output)
    base_dir = os.path.dirname(os.path.abspath(args.config))
    out_dir = config.output.path
    if not out_dir:
        raise ConfigError("output.path: no output folder; pass --output DIR or set output.path")
    if args.output is None and not is_remote(out_dir):
        # Like the corpus paths, output.path in a config file is relative to that file.
        out_dir = os.path.join(base_dir, out_dir)
    options = beam_options(beam_flags)
    ctx = prepare_run(config, base_dir, out_dir, args.run_id)
    with output_lock(ctx.out_dir, ctx.run_id):
        check_output(ctx.out_dir, args.force, config, base_dir, [f.path for f in ctx.plan.files])
        local = not is_remote(ctx.stage_dir)
        if local:
            remove_stale_staging(ctx.out_dir)
        log.info("run %s: %d input files (%d quarantined), staging in %s", ctx.run_id, len(ctx.plan.files),
                 len(ctx.plan.bad_files), ctx.stage_dir)
        pipeline = beam.Pipeline(options=options)
        build_pipeline(pipeline, config, ctx)
        try:
            with worker_stderr_to_log(not args.verbose, args.log_file):
                pipeline.run().wait_until_finish()
        finally:
            if local and os.path.exists(ctx.stage_dir):
                shutil.rmtree(ctx.stage_dir, ignore_errors=True)
    manifest = _read_manifest(ctx.out_dir)
    print(summary(manifest))
    print(f"\nwrote {ctx.out_dir} in {time.monotonic() - started:.1f} s")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    base_dir = os.path.dirname(os.path.abspath(args.config))
    plan = plan_inputs(config.ingest, base_dir)
    print(f"{args.config}: config is valid (digest {config.digest()[:12]})")
    for ci, corpus in enumerate(config.corpora):
        files = [f for f in plan.files if f.corpus == ci]
        rows = sum(f.rows for f in files)
        print(f"  {corpus.name} ({corpus.origin.value}): {len(files)} file(s), {rows:,} rows, "
              f"text column {corpus.text_column!r}")
    return 0


def _read_manifest(out_dir: str) -> dict:
    path = os.path.join(out_dir, MANIFEST)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise OutputError(f"{out_dir}: no {MANIFEST}; not the output of a finished hybridmix run") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise OutputError(f"{path}: cannot read ({exc})") from None


def cmd_inspect(args: argparse.Namespace) -> int:
    manifest = _read_manifest(args.out)
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    if not os.path.exists(os.path.join(args.out, SUCCESS)):
        print(f"warning: {args.out} has no {SUCCESS}; the run did not finish", file=sys.stderr)
    print(summary(manifest))
    print()
    print(collapse_table(manifest))
    data = manifest["outputs"].get("data", [])
    if data:
        first = os.path.join(args.out, data[0]["path"])
        pf = pq.ParquetFile(first)
        print(f"\nschema of data/ ({len(data)} file(s), {sum(d['rows'] for d in data):,} rows):")
        print(schema_text(pf.schema_arrow))
        if args.rows > 0:
            rows = pf.read_row_group(0).slice(0, args.rows).to_pylist() if pf.num_row_groups else []
            print(f"\nfirst {len(rows)} row(s) of {data[0]['path']}:")
            print(sample_rows(rows, ["id", "origin", "source", "tokens", "split", "text"]))
    return 0


_PREFIX = re.compile(r"^\s*\[hybridmix:([a-z_]+)\]\s*")


def _clean(message: str) -> str:
    """The first line of a message, without our type prefix or Beam's step suffix."""
    text = _PREFIX.sub("", message.strip())
    text = text.splitlines()[0] if text else text
    return text.split(" [while running")[0].strip().rstrip("'\"")


def _as_hybridmix_error(exc: BaseException) -> HybridmixError | None:
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, HybridmixError):
            return type(current)(_clean(current.message))
        current = current.__cause__ or current.__context__
    # Runners that re-raise worker failures as plain text keep our "[hybridmix:code]" prefix.
    text = str(exc)
    marker = text.rfind("[hybridmix:")
    if marker < 0:
        return None
    code = _PREFIX.match(text[marker:])
    cls = ERRORS_BY_CODE.get(code.group(1), HybridmixError) if code else HybridmixError
    return cls(_clean(text[marker:]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    setup_logging(args.verbose, args.log_file)
    if rest and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "run":
            return cmd_run(args, rest)
        if args.command == "validate":
            return cmd_validate(args)
        return cmd_inspect(args)
    except KeyboardInterrupt:
        print("hybridmix: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:  # noqa: BLE001 - the one place that turns failures into exit codes
        if isinstance(exc, SystemExit):
            raise
        known = _as_hybridmix_error(exc)
        log.debug("run failed", exc_info=True)
        if args.verbose:
            traceback.print_exc()
        if known is not None:
            print(f"hybridmix: error: {known.message}", file=sys.stderr)
            return known.exit_code
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"hybridmix: internal error: {type(exc).__name__}: {first[:500]} "
              "(rerun with --verbose for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
