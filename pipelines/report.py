"""Plain-text views of a run for the terminal: summary tables, schema, sample rows."""

from __future__ import annotations

import os
import unicodedata
from typing import Any

# One definition of what must not reach a terminal or a page (report.html uses it too).
from hybridmix.transforms.kernels import JOIN_NAMES
from hybridmix.transforms.mixture_core import FILLED
from hybridmix.transforms.report_html import escape_controls


def safe_text(value: Any, limit: int = 100) -> str:
    """One line of about `limit` characters that cannot drive the terminal. A cut keeps a character
    whole: its combining marks, and an emoji's joined parts and modifiers (phở stays phở, a family emoji
    a family), so it may pass `limit` by those."""
    text = "" if value is None else str(value)
    cut = len(text) > limit
    if cut:
        while limit < len(text) and _continues(text[limit - 1], text[limit]):
            limit += 1
        cut = limit < len(text)
    text = text[:limit].replace("\n", "\\n").replace("\t", "\\t")
    return escape_controls(text) + ("..." if cut else "")


def _continues(before: str, ch: str) -> bool:
    """Whether `ch` belongs to the character `before` ends: a mark, a joiner or what it joins, a
    variation selector, an emoji skin tone or tag."""
    return (unicodedata.category(ch)[0] == "M" or before == "\u200d" or ch == "\u200d"
            or "\ufe00" <= ch <= "\ufe0f" or "\U0001f3fb" <= ch <= "\U0001f3ff" or "\U000e0020" <= ch <= "\U000e007f")


def display_width(text: str) -> int:
    """Columns a terminal gives `text`: two for a wide character (CJK, Hangul, full-width forms, most
    emoji), none for a combining mark, a Hangul vowel or final jamo, or an invisible one, one for the rest."""
    width = 0
    for ch in text:
        # Hangul vowel and final jamo join the leading consonant before them (Korean written in NFD),
        # the jamo the word hashes join too.
        if unicodedata.category(ch) in ("Mn", "Me", "Cf") or unicodedata.name(ch, "").startswith(JOIN_NAMES):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def text_table(headers: list[str], rows: list[list[Any]]) -> str:
    """Columns aligned by the width a terminal shows (a source named 中文语料 is eight columns wide)."""
    cells = [[safe_text(h, 40) for h in headers]] + [[safe_text(c, 40) for c in r] for r in rows]
    shown = [[display_width(c) for c in row] for row in cells]
    widths = [max(row[i] for row in shown) for i in range(len(headers))]
    lines = []
    for i, row in enumerate(cells):
        pads = [" " * (w - s) for s, w in zip(shown[i], widths)]
        lines.append("  ".join(c + pad if j == 0 else pad + c for j, (c, pad) in enumerate(zip(row, pads))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def split_rows(files: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """(rows, files) per split of data/, from the manifest's file list (`train-00000-of-00003.parquet`)."""
    out: dict[str, tuple[int, int]] = {}
    for f in files:
        split = os.path.basename(str(f.get("path", ""))).split("-", 1)[0]
        rows, count = out.get(split, (0, 0))
        out[split] = (rows + int(f.get("rows") or 0), count + 1)
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != "train", kv[0])))


