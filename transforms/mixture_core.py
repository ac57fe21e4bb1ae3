"""The mixture planner: from what each source has left to how much of it goes out.

Pure functions. Selection order inside a source is a seeded hash of the doc id, bucketed
into a fixed histogram; the plan finds each source's boundary bucket from the histogram
alone, so no worker ever sorts or holds a whole source. Its longest documents travel with the
histogram and are decided one by one (`partial_pass`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hybridmix.schemas.config import MixtureConfig, Origin
from hybridmix.schemas.errors import GuardViolation, InfeasibleMixtureError

PRIORITY_BITS = 12
BUCKETS = 1 << PRIORITY_BITS
# Per planner key, the largest documents (in tokens) travel with the histogram, and the plan decides
# the long ones one by one: the last partial pass takes documents in priority order up to the quota,
# and one long document there (a book among paragraphs) would otherwise stop it far short of the
# quota, or far past it.
LARGE_DOCUMENTS = 64
# Of those, the ones over this many times their source's mean length are decided so: the others
# stay in the priority order, where the boundary costs at most half of an ordinary document.
LONG_FACTOR = 4
# A source that selects less than this share of its quota is named as short of it (guard, summary).
FILLED = 0.99
# Float slack when comparing planned units with what a source can give.
_EPS = 1e-9


@dataclass
class SourceTally:
    """What one source has left after filters and dedup (all in exact integers)."""

    documents: int = 0
    tokens: int = 0
    max_generation: int = 0
    # Units (tokens or documents) per selection-priority bucket.
    bucket_units: np.ndarray = field(default_factory=lambda: np.zeros(BUCKETS, np.int64))
    # (units, priority, uid) of the largest documents (`largest`); empty when the unit is documents.
    large: tuple[tuple[int, int, int], ...] = ()

    def merge(self, other: SourceTally) -> SourceTally:
        return SourceTally(
            documents=self.documents + other.documents,
            tokens=self.tokens + other.tokens,
            max_generation=max(self.max_generation, other.max_generation),
            bucket_units=self.bucket_units + other.bucket_units,
            large=largest(self.large + other.large),
        )

    def units(self, unit: str) -> int:
        return self.tokens if unit == "tokens" else self.documents


def largest(docs) -> tuple[tuple[int, int, int], ...]:
    """The LARGE_DOCUMENTS largest of (units, priority, uid), largest first; ties by priority, then uid,
    so the result is the same however the documents were split over workers."""
    return tuple(sorted(docs, key=lambda d: (-d[0], d[1], d[2]))[:LARGE_DOCUMENTS])


def long_documents(tally: SourceTally) -> tuple[tuple[int, int, int], ...]:
    """The documents of `tally.large` that the last pass decides one by one (LONG_FACTOR)."""
    if not tally.large or not tally.documents:
        return ()
    limit = LONG_FACTOR * tally.tokens / tally.documents
    return tuple(d for d in tally.large if d[0] > limit)


def bucket_of(priority: int) -> int:
    return priority >> (64 - PRIORITY_BITS)


# With script targets (`mixture.scripts`), the planner's unit is a source's documents in one
# script: the key "<source>\x1f<script>" (a separator no corpus name holds).
_STRATUM = "\x1f"


def stratum(source: str, script: str) -> str:
    return f"{source}{_STRATUM}{script}"


def split_key(key: str) -> tuple[str, str]:
    """(source, script) of a planner key; script "" for a whole source."""
    source, _, script = key.partition(_STRATUM)
    return source, script


def plan_keys(config: MixtureConfig, source_origins: dict[str, str], seen: list[str] = ()) -> dict[str, str]:
    """Planner key -> origin: a source, or one key per (source, script) for origins with script targets.

    `seen`: keys found in the data, so that scripts without a target are planned too (at share 0).
    """
    out: dict[str, str] = {}
    for name, origin in source_origins.items():
        scripts = config.scripts_of(origin)
        if scripts is None:
            out[name] = origin
        else:
            out.update({stratum(name, script): origin for script in scripts})
    for key in seen:
        source, script = split_key(key)
        if script and source in source_origins:
            out.setdefault(key, source_origins[source])
    return out


def key_label(key: str) -> str:
    source, script = split_key(key)
    return f"{source} (script {script})" if script else source


@dataclass(frozen=True)
class SourcePlan:
    name: str  # the planner key (`plan_keys`)
    origin: str
    available_documents: int
    available_tokens: int
    available_units: int
    share: float  # target fraction of the whole mixture
    quota_units: float
    full_repeats: int
    remainder_units: float  # taken from one more pass, in priority order
    boundary_bucket: int  # -1: no partial pass; BUCKETS: every bucket whole (long documents decided apart)
    boundary_need: float  # units to take inside the boundary bucket
    # The long documents (`long_documents`) the partial pass decided one by one: uid -> (taken, what
    # was left of the remainder when its turn came). Every other document is decided by its bucket.
    large: dict[int, tuple[bool, float]] = field(default_factory=dict)
    # How far the selection may land from the quota by rounding to whole documents: its largest
    # document that is not decided one by one.
    rounding_units: int = 0

    @property
    def source(self) -> str:
        return split_key(self.name)[0]

    @property
    def script(self) -> str:
        """The script this plan covers, or "" for all of its source."""
        return split_key(self.name)[1]


@dataclass(frozen=True)
class MixturePlan:
    unit: str
    total_units: float
    budget: str  # "fixed", "max" (as large as the data allows) or "shrunk"
    max_repeats: int
    targets: dict[str, float]  # fraction per origin (given, or the sum of its sources' shares)
    sources: dict[str, SourcePlan]

    def copies_for_bucket(self, source: str, bucket: np.ndarray) -> np.ndarray:
        """Copies per document from its bucket alone; the boundary bucket is resolved apart."""
        plan = self.sources.get(source)
        if plan is None:  # a script without a target whose documents were all ineligible
            return np.zeros(len(bucket), np.int32)
        copies = np.full(len(bucket), plan.full_repeats, np.int32)
        if plan.boundary_bucket >= 0:
            copies[bucket < plan.boundary_bucket] += 1
        return copies

    def large_copies(self, source: str, uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which of `uids` the plan decided one by one, their copies)."""
        plan = self.sources.get(source)
        if plan is None or not plan.large:
            return np.zeros(len(uids), bool), np.zeros(len(uids), np.int32)
        decided = np.fromiter(plan.large, np.int64, len(plan.large))
        taken = np.array([plan.large[u][0] for u in decided.tolist()], bool)
        order = np.argsort(decided)
        at = np.minimum(np.searchsorted(decided[order], uids), len(decided) - 1)
        found = decided[order][at] == uids
        copies = np.where(found & taken[order][at], plan.full_repeats + 1, plan.full_repeats).astype(np.int32)
        return found, np.where(found, copies, 0).astype(np.int32)


