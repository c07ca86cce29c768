"""Feedback to sources: a match on an entry fetched from an exchange, decided by a reviewer, reaches the exchange
as an opinion, queued, retried and visible per entry; contributions send a confirmed case's hashes, never media."""

from __future__ import annotations

import datetime as dt
import io
import threading

import pytest
from sqlalchemy import select

from safehold.auth.apikeys import Principal
from safehold.banks import formats
from safehold.banks.service import BANK_PDQ_MODE, exchange_publisher, file_records
from safehold.errors import SafeholdError
from safehold.sharing import registry
from safehold.sharing.base import ExchangeError
from safehold.sharing.base import Settings as ExchangeSettings
from safehold.signals import registry as registry_signals
from safehold.store.models import Bank, ExchangeRow, utcnow
from tests.media import jpeg
from tests.review.helpers import ALICE, BOB, SENIOR, audit_actions, media_case
from tests.sharing.fakes import FakeExchange, SilentExchange, rejected, unavailable

PLATFORM = Principal(name="platform", role="platform", key_prefix="sh_one")
LATER = dt.timedelta(days=2)


@pytest.fixture
def exchanges(svc, monkeypatch):
    """Two configured exchanges, ``peer`` (takes feedback and contributions) and ``feed`` (takes neither), each
    feeding its own bank; the services reach the stand-ins through their ``adapter_for``."""
    monkeypatch.setitem(registry.BUILTIN, "fakefb", ("tests.sharing.fakes", "FakeExchange"))
    monkeypatch.setitem(registry.BUILTIN, "silent", ("tests.sharing.fakes", "SilentExchange"))
    clients = {"peer": FakeExchange(ExchangeSettings()), "feed": SilentExchange(ExchangeSettings())}
    for name, type_name in (("peer", "fakefb"), ("feed", "silent")):
        bank = svc.banks.create(f"{name}-list")
        with svc.db.session() as s:
            s.add(ExchangeRow(name=name, type=type_name, bank_id=bank.id, settings={}))
    svc.feedback.adapter_for = svc.contributions.adapter_for = clients.__getitem__
    return clients


def publish(svc, exchange: str, data: bytes, external_id: str) -> None:
    """Add a file's hashes as a fetch of ``exchange`` stores them: ``source`` its name, published by it under the
    source's id (a no-op when already there)."""
    hashed = registry_signals.hash_content(data, pdq_mode=BANK_PDQ_MODE)
    records = file_records(hashed, source=exchange, external_id=external_id, category="A1")
    with svc.db.session() as s:
        ex = s.scalars(select(ExchangeRow).where(ExchangeRow.name == exchange)).one()
        bank_id, publisher = ex.bank_id, exchange_publisher(ex.id)
        bank = s.get(Bank, bank_id).name
    svc.banks.add_records(bank, records, publisher=publisher)


def matched_case(svc, exchange: str = "peer", seed: int = 1, content: str | None = None) -> int:
    """A case opened by a scan matching an entry the exchange published."""
    data = jpeg(seed)
    publish(svc, exchange, data, f"E-{seed}")
    out = svc.events.scanned(PLATFORM, svc.scans.scan_bytes(data), data, content_id=content or f"content-{seed}")
    [ref] = out["cases"]
    return ref["id"]


def decide(svc, case_id: int, decision: str, classification: str | None = None, who=ALICE) -> dict:
    svc.cases.claim(case_id, who.label)
    return svc.review.decide(case_id, who, decision, classification)


def entry_ids(svc, exchange: str = "peer") -> list[int]:
    return [e["id"] for e in svc.banks.entries(f"{exchange}-list")]


