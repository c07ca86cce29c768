"""Confirmed cases to report (benign generated images), and ways to look at what the stand-in received."""

from __future__ import annotations

from sqlalchemy import update

from safehold.store.models import Report
from tests.review.helpers import ALICE, BOB, media_case

LEGAL = "legal:lee"


def confirmed_case(
    svc, seed: int = 1, *, decision: str = "csam", classification: str = "A1", known: bool = True, **kw
) -> tuple[int, int]:
    """A closed case with a violating finding: a known match decided once, or new material confirmed by a second
    reviewer. Returns (case id, item id)."""
    case_id, item_id = media_case(svc, seed, known=known, **kw)
    svc.cases.claim(case_id, ALICE.label)
    svc.review.decide(case_id, ALICE, decision, classification)
    if not known:
        svc.review.confirm(case_id, BOB, True)
    return case_id, item_id


def draft(svc, seed: int = 1, **kw) -> dict:
    case_id, _ = confirmed_case(svc, seed, **kw)
    return svc.reports.draft_from_case(case_id, LEGAL)


def lapse_lease(svc, report_id: int) -> None:
    """What time does to a dead run's lease: it lapses, and the report can be filed again."""
    with svc.db.session() as s:
        s.execute(update(Report).where(Report.id == report_id).values(lease_until=None))


def as_bytes(xml: bytes | str) -> bytes:
    return xml.encode() if isinstance(xml, str) else xml


def about(standin, account_id: str) -> list:
    """The stand-in's reports about ``account_id`` (its id is the reported user's ``espIdentifier``)."""
    return [r for r in standin.reports.values() if f">{account_id}<".encode() in as_bytes(r.xml)]


def finished_for(standin, account_id: str) -> list:
    return [r for r in about(standin, account_id) if r.finished]


def audit_actions(svc, action: str, report_id: int | None = None) -> list[dict]:
    records = svc.audit.list(limit=1000, action=action)
    return [r for r in records if report_id is None or r["target"] == f"report:{report_id}"]
