"""`hybridmix plan CONFIG`: quotas, repeats, the limiting source and feasibility in seconds, from
Parquet metadata (for JSON Lines, the planning scan's counts) and a small sample, before anything
runs. Nothing is written.

Two plans are made with the run's own planner. The estimate: every input row kept, tokens from a
sample of each corpus (the run's tokenizer over its first rows, scaled by the text column's bytes).
The upper bound: every row kept and at most one token per byte of text (a token covers at least
one byte in every tokenizer kind hybridmix has but the default estimate, which counts at most
`kernels.most_tokens_per_byte()`, 3.77). Filters and dedup only ever remove documents, so a
mixture the upper bound cannot fill cannot be filled by the run: that, and only that, is
"certainly infeasible" (exit 5), and `run` makes the same check before its heavy stages.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridmix.pipelines.build import load_run_tokenizer
from hybridmix.pipelines.report import text_table
from hybridmix.schemas.config import PipelineConfig, load_config
from hybridmix.schemas.errors import DataError, GuardViolation, InfeasibleMixtureError
from hybridmix.transforms.earlier import FILTER_COLUMNS, carried_positions
from hybridmix.transforms.ingest import decoded, is_binarylike, is_stringlike
from hybridmix.transforms.inputs import InputFile, InputPlan, one_line, plan_inputs
from hybridmix.transforms.jsonl import sample_texts
from hybridmix.transforms.kernels import most_tokens_per_byte
from hybridmix.transforms.mixture_core import (
    MixturePlan,
    SourceTally,
    key_label,
    plan_keys,
    plan_mixture,
    split_key,
    stratum,
)
from hybridmix.transforms.storage import open_parquet, parquet_threads
from hybridmix.transforms.text import analyze, count_tokens, scripts

DEFAULT_SAMPLE_ROWS = 2000


@dataclass(frozen=True)
class CorpusSize:
    name: str
    origin: str
    files: int
    rows: int
    # Parquet: the text column's uncompressed size in the metadata. JSON Lines: the decompressed
    # lines' bytes times the share of text in the sampled lines (0 without a sample).
    text_bytes: int
    plain: bool  # no file stores the text column dictionary-encoded
    # At least the text's UTF-8 bytes: the Parquet column's size, or the JSON Lines lines' (a JSON
    # string is never shorter than the text it holds).
    bound_bytes: int = 0
    sampled_rows: int = 0
    sampled_tokens: int = 0
    sampled_bytes: int = 0
    by_script: tuple[tuple[str, int, int], ...] = ()  # (script, sampled rows, sampled tokens)

    @property
    def estimated_tokens(self) -> int:
        if self.sampled_bytes == 0:
            return 0
        return int(round(self.text_bytes * self.sampled_tokens / self.sampled_bytes))


def _carried_chars(path: str, origin: str) -> tuple[int, int]:
    """(characters of the rows a corpus of `origin` takes from a data/ file, of all its rows), from
    data/'s `chars`: an origin's documents can be far longer than the other's."""
    table = open_parquet(path).read(columns=[*FILTER_COLUMNS, "chars"], use_threads=parquet_threads(path))
    chars = table.column("chars").to_numpy(zero_copy_only=False).astype(np.int64)
    return int(chars[carried_positions(table, origin)].sum()), int(chars.sum())


def _jsonl_text_share(files: list[InputFile], key: str, rows: int) -> float:
    """Bytes of text per byte of line in the first `rows` records of a corpus's JSON Lines files."""
    text_bytes = line_bytes = 0
    for file in files:
        if rows <= 0:
            break
        _, text, lines = sample_texts(file.path, file.compression, key, rows)
        text_bytes, line_bytes, rows = text_bytes + text, line_bytes + lines, rows - min(rows, file.rows)
    return text_bytes / line_bytes if line_bytes else 0.0