def summary(manifest: dict[str, Any]) -> str:
    """Per-source fates and the achieved mixture, from a manifest."""
    origin_of = {c["name"]: c["origin"] for c in manifest["config"]["corpora"]}
    mix = manifest["mixture"]
    rows = []
    for name, c in manifest["counts"].items():
        s = mix["sources"].get(name, {})
        rows.append([
            name, origin_of.get(name, ""), f"{c['read']:,}", f"{c['rejected']:,}", f"{c['filtered']:,}",
            f"{c['exact_duplicates']:,}", f"{c['near_duplicates']:,}", f"{c['not_selected']:,}",
            f"{c['selected']:,}", f"{c['written']:,}", f"{s.get('selected_tokens', 0):,}",
        ])
    t = manifest["totals"]
    rows.append([
        "TOTAL", "", f"{t['read']:,}", f"{t['rejected']:,}", f"{t['filtered']:,}", f"{t['exact_duplicates']:,}",
        f"{t['near_duplicates']:,}", f"{t['not_selected']:,}", f"{t['selected']:,}", f"{t['written']:,}",
        f"{sum(s['selected_tokens'] for s in mix['sources'].values()):,}",
    ])
    headers = ["source", "origin", "read", "rejected", "filtered", "exact dup", "near dup",
               "not selected", "selected", "written", "tokens"]
    lines = [f"run {manifest['run_id']}  (config {manifest['config_digest'][:12]}, seed {manifest['seed']})", "",
             text_table(headers, rows), ""]
    origin_rows = []
    for origin, g in mix["origins"].items():
        origin_rows.append([
            origin, f"{g['target_fraction']:.2%}", f"{g['achieved_fraction']:.2%}",
            f"{g['fraction_error'] * 100:+.3f} pp", f"{g['selected_units']:,}", f"{g['written_rows']:,}",
        ])
    lines.append(f"mixture by {mix['unit']} (budget: {mix['budget']}, max_repeats {mix['max_repeats']})")
    lines.append(text_table(["origin", "target", "achieved", "error", mix["unit"], "rows"], origin_rows))
    for name, s in mix["sources"].items() if mix["unit"] == "tokens" else ():
        target = s.get("target_units") or 0
        if target and s["selected_units"] < FILLED * target and abs(s.get("fraction_error") or 0) >= 0.01:
            lines.append(f"note: {name} filled {s['selected_units']:,} of its {target:,.0f}-token quota: "
                         "its documents left over were too long to fit what remained (`hybridmix explain` of its "
                         "largest ones says so); add shorter documents or lower its target")
    splits = split_rows((manifest.get("outputs") or {}).get("data") or [])
    if splits:
        lines.append("data/: " + ", ".join(f"{split} {rows:,} rows in {files} file(s)"
                                          for split, (rows, files) in splits.items()))
    fraction = ((manifest.get("config") or {}).get("mixture") or {}).get("validation_fraction") or 0
    if splits and fraction > 0 and not splits.get("validation", (0, 0))[0]:
        # Each document goes to validation with this chance, decided by its id: a small share of few
        # documents can choose none, and then there is no validation file to load.
        lines.append(f"note: no document went to the validation split (validation_fraction {fraction:g} of "
                     f"{sum(rows for rows, _ in splits.values()):,} rows): data/ has no validation file; "
                     "raise validation_fraction for one")
    scripts = mix.get("scripts", {})
    if any(len(per) > 1 or any(g["target_fraction"] is not None for g in per.values()) for per in scripts.values()):
        script_rows = [
            [origin, script, "-" if g["target_fraction"] is None else f"{g['target_fraction']:.2%}",
             f"{g['achieved_fraction']:.2%}", f"{g['selected_units']:,}", f"{g['written_rows']:,}"]
            for origin, per in scripts.items() for script, g in per.items()]
        lines.append("")
        lines.append("by script (of the whole mixture; targets from mixture.scripts)")
        lines.append(text_table(["origin", "script", "target", "achieved", mix["unit"], "rows"], script_rows))
    quarantined = [i for i in manifest.get("inputs", []) if i.get("status") in ("quarantined", "partly_quarantined")]
    if quarantined:
        lines.append("")
        partly = sum(1 for i in quarantined if i["status"] == "partly_quarantined")
        in_part = f", and {partly} in part" if partly else ""
        lines.append(f"quarantined input files: {len(quarantined) - partly}{in_part} (their rows are in rejects/)")
        lines.extend(f"  {safe_text(i['path'], 200)}: {safe_text(_unprefixed(i.get('problem'), i['path']), 200)}"
                     for i in quarantined)
    dedup = manifest.get("dedup", {})
    cross = dedup.get("cross_origin", {})
    stats = dedup.get("stats", {})
    lines.append("")
    lines.append(
        f"near-duplicate clusters: {stats.get('near_clusters', 0):,}; clusters mixing human and synthetic "
        f"text: {cross.get('clusters', 0):,} ({cross.get('synthetic_documents', 0):,} synthetic documents)")
    against = dedup.get("against") or []
    if against:
        prior = stats.get("prior_duplicates", {})
        removed = {kind: sum(by_source.values()) for kind, by_source in prior.items()}
        lines.append(
            f"matched against {len(against)} earlier output(s) ({sum(a['indexed'] for a in against):,} documents "
            f"indexed): {removed.get('exact_prior', 0):,} exact and {removed.get('near_prior', 0):,} near "
            "duplicates of their documents removed")
        lines.extend(f"  {safe_text(a['path'], 200)} (run {a['run_id']}, {a['indexed']:,} indexed, {a['match']})"
                     for a in against)
    lineage = dedup.get("lineage") or {}
    if lineage.get("self_copies"):
        lines.append("")
        lines.append(lineage_table(lineage))
    decon = manifest.get("decontamination")
    if decon:
        lines.append("")
        lines.append(decontamination_table(decon))
    if manifest.get("carried"):
        lines.append("")
        lines.append(carried_table(manifest["carried"]))
    return "\n".join(lines)


