"""Filters and selection against AlpacaEval's judge, with the shared scorers (../shared/tools).

Runs the demo config on the shared corpora (../shared/data: 1,856 Wikipedia paragraphs, 16,100
answers of 20 models) and scores the output with `judge_filters.py` (what the filters dropped) and
`judge_selection.py` (what the mixture selected, against the pool it chose from). At the demo's
70/30 token targets the synthetic quota is about 2 % of the pool (a pool 50x the quota); `--human-share`
moves it.

    .venv/bin/python -m benchmarks.judge_quality [--selection weighted] [--human-share 0.7] [--out DIR]

The bundled scorer was trained on these labels, so the selection figures of a plain run are
in-sample. `--out-of-fold` measures what a scorer does on answers it never saw: each labelled
answer is scored by a scorer trained, as the bundled one (one model per judge, weighted), without
its generator's fold, the unlabelled generators by one trained on all labels; then the run's
filters and its weighted (or top) selection pick the same share of the pool with the product's own
priority functions. Other models' answers to the same prompts are what the defaults are judged
on; `--prompt-folds` also holds out the prompt's fold, as for answers to prompts never seen.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING

import yaml

from hybridmix.pipelines.cli import main as hybridmix
from hybridmix.schemas.config import MixtureConfig

if TYPE_CHECKING:
    import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")


def shared_config(path: str, selection: str, human_share: float, sharpness: float | None,
                  flag_penalty: float | None = None) -> str:
    with open(os.path.join(ROOT, "examples", "demo.yaml"), encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    data = os.path.abspath(os.path.join(SHARED, "data"))
    for corpus in config["corpora"]:
        corpus["paths"] = [os.path.join(data, "human", "wikipedia.parquet") if corpus["origin"] == "human"
                           else os.path.join(data, "synthetic", "alpaca_eval_outputs.parquet")]
    config["mixture"]["targets"] = {"human": human_share, "synthetic": round(1.0 - human_share, 6)}
    config["mixture"]["selection"]["synthetic"] = selection
    if sharpness is not None:
        config["mixture"]["selection_sharpness"] = sharpness
    if flag_penalty is not None:
        config["mixture"]["flag_penalty"] = flag_penalty
    config["mixture"]["guards"]["max_synthetic_fraction"] = 1.0
    config["output"].pop("path", None)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    return path


def judge(tool: str, out: str, *extra: str) -> str:
    result = subprocess.run([sys.executable, os.path.join(SHARED, "tools", tool), out, *extra],
                            capture_output=True, text=True, check=True)
    return result.stdout


def judged_answers(join_type: str, *label_columns: str):
    """The shared AlpacaEval answers joined to the judge's labels, sorted by id."""
    import pyarrow.parquet as pq

    data = os.path.join(SHARED, "data")
    answers = pq.read_table(os.path.join(data, "synthetic", "alpaca_eval_outputs.parquet"),
                            columns=["id", "text", "generator", "prompt_id"])
    labels = pq.read_table(os.path.join(data, "labels", "judge_labels.parquet"),
                           columns=["id", "preference", "reference", *label_columns])
    return answers.join(labels, "id", join_type=join_type).sort_by("id")


def removed_ids(run: str) -> set[str]:
    """Every doc id a run's filters, dedup or validation took out: not in its selection pool."""
    import pyarrow.parquet as pq

    removed: set[str] = set()
    for folder in ("filtered", "duplicates", "rejects"):
        path = os.path.join(run, folder)
        if os.path.isdir(path) and os.listdir(path):
            removed |= set(pq.read_table(path, columns=["doc_id"]).column("doc_id").to_pylist())
    return removed


def whole_pool_run(tmp: str) -> str:
    """A run of the demo's filters and dedup on the shared corpora at a 2 % human share: every synthetic
    survivor is selected, so its data/ holds the quality_flags of the whole pool."""
    run = os.path.join(tmp, "whole_pool")
    assert hybridmix(["run", shared_config(os.path.join(tmp, "whole_pool.yaml"), "weighted", 0.02, None),
                      "--output", run, "--force", "--quiet"]) == 0
    return run


def flagged_in(run: str, ids: list[str]) -> np.ndarray:
    """Whether each of `ids` carries quality_flags in `run`'s data/ (a whole_pool_run: every survivor)."""
    import numpy as np
    import pyarrow.parquet as pq

    rows = pq.read_table(os.path.join(run, "data"), columns=["doc_id", "quality_flags"])
    flags = dict(zip(rows.column("doc_id").to_pylist(), (len(f) > 0 for f in rows.column("quality_flags").to_pylist())))
    removed = removed_ids(run)
    unknown = [i for i in ids if i not in flags and i not in removed]
    assert not unknown, f"{len(unknown)} survivors were not selected, so their flags are unknown: {unknown[:3]}"
    return np.asarray([flags.get(i, False) for i in ids])