def _sample(config: PipelineConfig, plan: InputPlan, corpus: int, rows: int, tokenizer: dict | None):
    """(rows, tokens, UTF-8 bytes, characters, per script) of the first `rows` texts of a corpus, counted
    as the run counts them."""
    column = config.corpora[corpus].text_column
    texts: list[pa.Array] = []
    taken = 0
    for file in (f for f in plan.files if f.corpus == corpus):
        if taken >= rows:
            break
        if file.format == "jsonl":
            found = sample_texts(file.path, file.compression, column, rows - taken)[0]
            texts.append(pa.array(found, pa.string()))
            taken += len(found)
            continue
        pf = open_parquet(file.path)
        for rg in range(pf.num_row_groups):
            if taken >= rows:
                break
            try:
                if file.carried is not None:  # the rows the corpus takes: its origin, no copies
                    table = pf.read_row_group(rg, columns=[column, *FILTER_COLUMNS],
                                              use_threads=parquet_threads(file.path))
                    part = table.column(column).take(carried_positions(table, config.corpora[corpus].origin.value))
                else:
                    part = pf.read_row_group(rg, columns=[column], use_threads=parquet_threads(file.path)).column(0)
            except (OSError, pa.ArrowException) as exc:
                # As the run would: fail (exit 3), or leave the row group out, as the run quarantines it.
                if config.ingest.on_bad_file == "fail" or file.carried is not None:
                    raise DataError(f"{file.display}: {file.part(rg)} cannot be read: {one_line(exc)}") from None
                continue
            for chunk in (part.chunks if isinstance(part, pa.ChunkedArray) else [part]):
                kind = chunk.type.value_type if pa.types.is_dictionary(chunk.type) else chunk.type
                if taken >= rows or not (is_stringlike(kind) or is_binarylike(kind)):
                    continue  # texts of another type (Arrow's null type too) are rejects: the run counts none
                # Only the rows sampled are decoded, as the run decodes them: a dictionary, binary
                # values, and bytes that are not UTF-8 (null here, a reject there).
                chunk = decoded(chunk.slice(0, rows - taken))[0].drop_null()
                texts.append(chunk)
                taken += len(chunk)
        if taken >= rows:
            break
    if not texts:
        return 0, 0, 0, 0, ()
    text = pa.concat_arrays(texts)
    analysis = analyze(text)
    tokens = np.asarray(count_tokens(text, config.tokenizer.kind, analysis, tokenizer["path"] if tokenizer else None))
    codes = np.asarray(scripts(analysis).to_pylist(), dtype=object)
    by_script = tuple((str(c), int(np.sum(codes == c)), int(np.sum(tokens[codes == c]))) for c in np.unique(codes))
    return (len(text), int(np.sum(tokens)), int(pc.sum(pc.binary_length(text)).as_py() or 0),
            int(pc.sum(pc.utf8_length(text)).as_py() or 0), by_script)


def measure(config: PipelineConfig, plan: InputPlan, sample_rows: int, tokenizer: dict | None) -> list[CorpusSize]:
    sizes = []
    for ci, corpus in enumerate(config.corpora):
        files = [f for f in plan.files if f.corpus == ci]
        lines = [f for f in files if f.format == "jsonl"]
        text_bytes, all_plain = 0, True
        bound = carried_chars = 0
        for f in files:
            if f.format == "jsonl":
                continue
            size, plain = f.text_bytes, f.text_plain
            if f.carried is None:
                text_bytes += size
            else:
                # Of an earlier output's file the corpus takes some rows: their characters, at the
                # sample's bytes per character below (or their share of the column without a sample).
                taken, total = _carried_chars(f.path, corpus.origin.value)
                carried_chars += taken
                text_bytes += round(size * taken / total) if total else 0
            bound += size
            all_plain &= plain
        line_bytes = sum(f.data_bytes or 0 for f in lines)
        bound += line_bytes
        if lines and sample_rows > 0:
            text_bytes += int(round(line_bytes * _jsonl_text_share(lines, corpus.text_column, sample_rows)))
        size = CorpusSize(corpus.name, corpus.origin.value, len(files), sum(f.planned_rows for f in files), text_bytes,
                          all_plain, bound_bytes=bound)
        if sample_rows > 0:
            n, tokens, nbytes, nchars, by_script = _sample(config, plan, ci, sample_rows, tokenizer)
            size = replace(size, sampled_rows=n, sampled_tokens=tokens, sampled_bytes=nbytes, by_script=by_script)
            if carried_chars and nchars:
                size = replace(size, text_bytes=round(carried_chars * nbytes / nchars))
        sizes.append(size)
    return sizes


