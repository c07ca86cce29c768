"""What reporting tells evidence about reports (:class:`safehold.evidence.reports.Reports`): which reports need
which preserved items, for retention, and what a report's export package holds.

A report needs the evidence of the cases it bundles (``ReportCase``) and of the files it carries
(``ReportFile.evidence_id``). While it is unfinished (``draft``, ``submitted``, ``failed``: a failed report is fixed
and submitted again) it keeps that evidence; once ``finished``, the evidence's retention runs from ``finished_at``.
A retracted report needs nothing. Reporting owns these tables, so this is where they are read on evidence's behalf.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection

from sqlalchemy import Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from safehold.errors import NotFound
from safehold.evidence.reports import Claim, ReportPackage
from safehold.store.models import Report, ReportCase, ReportFile

#: Report statuses that still need their evidence.
UNFINISHED = ("draft", "submitted", "failed")
FINISHED = "finished"


class EvidenceFacts:
    """Reporting's answers to the evidence service; passed to it by the wiring (``safehold.services``)."""

    def claims(
        self, s: Session, case_ids: Collection[int], evidence_ids: Collection[int]
    ) -> tuple[dict[int, list[Claim]], dict[int, list[Claim]]]:
        return _claims(s, *_BY_CASE, case_ids), _claims(s, *_BY_ITEM, evidence_ids)

    def finished_before(self, cutoff: dt.datetime) -> tuple[Select, Select]:
        finished = (Report.status == FINISHED, Report.finished_at < cutoff)
        return _linked(*_BY_CASE).where(*finished), _linked(*_BY_ITEM).where(*finished)

    def package(self, s: Session, report_id: int) -> ReportPackage:
        report = s.get(Report, report_id)
        if report is None:
            raise NotFound("report.not_found", f"No report with id {report_id}.")
        files = list(s.scalars(select(ReportFile).where(ReportFile.report_id == report_id).order_by(ReportFile.id)))
        return ReportPackage(
            report_id=report_id,
            case_ids=list(s.scalars(select(ReportCase.case_id).where(ReportCase.report_id == report_id))),
            evidence_ids=[f.evidence_id for f in files if f.evidence_id is not None],
            document_sha256=report.document_sha256,
            record={**report.record(), "files": [_file_record(f) for f in files]},
        )


def _file_record(f: ReportFile) -> dict:
    """A file as the export records it: identity, upload progress and what the authority viewed."""
    viewed = {k: getattr(f, k) for k in ("viewed_by_esp", "exif_viewed_by_esp")}
    return {**f.record(), **viewed, "viewed": f.viewed or {}}


#: How a case and a preserved item are tied to the reports needing them: (the case's or item's id, the report's).
_BY_CASE = (ReportCase.case_id, ReportCase.report_id)
_BY_ITEM = (ReportFile.evidence_id, ReportFile.report_id)


def _linked(key: InstrumentedAttribute, report_id: InstrumentedAttribute, *columns: InstrumentedAttribute) -> Select:
    """``key`` (and ``columns`` of the report) for each report it is tied to, through ``report_id``'s table."""
    return select(key, *columns).join(Report, Report.id == report_id)


def _claims(
    s: Session, key: InstrumentedAttribute, report_id: InstrumentedAttribute, ids: Collection[int]
) -> dict[int, list[Claim]]:
    """The claims of the reports tied to each of ``ids``."""
    found: dict[int, list[Claim]] = defaultdict(list)
    if ids:
        rows = s.execute(_linked(key, report_id, Report.id, Report.status, Report.finished_at).where(key.in_(ids)))
        for id_, report, status, finished_at in rows:
            if (claim := _claim(report, status, finished_at)) is not None:
                found[id_].append(claim)
    return found


def _claim(report_id: int, status: str, finished_at: dt.datetime | None) -> Claim | None:
    if status in UNFINISHED:
        return Claim(report_id, unfinished=True)
    if status == FINISHED:
        return Claim(report_id, unfinished=False, finished_at=finished_at)
    return None
