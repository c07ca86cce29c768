"""Console pages. For now the start page: what is running and how to begin."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from safehold import __version__

router = APIRouter(include_in_schema=False)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Safehold</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#1d2430}}
code,pre{{background:#f1f3f6;border-radius:4px;padding:.1rem .3rem}} pre{{padding:.8rem;overflow:auto}}
h1{{margin-bottom:0}} .muted{{color:#5a6473}}
</style></head><body>
<h1>Safehold</h1><p class="muted">version {version}</p>
<p>The server is running. The HTTP API is documented at <a href="/docs">/docs</a>
(OpenAPI at <a href="/openapi.json">/openapi.json</a>). Every route except <code>/v1/health</code> needs an
API key.</p>
<h2>Start</h2>
<pre>.venv/bin/safehold apikey create --name me --role admin
.venv/bin/safehold bank create known-images
.venv/bin/safehold bank add known-images path/to/folder/
.venv/bin/safehold scan path/to/uploads/</pre>
<p>The walk-through is in <code>docs/quickstart.md</code>.</p>
</body></html>"""


@router.get("/", response_class=HTMLResponse)
def start_page() -> str:
    return PAGE.format(version=escape(__version__))
