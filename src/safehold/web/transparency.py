"""The Overview page (the figures a trust-and-safety lead opens every morning, charts drawn on the server) and the
Transparency reports page (docs/transparency.md)."""

from __future__ import annotations

from fastapi import APIRouter

from safehold.web.deps import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