def _tally(documents: int, tokens: int) -> SourceTally:
    # No rows, no tokens: a file of no rows still stores a few bytes for its text column (14 in
    # one), which made an origin of empty files look feasible until the run had read everything.
    tally = SourceTally(documents=documents, tokens=tokens if documents else 0)
    tally.bucket_units[0] = tokens  # one bucket: quotas, not priorities, are planned here
    return tally


def _tallies(config: PipelineConfig, sizes: list[CorpusSize], tokens_of) -> dict[str, SourceTally]:
    """Planner tallies: per source, or per (source, script) for origins with script targets, split
    by the sample's shares of each script."""
    tallies = {}
    for s in sizes:
        tokens = tokens_of(s)
        if config.mixture.scripts_of(s.origin) is None or not s.sampled_rows:
            tallies[s.name] = _tally(s.rows, tokens)
            continue
        for script, rows, script_tokens in s.by_script:
            tallies[stratum(s.name, script)] = _tally(
                round(s.rows * rows / s.sampled_rows),
                round(tokens * script_tokens / s.sampled_tokens) if s.sampled_tokens else 0)
    return tallies


def _try_plan(config: PipelineConfig, tallies: dict[str, SourceTally]) -> tuple[MixturePlan | None, str | None]:
    origins = {c.name: c.origin.value for c in config.corpora}
    try:
        return plan_mixture(config.mixture, plan_keys(config.mixture, origins, sorted(tallies)), tallies), None
    except (InfeasibleMixtureError, GuardViolation) as exc:
        return None, exc.message


def certainly_infeasible(config: PipelineConfig, plan: InputPlan) -> str | None:
    """Why the mixture cannot be filled whatever filters and dedup keep, or None when it may be."""
    if config.mixture.scripts:
        return None  # per-script availability is known only once the text is read
    sizes = measure(config, plan, 0, None)
    # A dictionary-encoded column stores each distinct text of a row group once: its size bounds the
    # text bytes only of documents that are not exact copies of each other, i.e. after exact dedup.
    if config.mixture.unit == "tokens" and not config.dedup.exact and not all(s.plain for s in sizes):
        return None
    origins = {c.name: c.origin.value for c in config.corpora}
    per_byte = most_tokens_per_byte() if config.tokenizer.kind == "estimate" else 1.0
    try:
        plan_mixture(config.mixture, origins, _tallies(config, sizes, lambda s: _most_tokens(s, per_byte)))
    except InfeasibleMixtureError as exc:
        # The planner speaks of what filters and dedup left; here every row counts, at its upper bound.
        bound = (f"at most, counting {'one' if per_byte == 1.0 else f'{per_byte:g}'} per byte of text"
                 if config.mixture.unit == "tokens" else "in its input files")
        return exc.message.replace("no documents left after filters and dedup", "no rows in their input files") \
            .replace("after filters and dedup", bound)
    except GuardViolation:
        return None  # guards are judged on what the run keeps, not on upper bounds
    return None


def _most_tokens(size: CorpusSize, per_byte: float) -> int:
    """The most tokens a corpus's text can count. Every tokenizer kind but the default estimate counts a
    token per byte at most (a token covers a byte or more). The estimate can count more (a one-letter
    Cyrillic word: 3.77 tokens for 2 bytes; 2.9 per 2-byte character of Thaana), and rounds each text's
    count: taken as one token per byte, 200 Dhivehi documents that count 197,290 tokens were bounded at
    145,290, and a mixture they fill was refused as certainly infeasible."""
    if per_byte == 1.0:
        return size.bound_bytes
    return math.ceil(size.bound_bytes * per_byte) + size.rows


