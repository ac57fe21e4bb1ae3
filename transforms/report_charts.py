"""report.html's charts: matplotlib figures rendered to inline SVG.

SVG and no JavaScript: the page runs no code and loads nothing (no CDN, no web font), and prints and
zooms sharply. Rendering is deterministic for the same numbers: matplotlib's own defaults whatever the
user's matplotlibrc says, a fixed hash salt for the ids it generates, no date in the metadata, and text
kept as SVG text measured with the DejaVu Sans that matplotlib ships (the browser draws it with a local
sans-serif font; none is fetched).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, PercentFormatter

# Colours: Okabe-Ito (distinguishable with the common colour-vision deficiencies).
ORIGIN_COLORS = {"human": "#0072B2", "synthetic": "#E69F00"}
FATE_COLORS = {
    "rejected": "#CC3311",
    "filtered": "#EE7733",
    "exact_duplicates": "#AA4499",
    "near_duplicates": "#CC79A7",
    "not_selected": "#BBBBBB",
    "selected": "#009E73",
}
FATE_LABELS = {
    "rejected": "rejected",
    "filtered": "filtered",
    "exact_duplicates": "exact duplicate",
    "near_duplicates": "near duplicate",
    "not_selected": "not selected",
    "selected": "selected",
}
_OTHER = "#56B4E9"
_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "hybridmix-report",
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "legend.frameon": False,
}
_WIDTH = 9.0  # inches at 72 pt: the page's content width


def _origin_color(origin: str) -> str:
    return ORIGIN_COLORS.get(origin, _OTHER)


def _svg(fig: Figure, name: str) -> str:
    """The figure as an <svg> element to inline in HTML, its ids prefixed with `name`.

    Several SVGs share one HTML document, so matplotlib's ids (`figure_1`, clip paths) would repeat;
    the prologue, doctype and metadata are not wanted inside HTML.
    """
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    # A <style> inside an inline SVG applies to the whole page; the page's CSS sets these instead.
    text = re.sub(r"<defs>\s*<style[^>]*>.*?</style>\s*</defs>\s*", "", text, flags=re.S)
    text = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", text)
    text = re.sub(r'((?:xlink:)?href)="#([^"]+)"', rf'\1="#{name}-\2"', text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{name}" ', 1)


def _figure(height: float, width: float = _WIDTH) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def render(draw, name: str, *args, **kwargs) -> str:
    """Draw with matplotlib's defaults plus the report's style, whatever matplotlibrc the user has."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(_RC)
        fig = draw(*args, **kwargs)
        return _svg(fig, name)


def _short_number(value: float, _position=None) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


def _percent_axis(ax, axis: str = "x") -> None:
    # decimals=None: as many as the tick step needs (2.5 %, not a rounded 2 %).
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(PercentFormatter(1.0, decimals=None))


def funnel(sources: Sequence[str], fates: Sequence[str], counts: np.ndarray) -> Figure:
    """Each source's rows by fate, as shares of what it read (counts: sources x fates)."""
    fig = _figure(0.9 + 0.45 * len(sources))
    ax = fig.add_subplot()
    read = np.maximum(counts.sum(axis=1), 1)
    left = np.zeros(len(sources))
    y = np.arange(len(sources))[::-1]
    for j, fate in enumerate(fates):
        share = counts[:, j] / read
        bars = ax.barh(y, share, left=left, color=FATE_COLORS[fate], label=FATE_LABELS[fate], height=0.6)
        labels = [f"{s:.0%}" if s >= 0.06 else "" for s in share]
        ax.bar_label(bars, labels=labels, label_type="center", fontsize=8,
                     color="white" if fate not in ("not_selected",) else "#333333")
        left += share
    ax.set_yticks(y, sources)
    ax.set_xlim(0, 1)
    _percent_axis(ax)
    ax.set_xlabel("share of the rows read")
    ax.legend(ncols=len(fates), loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=9)
    return fig


