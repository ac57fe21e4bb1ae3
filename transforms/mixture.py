"""MixSources: choose how many copies of each surviving document go into the mixture."""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from hybridmix.schemas.config import MixtureConfig, Origin
from hybridmix.schemas.errors import InfeasibleMixtureError
from hybridmix.schemas.reasons import Fate
from hybridmix.schemas.stats import Figure, RunStats
from hybridmix.transforms import columns, progress
from hybridmix.transforms.batches import concat_blocks, rows_by_value, uid_file
from hybridmix.transforms.faults import crash_point
from hybridmix.transforms.inputs import Lineage
from hybridmix.transforms.ledger import LEDGER, key_label, large_details, ledger_batch, selection_details
from hybridmix.transforms.mixture_core import (
    LARGE_DOCUMENTS,
    PRIORITY_BITS,
    CarryForward,
    MixturePlan,
    SourceTally,
    check_carry_forward,
    check_human_tokens,
    check_selected_synthetic,
    flag_penalized,
    flag_penalized_rows,
    plan_keys,
    plan_mixture,
    resolve_boundary,
    split_key,
    stratum,
    top_priority,
    weighted_priority,
)
from hybridmix.transforms.scorer import score_histogram
from hybridmix.transforms.stats import STATS, emit, emit_histogram
from hybridmix.transforms.text import stable_hash64

SELECTED = "selected"


def selection_priority(doc_ids: list[str] | pa.Array, seed: int) -> np.ndarray:
    """Seeded priority per doc id; a source is taken in ascending priority."""
    return stable_hash64(doc_ids, salt=f"select/{seed}")


_SPLITS = np.array(["train", "validation"], dtype=object)


def split_of(doc_ids: list[str] | pa.Array, seed: int, validation_fraction: float) -> np.ndarray:
    """`train` or `validation` (an object array), decided by doc id so every copy of a document lands together."""
    if validation_fraction <= 0:
        return np.full(len(doc_ids), "train", dtype=object)
    u = stable_hash64(doc_ids, salt=f"split/{seed}").astype(np.float64) / 2.0**64
    return _SPLITS[(u < validation_fraction).astype(np.int64)]


class _Prioritize:
    """Survivors -> (batch, selection priority, eligible): computed once for the three steps that read them.

    Each source is taken in ascending priority: a seeded hash of the doc id (random), or a key from
    the quality score (top, weighted). Documents below their source's min_score are not eligible.
    """

    def __init__(self, config: MixtureConfig, origins: dict[str, str], seed: int) -> None:
        self._config = config
        self._origins = origins
        self._seed = seed

    def __call__(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, np.ndarray, np.ndarray]:
        priority = selection_priority(batch.column("doc_id"), self._seed)
        eligible = np.ones(batch.num_rows, bool)
        scores = batch.column("quality_score").to_numpy(zero_copy_only=False).astype(np.float64)
        flagged = _flagged(batch)
        for name, rows in _by_source(batch):
            mode = self._config.selection_of(name, Origin(self._origins[name]))
            if mode in ("top", "weighted"):
                ranked = flag_penalized(scores[rows], flagged[rows], self._config.flag_penalty_of(name))
            if mode == "top":
                priority[rows] = top_priority(ranked, priority[rows])
            elif mode == "weighted":
                priority[rows] = weighted_priority(ranked, priority[rows], self._config.selection_sharpness)
            floor = self._config.min_score_of(name)
            if floor is not None:
                eligible[rows] = np.nan_to_num(scores[rows], nan=-1.0) >= floor
        return batch, priority, eligible


def _flagged(batch: pa.RecordBatch) -> np.ndarray:
    return pc.list_value_length(batch.column("quality_flags")).to_numpy(zero_copy_only=False) > 0


def _bucket(priority: np.ndarray) -> np.ndarray:
    return (priority >> np.uint64(64 - PRIORITY_BITS)).astype(np.int64)


def _units(batch: pa.RecordBatch, unit: str) -> np.ndarray:
    if unit == "tokens":
        return batch.column("tokens").to_numpy().astype(np.int64)
    return np.ones(batch.num_rows, np.int64)


def _by_source(batch: pa.RecordBatch):
    yield from rows_by_value(batch.column("source"))


