"""report.html: one self-contained page about a finished run, for the person who decides whether the
mixture is good.

`render_report` is a pure function of the manifest (as parsed from manifest.json) and the summaries of
`report_data`: the same run gives the same bytes, whichever runner or store produced it. Nothing on the
page is fetched (charts are inline SVG, styles inline, no script, no font file) and its Content Security
Policy forbids any fetch, so it opens the same from a laptop, a bucket browser or an air-gapped
machine. Every text that comes from data or config is HTML-escaped, and control and bidi characters are
shown as \\uXXXX, so a document cannot inject markup or reorder what the page says.

The page deliberately shows no times and no output path (the manifest has both): a run's report is
then byte-identical wherever the run was published, like its data files.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from hybridmix.transforms import report_charts as charts
from hybridmix.transforms.faults import fail_point
from hybridmix.transforms.filters import CONTAMINATED, DECONTAMINATE
from hybridmix.transforms.report_data import (
    EXAMPLES,
    LENGTH_EDGES,
    SIMILARITY_EDGES,
    Example,
    LengthStats,
    ReportData,
    read_report_data,
)

log = logging.getLogger(__name__)

REPORT = "report.html"
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_FATES = ("rejected", "filtered", "exact_duplicates", "near_duplicates", "not_selected", "selected")
# Input files listed on the page; the manifest lists them all.
_MAX_INPUT_ROWS = 200


def escape_controls(text: str) -> str:
    """Text that cannot drive a terminal or reorder a page: control, bidi and escape characters as \\uXXXX."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class _Raw(str):
    """Markup this module built itself: inserted as is."""


def _e(value: Any) -> str:
    if isinstance(value, _Raw):
        return value
    return html.escape(escape_controls("" if value is None else str(value)), quote=True)


def _n(value: int | float | None) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def _pp(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.3f} pp"


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Iterable[int] = (),
           total: bool = False, cls: str = "") -> str:
    """A table; columns in `numeric` are right-aligned; with `total` the last row is a total row."""
    right = set(numeric)
    head = "".join(f'<th{" class=n" if i in right else ""}>{_e(h)}</th>' for i, h in enumerate(headers))
    body = []
    rows = list(rows)
    for r, row in enumerate(rows):
        cells = "".join(f'<td{" class=n" if i in right else ""}>{_e(c)}</td>' for i, c in enumerate(row))
        body.append(f'<tr{" class=total" if total and r == len(rows) - 1 else ""}>{cells}</tr>')
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _section(anchor: str, title: str, intro: str, *parts: str) -> str:
    lead = f'<p class="lead">{intro}</p>' if intro else ""
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{lead}{"".join(parts)}</section>'


def _chart(svg: str, caption: str) -> str:
    return f'<figure class="chart">{svg}<figcaption>{caption}</figcaption></figure>'


def _tiles(items: Sequence[tuple[str, str, str]]) -> str:
    cells = "".join(f'<div class="tile"><div class="v">{_e(v)}</div><div class="k">{_e(k)}</div>'
                    f'{f"<div class=s>{_e(s)}</div>" if s else ""}</div>' for k, v, s in items)
    return f'<div class="tiles">{cells}</div>'


def _code(text: str) -> str:
    return f"<code>{_e(text)}</code>"


def _sample_text(example: Example) -> str:
    if example.text is None:
        return '<p class="muted">(no text)</p>'
    more = example.chars - len(example.text)
    tail = f'<span class="more">... {more:,} more characters</span>' if more > 0 else ""
    # dir=auto: an Arabic, Hebrew or Persian example reads right to left, as its first letter says.
    return f'<pre class="sample" dir="auto">{_e(example.text)}{tail}</pre>'


def _origins(manifest: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c.get("origin", "") for c in manifest["config"].get("corpora", [])}


# Sections ----------------------------------------------------------------------------------------


def _header(manifest: dict[str, Any]) -> str:
    versions = manifest.get("versions") or {}
    facts = [("run", manifest["run_id"]), ("config digest", str(manifest.get("config_digest", ""))[:16]),
             ("seed", manifest.get("seed")), ("hybridmix", versions.get("hybridmix", "?"))]
    shown = " ".join(f'<span class="fact"><span class="k">{_e(k)}</span> {_code(str(v))}</span>' for k, v in facts)
    return (f'<header><h1>Mixture report</h1><p class="facts">{shown}</p>'
            '<p class="muted">Built from <code>manifest.json</code> and the output files of this run. '
            'Rebuild with <code>hybridmix report OUT</code>.</p></header>')


def _nav(sections: Sequence[tuple[str, str]]) -> str:
    links = "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in sections)
    return f'<nav aria-label="sections">{links}</nav>'


