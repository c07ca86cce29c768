"""Downloads the API and the console both send.

Export packages: a package holds decrypted evidence, so it is built in a private temporary folder under the exports
directory and deleted once sent: no copy stays on the server. The records behind a transparency figure's row: a
CSV of every record, no row cap. Stored transparency reports: their bytes as published."""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from safehold.http.uploads import CHUNK
from safehold.services import Services
from safehold.transparency import overview


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


def send_figure_records(
    svc: Services, actor: str, key: str, period: str, filters: dict[str, str | None], params: list[tuple[str, str]]
) -> StreamingResponse:
    """The CSV of the records behind one row of figure ``key`` (``params``: the query string, which names the row):
    every record, no row cap. The API's drill-down and the console's are this one. The records are read into a
    spooled file first (memory, then disk past 16 MiB), as the bank and audit exports are: a failure is an error
    answer, never a download cut short that looks whole, and no database transaction waits on a slow client."""
    spec = overview.drill_down_spec(key)
    p, clean = overview.parse(period, filters)
    row = overview.parse_row(spec, params)
    buf = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
    try:
        text = io.TextIOWrapper(buf, encoding="utf-8", newline="")
        overview.write_records_csv(svc.transparency_facts, svc.audit, actor, key, p, clean, row, text)
        text.flush()
        text.detach()
        buf.seek(0)
    except BaseException:
        buf.close()
        raise

    def body():
        with buf:
            while chunk := buf.read(CHUNK):
                yield chunk

    name = overview.records_file_name(key, p)
    return StreamingResponse(
        body(), media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{name}"'}
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
