"""A stand-in for the facts engine in tests of what is built on it: figures whose rows a test sets and changes."""

from __future__ import annotations

import datetime as dt

from safehold.transparency.figures import CATALOGUE, Figure, FigureSet
from safehold.transparency.periods import Period


class FakeFacts:
    """``rows[key]`` are the rows of that figure for any period; every other figure is empty. ``asked`` records the
    ``(period, as_of)`` of each call."""

    def __init__(self, rows: dict[str, list[tuple]] | None = None):
        self.rows = rows or {}
        self.asked: list[tuple[Period, dt.datetime]] = []

    def figures(self, period: Period, filters=None, as_of: dt.datetime | None = None) -> FigureSet:
        as_of = as_of or dt.datetime.now(dt.UTC)
        self.asked.append((period, as_of))
        figs = {k: Figure(spec, tuple(self.rows.get(k, ()))) for k, spec in CATALOGUE.items()}
        return FigureSet(period, as_of, figs, dict(filters or {}))


#: Figures with small and large cells: backlog 3 and 40 (the 3 is hidden with the 12 beside it).
SAMPLE = {
    "cases.backlog": [("open", "high", 3), ("open", "low", 40), ("claimed", "high", 12)],
    "detections.by_source": [("hash", 120, 100), ("user_report", 30, 28)],
}