def _summary(manifest: dict[str, Any]) -> str:
    totals = manifest["totals"]
    mix = manifest["mixture"]
    read = totals["read"] or 1
    tokens = sum(s.get("selected_tokens", 0) for s in mix.get("sources", {}).values())
    origins = mix.get("origins", {})
    synthetic = origins.get("synthetic", {})
    cross = (manifest.get("dedup") or {}).get("cross_origin") or {}
    dups = totals["exact_duplicates"] + totals["near_duplicates"]
    items = [
        ("rows read", _n(totals["read"]), f"{len(manifest['counts'])} source(s), {len(manifest['inputs'])} file(s)"),
        ("documents selected", _n(totals["selected"]), f"{_pct(totals['selected'] / read, 1)} of the rows read"),
        ("rows written", _n(totals["written"]), "repeats included"),
        ("tokens in the mixture", _n(tokens), f"unit: {mix.get('unit')}"),
    ]
    if synthetic:
        items.append(("synthetic share", _pct(synthetic.get("achieved_fraction")),
                      f"target {_pct(synthetic.get('target_fraction'))}"))
    items += [
        ("dropped by filters", _n(totals["filtered"]), f"{_pct(totals['filtered'] / read, 1)} of the rows read"),
        ("duplicates removed", _n(dups), f"{_n(totals['exact_duplicates'])} exact, {_n(totals['near_duplicates'])} near"),
        ("clusters mixing human and synthetic", _n(cross.get("clusters", 0)),
         f"{_n(cross.get('synthetic_documents', 0))} synthetic document(s) in them"),
    ]
    quarantined = [i for i in manifest.get("inputs", []) if i.get("status") == "quarantined"]
    partly = sum(1 for i in manifest.get("inputs", []) if i.get("status") == "partly_quarantined")
    if totals["rejected"] or quarantined or partly:
        items.append(("rows rejected", _n(totals["rejected"]), f"{len(quarantined)} file(s) quarantined"
                      + (f", {partly} in part" if partly else "")))
    balanced = all(c["read"] == sum(c[f] for f in _FATES) for c in manifest["counts"].values())
    check = ('<p class="ok">Every input row is accounted for: read = rejected + filtered + duplicates + '
             'not selected + selected, for every source.</p>' if balanced else
             '<p class="bad">The counts do not add up for some source: see the table below.</p>')
    return _section("summary", "Summary", "", _tiles(items), check)


def _funnel(manifest: dict[str, Any]) -> str:
    origin_of = _origins(manifest)
    sources = list(manifest["counts"])
    tokens = {n: s.get("selected_tokens", 0) for n, s in manifest["mixture"].get("sources", {}).items()}
    rows = [[name, origin_of.get(name, ""), *[c[f] for f in ("read",) + _FATES], c["written"], tokens.get(name, 0)]
            for name, c in manifest["counts"].items()]
    t = manifest["totals"]
    rows.append(["TOTAL", "", *[t[f] for f in ("read",) + _FATES], t["written"], sum(tokens.values())])
    rows = [[_n(v) if _num(v) else v for v in row] for row in rows]
    table = _table(["source", "origin", "read", "rejected", "filtered", "exact dup", "near dup", "not selected",
                    "selected", "written", "tokens"], rows, numeric=range(2, 11), total=True, cls="funnel")
    counts = np.array([[manifest["counts"][s][f] for f in _FATES] for s in sources], dtype=np.int64)
    chart = _chart(charts.render(charts.funnel, "funnel", sources, _FATES, counts),
                   "Where each source's rows ended, as shares of the rows it read.")
    intro = ("Every input row ends in exactly one place: rejected (unreadable or invalid), filtered (a quality "
             "filter or decontamination dropped it), an exact or near duplicate of a document kept, not selected "
             "by the mixture, or selected. <em>written</em> counts output rows, upsampled repeats included.")
    return _section("funnel", "Funnel per source", intro, table, chart)


