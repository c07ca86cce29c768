"""``/v1/transparency/…``: the overview's figures for a period and the records behind each figure's rows
(docs/transparency.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/transparency", tags=["transparency"])
