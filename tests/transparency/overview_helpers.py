"""The overview's tests read a hand-built figure set (format_helpers' half-year, reports with their real statuses)
for any period and filters: the routes and the page are tested against the figure-set contract, whatever the engine
computes."""

from __future__ import annotations

import dataclasses

from safehold.transparency.figures import FigureSet
from safehold.transparency.periods import Period
from tests.transparency.format_helpers import ROWS, figure_set

#: Reports in the statuses the reports family gives (draft … finished): the headline counts the finished ones.
OVERVIEW_ROWS = {
    **ROWS,
    "reports.by_authority": [("ncmec", "finished", 80, 85), ("ncmec", "draft", 6, 6), ("nca", "finished", 12, 12)],
}


def sample(period: Period, filters: dict[str, str] | None = None) -> FigureSet:
    return dataclasses.replace(figure_set(OVERVIEW_ROWS), period=period, filters=dict(filters or {}))
