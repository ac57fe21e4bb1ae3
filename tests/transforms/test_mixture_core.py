import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.special import ndtr, ndtri

from hybridmix.schemas.config import MixtureConfig
from hybridmix.schemas.errors import GuardViolation, InfeasibleMixtureError
from hybridmix.transforms.mixture_core import (
    BUCKETS,
    LARGE_DOCUMENTS,
    CarryForward,
    SourceTally,
    check_carry_forward,
    check_selected_synthetic,
    flag_penalized,
    largest,
    partial_pass,
    plan_keys,
    plan_mixture,
    resolve_boundary,
    stratum,
    top_priority,
)


def tally(units_per_bucket, documents=None, tokens=None, generation=1):
    hist = np.zeros(BUCKETS, np.int64)
    for b, u in units_per_bucket.items():
        hist[b] = u
    total = int(hist.sum())
    return SourceTally(documents=documents if documents is not None else total,
                       tokens=tokens if tokens is not None else total,
                       max_generation=generation, bucket_units=hist)


def mix(**kw):
    kw.setdefault("targets", {"human": 0.7, "synthetic": 0.3})
    return MixtureConfig(**kw)


ORIGINS = {"h": "human", "s": "synthetic"}


def test_as_large_as_data_allows_uses_the_scarce_origin_fully():
    plan = plan_mixture(mix(), ORIGINS, {"h": tally({0: 700}), "s": tally({0: 1000})})
    assert plan.budget == "max"
    assert plan.total_units == pytest.approx(1000)
    assert plan.sources["h"].quota_units == pytest.approx(700)
    assert plan.sources["h"].full_repeats == 1 and plan.sources["h"].boundary_bucket == -1
    assert plan.sources["s"].quota_units == pytest.approx(300)


def test_boundary_bucket_is_found_from_the_histogram():
    plan = plan_mixture(mix(), ORIGINS, {"h": tally({0: 700}), "s": tally({0: 100, 5: 100, 9: 800})})
    s = plan.sources["s"]
    assert s.full_repeats == 0
    assert s.boundary_bucket == 9
    assert s.boundary_need == pytest.approx(100)


def _at(bucket: int, offset: int = 0) -> int:
    """A priority inside `bucket`."""
    return (bucket << 52) + offset


def test_a_long_document_at_the_boundary_is_left_out_and_later_ones_fill_the_quota():
    # 100 units in each of buckets 0-9, and a 5,000-unit book in bucket 3; the quota is 600 units.
    book = (5000, _at(3, 7), 42)
    hist = {b: 100 for b in range(10)}
    hist[3] += 5000
    s = tally(hist)
    s.large = (book,)
    bucket, need, large = partial_pass(s, 600)
    assert large == {42: (False, 300.0)}  # 300 were left when its turn came
    assert (bucket, need) == (5, 100.0)  # buckets 0-4 whole, then 100 more inside bucket 5
    # Decided before the rest of its bucket, a book that fits is taken, and the boundary moves on.
    assert partial_pass(s, 5_500) == (4, 100.0, {42: (True, 5_200.0)})


def test_a_long_document_is_taken_when_nothing_after_it_could_fill_the_quota():
    # 100 units in buckets 0 and 1, a 300-unit document in bucket 1; the quota is 390: taking it
    # overshoots by 10, leaving it out falls 90 short.
    s = tally({0: 100, 1: 400})
    s.large = ((300, _at(1), 7),)
    assert partial_pass(s, 390) == (1, 0.0, {7: (True, 290.0)})
    # Without large documents, the boundary is the bucket where the cumulative units reach the need.
    assert partial_pass(tally({0: 100, 1: 400}), 390) == (1, 290.0, {})


