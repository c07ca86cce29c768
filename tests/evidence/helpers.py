"""Cases with preserved evidence (benign generated images and synthetic text), and report rows made directly
with the models (the report service is not needed to test retention)."""

from __future__ import annotations

import datetime as dt

from safehold.cases.service import Detection, DetectionSignal
from safehold.store.models import EvidenceItem, Report, ReportCase, ReportFile
from tests.review.helpers import media_case

LEGAL = "legal:lee"
DAY = dt.timedelta(days=1)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def preserved(svc, seed: int = 1, **kw) -> tuple[int, dict]:
    """A case about one generated image, preserved: (case id, the image's evidence record)."""
    case_id, item_id = media_case(svc, seed, **kw)
    svc.evidence.preserve_case(case_id, LEGAL)
    return case_id, svc.evidence.for_item(item_id)


def text_case(svc, text: str = "synthetic message for a test", **kw) -> int:
    detection = Detection(
        source="grooming",
        content_id=kw.pop("content_id", "message-1"),
        account_id=kw.pop("account_id", "account-9"),
        signals=[DetectionSignal(source="grooming", category="grooming", confidence=0.8)],
        text=text,
        **kw,
    )
    return svc.cases.record(detection, actor="apikey:platform").id


def backdate(svc, evidence_id: int, days: int) -> None:
    with svc.db.session() as s:
        s.get(EvidenceItem, evidence_id).preserved_at = now() - days * DAY


def report(svc, case_id: int, status: str, *, finished_days_ago: int | None = None, evidence_id=None) -> int:
    """A report row bundling ``case_id`` (and carrying ``evidence_id`` as a file when given)."""
    with svc.db.session() as s:
        finished = now() - finished_days_ago * DAY if finished_days_ago is not None else None
        r = Report(incident_key=f"case:{case_id}", status=status, created_by=LEGAL, finished_at=finished, fields={})
        s.add(r)
        s.flush()
        s.add(ReportCase(report_id=r.id, case_id=case_id))
        if evidence_id is not None:
            e = s.get(EvidenceItem, evidence_id)
            s.add(ReportFile(report_id=r.id, evidence_id=e.id, sha256=e.sha256, md5=e.md5, filename=e.filename))
        return r.id


def audit(svc, action: str) -> list[dict]:
    return svc.audit.list(limit=1000, action=action)
