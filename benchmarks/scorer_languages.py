"""The quality scorer on the same content in every language: the UDHR in 500+ translations.

    .venv/bin/python -m benchmarks.scorer_languages [--scorer FILE] [--work benchmarks/work/multilingual]

Every translation of the Universal Declaration of Human Rights says the same thing (the udhr
package, fetched once by benchmarks/multilingual.py). A scorer that judges writing, not
language, gives each translation about the score of the English one. For each translation with
all 31 documents (preamble and articles), this prints the median `quality_score` and what it does
to `weighted` selection at the default sharpness: the weight of a median document against an
English one (exp(sharpness * (z - z_en)), z the score's normal quantile). A weight of 0.03 means a
Chinese article is picked about 30 times less often than the same article in English.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pyarrow as pa
from scipy.special import ndtri

from benchmarks.multilingual import HERE, fetch, udhr_articles
from hybridmix.schemas.config import MixtureConfig
from hybridmix.transforms.filters import TextView
from hybridmix.transforms.scorer import load_scorer

SHOWN = ("eng", "cmn_hans", "cmn_hant", "jpn", "kor", "tha", "khm", "mya", "hin", "ben", "urd", "arb", "heb",
         "pes_1", "hye", "rus", "ukr", "ell", "tur", "vie", "spa", "fra", "deu_1996", "por_BR", "ind", "swh", "tam",
         "fin", "kat")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scorer", help="a scorer file (default: the bundled one)")
    parser.add_argument("--work", default=os.path.join(HERE, "work", "multilingual"))
    args = parser.parse_args()
    cache = os.path.join(args.work, "cache")
    fetch(cache)
    scorer = load_scorer(args.scorer)
    sharpness = MixtureConfig.model_fields["selection_sharpness"].default
    articles = {code: docs for code, docs in udhr_articles(cache).items() if len(docs) == 31}
    medians = {code: float(np.median(scorer.score(TextView(pa.array(docs, pa.large_string())))))
               for code, docs in articles.items()}
    z = {code: float(ndtri(np.clip(m, 1e-4, 1 - 1e-4))) for code, m in medians.items()}
    weight = {code: float(np.exp(sharpness * (z[code] - z["eng"]))) for code in medians}
    ratios = np.array(list(weight.values()))
    print(json.dumps({
        "scorer": args.scorer or "bundled",
        "translations": len(medians),
        "english_median_score": round(medians["eng"], 3),
        "weight_vs_english": {"median": round(float(np.median(ratios)), 3),
                              "under_0.2": int((ratios < 0.2).sum()), "under_0.5": int((ratios < 0.5).sum()),
                              "over_2": int((ratios > 2).sum()), "over_5": int((ratios > 5).sum())},
        "shown (median score, weight)": {code: [round(medians[code], 3), round(weight[code], 2)]
                  for code in SHOWN if code in medians},
        "lowest": sorted(((c, round(w, 3)) for c, w in weight.items()), key=lambda kv: kv[1])[:10],
        "highest": sorted(((c, round(w, 2)) for c, w in weight.items()), key=lambda kv: -kv[1])[:10],
    }, indent=1))


if __name__ == "__main__":
    main()
