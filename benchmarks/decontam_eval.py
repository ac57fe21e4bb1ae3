"""Decontamination measured: recall of planted evaluation items, false positives on clean text, cost.

    .venv/bin/python -m benchmarks.decontam_eval [--data ../shared/data] [--work DIR]
    .venv/bin/python -m benchmarks.decontam_eval --cost benchmarks/work/c205k [--items 10000]

Quality. The evaluation set is the AlpacaEval instructions with an even prompt_id (about 400).
The corpus is every Wikipedia paragraph and every answer to an odd prompt_id (clean: those
answers never saw the evaluation instructions), plus, for every evaluation item, one planted
document of each kind: the item verbatim; the item embedded between two Wikipedia paragraphs;
the item with its casing, whitespace and punctuation changed; the item with 10 % of its words
replaced. hybridmix runs with the default `decontaminate` settings (and once with common n-grams
kept, `max_items_per_ngram` unbounded, and once indexing only items of 8+ words); the benchmark reads `filtered/` and reports recall per
kind (found with the right item) over all items and over items of 8+ words, and the share of
clean documents removed. Clean documents include the other instructions in Alpaca's training
template, and a second evaluation set holds the items in that template: boilerplate.

Cost. The same config as `benchmarks.compare` on a corpus folder, without and with an evaluation
set of `--items` real texts (answers from ../shared/data, cut to their first 100 words).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from benchmarks.compare import HERE, ROOT, _run, corpus_size, hybridmix_config
from hybridmix.transforms.text import analyze

KINDS = ("verbatim", "embedded", "case_space_punct", "words_10pct")
# Alpaca's training template: boilerplate every item of a templated evaluation set shares, and that
# clean training text formatted the same way holds too.
TEMPLATE = ("Below is an instruction that describes a task. Write a response that appropriately completes "
            "the request.\n\n### Instruction:\n{}\n\n### Response:")


def perturb_surface(text: str, rng: random.Random) -> str:
    """Casing, whitespace and punctuation changes: what copy-paste and reformatting do."""
    out = []
    for word in text.split():
        word = word.upper() if rng.random() < 0.3 else word.lower() if rng.random() < 0.3 else word
        word = re.sub(r"[.,;:!?\"']", lambda m: rng.choice(["", " ", ";", "!", m.group(0)]), word)
        out.append(word)
        out.append(rng.choice([" ", "  ", "\n", " \t "]))
    return "".join(out).strip()


def replace_words(text: str, share: float, vocabulary: list[str], rng: random.Random) -> str:
    words = text.split()
    for i in rng.sample(range(len(words)), max(1, round(share * len(words)))) if words else []:
        words[i] = rng.choice(vocabulary)
    return " ".join(words)


def build(data: str, work: str) -> tuple[str, dict[str, str], set[str]]:
    """Corpus and evaluation files under `work`; returns (eval file, planted doc id -> item id, clean ids)."""
    rng = random.Random(13)
    answers = pq.read_table(os.path.join(data, "synthetic", "alpaca_eval_outputs.parquet"),
                            columns=["id", "text", "prompt", "prompt_id"]).to_pylist()
    wiki = pq.read_table(os.path.join(data, "human", "wikipedia.parquet"), columns=["id", "text"]).to_pylist()
    instructions = {r["prompt_id"]: r["prompt"] for r in answers}
    items = {f"alpaca-{i:03d}": text for i, text in sorted(instructions.items()) if i % 2 == 0}
    vocabulary = sorted({w for r in wiki for w in r["text"].split() if w.isalpha()})
    human = [{"id": r["id"], "text": r["text"]} for r in wiki]
    synthetic = [{"id": r["id"], "text": r["text"]} for r in answers if r["prompt_id"] % 2 == 1]
    # Clean text in the evaluation set's format: the template around instructions not in the set.
    synthetic += [{"id": f"templated-clean-{i:03d}", "text": TEMPLATE.format(text) + " Sure."}
                  for i, text in sorted(instructions.items()) if i % 2 == 1]
    clean = {r["id"] for r in human} | {r["id"] for r in synthetic}
    planted: dict[str, str] = {}
    for item_id, text in items.items():
        around = rng.sample(wiki, 2)
        variants = {
            "verbatim": text,
            "embedded": f"{around[0]['text']}\n\n{text}\n\n{around[1]['text']}",
            "case_space_punct": perturb_surface(text, rng),
            "words_10pct": replace_words(text, 0.10, vocabulary, rng),
        }
        for kind, variant in variants.items():
            doc_id = f"planted-{kind}-{item_id}"
            planted[doc_id] = item_id
            synthetic.append({"id": doc_id, "text": variant})
    os.makedirs(os.path.join(work, "corpus"), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(human), os.path.join(work, "corpus", "human.parquet"))
    pq.write_table(pa.Table.from_pylist(synthetic), os.path.join(work, "corpus", "synthetic.parquet"))
    eval_path = os.path.join(work, "eval.parquet")
    pq.write_table(pa.table({"id": list(items), "text": list(items.values())}), eval_path)
    pq.write_table(pa.table({"id": list(items), "text": [TEMPLATE.format(t) for t in items.values()]}),
                   os.path.join(work, "eval_templated.parquet"))
    return eval_path, planted, clean


def quality_run(work: str, eval_path: str, name: str, decontaminate: dict) -> dict:
    config = {
        "corpora": [
            {"name": "human", "origin": "human", "id_column": "id", "paths": [os.path.join(work, "corpus", "human.parquet")]},
            {"name": "synthetic", "origin": "synthetic", "id_column": "id",
             "paths": [os.path.join(work, "corpus", "synthetic.parquet")]},
        ],
        "decontaminate": {"against": [{"name": "alpaca_eval", "paths": [eval_path], "id_column": "id"}],
                          **decontaminate},
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
    }
    path = os.path.join(work, f"{name}.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(config, fh)
    out = os.path.join(work, f"out-{name}")
    result = _run([sys.executable, "-m", "benchmarks.measured", "hybridmix", "run", path, "--output", out, "--force"])
    if "error" in result:
        raise SystemExit(f"hybridmix failed: {result['error']}")
    filtered = pq.read_table(os.path.join(out, "filtered"), columns=["doc_id", "filter", "eval_item"])
    hits = filtered.filter(pc.equal(filtered.column("filter"), "decontaminate"))
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    return {"hits": dict(zip(hits.column("doc_id").to_pylist(), hits.column("eval_item").to_pylist())),
            "report": manifest["decontamination"], "seconds": result["seconds"]}


def quality(data: str, work: str) -> None:
    eval_path, planted, clean = build(data, work)
    items = pq.read_table(eval_path).to_pylist()
    analysis = analyze(pa.array([r["text"] for r in items]))
    words = dict(zip([r["id"] for r in items], np.diff(analysis.word_offsets).tolist()))
    print(f"{len(items)} evaluation items ({sum(1 for n in words.values() if n >= 8)} of 8+ words), "
          f"{len(clean):,} clean documents, {len(planted):,} planted")
    templated = os.path.join(work, "eval_templated.parquet")
    runs = (("defaults", eval_path, {}),
            ("items of 8+ words only (NeMo Curator's minimum)", eval_path, {"min_item_words": 8}),
            ("items in the Alpaca template, defaults", templated, {}),
            ("items in the Alpaca template, common n-grams kept", templated, {"max_items_per_ngram": 1_000_000}))
    for index, (name, path, settings) in enumerate(runs):
        run = quality_run(work, path, f"run{index}", settings)
        hits = run["hits"]
        print(f"\n{name}: {json.dumps({k: v for k, v in run['report'].items() if k != 'sets'})}, "
              f"{run['seconds']:.1f} s")
        print(f"{'kind':<18} {'recall (all items)':>19} {'recall (8+ words)':>18}")
        for kind in KINDS:
            docs = {d: i for d, i in planted.items() if d.startswith(f"planted-{kind}-")}
            found = [hits.get(d) == i for d, i in docs.items()]
            indexed = [hits.get(d) == i for d, i in docs.items() if words[i] >= 8]
            print(f"{kind:<18} {sum(found) / len(found):>19.4f} {sum(indexed) / len(indexed):>18.4f}")
        false = [d for d in clean if d in hits]
        print(f"clean documents removed: {len(false)} of {len(clean):,} = {len(false) / len(clean):.4%}")
        for d in sorted(false)[:5]:
            print(f"  {d} -> {hits[d]}")


def cost(corpus: str, work: str, data: str, n_items: int) -> None:
    answers = pq.read_table(os.path.join(data, "synthetic", "alpaca_eval_outputs.parquet"), columns=["text"])
    texts = [" ".join(t.split()[:100]) for t in answers.column("text").to_pylist()[:n_items]]
    if len(texts) < n_items:
        wiki = pq.read_table(os.path.join(data, "human", "wikipedia.parquet"), columns=["text"]).column("text")
        texts += wiki.to_pylist()[: n_items - len(texts)]
    eval_path = os.path.join(work, "eval_items.parquet")
    os.makedirs(work, exist_ok=True)
    pq.write_table(pa.table({"text": texts}), eval_path)
    docs, text_bytes = corpus_size(corpus)
    print(f"{docs:,} documents, {text_bytes / 2**20:.1f} MB; evaluation set of {len(texts):,} items")
    base = None
    for name, against in (("without", None), ("with", [{"name": "eval", "paths": [eval_path]}])):
        path = hybridmix_config(corpus, os.path.join(work, f"cost-{name}.yaml"))
        with open(path) as fh:
            config = yaml.safe_load(fh)
        if against:
            config["decontaminate"] = {"against": against}
        with open(path, "w") as fh:
            yaml.safe_dump(config, fh)
        result = _run([sys.executable, "-m", "benchmarks.measured", "hybridmix", "run", path, "--output",
                       os.path.join(work, f"cost-out-{name}"), "--force"])
        if "error" in result:
            raise SystemExit(f"hybridmix failed: {result['error']}")
        base = base or result["seconds"]
        print(f"{name} decontamination: {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:,.0f} MB, "
              f"{100 * (result['seconds'] / base - 1):+.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--work", default=os.path.join(HERE, "work", "decontam"))
    parser.add_argument("--cost", metavar="CORPUS", help="measure the cost on this corpus folder instead")
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    if args.cost:
        cost(args.cost, args.work, args.data, args.items)
    else:
        quality(args.data, args.work)


if __name__ == "__main__":
    main()
