"""The stand-in is faithful enough for Meta's python-threatexchange NCMEC client: both clients read the same
entries from it, and the peer's feedback calls are understood."""

from __future__ import annotations

import time

import pytest

from safehold.sharing.exchanges.ncmec import NcmecCredentials, NcmecExchange, NcmecSettings
from safehold.sharing.exchanges.ncmec_standin import REASONS, NcmecStandIn

api = pytest.importorskip("threatexchange.exchanges.clients.ncmec.hash_api")
tx_impl = pytest.importorskip("threatexchange.exchanges.impl.ncmec_api")

NOW = int(time.time())
T0 = NOW - 20 * 86400


@pytest.fixture
def standin():
    s = NcmecStandIn()
    s.generate(2345, start=T0, end=T0 + 10 * 86400)
    s.put(42, "extra", {"md5": "a" * 32, "pdna": "1,2,3"}, classification="A2", timestamp=T0 + 5)
    s.delete(2, "s1", timestamp=T0 + 11 * 86400)  # synthetic entry 1 belongs to member 2
    s.start()
    yield s
    s.stop()


def peer_client(url: str):
    client = api.NCMECHashAPI("esp", "secret", api.NCMECEnvironment.test_Industry)
    client._base_url = url  # the peer's environments are fixed URLs; point it at the stand-in
    return client


def ours(url: str) -> tuple[dict, set]:
    ex = NcmecExchange(NcmecSettings(base_url=url, lag_seconds=0), NcmecCredentials(username="esp", password="secret"))
    live: dict[str, dict[str, str]] = {}
    deleted: set[str] = set()
    for batch in ex.fetch(None):
        for r in batch.records:
            if r.is_tombstone:
                deleted.add(r.external_id)
                live.pop(r.external_id, None)
            else:
                live.setdefault(r.external_id, {})[r.signal_type] = r.value
        for u in batch.unknown:
            live.setdefault(u.external_id, {})[u.signal_type] = u.value
    return live, deleted


def as_ours(fingerprints: dict[str, str]) -> dict[str, str]:
    names = {"pdna": "photodna"}
    return {names.get(k, k): v for k, v in fingerprints.items()}


def test_peer_client_and_ours_read_the_same_entries(standin):
    peer_live: dict[str, dict[str, str]] = {}
    peer_deleted: set[str] = set()
    pages = 0
    for page in peer_client(standin.url).get_entries_iter(start_timestamp=0, end_timestamp=NOW):
        pages += 1
        for u in page.updates:
            key = f"{u.member_id}-{u.id}"
            if u.deleted:
                peer_deleted.add(key)
                peer_live.pop(key, None)
            else:
                peer_live[key] = as_ours(u.fingerprints)
    assert pages == 3  # 2346 entries, 1000 a page
    live, deleted = ours(standin.url)
    assert deleted == peer_deleted == {"2-s1"}
    assert live == peer_live
    assert len(live) == 2345 and live["42-extra"] == {"md5": "a" * 32, "photodna": "1,2,3"}


def test_hma_fetch_path_reads_everything(standin, monkeypatch):
    collab = tx_impl.NCMECCollabConfig(name="ncmec", environment=api.NCMECEnvironment.test_Industry)
    exchange = tx_impl.NCMECSignalExchangeAPI(collab, "esp", "secret")
    monkeypatch.setattr(exchange, "get_client", lambda env: peer_client(standin.url))
    merged: dict = {}
    for delta in exchange.fetch_iter([], None):
        for key, update in delta.updates.items():
            merged[key] = exchange.fetch_value_merge(merged.get(key), update)
    peer = {k: as_ours(v.fingerprints) for k, v in merged.items() if v is not None}
    assert peer == ours(standin.url)[0]


def test_peer_status_members_and_feedback(standin):
    client = peer_client(standin.url)
    assert client.status().esp_id == standin.member_id
    assert {m.esp_id for m in client.members()} == set(standin.members)
    assert client.feedback_reasons(api.FingerprintType.md5) == REASONS
    guid = next(iter(REASONS))
    client.submit_feedback(42, "extra", api.FingerprintType.md5, api.FeedbackType.upvote)
    client.submit_feedback(42, "extra", api.FingerprintType.pdna, api.FeedbackType.downvote, guid)
    assert standin.feedback == [
        {"member_id": 42, "entry_id": "extra", "type": "MD5", "vote": "affirmative"},
        {"member_id": 42, "entry_id": "extra", "type": "PDNA", "vote": "negative", "reasons": [guid]},
    ]
