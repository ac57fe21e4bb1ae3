"""Rebuild the scorer that ships with hybridmix (transforms/scorers/alpaca_judge_v1.npz).

It learns what AlpacaEval's judge prefers, from ../shared/data/labels/judge_labels.parquet joined to
the answers in ../shared/data/synthetic/alpaca_eval_outputs.parquet (7,241 answers of 9 models;
AlpacaEval data: CC BY-NC 4.0, research and testing use). The label is the judge's preference
(1 = the reference answer, 2 = this answer); the judge setup (`reference`) and the prompt are
nuisance columns; held-out metrics leave one generator out at a time.

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
                     "--nuisance-column", "reference",
                     "--nuisance-column", "prompt_id", "--stratum-column", "reference"])


if __name__ == "__main__":
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data")
    output = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "transforms", "scorers", "alpaca_judge_v1.npz")
    sys.exit(build(shared, output))