def source_shares(config: MixtureConfig, source_origins: dict[str, str],
                  tallies: dict[str, SourceTally], matched_earlier: tuple[str, ...] = ()) -> dict[str, float]:
    """Target fraction of the whole mixture for each source. `matched_earlier`: the origins whose
    documents were matched against earlier outputs (dedup.against), named when one is left empty."""

    def size(name: str) -> float:
        return float(tallies[name].units(config.unit))

    def script_part(key: str, keys: list[str]) -> float:
        """The share of its source's units that a (source, script) key holds."""
        whole = sum(size(k) for k in keys if split_key(k)[0] == split_key(key)[0])
        return size(key) / whole if whole > 0 else 0.0

    def by_size(names: list[str]) -> dict[str, float]:
        if config.temperature is None:
            return {n: size(n) for n in names}
        return {n: size(n) ** (1.0 / config.temperature) if size(n) > 0 else 0.0 for n in names}

    if config.weights is not None:
        total = sum(config.weights.values())
        return {n: config.weights.get(n, 0.0) / total for n in source_origins}
    shares: dict[str, float] = {}
    for origin in Origin:
        names = [n for n, o in source_origins.items() if o == origin.value]
        if not names:
            continue
        fraction = config.targets.get(origin, 0.0)
        scripts = config.scripts_of(origin)
        groups = {"": fraction} if scripts is None else {s: fraction * f for s, f in scripts.items()}
        for script, group_fraction in groups.items():
            members = names if scripts is None else [n for n in names if split_key(n)[1] == script]
            if any(split_key(n)[0] in config.source_weights for n in members):
                # Under script targets a source's weight is spread over the scripts it holds, in
                # proportion to its units in each: a weight given alike to every script made a source
                # of Han text alone owe a share of the Latin quota, and the recipe infeasible.
                weights = {n: config.source_weights.get(split_key(n)[0], 0.0)
                           * (1.0 if scripts is None else script_part(n, names)) for n in members}
            else:
                weights = by_size(members)
            total_weight = sum(weights.values())
            if group_fraction > 0 and total_weight <= 0:
                what = f"origin {origin.value}" + (f", script {script}" if script else "")
                sources = ", ".join(sorted({split_key(n)[0] for n in members}))
                # An origin emptied by dedup.against (a human corpus every day's run reads again was
                # published by the first day): the message alone sent users looking at their filters.
                earlier = (", which with dedup.against includes what earlier outputs published "
                           "(dedup.against_origins chooses the origins matched against them)"
                           if origin.value in matched_earlier else "")
                raise InfeasibleMixtureError(
                    f"{what}: target {group_fraction:g} but its sources ({sources}) "
                    f"have no documents left after filters and dedup{earlier}")
            for n in members:
                shares[n] = group_fraction * weights[n] / total_weight if group_fraction > 0 else 0.0
        for n in names:
            shares.setdefault(n, 0.0)  # a script without a target
    return shares


