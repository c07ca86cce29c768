"""Health, signal types, scan and search statistics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.routing import APIRoute

from safehold import __version__
from safehold.api.contract import ContractRoute
from safehold.api.deps import require, services
from safehold.auth.roles import Permission
from safehold.rules.search import variant_summary
from safehold.services import Services
from safehold.signals import registry

router = APIRouter(prefix="/v1", tags=["system"], route_class=ContractRoute)


async def health(svc: Services = Depends(services)) -> dict:
    # async, and touching no database: answered on the event loop, so it answers even while every worker
    # thread is busy (slow URL fetches, image decodes).
    return {"status": "ok", "version": __version__, "database": svc.db.engine.dialect.name}


# A plain APIRoute: no key, so none of the authenticated routes' error answers.
router.add_api_route(
    "/health", health, methods=["GET"], summary="Liveness and readiness (no key needed)", route_class_override=APIRoute
)


@router.get("/signal-types", summary="The signal types this server knows (built-in and plug-ins)")
def signal_types(_=Depends(require(Permission.BANKS_READ))) -> list[dict]:
    return [
        {
            "name": name,
            "description": cls.description,
            "matching": cls.matching,
            "default_threshold": cls.default_threshold,
            "max_threshold": cls.max_threshold,
        }
        for name, cls in sorted(registry.all_signal_types().items())
    ]


@router.get("/stats/scans", summary="Aggregate scan counters per day, channel, media and verdict")
def scan_stats(
    days: int = Query(30, ge=1, le=3660),
    svc: Services = Depends(services),
    _=Depends(require(Permission.STATS_READ)),
) -> dict:
    return {"days": days, "counts": svc.scans.stats(days), "index": svc.index.stats()}


@router.get("/seen", summary="The seen-hash store kept for re-matching past uploads, and how far re-matching got")
def seen_status(svc: Services = Depends(services), _=Depends(require(Permission.STATS_READ))) -> dict:
    return svc.rematch.status()


@router.get("/stats/search", summary="Aggregate search-guard counters per day, action, category, variant, locale")
def search_stats(
    days: int = Query(30, ge=1, le=3660),
    svc: Services = Depends(services),
    _=Depends(require(Permission.STATS_READ)),
) -> dict:
    counts = svc.search.stats(days)
    return {"days": days, "counts": counts, "variants": variant_summary(counts)}