def _by_key(batch: pa.RecordBatch, config: MixtureConfig, origins: dict[str, str]):
    """(planner key, rows): a source's rows, split by script where its origin has script targets
    (a source without them may come in several parts; each part is planned under its name)."""
    if not config.scripts:
        yield from _by_source(batch)
        return
    for name, script, rows in _by_source_script(batch):
        yield (name if config.scripts_of(origins[name]) is None else stratum(name, script)), rows


def _by_source_script(batch: pa.RecordBatch):
    scripts = batch.column("script")
    for name, rows in _by_source(batch):
        for script, within in rows_by_value(scripts.take(pa.array(rows))):
            yield name, script, rows[within]


class _TallyFn(beam.DoFn):
    """(INFO batch, priorities, eligible) -> (planner key, SourceTally) of its eligible documents per key."""

    def __init__(self, config: MixtureConfig, origins: dict[str, str]) -> None:
        self._config = config
        self._origins = origins

    def process(self, element: tuple[pa.RecordBatch, np.ndarray, np.ndarray]):
        batch, priority, eligible = element
        # The mixture's first pass: the stage has started, though no document is decided yet.
        progress.add(progress.MIXED, 0)
        buckets = _bucket(priority)
        units = _units(batch, self._config.unit)
        tokens = batch.column("tokens").to_numpy().astype(np.int64)
        generation = batch.column("generation").to_numpy().astype(np.int64)
        uids = batch.column("uid").to_numpy()
        for name, rows in _by_key(batch, self._config, self._origins):
            rows = rows[eligible[rows]]
            if not len(rows):
                continue
            large = ()
            if self._config.unit == "tokens":
                top = rows[np.lexsort((uids[rows], priority[rows], -units[rows]))[:LARGE_DOCUMENTS]]
                large = tuple(zip(units[top].tolist(), priority[top].tolist(), uids[top].tolist()))
            yield name, SourceTally(
                documents=len(rows),
                tokens=int(tokens[rows].sum()),
                max_generation=int(generation[rows].max()),
                bucket_units=np.bincount(buckets[rows], weights=units[rows],
                                         minlength=1 << PRIORITY_BITS).astype(np.int64),
                large=large,
            )


class _MergeTallies(beam.CombineFn):
    def create_accumulator(self) -> SourceTally:
        return SourceTally()

    def add_input(self, acc: SourceTally, tally: SourceTally) -> SourceTally:
        return acc.merge(tally)

    def merge_accumulators(self, accs) -> SourceTally:
        out = SourceTally()
        for acc in accs:
            out = out.merge(acc)
        return out

    def extract_output(self, acc: SourceTally) -> SourceTally:
        return acc


def _make_plan(tallies: dict[str, SourceTally], config: MixtureConfig, origins: dict[str, str],
               matched_earlier: tuple[str, ...] = ()) -> MixturePlan:
    return plan_mixture(config, plan_keys(config, origins, sorted(tallies)), tallies, matched_earlier)


class _BoundaryFn(beam.DoFn):
    """Documents that fall in their key's boundary bucket -> (planner key, (priority, uid, units))."""

    def __init__(self, config: MixtureConfig, origins: dict[str, str]) -> None:
        self._config = config
        self._origins = origins

    def process(self, element: tuple[pa.RecordBatch, np.ndarray, np.ndarray], plan: MixturePlan):
        batch, priority, eligible = element
        bucket = _bucket(priority)
        uids = batch.column("uid").to_numpy()
        units = _units(batch, self._config.unit)
        for name, rows in _by_key(batch, self._config, self._origins):
            planned = plan.sources.get(name)
            boundary = planned.boundary_bucket if planned is not None else -1
            if boundary < 0:
                continue
            decided, _ = plan.large_copies(name, uids[rows])
            sel = rows[(bucket[rows] == boundary) & eligible[rows] & ~decided]
            if len(sel):
                yield name, (priority[sel], uids[sel], units[sel])


