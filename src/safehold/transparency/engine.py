"""Daily facts and the figures summed from them (skeleton: every figure empty until the fact families land).

``Facts.figures(period, filters, as_of)`` is the one way any surface gets numbers; ``Facts.records(key, period,
filters, row)`` lists the records behind one row of a figure (the drill-down), from the same predicates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from safehold.errors import SafeholdError
from safehold.store.db import Database
from safehold.transparency.figures import CATALOGUE, FILTERS, Figure, FigureSet
from safehold.transparency.periods import Period


def check_filters(filters: dict[str, str] | None) -> dict[str, str]:
    """The filters with empty values dropped; an unknown filter is ``transparency.bad_filter`` (400)."""
    clean = {k: v for k, v in (filters or {}).items() if v}
    unknown = sorted(set(clean) - set(FILTERS))
    if unknown:
        raise SafeholdError(
            "transparency.bad_filter",
            f"Unknown filter {unknown[0]!r}; the figures filter by {', '.join(FILTERS)}.",
            status=400,
        )
    return clean


class Facts:
    def __init__(self, db: Database):
        self.db = db

    def figures(
        self, period: Period, filters: dict[str, str] | None = None, as_of: dt.datetime | None = None
    ) -> FigureSet:
        clean = check_filters(filters)
        as_of = as_of or dt.datetime.now(dt.UTC)
        return FigureSet(period, as_of, {k: Figure(spec, ()) for k, spec in CATALOGUE.items()}, clean)

    def records(self, key: str, period: Period, filters: dict[str, str] | None, row: dict[str, str]) -> Iterator[dict]:
        if key not in CATALOGUE:
            raise SafeholdError("transparency.unknown_figure", f"No figure {key!r}.", status=404)
        return iter(())
