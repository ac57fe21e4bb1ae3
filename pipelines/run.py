"""`hybridmix run` and `hybridmix validate`: check everything that can be checked before the pipeline
starts, then run it with the output folder locked."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import socket
import sys
import time
from enum import StrEnum

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState, create_runner

from hybridmix.pipelines.build import (
    RunContext,
    build_pipeline,
    check_carry_forward_reachable,
    check_prior_is_not,
    dedup_params,
    load_carry_forward,
    load_run_scorer,
    load_run_tokenizer,
    prepare_run,
    run_id_of,
)
from hybridmix.pipelines.inspection import read_manifest, run_folder
from hybridmix.pipelines.logs import OUTCOME_LOGGER, worker_stderr_to_log
from hybridmix.pipelines.outputs import (
    Existing,
    check_output,
    check_unlocked,
    check_writable,
    finished_run_id,
    make_staging,
    output_lock,
    recover_and_clean,
    remove_staging,
    resolve_output,
)
from hybridmix.pipelines.plan import certainly_infeasible
from hybridmix.pipelines.progress import in_process, watch_run
from hybridmix.pipelines.report import summary
from hybridmix.schemas.config import PipelineConfig, load_config
from hybridmix.schemas.errors import (
    ConfigError,
    InfeasibleMixtureError,
    OutputError,
    Unreachable,
    stop_requested,
)
from hybridmix.transforms import kernels, parallel
from hybridmix.transforms.decontam import plan_eval_sets
from hybridmix.transforms.inputs import InputFile, one_line, plan_inputs
from hybridmix.transforms.objectstore import check_reachable, read_commit, s3_settings, start_attempt
from hybridmix.transforms.prior import plan_prior
from hybridmix.transforms.publish import SUCCESS, not_written_here
from hybridmix.transforms.report_html import REPORT
from hybridmix.transforms.sketch import lsh_shape
from hybridmix.transforms.storage import is_remote, use_options

log = logging.getLogger("hybridmix")
outcome = logging.getLogger(OUTCOME_LOGGER)

# Beam's in-process runner, by its full name: Beam 2.62 has no short name for it, and its
# DirectRunner may hand pipelines to runners that fetch components from the network.
DEFAULT_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


class Options(PipelineOptions):
    """Pipeline options that make each view (`view_as`) once per options class.

    Beam makes a new view each time it applies a transform (TypeOptions, twice per transform), and
    each view builds an argparse parser of its class's options and parses the flags: about 700 views,
    0.4-0.5 s of building hybridmix's pipeline (1.0-1.4 s with them, 0.6-0.9 s without, measured on
    the 200,000-document benchmark config). A view holds the flags' values of its class and shares
    every value with the options it views, so one view per class is the same view.
    """

    def view_as(self, cls):
        views = self.__dict__.setdefault("_views", {})  # not self._views: options route attributes to values
        if cls not in views:
            views[cls] = super().view_as(cls)
        return views[cls]

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_views", None)  # made again where the options are unpickled
        return state


class IfExists(StrEnum):
    """What `run` does when the output folder already holds a finished run."""

    FAIL = "fail"  # refuse (exit 2)
    SKIP = "skip"  # exit 0 without work if it is the same run (same config and inputs); else refuse
    REPLACE = "replace"  # replace it (--force)


def beam_options(flags: list[str]) -> PipelineOptions:
    """Pipeline options from the flags hybridmix does not own; unknown flags are errors."""
    for flag in flags:
        if flag.split("=", 1)[0] in ("--dry_run", "--dry-run"):
            # Beam knows --dry_run, but the local runner ignores it: the run would publish.
            raise ConfigError(f"{flag}: hybridmix run has no dry run; `hybridmix validate CONFIG` checks the "
                              "config, the input files and the output folder without running")
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
    options = Options(flags)
    values = options.get_all_options()
    if values.get("direct_running_mode") == "multi_threading":
        raise ConfigError(
            "--direct_running_mode=multi_threading is not supported: Beam's threaded mode was "
            "measured to lose elements; use multi_processing or in_memory")
    if not values.get("runner"):
        options = Options(flags + [f"--runner={DEFAULT_RUNNER}"])
    else:
        _check_runner(values["runner"])
    return options


def _check_runner(name: str) -> None:
    """A runner Beam knows, named as Beam names runners: a misspelt one (FlinkRuner) passed `validate`
    and stopped `run` with an internal error."""
    try:
        create_runner(name)
    except (ValueError, ImportError, AttributeError) as exc:
        raise ConfigError(f"--runner={name}: {one_line(exc)}") from None


def _output_path(config: PipelineConfig, base_dir: str, given: str | None) -> str:
    out_dir = config.output.path
    if not out_dir:
        raise ConfigError("output.path: no output folder; pass --output DIR or set output.path")
    if given is None and not is_remote(out_dir):
        # Like the corpus paths, output.path in a config file is relative to that file.
        out_dir = os.path.join(base_dir, out_dir)
    return out_dir


def planned_output(config_path: str, given: str | None) -> str | None:
    """The output folder `run` or `validate` would use, resolved as they resolve it; None when the
    config does not load or names none (the command itself then says why)."""
    try:
        if given is None:
            given = _output_path(load_config(config_path), os.path.dirname(os.path.abspath(config_path)), None)
        return resolve_output(given)
    except (ConfigError, OutputError):
        return None


def _ready_output(ctx: RunContext, config: PipelineConfig, if_exists: IfExists, options: PipelineOptions,
                  no_lock: bool) -> RunContext | None:
    """With the lock held: finish what an interrupted run left, check the output folder, create the
    staging folder. None when the output already holds this very run and `if_exists` is skip."""
    remote = is_remote(ctx.out_dir)
    if not remote:
        recover_and_clean(ctx.out_dir)
    existing = check_output(ctx.out_dir, config, ctx.base_dir, [f.path for f in ctx.plan.files])
    # On an object store the commit this run will replace is read before its attempt starts.
    base = read_commit(ctx.out_dir) if remote else None
    if already_done(ctx.out_dir, existing, if_exists, ctx.run_id, base.run_id if base else None):
        return None
    if remote:
        start_attempt(ctx.stage_dir, ctx.run_id, base)
        return dataclasses.replace(ctx, remote={"base": base, "settings": s3_settings(options),
                                                "locked": not no_lock})
    make_staging(ctx.stage_dir)
    return ctx


def _skipped(ctx: RunContext) -> int:
    skipped = f"{ctx.out_dir} already holds run {ctx.run_id} (same config and inputs); nothing to do"
    print(skipped)
    outcome.info("%s", skipped)
    return 0


def already_done(out: str, existing: Existing, if_exists: IfExists, run_id: str, published: str | None = None) -> bool:
    """Whether the output already holds this very run and `if_exists` is skip; raises where `run` refuses
    the output (a finished run it may not replace). `published`: an object store's committed run id."""
    if existing is not Existing.FINISHED:
        return False
    if if_exists is not IfExists.REPLACE:
        done = published or finished_run_id(out)
        if if_exists is IfExists.SKIP and done == run_id:
            return True
        hint = f" (run {done}; this run is {run_id})" if if_exists is IfExists.SKIP else f" (run {done})"
        instead = " instead of --if-exists skip" if if_exists is IfExists.SKIP else ""
        raise OutputError(f"{out} holds a finished run{hint}; pass --force{instead} to replace it")
    foreign = [] if is_remote(out) else not_written_here(out)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise OutputError(
            f"{out} holds a finished run, and also files its manifest does not list, or lists with "
            f"another size (written over since; {shown}); "
            "replacing the output would delete them, and hybridmix never deletes what it did not write: "
            "move them out of the folder, or choose another output folder")
    return False


