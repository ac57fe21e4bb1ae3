"""report.html's charts, written as inline SVG.

SVG and no JavaScript: the page runs no code and loads nothing (no CDN, no web font), and prints and
zooms sharply. The charts are bars and step histograms on plain axes, so they are written here
directly: drawn through matplotlib they took 1.0-1.4 s of every run's last, serial step, plus its
import, on the 200,000-document benchmark; written here, a few milliseconds. The same numbers give
the same bytes. Text stays SVG text in the page's sans-serif font; room for it is reserved from an
estimate of its width (`text_width`) that errs wide.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence
from html import escape

import numpy as np

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
_INK = "#1f2328"
_AXIS = "#59636e"
_FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"

WIDTH = 860  # user units; the page scales the chart to its column (max-width: 100 %)
_TICK = 13  # font sizes, in user units
_SMALL = 11
_TITLE = 14

# DejaVu Sans advance widths in ems (the widest of the page's fonts): narrow and wide characters;
# the rest count 0.62. East Asian wide characters count one em.
_NARROW = dict.fromkeys(" .,:;'!|iljI", 0.32) | dict.fromkeys("ft()[]-r", 0.42)
_WIDE = dict.fromkeys("mwMW%", 0.98) | dict.fromkeys("ABCDEFGHJKLNOPQRSTUVXYZ_", 0.74)


def text_width(text: str, size: float) -> float:
    """The width `text` takes at font size `size`, estimated on the wide side."""
    ems = 0.0
    for ch in text:
        if ch in _NARROW:
            ems += _NARROW[ch]
        elif ch in _WIDE:
            ems += _WIDE[ch]
        elif unicodedata.east_asian_width(ch) in ("W", "F"):
            ems += 1.0
        else:
            ems += 0.62
    return ems * size


def clip(text: str, size: float, width: float) -> str:
    """`text`, cut short with an ellipsis to fit `width` at font size `size` (the table beside the
    chart has it whole)."""
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


def _f(v: float) -> str:
    """A coordinate: two decimals at most, the same text for the same number."""
    return f"{v:.2f}".rstrip("0").rstrip(".")


class Chart:
    """An SVG drawing of `width` x `height` user units, built up element by element.

    Ids of its definitions (hatch patterns) are written as "@name" and become "<chart>-name" when the
    chart is rendered, so several charts on one page never share an id.
    """

    def __init__(self, width: float, height: float) -> None:
        self.width = width
        self.height = height
        self._defs: list[str] = []
        self._items: list[str] = []

    def rect(self, x: float, y: float, w: float, h: float, fill: str, stroke: str | None = None,
             opacity: float | None = None) -> None:
        extra = f' stroke="{stroke}" stroke-width="1"' if stroke else ""
        extra += f' fill-opacity="{opacity:g}"' if opacity is not None else ""
        self._items.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(max(w, 0))}" height="{_f(max(h, 0))}" '
                           f'fill="{fill}"{extra}/>')

    def line(self, x1: float, y1: float, x2: float, y2: float, color: str = _AXIS, width: float = 1,
             dash: str | None = None) -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self._items.append(f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{color}" '
                           f'stroke-width="{width:g}"{extra}/>')

    def path(self, points: Sequence[tuple[float, float]], stroke: str | None, fill: str = "none",
             opacity: float | None = None, width: float = 1.6) -> None:
        d = "M" + " L".join(f"{_f(x)} {_f(y)}" for x, y in points)
        extra = f' fill-opacity="{opacity:g}"' if opacity is not None else ""
        extra += f' stroke="{stroke}" stroke-width="{width:g}"' if stroke else ""
        self._items.append(f'<path d="{d}" fill="{fill}"{extra}/>')

    def text(self, x: float, y: float, text: str, size: float = _TICK, anchor: str = "start",
             color: str = _INK, bold: bool = False, rotate: bool = False) -> None:
        """Text whose middle sits at height `y` (rotated: reading upwards, its middle at `x`)."""
        extra = ' font-weight="bold"' if bold else ""
        if rotate:
            extra += f' transform="rotate(-90 {_f(x)} {_f(y)})"'
        self._items.append(f'<text x="{_f(x)}" y="{_f(y + 0.35 * size)}" font-size="{size:g}" '
                           f'text-anchor="{anchor}" fill="{color}"{extra}>{escape(text)}</text>')

    def hatch(self, name: str, color: str) -> str:
        """A fill of diagonal lines in `color`; its `fill` value."""
        self._defs.append(f'<pattern id="@{name}" width="6" height="6" patternUnits="userSpaceOnUse" '
                          f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
                          f'<line x1="0" y1="0" x2="0" y2="6" stroke="{color}" stroke-width="1.5"/></pattern>')
        return f"url(#@{name})"

    def svg(self, name: str) -> str:
        defs = f"<defs>{''.join(self._defs)}</defs>" if self._defs else ""
        # Both only inside attribute values: a label's text has its quotes escaped.
        body = (defs + "".join(self._items)).replace('id="@', f'id="{name}-').replace('"url(#@', f'"url(#{name}-')
        return (f'<svg role="img" aria-label="{escape(name)}" xmlns="http://www.w3.org/2000/svg" '
                f'width="{_f(self.width)}" height="{_f(self.height)}" viewBox="0 0 {_f(self.width)} {_f(self.height)}" '
                f'font-family="{_FONT}">{body}</svg>')


def render(draw: Callable[..., Chart], name: str, *args, **kwargs) -> str:
    """The chart `draw` makes of the arguments, as an <svg> element to inline in HTML."""
    return draw(*args, **kwargs).svg(name)


def _origin_color(origin: str) -> str:
    return ORIGIN_COLORS.get(origin, _OTHER)


def _short_number(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


def nice_ticks(low: float, high: float, count: int = 6, integer: bool = False) -> list[float]:
    """Round tick values from `low` to `high` (both included when round), about `count` of them."""
    span = high - low
    if span <= 0:
        return [low]
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integer and mag < 10 else (1, 2, 2.5, 5, 10)
    step = next(m * mag for m in steps if m * mag >= raw * (1 - 1e-9))
    if integer:
        step = max(1.0, step)
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def _percent_labels(ticks: Sequence[float]) -> list[str]:
    """Tick labels as percentages with as many decimals as the step needs (2.5 %, not a rounded 2 %)."""
    for decimals in range(0, 4):
        if all(abs(round(t * 100, decimals) - t * 100) < 1e-9 for t in ticks):
            break
    return [f"{t * 100:.{decimals}f}%" for t in ticks]


def _count_labels(ticks: Sequence[float]) -> list[str]:
    return [f"{t:,.0f}" if float(t).is_integer() else f"{t:g}" for t in ticks]


def _plain_labels(ticks: Sequence[float]) -> list[str]:
    return [f"{t:g}" for t in ticks]


class _Axes:
    """A plot area of a chart: data coordinates to user units, and its axes drawn."""

    def __init__(self, chart: Chart, left: float, top: float, width: float, height: float,
                 xlim: tuple[float, float], ylim: tuple[float, float], xlog: bool = False) -> None:
        self.chart, self.left, self.top, self.width, self.height = chart, left, top, width, height
        self.xlim, self.ylim, self.xlog = xlim, ylim, xlog

    def x(self, value: float) -> float:
        lo, hi = self.xlim
        if self.xlog:
            value, lo, hi = math.log10(max(value, 1e-12)), math.log10(lo), math.log10(hi)
        share = (value - lo) / (hi - lo) if hi > lo else 0.0
        return self.left + self.width * min(max(share, 0.0), 1.0)

    def y(self, value: float) -> float:
        lo, hi = self.ylim
        share = (value - lo) / (hi - lo) if hi > lo else 0.0
        return self.top + self.height * (1.0 - min(max(share, 0.0), 1.0))

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def x_ticks(self, count: int, labels: Callable[[Sequence[float]], list[str]], integer: bool = False
                ) -> tuple[list[float], list[str]]:
        """Round ticks over the x range, about `count` of them, or fewer where their labels would
        touch (a narrow plot, long numbers)."""
        for n in range(count, 1, -1):
            ticks = nice_ticks(*self.xlim, n, integer)
            texts = labels(ticks)
            at = [self.x(t) for t in ticks]
            if all(x2 - x1 >= (text_width(a, _TICK) + text_width(b, _TICK)) / 2 + 10
                   for x1, x2, a, b in zip(at, at[1:], texts, texts[1:])):
                break
        return ticks, texts

    def x_axis(self, ticks: Sequence[float], labels: Sequence[str], label: str,
               minor: Sequence[tuple[float, str]] = ()) -> None:
        c = self.chart
        c.line(self.left, self.bottom, self.left + self.width, self.bottom)
        for value, text in zip(ticks, labels):
            x = self.x(value)
            c.line(x, self.bottom, x, self.bottom + 5)
            c.text(x, self.bottom + 14, text, anchor="middle")
        for value, text in minor:
            x = self.x(value)
            c.line(x, self.bottom, x, self.bottom + 3)
            if text:
                c.text(x, self.bottom + 14, text, size=_SMALL, anchor="middle", color=_AXIS)
        # Under the middle of the plot, moved in where a long label would pass the chart's edge.
        half = text_width(label, _TICK) / 2
        middle = max(min(self.left + self.width / 2, c.width - 4 - half), 4 + half)
        c.text(middle, self.bottom + 34, label, anchor="middle")

    def y_axis(self, ticks: Sequence[float], labels: Sequence[str], label: str) -> None:
        c = self.chart
        c.line(self.left, self.top, self.left, self.bottom)
        for value, text in zip(ticks, labels):
            y = self.y(value)
            c.line(self.left - 5, y, self.left, y)
            c.text(self.left - 8, y, text, anchor="end")
        if label:
            widest = max((text_width(t, _TICK) for t in labels), default=0)
            c.text(self.left - 16 - widest, self.top + self.height / 2, label, anchor="middle", rotate=True)

    def categories(self, labels: Sequence[str], centers: Sequence[float]) -> None:
        """Row labels left of the plot area, and its left axis."""
        c = self.chart
        c.line(self.left, self.top, self.left, self.bottom)
        for text, y in zip(labels, centers):
            c.line(self.left - 5, y, self.left, y)
            c.text(self.left - 8, y, clip(text, _TICK, self.left - 12), anchor="end")

    def title(self, text: str, above: float = 14) -> None:
        self.chart.text(self.left, self.top - above, clip(text, _TITLE, self.width), size=_TITLE, bold=True)


# Legend entries: (label, kind, colour) with kind "box", "hatch", "line", "dash" or "dot".
Entry = tuple[str, str, str]


def _legend_width(entries: Sequence[Entry], size: float) -> float:
    return sum(28 + text_width(label, size) + 18 for label, _, _ in entries)


def _legend(chart: Chart, entries: Sequence[Entry], x: float, y: float, width: float, size: float = _SMALL + 1,
            right: bool = False) -> float:
    """Legend entries in rows from (x, y), wrapped at `width` (right: rows end at x + width);
    the height it took."""
    rows: list[list[Entry]] = [[]]
    used = 0.0
    for entry in entries:
        need = 28 + text_width(entry[0], size) + 18
        if rows[-1] and used + need > width:
            rows.append([])
            used = 0.0
        rows[-1].append(entry)
        used += need
    for r, row in enumerate(rows):
        cy = y + 9 + r * 20
        cx = x + (width - _legend_width(row, size) + 18 if right else 0)
        for label, kind, color in row:
            if kind == "box":
                chart.rect(cx, cy - 5, 20, 10, color)
            elif kind == "hatch":
                chart.rect(cx, cy - 5, 20, 10, chart.hatch(f"legend-{len(chart._defs)}", color), stroke=color)
            else:
                dash = {"dash": "6 3", "dot": "1.5 2.5"}.get(kind)
                chart.line(cx, cy, cx + 20, cy, color=color, width=1.6 if kind == "line" else 1.2, dash=dash)
            chart.text(cx + 26, cy, label, size=size)
            cx += 28 + text_width(label, size) + 18
    return 20 * len(rows)


def _widest(labels: Sequence[str], size: float = _TICK) -> float:
    return max((text_width(t, size) for t in labels), default=0.0)


def _fit_right(ends: Sequence[float], labels: Sequence[str], low: float, high: float, left: float,
               right: float) -> float:
    """The smallest axis maximum >= `high` at which each bar's label, written after its end, stays
    left of `right` (a plot area from `left` to `right` for data from `low`)."""
    for _ in range(60):
        scale = (right - left) / (high - low)
        if all(left + (end - low) * scale + 4 + text_width(t, _SMALL) <= right for end, t in zip(ends, labels)):
            break
        high = low + (high - low) * 1.06
    return high


def _rows_chart(labels: Sequence[str], legend: Sequence[Entry], pitch: float
                ) -> tuple[Chart, float, float, list[float], float]:
    """A chart of one horizontal row per label: (chart, plot left, plot top, row centres, plot height)."""
    # Labels take at most 40 % of the width; longer ones are cut short.
    left = 16 + min(_widest(labels), 0.4 * WIDTH)
    top = 10 + (_legend_height(legend, WIDTH - left - 20) + 8 if legend else 0)
    height = pitch * len(labels)
    chart = Chart(WIDTH, top + height + 48)
    if legend:
        _legend(chart, legend, left, 8, WIDTH - left - 20)
    centers = [top + pitch * (i + 0.5) for i in range(len(labels))]
    return chart, left, top, centers, height


def _legend_height(entries: Sequence[Entry], width: float) -> float:
    return _legend(Chart(0, 0), entries, 0, 0, width)


def funnel(sources: Sequence[str], fates: Sequence[str], counts: np.ndarray) -> Chart:
    """Each source's rows by fate, as shares of what it read (counts: sources x fates)."""
    legend = [(FATE_LABELS[f], "box", FATE_COLORS[f]) for f in fates]
    chart, left, top, centers, height = _rows_chart(sources, legend, 40)
    ax = _Axes(chart, left, top, WIDTH - left - 24, height, (0.0, 1.0), (0.0, 1.0))
    read = np.maximum(counts.sum(axis=1), 1)
    for i, cy in enumerate(centers):
        done = 0.0
        for j, fate in enumerate(fates):
            share = counts[i, j] / read[i]
            x0, x1 = ax.x(done), ax.x(done + share)
            chart.rect(x0, cy - 13, x1 - x0, 26, FATE_COLORS[fate])
            if share >= 0.06:
                chart.text((x0 + x1) / 2, cy, f"{share:.0%}", size=_SMALL, anchor="middle",
                           color="#333333" if fate == "not_selected" else "#ffffff")
            done += share
    ax.categories(sources, centers)
    ax.x_axis(*ax.x_ticks(5, _percent_labels), "share of the rows read")
    return chart