def plan_mixture(
    config: MixtureConfig,
    source_origins: dict[str, str],
    tallies: dict[str, SourceTally],
    matched_earlier: tuple[str, ...] = (),
) -> MixturePlan:
    """Quota per source; raises InfeasibleMixtureError or GuardViolation before anything is written.
    `matched_earlier`: as `source_shares` takes it."""
    tallies = {name: tallies.get(name, SourceTally()) for name in source_origins}
    unit = config.unit
    shares = source_shares(config, source_origins, tallies, matched_earlier)

    def capacity(n: str) -> float:
        return tallies[n].units(unit) * config.repeat_cap(split_key(n)[0])

    limits = {n: capacity(n) / s for n, s in shares.items() if s > 0}
    max_total = min(limits.values()) if limits else 0.0
    requested = config.total
    budget = "max"
    total = max_total
    if requested is not None:
        budget = "fixed"
        total = float(requested)
        short = [n for n in sorted(limits) if total * shares[n] > capacity(n) * (1 + _EPS) + _EPS]
        if short:
            if config.on_infeasible == "shrink":
                total, budget = max_total, "shrunk"
            else:
                n = short[0]
                source = split_key(n)[0]
                raise InfeasibleMixtureError(
                    f"source {key_label(n)!r} ({source_origins[n]}) has {tallies[n].units(unit):,} {unit} "
                    f"after filters and dedup; the mixture needs {total * shares[n]:,.0f} "
                    f"({shares[n]:.2%} of {total:,.0f}), more than max_repeats={config.repeat_cap(source)} "
                    f"copies give. Lower mixture.total_{unit}, raise mixture.max_repeats (or "
                    f"mixture.sources.{source}.max_repeats), or set "
                    "mixture.on_infeasible: shrink")
    if total <= 0 and limits:
        empty = [n for n in limits if tallies[n].units(unit) == 0]
        raise InfeasibleMixtureError(
            f"source {key_label(empty[0])!r} has no {unit} left after filters and dedup, but its target "
            f"share is {shares[empty[0]]:.2%}")

    plans: dict[str, SourcePlan] = {}
    for n, share in shares.items():
        available = tallies[n].units(unit)
        quota = total * share
        if available == 0 or quota <= 0:
            plans[n] = SourcePlan(n, source_origins[n], tallies[n].documents, tallies[n].tokens, available,
                                  share, quota, 0, 0.0, -1, 0.0)
            continue
        repeats = int(math.floor(quota / available + _EPS))
        remainder = quota - repeats * available
        if remainder <= _EPS * max(1.0, quota):
            remainder = 0.0
        bucket, need, large = -1, 0.0, {}
        if remainder > 0:
            bucket, need, large = partial_pass(tallies[n], remainder)
        tracked, long = tallies[n].large, long_documents(tallies[n])
        ordinary = [d for d in tracked if d not in long]
        rounding = ordinary[0][0] if ordinary else tracked[-1][0] if tracked else 1
        plans[n] = SourcePlan(n, source_origins[n], tallies[n].documents, tallies[n].tokens, available,
                              share, quota, repeats, remainder, bucket, need, large, rounding)

    plan = MixturePlan(
        unit=unit,
        total_units=total,
        budget=budget,
        max_repeats=config.max_repeats,
        targets={o.value: round(sum(sh for n, sh in shares.items() if source_origins[n] == o.value), 12)
                 for o in Origin if o.value in source_origins.values()},
        sources=plans,
    )
    check_guards(config, plan, tallies)
    return plan