def if_exists_of(args: argparse.Namespace) -> IfExists:
    """What `--force` and `--if-exists` ask for, refused when they contradict each other."""
    if args.force and args.if_exists not in (None, IfExists.REPLACE.value):
        raise ConfigError(f"--force replaces a finished output; --if-exists {args.if_exists} says otherwise: "
                          "give one of them")
    return IfExists.REPLACE if args.force else IfExists(args.if_exists or IfExists.FAIL.value)


def overridden_config(args: argparse.Namespace) -> PipelineConfig:
    """The config with the command line's --seed, --output and --against (paths of the shell's folder,
    made absolute: the manifest's other paths are read against the config's folder, and a relative
    `--output` there named a folder that does not exist)."""
    against = [p if is_remote(p) else os.path.abspath(p) for p in args.against]
    output = args.output if args.output is None or is_remote(args.output) else os.path.abspath(args.output)
    return load_config(args.config).with_overrides(seed=args.seed, output_path=output, against=against)


def _load_kernels(options: PipelineOptions) -> None:
    """Load numba's compiled code before the run's threads start: the first kernel call of a process
    sets up numba's code generator, which imports modules (scipy's among them). It was done on a
    helper thread while the run was planned, and on a loaded machine a run hung at its first batch
    (a CI run's interrupted-run test, which SIGINT could not end): that thread and a reading thread
    (pyarrow asks for pandas on most calls) stood in CPython's import machinery, each waiting for
    the global import lock. Done here it costs the run about 0.2 s (0.4 s on a busy core)."""
    if in_process(options):
        kernels.mix64(np.zeros(1, np.uint64))


