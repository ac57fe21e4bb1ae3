"""Measure quality filters on the shared corpora against an external judge.

    .venv/bin/python -m benchmarks.quality_eval [--data ../shared/data] [--config mix.yaml] [--markdown]

For the filters of a config (default: hybridmix's defaults) it reports, per filter and for
all together, how many human and synthetic documents are dropped. Then, on the 7,241
synthetic answers an external judge (AlpacaEval) compared with a reference answer:

- judge rejection ratio: how much more often the judge prefers the reference over a
  dropped answer than over a kept one, as a Mantel-Haenszel risk ratio stratified by
  generator (and judge setup), and again stratified by prompt. 1.0 means the filter drops
  answers no worse than the ones it keeps.
- rank correlation: Spearman's rho between each generator's drop rate (over all its
  16,100-corpus answers) and its length-controlled AlpacaEval 2 win rate. Negative means
  the filter drops more from weaker generators.

A random drop of the same size scores about 1.0 and 0.0; it is reported alongside.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import numpy as np
import pyarrow.parquet as pq
import yaml
from scipy.stats import spearmanr

from hybridmix.schemas.config import (
    PipelineConfig,
    QualityConfig,
    load_config,
    parse_config,
)
from hybridmix.transforms.filters import TextView, build_filters, in_scope
from hybridmix.transforms.ingest import build_documents
from hybridmix.transforms.inputs import ReadSpec, iter_row_group, plan_inputs

HERE = os.path.dirname(os.path.abspath(__file__))


def _documents(data: str) -> tuple[PipelineConfig, list]:
    """Read both corpora through hybridmix's own ingest (ids, prompts, generators)."""
    work = tempfile.mkdtemp(prefix="hm-quality-")
    config = parse_config({
        "corpora": [
            {"name": "wikipedia", "origin": "human", "paths": [os.path.join(data, "human", "wikipedia.parquet")],
             "id_column": "id"},
            {"name": "alpaca_eval", "origin": "synthetic", "id_column": "id", "prompt_column": "prompt",
             "paths": [os.path.join(data, "synthetic", "alpaca_eval_outputs.parquet")],
             "columns": {"generator": "generator"}},
        ],
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
    })
    plan = plan_inputs(config.ingest, work)
    spec = ReadSpec(config.ingest, plan, "eval")
    batches = []
    for file_index, rg, first, _ in plan.work_items():
        f = plan.files[file_index]
        corpus = config.corpora[f.corpus]
        wanted = sorted({corpus.text_column, corpus.id_column, "generator", "prompt"} & set(f.columns))
        row = first
        for batch in iter_row_group(f, rg, 8192, wanted):
            batches.append(build_documents(batch, spec, f, row).docs)
            row += batch.num_rows
    return config, batches


