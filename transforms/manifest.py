"""manifest.json from a run's statistics: counts per source, the mixture, dedup and quality figures."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from hybridmix.schemas.config import Origin, PipelineConfig
from hybridmix.schemas.errors import FatalError
from hybridmix.schemas.manifest import (
    COUNT_FIELDS,
    InputFile,
    Manifest,
    MixtureGroup,
    MixtureReport,
    OutputFile,
    ScriptGroup,
    SourceCounts,
)
from hybridmix.schemas.stats import Figure, RunStats
from hybridmix.transforms.indicators import near_duplicate_rates
from hybridmix.transforms.mixture_core import CarryForward, MixturePlan
from hybridmix.transforms.scorer import SCORE_BINS

OUTPUT_FOLDERS = ("data", "rejects", "filtered", "duplicates", "ledger", "index")
_COUNTED = COUNT_FIELDS + ("written",)


def _listed(manifest: Any) -> list[dict]:
    outputs = manifest.get("outputs") if isinstance(manifest, dict) else None
    return [entry for files in (outputs.values() if isinstance(outputs, dict) else ())
            for entry in (files if isinstance(files, list) else ())
            if isinstance(entry, dict) and isinstance(entry.get("path"), str)]


def listed_paths(manifest: Any) -> list[str]:
    """The file paths a manifest's `outputs` lists, relative to its run folder. A manifest that is not
    one (hand-edited, cut short) lists none: callers decide what that means."""
    return [entry["path"] for entry in _listed(manifest)]


def listed_sizes(manifest: Any) -> list[tuple[str, int]]:
    """(path, size_bytes) of the files a manifest's `outputs` lists with a size."""
    return [(entry["path"], entry["size_bytes"]) for entry in _listed(manifest)
            if isinstance(entry.get("size_bytes"), int)]


def _counts(stats: RunStats, sources: list[str]) -> dict[str, SourceCounts]:
    return {s: SourceCounts(**{f: stats.get(Figure(f), s) for f in _COUNTED}) for s in sources}


def _group(plan: MixturePlan, names: list[str], stats: RunStats, total_units: int) -> MixtureGroup:
    planned = [sp for sp in plan.sources.values() if sp.source in names]

    def summed(figure: Figure) -> int:
        return sum(stats.get(figure, n) for n in names)

    units = summed(Figure.SELECTED_UNITS)
    target = sum(sp.share for sp in planned)
    achieved = units / total_units if total_units else 0.0
    docs = summed(Figure.SELECTED)
    rows = summed(Figure.SELECTED_ROWS)
    return MixtureGroup(
        available_tokens=sum(sp.available_tokens for sp in planned),
        available_documents=sum(sp.available_documents for sp in planned),
        target_fraction=round(target, 10),
        achieved_fraction=round(achieved, 10),
        fraction_error=round(achieved - target, 10),
        target_units=round(sum(sp.quota_units for sp in planned), 3),
        selected_units=units,
        selected_tokens=summed(Figure.SELECTED_TOKENS),
        selected_documents=docs,
        written_rows=rows,
        repeats=round(rows / docs, 6) if docs else 0.0,
    )


def mixture_report(plan: MixturePlan, config: PipelineConfig, stats: RunStats) -> MixtureReport:
    sources = [c.name for c in config.corpora]
    units_total = sum(stats.get(Figure.SELECTED_UNITS, n) for n in sources)
    by_origin = {}
    for origin in Origin:
        names = [c.name for c in config.corpora if c.origin is origin]
        if names:
            # The origin's own settings, which its sources follow unless `mixture.sources` says otherwise.
            by_origin[origin.value] = _group(plan, names, stats, units_total).model_copy(update={
                "selection": config.mixture.selection.get(origin, "random"),
                "max_repeats": config.mixture.max_repeats,
                "flag_penalty": config.mixture.flag_penalty})
    return MixtureReport(
        unit=plan.unit,
        targets=plan.targets,
        scripts=_scripts_report(plan, config, stats, units_total),
        achieved={o: g.achieved_fraction for o, g in by_origin.items()},
        total_units=units_total,
        budget=plan.budget,
        max_repeats=plan.max_repeats,
        origins=by_origin,
        sources={c.name: _group(plan, [c.name], stats, units_total).model_copy(update={
            "selection": config.mixture.selection_of(c.name, c.origin),
            "max_repeats": config.mixture.repeat_cap(c.name),
            "min_score": config.mixture.min_score_of(c.name),
            "flag_penalty": config.mixture.flag_penalty_of(c.name)}) for c in config.corpora},
    )


