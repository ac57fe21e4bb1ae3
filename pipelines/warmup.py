"""`hybridmix warmup`: compile the text kernels and build the code point tables before the first run.

numba compiles each kernel the first time a process calls it and keeps the machine code in its
cache (`__pycache__` next to the installed package, else the user's cache folder, or
NUMBA_CACHE_DIR); later processes load it from there. A run on a cold cache pays for compiling
every kernel first (README, "Running as a scheduled job"). The surest way to compile what a run
calls is a run: this command runs the pipeline, with the demo's settings (filters, the bundled
scorer, exact and near dedup, weighted selection), on a small generated corpus in several scripts,
in a temporary folder it deletes afterwards, and reports what was compiled and where it is kept.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from hybridmix.pipelines.run import IfExists, cmd_run
from hybridmix.transforms import kernels

# Letters of the scripts the text pass treats differently: spaced Latin and Cyrillic, Han,
# kana and Hangul (one unit per character), so every branch of the kernels is compiled.
_ALPHABETS = {
    "latin": "abcdefghijklmnopqrstuvwxyzéü",
    "cyrillic": "абвгдежзиклмнопрстуфхцчшщыэюя",
    "han": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
    "japanese": "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめも日本語",
    "hangul": "가나다라마바사아자차카타파하고노도로모보소오조초",
}
_SPACED = ("latin", "cyrillic")  # words between spaces; the others are written without them
_DOCUMENTS = 240  # per origin: enough for near-duplicate clusters, dedup's joins and the selection


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser], **how) -> None:
    """`how`: the CLI's epilog and formatter, as its other commands have them."""
    sub.add_parser(
        "warmup",
        parents=parents,
        **how,
        help="compile the text kernels ahead of the first run (for container images and fresh installs)",
        description=(
            "Compile hybridmix's text kernels (numba) and build its code point tables into their caches, "
            "so that the first run does not pay for it. It runs the pipeline with the demo's settings on a "
            "small generated corpus in a temporary folder, deletes that folder, and says what it compiled "
            "and where the compiled code is kept. Run it once after installing; in a container image, "
            "after `pip install` (RUN hybridmix warmup), or every job started from the image compiles "
            "again. NUMBA_CACHE_DIR chooses the cache folder (it must be set the same way for the runs)."),
    )


