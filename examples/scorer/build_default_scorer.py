"""Rebuild the scorer that ships with hybridmix (transforms/scorers/alpaca_judge_v4.npz).

It learns what AlpacaEval's judge prefers, from ../shared/data/labels/judge_labels.parquet joined to
the answers in ../shared/data/synthetic/alpaca_eval_outputs.parquet (7,241 answers of 9 models;
AlpacaEval data: CC BY-NC 4.0, research and testing use). The label is the judge's preference
(1 = the reference answer, 2 = this answer).

The two judge setups (`reference`) disagree: answers the AlpacaEval 2 judge (gpt4_1106_preview
reference) prefers lose more often under the AlpacaEval 1 judge (text_davinci_003 reference),
while what the AlpacaEval 1 judge prefers also helps under AlpacaEval 2. Measured out of fold
(whole generator families held out, 3 fold assignments): a model of AlpacaEval 2's labels alone
selects answers that lose 1.8-3.2x as often under AlpacaEval 1 as the pool (loss ratio 0.31-0.56), one
of AlpacaEval 1's labels alone keeps AlpacaEval 2's length-adjusted lift at 1.3-2.1. So one model
is fitted per judge and the score weighs them 4:1 (JUDGE_WEIGHTS). Held-out metrics leave whole
generators, and prompt folds, out.

    .venv/bin/python examples/scorer/build_default_scorer.py [SHARED_DATA] [OUTPUT]
"""

from __future__ import annotations

import os
import sys
import tempfile

import pyarrow.parquet as pq

from hybridmix.pipelines.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


# AlpacaEval 1 judge : AlpacaEval 2 judge (see the module docstring).
JUDGE_WEIGHTS = {"text_davinci_003": 0.8, "gpt4_1106_preview": 0.2}


def labelled_answers(shared: str, path: str) -> None:
    labels = pq.read_table(os.path.join(shared, "labels", "judge_labels.parquet"),
                           columns=["id", "preference", "reference", "prompt_id", "generator"])
    answers = pq.read_table(os.path.join(shared, "synthetic", "alpaca_eval_outputs.parquet"), columns=["id", "text"])
    joined = labels.join(answers, "id", join_type="inner").sort_by("id")
    assert joined.num_rows == labels.num_rows, "every label must have its answer"
    pq.write_table(joined, path)


def build(shared: str, output: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "labelled.parquet")
        labelled_answers(shared, data)
        return main(["train-scorer", data, "--output", output, "--label-column", "preference",
                     "--label-range", "1", "2", "--group-column", "generator", "--holdout-column", "prompt_id",
                     "--stratum-column", "reference",
                     *[arg for judge, weight in JUDGE_WEIGHTS.items() for arg in ("--stratum-weight", f"{judge}={weight}")]])


if __name__ == "__main__":
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data")
    output = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "transforms", "scorers", "alpaca_judge_v4.npz")
    sys.exit(build(shared, output))