def test_the_largest_documents_are_the_same_however_workers_split_them():
    rng = np.random.default_rng(3)
    docs = [(int(u), int(p), i) for i, (u, p) in enumerate(zip(rng.integers(1, 50, 500), rng.integers(0, 2**63, 500)))]
    whole = largest(docs)
    assert len(whole) == LARGE_DOCUMENTS and [d[0] for d in whole] == sorted((d[0] for d in docs), reverse=True)[:64]
    for parts in (2, 7, 50):
        split = [SourceTally(large=largest(docs[i::parts])) for i in range(parts)]
        merged = split[0]
        for other in reversed(split[1:]):
            merged = merged.merge(other)
        assert merged.large == whole


def test_the_synthetic_guard_on_the_selection_allows_rounding_to_whole_documents():
    config = mix(targets={"human": 0.5, "synthetic": 0.5}, total_tokens=10_000,
                 guards={"max_synthetic_fraction": 0.5})
    h, s = tally({0: 20_000}), tally({0: 20_000})
    h.large = tuple((500, i, i) for i in range(LARGE_DOCUMENTS))  # no document over 500 tokens is not tracked
    s.large = tuple((100, i, 100 + i) for i in range(LARGE_DOCUMENTS))
    plan = plan_mixture(config, ORIGINS, {"h": h, "s": s})
    assert plan.sources["h"].rounding_units == 500
    check_selected_synthetic(config, plan, {"h": 4_800, "s": 5_000})  # human short by less than a document
    with pytest.raises(GuardViolation, match=r"holds 5,000 synthetic tokens of 7,000 \(71.43%\), over the limit "
                                             r"0.5 by more than one document; .*: h 2,000 of 5,000"):
        check_selected_synthetic(config, plan, {"h": 2_000, "s": 5_000})


def test_fixed_total_with_upsampling():
    plan = plan_mixture(mix(total_tokens=2000, max_repeats=3), ORIGINS, {"h": tally({0: 500}), "s": tally({0: 5000})})
    h = plan.sources["h"]
    assert h.quota_units == pytest.approx(1400)
    assert h.full_repeats == 2
    assert h.remainder_units == pytest.approx(400)


def test_infeasible_names_source_what_it_has_and_needs():
    with pytest.raises(InfeasibleMixtureError) as info:
        plan_mixture(mix(total_tokens=2000), ORIGINS, {"h": tally({0: 500}), "s": tally({0: 5000})})
    msg = info.value.message
    assert "'h'" in msg and "500 tokens" in msg and "1,400" in msg and "max_repeats=1" in msg


def test_shrink_instead_of_failing():
    plan = plan_mixture(mix(total_tokens=2000, on_infeasible="shrink"), ORIGINS,
                        {"h": tally({0: 500}), "s": tally({0: 5000})})
    assert plan.budget == "shrunk"
    assert plan.total_units == pytest.approx(500 / 0.7)


def test_origin_with_nothing_left_is_infeasible():
    with pytest.raises(InfeasibleMixtureError, match="no documents left"):
        plan_mixture(mix(), ORIGINS, {"h": tally({}), "s": tally({0: 10})})


def test_source_weights_split_an_origin():
    origins = {"h": "human", "s1": "synthetic", "s2": "synthetic"}
    plan = plan_mixture(mix(source_weights={"s1": 1, "s2": 3}), origins,
                        {"h": tally({0: 700}), "s1": tally({0: 1000}), "s2": tally({0: 1000})})
    assert plan.sources["s1"].share == pytest.approx(0.075)
    assert plan.sources["s2"].share == pytest.approx(0.225)


@pytest.mark.parametrize(
    "guards, error",
    [({"max_generation": 1}, "guards.max_generation: source 's' holds generation-2"),
     ({"min_human_tokens": 10_000}, "guards.min_human_tokens: the mixture would hold 700 human tokens")],
    ids=["generation", "human-tokens"],
)
def test_guards_stop_the_plan(guards, error):
    with pytest.raises(GuardViolation, match=error):
        plan_mixture(mix(guards=guards), ORIGINS, {"h": tally({0: 700}), "s": tally({0: 1000}, generation=2)})