def mixture(labels: Sequence[str], targets: Sequence[float | None], achieved: Sequence[float],
            colors: Sequence[str], unit: str) -> Chart:
    """Target and achieved fraction of the mixture per origin and source."""
    legend = [("target", "hatch", _AXIS), ("achieved", "box", _AXIS)]
    chart, left, top, centers, height = _rows_chart(labels, legend, 44)
    target_values = [t if t is not None else 0.0 for t in targets]
    texts = [f"{a:.2%}" for a in achieved]
    right = WIDTH - 24
    high = min(1.0, max(list(achieved) + target_values + [0.05]) * 1.1)
    high = _fit_right(achieved, texts, 0.0, high, left, right)
    ax = _Axes(chart, left, top, right - left, height, (0.0, high), (0.0, 1.0))
    for k, (cy, target, value, color, text) in enumerate(zip(centers, targets, achieved, colors, texts)):
        if target is not None:
            chart.rect(ax.x(0), cy - 17, ax.x(target) - ax.x(0), 15, chart.hatch(f"target-{k}", color), stroke=color)
        chart.rect(ax.x(0), cy + 2, ax.x(value) - ax.x(0), 15, color)
        chart.text(ax.x(value) + 4, cy + 9.5, text, size=_SMALL)
    ax.categories(labels, centers)
    ax.x_axis(*ax.x_ticks(6, _percent_labels), f"fraction of the mixture's {unit}")
    return chart