def _resolve(element, plan: MixturePlan):
    """(planner key, blocks) -> (key, uid, priority) of each document taken from the boundary bucket."""
    name, blocks = element
    blocks = list(blocks)
    priority, uids, units = concat_blocks(blocks)
    taken = resolve_boundary(priority, uids, units, plan.sources[name].boundary_need)
    by_uid = dict(zip(uids.tolist(), priority.tolist()))
    for uid in taken.tolist():
        yield name, uid, by_uid[uid]


def _cutoffs(plan: MixturePlan, boundary: list[tuple[str, int, int]]) -> dict[str, int | None]:
    """Per planner key, the largest priority its last, partial pass took; None without a partial pass.

    A key whose boundary bucket gave nothing took every document of the buckets before it, so its
    cut-off is the last priority before that bucket.
    """
    cutoffs: dict[str, int | None] = {}
    for name, source in plan.sources.items():
        if source.boundary_bucket < 0:
            cutoffs[name] = None
        elif source.boundary_bucket > 0:
            cutoffs[name] = (source.boundary_bucket << (64 - PRIORITY_BITS)) - 1
        else:
            cutoffs[name] = -1
    for name, _, priority in boundary:
        cutoffs[name] = max(cutoffs[name], priority)
    return {name: (None if c is not None and c < 0 else c) for name, c in cutoffs.items()}