def test_a_false_positive_reaches_the_source(svc, exchanges):
    case_id = matched_case(svc)
    assert decide(svc, case_id, "not_violating")["status"] == "closed"
    assert svc.feedback.run_once() == 2  # the image's MD5 and PDQ entries, one opinion each
    peer = exchanges["peer"]
    assert {(o.signal_type, o.external_id, o.verdict, o.reason) for o in peer.opinions} == {
        ("md5", "E-1", "false_positive", "not_violating"),
        ("pdq", "E-1", "false_positive", "not_violating"),
    }
    for entry_id in entry_ids(svc):  # visible per entry
        [row] = svc.feedback.list(entry_id=entry_id)
        assert (row["exchange"], row["status"], row["attempts"], row["case_id"]) == ("peer", "sent", 1, case_id)
        assert row["sent_at"] and row["last_error"] is None
    [queued] = audit_actions(svc, "feedback.queue")
    assert queued["target"] == f"case:{case_id}" and len(queued["detail"]["opinions"]) == 2
    assert len(audit_actions(svc, "feedback.send")) == 2
    # Another round, or the same round run again elsewhere, sends nothing twice.
    assert svc.feedback.run_once() == 0 and svc.feedback.collect() == 0
    assert len(peer.opinions) == 2


def test_a_confirmed_match_is_a_true_positive_with_its_category(svc, exchanges):
    decide(svc, matched_case(svc), "csam", "B1")
    svc.feedback.run_once()
    assert {(o.verdict, o.reason, o.category) for o in exchanges["peer"].opinions} == {("true_positive", "csam", "B1")}


def test_a_source_that_takes_no_feedback_gets_nothing_queued(svc, exchanges):
    decide(svc, matched_case(svc, "feed"), "not_violating")
    assert svc.feedback.collect() == 0 and svc.feedback.list() == []


def test_an_import_source_named_like_the_exchange_gets_no_feedback(svc, exchanges):
    data = jpeg(3)
    svc.banks.add_file("peer-list", data, source="peer", external_id="M-3")  # a manual import, not the exchange
    out = svc.events.scanned(PLATFORM, svc.scans.scan_bytes(data), data, content_id="content-3")
    decide(svc, out["cases"][0]["id"], "not_violating")
    assert svc.feedback.collect() == 0 and exchanges["peer"].opinions == []


def test_each_exchange_publishing_the_entry_hears_its_own_id(svc, exchanges):
    with svc.db.session() as s:
        bank_id = s.scalars(select(ExchangeRow.bank_id).where(ExchangeRow.name == "peer")).one()
        s.add(ExchangeRow(name="peer2", type="fakefb", bank_id=bank_id, settings={}))
    other = FakeExchange(ExchangeSettings())
    clients = {**exchanges, "peer2": other}
    svc.feedback.adapter_for = clients.__getitem__
    publish(svc, "peer2", jpeg(1), "P2-1")
    decide(svc, matched_case(svc), "not_violating")
    svc.feedback.run_once()
    assert {o.external_id for o in exchanges["peer"].opinions} == {"E-1"}
    assert {o.external_id for o in other.opinions} == {"P2-1"}


def test_only_a_final_decision_is_sent(svc, exchanges):
    case_id = matched_case(svc)
    decide(svc, case_id, "escalate")
    assert svc.feedback.run_once() == 0 and exchanges["peer"].opinions == []
    svc.review.decide(case_id, SENIOR, "not_violating")
    assert svc.feedback.run_once() == 2
    assert {o.verdict for o in exchanges["peer"].opinions} == {"false_positive"}


def test_a_retryable_failure_is_retried_with_back_off_then_sent(svc, exchanges):
    peer = exchanges["peer"]
    peer.failures = [unavailable(), unavailable(retry_after=600)]
    decide(svc, matched_case(svc), "not_violating")
    t0 = utcnow()
    assert svc.feedback.run_once(now=t0, limit=1) == 1
    [row] = [r for r in svc.feedback.list() if r["attempts"]]
    assert (row["status"], row["last_error_code"]) == ("queued", "exchange.unavailable")
    assert dt.datetime.fromisoformat(row["next_at"]) > t0
    svc.feedback.deliver(now=t0 + dt.timedelta(hours=1), limit=8)
    # The rate limit's Retry-After (600 s) holds every opinion of that exchange, without counting an attempt.
    rows = svc.feedback.list()
    assert {r["last_error_code"] for r in rows} == {"exchange.rate_limited"} and peer.opinions == []
    assert all(dt.datetime.fromisoformat(r["next_at"]) >= t0 + dt.timedelta(seconds=4200) for r in rows)
    assert svc.feedback.deliver(now=t0 + dt.timedelta(hours=1)) == 0  # not due yet
    assert svc.feedback.deliver(now=t0 + LATER) == 2
    assert [r["status"] for r in svc.feedback.list()] == ["sent", "sent"] and len(peer.opinions) == 2


