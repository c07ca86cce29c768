"""One chart model, drawn on the server: SVG for the console and the HTML report (no script, no CDN, readable
with a screen reader through its title, description and per-mark titles), and the same model for the PDF's
vector drawing (:mod:`safehold.transparency.formats.pdf`).

:func:`chart_for` turns a figure into a chart by its spec: ``line`` figures (``dims[0]`` is a day) become one line
per value of the second dimension (or per value column) over every day of the period, zeros included; ``bar``
figures one bar group per row, one bar per value column of the first unit; ``table`` figures no chart.

A cell the small-cell rule suppressed holds a string (``"<10"`` or ``"x"``), not a number: a chart draws it as zero
and counts it in :attr:`Chart.suppressed`, so the page can say so; the table beside the chart prints it as it is.

:func:`marks` lays a chart out once, as rectangles, lines, polylines and texts in a ``W`` × ``H`` box (y down);
:func:`svg` writes those marks as SVG and the PDF format draws the same marks, so both show the same chart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape

from safehold.transparency.figures import Figure
from safehold.transparency.privacy import is_suppressed

#: Colours distinguishable with the common colour-vision deficiencies (Okabe and Ito's palette).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
#: At most this many bar groups are drawn (the largest); the table beside the chart keeps every row.
MAX_BARS = 20
#: At most this many lines; the rest are summed into "other".
MAX_LINES = 7


@dataclass(frozen=True)
class Chart:
    kind: str  # bar | line
    title: str
    categories: tuple[str, ...]
    series: tuple[tuple[str, tuple[float, ...]], ...]
    unit: str = "count"
    #: Plotted cells the small-cell rule suppressed ("<10" or "x"): drawn as zero.
    suppressed: int = 0


def number(cell) -> float | None:
    """A figure cell as a number: None for an empty cell or one the small-cell rule suppressed (a ``"<N"`` or
    ``"x"`` string: neither is a value, and ``"x"`` may hide a large one)."""
    if cell is None or isinstance(cell, str):
        return None
    return float(cell)


def chart_for(figure: Figure, period_days: list[dt.date] | None = None) -> Chart | None:
    """The chart of ``figure`` (None for a ``table`` figure or one with no rows)."""
    spec = figure.spec
    if spec.chart == "table" or not figure.rows:
        return None
    if spec.chart == "line":
        return _line(figure, period_days)
    first = _plotted(spec)
    idx = [spec.columns.index(v) for v in first]
    rows = sorted(figure.rows, key=lambda r: -(number(r[idx[0]]) or 0))[:MAX_BARS]
    cats = tuple(" / ".join(str(x) for x in r[: len(spec.dims)] if x not in ("", None)) or "(none)" for r in rows)
    series = tuple((v, tuple(number(r[i]) or 0.0 for r in rows)) for v, i in zip(first, idx, strict=True))
    hidden = sum(is_suppressed(r[i]) for r in rows for i in idx)
    return Chart("bar", spec.title, cats, series, spec.unit, hidden)


def _plotted(spec) -> list[str]:
    """The value columns a bar chart draws: the percentiles of a duration figure, the rate of a ratio figure,
    else the first count."""
    if spec.unit == "seconds":
        return [v for v in spec.values if v.endswith("_seconds")]
    if spec.unit == "ratio":
        return ["rate"]
    return list(spec.values[:1])


def _line(figure: Figure, period_days: list[dt.date] | None) -> Chart:
    spec = figure.spec
    days = [d.isoformat() for d in period_days] if period_days else sorted({str(r[0]) for r in figure.rows})
    pos = {d: i for i, d in enumerate(days)}
    lines: dict[str, list[float]] = {}
    hidden = 0
    if len(spec.dims) > 1:  # one line per value of the second dimension, the first value column
        vi = len(spec.dims)
        for r in figure.rows:
            lines.setdefault(str(r[1]) or "(none)", [0.0] * len(days))
        for r in figure.rows:
            if str(r[0]) in pos:
                lines[str(r[1]) or "(none)"][pos[str(r[0])]] += number(r[vi]) or 0
                hidden += is_suppressed(r[vi])
        ranked = sorted(lines, key=lambda k: -sum(lines[k]))
        if len(ranked) > MAX_LINES:
            other = [sum(lines[k][i] for k in ranked[MAX_LINES - 1 :]) for i in range(len(days))]
            lines = {k: lines[k] for k in ranked[: MAX_LINES - 1]} | {"other": other}
    else:  # one line per value column
        for v in spec.values:
            vi = spec.columns.index(v)
            vals = [0.0] * len(days)
            for r in figure.rows:
                if str(r[0]) in pos:
                    vals[pos[str(r[0])]] += number(r[vi]) or 0
                    hidden += is_suppressed(r[vi])
            lines[v] = vals
    series = tuple((k, tuple(v)) for k, v in lines.items())
    return Chart("line", spec.title, tuple(days), series, spec.unit, hidden)


def column_unit(column: str) -> str:
    """The unit of a figure's column by its name: ``*_seconds`` are durations, ``rate`` a ratio, the rest counts
    (the catalogue names its columns so)."""
    if column.endswith("_seconds"):
        return "seconds"
    return "ratio" if column == "rate" else "count"


def fmt(v: float, unit: str = "count") -> str:
    """A value as a chart or table prints it: seconds as a duration, ratios as a percentage, counts grouped."""
    if unit == "seconds":
        for size, suffix in ((86400, "d"), (3600, "h"), (60, "min")):
            if v >= size:
                return f"{v / size:.1f} {suffix}"
        return f"{v:.0f} s"
    if unit == "ratio":
        return f"{100 * v:.1f} %"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


# ---------------------------------------------------------------------------------------------------- layout

W, H = 640, 300
#: Margins of the plot area; the legend sits above it (:data:`LEGEND_ROW` units a row), the category labels below
#: (``BOTTOM`` when they slant, ``BOTTOM_LEVEL`` when they fit level).
LEFT, RIGHT, TOP, BOTTOM, BOTTOM_LEVEL = 64, 16, 8, 84, 28
LEGEND_ROW = 16
#: Legend entries per row, and the width each takes.
LEGEND_PER_ROW, LEGEND_STEP = 5, 114
#: A category label's average width per character at the charts' font size (10), to decide whether it fits
#: level under its bar or must slant.
CHAR_W = 6.2
#: The longest slanted category label drawn (the table has the whole text), and the width a character of it takes
#: across (a slanted label near the left edge is cut to stay in the box).
LABEL_CHARS, SLANT_W = 20, CHAR_W * 0.82
GRID = "#dddddd"
INK = "#222222"


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    title: str = ""


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str


@dataclass(frozen=True)
class Polyline:
    points: tuple[tuple[float, float], ...]
    stroke: str
    title: str = ""


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"  # start | middle | end
    rotate: float = 0.0  # degrees, clockwise as on screen (SVG's sense), about (x, y)


Mark = Rect | Line | Polyline | Text


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** len(str(int(v))) / 10 if v >= 1 else 1.0
    for step in (1, 2, 4, 6, 8, 10):  # a quarter of each is a round number for counts of 10 and more
        if v <= step * mag:
            return step * mag
    return 10 * mag


def _legend_rows(chart: Chart) -> int:
    return -(-max(len(chart.series), 1) // LEGEND_PER_ROW)


def height(chart: Chart) -> int:
    """The chart's height in layout units: :data:`H`, and one more legend row for each extra row of legend."""
    return H + LEGEND_ROW * (_legend_rows(chart) - 1)