def test_boundary_prefix_closest_to_need():
    prio = np.array([5, 1, 3, 2], np.uint64)
    uids = np.array([10, 11, 12, 13], np.int64)
    units = np.array([10, 10, 10, 10])
    assert resolve_boundary(prio, uids, units, 24).tolist() == [11, 13]
    assert resolve_boundary(prio, uids, units, 26).tolist() == [11, 13, 12]
    assert resolve_boundary(prio, uids, units, 0).tolist() == []


sizes = st.integers(min_value=0, max_value=10_000)


@settings(max_examples=150, deadline=None)
@given(
    human=st.lists(sizes, min_size=1, max_size=3),
    synth=st.lists(sizes, min_size=1, max_size=3),
    frac=st.floats(min_value=0.05, max_value=0.95),
    repeats=st.integers(min_value=1, max_value=4),
    total=st.one_of(st.none(), st.integers(min_value=1, max_value=50_000)),
)
def test_plan_properties(human, synth, frac, repeats, total):
    names = {f"h{i}": "human" for i in range(len(human))} | {f"s{i}": "synthetic" for i in range(len(synth))}
    units = dict(zip(names, human + synth))
    tallies = {n: tally({i % BUCKETS: u}) for i, (n, u) in enumerate(units.items())}
    config = mix(targets={"human": frac, "synthetic": 1 - frac}, max_repeats=repeats, total_tokens=total)
    try:
        plan = plan_mixture(config, names, tallies)
    except InfeasibleMixtureError:
        assume(False)
        return
    shares = sum(sp.share for sp in plan.sources.values())
    assert shares == pytest.approx(1.0)
    for n, sp in plan.sources.items():
        assert sp.quota_units <= units[n] * repeats * (1 + 1e-9) + 1e-6
        rebuilt = sp.full_repeats * units[n] + sp.remainder_units
        assert rebuilt == pytest.approx(sp.quota_units, rel=1e-9, abs=1e-6)
        assert sp.full_repeats <= repeats
    if total is not None:
        assert plan.total_units == pytest.approx(total)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=60), st.data())
def test_boundary_choice_is_within_one_document(units, data):
    need = data.draw(st.floats(min_value=0, max_value=float(sum(units))))
    n = len(units)
    chosen = resolve_boundary(np.arange(n, dtype=np.uint64)[::-1].copy(), np.arange(n, dtype=np.int64),
                              np.array(units), need)
    taken = sum(units[i] for i in chosen.tolist())
    assert abs(taken - need) <= max(units) / 2 + 1e-9


def test_flat_weights_across_origins():
    origins = {"h": "human", "s1": "synthetic", "s2": "synthetic"}
    config = MixtureConfig(weights={"h": 2, "s1": 1, "s2": 1}, total_tokens=400)
    plan = plan_mixture(config, origins, {"h": tally({0: 1000}), "s1": tally({0: 1000}), "s2": tally({0: 1000})})
    assert plan.sources["h"].quota_units == pytest.approx(200)
    assert plan.sources["s1"].quota_units == pytest.approx(100)
    assert plan.targets == {"human": 0.5, "synthetic": 0.5}


def test_temperature_flattens_sizes():
    origins = {"a": "synthetic", "b": "synthetic"}
    tallies = {"a": tally({0: 100}), "b": tally({0: 10_000})}
    natural = plan_mixture(MixtureConfig(targets={"synthetic": 1.0}, total_tokens=100), origins, tallies)
    hot = plan_mixture(MixtureConfig(targets={"synthetic": 1.0}, total_tokens=100, temperature=2.0), origins, tallies)
    assert natural.sources["a"].share == pytest.approx(100 / 10_100)
    # size^(1/2): 10 vs 100
    assert hot.sources["a"].share == pytest.approx(10 / 110)


