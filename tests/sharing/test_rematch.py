"""Re-matching past uploads: an earlier upload is found when its hash arrives in a bank, once."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from sqlalchemy import func, select

from safehold.auth.apikeys import Principal
from safehold.banks.formats import EntryRecord
from safehold.services import Services
from safehold.sharing.rematch import CURSOR_KEY
from safehold.store.models import AppSetting, Case, CaseSignal, SeenHash, utcnow
from tests.media import jpeg

PLATFORM = Principal(name="platform", role="platform", key_prefix="sh_one")
IMAGE = jpeg(41)


@pytest.fixture
def on(settings):
    s = Services(settings.model_copy(update={"seen_hashes": True}))
    yield s
    s.close()


def upload(svc, cid: str, data: bytes = IMAGE, account: str | None = "acct-1") -> dict:
    """A platform scan naming the content (the API's and ``safehold scan --record``'s door)."""
    scan = svc.scans.scan_bytes(data, filename=f"{cid}.jpg")
    out = svc.events.scanned(PLATFORM, scan, data, filename=f"{cid}.jpg", content_id=cid, account_id=account)
    return {s["type"]: s["value"] for s in out["signals"]}


def cases_of(svc, cid: str) -> list[Case]:
    with svc.db.session() as s:
        return s.scalars(select(Case).where(Case.content_id == cid)).all()


def signals_of(svc, case_id: int) -> list[CaseSignal]:
    with svc.db.session() as s:
        return s.scalars(select(CaseSignal).where(CaseSignal.case_id == case_id)).all()


def stored(svc) -> int:
    with svc.db.session() as s:
        return s.scalar(select(func.count()).select_from(SeenHash))


def rematch(svc) -> int:
    """One round as the task runs it, once the entries added so far are older than the round's lag."""
    svc.tasks.run_now("counters.flush")  # the scans' buffered hashes
    return svc.rematch.run_once(now=utcnow() + svc.rematch.lag)


