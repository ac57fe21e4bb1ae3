"""Assemble the mixing pipeline from a validated config."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import os
import platform
from dataclasses import dataclass
from importlib import metadata

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from hybridmix.pipelines.outputs import check_run_id, resolve_output
from hybridmix.pipelines.progress import in_process
from hybridmix.schemas.config import IngestConfig, Origin, PipelineConfig
from hybridmix.schemas.errors import ConfigError, GuardViolation
from hybridmix.schemas.records import (
    DOCUMENT_SCHEMA,
    DUPLICATE_SCHEMA,
    FILTERED_SCHEMA,
    INDEX_SCHEMA,
    LEDGER_SCHEMA,
    REJECTION_SCHEMA,
)
from hybridmix.transforms.decontam import BuildEvalIndex, EvalFile, plan_eval_sets
from hybridmix.transforms.dedup import Deduplicate
from hybridmix.transforms.earlier import open_output, resolve
from hybridmix.transforms.ids import CheckIds
from hybridmix.transforms.index import INDEX, order_index
from hybridmix.transforms.indicators import CollapseIndicators
from hybridmix.transforms.ingest import ReadCorpora
from hybridmix.transforms.inputs import UNSLICED, InputPlan, ReadSpec, checksum_files, checksum_spans, plan_inputs
from hybridmix.transforms.ledger import (
    LEDGER,
    from_duplicates,
    from_filtered,
    from_rejects,
    ledger_shards,
    order_ledger,
)
from hybridmix.transforms.materialize import MaterializeDocuments, RecordStamp
from hybridmix.transforms.minhash import shingle_hash32
from hybridmix.transforms.mixture import MixSources
from hybridmix.transforms.mixture_core import CarryForward, check_carry_forward
from hybridmix.transforms.prior import DedupPrior, PriorOutput, plan_prior
from hybridmix.transforms.publish import PublishRun, RunResults, staging_dir
from hybridmix.transforms.quality import FilterQuality
from hybridmix.transforms.scorer import DEFAULT_SCORER, load_scorer
from hybridmix.transforms.shards import (
    SPILL_FOLDER,
    MergeShards,
    ShardSpec,
    SpillShards,
    label_by_split,
    order_by_id,
    order_by_lineage,
    shard_count,
    shards_by_split,
)
from hybridmix.transforms.sketch import CandidateSignatures, SketchDocuments, lsh_shape
from hybridmix.transforms.storage import is_remote, sha256_file
from hybridmix.transforms.text import EXACT_KEY, load_tokenizer

LINEAGE_ORDER = ("source_file", "source_row")


@dataclass(frozen=True)
class RunContext:
    """Everything about one run that is not the config: where, which files, which id."""

    base_dir: str
    out_dir: str
    stage_dir: str
    run_id: str
    config_digest: str
    started_at: str
    plan: InputPlan
    scorer_path: str | None  # the scorer file, absolute; None: the bundled scorer (or no scoring)
    scorer: dict | None  # what the manifest says of the scorer: file, digest, training and metrics
    eval_files: tuple[EvalFile, ...] = ()  # decontaminate.against, listed and checksummed
    tokenizer: dict | None = None  # tokenizer kind file: {"path": absolute, "sha256": ...}
    remote: dict | None = None  # object-store output: the commit it replaces, S3 settings, locked
    prior: tuple[PriorOutput, ...] = ()  # dedup.against, checked, with their index files
    carry_forward: CarryForward | None = None  # mixture.guards.carry_forward, with the earlier output's figures


def versions() -> dict[str, str]:
    """The interpreter and the libraries whose version can change what a run writes: numba compiles the
    text and MinHash kernels, scipy's normal quantiles weigh the selection, orjson parses JSON Lines."""
    out = {"python": platform.python_version()}
    for dist in ("hybridmix", "apache-beam", "pyarrow", "datasketch", "pydantic", "numpy", "numba", "scipy",
                 "orjson"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def default_run_id(config_digest: str, plan: InputPlan, scorer_digest: str = "",
                   eval_files: tuple[EvalFile, ...] = (), tokenizer: dict | None = None,
                   prior: tuple[PriorOutput, ...] = ()) -> str:
    """Same config, input files, scorer, evaluation sets, tokenizer file and earlier outputs give the
    same id, so a rerun is byte-identical."""
    text = f"{config_digest}\n{plan.fingerprint()}" + (f"\n{scorer_digest}" if scorer_digest else "")
    text += "".join(f"\neval\0{f.set_name}\0{f.display}\0{f.sha256}" for f in eval_files)
    if tokenizer is not None:
        text += f"\ntokenizer\0{tokenizer['sha256']}"
    # A run id names its files for good, so an earlier output is known by its run id.
    text += "".join(f"\nagainst\0{p.run_id}" for p in prior)
    return "hm-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def load_run_tokenizer(config: PipelineConfig, base_dir: str) -> dict | None:
    """The tokenizer file of `tokenizer.kind: file`, resolved, checksummed and loaded once to check it."""
    if config.tokenizer.kind != "file":
        return None
    path = config.tokenizer.path
    if not is_remote(path) and not os.path.isabs(path):
        path = os.path.normpath(os.path.join(base_dir, path))
    try:
        sha256 = sha256_file(path)
        load_tokenizer(path)
    except ImportError as exc:
        raise ConfigError(f"tokenizer.kind: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the tokenizers library raises its own exception types
        raise ConfigError(f"tokenizer.path: cannot load {path} as a tokenizer.json: {exc}") from None
    return {"path": path, "sha256": sha256}


def load_carry_forward(config: PipelineConfig, base_dir: str) -> CarryForward | None:
    """The carry-forward guard with the human tokens and documents of the earlier output it names."""
    guard = config.mixture.guards.carry_forward
    if guard is None:
        return None
    earlier = open_output(resolve(guard.path, base_dir).rstrip("/"), base_dir, "mixture.guards.carry_forward.path")
    documents, tokens = earlier.human_data()
    return CarryForward(output=earlier.display, run_id=earlier.run_id, human_tokens=tokens, human_documents=documents,
                        min_human_tokens=guard.min_human_tokens, min_human_documents=guard.min_human_documents)


def check_carry_forward_reachable(config: PipelineConfig, plan: InputPlan, guard: CarryForward | None) -> None:
    """Fail before the run when the guard's share of the earlier human documents is out of reach even if
    every row the corpora read of that output were selected (none are read: no corpus reads it)."""
    if guard is None:
        return
    readable = sum(f.carried.taken for f in plan.files if f.carried is not None and f.carried.run_id == guard.run_id
                   and config.corpora[f.corpus].origin is Origin.HUMAN)
    try:
        check_carry_forward(dataclasses.replace(guard, min_human_tokens=0.0), 0, readable)
    except GuardViolation as exc:
        raise GuardViolation(f"{exc.message} (the corpora read {readable:,} of them: even if all were selected the "
                             "guard would fail; nothing was run)") from None


def load_run_scorer(config: PipelineConfig, base_dir: str) -> tuple[str | None, dict | None]:
    """(resolved scorer path, manifest summary), or (None, None) when nothing is scored."""
    if not any(config.quality.scores(o) for o in Origin):
        return None, None
    path = config.quality.scorer.path
    if path is not None and not is_remote(path) and not os.path.isabs(path):
        path = os.path.normpath(os.path.join(base_dir, path))
    try:
        scorer = load_scorer(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"quality.scorer.path: cannot load {path}: {exc}") from None
    return path, {"file": path or f"(bundled) {DEFAULT_SCORER}", "digest": scorer.digest, **scorer.meta}


def prepare_run(config: PipelineConfig, base_dir: str, out_dir: str, run_id: str | None = None) -> RunContext:
    """Plan inputs (reads file footers) and name the run; raises on unusable inputs."""
    plan = plan_inputs(config.ingest, base_dir)
    digest = config.digest()
    scorer_path, scorer = load_run_scorer(config, base_dir)
    eval_files = plan_eval_sets(config.decontaminate, base_dir)
    tokenizer = load_run_tokenizer(config, base_dir)
    prior = plan_prior(config.dedup, base_dir, dedup_params(config)["near"])
    carry_forward = load_carry_forward(config, base_dir)
    rid = run_id_of(run_id, digest, plan, scorer, eval_files, tokenizer, prior)
    out = resolve_output(out_dir)
    check_prior_is_not(out, prior)
    return RunContext(
        base_dir=base_dir,
        out_dir=out,
        stage_dir=staging_dir(out, rid),
        run_id=rid,
        config_digest=digest,
        started_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        plan=plan,
        scorer_path=scorer_path,
        scorer=scorer,
        eval_files=eval_files,
        tokenizer=tokenizer,
        prior=prior,
        carry_forward=carry_forward,
    )


def run_id_of(given: str | None, config_digest: str, plan: InputPlan, scorer: dict | None,
              eval_files: tuple[EvalFile, ...], tokenizer: dict | None, prior: tuple[PriorOutput, ...]) -> str:
    """The run id: `--run-id` as given (checked), else the digest of what shapes the output."""
    if given is not None:
        return check_run_id(given)
    return default_run_id(config_digest, plan, scorer["digest"] if scorer else "", eval_files, tokenizer, prior)


def check_prior_is_not(out: str, prior: tuple[PriorOutput, ...]) -> None:
    """Refuse an earlier output (dedup.against) that is this run's own output folder."""
    for p in prior:
        if resolve_output(p.location) == out:
            raise ConfigError(f"dedup.against: {p.display} is this run's own output, which the run replaces; "
                              "name only earlier outputs")


def dedup_params(config: PipelineConfig) -> dict:
    near = config.dedup.near
    bands, rows = lsh_shape(near)
    return {
        "exact": {"enabled": config.dedup.exact, "key": EXACT_KEY},
        "near": {
            "enabled": near.enabled,
            "num_perm": near.num_perm,
            "threshold": near.threshold,
            "ngram": near.ngram,
            "seed": near.seed,
            "bands": bands,
            "rows": rows,
            "verify": near.verify,
            "verify_threshold": round(near.effective_verify_threshold, 6),
            "false_positive_weight": near.false_positive_weight,
            "scheme": "datasketch affine32",
            "hashfunc": f"{shingle_hash32.__module__}.{shingle_hash32.__name__}",
            "clustering": "large-star/small-star connected components, finished by union-find",
            "max_cc_rounds": near.max_cc_rounds,
        },
        "survivor_policy": config.dedup.survivor,
    }


def against_params(prior: tuple[PriorOutput, ...]) -> list[dict]:
    """What the manifest says of each earlier output new documents were matched against."""
    return [{"path": p.display, "run_id": p.run_id, "indexed": p.indexed,
             "match": "exact and near" if p.near else "exact"} for p in prior]


def _quarantined_inputs(config: PipelineConfig, plan: InputPlan) -> list[dict]:
    return [
        {"path": b.display, "source": config.corpora[b.corpus].name, "size_bytes": b.size_bytes, "rows": b.rows,
         "sha256": None, "status": "quarantined", "problem": b.detail, "format": b.kind}
        for b in plan.bad_files
    ]


def _spill_ledger(p: beam.Pipeline, ctx: RunContext, out_cfg, gate, side_outputs,
                  survivors) -> tuple[ShardSpec, beam.PCollection]:
    """ledger/: the side outputs' rows and the mixture's survivors, reduced to one fate row per input
    row; (its spec, its spill ranges)."""
    rejects, filtered, duplicates = (rows for _, _, rows in side_outputs)
    rows = ctx.plan.ledger_rows
    entries = (
        rejects | "LedgerRejects" >> beam.Map(from_rejects),
        filtered | "LedgerFiltered" >> beam.Map(from_filtered),
        duplicates | "LedgerDuplicates" >> beam.Map(from_duplicates),
        survivors,
    )
    shards = p | "LedgerShards" >> beam.Create([{"part": (ledger_shards(rows), rows, 0)}])
    spec = ShardSpec(LEDGER, LEDGER_SCHEMA, order_ledger, LINEAGE_ORDER)
    return spec, entries | "WriteLedger" >> SpillShards(spec, out_cfg, ctx.stage_dir, shards=shards, gate=gate)


def _index_shards(sizes: dict[str, dict[str, int]], out_cfg) -> dict[str, tuple[int, int, int]]:
    rows = sum(size["rows"] for size in sizes.values())
    return {"part": (shard_count(rows, out_cfg), rows, 0)}


def read_as(ingest: IngestConfig, options: PipelineOptions) -> IngestConfig:
    """`ingest` as a run with these options reads its inputs: in the in-process runner, whole row
    groups (`read_slice_bytes` applies to runners with several workers).

    Its one worker runs a stage's bundles one after another, so slices of a row group buy no
    parallelism there, and a slice decodes the batches before it again: on the 200,000-document
    benchmark corpus (row groups cut in 2-3 slices) its two reads took 0.9 s more CPU, and the run
    24.5 s instead of 23.2 s (means of four alternating runs). The output is the same either way.
    """
    return ingest.model_copy(update={"read_slice_bytes": UNSLICED}) if in_process(options) else ingest


def build_pipeline(p: beam.Pipeline, config: PipelineConfig, ctx: RunContext) -> beam.PCollection:
    """Add the whole run to `p`; returns the PCollection holding the published manifest."""
    # Workers read the plan from the staging folder, once each (see `InputPlan.__reduce__`).
    ctx = dataclasses.replace(ctx, plan=ctx.plan.store(f"{ctx.stage_dir}/{SPILL_FOLDER}/plan.bin"))
    parts = config.partitions
    ingest = config.ingest
    if ctx.tokenizer is not None:  # workers open the file by its resolved path
        ingest = ingest.model_copy(update={"tokenizer": config.tokenizer.model_copy(
            update={"path": ctx.tokenizer["path"]})})
    spec = ReadSpec(read_as(ingest, p.options), ctx.plan, ctx.run_id)
    lineage = spec.lineage
    origins = {c.name: c.origin.value for c in config.corpora}
    stage, out_cfg = ctx.stage_dir, config.output

    read = p | "ReadCorpora" >> ReadCorpora(spec)
    evals = (p | "EvalIndex" >> BuildEvalIndex(config.decontaminate, ctx.eval_files)) if ctx.eval_files else None
    scored = read.docs | "FilterQuality" >> FilterQuality(
        config.quality, lineage, ctx.scorer_path, config.decontaminate, evals.index if evals else None)
    sketch = scored.kept | "Sketch" >> SketchDocuments(config.dedup, parts, f"{stage}/{SPILL_FOLDER}/sketch",
                                                       keys=bool(ctx.prior))
    ids = (sketch.info, scored.filtered) | "CheckIds" >> CheckIds(spec, parts)
    prior = None
    if ctx.prior:
        # Not matched against earlier outputs: rows read from one (not new), and origins left out.
        exempt = frozenset(c.name for c in config.corpora
                           if c.carried or c.origin not in config.dedup.against_origins)
        prior = DedupPrior(ctx.prior, config.dedup, parts,
                           CandidateSignatures(spec, config.dedup.near, parts, sketch.signatures),
                           exempt, sketch.band_keys, ctx.run_id if out_cfg.index else None, ctx.plan.planned_rows)
    dedup = (ids.docs, sketch.bands) | "Deduplicate" >> Deduplicate(
        config.dedup, parts, lineage, CandidateSignatures(spec, config.dedup.near, parts, sketch.signatures),
        f"{stage}/{SPILL_FOLDER}/near", prior, out_cfg.index)
    carried_runs = tuple(f.carried.run_id if f.carried is not None else "" for f in ctx.plan.files)
    matched_earlier = tuple(o.value for o in config.dedup.against_origins) if ctx.prior else ()
    mix = dedup.survivors | "Mix" >> MixSources(config.mixture, origins, config.seed,
                                                 lineage if out_cfg.ledger else None, carried_runs, ctx.carry_forward,
                                                 matched_earlier)
    stamp = RecordStamp(lineage, config.seed, config.mixture.validation_fraction, ctx.config_digest,
                        index=out_cfg.index, near=config.dedup.near if config.dedup.near.enabled else None)
    materialized = mix.selected | "Materialize" >> MaterializeDocuments(spec, stamp, sketch.signatures)
    records = materialized.records

    # Nothing is written before the mixture plan and its guards have passed.
    gate = mix.plan
    data_shards = mix.split_sizes | "DataShards" >> beam.Map(shards_by_split, out_cfg)
    data_spec = ShardSpec("data", DOCUMENT_SCHEMA, functools.partial(order_by_id, seed=config.seed), ("id",),
                          label=label_by_split, count_sources=True, unique="id")
    spilled = [(data_spec, records | "WriteData" >> SpillShards(data_spec, out_cfg, stage, shards=data_shards,
                                                                 gate=gate))]
    side_outputs = [
        ("Rejects", REJECTION_SCHEMA, (read.rejected, ids.rejected) | "MergeRejects" >> beam.Flatten()),
        ("Filtered", FILTERED_SCHEMA, ids.filtered),
        ("Duplicates", DUPLICATE_SCHEMA, dedup.duplicates),
    ]
    for name, schema, rows in side_outputs:
        spec = ShardSpec(name.lower(), schema, order_by_lineage, LINEAGE_ORDER)
        spilled.append((spec, rows | f"Write{name}" >> SpillShards(spec, out_cfg, stage, gate=gate)))
    if out_cfg.ledger:
        spilled.append(_spill_ledger(p, ctx, out_cfg, gate, side_outputs, mix.ledger))
    if out_cfg.index:
        # One index row per document; the data rows (copies included) bound their number.
        index_shards = mix.split_sizes | "IndexShards" >> beam.Map(_index_shards, out_cfg)
        index_spec = ShardSpec(INDEX, INDEX_SCHEMA, order_index, ("doc_id",), unique="doc_id")
        spilled.append((index_spec, (materialized.index, dedup.index) | "WriteIndex" >> SpillShards(
            index_spec, out_cfg, stage, shards=index_shards, gate=gate)))
    # Every folder's shards are merged in one stage, two at a time (see shards._MergeShardFn).
    written = (
        [ranges for _, ranges in spilled]
        | "MergeRanges" >> beam.Flatten()
        | "WriteOutputs" >> MergeShards([spec for spec, _ in spilled], out_cfg, stage)
    )

    stats = (
        (read.stats, ids.stats, scored.stats, dedup.stats, mix.stats, written.stats, *([evals.stats] if evals else []))
        | "MergeStats" >> beam.Flatten()
        | "SumStats" >> beam.CombinePerKey(sum)
    )
    inputs = (
        (
            p
            | "ListInputs" >> beam.Create(checksum_spans(ctx.plan))
            | "ChecksumInputs" >> beam.FlatMap(checksum_files, ctx.plan, [c.name for c in config.corpora])
        ),
        p | "ListQuarantined" >> beam.Create(_quarantined_inputs(config, ctx.plan)),
    ) | "MergeInputs" >> beam.Flatten()
    if config.indicators.enabled:
        collapse = records | "CollapseIndicators" >> CollapseIndicators(config.seed, config.indicators.sample_documents)
    else:
        collapse = p | "NoIndicators" >> beam.Create([{}])
    results = RunResults(stats=stats, plan=mix.plan, inputs=inputs,
                         outputs=written.files, collapse=collapse)
    return results | "Publish" >> PublishRun(
        stage_dir=stage,
        out_dir=ctx.out_dir,
        scratch=(SPILL_FOLDER,),
        input_plan=ctx.plan,
        remote=ctx.remote,
        config=config,
        run_id=ctx.run_id,
        config_digest=ctx.config_digest,
        base_dir=ctx.base_dir,
        started_at=ctx.started_at,
        versions=versions(),
        dedup_params={**dedup_params(config), "against": against_params(ctx.prior)},
        scorer=ctx.scorer,
        tokenizer=ctx.tokenizer,
        eval_files=[{"set": f.set_name, "path": f.display, "size_bytes": f.size, "sha256": f.sha256}
                    for f in ctx.eval_files],
        carry_forward=ctx.carry_forward,
    )
