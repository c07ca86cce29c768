"""The people-and-partners family: reports by authority and status, reviewer exposure against the cap, exchange
activity, each from records made through the real services and counted by hand."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from safehold.auth.apikeys import Principal
from safehold.store.models import Report, utcnow
from safehold.transparency.families import Fact
from safehold.transparency.families.people import People, band_of, status_at
from safehold.transparency.figures import CATALOGUE
from safehold.transparency.periods import Period
from tests.reporting.helpers import LEGAL, confirmed_case
from tests.review.helpers import media_case
from tests.sharing.conftest import scripted  # noqa: F401
from tests.sharing.test_feedback import confirmed_new_material, decide, exchanges, matched_case  # noqa: F401

FAMILY = People()


def around_today() -> Period:
    """Yesterday to tomorrow: the records made now fall inside, whatever the time of day the test runs."""
    today = utcnow().date()
    return Period("test", today - dt.timedelta(days=1), today + dt.timedelta(days=2))


def figures(svc, period: Period, as_of: dt.datetime | None = None) -> dict:
    """Roll the period up, then fill the figures from those facts alone (what the engine does with stored ones)."""
    with svc.db.session() as s:
        facts = list(FAMILY.rollup(s, period.start_at, period.end_at))

    def read(start: dt.date, end: dt.date) -> list[Fact]:
        return [f for f in facts if start <= f.day < end]

    with svc.db.session() as s:
        out = FAMILY.fill(read, s, period, {}, as_of or utcnow())
    return {k: [tuple(r) for r in f.rows] for k, f in out.items()}, facts


def records(svc, key: str, period: Period, row: dict) -> list[dict]:
    with svc.db.session() as s:
        return list(FAMILY.records(s, key, period, {}, row))


def report_for(svc, seed: int, authority: str, account: str) -> dict:
    case_id, _ = confirmed_case(svc, seed, account_id=account, content_id=f"content-{seed}")
    return svc.reports.draft_from_case(case_id, LEGAL, authority)


def test_reports_by_authority_and_status_at_the_end_of_the_period(svc):
    filed = report_for(svc, 1, "nca", "acct-1")
    before_submission = utcnow()
    svc.reports.submit(filed["id"], LEGAL)
    svc.reports.mark_filed(filed["id"], "NCA-123", LEGAL)
    retracted = report_for(svc, 2, "ncmec", "acct-2")
    svc.reports.retract(retracted["id"], LEGAL, "duplicate")
    draft = report_for(svc, 3, "nca", "acct-3")
    again = report_for(svc, 4, "nca", "acct-3")  # the same incident: one draft, two cases
    assert again["id"] == draft["id"]
    failed = report_for(svc, 5, "nca", "acct-5")
    svc.reports.submit(failed["id"], LEGAL)
    with svc.db.session() as s:  # what the filer writes when filing fails for good
        s.execute(update(Report).where(Report.id == failed["id"]).values(status="failed"))

    period = around_today()
    got, _ = figures(svc, period)
    assert got["reports.by_authority"] == [
        ("nca", "draft", 1, 2),
        ("nca", "finished", 1, 1),
        ("nca", "failed", 1, 1),
        ("ncmec", "retracted", 1, 1),
    ]
    # as of before the first submission: only the first report existed, and it was a draft
    early, _ = figures(svc, period, as_of=before_submission)
    assert early["reports.by_authority"] == [("nca", "draft", 1, 1)]
    # a period before today: nothing created in it
    yesterday = Period("y", period.start, period.start + dt.timedelta(days=1))
    assert figures(svc, yesterday)[0]["reports.by_authority"] == []

    rows = records(svc, "reports.by_authority", period, {"authority": "nca", "status": "draft"})
    assert [r["report_id"] for r in rows] == [draft["id"], draft["id"]]
    assert sorted(r["case_id"] for r in rows) == sorted(c["id"] for c in svc.reports.get(draft["id"])["cases"])


def test_status_at_reads_the_timestamps():
    engine = create_engine("sqlite://")
    Report.__table__.create(engine)
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    hour = dt.timedelta(hours=1)
    rows = {
        1: {"status": "finished", "submitted_at": t0 + hour, "finished_at": t0 + 2 * hour, "updated_at": t0 + 2 * hour},
        2: {"status": "failed", "submitted_at": t0 + hour, "updated_at": t0 + 3 * hour},
        3: {"status": "retracted", "retracted_at": t0 + hour, "updated_at": t0 + hour},
    }
    with Session(engine) as s:
        for i, r in rows.items():
            s.add(Report(id=i, incident_key=f"k{i}", created_by="test", created_at=t0, **r))
        s.flush()

        def at(report_id: int, k: int) -> str:
            return s.scalar(select(status_at(t0 + k * hour)).where(Report.id == report_id))

        assert [at(1, k) for k in (0, 1, 2)] == ["draft", "submitted", "finished"]
        assert [at(2, k) for k in (2, 3)] == ["submitted", "failed"]
        assert [at(3, k) for k in (0, 1)] == ["draft", "retracted"]


def test_exposure_bands_reviewer_days_by_share_of_the_effective_cap(svc):
    svc.wellness.set_defaults({"daily_cap": 4}, actor="user:admin")
    rita = svc.users.create("rita", "correct horse battery", "reviewer")
    svc.users.set_wellness(rita.id, {"daily_cap": 2}, actor="user:rita")
    bob = svc.users.create("bobby", "correct horse battery", "reviewer")
    as_rita = Principal(name="rita", role="reviewer", user_id=rita.id)
    as_bob = Principal(name="bobby", role="reviewer", user_id=bob.id)
    _, item1 = media_case(svc, 1)
    _, item2 = media_case(svc, 2, account_id="account-2")
    svc.review.reveal(item1, as_rita)
    svc.review.reveal(item2, as_rita)  # 2 of her own cap of 2
    svc.review.reveal(item1, as_bob)  # 1 of the admin's 4: 25 %

    period = around_today()
    got, facts = figures(svc, period)
    assert got["reviewers.exposure"] == [("25-50%", 1, 1), ("at the cap", 1, 2)]
    assert all("rita" not in str(f.dims) and "bobby" not in str(f.dims) for f in facts)  # no reviewer named
    # no drill-down: the cases a band's reveals went to would name the reviewer through each case's reveal history
    assert CATALOGUE["reviewers.exposure"].records is None
    assert records(svc, "reviewers.exposure", period, {"share_of_cap": "at the cap"}) == []


def test_exposure_bands():
    assert [band_of(n, 100) for n in (0, 24, 25, 50, 75, 99, 100, 120)] == [
        "under 25%",
        "under 25%",
        "25-50%",
        "50-75%",
        "75-99%",
        "75-99%",
        "at the cap",
        "at the cap",
    ]


def test_exchange_activity_received_shared_and_feedback(svc, exchanges, scripted):  # noqa: F811
    scripted("acme", total=5)
    svc.exchanges.fetch_once("acme")
    received = {e["id"] for e in svc.banks.entries("shared")}
    case_id = matched_case(svc)  # its entries were published to "peer" by an import, not fetched: not received
    decide(svc, case_id, "not_violating")
    assert svc.feedback.run_once() == 2
    shared = svc.contributions.contribute(confirmed_new_material(svc), "peer", actor="user:sam")

    period = around_today()
    got, _ = figures(svc, period)
    assert len(received) == 5 and got["exchanges.activity"] == [
        ("acme", "received", 5),
        ("peer", "shared", shared["hashes"]),
        ("peer", "disputed", 2),
    ]
    svc.exchanges.delete("acme", actor="tester")  # what was received stays received
    assert figures(svc, period)[0]["exchanges.activity"][0] == ("acme", "received", 5)
    rows = records(svc, "exchanges.activity", period, {"exchange": "acme", "direction": "received"})
    assert {r["entry_id"] for r in rows} == received
    rows = records(svc, "exchanges.activity", period, {"exchange": "peer", "direction": "disputed"})
    assert len(rows) == 2 and {r["case_id"] for r in rows} == {case_id}
    rows = records(svc, "exchanges.activity", period, {"exchange": "peer", "direction": "shared"})
    assert [r["contribution_id"] for r in rows] == [shared["id"]]