def _label(text: str, chars: int = LABEL_CHARS) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "…"


def _level(chart: Chart) -> bool:
    """Whether the category labels fit whole and level under their bars (a line chart's day labels always do);
    else they slant, cut to :data:`LABEL_CHARS`."""
    if chart.kind != "bar":
        return True
    fits = (W - LEFT - RIGHT) / max(len(chart.categories), 1) * 0.95 / CHAR_W
    return max((len(c) for c in chart.categories), default=0) <= fits


def _axis_max(v: float, unit: str) -> float:
    """The value axis's top: a round number of the largest duration unit under ``v`` for seconds, else of v."""
    size = next((u for u in (86400, 3600, 60) if v >= u), 1) if unit == "seconds" else 1
    return _nice_max(v / size) * size


def marks(chart: Chart) -> list[Mark]:
    """The chart laid out in a :data:`W` × :func:`height` box, y growing downwards: the legend on top, grid and
    value axis, bars or lines (each with a title naming its value), and the category labels below."""
    peak = _axis_max(max((max(vals, default=0) for _, vals in chart.series), default=0), chart.unit)
    level = _level(chart)
    top = TOP + LEGEND_ROW * _legend_rows(chart) + 8
    pw, ph = W - LEFT - RIGHT, height(chart) - top - (BOTTOM_LEVEL if level else BOTTOM)
    base = top + ph
    n = max(len(chart.categories), 1)
    out: list[Mark] = []
    for s, (name, _) in enumerate(chart.series):  # legend, LEGEND_PER_ROW entries a row
        x = LEFT + (s % LEGEND_PER_ROW) * LEGEND_STEP
        y = TOP + LEGEND_ROW * (s // LEGEND_PER_ROW)
        out.append(Rect(x, y, 10, 10, PALETTE[s % len(PALETTE)]))
        out.append(Text(x + 14, y + 9, _label(name)))
    for i in range(5):  # horizontal grid and the value axis
        y = base - ph * i / 4
        out.append(Line(LEFT, y, W - RIGHT, y, GRID))
        out.append(Text(LEFT - 4, y + 4, fmt(peak * i / 4, chart.unit), "end"))
    if chart.kind == "bar":
        group = pw / n
        bw = group * 0.8 / max(len(chart.series), 1)
        for s, (name, vals) in enumerate(chart.series):
            for i, v in enumerate(vals):
                h = ph * v / peak
                x = LEFT + i * group + group * 0.1 + s * bw
                title = f"{chart.categories[i]}, {name}: {fmt(v, chart.unit)}"
                out.append(Rect(x, base - h, bw, h, PALETTE[s % len(PALETTE)], title))
        for i, c in enumerate(chart.categories):  # level under the bar when the labels fit, else slanted
            x = LEFT + i * group + group / 2
            out.append(
                Text(x, base + 14, c, "middle")
                if level
                else Text(x, base + 12, _label(c, min(LABEL_CHARS, int(x / SLANT_W))), "end", -35)
            )
    else:
        step = pw / max(n - 1, 1)
        for s, (name, vals) in enumerate(chart.series):
            pts = tuple((LEFT + i * step, base - ph * v / peak) for i, v in enumerate(vals))
            title = f"{name}: {fmt(sum(vals), chart.unit)} in all"
            out.append(Polyline(pts, PALETTE[s % len(PALETTE)], title))
        ends = {0: "start", n - 1: "end"}
        for i in sorted({0, n // 2, n - 1}) if chart.categories else ():
            out.append(Text(LEFT + i * step, base + 14, chart.categories[i], ends.get(i, "middle")))
    return out


# ---------------------------------------------------------------------------------------------------- SVG


def _svg_mark(m: Mark) -> str:
    if isinstance(m, Line):
        return f'<line x1="{m.x1:.1f}" x2="{m.x2:.1f}" y1="{m.y1:.1f}" y2="{m.y2:.1f}" stroke="{m.stroke}"/>'
    if isinstance(m, Rect):
        title = f"<title>{escape(m.title)}</title>" if m.title else ""
        return f'<rect x="{m.x:.1f}" y="{m.y:.1f}" width="{m.w:.1f}" height="{m.h:.1f}" fill="{m.fill}">{title}</rect>'
    if isinstance(m, Polyline):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in m.points)
        return (
            f'<polyline points="{pts}" fill="none" stroke="{m.stroke}" stroke-width="2">'
            f"<title>{escape(m.title)}</title></polyline>"
        )
    turn = f' transform="rotate({m.rotate:g} {m.x:.1f} {m.y:.1f})"' if m.rotate else ""
    return (
        f'<text x="{m.x:.1f}" y="{m.y:.1f}" font-size="10" fill="{INK}" text-anchor="{m.anchor}"{turn}>'
        f"{escape(m.text)}</text>"
    )


def svg(chart: Chart, chart_id: str) -> str:
    """The chart as an inline ``<svg>`` element (``chart_id`` makes its ids unique on a page)."""
    names = ", ".join(name for name, _ in chart.series)
    n = max(len(chart.categories), 1)
    hidden = f" {chart.suppressed} suppressed value(s) are drawn as zero." if chart.suppressed else ""
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height(chart)}" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" class="chart">',
        f'<title id="{chart_id}-t">{escape(chart.title)}</title>',
        f'<desc id="{chart_id}-d">{escape(chart.kind)} chart of {escape(names)} over {n} '
        f"{'days' if chart.kind == 'line' else 'categories'}; the table below it has every number.{hidden}</desc>",
    ]
    out.extend(_svg_mark(m) for m in marks(chart))
    out.append("</svg>")
    return "".join(out)
