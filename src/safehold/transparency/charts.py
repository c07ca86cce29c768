"""One chart model, drawn on the server: SVG for the console and the HTML report (no script, no CDN, readable
with a screen reader through its title, description and per-mark titles), and the same model for the PDF's
vector drawing (:mod:`safehold.transparency.formats.pdf`).

:func:`chart_for` turns a figure into a chart by its spec: ``line`` figures (``dims[0]`` is a day) become one line
per value of the second dimension (or per value column) over every day of the period, zeros included; ``bar``
figures one bar group per row, one bar per value column of the first unit; ``table`` figures no chart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape

from safehold.transparency.figures import Figure

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


def chart_for(figure: Figure, period_days: list[dt.date] | None = None) -> Chart | None:
    """The chart of ``figure`` (None for a ``table`` figure or one with no rows)."""
    spec = figure.spec
    if spec.chart == "table" or not figure.rows:
        return None
    if spec.chart == "line":
        return _line(figure, period_days)
    first = _plotted(spec)
    idx = [spec.columns.index(v) for v in first]
    rows = sorted(figure.rows, key=lambda r: -(r[idx[0]] or 0))[:MAX_BARS]
    cats = tuple(" / ".join(str(x) for x in r[: len(spec.dims)] if x not in ("", None)) or "(none)" for r in rows)
    series = tuple((v, tuple(float(r[i] or 0) for r in rows)) for v, i in zip(first, idx, strict=True))
    return Chart("bar", spec.title, cats, series, spec.unit)


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
    if len(spec.dims) > 1:  # one line per value of the second dimension, the first value column
        vi = len(spec.dims)
        for r in figure.rows:
            lines.setdefault(str(r[1]) or "(none)", [0.0] * len(days))
        for r in figure.rows:
            if str(r[0]) in pos:
                lines[str(r[1]) or "(none)"][pos[str(r[0])]] += float(r[vi] or 0)
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
                    vals[pos[str(r[0])]] += float(r[vi] or 0)
            lines[v] = vals
    return Chart("line", spec.title, tuple(days), tuple((k, tuple(v)) for k, v in lines.items()), spec.unit)


# ---------------------------------------------------------------------------------------------------- SVG

W, H = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 64


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** len(str(int(v))) / 10 if v >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if v <= step * mag:
            return step * mag
    return 10 * mag


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


def svg(chart: Chart, chart_id: str) -> str:
    """The chart as an inline ``<svg>`` element (``chart_id`` makes its ids unique on a page)."""
    peak = _nice_max(max((max(vals, default=0) for _, vals in chart.series), default=0))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = max(len(chart.categories), 1)
    names = ", ".join(name for name, _ in chart.series)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" class="chart">',
        f'<title id="{chart_id}-t">{escape(chart.title)}</title>',
        f'<desc id="{chart_id}-d">{escape(chart.kind)} chart of {escape(names)} over {n} '
        f"{'days' if chart.kind == 'line' else 'categories'}; the table below it has every number.</desc>",
    ]
    for i in range(5):  # horizontal grid and the value axis
        y = TOP + ph - ph * i / 4
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{escape(fmt(peak * i / 4, chart.unit))}</text>"
        )
    if chart.kind == "bar":
        group = pw / n
        bw = group * 0.8 / max(len(chart.series), 1)
        for s, (name, vals) in enumerate(chart.series):
            for i, v in enumerate(vals):
                h = ph * v / peak
                x = LEFT + i * group + group * 0.1 + s * bw
                out.append(
                    f'<rect x="{x:.1f}" y="{TOP + ph - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                    f'fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(chart.categories[i])}, {escape(name)}: '
                    f"{escape(fmt(v, chart.unit))}</title></rect>"
                )
        for i, c in enumerate(chart.categories):
            x = LEFT + i * group + group / 2
            out.append(
                f'<text x="{x:.1f}" y="{TOP + ph + 12}" font-size="10" text-anchor="end" '
                f'transform="rotate(-30 {x:.1f} {TOP + ph + 12})">{escape(c[:24])}</text>'
            )
    else:
        step = pw / max(n - 1, 1)
        for s, (name, vals) in enumerate(chart.series):
            pts = " ".join(f"{LEFT + i * step:.1f},{TOP + ph - ph * v / peak:.1f}" for i, v in enumerate(vals))
            out.append(
                f'<polyline points="{pts}" fill="none" stroke="{PALETTE[s % len(PALETTE)]}" stroke-width="2">'
                f"<title>{escape(name)}: {escape(fmt(sum(vals), chart.unit))} in all</title></polyline>"
            )
        for i in sorted({0, n // 2, n - 1}):
            out.append(
                f'<text x="{LEFT + i * step:.1f}" y="{TOP + ph + 14}" font-size="10" text-anchor="middle">'
                f"{escape(chart.categories[i] if chart.categories else '')}</text>"
            )
    for s, (name, _) in enumerate(chart.series):  # legend
        x = LEFT + s * 110
        out.append(f'<rect x="{x}" y="{H - 14}" width="10" height="10" fill="{PALETTE[s % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 14}" y="{H - 5}" font-size="10">{escape(name[:16])}</text>')
    out.append("</svg>")
    return "".join(out)