def test_weights_and_temperature_config_rules():
    from hybridmix.schemas.errors import ConfigError
    from tests.builders import make_config

    with pytest.raises(ConfigError, match="mixture.weights: every corpus needs a weight"):
        make_config(mixture={"weights": {"human": 1}})
    with pytest.raises(ConfigError, match="give either targets .* or weights"):
        make_config(mixture={"weights": {"human": 1, "synth": 1}, "targets": {"human": 1, "synthetic": 0}})
    with pytest.raises(ConfigError, match="temperature: weights sources by size"):
        make_config(mixture={"targets": {"human": 0.5, "synthetic": 0.5}, "temperature": 2,
                             "source_weights": {"human": 1}})
    with pytest.raises(ConfigError, match="weigh every synthetic source or none"):
        make_config(corpora=[
            {"name": "h", "origin": "human", "paths": ["h"]},
            {"name": "s1", "origin": "synthetic", "paths": ["s1"]},
            {"name": "s2", "origin": "synthetic", "paths": ["s2"]}],
            mixture={"targets": {"human": 0.5, "synthetic": 0.5}, "source_weights": {"s1": 1}})


@settings(max_examples=100, deadline=None)
@given(
    sizes_=st.lists(st.integers(min_value=1, max_value=10_000), min_size=2, max_size=5),
    temperature=st.one_of(st.none(), st.floats(min_value=0.5, max_value=10)),
    flat=st.booleans(),
)
def test_shares_sum_to_one_in_every_mode(sizes_, temperature, flat):
    names = {f"s{i}": ("human" if i % 2 == 0 else "synthetic") for i in range(len(sizes_))}
    tallies = {n: tally({0: u}) for n, u in zip(names, sizes_)}
    if flat:
        config = MixtureConfig(weights={n: float(i + 1) for i, n in enumerate(names)})
    else:
        config = MixtureConfig(targets={"human": 0.6, "synthetic": 0.4}, temperature=temperature)
    plan = plan_mixture(config, names, tallies)
    assert sum(sp.share for sp in plan.sources.values()) == pytest.approx(1.0)
    assert sum(plan.targets.values()) == pytest.approx(1.0)
    for n, sp in plan.sources.items():
        assert sp.quota_units <= tallies[n].tokens * (1 + 1e-9)


def test_script_targets_split_an_origin_by_script_across_its_sources():
    config = mix(targets={"human": 0.5, "synthetic": 0.5}, scripts={"human": {"Hani": 0.6, "Latn": 0.4}},
                 total_tokens=1000)
    origins = {"h1": "human", "h2": "human", "s": "synthetic"}
    tallies = {stratum("h1", "Hani"): tally({0: 300}), stratum("h2", "Hani"): tally({0: 100}),
               stratum("h1", "Latn"): tally({0: 900}), stratum("h2", "Jpan"): tally({0: 50}), "s": tally({0: 800})}
    keys = plan_keys(config, origins, sorted(tallies))
    assert set(keys) == set(tallies) | {stratum("h2", "Latn")}  # every listed script of every source
    plan = plan_mixture(config, keys, tallies)
    quota = {k: p.quota_units for k, p in plan.sources.items()}
    # Hani gets 0.5 * 0.6 of 1000, split by size between the two sources; Latn 0.5 * 0.4.
    assert quota[stratum("h1", "Hani")] == pytest.approx(225)
    assert quota[stratum("h2", "Hani")] == pytest.approx(75)
    assert quota[stratum("h1", "Latn")] == pytest.approx(200)
    assert quota[stratum("h2", "Latn")] == 0 and quota[stratum("h2", "Jpan")] == 0  # no data, no target
    assert quota["s"] == pytest.approx(500)
    assert plan.sources[stratum("h1", "Hani")].source == "h1" and plan.sources[stratum("h1", "Hani")].script == "Hani"