def _stairs(ax: _Axes, values: np.ndarray, edges: Sequence[float], color: str, fill: bool, line: bool) -> None:
    """A step histogram: values[i] over [edges[i], edges[i+1]), from and back to the zero line."""
    points = [(ax.x(edges[0]), ax.y(0.0))]
    for value, lo, hi in zip(values, edges[:-1], edges[1:]):
        points += [(ax.x(lo), ax.y(value)), (ax.x(hi), ax.y(value))]
    points.append((ax.x(edges[len(values)]), ax.y(0.0)))
    if fill:
        ax.chart.path(points, None, fill=color, opacity=0.15 if line else None)
    if line:
        ax.chart.path(points, color)


def _panels(count: int, left: float, right: float, gap: float) -> list[tuple[float, float]]:
    """(left, width) of `count` plot areas side by side between `left` and `right`."""
    width = (right - left - gap * (count - 1)) / count
    return [(left + k * (width + gap), width) for k in range(count)]


def lengths(edges: np.ndarray, by_measure: dict[str, dict[str, np.ndarray]]) -> Chart:
    """Length distributions per origin (share of each origin's rows per bin), on a log scale."""
    measures = [m for m in ("tokens", "chars") if by_measure.get(m)]
    origins = sorted({o for m in measures for o, c in by_measure[m].items() if c.sum()})
    legend = [(f"{o} ({int(next(by_measure[m][o].sum() for m in measures if o in by_measure[m])):,} rows)", "line",
               _origin_color(o)) for o in origins]
    legend_height = _legend_height(legend, WIDTH - 40)
    top = legend_height + 44
    height = 200
    chart = Chart(WIDTH, top + height + 50)
    _legend(chart, legend, 20, 6, WIDTH - 40, right=True)
    margin = 24 + _TICK + text_width("100.0%", _TICK)
    for (left, width), measure in zip(_panels(len(measures), margin, WIDTH - 16, margin + 24), measures):
        counts = by_measure[measure]
        present = [c for c in counts.values() if c.sum()]
        first = min((int(np.flatnonzero(c)[0]) for c in present), default=1)
        last = max((int(np.flatnonzero(c)[-1]) for c in present), default=1)
        low = max(edges[max(first, 1)] * 0.8, 0.5)
        high = edges[last + 1] * 1.25
        shares = {o: c / c.sum() for o, c in counts.items() if c.sum()}
        peak = max((float(s.max()) for s in shares.values()), default=0.0)
        yticks = nice_ticks(0.0, max(peak, 1e-6) * 1.05, 4)
        ylim = (0.0, max(yticks[-1], peak * 1.05) or 1.0)
        ax = _Axes(chart, left, top, width, height, (low, high), ylim, xlog=True)
        # The first bin is [0, 1): drawn from 0.5 so a log axis can show it.
        bin_edges = np.concatenate([np.maximum(edges[:-1], 0.5), edges[-1:]])
        for origin in origins:
            if origin in shares:
                _stairs(ax, shares[origin], bin_edges, _origin_color(origin), fill=True, line=True)
        decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        major = [10.0 ** k for k in decades if low <= 10.0 ** k <= high]
        # Plain numbers (100, 1k); the ticks at 2 and 5 get labels only where the axis spans few decades.
        few = math.log10(high / low) <= 2.5
        minor = [(m * 10.0 ** k, _short_number(m * 10.0 ** k) if few else "") for k in decades for m in (2, 5)
                 if low <= m * 10.0 ** k <= high]
        ax.x_axis(major, [_short_number(v) for v in major], f"{measure} per document (log scale)", minor)
        ax.y_axis(yticks, _percent_labels(yticks), "share of the origin's rows")
        ax.title(measure)
    return chart


