"""Figure sets for the human-readable report tests (HTML, PDF, charts, browser): the hand-built half-year of
:mod:`tests.transparency.format_helpers` with some cells suppressed by the small-cell rule, and a daily figure with
a row per day and source, as a real half-year has (long tables, several lines in a chart)."""

from __future__ import annotations

from safehold.transparency.figures import FigureSet
from tests.transparency.format_helpers import CONTEXT, PERIOD, ROWS, figure_set, suppressed

SMALL = f"<{CONTEXT.min_cell}"
#: The cells published as suppressed: (figure, row, column).
SMALL_CELLS = (
    ("detections.by_source", 6, 1),  # livestream: 5 signals
    ("detections.by_source", 6, 2),
    ("cases.backlog", 1, 2),  # 3 escalated P1 cases
    ("reports.by_authority", 1, 2),  # 6 draft reports
    ("reports.by_authority", 1, 3),
    ("errors.false_positives", 2, 2),  # stopncii: 8 reviewed, 2 false positives, and so the rate
    ("errors.false_positives", 2, 3),
    ("errors.false_positives", 2, 4),
    ("reviewers.exposure", 2, 1),  # 3 reviewer-days at the cap
)
#: Signals a day per source in :func:`daily` (before the weekly rhythm).
DAILY = {"hash_match": 24, "classifier": 15, "user_report": 11, "grooming": 6}


def daily() -> list[tuple]:
    """``detections.daily`` for every day of the period and each source of :data:`DAILY`, quieter at weekends;
    a count under the threshold is published suppressed."""
    rows = []
    for i, day in enumerate(PERIOD.each_day()):
        for j, (source, base) in enumerate(DAILY.items()):
            n = base + (i * (j + 3)) % 17 - (8 if day.weekday() >= 5 else 0)
            rows.append((day.isoformat(), source, n if n >= CONTEXT.min_cell else SMALL))
    return rows


def report_rows() -> dict[str, list[tuple]]:
    rows = suppressed(ROWS, dict.fromkeys(SMALL_CELLS, SMALL))
    return rows | {"detections.daily": daily()}


def report_figures(**changes: list[tuple]) -> FigureSet:
    """Every catalogue figure with :func:`report_rows` (or the rows given for a key)."""
    return figure_set(report_rows() | changes)
