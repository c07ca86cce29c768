"""Downloads the API and the console both send.

Export packages: a package holds decrypted evidence, so it is built in a private temporary folder under the exports
directory and deleted once sent: no copy stays on the server. Stored transparency reports: their bytes as published.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from safehold.services import Services


def send_package(svc: Services, make: Callable[[Path], dict]) -> FileResponse:
    """Build an export package in a private temporary folder with ``make(dest_dir)`` and send it as a download;
    the folder is removed once the answer is sent (or at once if building it fails)."""
    svc.settings.exports_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=svc.settings.exports_dir))
    try:
        package = make(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    path = Path(package["path"])
    headers = {"X-Checksum-SHA256": package["sha256"], "Cache-Control": "no-store"}
    return FileResponse(
        path,
        media_type="application/zip",
        filename=path.name,
        headers=headers,
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )


def send_transparency_report(svc: Services, report_id: int) -> Response:
    """A stored transparency report's bytes exactly as published, with its media type, its file name and its
    SHA-256 (``X-Checksum-SHA256``)."""
    meta, content = svc.transparency.content(report_id)
    headers = {
        "Content-Disposition": f'attachment; filename="{meta["filename"]}"',
        "X-Checksum-SHA256": meta["content_sha256"],
    }
    return Response(content, media_type=meta["media_type"], headers=headers)
