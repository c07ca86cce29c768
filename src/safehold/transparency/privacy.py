"""The small-cell rule: what a figure set looks like once it may leave the system (docs/transparency.md, "Privacy:
small cells").

A count from 1 to ``k - 1`` could single out a handful of people (three reports about one school, two reviewers at
their cap), so it is published as the string ``"<k"``. Zero is published: "none" identifies nobody. A value derived
from counts in its row (a rate, a percentile in seconds) is suppressed with them, or it would give them back
(``rate × reviewed``). Then, per value column, a lone suppressed cell beside other non-zero cells takes the next
smallest with it (secondary suppression), so it cannot be recovered by subtracting the published cells from the
column's total.

Only stored reports and what they render are suppressed: the overview and the drill-down are for staff who may read
the records themselves.
"""

from __future__ import annotations

import dataclasses

from safehold.transparency.figures import Figure, FigureSet


def hidden(k: int) -> str:
    """What a suppressed cell holds."""
    return f"<{k}"


def is_derived(column: str) -> bool:
    """A value column computed from the counts of its row (a rate, seconds at a percentile) rather than a count.

    Decided by name, the catalogue's convention: ``rate`` / ``…_rate`` / ``…_ratio`` and ``…_seconds``."""
    return column == "rate" or column.endswith(("_rate", "_ratio", "_seconds"))


def suppress(figures: FigureSet, k: int) -> FigureSet:
    """``figures`` with every small cell replaced by ``"<k"`` (the rule above); ``k <= 1`` changes nothing."""
    if k <= 1:
        return figures
    return dataclasses.replace(figures, figures={key: _figure(f, k) for key, f in figures.figures.items()})


def _figure(figure: Figure, k: int) -> Figure:
    spec = figure.spec
    first = len(spec.dims)
    counts = [i for i, c in enumerate(spec.columns) if i >= first and not is_derived(c)]
    rows = [list(r) for r in figure.rows]
    hide: set[tuple[int, int]] = {(r, i) for r, row in enumerate(rows) for i in counts if _small(row[i], k)}
    for i in counts:
        hide |= _secondary(rows, i, hide)
    derived = [i for i in range(first, len(spec.columns)) if i not in counts]
    for r, _ in list(hide):
        hide |= {(r, j) for j in derived}
    if not hide:
        return figure
    for r, i in hide:
        if rows[r][i] is not None:
            rows[r][i] = hidden(k)
    return dataclasses.replace(figure, rows=tuple(tuple(r) for r in rows))


def _small(value, k: int) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < k


def _secondary(rows: list[list], i: int, hide: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The cell to suppress beside a lone suppressed cell of column ``i``: the smallest other non-zero cell (the
    first such row on a tie), or nothing when the column has no other non-zero cell or already two suppressed."""
    if sum(1 for r in range(len(rows)) if (r, i) in hide) != 1:
        return set()
    others = [
        (rows[r][i], r)
        for r in range(len(rows))
        if (r, i) not in hide and isinstance(rows[r][i], int | float) and rows[r][i] > 0
    ]
    return {(min(others)[1], i)} if others else set()
