"""The small-cell rule: what a figure set looks like once it may leave the system (docs/transparency.md, "Privacy:
small cells").

A count from 1 to ``k - 1`` could single out a handful of people (three reports about one school, two reviewers at
their cap), so it is published as the string ``"<k"`` (primary suppression). Zero is published: "none" identifies
nobody. Every other cell hidden so that a small one cannot be worked back out is published as :data:`SECONDARY`
(``"x"``), which says nothing about its value: it may be large, so no reader and no report may bound it.

What else is hidden, until nothing more changes:

* the row of a hidden count: every other non-zero count and every derived value (a rate, a percentile in seconds)
  of that row, since counts of one row are often sums of each other (``due = met + breached + open_overdue``) and
  a derived value gives them back (``rate × reviewed``);
* per value column, a lone hidden cell beside other non-zero cells takes the next smallest with it, so it cannot be
  recovered by subtracting the published cells from the column's total;
* the same per series of a daily figure (the rows sharing every dimension but ``day``), because each series'
  total is published elsewhere (``detections.daily`` per source sums to ``detections.by_source``).

Only stored reports and what they render are suppressed: the overview and the drill-down are for staff who may read
the records themselves.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from safehold.transparency.figures import Figure, FigureSet

#: What a cell holds when it was hidden only to protect another one (its value may be anything, even large).
SECONDARY = "x"


def hidden(k: int) -> str:
    """What a suppressed small cell holds: a count from 1 to ``k - 1``."""
    return f"<{k}"


def is_suppressed(cell) -> bool:
    """Whether a published cell is hidden, as a small count (``"<k"``) or as :data:`SECONDARY`."""
    return isinstance(cell, str) and (cell == SECONDARY or cell.startswith("<"))


def is_derived(column: str) -> bool:
    """A value column computed from the counts of its row (a rate, seconds at a percentile) rather than a count.

    Decided by name, the catalogue's convention: ``rate`` / ``…_rate`` / ``…_ratio`` and ``…_seconds``."""
    return column == "rate" or column.endswith(("_rate", "_ratio", "_seconds"))


def suppress(figures: FigureSet, k: int) -> FigureSet:
    """``figures`` with every small cell replaced by ``"<k"`` and what would give it back by ``"x"`` (the rule
    above); ``k <= 1`` changes nothing."""
    if k <= 1:
        return figures
    return dataclasses.replace(figures, figures={key: _figure(f, k) for key, f in figures.figures.items()})


def _figure(figure: Figure, k: int) -> Figure:
    spec = figure.spec
    first = len(spec.dims)
    counts = [i for i, c in enumerate(spec.columns) if i >= first and not is_derived(c)]
    derived = [i for i in range(first, len(spec.columns)) if i not in counts]
    rows = [list(r) for r in figure.rows]
    small = {(r, i) for r, row in enumerate(rows) for i in counts if _small(row[i], k)}
    groups = _groups(rows, spec.dims)

    def row_of(r: int) -> set[tuple[int, int]]:
        return {(r, i) for i in counts if _positive(rows[r][i])} | {(r, j) for j in derived}

    hide = set(small)
    for r, _ in small:
        hide |= row_of(r)
    changed = True
    while changed:
        changed = False
        for group in groups:
            for i in counts:
                for r, _ in _secondary(rows, group, i, hide):
                    hide |= row_of(r)
                    changed = True
    if not hide:
        return figure
    for r, i in hide:
        if rows[r][i] is not None:
            rows[r][i] = hidden(k) if (r, i) in small else SECONDARY
    return dataclasses.replace(figure, rows=tuple(tuple(r) for r in rows))


def _groups(rows: list[list], dims: tuple[str, ...]) -> list[list[int]]:
    """The sets of rows whose totals are published: the whole figure, and for a daily figure each series."""
    everything = list(range(len(rows)))
    if "day" not in dims or len(dims) == 1:
        return [everything]
    day = dims.index("day")
    series: dict[tuple, list[int]] = defaultdict(list)
    for r, row in enumerate(rows):
        series[tuple(v for d, v in enumerate(row[: len(dims)]) if d != day)].append(r)
    return [everything, *series.values()]


def _positive(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _small(value, k: int) -> bool:
    return _positive(value) and value < k


def _secondary(rows: list[list], group: list[int], i: int, hide: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The cell to suppress beside a lone hidden cell of column ``i`` among the rows ``group``: the smallest other
    non-zero cell (the first such row on a tie), or nothing when there is none or already two hidden."""
    if sum(1 for r in group if (r, i) in hide) != 1:
        return set()
    others = [(rows[r][i], r) for r in group if (r, i) not in hide and _positive(rows[r][i])]
    return {(min(others)[1], i)} if others else set()