def kernel_threads(options: PipelineOptions, asked: int | None) -> int:
    """Threads for the compiled kernels of this process: only where the in-process runner runs the
    workers here; other runners' workers are processes, one per core already."""
    if not in_process(options):
        return 1
    return asked or parallel.available_cores()


def _run_to_the_end(pipeline: beam.Pipeline) -> None:
    """Run the pipeline and wait for it. A job on an engine (PortableRunner) runs on its own after
    this process stops waiting, so a signal or an error while waiting cancels it, and waits up to
    30 s for it to stop: under LOOPBACK its workers are threads of this process, and the staging
    folder they write into is removed next. An engine's job left running held the cluster, and its
    workers this process, long after `interrupted` was printed."""
    try:
        result = pipeline.run()
    except RuntimeError as exc:
        if "Unable to fetch remote job server jar" in str(exc):
            raise ConfigError(f"{one_line(exc)}: this runner downloads its job server, and this machine cannot; "
                              "start the job server yourself and pass --runner=PortableRunner "
                              "--job_endpoint=HOST:PORT (see the README's 'Running at scale')") from None
        raise
    try:
        result.wait_until_finish()
    except BaseException:
        try:
            if not PipelineState.is_terminal(result.state):
                result.cancel()
                result.wait_until_finish(duration=30_000)
        except Exception:  # noqa: BLE001 - the run is failing already; its own error is the one to report
            log.info("cancelling the job failed", exc_info=True)
        raise


def _published_by(ctx: RunContext) -> bool:
    """Whether this very run (not an earlier one of the same id) is what the output now publishes."""
    if is_remote(ctx.out_dir):
        commit = read_commit(ctx.out_dir)
        return commit is not None and commit.folder(ctx.out_dir) == ctx.stage_dir.rstrip("/")
    if not os.path.isfile(os.path.join(ctx.out_dir, SUCCESS)):
        return False
    try:
        manifest = read_manifest(ctx.out_dir)
    except (OutputError, OSError, ValueError):
        return False
    return manifest.get("run_id") == ctx.run_id and manifest.get("started_at") == ctx.started_at


def check_job_server(options: PipelineOptions) -> None:
    """A portable runner's job server answers at --job_endpoint, before the inputs are planned: without
    one the run showed `read: 0 of N rows` for a minute and then failed with a FutureTimeoutError."""
    values = options.get_all_options()
    endpoint = values.get("job_endpoint") or ""
    if values.get("runner") != "PortableRunner" or ":" not in endpoint:
        return
    host, _, port = endpoint.rpartition(":")
    try:
        socket.create_connection((host or "localhost", int(port)), timeout=10).close()
    except (OSError, ValueError) as exc:
        raise Unreachable(f"--job_endpoint {endpoint}: no Beam job server answers there "
                          f"({getattr(exc, 'strerror', None) or exc}); start it (Flink: see the README's "
                          "'Running at scale'), or check the address; nothing was run") from None


