"""What the quality scorer and quality-aware selection add to an end-to-end run.

    .venv/bin/python -m benchmarks.make_corpus --docs 205000 --mean-bytes 1400 --out benchmarks/work/c205k \
        --source ../shared/data/human/wikipedia.parquet --source ../shared/data/synthetic/alpaca_eval_outputs.parquet
    .venv/bin/python -m benchmarks.scoring_cost benchmarks/work/c205k [--repeat 2]

Runs the `benchmarks.compare` config (defaults, 50/50 mixture) three ways, each in a fresh process:
no scorer with random selection; the scorer on synthetic documents with weighted selection (the
demo's setup); the scorer on every document. Prints wall seconds (best of `--repeat`) and the
cost relative to the run without a scorer.
"""

from __future__ import annotations

import argparse
import os
import sys

import yaml

from benchmarks.compare import HERE, _run, corpus_size, hybridmix_config

VARIANTS = {
    "no scorer, random selection": {"quality": {"scorer": {"enabled": False}}},
    "scorer on synthetic, weighted selection": {
        "quality": {"scorer": {"origins": ["synthetic"]}},
        "mixture": {"selection": {"synthetic": "weighted"}}},
    "scorer on every document, weighted selection": {
        "quality": {"scorer": {"origins": ["human", "synthetic"]}},
        "mixture": {"selection": {"human": "weighted", "synthetic": "weighted"}}},
}


def variant_config(corpus: str, path: str, overrides: dict) -> str:
    hybridmix_config(corpus, path)
    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    for section, values in overrides.items():
        config.setdefault(section, {}).update(values)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", help="corpus folder (human/*.parquet, synthetic/*.parquet)")
    parser.add_argument("--work", default=os.path.join(HERE, "work", "scoring_cost"))
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant; the best is reported")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    docs, text_bytes = corpus_size(args.corpus)
    print(f"{docs:,} documents, {text_bytes / 2**20:.1f} MB of text")
    baseline = None
    for index, (name, overrides) in enumerate(VARIANTS.items()):
        config = variant_config(args.corpus, os.path.join(args.work, f"variant{index}.yaml"), overrides)
        runs = [_run([sys.executable, "-m", "benchmarks.measured", "hybridmix", "run", config, "--output",
                      os.path.join(args.work, f"out{index}"), "--force"]) for _ in range(args.repeat)]
        failed = [run for run in runs if "error" in run or run.get("exit_code")]
        if failed:
            print(f"{name}: failed: {failed[0]}")
            continue
        best = min(runs, key=lambda run: run["seconds"])
        baseline = baseline or best["seconds"]
        print(f"{name:<46} {best['seconds']:>7.1f} s  {docs / best['seconds']:>7,.0f} docs/s  "
              f"peak RSS {best['peak_rss_mb']:>6,.0f} MB  {100 * (best['seconds'] / baseline - 1):+5.1f} %")


if __name__ == "__main__":
    main()