def cmd_warmup(args: argparse.Namespace) -> int:
    started = time.monotonic()
    # The run below shows no progress (its figures are about a throwaway corpus): say what is happening.
    if not getattr(args, "quiet", False):
        print("hybridmix warmup: running the pipeline on a small generated corpus to compile the text kernels "
              "(on a cold cache this takes a while: 22 s on a 2-core machine)...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="hybridmix-warmup-") as tmp:
        config = _write_job(tmp)
        run_args = argparse.Namespace(
            config=config, output=os.path.join(tmp, "out"), seed=None, run_id="warmup",
            if_exists=IfExists.FAIL.value, force=False, against=[], kernel_threads=None, no_lock=False,
            quiet=True, log_file=getattr(args, "log_file", None), verbose=getattr(args, "verbose", False))
        # The run's own summary is about a throwaway corpus: only this command's lines are printed.
        with contextlib.redirect_stdout(io.StringIO()):
            code = cmd_run(run_args, [])
    if code != 0:
        return code
    compiled, loaded, folders = kernel_cache_stats()
    seconds = time.monotonic() - started
    print(f"hybridmix warmup: {compiled} kernel(s) compiled, {loaded} loaded from the cache, in {seconds:.1f} s")
    for folder in sorted(folders):
        print(f"  compiled code kept in {folder}")
    if not folders:
        print("  warning: numba could not cache the compiled code (no writable cache folder): set "
              "NUMBA_CACHE_DIR to a folder the runs can read", file=sys.stderr)
    tables = kernels.table_cache_dir()
    if tables:
        print(f"  code point tables kept in {tables}")
    else:
        print("  warning: no writable folder for the code point tables: each run builds them again "
              "(about a second)", file=sys.stderr)
    return 0


def kernel_cache_stats() -> tuple[int, int, set[str]]:
    """(kernels compiled, kernels loaded from numba's cache, cache folders) over hybridmix's numba
    functions that this process has called."""
    from numba.core.registry import CPUDispatcher

    compiled = loaded = 0
    folders: set[str] = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("hybridmix.") or module is None:
            continue
        for value in vars(module).values():
            if not isinstance(value, CPUDispatcher) or getattr(value, "__module__", None) != name:
                continue
            stats = value.stats
            hits, misses = sum(stats.cache_hits.values()), sum(stats.cache_misses.values())
            # A miss is a compilation; a signature found in the cache is a hit.
            compiled += misses
            loaded += hits
            if (hits or misses) and stats.cache_path:
                folders.add(stats.cache_path)
    return compiled, loaded, folders


def _write_job(folder: str) -> str:
    """A small human and synthetic corpus (Parquet) and a config with the demo's settings; the config's path."""
    rng = np.random.default_rng(0)
    data = os.path.join(folder, "data")
    os.makedirs(data)
    vocab = {script: _words(rng, letters, 60, spaced=script in _SPACED) for script, letters in _ALPHABETS.items()}
    scripts = list(_ALPHABETS)
    for origin in ("human", "synthetic"):
        texts = []
        for i in range(_DOCUMENTS):
            script = scripts[i % len(scripts)] if i % 3 == 0 else "latin"
            texts.append(_document(rng, vocab[script], spaced=script in _SPACED))
        # Exact copies (case changed) and near copies (one word replaced) for both dedup passes.
        for i in range(0, _DOCUMENTS // 4, 2):
            texts[i + 1] = texts[i].upper()
            words = texts[i + 2].split(" ")
            words[len(words) // 2] = "changed"
            texts[i + 3] = " ".join(words)
        columns = {"id": [f"{origin}-{i}" for i in range(len(texts))], "text": texts}
        if origin == "synthetic":
            columns["prompt"] = [f"Question {i % 40}: explain {t.split(' ')[0]}." for i, t in enumerate(texts)]
            columns["generator"] = [f"model-{i % 4}" for i in range(len(texts))]
        pq.write_table(pa.table(columns), os.path.join(data, f"{origin}.parquet"))
    synthetic_columns = {"prompt_column": "prompt", "columns": {"generator": "generator"}}
    config = {
        "seed": 0,
        "corpora": [
            {"name": origin, "origin": origin, "paths": [f"data/{origin}.parquet"], "id_column": "id",
             **(synthetic_columns if origin == "synthetic" else {})}
            for origin in ("human", "synthetic")
        ],
        "quality": {"scorer": {"origins": ["synthetic"]}},
        "dedup": {"near": {"threshold": 0.8, "ngram": 5}},
        "mixture": {"unit": "tokens", "targets": {"human": 0.7, "synthetic": 0.3}, "validation_fraction": 0.05,
                    "selection": {"human": "random", "synthetic": "weighted"}},
    }
    path = os.path.join(folder, "warmup.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh, allow_unicode=True)
    return path


def _words(rng: np.random.Generator, letters: str, count: int, spaced: bool) -> list[str]:
    lengths = rng.integers(2, 9 if spaced else 4, size=count)
    return ["".join(rng.choice(list(letters), size=int(k))) for k in lengths]


def _document(rng: np.random.Generator, vocab: list[str], spaced: bool) -> str:
    sentences = []
    for _ in range(int(rng.integers(2, 12))):
        words = [vocab[int(j)] for j in rng.integers(0, len(vocab), size=int(rng.integers(6, 18)))]
        sentence = (" " if spaced else "").join(words)
        sentences.append(sentence[0].upper() + sentence[1:] + ("." if spaced else "。"))
    lines = [" ".join(sentences[i:i + 3]) for i in range(0, len(sentences), 3)]
    if rng.random() < 0.3:
        lines.insert(1, "- " + lines[0][:40])
    return "\n\n".join(lines)