def filters(labels: Sequence[str], dropped: Sequence[int], flagged: Sequence[int]) -> Chart:
    """Documents each filter dropped or flagged."""
    legend = [("dropped (to filtered/)", "box", "#EE7733"), ("flagged (kept, in quality_flags)", "box", "#88CCEE")]
    chart, left, top, centers, height = _rows_chart(labels, legend, 30)
    totals = [d + f for d, f in zip(dropped, flagged)]
    texts = [f"{d:,} dropped, {f:,} flagged" if d and f else f"{d + f:,}" for d, f in zip(dropped, flagged)]
    right = WIDTH - 24
    high = _fit_right(totals, texts, 0.0, max(max(totals, default=0), 1) * 1.05, left, right)
    ax = _Axes(chart, left, top, right - left, height, (0.0, high), (0.0, 1.0))
    for cy, d, f, text in zip(centers, dropped, flagged, texts):
        chart.rect(ax.x(0), cy - 10, ax.x(d) - ax.x(0), 20, "#EE7733")
        chart.rect(ax.x(d), cy - 10, ax.x(d + f) - ax.x(d), 20, "#88CCEE")
        chart.text(ax.x(d + f) + 4, cy, text, size=_SMALL)
    ax.categories(labels, centers)
    ax.x_axis(*ax.x_ticks(6, _count_labels, integer=True),
              "documents (a document failing several filters counts under each)")
    return chart


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


