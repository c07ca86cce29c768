"""``/v1/transparency/…``: the overview's figures for a period and the records behind each figure's rows
(docs/transparency.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse

from safehold.api.contract import ContractRoute
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.http.downloads import send_figure_records
from safehold.services import Services
from safehold.transparency import overview
from safehold.transparency.figures import CATALOGUE, FILTERS, VERSION
from safehold.transparency.periods import DEFAULT_OVERVIEW

router = APIRouter(prefix="/v1/transparency", tags=["transparency"], route_class=ContractRoute)

READ = Depends(require(Permission.TRANSPARENCY_READ))
#: The drill-down lists case ids, which are case records: it needs cases.read as well.
CASES = Depends(require(Permission.CASES_READ))

PeriodName = Annotated[
    str,
    Query(
        max_length=40,
        description="2026, 2026-H1, 2026-Q3, 2026-11, 2026-11-03, 2026-11-01..2026-11-30, or last-7d / last-30d / "
        "last-90d / last-365d (UTC days)",
    ),
]
Source = Annotated[
    Literal[("", *overview.FILTER_VALUES["source"])] | None,  # type: ignore[valid-type]
    Query(description="Only what this detector family opened or found (empty: every source)"),
]
Queue = Annotated[
    Literal[("", *overview.FILTER_VALUES["queue"])] | None,  # type: ignore[valid-type]
    Query(description="Only cases of this review queue (empty: every queue)"),
]


@router.get("/overview", summary="Every figure of the overview for a period, with its definition and headlines")
def get_overview(
    period: PeriodName = DEFAULT_OVERVIEW,
    source: Source = None,
    queue: Queue = None,
    svc: Services = Depends(services),
    _: Principal = READ,
) -> dict:
    p, filters = overview.parse(period, {"source": source, "queue": queue})
    return overview.build(svc.transparency_facts, p, filters).record()


@router.get("/figures", summary="The catalogue of figures: what each counts, its columns, its drill-down")
def figures(_: Principal = READ) -> dict:
    return {
        "version": VERSION,
        "filters": {name: list(overview.FILTER_VALUES[name]) for name in FILTERS},
        "figures": [
            {
                "key": s.key,
                "title": s.title,
                "dims": list(s.dims),
                "values": list(s.values),
                "counts": s.counts,
                "unit": s.unit,
                "chart": s.chart,
                "filters": list(s.filters),
                "records": s.records,
            }
            for s in CATALOGUE.values()
        ],
    }


@router.get(
    "/figures/{key}/records",
    summary="CSV of the records behind one row of a figure (every record, streamed); the row is named by its "
    "dimensions as query parameters (?source=hash_match)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def records(
    key: Annotated[str, Path(max_length=64, description="A figure's key, e.g. detections.by_source")],
    request: Request,
    period: PeriodName = DEFAULT_OVERVIEW,
    source: Source = None,
    queue: Queue = None,
    svc: Services = Depends(services),
    who: Principal = READ,
    _: Principal = CASES,
) -> StreamingResponse:
    filters = {"source": source, "queue": queue}
    return send_figure_records(svc, who.label, key, period, filters, request.query_params.multi_items())