def _mixture(manifest: dict[str, Any]) -> str:
    mix = manifest["mixture"]
    unit = mix.get("unit", "tokens")
    origin_of = _origins(manifest)
    origin_rows = [[o, _pct(g["target_fraction"]), _pct(g["achieved_fraction"]), _pp(g["fraction_error"]),
                    _n(g.get(f"available_{unit}", g.get("available_tokens"))), _n(g["selected_units"]),
                    _n(g["selected_documents"]), _n(g["written_rows"]), f"{g['repeats']:.2f}"]
                   for o, g in mix.get("origins", {}).items()]
    source_rows = [[s, origin_of.get(s, ""), g.get("selection") or "-", _pct(g["target_fraction"]),
                    _pct(g["achieved_fraction"]), _pp(g["fraction_error"]),
                    _n(g.get(f"available_{unit}", g.get("available_tokens"))), _n(g["selected_units"]),
                    _n(g["selected_documents"]), f"{g['repeats']:.2f} (max {g.get('max_repeats') or '-'})",
                    "-" if g.get("min_score") is None else f"{g['min_score']:g}"]
                   for s, g in mix.get("sources", {}).items()]
    labels, targets, achieved, colors = [], [], [], []
    for name, group, origin in ([(o, g, o) for o, g in mix.get("origins", {}).items()]
                                + [(s, g, origin_of.get(s, "")) for s, g in mix.get("sources", {}).items()]):
        labels.append(name if name == origin else f"{name} ({origin})")
        targets.append(group["target_fraction"])
        achieved.append(group["achieved_fraction"])
        colors.append(charts.ORIGIN_COLORS.get(origin, "#56B4E9"))
    chart = _chart(charts.render(charts.mixture, "mixture", labels, targets, achieved, colors, unit),
                   f"Target (hatched) and achieved fraction of the mixture's {_e(unit)}, per origin, then per source.")
    budget = f"budget: {_e(mix.get('budget'))}, max_repeats {_e(mix.get('max_repeats'))}, total {_n(mix.get('total_units'))} {_e(unit)}"
    parts = [f'<p class="muted">{budget}</p>', chart,
             "<h3>Per origin</h3>",
             _table(["origin", "target", "achieved", "error", "available", "selected", "documents", "rows", "repeats"],
                    origin_rows, numeric=range(1, 9)),
             "<h3>Per source</h3>",
             _table(["source", "origin", "selection", "target", "achieved", "error", "available", "selected",
                     "documents", "repeats", "min score"], source_rows, numeric=range(3, 11))]
    parts.append(_scripts(mix))
    parts.append(_guards(manifest))
    intro = (f"Fractions, <em>available</em> and <em>selected</em> are in {_e(unit)}; the error is achieved minus target, "
             "in percentage points. <em>available</em> is what a source had left after filters and deduplication.")
    return _section("mixture", "Target vs achieved", intro, *parts)


def _scripts(mix: dict[str, Any]) -> str:
    scripts = mix.get("scripts") or {}
    # One script per origin and no targets: the table would repeat the origin table.
    if not any(len(per) > 1 or any(g.get("target_fraction") is not None for g in per.values())
               for per in scripts.values()):
        return ""
    rows = [[origin, script, _pct(g.get("target_fraction")), _pct(g["achieved_fraction"]), _n(g["selected_units"]),
             _n(g["selected_documents"])] for origin, per in scripts.items() for script, g in per.items()]
    return ("<h3>Per origin and script</h3>" +
            _table(["origin", "script", "target", "achieved", f"selected {mix.get('unit', 'tokens')}", "documents"],
                   rows, numeric=range(2, 6)))


def _guards(manifest: dict[str, Any]) -> str:
    guards = ((manifest["config"].get("mixture") or {}).get("guards")) or {}
    mix = manifest["mixture"]
    synthetic = (mix.get("origins") or {}).get("synthetic", {})
    human = (mix.get("origins") or {}).get("human", {})
    rows = []
    if guards.get("max_synthetic_fraction") is not None:
        rows.append(["max_synthetic_fraction", _pct(guards["max_synthetic_fraction"]),
                     _pct(synthetic.get("achieved_fraction", 0.0))])
    if guards.get("max_generation") is not None:
        rows.append(["max_generation", guards["max_generation"], "checked before writing"])
    if guards.get("min_human_tokens") is not None:
        rows.append(["min_human_tokens", _n(guards["min_human_tokens"]), _n(human.get("selected_tokens", 0))])
    if not rows:
        return ""
    return ("<h3>Collapse guards</h3><p class=muted>A violated guard stops a run before anything is written; "
            "this run passed them.</p>" + _table(["guard", "limit", "this run"], rows, numeric=(1, 2)))


def _lengths(data: ReportData) -> str:
    if not any(data.lengths.get(m) for m in ("tokens", "chars")):
        return _section("lengths", "Lengths", "", '<p class="muted">data/ holds no rows.</p>')
    chart = _chart(charts.render(charts.lengths, "lengths", LENGTH_EDGES, data.lengths),
                   "Share of each origin's rows in data/ per length bin (ten bins per decade; repeats included).")
    rows = []
    for kind, groups in (("origin", data.by_origin), ("source", data.by_source)):
        for name, s in sorted(groups.items()):
            rows.append(_length_row(kind, name, s))
    table = _table(["group", "name", "rows", "tokens", "characters", "mean tokens", "mean characters",
                    "min tokens", "max tokens"], rows, numeric=range(2, 9))
    return _section("lengths", "Lengths", "Document lengths in the mixture as written (data/).", chart, table)


def _length_row(kind: str, name: str, s: LengthStats) -> list[Any]:
    return [kind, name, _n(s.rows), _n(s.tokens), _n(s.chars), _n(s.tokens / s.rows if s.rows else None),
            _n(s.chars / s.rows if s.rows else None), _n(s.tokens_min), _n(s.tokens_max)]