def cmd_run(args: argparse.Namespace, beam_flags: list[str]) -> int:
    started = time.monotonic()
    config = overridden_config(args)
    base_dir = os.path.dirname(os.path.abspath(args.config))
    out_dir = _output_path(config, base_dir, args.output)
    options = beam_options(beam_flags)
    check_job_server(options)
    _load_kernels(options)
    use_options(options)
    if_exists = if_exists_of(args)
    # Started before the inputs are planned: reading many footers (remote ones above all) takes a while.
    with watch_run(sys.stderr, options, args.quiet, args.log_file) as progress:
        check_reachable([out_dir])  # the inputs' stores are asked when they are planned
        ctx = prepare_run(config, base_dir, out_dir, args.run_id)
        # A mixture that even every input row could not fill fails now, not after filters and dedup.
        impossible = certainly_infeasible(config, ctx.plan)
        if impossible:
            raise InfeasibleMixtureError(f"{impossible} (even if every input row were kept; nothing was run)")
        check_carry_forward_reachable(config, ctx.plan, ctx.carry_forward)
        if not is_remote(ctx.out_dir):
            # Checked again under the lock; a folder refused now gets no lock file beside it.
            existing = check_output(ctx.out_dir, config, ctx.base_dir, [f.path for f in ctx.plan.files])
            # This very run, finished: nothing is written, so no lock is taken (on a read-only file
            # system, an archive or a snapshot, taking one failed with exit 2, and a scheduler gave up).
            if if_exists is IfExists.SKIP and existing is Existing.FINISHED \
                    and finished_run_id(ctx.out_dir) == ctx.run_id:
                return _skipped(ctx)
        with output_lock(ctx.out_dir, ctx.run_id, args.no_lock):
            ready = _ready_output(ctx, config, if_exists, options, args.no_lock)
            if ready is None:
                return _skipped(ctx)
            ctx = ready
            log.info("run %s: %d input files (%d quarantined), staging in %s", ctx.run_id, len(ctx.plan.files),
                     len(ctx.plan.bad_files), ctx.stage_dir)
            threads_before = parallel.threads()
            try:
                try:
                    pipeline = beam.Pipeline(options=options)
                    build_pipeline(pipeline, config, ctx)
                    progress.running(ctx.plan, config.output.ledger)
                    parallel.set_threads(kernel_threads(options, args.kernel_threads))
                    with worker_stderr_to_log(not args.verbose, args.log_file):
                        _run_to_the_end(pipeline)
                finally:
                    parallel.set_threads(threads_before)
                    # After a successful publish the staging folder is the output. After a failure or an
                    # interrupt it goes, and an output parked by an interrupted publish goes back in place.
                    remove_staging(ctx.stage_dir, ctx.out_dir)
                    if not is_remote(ctx.out_dir):
                        recover_and_clean(ctx.out_dir)
            except BaseException:
                # However a runner wraps the signal's exception, the signal is recorded.
                stop = stop_requested()
                if stop is not None and _published_by(ctx):
                    raise stop.after_publish(ctx.out_dir, ctx.run_id) from None
                raise
    print(summary(read_manifest(ctx.out_dir)))
    took = time.monotonic() - started
    print(f"\nwrote {ctx.out_dir} in {took:.1f} s")
    print(f"report: {run_folder(ctx.out_dir)[0].rstrip('/')}/{REPORT} (open it in a browser)")
    outcome.info("run %s succeeded: wrote %s in %.1f s", ctx.run_id, ctx.out_dir, took)
    return 0


def carried_text(files: list[InputFile]) -> str:
    """What a `format: hybridmix` corpus takes of its earlier outputs, per output."""
    outputs: dict[tuple[str, str], list[int]] = {}
    for f in files:
        counts = outputs.setdefault((f.carried.output, f.carried.run_id), [0, 0, 0, 0])
        for i, n in enumerate((1, f.carried.taken, f.carried.copies, f.carried.other_origin)):
            counts[i] += n
    return "; ".join(f"{output} (run {run_id}): {n_files} data file(s), {taken:,} documents taken, {copies:,} "
                     f"upsampled copies skipped, {other:,} left to the other origin"
                     for (output, run_id), (n_files, taken, copies, other) in sorted(outputs.items()))


