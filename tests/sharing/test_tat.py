"""Tech Against Terrorism (TCAP): our exchange against the local stand-in (token auth, keyset paging, deletions,
types, faults, resuming), and python-threatexchange's own TCAP client against the same stand-in."""

from __future__ import annotations

import pytest

from safehold.sharing import registry
from safehold.sharing.base import ExchangeError, Opinion
from safehold.sharing.exchanges.tat import TATCredentials, TATExchange, TATSettings
from safehold.sharing.exchanges.tat_standin import TATStandIn
from tests.sharing.replay import apply, live

PASSWORD = "tcap-test-password"
PDQ = ["%064x" % (0xC1 + i) for i in range(5)]
MD5 = "00112233445566778899aabbccddeeff"
SHA256 = "ab" * 32


@pytest.fixture
def standin():
    server = TATStandIn()
    server.start()
    yield server
    server.stop()


def exchange(standin, *, password=PASSWORD, **settings) -> TATExchange:
    return TATExchange(
        TATSettings(base_url=standin.url, **{"page_size": 2, **settings}),
        TATCredentials(username="platform", password=password),
        timeout=5,
    )


def pairs(batches):
    return {(r.signal_type, r.value) for b in batches for r in b.records}


def test_registered_under_its_type_name():
    assert registry.get("tat") is TATExchange


def test_pages_by_checkpoint_and_the_next_round_reads_only_changes(standin):
    for value in PDQ:
        standin.add("PDQ", value)
    ex = exchange(standin)
    batches = list(ex.fetch(None))
    assert [len(b.records) for b in batches] == [2, 2, 1]
    assert [b.done for b in batches] == [False, False, True]
    assert pairs(batches) == {("pdq", v) for v in PDQ}
    assert all("offset" not in str(b.checkpoint) for b in batches)
    standin.add("MD5", MD5.upper(), file_type="mp4")
    later = list(ex.fetch(batches[-1].checkpoint))
    assert pairs(later) == {("md5", MD5)} and later[-1].records[0].metadata == {"ideology": "islamist",
                                                                                 "file_type": "mp4"}  # fmt: skip


def test_deleted_entries_become_tombstones(standin):
    ids = [standin.add("PDQ", value) for value in PDQ[:3]]
    ex = exchange(standin)
    state = apply(first := list(ex.fetch(None)))
    standin.delete(ids[0])
    second = list(ex.fetch(first[-1].checkpoint))
    assert [r.external_id for b in second for r in b.records] == [str(ids[0])]
    assert live(apply(second, state)) == {("pdq", PDQ[1]), ("pdq", PDQ[2])}


def test_types_map_and_unknown_algorithms_are_kept(standin):
    standin.add("PDQ", PDQ[0])
    standin.add("MD5", MD5)
    standin.add("SHA256", SHA256)
    standin.add("SHA512", "cd" * 64)
    standin.add("TMK", "tmk-serialised", file_type="mp4")
    batches = list(exchange(standin, page_size=10).fetch(None))
    assert pairs(batches) == {("pdq", PDQ[0]), ("md5", MD5), ("sha256", SHA256)}
    assert {(u.signal_type, u.value) for b in batches for u in b.unknown} == {("SHA512", "cd" * 64),
                                                                              ("TMK", "tmk-serialised")}  # fmt: skip


def test_malformed_entries_are_counted_and_the_rest_kept(standin):
    standin.add("PDQ", PDQ[0])
    standin.add("PDQ", "zz")
    standin.add_raw({"id": 900, "hash_digest": PDQ[1]}, key="no-algorithm")
    standin.add_raw({"hash_digest": PDQ[2], "algorithm": "PDQ"}, key="no-id")
    batches = list(exchange(standin, page_size=10).fetch(None))
    assert sum(b.malformed for b in batches) == 3
    assert pairs(batches) == {("pdq", PDQ[0])}


def test_out_of_order_entries_in_a_page_change_nothing(standin):
    standin.scramble = True
    for value in PDQ:
        standin.add("PDQ", value)
    assert live(apply(exchange(standin).fetch(None))) == {("pdq", v) for v in PDQ}


