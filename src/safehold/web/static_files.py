"""The console's own CSS and JavaScript, served from the package (no CDN). Public: the log-in page needs them,
and they hold nothing secret."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from safehold.errors import NotFound
from safehold.web.render import STATIC_DIR

router = APIRouter(include_in_schema=False)

TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
#: Only the files shipped in web/static, looked up by exact name: no path from the request reaches the disk.
FILES = {p.name: p for p in STATIC_DIR.iterdir() if p.suffix in TYPES}


@router.get("/console/static/{name}")
def static(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise NotFound("request.not_found", f"No static file {name!r}.")
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type=TYPES[path.suffix], headers=headers)