class _SelectFn(beam.DoFn):
    """(INFO batch, priorities) -> SELECTION batch of documents with at least one copy; counts every fate."""

    def __init__(self, config: MixtureConfig, origins: dict[str, str], seed: int, lineage: Lineage | None,
                 carried_runs: tuple[str, ...] = ()) -> None:
        self._config = config
        self._origins = origins
        self._seed = seed
        self._lineage = lineage
        self._carried_runs = np.asarray(carried_runs, dtype=object)
        self._boundary: tuple[list, np.ndarray, dict] | None = None

    def setup(self) -> None:
        self._documents = Metrics.counter(MixSources.__name__, "documents")
        self._selected = Metrics.counter(MixSources.__name__, "selected")
        self._rows = Metrics.counter(MixSources.__name__, "rows")

    def _resolved(self, plan: MixturePlan, boundary: list[tuple[str, int, int]]) -> tuple[np.ndarray, dict]:
        """(uids taken from boundary buckets, cut-off per key), computed once per side input value."""
        if self._boundary is None or self._boundary[0] is not boundary:
            uids = np.asarray([uid for _, uid, _ in boundary], np.int64)
            self._boundary = (boundary, uids, _cutoffs(plan, boundary))
        return self._boundary[1], self._boundary[2]

    def process(self, element: tuple[pa.RecordBatch, np.ndarray, np.ndarray], plan: MixturePlan,
                boundary: list[tuple[str, int, int]]):
        crash_point("selected")
        batch, priority, eligible = element
        bucket = _bucket(priority)
        copies = np.zeros(batch.num_rows, np.int32)
        uids = batch.column("uid").to_numpy()
        decided = np.zeros(batch.num_rows, bool)
        for name, rows in _by_key(batch, self._config, self._origins):
            copies[rows] = plan.copies_for_bucket(name, bucket[rows])
            decided[rows], large = plan.large_copies(name, uids[rows])
            copies[rows] = np.where(decided[rows], large, copies[rows])
        taken, cutoffs = self._resolved(plan, boundary)
        if len(taken):
            copies += np.isin(uids, taken).astype(np.int32)
        copies[~eligible] = 0
        progress.add(progress.MIXED, batch.num_rows)
        progress.add(progress.SELECTED_ROWS, int(copies.sum()))
        self._documents.inc(batch.num_rows)
        self._selected.inc(int(np.count_nonzero(copies)))
        self._rows.inc(int(copies.sum()))
        scores = batch.column("quality_score").to_numpy(zero_copy_only=False).astype(np.float64)
        tokens = batch.column("tokens").to_numpy().astype(np.int64)
        text_bytes = batch.column("bytes").to_numpy().astype(np.int64)
        units = _units(batch, self._config.unit)
        splits = np.asarray(split_of(batch.column("doc_id"), self._seed, self._config.validation_fraction),
                            dtype=object)
        flagged = _flagged(batch)
        if self._lineage is not None:
            yield beam.pvalue.TaggedOutput(LEDGER, self._ledger(batch, priority, eligible, copies, splits, scores,
                                                                flagged, plan, cutoffs, decided))
        for name, rows in _by_source(batch):
            chosen = rows[copies[rows] > 0]
            yield emit(Figure.SELECTED, len(chosen), name)
            yield emit(Figure.NOT_SELECTED, len(rows) - len(chosen), name)
            yield emit(Figure.SELECTED_ROWS, int(copies[rows].sum()), name)
            yield emit(Figure.SELECTED_TOKENS, int((copies[rows] * tokens[rows]).sum()), name)
            yield emit(Figure.SELECTED_DOCUMENT_TOKENS, int(tokens[chosen].sum()), name)
            yield emit(Figure.SELECTED_UNITS, int((copies[rows] * units[rows]).sum()), name)
            yield from emit_histogram(Figure.SCORES_POOL, score_histogram(scores[rows]), name)
            yield from emit_histogram(Figure.SCORES_SELECTED, score_histogram(scores[chosen]), name)
            yield emit(Figure.FLAGGED, int(flagged[rows].sum()), name, "pool")
            yield emit(Figure.FLAGGED, int(flagged[chosen].sum()), name, "selected")
            for split in np.unique(splits[chosen]):
                in_split = chosen[splits[chosen] == split]
                yield emit(Figure.SPLIT_ROWS, int(copies[in_split].sum()), detail=str(split))
                yield emit(Figure.SPLIT_BYTES, int((copies[in_split] * text_bytes[in_split]).sum()), detail=str(split))
        if len(self._carried_runs):
            yield from self._carried(batch, copies, tokens)
        for name, script, rows in _by_source_script(batch):
            yield emit(Figure.SCRIPT_SELECTED, int((copies[rows] > 0).sum()), name, script)
            yield emit(Figure.SCRIPT_SELECTED_ROWS, int(copies[rows].sum()), name, script)
            yield emit(Figure.SCRIPT_SELECTED_TOKENS, int((copies[rows] * tokens[rows]).sum()), name, script)
            yield emit(Figure.SCRIPT_SELECTED_UNITS, int((copies[rows] * units[rows]).sum()), name, script)
        keep = pa.array(copies > 0)
        if not pc.any(keep).as_py():
            return
        chosen = batch.filter(keep)
        yield pa.RecordBatch.from_arrays(
            [
                chosen.column("uid"),
                chosen.column("doc_id"),
                pa.array(copies[copies > 0], pa.int32()),
                chosen.column("content_hash"),
                chosen.column("tokens"),
                chosen.column("chars"),
                chosen.column("script"),
                chosen.column("bytes"),
                chosen.column("text_hash"),
                chosen.column("quality_flags"),
                chosen.column("quality_score"),
                chosen.column("dup_cluster"),
                chosen.column("dup_cluster_size"),
            ],
            schema=columns.SELECTION,
        )


    def _carried(self, batch: pa.RecordBatch, copies: np.ndarray, tokens: np.ndarray):
        """Documents selected from earlier outputs, and their tokens, per source and earlier run."""
        runs = self._carried_runs[uid_file(batch.column("uid").to_numpy())]
        for name, rows in _by_source(batch):
            for run_id in np.unique(runs[rows]):
                if not run_id:
                    continue
                mine = rows[runs[rows] == run_id]
                yield emit(Figure.CARRIED_SELECTED, int((copies[mine] > 0).sum()), name, run_id)
                yield emit(Figure.CARRIED_SELECTED_TOKENS, int(tokens[mine[copies[mine] > 0]].sum()), name, run_id)

    def _ledger(self, batch, priority, eligible, copies, splits, scores, flagged, plan: MixturePlan,
                cutoffs: dict[str, int | None], long: np.ndarray) -> pa.RecordBatch:
        """Every survivor's ledger row: selected (copies, split) or not (priority against the cut-off).
        `long`: the rows the plan decided one by one (`MixturePlan.large_copies`)."""
        uids = batch.column("uid").to_numpy()
        units = _units(batch, self._config.unit)
        # Each row's place in the parts joined below; 0, the first part, is "" (a row of no key).
        at = np.zeros(batch.num_rows, np.int64)
        parts, start = [pa.array([""], pa.string())], 1
        split_names = pa.array(splits, pa.string())
        for name, rows in _by_key(batch, self._config, self._origins):
            source = batch.column("source")[int(rows[0])].as_py()
            mode = self._config.selection_of(source, Origin(self._origins[source]))
            if name not in plan.sources:
                text = pa.repeat(pa.scalar(f"no quota for {key_label(*split_key(name))}"), len(rows))
            else:
                text = selection_details(copies[rows], split_names.take(pa.array(rows)), priority[rows],
                                         cutoffs.get(name), key_label(*split_key(name)), mode)
            decided = long[rows]
            if decided.any():
                # Said only where the cut-off would not tell it: left out of the pass at a priority
                # within the cut-off, or taken at one past it.
                cutoff = cutoffs.get(name)
                for i in np.nonzero(decided)[0].tolist():
                    taken = plan.sources[name].large[int(uids[rows[i]])][0]
                    decided[i] = cutoff is None or taken == bool(priority[rows[i]] > np.uint64(cutoff))
            if decided.any():
                at_large = rows[decided]
                decisions = [plan.sources[name].large[u] for u in uids[at_large].tolist()]
                large = large_details(copies[at_large], [splits[r] for r in at_large.tolist()], priority[at_large],
                                      units[at_large], decisions, key_label(*split_key(name)), self._config.unit,
                                      mode)
                text = pc.replace_with_mask(text, pa.array(decided), pa.array(large, pa.string()))
            penalty = self._config.flag_penalty_of(source)
            if mode in ("top", "weighted"):
                marked = flag_penalized_rows(scores[rows], flagged[rows], penalty)
                if marked.any():
                    text = pc.if_else(pa.array(marked), pc.binary_join_element_wise(
                        text, f"; flagged (quality_flags), so ranked as if its score were {penalty:g} standard "
                        "deviations lower", ""), text)
            if not eligible[rows].all():
                floor = self._config.min_score_of(source)
                below = [f"{'no quality_score' if np.isnan(s) else f'quality_score {s:.4f}'} below min_score "
                         f"{floor} of {source}: not eligible" for s in scores[rows[~eligible[rows]]]]
                text = pc.replace_with_mask(text, pa.array(~eligible[rows]), pa.array(below, pa.string()))
            at[rows] = start + np.arange(len(rows))
            start += len(rows)
            parts.append(text)
        details = pa.concat_arrays(parts).take(pa.array(at))
        fates = pa.array(np.where(copies > 0, Fate.SELECTED.value, Fate.NOT_SELECTED.value), pa.string())
        return ledger_batch(batch.column("doc_id"), batch.column("source"), self._lineage.source_files(uids),
                            self._lineage.source_rows(uids), fates, details)