def _count_axis(peak: float, headroom: float) -> tuple[list[float], tuple[float, float]]:
    ticks = nice_ticks(0.0, max(peak * headroom, 1.0), 5, integer=True)
    return ticks, (0.0, max(ticks[-1], peak * headroom, 1.0))


def duplicates(sizes: dict[int, int], similarity: np.ndarray, edges: np.ndarray,
               threshold: float | None, verify: float | None) -> Chart:
    """Clusters by size, and the estimated similarity of near duplicates to the document kept."""
    show_similarity = bool(similarity.sum())
    buckets = cluster_size_buckets(sizes)
    top, height = 44, 200
    chart = Chart(WIDTH, top + height + 50)
    peak_clusters = max((b[1] for b in buckets), default=0)
    margin = 32 + _TICK + text_width(f"{peak_clusters * 1.2:,.0f}", _TICK)
    panels = _panels(2 if show_similarity else 1, margin, WIDTH - 16, margin + 24)
    left, width = panels[0]
    ticks, ylim = _count_axis(peak_clusters, 1.15)
    ax = _Axes(chart, left, top, width, height, (0.0, float(len(buckets))), ylim)
    slot = width / max(len(buckets), 1)
    for k, (label, clusters, _) in enumerate(buckets):
        x = left + slot * k
        chart.rect(x + slot * 0.1, ax.y(clusters), slot * 0.8, ax.bottom - ax.y(clusters), "#AA4499")
        if clusters:
            chart.text(x + slot / 2, ax.y(clusters) - 8, f"{clusters:,}", size=_SMALL, anchor="middle")
    ax.x_axis([k + 0.5 for k in range(len(buckets))], [b[0] for b in buckets],
              "documents in the cluster (the one kept included)")
    ax.y_axis(ticks, _count_labels(ticks), "clusters")
    ax.title("cluster sizes")
    if show_similarity:
        left, width = panels[1]
        first = max(int(np.flatnonzero(similarity)[0]) - 2, 0)
        low = min(edges[first], threshold or 1.0, verify or 1.0) - 0.02
        ticks, ylim = _count_axis(float(similarity.max()), 1.05)
        ax = _Axes(chart, left, top, width, height, (low, 1.005), ylim)
        _stairs(ax, similarity[first:], edges[first:], "#CC79A7", fill=True, line=False)
        entries = []
        for value, kind, name in ((threshold, "dash", "threshold"), (verify, "dot", "verify threshold")):
            if value is not None:
                chart.line(ax.x(value), ax.top, ax.x(value), ax.bottom, color="#333333", width=1.2,
                           dash={"dash": "6 3", "dot": "1.5 2.5"}[kind])
                entries.append((f"{name} {value:g}", kind, "#333333"))
        for k, entry in enumerate(entries):
            _legend(chart, [entry], left + 8, top + 2 + 18 * k, width, size=_SMALL)
        ax.x_axis(*ax.x_ticks(5, _plain_labels), "estimated Jaccard similarity to the kept document")
        ax.y_axis(ticks, _count_labels(ticks), "near duplicates")
        ax.title("near-duplicate similarity")
    return chart


