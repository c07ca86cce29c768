"""The exchange service: configuration, sealed credentials, rounds that resume, leases, back-off, scheduling."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from sqlalchemy import func, select, update

from safehold.errors import SafeholdError
from safehold.signals import registry as signals
from safehold.store.models import AuditRecord, BankEntry, ExchangeRow, ExchangeUnknownSignal
from tests.media import jpeg
from tests.sharing.conftest import HOOK, md5_of

SECRET = "t0ken-value-123"


def entries(svc, bank: str = "shared") -> list[dict]:
    return svc.banks.entries(bank, limit=1000)


def row(svc, name: str = "acme") -> ExchangeRow:
    with svc.db.session() as s:
        r = s.scalars(select(ExchangeRow).where(ExchangeRow.name == name)).one()
        s.expunge(r)
        return r


def test_create_list_and_status_never_show_credentials(svc, scripted, caplog):
    caplog.set_level(logging.DEBUG)
    status = scripted(total=3)
    assert status["type"] == "scripted" and status["bank"] == "shared" and status["enabled"]
    assert status["has_credentials"] and status["every_seconds"] == 600
    assert status["settings"]["total"] == 3 and status["next_fetch_at"] is not None
    assert status["totals"] == {"fetched": 0, "added": 0, "removed": 0, "malformed": 0}
    assert [e["name"] for e in svc.exchanges.list()] == ["acme"]
    svc.exchanges.fetch_once("acme")
    shown = json.dumps([svc.exchanges.get("acme"), svc.exchanges.list()])
    assert SECRET not in shown and "token" not in shown
    # Sealed at rest, opened for the client only.
    assert row(svc).credentials and SECRET not in row(svc).credentials
    assert svc.exchanges.adapter("acme").credentials.token == SECRET
    with svc.db.session() as s:
        audit = {r.action: r.detail for r in s.scalars(select(AuditRecord))}
    assert audit["exchange.create"]["has_credentials"] is True and audit["exchange.fetch"]["added"] == 3
    assert SECRET not in json.dumps(audit) and SECRET not in caplog.text


def test_sealed_credentials_are_bound_to_the_exchange(svc, scripted):
    scripted("one")
    scripted("two", credentials={"token": "another-secret"})
    with svc.db.session() as s:
        s.execute(update(ExchangeRow).where(ExchangeRow.name == "two").values(credentials=row(svc, "one").credentials))
    with pytest.raises(SafeholdError):  # sealed for "one": refused when opened as "two"
        svc.exchanges.adapter("two")


def test_bad_settings_and_credentials_are_refused_without_echoing_them(svc, scripted):
    with pytest.raises(SafeholdError) as bad:
        svc.exchanges.create("x", "scripted", "shared", {"total": "many", "colour": "red"}, {"token": "s"})
    assert bad.value.code == "exchange.invalid_settings"
    assert "total" in bad.value.message and "colour" in bad.value.message and "many" not in bad.value.message
    with pytest.raises(SafeholdError) as bad:
        svc.exchanges.create("x", "scripted", "shared", {}, {"token": "a-leaked-secret", "password": "hunter2-zz"})
    assert bad.value.code == "exchange.invalid_credentials"
    assert "hunter2-zz" not in bad.value.message + json.dumps(bad.value.detail)
    with pytest.raises(SafeholdError) as bad:
        svc.exchanges.create("x", "scripted", "shared", {}, None)
    assert bad.value.code == "exchange.invalid_credentials" and "token" in bad.value.message
    for args, code in (
        (("x", "nosuch", "shared"), "exchange.unknown_type"),
        (("x", "scripted", "nobank"), "bank.not_found"),
        (("bad name!", "scripted", "shared"), "exchange.invalid_name"),
    ):
        with pytest.raises(SafeholdError) as bad:
            svc.exchanges.create(*args, {}, {"token": "t"})
        assert bad.value.code == code
    with pytest.raises(SafeholdError) as bad:
        svc.exchanges.create("x", "scripted", "shared", {}, {"token": "t"}, every_seconds=5)
    assert bad.value.code == "exchange.invalid_schedule"
    scripted("x")
    with pytest.raises(SafeholdError) as bad:
        scripted("x")
    assert bad.value.code == "exchange.exists"


def test_update_disable_enable_delete(svc, scripted):
    scripted()
    s = svc.exchanges.update("acme", settings={"total": 9}, every_seconds=3600, credentials={"token": "new-one-456"})
    assert s["settings"]["total"] == 9 and s["every_seconds"] == 3600
    assert svc.exchanges.adapter("acme").credentials.token == "new-one-456"
    assert svc.exchanges.disable("acme")["enabled"] is False
    assert svc.exchanges.get("acme")["next_fetch_at"] is None
    assert svc.exchanges.enable("acme")["enabled"] is True
    svc.exchanges.fetch_once("acme")
    svc.exchanges.delete("acme")
    with pytest.raises(SafeholdError) as gone:
        svc.exchanges.get("acme")
    assert gone.value.code == "exchange.not_found"
    assert len(entries(svc)) == 9  # what it added stays in the bank


def test_a_round_writes_entries_checkpoint_and_status(svc, scripted):
    scripted(total=5, per_batch=2)
    seen = []
    report = svc.exchanges.fetch_once("acme", progress=seen.append)
    assert report["added"] == 5 and report["batches"] == 4 and report["fetched"] == 5
    assert [p["added"] for p in seen] == [2, 4, 5, 5]
    got = entries(svc)
    assert sorted(e["value"] for e in got) == sorted(md5_of(i) for i in range(5))
    assert {e["source"] for e in got} == {"acme"} and {e["added_by"] for e in got} == {"exchange:acme"}
    r = row(svc)
    assert r.checkpoint == {"offset": 5} and r.lease_owner is None and r.last_success_at is not None
    status = svc.exchanges.get("acme")
    assert status["totals"]["added"] == 5 and status["last_error"] is None and status["last_round"]["added"] == 5
    again = svc.exchanges.fetch_once("acme")  # from the checkpoint: nothing new
    assert again["added"] == 0 and again["fetched"] == 0


def test_a_crash_keeps_committed_batches_and_the_next_round_resumes_without_duplicates(svc, scripted):
    scripted(total=10, per_batch=3, fail_after=2)
    with pytest.raises(SafeholdError) as failed:
        svc.exchanges.fetch_once("acme")
    assert failed.value.code == "exchange.unavailable"
    assert len(entries(svc)) == 6  # two batches committed
    r = row(svc)
    assert r.checkpoint == {"offset": 6} and r.lease_owner is None and r.failures == 1
    status = svc.exchanges.get("acme")
    assert status["last_error"]["code"] == "exchange.unavailable" and status["totals"]["added"] == 6
    svc.exchanges.update("acme", settings={"total": 10, "per_batch": 3})
    report = svc.exchanges.fetch_once("acme")
    assert report["added"] == 4
    values = [e["value"] for e in entries(svc)]
    assert len(values) == len(set(values)) == 10
    assert svc.exchanges.get("acme")["last_error"] is None and row(svc).failures == 0


def test_records_seen_twice_are_not_duplicated(svc, scripted):
    scripted(total=4, per_batch=2, repeat=True)
    report = svc.exchanges.fetch_once("acme")
    assert report["added"] == 4 and report["fetched"] == 8
    assert len(entries(svc)) == 4


def test_deletions_withdraw_and_a_republished_entry_comes_back(svc, scripted):
    scripted(total=3, per_batch=3, withdraw=["e1"])
    report = svc.exchanges.fetch_once("acme")
    assert report["removed"] == 1
    by_id = {e["external_id"]: e for e in entries(svc)}
    assert by_id["e1"]["enabled"] is False and by_id["e0"]["enabled"] is True
    with svc.db.session() as s:
        s.execute(update(ExchangeRow).values(checkpoint=None))  # the source publishes the list again
    svc.exchanges.update("acme", settings={"total": 3, "per_batch": 3})
    svc.exchanges.fetch_once("acme")
    assert all(e["enabled"] for e in entries(svc))
    assert svc.exchanges.get("acme")["totals"]["removed"] == 1


def test_hashes_of_unknown_types_are_kept_and_counted_once(svc, scripted):
    scripted(total=4, per_batch=2, unknown=3)
    report = svc.exchanges.fetch_once("acme")
    assert report["unknown"] == 3  # the same three in both batches
    with svc.db.session() as s:
        kept = s.scalars(select(ExchangeUnknownSignal)).all()
        assert {(u.signal_type, u.external_id) for u in kept} == {("PHOTODNA", f"u{k}") for k in range(3)}
    assert svc.exchanges.get("acme")["unknown_types"] == {"PHOTODNA": 3}
    assert len(svc.exchanges.unknown("acme")) == 3


def test_a_second_round_while_one_runs_is_busy(svc, scripted):
    scripted(total=4, per_batch=2)
    answers = []

    def second_round():
        with pytest.raises(SafeholdError) as busy:
            svc.exchanges.fetch_once("acme")
        answers.append(busy.value.code)

    HOOK.append(second_round)
    svc.exchanges.fetch_once("acme")
    assert answers == ["exchange.busy", "exchange.busy"]
    assert len(entries(svc)) == 4 and row(svc).lease_owner is None


def test_a_lapsed_lease_is_taken_over(svc, scripted):
    scripted(total=2)
    with svc.db.session() as s:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        s.execute(update(ExchangeRow).values(lease_owner="crashed-process", lease_until=past))
    assert svc.exchanges.fetch_once("acme")["added"] == 2


def test_a_retryable_error_backs_off_and_honours_retry_after(svc, scripted):
    scripted(total=4, per_batch=2, fail_after=1)
    before = dt.datetime.now(dt.UTC)
    with pytest.raises(SafeholdError):
        svc.exchanges.fetch_once("acme")
    wait = (row(svc).next_fetch_at - before).total_seconds()
    assert 45 <= wait <= 75  # the first retry: a minute, with jitter
    svc.exchanges.update("acme", settings={"total": 4, "per_batch": 2, "fail_after": 1, "retry_after": 900})
    with pytest.raises(SafeholdError):
        svc.exchanges.fetch_once("acme")
    assert (row(svc).next_fetch_at - before).total_seconds() >= 900


def test_an_error_an_operator_must_fix_keeps_the_schedule(svc, scripted):
    scripted(total=4, per_batch=2, fail_after=1, retryable=False)
    before = dt.datetime.now(dt.UTC)
    with pytest.raises(SafeholdError):
        svc.exchanges.fetch_once("acme")
    wait = (row(svc).next_fetch_at - before).total_seconds()
    assert 599 <= wait <= 602
    assert svc.exchanges.get("acme")["last_error"]["message"] == "the source went away"


def test_fetch_due_runs_enabled_exchanges_that_are_due(svc, scripted):
    scripted("due", total=1)
    scripted("later", total=1)
    scripted("off", total=1)
    svc.exchanges.disable("off")
    with svc.db.session() as s:
        future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        s.execute(update(ExchangeRow).where(ExchangeRow.name == "later").values(next_fetch_at=future))
    assert svc.exchanges.fetch_due() == 1
    assert svc.exchanges.get("due")["last_success_at"] is not None
    assert svc.exchanges.get("later")["last_success_at"] is None and svc.exchanges.get("off")["last_success_at"] is None
    assert svc.exchanges.fetch_due() == 0  # "due" is not due again for its period


def test_a_plug_in_bug_is_stored_and_does_not_stop_the_other_exchanges(svc, scripted):
    scripted("broken", bug=True)
    scripted("fine", total=1)
    assert svc.exchanges.fetch_due() == 2
    broken = svc.exchanges.get("broken")
    error = broken["last_error"]
    assert error["code"] == "exchange.failed" and "a bug in the plug-in" in error["message"]
    assert not broken["fetching"] and svc.exchanges.get("fine")["totals"]["added"] == 1


def test_the_scheduled_task_is_registered(svc):
    from safehold.background import UPKEEP, registry

    task = registry()["fetch.exchanges"]
    assert task.every(svc.settings) == svc.settings.exchange_poll_interval == 60
    assert "fetch.exchanges" not in UPKEEP  # it calls out: never part of an upkeep round
    assert task.run(svc) == 0


def test_the_task_engine_fetches_a_due_exchange(svc, scripted):
    scripted(total=3)
    assert svc.tasks.run_now("fetch.exchanges") == 1
    assert len(entries(svc)) == 3
    svc.maintain_once()  # upkeep never fetches
    assert svc.exchanges.get("acme")["totals"]["fetched"] == 3


def test_a_fetched_hash_matches_a_scan_within_seconds(svc, scripted, client, keys):
    photo = jpeg(11)
    pdq = next(s.value for s in signals.hash_content(photo, pdq_mode="reference").signals if s.type == "pdq")
    scripted(pdq=pdq)
    svc.exchanges.fetch_once("acme")
    svc.index.sync()
    files = {"file": ("upload.jpg", photo, "image/jpeg")}
    r = client.post("/v1/scan", headers=keys["platform"], files=files)
    assert r.status_code == 200, r.text
    assert [m["bank"] for m in r.json()["matches"]] == ["shared"]
    with svc.db.session() as s:
        assert s.scalar(select(func.count()).select_from(BankEntry).where(BankEntry.source == "acme")) == 1


def test_a_secret_field_is_sealed_as_the_secret_not_its_mask(svc):
    # NCMEC's password is a SecretStr, which a JSON dump shows as "**********": the client must get the real one.
    svc.banks.create("ncmec-list")
    creds = {"username": "esp", "password": "pw-Secret-1"}
    svc.exchanges.create("ncmec", "ncmec", "ncmec-list", settings={"environment": "test_industry"}, credentials=creds)
    assert svc.exchanges.adapter("ncmec").credentials.password.get_secret_value() == "pw-Secret-1"
    svc.exchanges.update("ncmec", credentials={"username": "esp", "password": "pw-Secret-2"})
    assert svc.exchanges.adapter("ncmec").credentials.password.get_secret_value() == "pw-Secret-2"
    assert "pw-Secret" not in row(svc, "ncmec").credentials