def cmd_validate(args: argparse.Namespace, beam_flags: list[str] = ()) -> int:
    """Everything `run` checks before it starts the pipeline, without running it (the only write is the
    empty folder that tests the output's location, removed at once)."""
    options = beam_options(list(beam_flags))
    use_options(options)
    check_job_server(options)
    config = overridden_config(args)
    if_exists = if_exists_of(args)
    base_dir = os.path.dirname(os.path.abspath(args.config))
    plan = plan_inputs(config.ingest, base_dir)
    lsh_shape(config.dedup.near)
    # run loads these before it starts; a wrong path must not pass validate.
    tokenizer = load_run_tokenizer(config, base_dir)
    _, scorer = load_run_scorer(config, base_dir)
    print(f"{args.config}: config is valid (digest {config.digest()[:12]})")
    for ci, corpus in enumerate(config.corpora):
        files = [f for f in plan.files if f.corpus == ci]
        bad = [b for b in plan.bad_files if b.corpus == ci]
        rows = sum(f.planned_rows for f in files)
        if corpus.carried:
            print(f"  {corpus.name} ({corpus.origin.value}): {carried_text(files)}")
            continue
        print(f"  {corpus.name} ({corpus.origin.value}): {len(files)} file(s), {rows:,} rows, "
              f"text column {corpus.text_column!r}" + (f", {len(bad)} quarantined file(s)" if bad else ""))
    # As run does before it starts anything: a mixture that even every input row could not fill.
    impossible = certainly_infeasible(config, plan)
    if impossible:
        raise InfeasibleMixtureError(f"{impossible} (even if every input row were kept)")
    guard = load_carry_forward(config, base_dir)
    check_carry_forward_reachable(config, plan, guard)
    if guard is not None:
        print(f"  guards.carry_forward: {guard.output} (run {guard.run_id}) holds {guard.human_documents:,} human "
              f"documents, {guard.human_tokens:,} tokens; the mix must select >= {guard.min_human_documents:g} x "
              f"those documents and hold >= {guard.min_human_tokens:g} x those tokens")
    priors = plan_prior(config.dedup, base_dir, dedup_params(config)["near"])
    for prior in priors:
        print(f"  dedup.against {prior.display} (run {prior.run_id}): {prior.indexed:,} documents indexed, "
              f"matched {'exactly and near' if prior.near else 'exactly only'}")
    eval_files = plan_eval_sets(config.decontaminate, base_dir)
    for spec in config.decontaminate.against:
        files = [f for f in eval_files if f.set_name == spec.name]
        print(f"  evaluation set {spec.name}: {len(files)} file(s), {sum(f.size for f in files):,} bytes, "
              f"text column {spec.text_column!r}")
    if config.output.path:
        out = resolve_output(_output_path(config, base_dir, args.output))
        check_prior_is_not(out, priors)
        existing = check_output(out, config, base_dir, [f.path for f in plan.files])
        run_id = run_id_of(args.run_id, config.digest(), plan, scorer, eval_files, tokenizer, priors)
        published = read_commit(out).run_id if is_remote(out) and existing is Existing.FINISHED else None
        if already_done(out, existing, if_exists, run_id, published):
            # As run: a run that would skip writes nothing, so the folder need not be writable.
            state = f"holds this same run ({run_id}): run --if-exists skip does nothing"
        else:
            check_writable(out)
            check_unlocked(out)
            state = (f"holds a finished run, which run --force replaces (this run is {run_id})"
                     if existing is Existing.FINISHED else f"can be written (run {run_id})")
        print(f"  output {out}: {state}")
    else:
        print("  no output folder: output.path is not set, so run needs --output DIR (validate --output DIR "
              "checks that folder)")
    print("  not checked until the run reads the rows: ids unique across corpora, row contents, mixture "
          "feasibility after filters and dedup (`hybridmix plan` estimates it)")
    return 0