def collapse(names: Sequence[str], ratios: Sequence[float]) -> Chart:
    """Each diversity indicator of synthetic text relative to human text (1 = the same)."""
    chart, left, top, centers, height = _rows_chart(names, [], 30)
    values = np.asarray(ratios, float)
    texts = [f"{r:.2f}" for r in values]
    room = text_width("0.00", _SMALL) + 8
    right = WIDTH - 24
    span = max(0.25, float(np.max(np.abs(values - 1.0), initial=0.0)) * 1.1)
    # Room for a label beyond each bar's end, on either side of 1.
    width = right - left
    span = max(span, float(np.max(np.abs(values - 1.0), initial=0.0)) * width / 2 / max(width / 2 - room, 1.0))
    ax = _Axes(chart, left, top, width, height, (1.0 - span, 1.0 + span), (0.0, 1.0))
    for cy, value, text in zip(centers, values, texts):
        color = "#CC3311" if value < 0.9 else "#EE7733" if value < 1.0 else "#009E73"
        x0, x1 = sorted((ax.x(1.0), ax.x(value)))
        chart.rect(x0, cy - 9, x1 - x0, 18, color)
        if value >= 1.0:
            chart.text(x1 + 4, cy, text, size=_SMALL)
        else:
            chart.text(x0 - 4, cy, text, size=_SMALL, anchor="end")
    chart.line(ax.x(1.0), top, ax.x(1.0), top + height, color="#333333")
    ax.categories(names, centers)
    ax.x_axis(*ax.x_ticks(6, _plain_labels),
              "synthetic / human (below 1: less diverse or more compressible than human text)")
    return chart