def test_source_weights_under_script_targets_follow_the_scripts_each_source_holds():
    """Weights 2 : 1 : 1 for two English sources and a Chinese one: the Chinese source owes nothing
    of the Latin quota, and a source of both scripts weighs in each by its share of that script."""
    config = mix(targets={"human": 0.5, "synthetic": 0.5}, scripts={"human": {"Latn": 0.7, "Hani": 0.3}},
                 source_weights={"en": 2, "en2": 1, "zh": 1}, total_tokens=1000)
    origins = {"en": "human", "en2": "human", "zh": "human", "s": "synthetic"}
    tallies = {stratum("en", "Latn"): tally({0: 900}), stratum("en2", "Latn"): tally({0: 600}),
               stratum("en2", "Hani"): tally({0: 200}), stratum("zh", "Hani"): tally({0: 500}),
               "s": tally({0: 800})}
    plan = plan_mixture(config, plan_keys(config, origins, sorted(tallies)), tallies)
    quota = {k: p.quota_units for k, p in plan.sources.items()}
    assert quota[stratum("zh", "Latn")] == 0
    # Latn: 350 tokens, en 2 : en2 1 x 600/800. Hani: 150 tokens, en2 1 x 200/800 : zh 1.
    assert quota[stratum("en", "Latn")] == pytest.approx(350 * 2 / 2.75)
    assert quota[stratum("en2", "Latn")] == pytest.approx(350 * 0.75 / 2.75)
    assert quota[stratum("en2", "Hani")] == pytest.approx(150 * 0.25 / 1.25)
    assert quota[stratum("zh", "Hani")] == pytest.approx(150 / 1.25)


def test_a_script_target_without_documents_is_infeasible():
    config = mix(scripts={"human": {"Hani": 0.5, "Hang": 0.5}})
    origins = {"h": "human", "s": "synthetic"}
    tallies = {stratum("h", "Hani"): tally({0: 300}), "s": tally({0: 300})}
    with pytest.raises(InfeasibleMixtureError, match="script Hang"):
        plan_mixture(config, plan_keys(config, origins, sorted(tallies)), tallies)


@pytest.mark.parametrize("scripts, message", [
    ({"human": {"Hani": 0.5}}, "sum to 1"),
    ({"human": {"chinese": 1.0}}, "unknown script"),
])
def test_script_targets_are_checked(scripts, message):
    with pytest.raises(ValueError, match=message):
        mix(scripts=scripts)
    with pytest.raises(ValueError, match="need targets per origin"):
        MixtureConfig(weights={"a": 1.0}, scripts={"human": {"Hani": 1.0}})


def test_flag_penalty_lowers_flagged_scores_as_normal_quantiles():
    scores = np.array([0.5, 0.5, 0.9, np.nan, 0.999999999])
    flagged = np.array([False, True, True, True, True])
    out = flag_penalized(scores, flagged, 1.0)
    assert out[0] == 0.5 and np.isnan(out[3])
    assert out[1] == pytest.approx(0.158655, abs=1e-6)  # the normal quantile 0 becomes -1
    assert out[2] == pytest.approx(ndtr(ndtri(0.9) - 1.0))
    assert 0 < out[4] < 1 and out[4] > out[2]  # scores at the edges stay ordered, and finite
    assert flag_penalized(scores, flagged, 0.0) is scores
    # At the clipped low end a flagged document never ranks above an unflagged one of its score
    # (a custom scorer can give many documents exactly 0).
    low = np.array([0.0, 0.0, 1e-9, 1e-9, 1e-6, 1e-6])
    marked = np.array([True, False, True, False, True, False])
    out = flag_penalized(low, marked, 3.0)
    assert (out[marked] <= out[~marked]).all() and (out >= 0).all()
    zero = np.zeros(3, np.uint64)
    assert (top_priority(out[marked], zero) >= top_priority(out[~marked], zero)).all()


def test_the_carry_forward_guard_says_where_to_look_when_nothing_was_written():
    guard = CarryForward(output="../gen1", run_id="hm-1", human_tokens=1_000, human_documents=500,
                         min_human_tokens=0.0, min_human_documents=1.0)
    check_carry_forward(guard, 1_000, 500)
    with pytest.raises(GuardViolation) as info:
        check_carry_forward(guard, 1_000, 495)
    msg = info.value.message
    assert "selects 495 of the 500 human documents of the earlier output ../gen1 (run hm-1)" in msg
    assert "nothing was written, but a run with the guard lowered writes ledger/" in msg
    assert "an exact copy under a new id can be kept in place of the earlier one" in msg