def carried_table(carried: dict[str, Any]) -> str:
    """Per origin, what the mix carried from earlier outputs (per run) and what is new; the carry-forward guard."""
    rows = []
    for origin, g in carried["origins"].items():
        rows.append([origin, "carried", f"{g['carried']['documents']:,}", f"{g['carried']['tokens']:,}", ""])
        rows.extend([origin, f"  from run {run_id}", f"{r['documents']:,}", f"{r['tokens']:,}",
                     safe_text(r["output"], 60)] for run_id, r in g["carried"]["by_run"].items())
        rows.append([origin, "new", f"{g['new']['documents']:,}", f"{g['new']['tokens']:,}", ""])
    lines = ["carried from earlier outputs, and new (documents selected; tokens of one copy each)",
             text_table(["origin", "", "documents", "tokens", "earlier output"], rows)]
    guard = carried.get("carry_forward")
    if guard:
        tokens, documents = guard["human_tokens"], guard["human_documents"]
        lines.append(f"carry-forward guard against {safe_text(guard['output'], 100)} (run {guard['run_id']}): human "
                     f"tokens {tokens['now']:,} for {tokens['earlier']:,} (at least {tokens['min_ratio']:g} x), its "
                     f"human documents selected {documents['carried']:,} of {documents['earlier']:,} (at least "
                     f"{documents['min_ratio']:g} x): passed")
    return "\n".join(lines)


_SELF_COPY_FATES = ("removed_exact", "removed_near", "spared", "parent_removed")


def lineage_table(lineage: dict[str, Any]) -> str:
    """Self-copies (synthetic documents duplicating their own parent) per source: their fates and generators."""
    rows = []
    for source, fates in lineage.get("by_source", {}).items():
        generators = lineage.get("by_generator", {}).get(source, {})
        rows.append([safe_text(source, 40), f"{fates.get('total', 0):,}"]
                    + [f"{fates.get(f, 0):,}" for f in _SELF_COPY_FATES]
                    + [", ".join(f"{safe_text(g, 40)} {n:,}" for g, n in generators.items()) or "-"])
    title = (f"self-copies: {lineage['self_copies']:,} synthetic documents duplicate their own parent "
             f"(dedup.parent_copies: {lineage.get('parent_copies', 'drop')})")
    return title + "\n" + text_table(
        ["source", "self-copies", "removed exact", "removed near", "spared", "parent removed", "by generator"], rows)


def filters_table(manifest: dict[str, Any]) -> str:
    """Documents each filter dropped or flagged, per source. A document failing several filters
    counts under each, so the columns add up to more than `filtered` (one row per document)."""
    filters = manifest.get("quality", {}).get("filters", {})
    sources = list(manifest["counts"])
    rows = []
    for label in sorted(filters):
        for mode in ("dropped", "flagged"):
            figures = filters[label].get(mode)
            if figures:
                rows.append([label, mode] + [f"{figures['by_source'].get(src, 0):,}" for src in sources]
                            + [f"{figures['total']:,}"])
    if not rows:
        return "quality filters: none failed"
    note = "(a document failing several filters counts under each; filtered/ holds one row per document)"
    return f"quality filters, documents per source {note}\n" + text_table(["filter", "mode", *sources, "total"], rows)


def sources_table(manifest: dict[str, Any]) -> str:
    """Each source's share of the mixture: target, achieved, and what it had to give."""
    sources = manifest["mixture"].get("sources", {})
    unit = manifest["mixture"].get("unit", "tokens")
    rows = [[name, f"{s['target_fraction']:.2%}" if s.get("target_fraction") is not None else "-",
             f"{s['achieved_fraction']:.2%}", f"{s.get('available_' + unit, s.get('available_tokens', 0)):,}",
             f"{s['selected_units']:,}", f"{s['selected_documents']:,}", f"{s['repeats']:.2f}", s.get("selection", "-")]
            for name, s in sources.items()]
    return f"mixture by source ({unit})\n" + text_table(
        ["source", "target", "achieved", "available", "selected", "documents", "repeats", "selection"], rows)