def mixture(labels: Sequence[str], targets: Sequence[float | None], achieved: Sequence[float],
            colors: Sequence[str], unit: str) -> Figure:
    """Target and achieved fraction of the mixture per origin and source."""
    fig = _figure(0.8 + 0.5 * len(labels))
    ax = fig.add_subplot()
    y = np.arange(len(labels))[::-1]
    target_values = [t if t is not None else 0.0 for t in targets]
    ax.barh(y + 0.18, target_values, height=0.34, color="white", edgecolor=colors, hatch="///", label="target")
    bars = ax.barh(y - 0.18, achieved, height=0.34, color=colors, label="achieved")
    ax.bar_label(bars, labels=[f"{a:.2%}" for a in achieved], padding=3, fontsize=8)
    ax.set_yticks(y, labels)
    ax.set_xlim(0, min(1.0, max(list(achieved) + target_values + [0.05]) * 1.18))
    _percent_axis(ax)
    ax.set_xlabel(f"fraction of the mixture's {unit}")
    ax.legend(ncols=2, loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=9)
    return fig


def lengths(edges: np.ndarray, by_measure: dict[str, dict[str, np.ndarray]]) -> Figure:
    """Length distributions per origin (share of each origin's rows per bin), on a log scale."""
    measures = [m for m in ("tokens", "chars") if by_measure.get(m)]
    fig = _figure(3.0)
    axes = fig.subplots(1, len(measures), squeeze=False)[0]
    for ax, measure in zip(axes, measures):
        top = 1
        for origin, counts in sorted(by_measure[measure].items()):
            total = counts.sum()
            if not total:
                continue
            nonzero = np.flatnonzero(counts)
            top = max(top, edges[nonzero[-1] + 1])
            share = counts / total
            # The first bin is [0, 1): plotted from 0.5 so a log axis can show it.
            left = np.maximum(edges[:-1], 0.5)
            ax.stairs(share, np.concatenate([left, edges[-1:]]), color=_origin_color(origin), linewidth=1.6,
                      label=f"{origin} ({total:,} rows)", fill=False)
            ax.stairs(share, np.concatenate([left, edges[-1:]]), color=_origin_color(origin), alpha=0.15, fill=True)
        low = edges[max(int(min(np.flatnonzero(c)[0] for c in by_measure[measure].values() if c.any())), 1)]
        ax.set_xscale("log")
        low, high = max(low * 0.8, 0.5), top * 1.25
        ax.set_xlim(low, high)
        # Plain numbers (100, 1k) instead of mathtext powers of ten, which a reader parses slower and
        # matplotlib too; the ticks at 2 and 5 get labels only where the axis spans few decades.
        ax.xaxis.set_major_formatter(FuncFormatter(_short_number))
        ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        few = np.log10(high / low) <= 2.5
        ax.xaxis.set_minor_formatter(FuncFormatter(_short_number) if few else NullFormatter())
        ax.set_ylim(bottom=0)
        _percent_axis(ax, "y")
        ax.set_xlabel(f"{measure} per document (log scale)")
        ax.set_ylabel("share of the origin's rows")
        ax.set_title(measure)
    # One legend for both panels (the same origins), above them, clear of the curves.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper right", ncols=len(labels), fontsize=9)
    return fig


