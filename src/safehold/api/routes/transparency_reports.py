"""``/v1/transparency/reports…``: generate a transparency report for a period in a format, list the stored ones,
download one as it was published, verify it against the records (docs/transparency.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/transparency/reports", tags=["transparency"])