def test_a_refusal_fails_at_once_with_its_reason_and_an_operator_retries_it(svc, exchanges):
    exchanges["peer"].failures = [rejected()]
    decide(svc, matched_case(svc), "not_violating")
    svc.feedback.run_once(limit=1)
    [failed] = svc.feedback.list(status="failed")
    assert failed["attempts"] == 1 and failed["last_error_code"] == "exchange.rejected"
    assert "unknown entry" in failed["last_error"]
    assert audit_actions(svc, "feedback.fail")[0]["detail"]["code"] == "exchange.rejected"
    svc.feedback.run_once()
    assert svc.feedback.get(failed["id"])["status"] == "failed"  # a failed opinion waits for an operator
    assert svc.feedback.retry(failed["id"], actor="user:admin")["status"] == "queued"
    svc.feedback.run_once()
    assert svc.feedback.get(failed["id"])["status"] == "sent"
    with pytest.raises(SafeholdError) as e:
        svc.feedback.retry(failed["id"], actor="user:admin")
    assert e.value.code == "feedback.not_failed"


def test_the_last_attempt_fails(svc, exchanges):
    svc.feedback.settings = svc.settings.model_copy(update={"feedback_max_attempts": 2})
    exchanges["peer"].failures = [unavailable() for _ in range(4)]
    decide(svc, matched_case(svc), "not_violating")
    svc.feedback.run_once()
    svc.feedback.run_once(now=utcnow() + LATER)
    assert [(r["status"], r["attempts"]) for r in svc.feedback.list()] == [("failed", 2), ("failed", 2)]


def test_a_later_case_decided_the_other_way_corrects_the_opinion(svc, exchanges):
    peer = exchanges["peer"]
    decide(svc, matched_case(svc, content="a"), "not_violating")
    svc.feedback.run_once()
    decide(svc, matched_case(svc, content="b"), "csam", "A1")
    svc.feedback.run_once()
    decide(svc, matched_case(svc, content="c"), "not_violating")  # the source last heard true_positive
    svc.feedback.run_once()
    by_md5 = [o.verdict for o in peer.opinions if o.signal_type == "md5"]
    assert by_md5 == ["false_positive", "true_positive", "false_positive"]
    decide(svc, matched_case(svc, content="d"), "not_violating")  # nothing new to say
    assert svc.feedback.run_once() == 0


def test_a_stale_opinion_is_superseded_not_sent(svc, exchanges):
    decide(svc, matched_case(svc, content="a"), "not_violating")
    svc.feedback.collect()
    decide(svc, matched_case(svc, content="b"), "csam", "A1")
    svc.feedback.run_once()
    assert {o.verdict for o in exchanges["peer"].opinions} == {"true_positive"}
    assert {r["status"] for r in svc.feedback.list(status="superseded")} == {"superseded"}
    assert len(svc.feedback.list(status="superseded")) == 2


