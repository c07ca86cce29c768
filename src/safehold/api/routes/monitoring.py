"""Monitoring: ``/metrics`` for Prometheus (with a key), ``/livez`` and ``/readyz`` for probes (without one).

``/livez`` answers while the process can run Python at all (it touches nothing); ``/readyz`` says whether this
server can serve now (:class:`safehold.monitoring.Readiness`), 503 naming what is not ready. Neither says more than
``ok`` or a short reason per check, so they need no key, as ``/v1/health`` needs none.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from safehold.api.contract import ContractRoute
from safehold.api.deps import require
from safehold.auth.roles import Permission
from safehold.metrics import CONTENT_TYPE_LATEST, exposition
from safehold.monitoring import Readiness, state_registry

router = APIRouter(tags=["monitoring"], route_class=ContractRoute)


class Liveness(BaseModel):
    status: str = Field(description="Always `ok`: the process answers.")


class ReadinessBody(BaseModel):
    status: str = Field(description="`ok`, or `not_ready` (status 503).")
    checks: dict[str, str] = Field(
        description="Each check (`database`, `migrations`, `index`, and `redis` with SAFEHOLD_TASKS=celery) and "
        "`ok` or why not: `unreachable`, `behind` (migrations not at head), `loading`, `stale` (the index is not "
        "catching up: a bank change has waited more than SAFEHOLD_READY_MAX_INDEX_LAG_SECONDS), `unknown` (not "
        "checked: the database is not reachable)."
    )
    indexes: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="This process's matching index per signal type: `changes_behind` (bank changes in the store "
        "not applied to it yet) and `lag_seconds` (how long the oldest of them has waited; 0 when none waits).",
    )


def _monitor(request: Request):
    """This app's state gauges and readiness check, built once for its services."""
    state = request.app.state
    if getattr(state, "monitor", None) is None:
        svc = state.services
        state.monitor = (state_registry(svc), Readiness(svc))
    return state.monitor


async def livez() -> dict:
    # async and touching nothing: answered on the event loop even when every worker thread is busy.
    return {"status": "ok"}


async def readyz(request: Request) -> JSONResponse:
    checks, indexes = await run_in_threadpool(_monitor(request)[1].answer)
    ready = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if ready else "not_ready", "checks": checks, "indexes": indexes}
    return JSONResponse(body, status_code=200 if ready else 503)


router.add_api_route(
    "/livez",
    livez,
    methods=["GET"],
    response_model=Liveness,
    summary="Liveness: the process answers (no key needed)",
    route_class_override=APIRoute,
)
router.add_api_route(
    "/readyz",
    readyz,
    methods=["GET"],
    response_model=ReadinessBody,
    responses={503: {"model": ReadinessBody, "description": "Something is not ready: `checks` names it."}},
    summary="Readiness: database, schema, index, Redis (no key needed)",
    route_class_override=APIRoute,
)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "The metrics."}},
)
def metrics(request: Request, _=Depends(require(Permission.METRICS_READ))) -> Response:
    # A plain function: run in a worker thread, as the state gauges may query the database (every few seconds).
    return Response(exposition(_monitor(request)[0]), media_type=CONTENT_TYPE_LATEST)