def _filter_params(manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Configured filter entries by name (one name may be configured twice, e.g. per origin)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in ((manifest["config"].get("quality") or {}).get("filters")) or []:
        out.setdefault(entry.get("name"), []).append(entry)
    return out


def _base_name(label: str) -> str:
    """`refusal_v8` -> `refusal`: filters are configured by name and reported by name and version."""
    return re.sub(r"_v\d+$", "", label)


def _example_block(example: Example, label: str) -> str:
    facts = [f'<span class="k">doc</span> {_code(example.doc_id or "-")}',
             f'<span class="k">source</span> {_e(example.source or "-")}']
    if example.origin:
        facts.append(f'<span class="k">origin</span> {_e(example.origin)}')
    if example.value is not None:
        limit = "" if example.threshold is None else f" {_e(example.comparison or '')} {example.threshold:g}"
        facts.append(f'<span class="k">value</span> {example.value:.4g}{limit}')
    if example.also_failed:
        facts.append(f'<span class="k">also failed</span> {_e(", ".join(example.also_failed))}')
    detail = f'<div class="detail">{_e(example.detail)}</div>' if example.detail else ""
    return f'<div class="example"><div class="facts">{" · ".join(facts)}</div>{detail}{_sample_text(example)}</div>'


def _filter_details(label: str, modes: dict[str, Any], params: list[dict[str, Any]], data: ReportData) -> str:
    counts = []
    for mode in ("dropped", "flagged"):
        figures = modes.get(mode)
        if figures:
            by = ", ".join(f"{s} {n:,}" for s, n in figures["by_source"].items())
            counts.append(f"{mode} {figures['total']:,} ({by})")
    config = "; ".join(
        f"{p.get('mode', 'drop')} on {', '.join(p.get('origins') or []) or 'all origins'}"
        f"{' / ' + ', '.join(p['sources']) if p.get('sources') else ''}: "
        + ", ".join(f"{k}={v}" for k, v in sorted((p.get("params") or {}).items())) for p in params)
    blocks = []
    for title, examples in (("dropped (filtered/)", data.filter_examples.get(label, [])),
                            ("flagged, in the mixture (data/)", data.flag_examples.get(label, []))):
        if examples:
            blocks.append(f"<h4>{_e(title)}</h4>" + "".join(_example_block(x, label) for x in examples))
    if not blocks:
        blocks.append('<p class="muted">No example: the documents this filter flagged were not selected '
                      "into the mixture, so no output file holds them.</p>")
    summary = f'{_code(label)} <span class="muted">{_e("; ".join(counts))}</span>'
    config_line = f'<p class="muted">configured: {_e(config)}</p>' if config else ""
    return f'<details class="filter"><summary>{summary}</summary>{config_line}{"".join(blocks)}</details>'


def _filters(manifest: dict[str, Any], data: ReportData) -> str:
    quality = manifest.get("quality") or {}
    filters = quality.get("filters") or {}
    sources = list(manifest["counts"])
    parts = []
    if filters:
        labels = sorted(filters)
        dropped = [(filters[f].get("dropped") or {}).get("total", 0) for f in labels]
        flagged = [(filters[f].get("flagged") or {}).get("total", 0) for f in labels]
        parts.append(_chart(charts.render(charts.filters, "filters", labels, dropped, flagged),
                            "Documents each filter dropped or flagged."))
        rows = []
        for label in labels:
            for mode in ("dropped", "flagged"):
                figures = filters[label].get(mode)
                if figures:
                    rows.append([label, mode, *[_n(figures["by_source"].get(s, 0)) for s in sources],
                                 _n(figures["total"])])
        parts.append(_table(["filter", "mode", *sources, "total"], rows, numeric=range(2, 3 + len(sources))))
        params = _filter_params(manifest)
        parts.append(f"<h3>Examples</h3><p class=muted>Up to {EXAMPLES} documents per filter, in output order; "
                     "the first characters of each text. Open a filter to see them.</p>")
        parts.extend(_filter_details(label, filters[label], params.get(_base_name(label), []), data)
                     for label in labels)
    else:
        parts.append('<p class="muted">No document failed a quality filter.</p>')
    parts.append(_decontamination(manifest, data))
    parts.append(_rejects(manifest, data))
    intro = ("A <em>drop</em> filter sends a document to filtered/ with the value it measured and the threshold it "
             "failed; a <em>flag</em> filter keeps it and adds the filter to its quality_flags. filtered/ holds one "
             "row per document, under the first filter it failed; the counts here count a document under every "
             "filter it failed.")
    return _section("filters", "Quality filters", intro, *parts)


def _decontamination(manifest: dict[str, Any], data: ReportData) -> str:
    decon = manifest.get("decontamination")
    if not decon:
        return ""
    rows = []
    for name, figures in (decon.get("sets") or {}).items():
        matched = figures.get("documents") or {}
        rows.append([name, _n(figures.get("items", 0)), _n(figures.get("indexed", 0)), _n(figures.get("too_short", 0)),
                     _n(matched.get("total", 0)), _n((figures.get("tokens") or {}).get("total", 0)),
                     ", ".join(f"{s} {n:,}" for s, n in (matched.get("by_source") or {}).items()) or "-"])
    verb = "removed" if decon.get("mode") == "drop" else "flagged"
    examples = data.filter_examples.get(DECONTAMINATE, [])
    for name in decon.get("sets") or {}:
        examples = examples + data.flag_examples.get(f"{CONTAMINATED}:{name}", [])
    listed = (f'<details class="filter"><summary>{_code(DECONTAMINATE)} <span class="muted">examples</span>'
              f'</summary>{"".join(_example_block(x, DECONTAMINATE) for x in examples)}</details>' if examples else "")
    return (f"<h3>Decontamination</h3><p class=muted>Documents sharing {_e(decon.get('threshold'))} with an "
            f"evaluation item are {verb}.</p>" +
            _table(["evaluation set", "items", "indexed", "too short", "documents", "tokens", "by source"], rows,
                   numeric=range(1, 6)) + listed)


def _rejects(manifest: dict[str, Any], data: ReportData) -> str:
    reasons = (manifest.get("quality") or {}).get("rejects_by_reason") or {}
    if not reasons:
        return "<h3>Rejected rows</h3><p class=muted>No input row was rejected.</p>"
    sources = list(manifest["counts"])
    rows = [[reason, *[_n(by.get(s, 0)) for s in sources], _n(sum(by.values()))] for reason, by in sorted(reasons.items())]
    blocks = []
    for reason in sorted(reasons):
        examples = data.reject_examples.get(reason, [])
        inner = "".join(_example_block(x, reason) for x in examples) or '<p class="muted">No example.</p>'
        blocks.append(f'<details class="filter"><summary>{_code(reason)}</summary>{inner}</details>')
    return ("<h3>Rejected rows</h3>" + _table(["reason", *sources, "total"], rows, numeric=range(1, 2 + len(sources)))
            + "".join(blocks))


def _duplicates(manifest: dict[str, Any], data: ReportData) -> str:
    dedup = manifest.get("dedup") or {}
    near = dedup.get("near") or {}
    stats = dedup.get("stats") or {}
    totals = manifest["totals"]
    items = [("exact duplicates removed", _n(totals["exact_duplicates"]), ""),
             ("near duplicates removed", _n(totals["near_duplicates"]), ""),
             ("clusters", _n(sum(data.cluster_sizes.values())), "exact and near, with something removed"),
             ("near-duplicate candidate pairs", _n(stats.get("candidate_pairs", 0)),
              f"{_n(stats.get('verified_pairs', 0))} verified")]
    params = []
    if near.get("enabled"):
        params.append(f"near: Jaccard >= {near.get('threshold')} over {near.get('ngram')}-grams, "
                      f"{near.get('num_perm')} permutations, {near.get('bands')} bands x {near.get('rows')} rows, "
                      f"verified at {near.get('verify_threshold')}")
    params.append(f"survivor: {dedup.get('survivor_policy', '-')}")
    parts = [_tiles(items), f'<p class="muted">{_e("; ".join(params))}</p>']
    if data.cluster_sizes or data.near_similarity.sum():
        parts.append(_chart(
            charts.render(charts.duplicates, "duplicates", data.cluster_sizes, data.near_similarity, SIMILARITY_EDGES,
                          near.get("threshold"), near.get("verify_threshold")),
            "Left: clusters by their number of documents. Right: each near duplicate's estimated similarity "
            "to the document kept instead."))
        rows = [[label, _n(clusters), _n(documents)] for label, clusters, documents in
                charts.cluster_size_buckets(data.cluster_sizes)]
        parts.append(_table(["cluster size", "clusters", "documents"], rows, numeric=(1, 2)))
    else:
        parts.append('<p class="muted">No duplicates were removed.</p>')
    parts.append(_cross_origin(dedup, data))
    parts.append(_self_copies(dedup))
    intro = ("Each cluster keeps one document (the survivor) and removes the rest to duplicates/. A cluster that holds "
             "both human and synthetic text is synthetic text copying human text, or the reverse.")
    return _section("duplicates", "Duplicates", intro, *parts)


def _cross_origin(dedup: dict[str, Any], data: ReportData) -> str:
    cross = dedup.get("cross_origin") or {}
    head = (f"<h3>Clusters mixing human and synthetic text</h3><p>{_n(cross.get('clusters', 0))} cluster(s), "
            f"{_n(cross.get('synthetic_documents', 0))} synthetic document(s) in them.</p>")
    if not cross.get("clusters"):
        return head
    rows = [[source, generator, _n(n)] for source, gens in (cross.get("by_generator") or {}).items()
            for generator, n in gens.items()]
    rows = rows or [[source, "-", _n(n)] for source, n in (cross.get("by_source") or {}).items()]
    table = _table(["synthetic source", "generator", "documents"], rows, numeric=(2,))
    examples = [[x.get("cluster"), x.get("cluster_size"), x.get("kind"), f"{x.get('similarity', 0):.3f}",
                 f"{x.get('doc_id')} ({x.get('origin')}, {x.get('source')})",
                 f"{x.get('kept_doc_id')} ({x.get('kept_origin')}, {x.get('kept_source')})"]
                for x in data.cross_origin_examples]
    listed = ("<h4>Examples</h4>" + _table(["cluster", "size", "kind", "similarity", "removed", "kept"], examples,
                                            numeric=(1, 3))) if examples else ""
    return head + table + listed


def _self_copies(dedup: dict[str, Any]) -> str:
    lineage = dedup.get("lineage") or {}
    if not lineage.get("self_copies"):
        return ""
    fates = ("removed_exact", "removed_near", "spared", "parent_removed")
    generators = lineage.get("by_generator") or {}
    rows = [[source, _n(counts.get("total", 0)), *(_n(counts.get(f, 0)) for f in fates),
             ", ".join(f"{g} {n:,}" for g, n in (generators.get(source) or {}).items())]
            for source, counts in (lineage.get("by_source") or {}).items()]
    head = (f"<h3>Copies of their own parent</h3><p>{_n(lineage['self_copies'])} synthetic document(s) duplicate the "
            f"document they were generated from (<code>parent_id</code>); <code>dedup.parent_copies: "
            f"{_e(lineage.get('parent_copies', 'drop'))}</code>.</p>")
    return head + _table(["synthetic source", "documents", "removed (exact)", "removed (near)", "spared",
                          "parent removed", "by generator"], rows, numeric=range(1, 6))


_INDICATORS = [
    ("distinct_1", "distinct-1", "{:.4f}", True),
    ("distinct_2", "distinct-2", "{:.4f}", True),
    ("distinct_3", "distinct-3", "{:.4f}", True),
    ("vocabulary", "vocabulary", "{:,}", True),
    ("unigram_entropy_bits", "unigram entropy (bits)", "{:.3f}", True),
    ("zlib_ratio", "zlib ratio", "{:.4f}", True),
    ("tokens_mean", "tokens, mean", "{:,.1f}", False),
    ("near_duplicate_rate", "near-duplicate rate", "{:.2%}", False),
    ("exact_duplicate_rate", "exact-duplicate rate", "{:.2%}", False),
    ("documents", "documents in sample", "{:,}", False),
    ("words", "words measured", "{:,}", False),
]


def _collapse(manifest: dict[str, Any]) -> str:
    collapse = manifest.get("collapse") or {}
    groups = list((collapse.get("by_origin") or {}).items())
    groups += [(f"{g} (source)", v) for g, v in (collapse.get("by_source") or {}).items()]
    measured = [(g, v) for g, v in groups if v.get("distinct_1") is not None]
    if not measured:
        return _section("collapse", "Collapse indicators", "",
                        '<p class="muted">Not computed for this run (indicators disabled or no output rows).</p>')
    human = (collapse.get("by_origin") or {}).get("human") or {}
    synthetic = (collapse.get("by_origin") or {}).get("synthetic") or {}
    both = human.get("distinct_1") is not None and synthetic.get("distinct_1") is not None
    rows = []
    ratios: list[tuple[str, float]] = []
    for key, label, fmt, diversity in _INDICATORS:
        row = [label] + ["-" if v.get(key) is None else fmt.format(v[key]) for _, v in groups]
        if both:
            h, s = human.get(key), synthetic.get(key)
            ratio = s / h if diversity and h and s is not None else None
            row.append("-" if ratio is None else f"{ratio:.3f}")
            if ratio is not None:
                ratios.append((label, ratio))
        rows.append(row)
    for q in ("p10", "p50", "p90", "p99"):
        rows.append([f"tokens, {q}"] + ["-" if not v.get("tokens_quantiles") else
                                        f"{v['tokens_quantiles'][q]:,.0f}" for _, v in groups] + ([""] if both else []))
    headers = ["indicator"] + [g for g, _ in groups] + (["synthetic / human"] if both else [])
    parts = []
    if ratios:
        parts.append(_chart(charts.render(charts.collapse, "collapse", [r[0] for r in ratios], [r[1] for r in ratios]),
                            "Diversity of the synthetic text relative to the human text beside it (1 = the same; "
                            "red below 0.9, orange below 1)."))
    parts.append(_table(headers, rows, numeric=range(1, len(headers))))
    intro = (f"Measured on a deterministic sample of up to {_e(collapse.get('sample_documents'))} output rows per group, "
             "diversity over the same number of words. Synthetic text drifting toward collapse shows lower distinct-n, "
             "a smaller vocabulary, lower entropy and a lower zlib ratio (more compressible) than human text. Compare "
             "text of one script: character and word n-grams are not on one scale.")
    return _section("collapse", "Collapse indicators", intro, *parts)


def _scores(manifest: dict[str, Any]) -> str:
    quality = manifest.get("quality") or {}
    scores = quality.get("scores") or {}
    if not scores:
        return _section("scores", "Quality scores", "", '<p class="muted">No scorer ran in this run.</p>')
    sources = list(scores)
    groups = [{g: (scores[s].get(g) or {}).get("histogram") for g in ("pool", "selected", "filtered")} for s in sources]
    rows = []
    for source in sources:
        for group in ("pool", "selected", "filtered"):
            g = scores[source].get(group) or {}
            rows.append([source, group, _n(g.get("documents", 0))] + (
                [f"{g[k]:.3f}" for k in ("mean", "p25", "p50", "p75")] if g.get("documents") else ["-"] * 4))
    scorer = quality.get("scorer") or {}
    held_out = ((scorer.get("metrics") or {}).get("held_out") or {}).get("auc")
    about = f"scorer: {scorer.get('file', '-')}" + (f", held-out AUC {held_out:.3f}" if held_out is not None else "")
    chart = _chart(charts.render(charts.scores, "scores", sources, groups),
                   "quality_score of the pool the mixture chose from, of what it selected, and of what the "
                   "filters dropped (shares of each group).")
    intro = "quality_score is the share of the scorer's training answers that score lower (0 to 1)."
    return _section("scores", "Quality scores", intro, f'<p class="muted">{_e(about)}</p>', chart,
                    _table(["source", "group", "documents", "mean", "p25", "p50", "p75"], rows, numeric=range(2, 7)))


def _inputs(manifest: dict[str, Any]) -> str:
    inputs = manifest.get("inputs") or []
    rows = [[i["path"], i["source"], _n(i.get("rows")), _n(i.get("size_bytes")), (i.get("sha256") or "-")[:12],
             i.get("status", "ok") + (f": {i['problem']}" if i.get("problem") else "")]
            for i in inputs[:_MAX_INPUT_ROWS]]
    more = (f'<p class="muted">... and {len(inputs) - _MAX_INPUT_ROWS:,} more (manifest.json lists every file).</p>'
            if len(inputs) > _MAX_INPUT_ROWS else "")
    outputs = manifest.get("outputs") or {}
    out_rows = [[folder + "/", _n(len(files)), _n(sum(f["rows"] for f in files)), _n(sum(f["size_bytes"] for f in files))]
                for folder, files in outputs.items()]
    versions = ", ".join(f"{k} {v}" for k, v in (manifest.get("versions") or {}).items())
    tokens = manifest.get("tokens") or {}
    config = dict(manifest["config"])
    # The output location is where this page already is; leaving it out keeps the page the same wherever
    # the run was published (the config digest leaves it out too).
    config["output"] = {k: v for k, v in (config.get("output") or {}).items() if k != "path"}
    parts = ["<h3>Input files</h3>",
             _table(["file", "source", "rows", "bytes", "sha256", "status"], rows, numeric=(2, 3)), more,
             "<h3>Output files</h3>", _table(["folder", "files", "rows", "bytes"], out_rows, numeric=(1, 2, 3)),
             f'<p class="muted">versions: {_e(versions)}; tokens counted by: {_e(tokens.get("kind", "-"))}</p>',
             f'<details><summary>Resolved configuration</summary><pre class="config">'
             f'{_e(json.dumps(config, indent=2, ensure_ascii=False))}</pre></details>']
    return _section("files", "Inputs, outputs, configuration", "", *parts)


_STYLE = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#ffffff;--soft:#f6f8fa;--accent:#0969da}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans","DejaVu Sans",sans-serif;
 color:var(--fg);background:var(--bg)}