def decontamination_table(decon: dict[str, Any]) -> str:
    """Per evaluation set: items read and indexed, and the documents (and tokens) it matched."""
    rows = []
    for name, figures in decon["sets"].items():
        matched = figures["documents"]
        rows.append([
            safe_text(name, 60), f"{figures.get('items', 0):,}", f"{figures.get('indexed', 0):,}",
            f"{figures.get('too_short', 0):,}", f"{figures.get('boilerplate_only', 0):,}",
            f"{matched['total']:,}", f"{figures['tokens']['total']:,}",
            ", ".join(f"{safe_text(s, 40)} {n:,}" for s, n in matched["by_source"].items()) or "-",
        ])
    verb = "removed" if decon["mode"] == "drop" else "flagged"
    title = (f"decontamination ({decon['threshold']}, {verb}; boilerplate: {decon['common_ngrams_ignored']:,} "
             f"n-grams found in more than {decon['max_items_per_ngram']} items)")
    return title + "\n" + text_table(
        ["evaluation set", "items", "indexed", "too short", "boilerplate only", "documents", "tokens", "by source"],
        rows)


def schema_text(schema: Any) -> str:
    return "\n".join(f"  {f.name}: {f.type}{'' if f.nullable else ' not null'}" for f in schema)


def sample_rows(rows: list[dict[str, Any]], columns: list[str], limit: int = 80) -> str:
    out = []
    for row in rows:
        out.append("  " + "  ".join(f"{c}={safe_text(row.get(c), limit if c == 'text' else 40)}" for c in columns))
    return "\n".join(out)


_INDICATORS = [
    ("documents", "documents in sample", "{:,}"),
    ("words", "words measured", "{:,}"),
    ("distinct_1", "distinct-1", "{:.4f}"),
    ("distinct_2", "distinct-2", "{:.4f}"),
    ("distinct_3", "distinct-3", "{:.4f}"),
    ("vocabulary", "vocabulary", "{:,}"),
    ("unigram_entropy_bits", "unigram entropy (bits)", "{:.3f}"),
    ("zlib_ratio", "zlib ratio", "{:.4f}"),
    ("tokens_mean", "tokens, mean", "{:.1f}"),
    ("near_duplicate_rate", "near-duplicate rate", "{:.2%}"),
    ("exact_duplicate_rate", "exact-duplicate rate", "{:.2%}"),
]


def collapse_table(manifest: dict[str, Any]) -> str:
    """Collapse indicators side by side: origins first, then sources."""
    collapse = manifest.get("collapse") or {}
    groups = [(g, v) for g, v in (collapse.get("by_origin") or {}).items()]
    groups += [(f"{g} (source)", v) for g, v in (collapse.get("by_source") or {}).items()]
    if not groups:
        return "collapse indicators: not computed"
    rows = []
    for key, label, fmt in _INDICATORS:
        rows.append([label] + ["-" if v.get(key) is None else fmt.format(v[key]) for _, v in groups])
    for q in ("p10", "p50", "p90", "p99"):
        rows.append([f"tokens, {q}"] + [
            "-" if not v.get("tokens_quantiles") else f"{v['tokens_quantiles'][q]:,.0f}" for _, v in groups])
    title = (f"collapse indicators (sample of up to {collapse.get('sample_documents')} output rows per group, "
             "diversity over the same number of words)")
    return title + "\n" + text_table(["indicator"] + [g for g, _ in groups], rows)


def scores_table(manifest: dict[str, Any]) -> str:
    """Per scored source: documents, mean and quartiles of quality_score in the pool, the selection
    and what the filters dropped."""
    scores = (manifest.get("quality") or {}).get("scores") or {}
    if not scores:
        return "quality scores: none (no scorer ran)"
    rows = []
    for source, groups in scores.items():
        for group in ("pool", "selected", "filtered"):
            g = groups.get(group) or {}
            # Flags count where the mixture chose (pool, selected); filtered documents never competed.
            flagged = f"{g['flagged']:,}" if "flagged" in g else "-"
            if not g.get("documents"):
                rows.append([source, group, "0", "-", "-", "-", "-", flagged])
                continue
            rows.append([source, group, f"{g['documents']:,}", f"{g['mean']:.3f}", f"{g['p25']:.3f}",
                         f"{g['p50']:.3f}", f"{g['p75']:.3f}", flagged])
    scorer = (manifest.get("quality") or {}).get("scorer") or {}
    title = f"quality scores ({safe_text(scorer.get('file'), 80)}; histograms in the manifest)"
    return title + "\n" + text_table(["source", "documents", "count", "mean", "p25", "p50", "p75", "flagged"], rows)


def _unprefixed(problem: str | None, path: str) -> str | None:
    """A problem without the path its line already starts with."""
    return problem[len(path) + 2:] if problem and problem.startswith(f"{path}: ") else problem
