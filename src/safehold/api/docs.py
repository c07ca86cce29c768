"""The interactive API reference at ``/docs``, served entirely by this process: no CDN, no other host.

FastAPI's own ``/docs`` page loads Swagger UI's script and stylesheet from a CDN and its favicon from FastAPI's
website, so without internet it is a blank page, and with internet every reader tells a third party they are
reading it. Here the page, a small start-up script and Swagger UI's files are all answered from the package:
the files come from the ``fastapi-offline`` distribution (MIT; Swagger UI 5, which reads the OpenAPI 3.1 that
FastAPI writes), looked up by exact name so no path from a request reaches the disk. The page is sent with a
Content-Security-Policy that lets it load and fetch from this origin only, so a default that points elsewhere
(Swagger UI's spec validator, say) is blocked even if a future bundle turns it back on.

Only Swagger UI is offered: ReDoc (``/redoc``) is dropped, since it needs more (web workers, injected styles)
for a second view of the same schema. ``safehold.app.create_app`` turns FastAPI's own ``docs_url`` and
``redoc_url`` off.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from safehold.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS = "/docs/assets"
_BUNDLE = Path(fastapi_offline.__file__).parent / "static"
#: Swagger UI's two files, by the name the page asks for: nothing else in the distribution is served.
FILES = {name: _BUNDLE / name for name in ("swagger-ui-bundle.js", "swagger-ui.css")}
TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

#: Starts Swagger UI. A file rather than an inline script, so the page's CSP can forbid inline code; it reads the
#: schema's address from the page. ``validatorUrl: null`` stops the badge that would send the schema to
#: validator.swagger.io; ``BaseLayout`` has no top bar asking for a URL to explore.
INIT_JS = """\
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.spec,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
});
"""

#: Swagger UI sets element styles from script and uses ``data:`` images in its stylesheet; nothing leaves the origin.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
ASSET_HEADERS = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}

PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · API reference</title>
<link rel="icon" href="/console/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<script src="{assets}/swagger-ui-bundle.js" defer></script>
<script src="{assets}/init.js" defer></script>
</head>
<body>
<div id="swagger-ui" data-spec="{spec}"></div>
<noscript>The interactive reference needs JavaScript; the schema itself is at <a href="{spec}">{spec}</a>.</noscript>
</body>
</html>
"""


@router.get("/docs")
def reference(request: Request) -> HTMLResponse:
    app = request.app
    html = PAGE.format(title=escape(app.title), assets=ASSETS, spec=escape(app.openapi_url))
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get(f"{ASSETS}/init.js")
def init_script() -> Response:
    return Response(INIT_JS, media_type=TYPES[".js"], headers=ASSET_HEADERS)


@router.get(f"{ASSETS}/{{name}}")
def asset(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise NotFound("request.not_found", f"No API reference file {name!r}.")
    return FileResponse(path, media_type=TYPES[path.suffix], headers=ASSET_HEADERS)
