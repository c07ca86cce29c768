"""The screening queue: images the banks did not match wait for the external services off the matching path; a
down service never delays a scan, a full queue skips and counts, a hit is a review case and never an action, and
a job whose worker died is taken again."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import func, select, update

from safehold.auth.apikeys import Principal
from safehold.screening.services.safer_standin import SaferStandIn
from safehold.store.models import ScreeningJob, ScreeningServiceRow, utcnow
from tests.media import jpeg
from tests.screening.conftest import KEY

PLATFORM = Principal(name="platform", role="platform", key_prefix="sh_one")
KNOWN, NEW = jpeg(7), jpeg(8)


@pytest.fixture
def banked(svc):
    svc.banks.create("known", created_by="test")
    svc.banks.add_file("known", KNOWN, filename="known.jpg", category="A1", external_id="x-7")
    return svc


def scan(svc, data: bytes, cid: str) -> dict:
    return svc.events.scanned(PLATFORM, svc.scans.scan_bytes(data), data, filename=f"{cid}.jpg", content_id=cid)


def jobs(svc, **where) -> list[ScreeningJob]:
    with svc.db.session() as s:
        query = select(ScreeningJob).order_by(ScreeningJob.id)
        for key, value in where.items():
            query = query.where(getattr(ScreeningJob, key) == value)
        found = s.scalars(query).all()
        s.expunge_all()
        return list(found)


def make_due(svc) -> None:
    """Move the clock: every job and service call slot is due now (back-offs elapsed)."""
    past = utcnow() - dt.timedelta(seconds=1)
    with svc.db.session() as s:
        s.execute(update(ScreeningJob).values(next_at=past))
        s.execute(update(ScreeningServiceRow).values(next_call_at=None))


def test_no_service_nothing_is_queued(banked):
    scan(banked, NEW, "c1")
    assert jobs(banked) == []


def test_a_down_service_never_delays_a_scan_and_its_job_is_retried(banked, google, configured):
    google.fail(503, times=2)
    known = scan(banked, KNOWN, "c-known")
    assert known["verdict"] == "match" and known["cases"]  # answered at once, from the banks
    new = scan(banked, NEW, "c-new")
    assert new["verdict"] == "no_match" and "cases" not in new
    [job] = jobs(banked)  # the matched image is not screened: only the new one
    assert (job.content_id, job.status, job.attempts) == ("c-new", "queued", 0)
    assert job.media is not None and NEW not in job.media  # sealed, never in clear

    assert banked.screening.run_once() == 1
    [job] = jobs(banked)
    assert (job.status, job.attempts, job.last_error_code) == ("queued", 1, "screening.unavailable")
    status = banked.screening.get("gcs")
    assert status["last_error"]["code"] == "screening.unavailable" and status["queue"]["queued"] == 1

    make_due(banked)
    banked.screening.run_once()
    make_due(banked)
    banked.screening.run_once()
    [job] = jobs(banked)
    assert (job.status, job.attempts, job.media) == ("done", 3, None)  # the media is gone once done
    assert banked.screening.get("gcs")["totals"]["sent"] == 1


def test_a_rate_limit_puts_the_whole_service_off(banked, google, configured):
    google.fail(429, retry_after=120)
    scan(banked, NEW, "c1")
    banked.screening.run_once()
    [job] = jobs(banked)
    assert job.status == "queued" and job.next_at >= utcnow() + dt.timedelta(seconds=100)
    with banked.db.session() as s:
        assert s.scalar(select(ScreeningServiceRow.next_call_at)) >= utcnow() + dt.timedelta(seconds=100)
    assert banked.screening.run_once() == 0  # nothing is called before the service said


def test_refused_credentials_fail_the_job_at_once_and_show_on_the_service(banked, google, configured):
    banked.screening.update("gcs", credentials={"api_key": "wrong-key-123456"})
    scan(banked, NEW, "c1")
    banked.screening.run_once()
    [job] = jobs(banked)
    assert (job.status, job.attempts, job.media, job.last_error_code) == ("failed", 1, None, "screening.auth")
    status = banked.screening.get("gcs")
    assert status["last_error"]["code"] == "screening.auth" and status["totals"]["failed"] == 1
    assert status["queue"] == {"queued": 0, "failed": 1}


def test_a_hit_becomes_a_review_case_and_never_an_action(banked, google, configured):
    banked.actions.create_policy("eager", "auto", {"source": "classifier"}, ["block_content"], actor="test")
    google.answer_for(NEW, "VERY_HIGH")
    scan(banked, NEW, "c-hit")
    banked.screening.run_once()
    [job] = jobs(banked)
    assert job.status == "done" and job.case_id and job.media is None
    case = banked.cases.get(job.case_id)
    assert case["source"] == "classifier" and case["actions"] == [] and not case["known_match"]
    [sig] = case["signals"]
    assert (sig["source"], sig["signal_type"], sig["category"]) == ("classifier", "gcs", "csam")
    assert sig["confidence"] == 0.9 and sig["detail"]["reasons"]["priority"] == "VERY_HIGH"
    assert case["items"][0]["has_media"]  # the case holds the image: the vault keeps it
    assert banked.screening.get("gcs")["totals"] == {"sent": 1, "hits": 1, "failed": 0, "skipped": 0}


def test_below_the_threshold_no_case_and_nothing_kept(banked, google, configured):
    google.answer_for(NEW, "LOW")
    scan(banked, NEW, "c-low")
    banked.screening.run_once()
    [job] = jobs(banked)
    assert job.status == "done" and job.case_id is None and job.result["hits"] == 0
    assert not any(p.is_file() for p in banked.settings.vault_dir.rglob("*"))


def test_a_full_queue_skips_and_counts(banked, google, configured, monkeypatch):
    monkeypatch.setattr(banked.settings, "screening_queue_max_jobs", 1)
    scan(banked, NEW, "c1")
    scan(banked, jpeg(9), "c2")  # over the bound: skipped, the scan answers all the same
    assert len(jobs(banked)) == 1
    assert banked.screening.get("gcs")["totals"]["skipped"] == 1
    monkeypatch.setattr(banked.settings, "screening_queue_max_bytes", len(NEW) + 100)
    monkeypatch.setattr(banked.settings, "screening_queue_max_jobs", 100)
    scan(banked, jpeg(10), "c3")  # bigger than what the bytes bound leaves
    assert len(jobs(banked)) == 1 and banked.screening.get("gcs")["totals"]["skipped"] == 2


def test_a_failing_store_never_fails_the_scan(banked, configured, monkeypatch, caplog):
    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(banked.screening, "_offer", broken)
    with caplog.at_level(logging.ERROR):
        assert scan(banked, NEW, "c1")["verdict"] == "no_match"
    assert "not screened" in caplog.text


def test_a_job_whose_worker_died_is_taken_again(banked, google, configured):
    google.answer_for(NEW, "VERY_LOW")
    scan(banked, NEW, "c1")
    taken = banked.screening._take()  # a worker takes the job, then dies before answering
    assert taken is not None
    make_due(banked)
    assert banked.screening.run_once() == 0  # leased: no one else takes it
    with banked.db.session() as s:  # the lease lapses
        s.execute(update(ScreeningJob).values(lease_until=utcnow() - dt.timedelta(seconds=1)))
    make_due(banked)
    assert banked.screening.run_once() == 1
    [job] = jobs(banked)
    assert (job.status, job.attempts) == ("done", 2)
    banked.screening._work(*taken)  # the dead worker comes back: its lease is gone, it changes nothing
    assert jobs(banked)[0].attempts == 2 and banked.screening.get("gcs")["totals"]["sent"] == 1


def test_credentials_are_sealed_and_never_shown_or_logged(banked, google, configured, caplog):
    with banked.db.session() as s:
        sealed = s.scalar(select(ScreeningServiceRow.credentials))
    assert sealed and KEY not in sealed
    assert KEY not in str(banked.screening.list()) and banked.screening.get("gcs")["has_credentials"]
    banked.screening.update("gcs", credentials={"api_key": "wrong-key-123456"})
    with caplog.at_level(logging.DEBUG):
        scan(banked, NEW, "c1")
        banked.screening.run_once()
    assert "wrong-key" not in caplog.text and KEY not in caplog.text


def test_a_disabled_service_gets_nothing(banked, google, configured):
    banked.screening.disable("gcs")
    scan(banked, NEW, "c1")
    with banked.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ScreeningJob)) == 0


def test_the_same_image_of_the_same_subject_is_queued_once(banked, configured):
    scan(banked, NEW, "c1")
    scan(banked, NEW, "c1")  # a retried upload
    scan(banked, NEW, "c2")  # another item: its own case, its own job
    assert [j.content_id for j in jobs(banked)] == ["c1", "c2"]


def test_the_background_task_works_the_queue(banked, google, configured):
    google.answer_for(NEW, "VERY_LOW")
    scan(banked, NEW, "c1")
    banked.tasks.run_now("screening.run")
    assert jobs(banked)[0].status == "done"


@pytest.fixture
def safer(banked):
    with SaferStandIn(api_key="safer-key-0123") as standin:
        banked.screening.create(
            "safer", "safer_predict", {**standin.settings(), "requests_per_minute": 6000}, standin.credentials()
        )
        yield standin


def scan_with(svc, data: bytes, cid: str, **age) -> dict:
    result = svc.scans.scan_bytes(data)
    return svc.events.scanned(PLATFORM, result, data, filename=f"{cid}.jpg", content_id=cid, **age)


def test_a_job_keeps_the_submissions_age_signal_and_the_pipelines_rule_judges_it(banked, safer):
    """Safer's pornography class (``explicit``) is legal for adults: with the scan's ``depicted_minor`` it is a
    case of apparent CSAM, as the local classifiers' hits are (Pipeline.judge, no twin)."""
    safer.predict(NEW, csam=0.02, pornography=0.95)
    scan_with(banked, NEW, "c-minor", depicted_minor=True)
    banked.screening.run_once()
    [job] = jobs(banked)
    assert job.age == {"reasons": ["depicted_minor"], "context": {}} and job.case_id
    [sig] = banked.cases.get(job.case_id)["signals"]
    assert (sig["signal_type"], sig["category"], sig["detail"]["label"]) == ("safer", "csam", "explicit")
    assert sig["detail"]["age"]["reasons"] == ["depicted_minor"]