def partial_pass(tally: SourceTally, remainder: float) -> tuple[int, float, dict[int, tuple[bool, float]]]:
    """(boundary bucket, units needed inside it, the long documents' decisions) of the last pass.

    The pass takes documents in priority order, a bucket at a time, until `remainder` units. A long
    document (`long_documents`) is decided before the rest of its bucket, on its own: taken when it fits
    what is left, or when taking it overshoots by less than the rest of the source would fall short
    without it; else skipped, and documents of lower priority fill the quota in its place. The
    other documents of the boundary bucket are resolved in exact priority order (`resolve_boundary`).
    Without long documents the boundary is the first bucket whose cumulative units reach the
    remainder, and BUCKETS when every bucket is taken whole.
    """
    small = tally.bucket_units.astype(np.float64)
    by_bucket: dict[int, list[tuple[int, int, int]]] = {}
    long = long_documents(tally)
    if long:
        small = small.copy()
        for doc in sorted(long, key=lambda d: (d[1], d[2])):
            small[bucket_of(doc[1])] -= doc[0]
            by_bucket.setdefault(bucket_of(doc[1]), []).append(doc)
    after = np.concatenate([np.cumsum(small[::-1])[::-1], [0.0]])  # the small documents' units from bucket b on
    cum = 0.0  # units taken
    start = 0  # the first bucket whose small documents are not counted in cum
    decided: dict[int, tuple[bool, float]] = {}
    for b in sorted(by_bucket):
        reach = cum + after[start] - after[b]
        if reach >= remainder - _EPS:
            break  # the boundary is a bucket of small documents before b
        cum, start = reach, b
        for units, _, uid in by_bucket[b]:
            left = remainder - cum
            take = units <= left + _EPS or units - left < max(0.0, left - after[b])
            decided[uid] = (bool(take), float(left))
            cum += units if take else 0
            if cum >= remainder - _EPS:
                return b, 0.0, decided  # the rest of bucket b and after is not taken
    running = cum + np.cumsum(small[start:])
    at = int(np.searchsorted(running, remainder - _EPS, side="left"))
    if at >= len(running):
        return BUCKETS, 0.0, decided
    return start + at, remainder - (float(running[at - 1]) if at > 0 else cum), decided