def test_an_opinion_superseded_on_the_wire_stays_superseded_and_the_latest_goes_last(svc, exchanges):
    """Was (a reviewer's race): an opinion leased, then superseded by a case decided the other way while its
    request was in flight, ended ``sent``, and the newer verdict could be sent before it, so the source's last
    word was the stale one."""
    peer = exchanges["peer"]
    decide(svc, matched_case(svc, content="c-1"), "not_violating")
    svc.feedback.collect()
    in_flight = svc.feedback._lease(utcnow(), 8)  # round A leases the false positives and starts sending
    assert {j.opinion.verdict for j in in_flight} == {"false_positive"}
    decide(svc, matched_case(svc, content="c-2"), "csam", "A1", who=BOB)
    assert svc.feedback.collect() == 2
    assert svc.feedback.deliver() == 0  # round B: the true positives wait while the other verdict is on the wire
    for job in in_flight:  # round A's requests succeed after all
        peer.send_feedback(job.opinion)
        svc.feedback._record(job, None, utcnow())
    rows = {r["verdict"]: r for r in svc.feedback.list() if r["signal_type"] == "md5"}
    assert rows["false_positive"]["status"] == "superseded" and rows["false_positive"]["sent_at"] is not None
    assert rows["true_positive"]["status"] == "queued"
    assert svc.feedback.deliver() == 2
    assert [o.verdict for o in peer.opinions if o.signal_type == "md5"] == ["false_positive", "true_positive"]
    assert {r["status"] for r in svc.feedback.list(status="sent")} == {"sent"}
    assert sum(bool(a["detail"].get("superseded")) for a in audit_actions(svc, "feedback.send")) == 2


def test_a_superseded_opinion_that_fails_on_the_wire_frees_the_newer_one_at_once(svc, exchanges):
    decide(svc, matched_case(svc, content="c-1"), "not_violating")
    svc.feedback.collect()
    in_flight = svc.feedback._lease(utcnow(), 8)
    decide(svc, matched_case(svc, content="c-2"), "csam", "A1", who=BOB)
    svc.feedback.collect()
    for job in in_flight:  # round A's requests fail
        svc.feedback._record(job, ExchangeError("exchange.unavailable", "down", retryable=True), utcnow())
    assert {r["status"] for r in svc.feedback.list() if r["verdict"] == "false_positive"} == {"superseded"}
    assert svc.feedback.deliver() == 2  # not a lease's length later
    assert {o.verdict for o in exchanges["peer"].opinions} == {"true_positive"}


def test_a_late_stale_send_queues_the_latest_verdict_again(svc, exchanges):
    """A stale opinion whose request outlived its lease lands after the newer verdict was sent: the newer one is
    queued again, so the source ends with our latest word."""
    peer = exchanges["peer"]
    decide(svc, matched_case(svc, content="c-1"), "not_violating")
    svc.feedback.collect()
    in_flight = svc.feedback._lease(utcnow(), 8)
    decide(svc, matched_case(svc, content="c-2"), "csam", "A1", who=BOB)
    svc.feedback.collect()
    assert svc.feedback.deliver(now=utcnow() + dt.timedelta(hours=1)) == 2  # round A's leases have lapsed
    for job in in_flight:
        peer.send_feedback(job.opinion)
        svc.feedback._record(job, None, utcnow())
    assert {r["verdict"] for r in svc.feedback.list(status="queued")} == {"true_positive"}
    svc.feedback.deliver(now=utcnow() + dt.timedelta(hours=1))
    assert [o.verdict for o in peer.opinions if o.signal_type == "md5"] == [
        "true_positive", "false_positive", "true_positive"
    ]  # fmt: skip


