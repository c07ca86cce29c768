"""The Overview page (the figures a trust-and-safety lead opens every morning, charts drawn on the server) and the
Transparency reports page (docs/transparency.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from markupsafe import Markup

from safehold.auth.roles import Permission, demand
from safehold.http.downloads import send_figure_records
from safehold.services import Services
from safehold.transparency import charts, overview
from safehold.transparency.figures import FILTERS, Figure
from safehold.transparency.periods import Period
from safehold.web.deps import ConsoleRoute, Staff, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PeriodName = Annotated[str, Query(max_length=40)]
FilterValue = Annotated[str, Query(max_length=32)]


def asked(period: PeriodName = "", source: FilterValue = "", queue: FilterValue = "") -> tuple[Period, dict[str, str]]:
    """The period and filters the page's URL names, checked (an error page otherwise)."""
    return overview.parse(period, {"source": source, "queue": queue})


@router.get("/console/overview")
def overview_page(
    request: Request,
    who: Staff = Depends(staff(Permission.TRANSPARENCY_READ)),  # before the query: no error page for strangers
    query: tuple[Period, dict[str, str]] = Depends(asked),
    svc: Services = Depends(services),
) -> Response:
    p, filters = query
    ov = overview.build(svc.transparency_facts, p, filters)
    drill = who.can(Permission.CASES_READ)
    sections = [
        {"group": s.group, "figures": [_figure_view(f, p, filters, drill) for f in s.figures]} for s in ov.sections
    ]
    return page(
        request,
        "overview.html",
        ov=ov,
        sections=sections,
        filters=filters,
        choices=overview.FILTER_VALUES,
        periods=overview.suggested_periods(dt.datetime.now(dt.UTC).date()),
        json_href="/console/overview.json?" + urlencode({"period": p.name, **filters}),
    )


@router.get("/console/overview.json")
def overview_json(
    who: Staff = Depends(staff(Permission.TRANSPARENCY_READ)),  # before the query: no error page for strangers
    query: tuple[Period, dict[str, str]] = Depends(asked),
    svc: Services = Depends(services),
) -> Response:
    """The same record as ``GET /v1/transparency/overview``, for a signed-in browser (the API takes keys only)."""
    return JSONResponse(overview.build(svc.transparency_facts, *query).record())


@router.get("/console/overview/records/{key}")
def overview_records(
    request: Request,
    key: str = Path(max_length=64),
    period: PeriodName = "",
    source: FilterValue = "",
    queue: FilterValue = "",
    who: Staff = Depends(staff(Permission.TRANSPARENCY_READ)),
    svc: Services = Depends(services),
) -> Response:
    """The CSV of the records behind one row, as ``GET /v1/transparency/figures/{key}/records`` streams it: it
    lists case ids, so it needs ``cases.read`` as well."""
    route = f"{request.method} {request.url.path}"
    demand(svc.audit, who.role, who.label, Permission.CASES_READ, route, "list the records behind a figure")
    filters = {"source": source, "queue": queue}
    return send_figure_records(svc, who.label, key, period, filters, request.query_params.multi_items())


def _figure_view(fig: Figure, period: Period, filters: dict[str, str], drill: bool) -> dict:
    """What the page draws for one figure: its chart as inline SVG, its rows as printed, a drill-down link per
    row (for a figure with records, to someone who may read cases) and the totals of its count columns."""
    spec = fig.spec
    chart = charts.chart_for(fig, period.each_day() if spec.chart == "line" else None)
    anchor = "fig-" + spec.key.replace(".", "-")
    units = [None] * len(spec.dims) + [charts.column_unit(v) for v in spec.values]
    kept = {k: v for k, v in filters.items() if k not in spec.dims}
    rows = []
    for r in fig.rows:
        cells = [_cell(v, unit) for v, unit in zip(r, units, strict=True)]
        href = None
        if drill and spec.records is not None and overview.counts(fig, r):  # a row of zeros has nothing to list
            query = {"period": period.name, **kept, **overview.row_query(spec, r)}
            href = f"/console/overview/records/{spec.key}?{urlencode(query)}"
        rows.append({"cells": cells, "href": href})
    totals = [charts.fmt(fig.total(v)) if charts.column_unit(v) == "count" else "" for v in spec.values]
    return {
        "spec": spec,
        "anchor": anchor,
        "svg": Markup(charts.svg(chart, anchor + "-chart")) if chart else None,  # noqa: S704 -- charts.svg escapes
        "rows": rows,
        "drill": drill and spec.records is not None,
        "totals": totals,
        "note": fig.note,
        "filtered": [f for f in FILTERS if f in filters and f not in spec.filters],
    }


def _cell(value, unit: str | None) -> str:
    """A table cell as printed: a dimension as it is ("(none)" when empty), a value in its unit, a suppressed
    cell ("<10") as it stands."""
    if unit is None:
        return "(none)" if value in ("", None) else str(value)
    n = charts.number(value)
    return str(value) if n is None and value is not None else charts.fmt(n or 0.0, unit)
