"""The overview: the figures of one period grouped the way a trust-and-safety lead reads them, the headline
numbers above them, and the records behind any row of a figure as CSV (docs/transparency.md).

The console page, its JSON and ``GET /v1/transparency/overview`` all read :func:`build`, and both drill-downs
(console and API) write :func:`write_records_csv`, so the two surfaces never disagree and hold no logic of their
own.
Nothing here queries the store: the numbers come from :meth:`Facts.figures`, the records from
:meth:`Facts.records`.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO

from safehold.audit.service import AuditService
from safehold.cases.detection import SOURCES
from safehold.cases.taxonomy import QUEUES
from safehold.errors import SafeholdError
from safehold.transparency import charts
from safehold.transparency.engine import Facts, check_filters
from safehold.transparency.figures import CATALOGUE, FILTERS, Figure, FigureSet, FigureSpec
from safehold.transparency.periods import ROLLING, Period, parse_period

#: The values each filter takes ("" or absent: every value).
FILTER_VALUES: dict[str, tuple[str, ...]] = {"source": SOURCES, "queue": QUEUES}
#: A drill-down names at most this many dimension values, each at most this long (a figure has at most three
#: dimensions; the bound keeps a crafted query string from costing anything).
MAX_ROW_DIMS = 8
MAX_DIM_VALUE = 200


@dataclass(frozen=True)
class Group:
    """One section of the overview: a heading and the figures under it, in order."""

    slug: str
    heading: str
    keys: tuple[str, ...]


#: The overview's sections. A catalogue figure no section names still shows, under "Other figures".
GROUPS: tuple[Group, ...] = (
    Group(
        "detections",
        "Detections",
        ("detections.daily", "detections.by_source", "detections.by_bank", "detections.by_classifier", "scans.volume"),
    ),
    Group("search", "Search and autocomplete", ("search.interventions",)),
    Group("cases", "Cases opened and closed", ("cases.daily", "cases.by_source")),
    Group("backlog", "Backlog and service levels", ("cases.backlog", "cases.sla")),
    Group("time", "Time to decision", ("decisions.time_to_decision",)),
    Group("decisions", "Decisions", ("decisions.by_outcome", "decisions.second_review")),
    Group("actions", "Actions: automatic and by people", ("actions.by_kind",)),
    Group("reports", "Reports to authorities", ("reports.by_authority",)),
    Group("user-reports", "Reports from users and appeals", ("user_reports.by_category", "appeals.by_outcome")),
    Group("errors", "False positives", ("errors.false_positives",)),
    Group("reviewers", "Reviewer exposure", ("reviewers.exposure",)),
    Group("exchanges", "Hash exchanges", ("exchanges.activity",)),
)


@dataclass(frozen=True)
class Headline:
    """One number at the top of the overview: ``value`` (None when it is not one number) printed as ``text``."""

    key: str
    label: str
    value: float | None
    unit: str
    text: str
    figure: str

    def record(self) -> dict:
        return {"key": self.key, "label": self.label, "value": self.value, "unit": self.unit, "text": self.text,
                "figure": self.figure}  # fmt: skip


@dataclass(frozen=True)
class Section:
    """A group with its figures for the period (the page draws each figure's chart and table)."""

    group: Group
    figures: tuple[Figure, ...]


@dataclass(frozen=True)
class Overview:
    figures: FigureSet
    headlines: tuple[Headline, ...]
    sections: tuple[Section, ...]

    @property
    def period(self) -> Period:
        return self.figures.period

    @property
    def empty(self) -> bool:
        """True when no figure counts anything (a new store, or a quiet period): no rows, or rows of zeros only
        (a daily figure lists every day of the period)."""
        return not any(counts(f, r) for f in self.figures.figures.values() for r in f.rows)

    def record(self) -> dict:
        """:meth:`FigureSet.record` with each figure's definition beside its rows (title, what it counts, unit,
        chart, filters it honours, whether it has a drill-down) and the headline numbers."""
        out = self.figures.record()
        for key, fig in out["figures"].items():
            spec = self.figures[key].spec
            fig.update(
                title=spec.title,
                counts=spec.counts,
                unit=spec.unit,
                chart=spec.chart,
                filters=list(spec.filters),
                dims=list(spec.dims),
                drill_down=spec.records is not None,
            )
        out["headlines"] = [h.record() for h in self.headlines]
        return out


def counts(figure: Figure, row: tuple) -> bool:
    """Whether a row of ``figure`` counts anything (a value that is not zero or empty)."""
    return any(charts.number(v) for v in row[len(figure.spec.dims) :])


def parse(period: str | None, filters: Mapping[str, str | None]) -> tuple[Period, dict[str, str]]:
    """The period and filters a request names, checked: ``transparency.bad_period`` (400) for a period
    :func:`parse_period` does not take, ``transparency.bad_filter`` (400) for an unknown filter or value."""
    clean = check_filters({k: (v or "").strip() for k, v in filters.items()})
    for name, value in clean.items():
        if value not in FILTER_VALUES[name]:
            raise SafeholdError(
                "transparency.bad_filter",
                f"Unknown {name} {value[:40]!r}; it is one of {', '.join(FILTER_VALUES[name])}.",
                status=400,
            )
    return parse_period(period), clean


def build(facts: Facts, period: Period, filters: dict[str, str]) -> Overview:
    """The overview of ``period``: every catalogue figure, in its section, and the headline numbers."""
    fs = facts.figures(period, filters)
    placed = {k for g in GROUPS for k in g.keys}
    groups = GROUPS + (Group("other", "Other figures", tuple(k for k in fs.figures if k not in placed)),)
    sections = tuple(
        Section(g, tuple(fs[k] for k in g.keys if k in fs.figures))
        for g in groups
        if any(k in fs.figures for k in g.keys)
    )
    return Overview(fs, _headlines(fs), sections)


def _total(fs: FigureSet, key: str, values: tuple[str, ...], where: Mapping[str, str] | None) -> float:
    """The sum of ``values`` of figure ``key`` over its rows whose dimensions match ``where`` (0 when the figure
    is absent)."""
    if key not in fs.figures:
        return 0
    rows = [r for r in fs[key].dicts() if all(r.get(d) == w for d, w in (where or {}).items())]
    return sum(r.get(v) or 0 for r in rows for v in values)


def _headlines(fs: FigureSet) -> tuple[Headline, ...]:
    ended = fs.period.end_at <= fs.as_of
    sums = (
        ("detections", "Detections", "detections.by_source", ("signals",), None),
        ("cases_opened", "Cases opened", "cases.daily", ("opened",), None),
        ("cases_closed", "Cases closed", "cases.daily", ("closed",), None),
        ("backlog", "Backlog at the end" if ended else "Backlog now", "cases.backlog", ("cases",), None),
        ("sla_breaches", "SLA breaches", "cases.sla", ("breached", "open_overdue"), None),
        ("reports_filed", "Reports filed", "reports.by_authority", ("reports",), {"status": "finished"}),
    )
    out = [
        Headline(key, label, n, "count", charts.fmt(n), figure)
        for key, label, figure, values, where in sums
        for n in [_total(fs, figure, values, where)]
    ]
    out.insert(5, _median_headline(fs))
    return tuple(out)


def _median_headline(fs: FigureSet) -> Headline:
    """The median time to decision. The figure has one row per priority band (medians of bands do not add up to
    one median), so the headline is the row for every band (``band`` empty or ``all``) when the figure has one, the
    only band's when one band was decided, else each band's median in one line."""
    key = "decisions.time_to_decision"
    rows = [r for r in fs[key].dicts() if r.get("decided")] if key in fs.figures else []
    whole = [r for r in rows if r["band"] in ("", "all")] or (rows if len(rows) == 1 else [])
    if whole:
        v = float(whole[0]["p50_seconds"] or 0)
        return Headline(
            "median_time_to_decision", "Median time to decision", v, "seconds", charts.fmt(v, "seconds"), key
        )
    text = " · ".join(f"{r['band']} {charts.fmt(float(r['p50_seconds'] or 0), 'seconds')}" for r in rows) or "—"
    return Headline("median_time_to_decision", "Median time to decision", None, "seconds", text, key)


def suggested_periods(today: dt.date) -> tuple[str, ...]:
    """What the period picker offers beside free text: the rolling windows, then this year, half, quarter and
    month and the month before."""
    last_month = today.replace(day=1) - dt.timedelta(days=1)
    return (
        *ROLLING,
        f"{today.year}",
        f"{today.year}-H{1 if today.month <= 6 else 2}",
        f"{today.year}-Q{(today.month - 1) // 3 + 1}",
        f"{today:%Y-%m}",
        f"{last_month:%Y-%m}",
    )


# ------------------------------------------------------------------------------------------------ drill-down


def drill_down_spec(key: str) -> FigureSpec:
    """The figure ``key``, if it has records to list: ``transparency.unknown_figure`` (404) for no such figure,
    ``transparency.no_records`` (400) for an aggregate the system keeps no per-item record of."""
    spec = CATALOGUE.get(key)
    if spec is None:
        raise SafeholdError("transparency.unknown_figure", f"No figure {key[:80]!r}.", status=404)
    if spec.records is None:
        raise SafeholdError(
            "transparency.no_records",
            f"{spec.title} is counted from aggregate counters: there are no records behind its rows to list.",
            status=400,
        )
    return spec


def parse_row(spec: FigureSpec, params: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The row a drill-down names from its query parameters: besides ``period`` and the filters, each is one of the
    figure's dimensions, at most once and at most :data:`MAX_DIM_VALUE` characters long. An empty value is the row
    whose dimension is empty; a dimension left out matches any value (as ``Facts.records`` takes it). A filter that
    is also a dimension of the figure (``source`` of ``detections.by_source``) is both: the row's value, and the
    filter when it is not empty. ``transparency.bad_row`` (400) otherwise."""
    reserved = {"period"} | (set(FILTERS) - set(spec.dims))
    items = [(k, v) for k, v in params if k not in reserved]
    if len(items) > MAX_ROW_DIMS:
        raise SafeholdError("transparency.bad_row", f"A row names at most {MAX_ROW_DIMS} dimensions.", status=400)
    row: dict[str, str] = {}
    for name, value in items:
        if name not in spec.dims:
            raise SafeholdError(
                "transparency.bad_row",
                f"{spec.key} has no dimension {name[:40]!r}; its dimensions are {', '.join(spec.dims)}.",
                status=400,
            )
        if name in row:
            raise SafeholdError("transparency.bad_row", f"The dimension {name!r} is named twice.", status=400)
        if len(value) > MAX_DIM_VALUE:
            raise SafeholdError(
                "transparency.bad_row", f"The value of {name!r} is over {MAX_DIM_VALUE} characters.", status=400
            )
        row[name] = value
    return row


def row_query(spec: FigureSpec, row: tuple) -> dict[str, str]:
    """The query parameters that name one of a figure's rows in a drill-down link."""
    return {d: "" if v is None else str(v) for d, v in zip(spec.dims, row, strict=False)}


def write_records_csv(
    facts: Facts,
    audit: AuditService,
    actor: str,
    key: str,
    period: Period,
    filters: dict[str, str],
    row: dict[str, str],
    out: IO[str],
) -> int:
    """Write the CSV of the records behind one row to ``out`` — every record, no row cap: ``case_id`` and the
    record's own ids, the columns of the first record — and record the listing in the audit log (it names cases).
    Returns how many records were written."""
    records = iter(facts.records(key, period, filters, row))
    first = next(records, None)
    writer = csv.DictWriter(out, list(first) if first is not None else ["case_id"], extrasaction="ignore",
                            lineterminator="\r\n")  # fmt: skip
    writer.writeheader()
    n = 0
    for rec in itertools.chain(() if first is None else (first,), records):
        writer.writerow(rec)
        n += 1
    audit.record(None, actor, "transparency.records", f"figure:{key}",
                 {"period": period.name, "filters": filters, "row": row, "records": n})  # fmt: skip
    return n


def records_file_name(key: str, period: Period) -> str:
    """``detections-by_source-2026-H1.csv``: the figure and the period (both checked: no quote, no slash)."""
    return f"{key.replace('.', '-')}-{period.name}.csv"
