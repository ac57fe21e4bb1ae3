"""Quality-aware selection, out of fold, at several pool shares: the bundled scorer's recipe against
the v1 recipe and the plain baseline, scored by the shared `judge_selection.py`.

On the shared data a 2 % selection holds a few dozen labelled answers, so one selection says
little. This benchmark restricts the pool to the labelled answers the demo config's filters and
dedup keep, scores them out of fold (whole generator families held out: `ultralm-13b-v2.0` and its
`-best-of-16` are one family; 4 folds, each judge's families dealt over them, 3 fold assignments), selects 2 %, 5 % and 20 % of the pool
with the product's priority functions (top; weighted at sharpness 2 and 3, 5 seeds each), scores
every selection with `judge_selection.py --json` and pools the results: the loss ratio as expected
over observed losses, lift_len as the mean.

    .venv/bin/python -m benchmarks.scorer_selection [--recipes per_judge,v1,baseline]
    .venv/bin/python -m benchmarks.scorer_selection --recipes per_judge --ae1-weights 1,0.9,0.8,0.6

`--ae1-weights` measures the per_judge recipe at other judge weights (AlpacaEval 1 w, AlpacaEval 2
1 - w): each judge's model is fitted once per fold, and the weighted sum of their standardized
log-odds is what `fit_strata` would fit with those weights (the same linear model), so the sweep
costs one fit per judge.

`--flag-penalties 0,1,2,3` measures `mixture.flag_penalty` (a document with quality_flags ranked as if
its score were that many standard deviations lower; the flags are the demo config's, read from a run
that selects every survivor); the default measures the product's default only.

Recipes: per_judge = one model per judge, weighted 0.8 (AlpacaEval 1) : 0.2 (AlpacaEval 2), as
the bundled scorer; v1 = one model, the judge and the prompt as nuisance offsets (the scorer
before); baseline = the issue's plain logistic model (hashed word 1-2-grams and log length, the
judge's yes/no, no offsets).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.judge_quality import SHARED, flagged_in, judged_answers, removed_ids, whole_pool_run
from hybridmix.schemas.config import MixtureConfig
from hybridmix.transforms.mixture_core import flag_penalized, top_priority, weighted_priority
from hybridmix.transforms.scorer import TRAINED_FEATURES, load_scorer
from hybridmix.transforms.scorer_fit import featurize, fit, fit_strata
from hybridmix.transforms.text import stable_hash64


def load() -> dict:
    t = judged_answers("inner", "judge_prefers_model")
    generators = np.asarray(t.column("generator").to_pylist())
    return {
        "table": t,
        "ids": np.asarray(t.column("id").to_pylist()),
        "generators": generators,
        "preference": t.column("preference").to_numpy().astype(float) - 1.0,
        "wins": np.asarray(t.column("judge_prefers_model").to_pylist(), float),
        "judges": np.asarray(t.column("reference").to_pylist()),
        "prompts": np.asarray([str(p) for p in t.column("prompt_id").to_pylist()]),
        "families": np.asarray([re.sub(r"-best-of-\d+$|_concise$|_verbose$", "", g) for g in generators]),
    }


AE1, AE2 = "text_davinci_003", "gpt4_1106_preview"


def out_of_fold(d: dict, recipe: str, salt: str, weights: dict[str, float] | None = None) -> np.ndarray:
    names = ("log_chars",) if recipe == "baseline" else TRAINED_FEATURES
    f = featurize(d["table"].column("text").combine_chunks(), 18, names)

    # The bundled scorer's own judge weights (as judge_quality uses), so "per_judge" is the recipe that ships.
    weights = weights or load_scorer(None).meta["training"]["parameters"]["stratum_weights"]

    def model(rows):
        if recipe == "per_judge":
            return fit_strata(f, rows, d["preference"], [], d["judges"], weights, 1.0, 1.0, 5.0, 300)
        if recipe == "v1":
            return fit(f, rows, d["preference"], [d["judges"], d["prompts"]], 1.0, 1.0, 5.0, 300)
        return fit(f, rows, d["wins"], [], 1.0, 1.0, 5.0, 300)

    # Families in 4 folds, dealt out judge by judge in a seeded order: every training set keeps
    # families of both judges (the AlpacaEval 1 labels come from 3 families only).
    folds = np.zeros(len(d["ids"]), np.int64)
    for judge in np.unique(d["judges"]):
        families = np.unique(d["families"][d["judges"] == judge])
        order = families[np.argsort(stable_hash64(list(families), salt))]
        for k, family in enumerate(order):
            folds[d["families"] == family] = k % 4
    z = np.zeros(len(folds))
    for g in range(4):
        z[folds == g] = model(np.flatnonzero(folds != g)).log_odds(f, np.flatnonzero(folds == g))
    return z


def judged(ids: np.ndarray, tmp: str) -> dict:
    os.makedirs(os.path.join(tmp, "data"), exist_ok=True)
    pq.write_table(pa.table({"doc_id": ids}), os.path.join(tmp, "data", "selected.parquet"))
    report = os.path.join(tmp, "report.json")
    subprocess.run([sys.executable, os.path.join(SHARED, "tools", "judge_selection.py"), tmp, "--json", report],
                   check=True, capture_output=True)
    with open(report, encoding="utf-8") as fh:
        return json.load(fh)["references"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="per_judge,v1,baseline")
    parser.add_argument("--ae1-weights", default=None,
                        help="per_judge at these AlpacaEval 1 weights (AlpacaEval 2: 1 - w), e.g. 1,0.9,0.8")
    parser.add_argument("--flag-penalties", default=str(MixtureConfig.model_fields["flag_penalty"].default),
                        help="mixture.flag_penalty values to measure, e.g. 0,1,2,3 (default: the product's)")
    args = parser.parse_args()
    penalties = [float(v) for v in args.flag_penalties.split(",")]
    d = load()
    with tempfile.TemporaryDirectory() as tmp:
        run = whole_pool_run(tmp)
        removed = removed_ids(run)
        pool = np.asarray([i not in removed for i in d["ids"]])
        flagged = flagged_in(run, d["ids"])
        hashes = [stable_hash64(list(d["ids"]), f"select/{k}") for k in range(5)]
        print(f"pool: {int(pool.sum())} labelled answers the demo's filters and dedup keep, "
              f"{int((pool & flagged).sum())} of them with quality_flags")
        print(f"{'recipe':10} {'share':>5} {'selection':12} {'flag pen.':>9} {'lift_len AE2':>12} {'loss ratio AE1':>14} "
              f"{'AE1 selected':>12} {'one generator':>13} {'flagged':>7}")
        salts = ("scorer/group", "fold/1", "fold/2")
        runs = [(recipe, None) for recipe in args.recipes.split(",")]
        if args.ae1_weights:
            per = {judge: [out_of_fold(d, "per_judge", salt, {judge: 1.0}) for salt in salts] for judge in (AE1, AE2)}
            runs = [(f"AE1 {w:g}", [w * a + (1 - w) * b for a, b in zip(per[AE1], per[AE2])])
                    for w in map(float, args.ae1_weights.split(","))] + [r for r in runs if r[0] != "per_judge"]
        for recipe, zs in runs:
            zs = zs or [out_of_fold(d, recipe, salt) for salt in salts]
            for share in (0.02, 0.05, 0.2):
                quota = int(round(share * pool.sum()))
                for (how, sharpness), penalty in itertools.product(
                        (("top", 0.0), ("weighted", 2.0), ("weighted", 3.0)), penalties):
                    lifts, losses, expected, n1, largest, marked = [], 0.0, 0.0, [], [], []
                    for z in zs:
                        score = flag_penalized((np.argsort(np.argsort(z)) + 0.5) / len(z), flagged, penalty)
                        for h in hashes[:1] if how == "top" else hashes:
                            p = top_priority(score, h) if how == "top" else weighted_priority(score, h, sharpness)
                            p = np.where(pool, p, np.iinfo(np.uint64).max)
                            chosen = np.argsort(p, kind="stable")[:quota]
                            refs = judged(d["ids"][chosen], tmp)
                            # Out of fold, one generator's style can fill the top of the pool.
                            largest.append(np.unique(d["generators"][chosen], return_counts=True)[1].max() / quota)
                            marked.append(flagged[chosen].mean())
                            lifts.append(refs[AE2]["lift_len"])
                            ae1 = refs[AE1]
                            losses += (1 - ae1["p_sel"]) * ae1["selected"]
                            expected += (1 - ae1["p_pool"]) * ae1["selected"]
                            n1.append(ae1["selected"])
                    label = how if how == "top" else f"weighted {sharpness:g}"
                    print(f"{recipe:10} {share:5.0%} {label:12} {penalty:9g} {np.mean(lifts):12.2f} "
                          f"{expected / max(losses, 1e-9):14.2f} {np.mean(n1):12.0f} {np.mean(largest):13.0%} "
                          f"{np.mean(marked):7.1%}", flush=True)


if __name__ == "__main__":
    main()