def out_of_fold(run: str, selection: str, sharpness: float, penalty: float, out: str, prompt_folds: bool,
                pool_run: str) -> None:
    """Write `out/data` with the doc ids a cross-fitted scorer's selection takes from `run`'s pool;
    `pool_run` (a whole_pool_run) says which answers carry quality_flags."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hybridmix.transforms.mixture_core import flag_penalized, top_priority, weighted_priority
    from hybridmix.transforms.scorer import TRAINED_FEATURES, load_scorer
    from hybridmix.transforms.scorer_fit import featurize, fit_strata, fold_of
    from hybridmix.transforms.text import stable_hash64

    table = judged_answers("left outer")
    ids = np.asarray(table.column("id").to_pylist())
    flagged = flagged_in(pool_run, list(ids))
    labelled = table.column("preference").is_valid().to_numpy(zero_copy_only=False)
    target = np.nan_to_num(table.column("preference").to_numpy(zero_copy_only=False).astype(float) - 1.0)
    generators = np.asarray(table.column("generator").to_pylist())
    prompts = np.asarray([str(p) for p in table.column("prompt_id").to_pylist()])
    judges = np.asarray([str(r) for r in table.column("reference").to_pylist()])
    features = featurize(table.column("text").combine_chunks(), 18, TRAINED_FEATURES)
    gfold = fold_of(generators, 4, "scorer/group")
    pfold = fold_of(prompts, 5, "scorer/holdout") if prompt_folds else np.zeros(len(ids), np.int64)

    # The bundled scorer's own judge weights, so this measures the scorer that ships.
    weights = load_scorer(None).meta["training"]["parameters"]["stratum_weights"]

    def model(rows: np.ndarray):
        return fit_strata(features, rows, target, [], judges, weights, 1.0, 1.0, 5.0, 300)

    z = np.zeros(len(ids))
    z[~labelled] = model(np.flatnonzero(labelled)).log_odds(features, np.flatnonzero(~labelled))
    for g in range(4):
        for k in np.unique(pfold):
            test = labelled & (gfold == g) & (pfold == k)
            train = labelled & (gfold != g) & ((pfold != k) if prompt_folds else True)
            z[test] = model(np.flatnonzero(train)).log_odds(features, np.flatnonzero(test))
    # The same quota and filters as the run: what the run could choose from, and how many it took.
    kept = pq.read_table(os.path.join(run, "data"), columns=["doc_id", "source"])
    quota = sum(1 for s in kept.column("source").to_pylist() if s == "alpaca_eval")
    removed = removed_ids(run)
    pool = np.asarray([i not in removed for i in ids])
    # A rank score in (0, 1), as quality_score is, lowered for flagged answers as the mixture does.
    score = flag_penalized((np.argsort(np.argsort(z)) + 0.5) / len(z), flagged, penalty)
    hashes = stable_hash64(list(ids), "select/0")
    priority = top_priority(score, hashes) if selection == "top" else weighted_priority(score, hashes, sharpness)
    priority = np.where(pool, priority, np.iinfo(np.uint64).max)
    chosen = ids[np.argsort(priority, kind="stable")[:quota]]
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    pq.write_table(pa.table({"doc_id": chosen}), os.path.join(out, "data", "selected.parquet"))
    print(f"out of fold: {quota} of {int(pool.sum())} pool answers, {selection} selection")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--selection", default="weighted", choices=["random", "top", "weighted"])
    parser.add_argument("--sharpness", type=float, help="mixture.selection_sharpness (default: the config's)")
    parser.add_argument("--flag-penalty", type=float, help="mixture.flag_penalty (default: the config's)")
    parser.add_argument("--human-share", type=float, default=0.7, help="human target (default 0.7, as the demo)")
    parser.add_argument("--out", help="keep the run here (default: a temporary folder)")
    parser.add_argument("--full", action="store_true", help="print the judges' whole reports")
    parser.add_argument("--out-of-fold", action="store_true",
                        help="score the selection with scorers that never saw the answers they rank")
    parser.add_argument("--prompt-folds", action="store_true",
                        help="with --out-of-fold: hold out each answer's prompt fold too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or os.path.join(tmp, "out")
        config = shared_config(os.path.join(tmp, "shared.yaml"), args.selection, args.human_share, args.sharpness,
                               args.flag_penalty)
        code = hybridmix(["run", config, "--output", out, "--force"])
        if code != 0:
            sys.exit(code)
        filters = judge("judge_filters.py", out, "--min-docs", "100")
        if args.out_of_fold:
            cross = os.path.join(tmp, "out_of_fold")
            defaults = MixtureConfig.model_fields
            sharpness = defaults["selection_sharpness"].default if args.sharpness is None else args.sharpness
            penalty = defaults["flag_penalty"].default if args.flag_penalty is None else args.flag_penalty
            out_of_fold(out, args.selection, sharpness, penalty, cross, args.prompt_folds, whole_pool_run(tmp))
            selection = judge("judge_selection.py", cross)
        else:
            selection = judge("judge_selection.py", out)
        if args.full:
            print(filters)
            print(selection)
        else:
            print("filters:   " + " ".join(filters.strip().splitlines()[-2:]))
            print("selection: " + selection.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
