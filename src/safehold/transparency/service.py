"""Stored transparency reports: generated once for a period in a format, kept exactly as published, and checkable
later against the records (docs/transparency.md, "Stored reports and reproducing them").

A report row keeps the rendered bytes and, beside them, everything that produced them: the figure set before
small-cell suppression (internal: it may hold small counts, so it is never served), its digest, the definitions
version, ``as_of``, the threshold, and the names printed on it. The bytes are rendered from that stored figure set
(after a JSON round trip), so re-rendering it later gives the same bytes as long as the format's code is unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re

from sqlalchemy import delete, func, select

from safehold.audit import AuditService
from safehold.config import Settings
from safehold.errors import NotFound, SafeholdError
from safehold.store.db import Database
from safehold.store.models import TransparencyReport, utcnow
from safehold.transparency.engine import Facts
from safehold.transparency.figures import VERSION, FigureSet
from safehold.transparency.formats import FORMATS, ReportContext, ReportFormat
from safehold.transparency.periods import ROLLING, Period, parse_period
from safehold.transparency.privacy import suppress

log = logging.getLogger(__name__)

#: Most reports one list answer holds.
MAX_LIST = 500
#: The ``content_sha256`` of a report allocated but not yet rendered (``generate``): no reader sees such a row.
PENDING = ""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class TransparencyService:
    def __init__(self, db: Database, audit: AuditService, facts: Facts, settings: Settings):
        self.db = db
        self.audit = audit
        self.facts = facts
        self.settings = settings

    # ------------------------------------------------------------------ generating

    def generate(self, period: str, format: str, actor: str, *, now: dt.datetime | None = None) -> dict:
        """Compute the figures of ``period`` as the records stand now, suppress small cells, render them in
        ``format``, store the report and audit it. Returns the report's metadata.

        A period that has not ended is allowed and the report is marked ``partial``; one that has not started is
        ``transparency.period_not_started`` (400)."""
        fmt = report_format(format)
        now = now or utcnow()
        parsed = _fixed(parse_period(period, today=now.date()))
        if parsed.start_at > now:
            raise SafeholdError(
                "transparency.period_not_started",
                f"The period {parsed.label()} has not started: there is nothing to report yet.",
                status=400,
            )
        record = _normalised(self.facts.figures(parsed, {}, as_of=now).record())
        k = self.settings.transparency_min_cell
        # The report's id is printed on it, and rendering a big PDF takes seconds: holding SQLite's writer lock
        # that long would stall scans and case writes. So the row is allocated in one short transaction (without
        # bytes: a pending row, which no reader sees), rendered outside any transaction, and completed with its
        # bytes and its audit record in a second short one; a failed render removes the pending row. Readers see
        # a report with its figures, bytes and audit record, or none.
        with self.db.session() as s:
            row = TransparencyReport(
                period_name=parsed.name,
                period_start=parsed.start,
                period_end=parsed.end,
                format=fmt.name,
                figures=record,
                figures_digest=FigureSet.from_record(record).digest(),
                definitions_version=record["version"],
                as_of=now,
                partial=now < parsed.end_at,
                min_cell=k,
                provider=self.settings.transparency_provider,
                service=self.settings.transparency_service,
                content=b"",
                content_sha256=PENDING,
                content_bytes=0,
                media_type=fmt.media_type,
                extension=fmt.extension,
                created_by=(actor or "system")[:128],
                created_at=now,
            )
            s.add(row)
            s.flush()
            report_id, context = row.id, _context(row)
        try:
            content = _render(fmt, record, context)
        except BaseException:
            with self.db.session() as s:
                s.execute(delete(TransparencyReport).where(TransparencyReport.id == report_id))
            raise
        with self.db.session() as s:
            row = s.get(TransparencyReport, report_id)
            row.content = content
            row.content_sha256 = hashlib.sha256(content).hexdigest()
            row.content_bytes = len(content)
            out = _meta(row)
            detail = {k: out[k] for k in ("format", "content_sha256", "figures_digest", "partial", "min_cell")}
            detail["period"] = parsed.name
            self.audit.record(s, actor, "transparency.report", f"transparency_report:{report_id}", detail)
        return out

    # ------------------------------------------------------------------ reading

    def list(self, limit: int = 50, offset: int = 0) -> dict:
        """Stored reports, newest first: ``{"total", "reports": [metadata…]}``."""
        limit = max(1, min(limit, MAX_LIST))
        with self.db.session() as s:
            total = s.scalar(select(func.count()).select_from(TransparencyReport).where(_published()))
            rows = s.scalars(
                select(TransparencyReport)
                .where(_published())
                .order_by(TransparencyReport.created_at.desc(), TransparencyReport.id.desc())
                .limit(limit)
                .offset(max(0, offset))
            ).all()
            return {"total": total, "reports": [_meta(r) for r in rows]}

    def get(self, report_id: int) -> dict:
        with self.db.session() as s:
            return _meta(_row(s, report_id))

    def content(self, report_id: int) -> tuple[dict, bytes]:
        """The report's metadata and its bytes exactly as published."""
        with self.db.session() as s:
            row = _row(s, report_id)
            return _meta(row), row.content

    # ------------------------------------------------------------------ verifying

    def verify(self, report_id: int) -> dict:
        """Check a stored report two ways (docs/transparency.md, "Stored reports and reproducing them"):

        - ``figures``: the figures of the same period with the same ``as_of``, computed from the records now,
          against the stored ones; ``differences`` names each figure that changed (a decision overturned, a case
          reopened, a late record) with its rows before and after;
        - ``rendering``: the stored figures rendered again in the report's format with the report's context,
          against the stored bytes (and the stored bytes against their recorded SHA-256).
        """
        with self.db.session() as s:
            row = _row(s, report_id)
            meta, stored, content = _meta(row), row.figures, row.content
            context = _context(row)
        then = FigureSet.from_record(stored)
        now_set = self.facts.figures(then.period, {}, as_of=then.as_of)
        current = _normalised(now_set.record())
        differences = _differences(stored, current)
        intact = hashlib.sha256(content).hexdigest() == meta["content_sha256"]
        fmt = FORMATS.get(meta["format"])
        if fmt is None:
            rendered, note = None, f"The format {meta['format']!r} is no longer installed: it cannot be re-rendered."
        else:
            rendered = hashlib.sha256(_render(fmt, stored, context)).hexdigest()
            note = "" if rendered == meta["content_sha256"] else "The format's output changed since the report."
        current_digest = FigureSet.from_record(current).digest()
        return {
            "id": report_id,
            "verified_at": utcnow().isoformat(),
            "figures": {
                "match": current_digest == meta["figures_digest"],
                "stored_digest": meta["figures_digest"],
                "current_digest": current_digest,
                "definitions_version": meta["definitions_version"],
                "current_definitions_version": VERSION,
                "differences": differences,
            },
            "rendering": {
                "content_intact": intact,
                "reproduced": intact and rendered == meta["content_sha256"],
                "rendered_sha256": rendered,
                "note": note,
            },
        }