class MixOutputs(NamedTuple):
    selected: beam.PCollection
    plan: beam.PCollection  # one MixturePlan, after the post-selection guards passed
    stats: beam.PCollection
    split_sizes: beam.PCollection  # one dict: split -> {"rows": ..., "bytes": ...} of output text
    ledger: beam.PCollection  # a ledger row per survivor, selected or not_selected (with a lineage)


def _split_sizes(stats: list[tuple[tuple[str, str, str], int]]) -> dict[str, dict[str, int]]:
    return RunStats(stats).split_sizes()


def _check_selection(plan: MixturePlan, stats: list, config: MixtureConfig, origins: dict[str, str],
                     carry_forward: CarryForward | None = None) -> MixturePlan:
    """Guards that need the selection itself: human tokens when the unit is documents, and the carry-forward
    guard, which counts the earlier output's documents selected again.

    These figures are summed from every document's selection (`_SelectFn`), before any row is written:
    every writer waits for the plan this returns (`gate`), so a violation publishes nothing.
    """
    figures = RunStats(stats)

    def human(figure: Figure, detail: str = "") -> int:
        return sum(n for name, n in figures.by_source(figure, detail).items() if origins.get(name) == "human")

    if figures.total(Figure.SELECTED_ROWS) == 0 and plan.total_units > 0:
        # Every source's quota rounded to whole documents is zero: an output of no rows is no mixture.
        budget = "" if config.total is None else f" (mixture.total_{config.unit}: {config.total:,})"
        shares = sorted(plan.sources.items())
        raise InfeasibleMixtureError(
            f"the mixture selects no document: the budget{budget} is too small for any source's share "
            f"({', '.join(f'{key_label(*split_key(n))} {sp.quota_units:,.2f} {config.unit}' for n, sp in shares)}"
            "); raise the total")
    check_human_tokens(config, human(Figure.SELECTED_TOKENS))
    check_selected_synthetic(config, plan, _selected_units(figures, plan))
    if carry_forward is not None:
        check_carry_forward(carry_forward, human(Figure.SELECTED_DOCUMENT_TOKENS),
                            human(Figure.CARRIED_SELECTED, carry_forward.run_id))
    return plan