def filters(labels: Sequence[str], dropped: Sequence[int], flagged: Sequence[int]) -> Figure:
    """Documents each filter dropped or flagged."""
    fig = _figure(0.8 + 0.36 * len(labels))
    ax = fig.add_subplot()
    y = np.arange(len(labels))[::-1]
    ax.barh(y, dropped, color="#EE7733", label="dropped (to filtered/)", height=0.65)
    both = ax.barh(y, flagged, left=dropped, color="#88CCEE", label="flagged (kept, in quality_flags)", height=0.65)
    ax.bar_label(both, labels=[f"{d:,} dropped, {f:,} flagged" if d and f else f"{d + f:,}"
                               for d, f in zip(dropped, flagged)], padding=3, fontsize=8)
    ax.margins(x=0.12)
    ax.set_yticks(y, labels)
    ax.set_xlabel("documents (a document failing several filters counts under each)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="lower right")
    return fig


_SIZE_BUCKETS = [(2, 2, "2"), (3, 3, "3"), (4, 4, "4"), (5, 5, "5"), (6, 10, "6-10"), (11, 100, "11-100"),
                 (101, 1000, "101-1,000"), (1001, None, "> 1,000")]


def cluster_size_buckets(sizes: dict[int, int]) -> list[tuple[str, int, int]]:
    """(label, clusters, documents) per size bucket, empty large buckets left out."""
    out = []
    for low, high, label in _SIZE_BUCKETS:
        inside = {s: n for s, n in sizes.items() if s >= low and (high is None or s <= high)}
        if inside or low <= 5:
            out.append((label, sum(inside.values()), sum(s * n for s, n in inside.items())))
    return out


def duplicates(sizes: dict[int, int], similarity: np.ndarray, edges: np.ndarray,
               threshold: float | None, verify: float | None) -> Figure:
    """Clusters by size, and the estimated similarity of near duplicates to the document kept."""
    show_similarity = bool(similarity.sum())
    fig = _figure(3.0)
    axes = fig.subplots(1, 2 if show_similarity else 1, squeeze=False)[0]
    buckets = cluster_size_buckets(sizes)
    ax = axes[0]
    bars = ax.bar([b[0] for b in buckets], [b[1] for b in buckets], color="#AA4499")
    ax.bar_label(bars, labels=[f"{b[1]:,}" if b[1] else "" for b in buckets], padding=2, fontsize=8)
    ax.set_xlabel("documents in the cluster (the one kept included)")
    ax.set_ylabel("clusters")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("cluster sizes")
    ax.margins(y=0.15)
    if show_similarity:
        ax = axes[1]
        first = max(int(np.flatnonzero(similarity)[0]) - 2, 0)
        ax.stairs(similarity[first:], edges[first:], fill=True, color="#CC79A7")
        for value, style, name in ((threshold, "--", "threshold"), (verify, ":", "verify threshold")):
            if value is not None:
                ax.axvline(value, color="#333333", linestyle=style, linewidth=1, label=f"{name} {value:g}")
        ax.set_xlim(min(edges[first], threshold or 1.0, verify or 1.0) - 0.02, 1.005)
        ax.set_xlabel("estimated Jaccard similarity to the kept document")
        ax.set_ylabel("near duplicates")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("near-duplicate similarity")
        ax.legend(fontsize=8, loc="best")
    return fig


def collapse(names: Sequence[str], ratios: Sequence[float]) -> Figure:
    """Each diversity indicator of synthetic text relative to human text (1 = the same)."""
    fig = _figure(0.8 + 0.36 * len(names))
    ax = fig.add_subplot()
    y = np.arange(len(names))[::-1]
    values = np.asarray(ratios, float)
    colors = ["#CC3311" if r < 0.9 else "#EE7733" if r < 1.0 else "#009E73" for r in values]
    bars = ax.barh(y, values - 1.0, left=1.0, color=colors, height=0.6)
    ax.bar_label(bars, labels=[f"{r:.2f}" for r in values], padding=3, fontsize=8)
    ax.axvline(1.0, color="#333333", linewidth=1)
    span = max(0.25, float(np.max(np.abs(values - 1.0))) * 1.3)
    ax.set_xlim(1.0 - span, 1.0 + span)
    ax.set_yticks(y, names)
    ax.set_xlabel("synthetic / human (below 1: less diverse or more compressible than human text)")
    return fig


def scores(sources: Sequence[str], groups: Sequence[dict[str, list[int]]]) -> Figure:
    """quality_score distributions per scored source: the pool, the selection, what filters dropped."""
    colors = {"pool": "#777777", "selected": "#009E73", "filtered": "#EE7733"}
    cols = min(len(sources), 2)
    rows = (len(sources) + cols - 1) // cols
    fig = _figure(2.6 * rows, _WIDTH if cols > 1 else _WIDTH * 0.6)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, source, group in zip(axes, sources, groups):
        for name in ("pool", "selected", "filtered"):
            hist = np.asarray(group.get(name) or [], float)
            if not hist.sum():
                continue
            edges = np.linspace(0, 1, len(hist) + 1)
            ax.stairs(hist / hist.sum(), edges, color=colors[name], linewidth=1.6,
                      label=f"{name} ({int(hist.sum()):,})")
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
        _percent_axis(ax, "y")
        ax.set_title(source)
        ax.set_xlabel("quality_score")
        ax.set_ylabel("share of documents")
        ax.legend(fontsize=8, loc="upper left")
    for ax in axes[len(sources):]:
        ax.set_visible(False)
    return fig