def scores(sources: Sequence[str], groups: Sequence[dict[str, list[int]]]) -> Chart:
    """quality_score distributions per scored source: the pool, the selection, what filters dropped."""
    colors = {"pool": "#777777", "selected": "#009E73", "filtered": "#EE7733"}
    cols = min(len(sources), 2)
    rows = (len(sources) + cols - 1) // cols if cols else 0
    width = WIDTH if cols > 1 else WIDTH * 0.6
    margin = 24 + _TICK + text_width("100.0%", _TICK)
    panels = _panels(max(cols, 1), margin, width - 16, margin + 24)
    drawn = []
    for source, group in zip(sources, groups):
        hists = {name: np.asarray(group.get(name) or [], float) for name in ("pool", "selected", "filtered")}
        hists = {name: h for name, h in hists.items() if h.sum()}
        legend = [(f"{name} ({int(h.sum()):,})", "line", colors[name]) for name, h in hists.items()]
        drawn.append((source, hists, legend))
    # The legends sit between each panel's title and its plot, clear of the curves.
    legend_height = max((_legend_height(legend, panels[0][1]) for _, _, legend in drawn), default=0)
    height = 150
    pitch = 30 + legend_height + 8 + height + 50
    chart = Chart(width, rows * pitch + 4)
    for k, (source, hists, legend) in enumerate(drawn):
        left, panel_width = panels[k % cols]
        top = k // cols * pitch + 30 + legend_height + 8
        peak = max((float(h.max() / h.sum()) for h in hists.values()), default=0.0)
        yticks = nice_ticks(0.0, max(peak, 1e-6) * 1.1, 4)
        ax = _Axes(chart, left, top, panel_width, height, (0.0, 1.0), (0.0, max(yticks[-1], peak * 1.1) or 1.0))
        for name, hist in hists.items():
            _stairs(ax, hist / hist.sum(), np.linspace(0, 1, len(hist) + 1), colors[name], fill=False, line=True)
        _legend(chart, legend, left, top - legend_height - 6, panel_width)
        ax.title(source, legend_height + 20)
        ax.x_axis(*ax.x_ticks(5, _plain_labels), "quality_score")
        ax.y_axis(yticks, _percent_labels(yticks), "share of documents")
    return chart