def test_a_rate_limit_is_retryable_with_its_delay(standin):
    standin.add("PDQ", PDQ[0])
    standin.fail(429, retry_after=12)
    with pytest.raises(ExchangeError) as err:
        list(exchange(standin).fetch(None))
    assert err.value.code == "exchange.rate_limited" and err.value.retry_after == 12 and err.value.retryable


def test_a_server_error_mid_round_keeps_what_was_read(standin):
    for value in PDQ:
        standin.add("PDQ", value)
    ex = exchange(standin)
    fetch = ex.fetch(None)
    first = next(fetch)
    standin.fail(503)
    with pytest.raises(ExchangeError) as err:
        next(fetch)
    assert err.value.code == "exchange.unavailable" and err.value.retryable
    rest = list(ex.fetch(first.checkpoint))
    assert live(apply([first, *rest])) == {("pdq", v) for v in PDQ}


def test_wrong_credentials_are_an_auth_error_without_the_password(standin):
    exchange(standin).check()
    ex = exchange(standin, password="not-the-password")
    for call in (lambda: list(ex.fetch(None)), ex.check):
        with pytest.raises(ExchangeError) as err:
            call()
        assert err.value.code == "exchange.auth" and not err.value.retryable
        assert "not-the-password" not in err.value.message


def test_an_expired_token_is_renewed_once(standin):
    for value in PDQ:
        standin.add("PDQ", value)
    fetch = exchange(standin).fetch(None)
    first = next(fetch)
    standin.expire_tokens()
    rest = list(fetch)
    assert live(apply([first, *rest])) == {("pdq", v) for v in PDQ}
    assert sum(1 for method, path, _ in standin.requests if path == "/token-auth/tcap/") == 2


def test_resuming_from_a_mid_round_checkpoint_gives_the_same_final_set(standin):
    ids = [standin.add("PDQ", value) for value in PDQ]
    standin.delete(ids[1])
    ex = exchange(standin)
    full = live(apply(ex.fetch(None)))
    fetch = ex.fetch(None)
    first = next(fetch)
    fetch.close()
    resumed = apply(ex.fetch(first.checkpoint), apply([first]))
    assert live(resumed) == full == {("pdq", v) for v in PDQ} - {("pdq", PDQ[1])}


def test_max_pages_bounds_a_round(standin):
    for value in PDQ:
        standin.add("PDQ", value)
    ex = exchange(standin, max_pages=1)
    (first,) = list(ex.fetch(None))
    assert not first.done and len(first.records) == 2


def test_feedback_is_not_supported(standin):
    with pytest.raises(ExchangeError) as err:
        exchange(standin).send_feedback(
            Opinion(external_id="1", signal_type="pdq", value=PDQ[0], verdict="false_positive")
        )
    assert err.value.code == "exchange.not_supported"


def test_python_threatexchange_tcap_client_reads_the_same_entries(standin, monkeypatch):
    api = pytest.importorskip("threatexchange.exchanges.clients.techagainstterrorism.api")
    standin.default_limit = 2  # its client sends no limit: page it by the list's default
    ids = [standin.add("PDQ", value, ideology="far-right") for value in PDQ]
    standin.add("MD5", MD5, file_type="mp4")
    standin.delete(ids[2])
    monkeypatch.setattr(api.TATHashListAPI, "BASE_URL", standin.url)
    client = api.TATHashListAPI("platform", PASSWORD)
    theirs = {}
    pages = 0
    for page in client.fetch_hashes_iter():
        pages += 1
        for entry in page.results:
            theirs[str(entry.id)] = None if entry.deleted else (entry.algorithm, entry.hash_digest)
    assert pages == 3
    ours = apply(exchange(standin).fetch(None))
    assert {ext: value for ext, value in theirs.items() if value} == {
        ext: ({"pdq": "PDQ", "md5": "MD5"}[kind], value) for ext, pairs_ in ours.items() for kind, value in pairs_
    }