def report_format(name: str) -> ReportFormat:
    """The registered format ``name``, or ``transparency.unknown_format`` (400) naming the ones there are."""
    fmt = FORMATS.get(name)
    if fmt is None:
        raise SafeholdError(
            "transparency.unknown_format",
            f"Unknown report format {str(name)[:40]!r}; the formats are {', '.join(sorted(FORMATS))}.",
            status=400,
        )
    return fmt


def _fixed(period: Period) -> Period:
    """A rolling window (``last-30d``) renamed to the days it covers: a stored report's period must name the same
    days tomorrow."""
    if period.name not in ROLLING:
        return period
    last = period.end - dt.timedelta(days=1)
    return Period(f"{period.start.isoformat()}..{last.isoformat()}", period.start, period.end)


def _normalised(record: dict) -> dict:
    """The record as the database gives it back (JSON values only), so what is rendered now is what is stored."""
    return json.loads(json.dumps(record, sort_keys=True, ensure_ascii=False))


def _context(row: TransparencyReport) -> ReportContext:
    return ReportContext(row.provider, row.service, row.created_at, row.min_cell, row.id)


def _render(fmt: ReportFormat, record: dict, context: ReportContext) -> bytes:
    """A report's bytes from its stored figure set, small cells suppressed. A format that fails is a clean
    ``transparency.render_failed`` (500), logged with its traceback (when generating, nothing is stored)."""
    figures = suppress(FigureSet.from_record(record), context.min_cell)
    try:
        return fmt.render(figures, context)
    except SafeholdError:
        raise
    except Exception as exc:
        log.exception("transparency report format %s failed", fmt.name)
        raise SafeholdError(
            "transparency.render_failed",
            f"The {fmt.name} format could not render the report ({type(exc).__name__}).",
            status=500,
        ) from exc


def _published():
    """Reports whose bytes are stored: not a pending one that ``generate`` is still rendering."""
    return TransparencyReport.content_sha256 != PENDING


def _row(s, report_id: int) -> TransparencyReport:
    row = s.get(TransparencyReport, report_id)
    if row is None or row.content_sha256 == PENDING:
        raise NotFound("transparency.report_not_found", f"No transparency report {report_id}.")
    return row


def filename(meta: dict) -> str:
    """``transparency-2026-H1-dsa-7.csv``: what a download is saved as."""
    name = _UNSAFE.sub("_", meta["period"]["name"])
    return f"transparency-{name}-{meta['format']}-{meta['id']}.{meta['extension']}"


def _meta(row: TransparencyReport) -> dict:
    fmt = FORMATS.get(row.format)
    period = Period(row.period_name, row.period_start, row.period_end)
    out = {
        "id": row.id,
        "period": period.record() | {"label": period.label()},
        "format": row.format,
        "title": fmt.title if fmt else row.format,
        "media_type": row.media_type,
        "extension": row.extension,
        "partial": row.partial,
        "as_of": row.as_of.isoformat(),
        "definitions_version": row.definitions_version,
        "figures_digest": row.figures_digest,
        "min_cell": row.min_cell,
        "provider": row.provider,
        "service": row.service,
        "content_sha256": row.content_sha256,
        "content_bytes": row.content_bytes,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
    }
    out["filename"] = filename(out)
    return out


def _differences(stored: dict, current: dict) -> list[dict]:
    """Each figure whose rows differ between two figure-set records: its key, the rows only in the stored one and
    the rows only in the current one (the numbers stay inside the system: verify is for staff)."""
    out = []
    before, after = stored["figures"], current["figures"]
    for key in sorted(set(before) | set(after)):
        old = before.get(key, {}).get("rows", [])
        new = after.get(key, {}).get("rows", [])
        if old == new and before.get(key, {}).get("columns") == after.get(key, {}).get("columns"):
            continue
        gone = [r for r in old if r not in new]
        added = [r for r in new if r not in old]
        out.append({"figure": key, "stored_rows": gone, "current_rows": added})
    return out