header,main,nav>div{max-width:1180px;margin:0 auto;padding:0 28px}
header{padding-top:28px;padding-bottom:8px}
h1{font-size:28px;margin:0 0 6px}
h2{font-size:21px;margin:0 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:16px;margin:26px 0 8px}
h4{font-size:14px;margin:14px 0 6px;color:var(--muted)}
nav{position:sticky;top:0;z-index:1;background:rgba(255,255,255,.96);border-bottom:1px solid var(--line);
 padding:8px 28px;display:flex;flex-wrap:wrap;gap:4px 18px;justify-content:center}
nav a{color:var(--accent);text-decoration:none;font-size:14px}
nav a:hover{text-decoration:underline}
section{margin:34px 0 44px;scroll-margin-top:56px}
.lead{max-width:880px;color:var(--fg)}
.muted{color:var(--muted);font-size:14px}
.facts .fact{margin-right:18px;white-space:nowrap}
.k{color:var(--muted)}
code{font:13px/1.4 ui-monospace,"DejaVu Sans Mono","Liberation Mono",monospace;background:var(--soft);
 padding:1px 5px;border-radius:4px}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:12px;margin:12px 0}
.tile{border:1px solid var(--line);border-radius:8px;padding:12px 14px;background:var(--soft)}
.tile .v{font-size:24px;font-weight:600;font-variant-numeric:tabular-nums}
.tile .k{font-size:13px}
.tile .s{font-size:12px;color:var(--muted)}
.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}
.scroll{overflow-x:auto;margin:8px 0 14px}
table{border-collapse:collapse;font-size:14px;font-variant-numeric:tabular-nums}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{background:var(--soft);font-weight:600;border-bottom:2px solid var(--line)}
td.n,th.n{text-align:right}
tbody tr:nth-child(even){background:#fbfcfd}
tr.total td{font-weight:600;border-top:2px solid var(--line)}
figure.chart{margin:14px 0 18px}
figure.chart svg{display:block;max-width:100%;height:auto}
figure.chart svg *{stroke-linejoin:round;stroke-linecap:butt}
figcaption{font-size:13px;color:var(--muted);margin-top:4px}
details{margin:6px 0;border:1px solid var(--line);border-radius:6px;padding:6px 12px;background:var(--bg)}
details[open]{background:var(--soft)}
summary{cursor:pointer}
.example{margin:10px 0 12px;padding:10px 12px;border-left:3px solid #EE7733;background:var(--bg);border-radius:4px}
.example .facts{font-size:13px}
.example .detail{font-size:13px;color:var(--muted);margin:2px 0 6px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:6px 0 0}
pre.sample{font:13px/1.45 ui-monospace,"DejaVu Sans Mono","Liberation Mono",monospace;max-height:16em;overflow:auto;
 background:var(--soft);padding:8px 10px;border-radius:4px}
pre.config{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;max-height:32em;overflow:auto}
.more{color:var(--muted);font-style:italic}
footer{max-width:1180px;margin:0 auto;padding:16px 28px 40px;color:var(--muted);font-size:13px;
 border-top:1px solid var(--line)}
@media print{nav{display:none}details{break-inside:avoid}}
"""

_SECTIONS = [("summary", "Summary"), ("funnel", "Funnel"), ("mixture", "Target vs achieved"), ("lengths", "Lengths"),
             ("filters", "Filters"), ("duplicates", "Duplicates"), ("collapse", "Collapse indicators"),
             ("scores", "Quality scores"), ("files", "Files and config")]


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def render_report(manifest: dict[str, Any], data: ReportData) -> str:
    """The report page of a run, from its manifest (as read from manifest.json) and its files' summaries."""
    fail_point("report")
    sections = [
        _summary(manifest),
        _funnel(manifest),
        _mixture(manifest),
        _lengths(data),
        _filters(manifest, data),
        _duplicates(manifest, data),
        _collapse(manifest),
        _scores(manifest),
        _inputs(manifest),
    ]
    version = (manifest.get("versions") or {}).get("hybridmix", "?")
    footer = (f"<footer>hybridmix {_e(version)} · run {_code(manifest['run_id'])} · manifest.json has every figure "
              "shown here, with the run's times and output location.</footer>")
    body = (_header(manifest) + "\n" + _nav(_SECTIONS) + "\n<main>\n" + "\n".join(sections) + "\n</main>\n" + footer)
    return _page(f"hybridmix report: run {manifest['run_id']}", body)


def build_report(folder: str, manifest: dict[str, Any]) -> str:
    """The report of the run whose files are under `folder` (a local folder or a remote prefix)."""
    return render_report(manifest, read_report_data(folder, manifest))


def fallback_report(manifest: dict[str, Any], error: str) -> str:
    """The page written when the report could not be built: the run itself is complete."""
    body = (_header(manifest) + "<main><section><h2>The report could not be built</h2>"
            f'<p class="bad">{_e(error)}</p>'
            "<p>The run's data, manifest and counts are complete and published; only this page failed. "
            "Rebuild it with <code>hybridmix report OUT</code> (with <code>--verbose</code> for the traceback), "
            "or read the figures with <code>hybridmix inspect OUT</code>.</p></section></main>")
    return _page(f"hybridmix report: run {manifest.get('run_id', '?')}", body)


def report_or_fallback(folder: str, manifest: dict[str, Any]) -> str:
    """The report, or a page saying why it could not be built.

    The publish step calls this: a page that only shows the run must never cost the run its output, so
    any failure to read or draw (a bug, a malformed column, a plotting library problem) is logged and
    leaves the fallback page instead. Interrupts still stop the run.
    """
    try:
        return build_report(folder, manifest)
    except Exception as exc:  # noqa: BLE001 - see the docstring: the run's data matters more than its report
        log.warning("report.html could not be built (%s: %s); the run is published without it; rebuild it with "
                    "`hybridmix report OUT`", type(exc).__name__, exc, exc_info=True)
        return fallback_report(manifest, f"{type(exc).__name__}: {exc}")
