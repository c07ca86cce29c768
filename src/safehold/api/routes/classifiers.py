"""Classifiers of new material: which run, their policy and thresholds, their reviewed precision, and scoring an
image without recording anything (docs/classifiers.md)."""

from __future__ import annotations

from fastapi import APIRouter

from safehold.api.contract import ContractRoute

router = APIRouter(prefix="/v1", tags=["classifiers"], route_class=ContractRoute)