def test_two_senders_at_once_send_each_opinion_once(svc, exchanges):
    for seed in (1, 2, 3):
        decide(svc, matched_case(svc, seed=seed), "not_violating")
    assert svc.feedback.collect() == 6
    peer = exchanges["peer"]
    peer.delay = 0.05  # slow enough for the two rounds to overlap
    start = threading.Barrier(2)

    def round_() -> None:
        start.wait()
        svc.feedback.deliver(limit=8)

    threads = [threading.Thread(target=round_) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(peer.opinions) == 6 and len({(o.external_id, o.signal_type) for o in peer.opinions}) == 6
    assert [(r["status"], r["attempts"]) for r in svc.feedback.list()] == [("sent", 1)] * 6
    assert svc.feedback.deliver(now=utcnow() + LATER) == 0


# ------------------------------------------------------------------------------------------ contribution


def confirmed_new_material(svc, seed: int = 7) -> int:
    case_id, _ = media_case(svc, seed)
    decide(svc, case_id, "csam", "A2")
    svc.review.confirm(case_id, BOB, True)
    return case_id


def test_contribution_is_refused_for_an_unconfirmed_case(svc, exchanges):
    case_id, _ = media_case(svc, 8)
    for step in (None, ("csam", "A1")):
        if step:
            decide(svc, case_id, *step)  # awaiting the second reviewer
        with pytest.raises(SafeholdError) as e:
            svc.contributions.contribute(case_id, "peer", actor="user:sam")
        assert e.value.code == "contribution.not_confirmed"
    assert exchanges["peer"].contributed == []


def test_contribution_sends_hashes_only_once(svc, exchanges):
    case_id = confirmed_new_material(svc)
    out = svc.contributions.contribute(case_id, "peer", actor="user:sam")
    assert out["status"] == "sent" and out["accepted"] == out["hashes"]
    [records] = exchanges["peer"].contributed
    assert {r.signal_type for r in records} >= {"md5", "sha256", "pdq"}
    item = svc.cases.get(case_id)["items"][0]
    assert {r.value for r in records if r.signal_type in ("md5", "sha256")} == {item["md5"], item["sha256"]}
    for r in records:  # hashes and the finding: no filename, text, note or metadata of the case
        assert (r.category, r.note, r.metadata, r.source) == ("A2", None, {}, None)
        assert r.external_id == f"case:{case_id}:item:{item['id']}" and len(r.value) <= 256
    again = svc.contributions.contribute(case_id, "peer", actor="user:sam")
    assert again["duplicate"] is True and len(exchanges["peer"].contributed) == 1
    assert [a["detail"]["exchange"] for a in audit_actions(svc, "case.contribute")] == ["peer"]
    with pytest.raises(SafeholdError) as e:
        svc.contributions.contribute(case_id, "feed", actor="user:sam")
    assert e.value.code == "contribution.not_supported"


def test_a_failed_contribution_is_recorded_and_may_be_sent_again(svc, exchanges):
    case_id = confirmed_new_material(svc)
    exchanges["peer"].failures = [unavailable()]
    with pytest.raises(SafeholdError) as e:
        svc.contributions.contribute(case_id, "peer", actor="user:sam")
    assert e.value.code == "exchange.unavailable"
    assert svc.contributions.list(case_id)[0]["status"] == "failed"
    assert svc.contributions.contribute(case_id, "peer", actor="user:sam")["status"] == "sent"


def test_a_confirmed_case_exports_as_ncmec_xml(svc, exchanges):
    case_id = confirmed_new_material(svc)
    buf = io.BytesIO()
    assert svc.contributions.export(case_id, "ncmec-xml", buf, actor="user:sam")["entries"] == 1
    back = formats.read("ncmec-xml", io.BytesIO(buf.getvalue()), normalize=lambda t, v: v).all()
    assert {(r.signal_type, r.value) for r in back} == {
        (r.signal_type, r.value) for r in svc.contributions.hashes(case_id)
    }
    assert {r.category for r in back} == {"A2"}


def test_deleting_an_exchange_keeps_its_feedback_and_contributions_under_its_name(svc, exchanges, cli):
    """Was: the feedback and contribution rows went with the exchange (``ON DELETE CASCADE``)."""
    decide(svc, matched_case(svc, seed=1), "not_violating")
    assert svc.feedback.run_once() == 2  # sent
    decide(svc, matched_case(svc, seed=2), "not_violating")
    assert svc.feedback.collect() == 2  # queued, never to be sent
    case_id = confirmed_new_material(svc)
    svc.contributions.contribute(case_id, "peer", actor="user:sam")

    svc.exchanges.delete("peer", actor="test")
    rows = svc.feedback.list()
    assert len(rows) == 4 and {(r["exchange"], r["exchange_deleted"]) for r in rows} == {("peer", True)}
    assert sorted(r["status"] for r in rows) == ["sent", "sent", "unsupported", "unsupported"]
    assert [r["exchange"] for r in svc.feedback.list(exchange="peer")] == ["peer"] * 4
    [contribution] = svc.contributions.list(case_id)
    assert (contribution["exchange"], contribution["exchange_deleted"], contribution["status"]) == (
        "peer",
        True,
        "sent",
    )
    assert "peer (deleted)" in cli("feedback", "list").output