def cmd_plan(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    base_dir = os.path.dirname(os.path.abspath(args.config))
    inputs = plan_inputs(config.ingest, base_dir)
    tokenizer = load_run_tokenizer(config, base_dir)
    sizes = measure(config, inputs, args.sample_rows, tokenizer)
    unit = config.mixture.unit
    tallies = _tallies(config, sizes, lambda s: s.estimated_tokens)
    # Without a sample no token is counted: a plan in tokens would call every source empty.
    unestimated = args.sample_rows == 0 and unit == "tokens"
    estimate, problem = (None, None) if unestimated else _try_plan(config, tallies)
    certain = certainly_infeasible(config, inputs)
    origin_of = {s.name: s.origin for s in sizes}
    keys = sorted(tallies, key=lambda k: ([s.name for s in sizes].index(split_key(k)[0]), k))
    # The planner key whose units (times its repeat cap) allow the smallest mixture at its share.
    limits = {} if estimate is None else {
        n: p.available_units * config.mixture.repeat_cap(split_key(n)[0]) / p.share
        for n, p in estimate.sources.items() if p.share > 0}
    limiting = min(limits, key=limits.get) if limits else None
    per_key = []
    for key in keys:
        p = estimate.sources.get(key) if estimate else None
        available = tallies[key].units(unit)
        per_key.append({"source": key_label(key), "origin": origin_of[split_key(key)[0]],
                        "documents": tallies[key].documents,
                        "estimated_tokens": tallies[key].tokens if args.sample_rows else None,
                        "share": p.share if p else None, "quota": p.quota_units if p else None,
                        "repeats": p.quota_units / available if p and available else None})
    if args.json:
        print(json.dumps({
            "unit": unit,
            "corpora": [{"name": s.name, "origin": s.origin, "files": s.files, "rows": s.rows,
                         "text_bytes": s.text_bytes, "sampled_rows": s.sampled_rows,
                         "estimated_tokens": s.estimated_tokens if args.sample_rows else None} for s in sizes],
            "sources": per_key,
            "total_units": estimate.total_units if estimate else None,
            "budget": estimate.budget if estimate else None,
            "limiting_source": key_label(limiting) if limiting else None,
            "problem": problem,
            "certainly_infeasible": certain,
        }, indent=2))
        return InfeasibleMixtureError.exit_code if certain else 0
    print(f"{args.config}: {len(inputs.files)} input file(s), {len(inputs.bad_files)} unusable; "
          f"estimates assume every row is kept (filters and dedup only remove)")
    print(text_table(["corpus", "origin", "files", "rows", "text MB", "sampled", "est. tokens"],
                 [[s.name, s.origin, f"{s.files:,}", f"{s.rows:,}", f"{s.text_bytes / 1e6:,.1f}",
                   f"{s.sampled_rows:,}", f"{s.estimated_tokens:,}" if args.sample_rows else "-"] for s in sizes]))
    print(f"\nplan by the estimate ({unit})")
    print(text_table(["source", "origin", "documents", "est. tokens", "share", "quota", "repeats"],
                 [[k["source"], k["origin"], f"{k['documents']:,}",
                   f"{k['estimated_tokens']:,}" if k["estimated_tokens"] is not None else "-",
                   f"{k['share']:.2%}" if k["share"] is not None else "-",
                   f"{k['quota']:,.0f}" if k["quota"] is not None else "-",
                   f"{k['repeats']:.2f}" if k["repeats"] is not None else "-"] for k in per_key]))
    if limiting:
        print(f"\nmixture of {estimate.total_units:,.0f} {unit} (budget: {estimate.budget}); limiting source: "
              f"{key_label(limiting)}, whose {estimate.sources[limiting].available_units:,} {unit} with max_repeats "
              f"{config.mixture.repeat_cap(split_key(limiting)[0])} allow at most {limits[limiting]:,.0f}")
    if certain:
        print(f"\ncertainly infeasible, even if every row were kept: {certain}")
        return InfeasibleMixtureError.exit_code
    if unestimated:
        print("\nno estimate in tokens with --sample-rows 0 (metadata only); the run plans on what filters "
              "and dedup keep")
    elif problem:
        print(f"\nlikely infeasible by the estimate (the run decides on what filters and dedup keep): {problem}")
    else:
        print("\nfeasible by the estimate; the run plans again on what filters and dedup keep")
    return 0