def _scripts_report(plan: MixturePlan, config: PipelineConfig, stats: RunStats,
                    total_units: int) -> dict[str, dict[str, ScriptGroup]]:
    """Per origin and script: what the mixture took, and the target where `mixture.scripts` sets one."""
    origin_of = {c.name: c.origin.value for c in config.corpora}
    selected: dict[str, dict[str, dict[Figure, int]]] = {}
    for figure in (Figure.SCRIPT_SELECTED, Figure.SCRIPT_SELECTED_ROWS, Figure.SCRIPT_SELECTED_TOKENS,
                   Figure.SCRIPT_SELECTED_UNITS):
        for script, per_source in stats.by_detail(figure).items():
            for source, value in per_source.items():
                cell = selected.setdefault(origin_of[source], {}).setdefault(script, {})
                cell[figure] = cell.get(figure, 0) + value
    out: dict[str, dict[str, ScriptGroup]] = {}
    for origin, scripts in sorted(selected.items()):
        targeted = config.mixture.scripts_of(origin) is not None
        for script in sorted(set(scripts) | set(config.mixture.scripts_of(origin) or {})):
            cell = scripts.get(script, {})
            units = cell.get(Figure.SCRIPT_SELECTED_UNITS, 0)
            achieved = units / total_units if total_units else 0.0
            target = sum(sp.share for sp in plan.sources.values()
                         if sp.origin == origin and sp.script == script) if targeted else None
            out.setdefault(origin, {})[script] = ScriptGroup(
                target_fraction=None if target is None else round(target, 10),
                achieved_fraction=round(achieved, 10),
                fraction_error=None if target is None else round(achieved - target, 10),
                selected_units=units,
                selected_tokens=cell.get(Figure.SCRIPT_SELECTED_TOKENS, 0),
                selected_documents=cell.get(Figure.SCRIPT_SELECTED, 0),
                written_rows=cell.get(Figure.SCRIPT_SELECTED_ROWS, 0),
            )
    return out


def _score_summary(histogram: list[int]) -> dict[str, Any]:
    """Count, mean and quartiles of scores from their histogram (bin midpoints)."""
    counts = np.asarray(histogram, np.float64)
    n = int(counts.sum())
    if n == 0:
        return {"documents": 0, "histogram": histogram}
    mids = (np.arange(SCORE_BINS) + 0.5) / SCORE_BINS
    cum = np.cumsum(counts) / n
    quartile = {f"p{q}": round(float(mids[int(np.searchsorted(cum, q / 100))]), 3) for q in (25, 50, 75)}
    return {"documents": n, "mean": round(float((counts * mids).sum() / n), 4), **quartile, "histogram": histogram}


def _scores_report(config: PipelineConfig, stats: RunStats) -> dict[str, Any]:
    """Per scored source: the quality_score distribution of the pool the mixture chose from, of what
    it selected, and of what the filters dropped."""
    out: dict[str, Any] = {}
    for corpus in config.corpora:
        if not config.quality.scores(corpus.origin):
            continue
        groups = {}
        for name, figure in (("pool", Figure.SCORES_POOL), ("selected", Figure.SCORES_SELECTED),
                             ("filtered", Figure.SCORES_FILTERED)):
            groups[name] = _score_summary([stats.get(figure, corpus.name, str(b)) for b in range(SCORE_BINS)])
        for name in ("pool", "selected"):
            # Documents with quality_flags (mixture.flag_penalty ranks them lower under top and weighted).
            groups[name]["flagged"] = stats.get(Figure.FLAGGED, corpus.name, name)
        out[corpus.name] = groups
    return out