def _selected_units(figures: RunStats, plan: MixturePlan) -> dict[str, int]:
    """Units selected per planner key: per source, or per source and script where the plan has scripts."""
    if any(split_key(n)[1] for n in plan.sources):
        by_script = figures.by_detail(Figure.SCRIPT_SELECTED_UNITS)
        return {n: by_script.get(split_key(n)[1], {}).get(split_key(n)[0], 0) if split_key(n)[1]
                else figures.by_source(Figure.SELECTED_UNITS).get(n, 0) for n in plan.sources}
    return figures.by_source(Figure.SELECTED_UNITS)


class MixSources(beam.PTransform):
    """Plan quotas from per-source tallies, then mark each survivor with its number of copies.

    With a `lineage`, `ledger` gets every survivor's fate (selected or not, and why); without, it is empty.
    `carried_runs`: per input file, the earlier run a `format: hybridmix` corpus reads it from ("" for
    other files), so the selection counts carried documents; `carry_forward`: that guard, if set.
    """

    def __init__(self, config: MixtureConfig, source_origins: dict[str, str], seed: int,
                 lineage: Lineage | None = None, carried_runs: tuple[str, ...] = (),
                 carry_forward: CarryForward | None = None, matched_earlier: tuple[str, ...] = ()) -> None:
        super().__init__()
        self._matched_earlier = matched_earlier  # origins matched against earlier outputs, for messages
        self._config = config
        self._origins = source_origins
        self._seed = seed
        self._lineage = lineage
        self._carried_runs = carried_runs if any(carried_runs) else ()
        self._carry_forward = carry_forward

    def expand(self, survivors: beam.PCollection) -> MixOutputs:
        seed = self._seed
        prioritized = survivors | "Prioritize" >> beam.Map(_Prioritize(self._config, self._origins, seed))
        plan = (
            prioritized
            # (key, tally) -> {key: tally}: a few KB per source (or source and script), one element in all.
            | "TallySources" >> beam.ParDo(_TallyFn(self._config, self._origins))
            | "MergeTallies" >> beam.CombinePerKey(_MergeTallies())
            | "CollectTallies" >> beam.combiners.ToDict()
            | "PlanQuotas" >> beam.Map(_make_plan, self._config, self._origins, self._matched_earlier)
        )
        plan_side = beam.pvalue.AsSingleton(plan)
        boundary = (
            prioritized
            | "FindBoundary" >> beam.ParDo(_BoundaryFn(self._config, self._origins), plan=plan_side)
            | "GroupBoundary" >> beam.GroupByKey()
            | "ResolveBoundary" >> beam.FlatMap(_resolve, plan=plan_side)
        )
        selected = prioritized | "Select" >> beam.ParDo(
            _SelectFn(self._config, self._origins, seed, self._lineage, self._carried_runs), plan=plan_side,
            boundary=beam.pvalue.AsList(boundary),
        ).with_outputs(STATS, LEDGER, main=SELECTED)
        totals = selected[STATS] | "SumSelection" >> beam.CombinePerKey(sum)
        checked = plan | "CheckSelection" >> beam.Map(
            _check_selection, stats=beam.pvalue.AsList(totals), config=self._config, origins=self._origins,
            carry_forward=self._carry_forward)
        split_sizes = totals | "SplitSizes" >> beam.combiners.ToList() | "ToSplitSizes" >> beam.Map(_split_sizes)
        return MixOutputs(selected=selected[SELECTED], plan=checked, stats=selected[STATS],
                          split_sizes=split_sizes, ledger=selected[LEDGER])