def check_guards(config: MixtureConfig, plan: MixturePlan, tallies: dict[str, SourceTally]) -> None:
    guards = config.guards
    if guards.max_generation is not None:
        for n, sp in sorted(plan.sources.items()):
            depth = tallies[n].max_generation
            if sp.quota_units > 0 and depth > guards.max_generation:
                raise GuardViolation(
                    f"guards.max_generation: source {key_label(n)!r} holds generation-{depth} synthetic text, "
                    f"the limit is {guards.max_generation}")
    if guards.max_synthetic_fraction is not None:
        share = sum(sp.share for sp in plan.sources.values() if sp.origin == Origin.SYNTHETIC.value)
        if share > guards.max_synthetic_fraction + _EPS:
            raise GuardViolation(
                f"guards.max_synthetic_fraction: planned synthetic fraction {share:.4f} exceeds "
                f"the limit {guards.max_synthetic_fraction:g}")
    if guards.min_human_tokens is not None and plan.unit == "tokens":
        human = sum(sp.quota_units for sp in plan.sources.values() if sp.origin == Origin.HUMAN.value)
        if human < guards.min_human_tokens:
            raise GuardViolation(
                f"guards.min_human_tokens: the mixture would hold {human:,.0f} human tokens, "
                f"the minimum is {guards.min_human_tokens:,}")


def check_selected_synthetic(config: MixtureConfig, plan: MixturePlan, selected: dict[str, int]) -> None:
    """The max_synthetic_fraction guard on what was selected (`selected`: units per planner key).

    The plan meets it, but a source can fall short of its quota where its documents are too long
    to fit it (a book among paragraphs), which raises the synthetic fraction. Each source lands
    within one document of its quota otherwise, so the limit is exceeded only by more than what
    rounding to whole documents moves (`rounding_units`, the largest of any source).
    """
    limit = config.guards.max_synthetic_fraction
    total = sum(selected.values())
    if limit is None or total == 0:
        return
    synthetic = sum(v for n, v in selected.items()
                    if n in plan.sources and plan.sources[n].origin == Origin.SYNTHETIC.value)
    one = max((sp.rounding_units for sp in plan.sources.values()), default=0)
    if synthetic - limit * total <= one + _EPS:
        return
    short = [f"{key_label(n)} {selected.get(n, 0):,} of {sp.quota_units:,.0f}" for n, sp in sorted(plan.sources.items())
             if selected.get(n, 0) < FILLED * sp.quota_units]
    raise GuardViolation(
        f"guards.max_synthetic_fraction: the selection holds {synthetic:,} synthetic {plan.unit} of {total:,} "
        f"({synthetic / total:.2%}), over the limit {limit:g} by more than one document"
        + (f"; sources short of their quotas ({plan.unit} selected of quota): {', '.join(short)}, as the documents "
           "left could not fill them (see `hybridmix explain` of their largest ones)" if short else ""))


def check_human_tokens(config: MixtureConfig, human_tokens: int) -> None:
    """The min_human_tokens guard on what was actually selected (documents unit)."""
    limit = config.guards.min_human_tokens
    if limit is not None and human_tokens < limit:
        raise GuardViolation(
            f"guards.min_human_tokens: the mixture holds {human_tokens:,} human tokens, "
            f"the minimum is {limit:,}")


@dataclass(frozen=True)
class CarryForward:
    """The carry-forward guard: an earlier output's human data (from its manifest) and the shares of it
    the new mix must keep (`mixture.guards.carry_forward`)."""

    output: str
    run_id: str
    human_tokens: int  # of its human documents in data/, one copy each
    human_documents: int
    min_human_tokens: float
    min_human_documents: float


def check_carry_forward(guard: CarryForward, human_tokens: int, carried_documents: int) -> None:
    """Accumulate, never replace: the new mix's human tokens and the earlier human documents it selects
    again must not fall below their shares of the earlier output's.

    Tokens are of distinct documents on both sides (one copy each): upsampling adds no human data,
    so carrying every earlier human document passes even where the earlier run upsampled them, and
    upsampling a little human text cannot pass for keeping it all.
    """
    key = "guards.carry_forward"
    need = guard.min_human_tokens * guard.human_tokens
    if human_tokens < need - _EPS:
        raise GuardViolation(
            f"{key}: the mixture holds {human_tokens:,} human tokens (one copy of each document), fewer than "
            f"{guard.min_human_tokens:g} x the {guard.human_tokens:,} of the earlier output {guard.output} (run "
            f"{guard.run_id}); add human data (a format: hybridmix corpus of origin human reading {guard.output}, "
            f"new human corpora), or lower {key}.min_human_tokens")
    need = guard.min_human_documents * guard.human_documents
    if carried_documents < need - _EPS:
        raise GuardViolation(
            f"{key}: the mixture selects {carried_documents:,} of the {guard.human_documents:,} human documents of "
            f"the earlier output {guard.output} (run {guard.run_id}), fewer than {guard.min_human_documents:g} x "
            f"{guard.human_documents:,}; read them with a format: hybridmix corpus of origin human and paths "
            f"[{guard.output}] and let the mixture take all of it, or lower {key}.min_human_documents. Filters and "
            "dedup may drop some (an exact copy under a new id can be kept in place of the earlier one): nothing was "
            "written, but a run with the guard lowered writes ledger/, which says where each went")