def test_an_adult_legal_label_without_an_age_signal_opens_no_case(banked, safer):
    safer.predict(NEW, csam=0.02, pornography=0.95)
    scan_with(banked, NEW, "c-adult")
    banked.screening.run_once()
    [job] = jobs(banked)
    assert job.age is None and job.status == "done" and job.case_id is None and job.result["hits"] == 0


def test_a_child_abuse_label_opens_a_case_alone(banked, safer):
    safer.predict(NEW, csam=0.9, pornography=0.05)
    scan_with(banked, NEW, "c-csam")
    banked.screening.run_once()
    [job] = jobs(banked)
    [sig] = banked.cases.get(job.case_id)["signals"]
    assert (sig["category"], sig["detail"]["label"]) == ("csam", "csam") and "age" not in sig["detail"]


def test_the_uploaders_band_is_an_age_signal_for_a_service_too(banked, safer):
    banked.ages.record("test", "acct-teen", "platform", band="13-15")
    safer.predict(NEW, csam=0.02, pornography=0.95)
    result = banked.scans.scan_bytes(NEW)
    banked.events.scanned(PLATFORM, result, NEW, filename="n.jpg", account_id="acct-teen")
    banked.screening.run_once()
    [job] = jobs(banked)
    [sig] = banked.cases.get(job.case_id)["signals"]
    assert sig["category"] == "csam" and sig["detail"]["age"]["reasons"] == ["uploader_minor"]
    assert sig["detail"]["minor_at_risk"]