def _drops(batches: list, quality: QualityConfig) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Per filter label: drop mask (in scope, drop mode); and the combined mask and columns."""
    filters = build_filters(quality)
    per: dict[str, list[np.ndarray]] = {}
    combined, ids, origins, generators = [], [], [], []
    for docs in batches:
        view = TextView(docs.column("text"), docs.column("prompt"), docs.column("word_hashes"))
        origin = docs.column("origin").to_numpy(zero_copy_only=False)
        source = docs.column("source").to_numpy(zero_copy_only=False)
        dropped = np.zeros(docs.num_rows, bool)
        for spec, filt in filters:
            failed = filt.evaluate(view).failed & in_scope(spec, origin, source)
            if spec.mode == "drop":
                dropped |= failed
            per.setdefault(filt.label + ("" if spec.mode == "drop" else " (flag)"), []).append(failed)
        combined.append(dropped)
        ids += docs.column("doc_id").to_pylist()
        origins.append(origin)
        generators += docs.column("generator").to_pylist()
    info = {"ids": ids, "origins": np.concatenate(origins), "generators": generators}
    return {k: np.concatenate(v) for k, v in per.items()}, np.concatenate(combined), info


def _mantel_haenszel(strata: dict, dropped: dict, rejected: dict) -> float | None:
    num = den = 0.0
    for members in strata.values():
        d = [m for m in members if dropped[m]]
        k = [m for m in members if not dropped[m]]
        if not d or not k:
            continue
        n = len(members)
        num += sum(rejected[m] for m in d) * len(k) / n
        den += sum(rejected[m] for m in k) * len(d) / n
    return num / den if den else None


def judge_metrics(drop: np.ndarray, info: dict, data: str) -> dict:
    """Judge-based measures of a drop mask; per judge setup, since their base rates differ a lot."""
    labels = pq.read_table(os.path.join(data, "labels", "judge_labels.parquet")).to_pylist()
    board = pq.read_table(os.path.join(data, "labels", "generator_leaderboard.parquet")).to_pylist()
    index = {d: i for i, d in enumerate(info["ids"])}
    dropped = {r["id"]: bool(drop[index[r["id"]]]) for r in labels if r["id"] in index}
    rejected = {r["id"]: not r["judge_prefers_model"] for r in labels}
    setups: dict = {}
    for reference in sorted({r["reference"] for r in labels}):
        rows = [r for r in labels if r["reference"] == reference and r["id"] in dropped]
        by_generator: dict = {}
        by_prompt: dict = {}
        for r in rows:
            by_generator.setdefault(r["generator"], []).append(r["id"])
            by_prompt.setdefault(r["prompt_id"], []).append(r["id"])
        gone = [r["id"] for r in rows if dropped[r["id"]]]
        kept = [r["id"] for r in rows if not dropped[r["id"]]]
        setups[reference] = {
            "answers": len(rows),
            "dropped": len(gone),
            "judge_rejects_dropped": round(float(np.mean([rejected[d] for d in gone])), 3) if gone else None,
            "judge_rejects_kept": round(float(np.mean([rejected[d] for d in kept])), 3) if kept else None,
            "rejection_ratio_by_generator": _round(_mantel_haenszel(by_generator, dropped, rejected)),
            "rejection_ratio_by_prompt": _round(_mantel_haenszel(by_prompt, dropped, rejected)),
        }
    synthetic = info["origins"] == "synthetic"
    gens = np.asarray(info["generators"], dtype=object)
    rates = {g: float(drop[synthetic & (gens == g)].mean()) for g in np.unique(gens[synthetic])}
    win = {b["generator"]: b["length_controlled_winrate"] for b in board}
    common = sorted(set(rates) & set(win))
    rho = spearmanr([rates[g] for g in common], [win[g] for g in common]).statistic if common else None
    return {
        "by_reference": setups,
        "spearman_drop_rate_vs_lc_winrate": _round(rho),
        "generator_drop_rates": {g: round(rates[g], 4) for g in common},
    }


def _round(x: float | None) -> float | None:
    return None if x is None or np.isnan(x) else round(float(x), 3)


def evaluate(data: str, quality: QualityConfig, seed: int = 0) -> dict:
    _, batches = _documents(data)
    per, combined, info = _drops(batches, quality)
    human = info["origins"] == "human"
    synthetic = ~human
    table = {
        label: {"human": int(m[human].sum()), "human_share": round(float(m[human].mean()), 4),
                "synthetic": int(m[synthetic].sum()), "synthetic_share": round(float(m[synthetic].mean()), 4)}
        for label, m in per.items()
    }
    table["all (drop mode)"] = {
        "human": int(combined[human].sum()), "human_share": round(float(combined[human].mean()), 4),
        "synthetic": int(combined[synthetic].sum()), "synthetic_share": round(float(combined[synthetic].mean()), 4)}
    return {
        "documents": {"human": int(human.sum()), "synthetic": int(synthetic.sum())},
        "filters": table,
        "judge": judge_metrics(combined, info, data),
        "random_drop_same_rate": _random_baseline(combined, synthetic, info, data, seed),
    }


def _random_baseline(combined: np.ndarray, synthetic: np.ndarray, info: dict, data: str, seed: int,
                     draws: int = 30) -> dict:
    """The judge measures of random drops of the same size, averaged over `draws` seeds."""
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(draws):
        drop = np.zeros(len(combined), bool)
        drop[synthetic] = rng.random(int(synthetic.sum())) < combined[synthetic].mean()
        runs.append(judge_metrics(drop, info, data))

    def mean(values):
        values = [v for v in values if v is not None]
        return round(float(np.mean(values)), 3) if values else None

    return {
        "by_reference": {
            ref: {key: mean([r["by_reference"][ref][key] for r in runs]) for key in runs[0]["by_reference"][ref]}
            for ref in runs[0]["by_reference"]
        },
        "spearman_drop_rate_vs_lc_winrate": mean([r["spearman_drop_rate_vs_lc_winrate"] for r in runs]),
        "draws": draws,
    }


def markdown(result: dict) -> str:
    lines = ["| filter | human dropped | synthetic dropped |", "|---|---|---|"]
    for label, row in result["filters"].items():
        lines.append(f"| {label} | {row['human']} ({row['human_share']:.2%}) | "
                     f"{row['synthetic']} ({row['synthetic_share']:.2%}) |")
    j, r = result["judge"], result["random_drop_same_rate"]
    lines += ["", f"| judge setup (reference) | measure | filters | random drop, same size (mean of {r['draws']}) |",
              "|---|---|---|---|"]
    for reference, row in j["by_reference"].items():
        for key in ("dropped", "judge_rejects_dropped", "judge_rejects_kept", "rejection_ratio_by_generator",
                    "rejection_ratio_by_prompt"):
            lines.append(f"| {reference} | {key} | {row[key]} | {r['by_reference'][reference][key]} |")
    lines.append(f"| all 20 generators | spearman_drop_rate_vs_lc_winrate | {j['spearman_drop_rate_vs_lc_winrate']} "
                 f"| {r['spearman_drop_rate_vs_lc_winrate']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    parser.add_argument("--config", help="a hybridmix config whose quality section to measure")
    parser.add_argument("--filters", help="YAML list of filter specs (overrides --config)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.filters:
        quality = QualityConfig(filters=yaml.safe_load(args.filters))
    elif args.config:
        quality = load_config(args.config).quality
    else:
        quality = QualityConfig()
    result = evaluate(args.data, quality)
    print(markdown(result) if args.markdown else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