def top_priority(scores: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Selection priority (ascending) for `top`: the highest score first, ties in seeded-hash order."""
    level = np.floor((1.0 - np.clip(np.nan_to_num(scores, nan=0.0), 0.0, 1.0)) * float(2**32 - 1))
    return (level.astype(np.uint64) << np.uint64(32)) | (hashes >> np.uint64(32))


def weighted_priority(scores: np.ndarray, hashes: np.ndarray, sharpness: float) -> np.ndarray:
    """Selection priority (ascending) for `weighted`: weighted sampling without replacement.

    Each document draws an exponential clock E / w with E ~ Exp(1) from its seeded hash and weight
    w = exp(sharpness * z), z the score as a standard normal quantile (quality_score is the share of
    the scorer's training documents that score lower, so z is a standardized score). Taking the
    smallest clocks first (Efraimidis and Spirakis, 2006) is a sample in which a document's chance
    rises with its score and no document's is zero.
    """
    u = ((hashes >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    z = standard_score(scores)
    clock = -np.log(u) * np.exp(-sharpness * z)
    # A monotone map of (0, inf) onto the uint64 keys the planner's histogram buckets read.
    return (np.floor(clock / (1.0 + clock) * 2.0**63).astype(np.uint64) << np.uint64(1)) | (hashes & np.uint64(1))


def flag_penalized_rows(scores: np.ndarray, flagged: np.ndarray, penalty: float) -> np.ndarray:
    """Which documents `flag_penalized` lowers: the flagged ones with a score (unscored stay unscored)."""
    if penalty <= 0:
        return np.zeros(len(scores), bool)
    return flagged & ~np.isnan(scores)


def flag_penalized(scores: np.ndarray, flagged: np.ndarray, penalty: float) -> np.ndarray:
    """Scores as top and weighted selection rank them: a flagged document's `penalty` standard
    deviations lower, the score read as a standard normal quantile (`standard_score`).
    Unscored documents (NaN) stay unscored."""
    rows = flag_penalized_rows(scores, flagged, penalty)
    if not rows.any():
        return scores
    from scipy.special import ndtr  # imported where used: 0.15 s that runs without a penalty never need

    out = scores.copy()
    # Scores under 1e-6 are clipped before the quantile: a flagged 0 came out at 4.6e-15, above the
    # unflagged 0 it was meant to rank below. A penalty never raises a score.
    out[rows] = np.minimum(scores[rows], ndtr(standard_score(scores[rows]) - penalty))
    return out


def standard_score(scores: np.ndarray) -> np.ndarray:
    """quality_score read as a standard normal quantile (the share of training documents below it ->
    z), clipped off the infinite ends; an unscored document (NaN) reads as the lowest score."""
    from scipy.special import ndtri  # see flag_penalized

    return ndtri(np.clip(np.nan_to_num(scores, nan=0.0), 1e-6, 1.0 - 1e-6))


def resolve_boundary(priorities: np.ndarray, uids: np.ndarray, units: np.ndarray, need: float) -> np.ndarray:
    """uids taken from the boundary bucket: the priority-ordered prefix whose units come closest to `need`."""
    order = np.lexsort((uids, priorities))
    cum = np.concatenate([[0], np.cumsum(units[order])])
    best = int(np.argmin(np.abs(cum - need)))
    return uids[order[:best]]