def test_an_earlier_upload_is_found_when_its_hash_arrives(on):
    on.banks.create("shared", created_by="test")
    assert rematch(on) == 0  # the first round starts at the log's end
    hashes = upload(on, "c-1")
    assert cases_of(on, "c-1") == []  # no bank knows it yet
    assert rematch(on) == 0 and stored(on) == len(hashes)

    on.banks.add_hash("shared", "pdq", hashes["pdq"], category="A2", external_id="ex-1", added_by="test")
    assert rematch(on) == 1
    [case] = cases_of(on, "c-1")
    assert case.source == "rematch" and case.account_id == "acct-1"
    [sig] = signals_of(on, case.id)
    assert (sig.source, sig.bank, sig.signal_type, sig.distance) == ("hash_match", "shared", "pdq", 0)
    assert sig.detail["rematch"]["seen_at"] and sig.detail["rematch"]["entry_added_at"]
    assert sig.detail["external_id"] == "ex-1"

    # A retried round (the cursor not saved: a crash) and a manual run over the same entries open nothing more.
    with on.db.session() as s:
        cursor = s.get(AppSetting, CURSOR_KEY)
        cursor.value = {"seq": cursor.value["seq"] - 1}
    assert rematch(on) == 1
    out = on.rematch.run_since(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert out.entries == 1 and out.cases == [case.id]
    assert len(cases_of(on, "c-1")) == 1 and len(signals_of(on, case.id)) == 1


def test_an_event_with_a_file_is_remembered_and_re_matched(on):
    on.banks.create("shared", created_by="test")
    rematch(on)
    body = {"type": "content", "content": {"id": "c-11"}}
    on.events.ingest(PLATFORM, body, file=IMAGE, filename="up.jpg", idempotency_key="k-11")
    on.banks.add_hash("shared", "md5", hashlib.md5(IMAGE).hexdigest())
    rematch(on)
    [case] = cases_of(on, "c-11")
    assert case.source == "rematch" and [s.signal_type for s in signals_of(on, case.id)] == ["md5"]


def test_a_fetched_entry_of_an_exact_type_matches_too(on):
    on.banks.create("feed", created_by="test")
    rematch(on)
    upload(on, "c-2")
    sha = hashlib.sha256(IMAGE).hexdigest()
    on.banks.add_records("feed", [EntryRecord(signal_type="sha256", value=sha, source="exchange")], added_by="x")
    rematch(on)
    [case] = cases_of(on, "c-2")
    [sig] = signals_of(on, case.id)
    assert (sig.signal_type, sig.value, sig.confidence) == ("sha256", sha, 1.0)


def test_banks_that_open_no_case_and_allow_banks(on):
    on.banks.create("quiet", on_match="none", created_by="test")
    on.banks.create("block", created_by="test")
    on.banks.create("fine", kind="allow", created_by="test")
    rematch(on)
    hashes = upload(on, "c-3")
    other = upload(on, "c-4", jpeg(42))
    on.banks.add_hash("quiet", "pdq", hashes["pdq"])
    on.banks.add_hash("fine", "pdq", other["pdq"])  # a known false positive...
    on.banks.add_hash("block", "pdq", other["pdq"])  # ...then blocked: the allow bank still vouches for it
    rematch(on)
    assert cases_of(on, "c-3") == [] and cases_of(on, "c-4") == []


def test_off_by_default_nothing_is_kept(svc):
    svc.banks.create("shared", created_by="test")
    hashes = upload(svc, "c-5")
    svc.tasks.run_now("counters.flush")
    svc.banks.add_hash("shared", "pdq", hashes["pdq"])
    assert svc.tasks.run_now("seen.rematch") == 0
    assert stored(svc) == 0 and cases_of(svc, "c-5") == []
    assert svc.rematch.status()["enabled"] is False


def test_retention_purge_and_old_hashes_are_not_rematched(on):
    on.banks.create("shared", created_by="test")
    rematch(on)
    hashes = upload(on, "c-6")
    upload(on, "c-7", jpeg(43))
    on.seen.flush()
    with on.db.session() as s:
        old = s.scalars(select(SeenHash).where(SeenHash.content_id == "c-6")).all()
        for row in old:
            row.seen_at -= dt.timedelta(days=91)
    on.banks.add_hash("shared", "pdq", hashes["pdq"])
    rematch(on)
    assert cases_of(on, "c-6") == []  # seen before the retention: not re-matched
    before = stored(on)
    assert on.seen.purge() == len(old)
    assert stored(on) == before - len(old)
    assert on.seen.purge() == 0  # at most once an hour


def test_a_clean_shutdown_keeps_the_buffered_hashes(settings):
    s = Services(settings.model_copy(update={"seen_hashes": True}))
    upload(s, "c-8")
    assert s.seen.pending > 0
    s.close()
    again = Services(settings, load_index=False)
    try:
        assert stored(again) > 0
    finally:
        again.close()


def test_status_route_and_commands(on, cli, keys, client):
    upload(on, "c-9")
    on.seen.flush()
    out = client.get("/v1/seen", headers=keys["admin"])
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["count"] == stored(on) > 0 and body["oldest"]
    assert client.get("/v1/seen", headers=keys["platform"]).status_code == 403


def test_cli_status_and_manual_rematch(on, cli, monkeypatch):
    from safehold.config import get_settings

    on.banks.create("shared", created_by="test")
    rematch(on)
    hashes = upload(on, "c-10")
    on.seen.flush()
    on.banks.add_hash("shared", "pdq", hashes["pdq"])
    monkeypatch.setenv("SAFEHOLD_SEEN_HASHES", "true")
    get_settings.cache_clear()

    status = json.loads(cli("seen", "status", "--json").output)
    assert status["count"] == stored(on) and status["enabled"] is True
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    result = json.loads(cli("seen", "rematch", "--since", since, "--json").output)
    [case] = cases_of(on, "c-10")
    assert result["entries"] == 1 and result["cases"] == [case.id]


def test_cli_rematch_with_the_store_off(cli):
    assert "seen.disabled" in cli("seen", "rematch", "--since", "2020-01-01", code=2).output


@pytest.mark.parametrize("few", [0, 128], ids=["chunk-indexed", "entries-indexed"])
def test_both_sides_of_the_index_find_the_same_candidates(monkeypatch, few):
    """Many new entries are the queries against each chunk's index, a few are the index: the same answer."""
    from safehold.sharing import rematch as rm
    from safehold.store.seen import Seen

    monkeypatch.setattr(rm, "FEW_NEW", few)
    at = dt.datetime.now(dt.UTC)
    near = "f" * 62 + "00"  # 8 bits from "f" * 64
    entries = [
        rm.NewEntry(1, 10, "pdq", "f" * 64, at),
        rm.NewEntry(2, 11, "sha256", "ab" * 32, at),
        rm.NewEntry(3, 12, "pdq", "0" * 64, at),
    ]
    rows = [
        Seen(1, "pdq", near, "c-1", None, at),
        Seen(2, "sha256", "ab" * 32, "c-2", None, at),
        Seen(3, "sha256", "cd" * 32, "c-3", None, at),
        Seen(4, "pdq", "0f" * 32, "c-4", None, at),  # 128 bits from both entries
    ]
    found = rm.candidates(entries, {"pdq": 31, "sha256": 0}, [rows[:2], rows[2:]])
    assert sorted((c.seen.content_id, c.entry_id, c.distance) for c in found) == [("c-1", 10, 8), ("c-2", 11, 0)]


def test_an_auto_bank_re_match_opens_a_case_for_review_and_runs_no_action(on, monkeypatch):
    """Old content matched by a brand-new entry gets a human look, never an automatic action."""
    on.banks.create("auto", created_by="test")
    on.banks.update("auto", on_match="auto", actor="test")
    rematch(on)
    hashes = upload(on, "c-auto")
    acted = []
    monkeypatch.setattr(on.actions, "for_detection", lambda *a: acted.append(a) or [], raising=False)
    on.banks.add_hash("auto", "pdq", hashes["pdq"], added_by="test")
    assert rematch(on) == 1
    [case] = cases_of(on, "c-auto")
    assert acted == []
    [sig] = signals_of(on, case.id)
    assert sig.detail["rematch"]["review_only"] is True


def test_a_flooding_entry_is_quarantined_inside_the_round_and_opens_a_bounded_number_of_cases(settings):
    svc = Services(settings.model_copy(update={"seen_hashes": True, "flood_min_matches": 2}))
    try:
        svc.banks.create("shared", created_by="test")
        rematch(svc)
        contents = [f"c-flood-{i}" for i in range(5)]
        for cid in contents:  # the same harmless picture, uploaded five times
            hashes = upload(svc, cid)
        svc.banks.add_hash("shared", "pdq", hashes["pdq"], added_by="test")
        svc.seen.flush()
        out = svc.rematch.run_since(utcnow() - dt.timedelta(hours=1))
        assert len(out.cases) == 2 and out.not_opened == 3 and len(out.quarantined) == 1
        assert sum(len(cases_of(svc, cid)) for cid in contents) == 2
        assert cases_of(svc, "c-flood-4") and not cases_of(svc, "c-flood-0")  # the most recent uploads first
        [quarantined] = svc.quarantine.quarantined()
        reason = quarantined["quarantine"]["reason"]
        assert quarantined["id"] == out.quarantined[0]
        assert (reason["rule"], reason["matches"], reason["cases_opened"], reason["not_opened"]) == (
            "rematch_flood", 5, 2, 3
        )  # fmt: skip
        assert [r["target"] for r in svc.audit.list(action="entry.quarantine")] == [f"entry:{quarantined['id']}"]
        [case] = cases_of(svc, "c-flood-4")
        assert signals_of(svc, case.id)[0].detail["rematch"]["flood"]["matches"] == 5
    finally:
        svc.close()


def test_a_round_waits_for_the_sightings_still_in_a_buffer(on):
    """Was: an upload scanned just before its entry arrived waited in its process's buffer; a round that read the
    store first missed it and moved its cursor past the entry for good."""
    on.banks.create("shared", created_by="test")
    rematch(on)
    hashes = upload(on, "c-late")  # buffered, not yet flushed
    on.banks.add_hash("shared", "pdq", hashes["pdq"], added_by="test")
    assert on.rematch.run_once() == 0  # the entry is younger than the lag: not taken yet
    assert on.rematch.lag >= dt.timedelta(seconds=on.settings.index_sync_interval)
    on.seen.flush()  # the scanning process's flush, within the lag
    assert on.rematch.run_once(now=utcnow() + on.rematch.lag) == 1
    assert len(cases_of(on, "c-late")) == 1
