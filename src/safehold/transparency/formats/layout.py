"""What the human-readable report says, once, for both of its renderings (:mod:`.html` and :mod:`.pdf`): the
title, the "about these figures" paragraphs, and the figures grouped into sections, each with its chart, its table
of numbers as printed and its definition as caption. The two formats only lay this out, so the HTML and the PDF of
one figure set say the same thing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from safehold.transparency.charts import Chart, chart_for, column_unit, fmt, number
from safehold.transparency.figures import Figure, FigureSet
from safehold.transparency.formats import ReportContext
from safehold.transparency.privacy import SECONDARY

#: The report's sections in reading order: (anchor, heading, what the section answers, figure keys). A figure the
#: catalogue has and no section names goes to "Other figures" at the end, so a new figure is never left out.
SECTIONS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "found",
        "What was found",
        "What was checked and what the detectors found: hash matches against the banks and the exchanges, "
        "classifiers, text detectors, user reports and the search guard.",
        (
            "scans.volume",
            "detections.daily",
            "detections.by_source",
            "detections.by_bank",
            "detections.by_classifier",
            "search.interventions",
        ),
    ),
    (
        "reviewed",
        "How it was reviewed",
        "Every detection becomes a case that people review: how many were opened and closed, what was left at the "
        "end of the period, and how fast decisions came.",
        (
            "cases.daily",
            "cases.by_source",
            "cases.backlog",
            "cases.sla",
            "decisions.time_to_decision",
            "decisions.second_review",
        ),
    ),
    (
        "done",
        "What was done",
        "What reviewers decided and what was done to the content and accounts concerned.",
        ("decisions.by_outcome", "actions.by_kind"),
    ),
    (
        "authorities",
        "Reports to authorities",
        "Reports filed with NCMEC's CyberTipline and other authorities.",
        ("reports.by_authority",),
    ),
    (
        "user-reports",
        "Reports from users and appeals",
        "What the platform's users and trusted flaggers reported, what became of it, and the appeals against "
        "decisions with their outcome after a second review.",
        ("user_reports.by_category", "appeals.by_outcome"),
    ),
    (
        "accuracy",
        "Accuracy",
        "How often reviewers found that what a detector flagged was not violating.",
        ("errors.false_positives",),
    ),
    (
        "wellbeing",
        "Reviewer wellbeing",
        "How much of their daily exposure cap the people who review this material used.",
        ("reviewers.exposure",),
    ),
    (
        "sharing",
        "Sharing",
        "Hashes received from and shared with other organisations, and the feedback sent back.",
        ("exchanges.activity",),
    ),
)
OTHER = ("other", "Other figures", "Figures outside the sections above.")
#: How a dimension cell that is empty prints (e.g. the exchange of the platform's own hash entries).
NONE = "(none)"
#: How an empty value cell prints (e.g. a rate over nothing reviewed).
EMPTY = "–"


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    #: Which columns hold values (set right-aligned); the others are dimensions.
    numeric: tuple[bool, ...]


@dataclass(frozen=True)
class Item:
    """One figure as the report prints it."""

    key: str
    title: str
    caption: str  # the figure's definition (its ``counts``)
    notes: tuple[str, ...]  # the figure's own note, and what the chart left out
    chart: Chart | None
    table: Table


@dataclass(frozen=True)
class Section:
    anchor: str
    heading: str
    intro: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Document:
    title: str
    subtitle: str
    about: tuple[str, ...]
    sections: tuple[Section, ...]
    footer: str


def _utc(at: dt.datetime) -> str:
    at = at.astimezone(dt.UTC) if at.tzinfo else at
    return at.strftime("%Y-%m-%d %H:%M UTC")


def cell(value, column: str, dimension: bool) -> str:
    """A figure cell as the table prints it: a suppressed cell (``"<10"``, ``"x"``) as it is, numbers by their column's
    unit."""
    if dimension:
        return NONE if value in ("", None) else str(value)
    if number(value) is None:
        return EMPTY if value in ("", None) else str(value)
    return fmt(number(value), column_unit(column))


def table(figure: Figure) -> Table:
    """The figure's rows as printed; a daily figure split by one dimension (``day``, ``source`` → ``signals``) is
    printed one row a day and one column per value of that dimension, so a half-year is 181 rows, not thousands."""
    spec = figure.spec
    if spec.chart == "line" and len(spec.dims) == 2 and len(spec.values) == 1:
        return _by_day(figure)
    nd = len(spec.dims)
    rows = tuple(
        tuple(cell(v, c, i < nd) for i, (c, v) in enumerate(zip(spec.columns, r, strict=True))) for r in figure.rows
    )
    header = tuple(c.replace("_", " ") for c in spec.columns)
    return Table(header, rows, tuple(i >= nd for i in range(len(spec.columns))))


def _by_day(figure: Figure) -> Table:
    """Days down, the second dimension's values across (largest total first); a day with no row for a value
    counted none of it."""
    value = figure.spec.values[0]
    cells: dict[tuple[str, str], object] = {}
    totals: dict[str, float] = {}
    for day, key, v in figure.rows:
        name = cell(key, "", True)
        cells[str(day), name] = v
        totals[name] = totals.get(name, 0) + (number(v) or 0)
    across = sorted(totals, key=lambda k: (-totals[k], k))
    rows = tuple(
        (day, *(cell(cells.get((day, k), 0), value, False) for k in across)) for day in sorted({d for d, _ in cells})
    )
    return Table((figure.spec.dims[0], *across), rows, (False, *(True for _ in across)))


def item(figure: Figure, days: list[dt.date]) -> Item:
    chart = chart_for(figure, days)
    notes = [figure.note] if figure.note else []
    if chart is not None and chart.suppressed:
        notes.append(
            f"The chart draws {chart.suppressed} suppressed value(s) as zero; the table shows "
            "them as they were published."
        )
    if chart is not None and chart.kind == "bar" and len(chart.categories) < len(figure.rows):
        notes.append(
            f"The chart shows the {len(chart.categories)} largest of {len(figure.rows)} rows; the table has all."
        )
    if not figure.rows:
        notes.append("Nothing was counted in the period.")
    return Item(figure.spec.key, figure.spec.title, figure.spec.counts, tuple(notes), chart, table(figure))


def _small_cells(min_cell: int) -> str:
    if min_cell <= 1:
        return "Small cells: no count is suppressed in this report; every count is published as it is."
    return (
        f'Small cells: a count from 1 to {min_cell - 1} is published as "<{min_cell}", so that no small group of '
        f"people can be singled out; a count hidden so that such a count cannot be worked out by subtraction is "
        f'published as "{SECONDARY}" and may be of any size. Charts draw both as zero and say so.'
    )


def document(figures: FigureSet, context: ReportContext) -> Document:
    """The report for ``figures`` as ``context`` publishes it (a pure function: same input, same document)."""
    period = figures.period
    days = period.each_day()
    placed = {k for *_, keys in SECTIONS for k in keys}
    groups = [(a, h, i, tuple(k for k in keys if k in figures.figures)) for a, h, i, keys in SECTIONS]
    groups.append((*OTHER, tuple(sorted(k for k in figures.figures if k not in placed))))
    sections = tuple(Section(a, h, i, tuple(item(figures[k], days) for k in keys)) for a, h, i, keys in groups if keys)
    about = [
        f"These figures cover {period.label()} for {context.service}, provided by {context.provider}. They were "
        f"computed from the records as they stood at {_utc(figures.as_of)}, with version {figures.version} of the "
        "figure definitions; each figure's definition is printed under it.",
        _small_cells(context.min_cell),
        "Every figure is an aggregate: nothing in this report identifies a user, a piece of content or a reviewer.",
    ]
    if figures.filters:
        shown = ", ".join(f"{k} = {v}" for k, v in sorted(figures.filters.items()))
        about.append(f"Only records matching these filters are counted: {shown}.")
    ref = f"report {context.report_id}, " if context.report_id is not None else ""
    return Document(
        title=f"Transparency report: {context.service}",
        subtitle=f"{context.provider} · {period.label()}",
        about=tuple(about),
        sections=sections,
        footer=f"{context.provider} · {context.service} · {period.name} · {ref}generated {_utc(context.generated_at)}",
    )