def _decontamination_report(config: PipelineConfig, stats: RunStats,
                            eval_files: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Per evaluation set: its files, what its index holds, and the documents it matched per source."""
    decon = config.decontaminate
    if not decon.against:
        return None
    matched = stats.by_detail(Figure.CONTAMINATED)
    tokens = stats.by_detail(Figure.CONTAMINATED_TOKENS)
    sets = {}
    for spec in decon.against:
        index = {k: v for k, v in stats.by_detail(Figure.EVAL_INDEX).items() if spec.name in v}
        by_source = matched.get(spec.name, {})
        by_tokens = tokens.get(spec.name, {})
        sets[spec.name] = {
            "files": [{k: v for k, v in f.items() if k != "set"} for f in eval_files if f["set"] == spec.name],
            **{detail: values[spec.name] for detail, values in sorted(index.items())},
            "documents": {"by_source": by_source, "total": sum(by_source.values())},
            "tokens": {"by_source": by_tokens, "total": sum(by_tokens.values())},
        }
    return {
        "mode": decon.mode,
        "ngram": decon.ngram,
        "threshold": decon.threshold(),
        "max_items_per_ngram": decon.max_items_per_ngram,
        "common_ngrams_ignored": stats.get(Figure.EVAL_INDEX, "", "common_ngrams_ignored"),
        "sets": sets,
    }


def _quality_report(config: PipelineConfig, stats: RunStats, scorer: dict[str, Any] | None) -> dict[str, Any]:
    # A filter may drop some text and flag other text (human vs synthetic): both are counted.
    filters: dict[str, Any] = {}
    for figure, mode in ((Figure.FILTER_DROPS, "dropped"), (Figure.FILTER_FLAGS, "flagged")):
        for label, by_source in stats.by_detail(figure).items():
            filters.setdefault(label, {})[mode] = {"by_source": by_source, "total": sum(by_source.values())}
    return {
        "filters": dict(sorted(filters.items())),
        "rejects_by_reason": stats.by_detail(Figure.REJECTED_BY_REASON),
        "scorer": scorer,
        "scores": _scores_report(config, stats),
    }


def _lineage_report(policy: str, stats: RunStats) -> dict[str, Any]:
    """Self-copies: synthetic documents that duplicate their own parent, per source and generator of
    the copy, and what became of them."""
    fates = stats.by_detail(Figure.SELF_COPY_FATES)
    by_source: dict[str, dict[str, int]] = {}
    for fate, counts in fates.items():
        for source, n in counts.items():
            by_source.setdefault(source, {})[fate] = n
    by_generator: dict[str, dict[str, int]] = {}
    for generator, counts in stats.by_detail(Figure.SELF_COPIES).items():
        for source, n in counts.items():
            by_generator.setdefault(source, {})[generator] = n
    return {
        "parent_copies": policy,
        "self_copies": stats.total(Figure.SELF_COPIES),
        "by_fate": {fate: sum(counts.values()) for fate, counts in fates.items()},
        "by_source": {s: {"total": sum(f.values()), **dict(sorted(f.items()))} for s, f in sorted(by_source.items())},
        "by_generator": {s: dict(sorted(g.items())) for s, g in sorted(by_generator.items())},
    }


def _dedup_report(dedup_params: dict[str, Any], stats: RunStats, parent_copies: str) -> dict[str, Any]:
    by_generator: dict[str, dict[str, int]] = {}
    for generator, by_source in stats.by_detail(Figure.CROSS_ORIGIN_SYNTHETIC).items():
        for source, n in by_source.items():
            if generator:
                by_generator.setdefault(source, {})[generator] = n
    by_source = stats.by_source(Figure.CROSS_ORIGIN_SYNTHETIC)
    return {
        **dedup_params,
        "stats": {
            "candidate_pairs": stats.total(Figure.CANDIDATE_PAIRS),
            "verified_pairs": stats.total(Figure.VERIFIED_PAIRS),
            "near_clusters": stats.total(Figure.NEAR_CLUSTERS),
            # Per kind (exact_prior, near_prior), per source: duplicates of earlier outputs' documents.
            "prior_duplicates": stats.by_detail(Figure.PRIOR_DUPLICATES),
            "near_cluster_documents_by_size": {
                bucket: sum(counts.values())
                for bucket, counts in stats.by_detail(Figure.NEAR_CLUSTER_DOCUMENTS).items()},
        },
        "cross_origin": {
            "clusters": stats.total(Figure.CROSS_ORIGIN_CLUSTERS),
            "synthetic_documents": sum(by_source.values()),
            "by_source": by_source,
            "by_generator": {s: dict(sorted(g.items())) for s, g in sorted(by_generator.items())},
        },
        "lineage": _lineage_report(parent_copies, stats),
    }


def _partly_quarantined(inputs: list[dict[str, Any]], stats: RunStats) -> list[dict[str, Any]]:
    """Inputs as planned, and those whose row groups could not all be read marked so."""
    unreadable = {path: sum(per.values()) for path, per in stats.by_detail(Figure.UNREADABLE_ROWS).items()}
    out = []
    for item in inputs:
        lost = unreadable.get(item["path"])
        if lost and item.get("status", "ok") == "ok":
            of = f" of its {item['rows']:,}" if item.get("rows") is not None else ""
            item = {**item, "status": "partly_quarantined",
                    "problem": f"{lost:,}{of} rows are in row groups that cannot be read (rejects/, "
                               "ingest_unreadable_row_group)"}
        out.append(item)
    return out


def _carried_report(config: PipelineConfig, stats: RunStats, inputs: list[dict[str, Any]],
                    carry_forward: CarryForward | None) -> dict[str, Any] | None:
    """What the mix carried from earlier outputs and what is new, per origin; the carry-forward guard's figures.

    Documents are the distinct documents selected and tokens theirs, one copy each (`mixture` counts copies).
    """
    runs = {i["carried"]["run_id"]: i["carried"]["output"] for i in inputs if i.get("carried")}
    if not runs and carry_forward is None:
        return None
    documents = stats.by_detail(Figure.CARRIED_SELECTED)
    tokens = stats.by_detail(Figure.CARRIED_SELECTED_TOKENS)
    origins: dict[str, Any] = {}
    for origin in Origin:
        names = [c.name for c in config.corpora if c.origin is origin]
        if not names:
            continue
        by_run = {run_id: {"output": output,
                           "documents": sum(documents.get(run_id, {}).get(n, 0) for n in names),
                           "tokens": sum(tokens.get(run_id, {}).get(n, 0) for n in names)}
                  for run_id, output in sorted(runs.items())}
        carried = {"documents": sum(r["documents"] for r in by_run.values()),
                   "tokens": sum(r["tokens"] for r in by_run.values())}
        origins[origin.value] = {
            "carried": {**carried, "by_run": by_run},
            "new": {"documents": sum(stats.get(Figure.SELECTED, n) for n in names) - carried["documents"],
                    "tokens": sum(stats.get(Figure.SELECTED_DOCUMENT_TOKENS, n) for n in names) - carried["tokens"]},
        }
    guard = None
    if carry_forward is not None:
        human = [c.name for c in config.corpora if c.origin is Origin.HUMAN]
        guard = {
            "output": carry_forward.output,
            "run_id": carry_forward.run_id,
            "human_tokens": {"earlier": carry_forward.human_tokens,
                             "now": sum(stats.get(Figure.SELECTED_DOCUMENT_TOKENS, n) for n in human),
                             "min_ratio": carry_forward.min_human_tokens},
            "human_documents": {"earlier": carry_forward.human_documents,
                                "carried": sum(documents.get(carry_forward.run_id, {}).get(n, 0) for n in human),
                                "min_ratio": carry_forward.min_human_documents},
        }
    return {"origins": origins, "carry_forward": guard}


def _collapse_report(measured: dict[str, Any], counts: dict[str, SourceCounts],
                     origins: dict[str, str]) -> dict[str, Any]:
    """Sample-based indicators of the output, plus duplicate rates from the counts."""
    rates = near_duplicate_rates({s: c.model_dump() for s, c in counts.items()}, origins)
    out: dict[str, Any] = {"sample_documents": measured.get("sample_documents"), "by_origin": {}, "by_source": {}}
    for kind in ("by_origin", "by_source"):
        for group in sorted(set(rates[kind]) | set(measured.get(kind, {}))):
            out[kind][group] = {**measured.get(kind, {}).get(group, {}), **rates[kind].get(group, {})}
    return out


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def build_manifest(
    *,
    config: PipelineConfig,
    run_id: str,
    config_digest: str,
    base_dir: str,
    started_at: str,
    versions: dict[str, str],
    dedup_params: dict[str, Any],
    stats: RunStats,
    plan: MixturePlan,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    collapse: dict[str, Any] | None = None,
    scorer: dict[str, Any] | None = None,
    eval_files: list[dict[str, Any]] | None = None,
    tokenizer: dict[str, Any] | None = None,
    carry_forward: CarryForward | None = None,
) -> Manifest:
    """The manifest of a finished run; fails when the row accounting does not add up."""
    sources = [c.name for c in config.corpora]
    counts = _counts(stats, sources)
    unbalanced = [f"{s}: read {c.read} != accounted {c.accounted}" for s, c in counts.items() if not c.balanced]
    if unbalanced:
        raise FatalError("row accounting does not add up (" + "; ".join(unbalanced) + ")")
    totals = SourceCounts(**{f: sum(getattr(c, f) for c in counts.values()) for f in _COUNTED})
    by_folder: dict[str, list[OutputFile]] = {f: [] for f in OUTPUT_FOLDERS}
    for item in sorted(outputs, key=lambda o: o["path"]):
        by_folder[item["folder"]].append(OutputFile(path=item["path"], rows=item["rows"], size_bytes=item["size_bytes"]))
    if config.output.ledger:
        # Every row read has one ledger row; a quarantined file of unknown size has one too.
        expected = totals.read + sum(1 for i in inputs if i.get("status") == "quarantined" and i.get("rows") is None)
        entries = sum(f.rows for f in by_folder["ledger"])
        if entries != expected:
            raise FatalError(f"ledger/ holds {entries} rows for {expected} input rows; nothing was published")
    return Manifest(
        run_id=run_id,
        config_digest=config_digest,
        seed=config.seed,
        started_at=started_at,
        finished_at=now(),
        versions=versions,
        config=config.model_dump(mode="json"),
        base_dir=base_dir,
        inputs=[InputFile(**i) for i in sorted(_partly_quarantined(inputs, stats), key=lambda i: i["path"])],
        counts=counts,
        totals=totals,
        mixture=mixture_report(plan, config, stats),
        dedup=_dedup_report(dedup_params, stats, config.dedup.parent_copies),
        quality=_quality_report(config, stats, scorer),
        decontamination=_decontamination_report(config, stats, eval_files or []),
        tokens={"kind": config.tokenizer.kind, "file": (tokenizer or {}).get("path"),
                "sha256": (tokenizer or {}).get("sha256")},
        collapse=_collapse_report(collapse or {}, counts, {c.name: c.origin.value for c in config.corpora}),
        outputs=by_folder,
        carried=_carried_report(config, stats, inputs, carry_forward),
    )
