"""ThreatExchange: our exchange against the local Graph stand-in (windows per privacy group, deletions, types,
faults, resuming), and python-threatexchange's own Graph client against the same stand-in."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from safehold.sharing import registry
from safehold.sharing.base import ExchangeError, Opinion
from safehold.sharing.exchanges.threatexchange import (
    ThreatExchangeCredentials,
    ThreatExchangeExchange,
    ThreatExchangeSettings,
)
from safehold.sharing.exchanges.threatexchange_standin import ThreatExchangeStandIn, graph_error
from tests.sharing.replay import apply, live

TOKEN = "1234567890|a-test-app-secret"
PDQ = ["%064x" % (0xB1 + i) for i in range(5)]
MD5 = "fedcba9876543210fedcba9876543210"
GROUP, OTHER = 303, 404


class Clock:
    """Unix seconds that move one second per reading: every change and every round gets its own second."""

    def __init__(self):
        self.now = 1_750_000_000

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def standin(clock):
    server = ThreatExchangeStandIn(clock=clock)
    server.group(GROUP)
    server.group(OTHER)
    server.start()
    yield server
    server.stop()


def exchange(standin, *, groups=(GROUP,), token=TOKEN, **settings) -> ThreatExchangeExchange:
    ex = ThreatExchangeExchange(
        ThreatExchangeSettings(base_url=standin.url, privacy_groups=list(groups), **{"page_size": 2, **settings}),
        ThreatExchangeCredentials(access_token=token),
        timeout=5,
    )
    ex.clock = standin.clock
    return ex


def pairs(batches):
    return {(r.signal_type, r.value) for b in batches for r in b.records}


def test_registered_and_the_token_shape_checked():
    assert registry.get("threatexchange") is ThreatExchangeExchange
    with pytest.raises(ValidationError) as err:
        ThreatExchangeCredentials(access_token="not a token")
    assert "not a token" not in str(err.value)


def test_pages_each_group_and_the_next_round_reads_only_changes(standin):
    for value in PDQ:
        standin.add(GROUP, "HASH_PDQ", value, tags=["benign_test"])
    standin.add(OTHER, "HASH_MD5", MD5)
    ex = exchange(standin, groups=(GROUP, OTHER))
    batches = list(ex.fetch(None))
    assert [len(b.records) for b in batches] == [2, 2, 1, 1]
    assert [b.done for b in batches] == [False, False, False, True]
    assert pairs(batches) == {("pdq", v) for v in PDQ} | {("md5", MD5)}
    assert batches[0].records[0].metadata["tags"] == ["benign_test"]
    assert "access_token" not in str(batches[0].checkpoint) and TOKEN not in str(batches[0].checkpoint)
    standin.add(OTHER, "HASH_PDQ", PDQ[0])
    later = list(ex.fetch(batches[-1].checkpoint))
    assert pairs(later) == {("pdq", PDQ[0])} and later[-1].done


def test_deleted_indicators_become_tombstones(standin):
    ids = [standin.add(GROUP, "HASH_PDQ", value) for value in PDQ[:3]]
    ex = exchange(standin)
    state = apply(first := list(ex.fetch(None)))
    standin.delete(GROUP, ids[1])
    second = list(ex.fetch(first[-1].checkpoint))
    assert [r.external_id for b in second for r in b.records if r.signal_type == "*"] == [ids[1]]
    assert live(apply(second, state)) == {("pdq", PDQ[0]), ("pdq", PDQ[2])}


def test_types_map_and_unknown_types_are_kept(standin):
    standin.add(GROUP, "HASH_PDQ", PDQ[0])
    standin.add(GROUP, "HASH_VIDEO_MD5", MD5)
    standin.add(GROUP, "HASH_TMK", "tmk-serialised")
    standin.add(GROUP, "HASH_PHOTODNA", "1,2,3")
    batches = list(exchange(standin, page_size=10).fetch(None))
    assert pairs(batches) == {("pdq", PDQ[0]), ("md5", MD5)}
    assert {(u.signal_type, u.value) for b in batches for u in b.unknown} == {
        ("HASH_TMK", "tmk-serialised"), ("HASH_PHOTODNA", "1,2,3")}  # fmt: skip


def test_malformed_updates_are_counted_and_the_rest_kept(standin):
    standin.add(GROUP, "HASH_PDQ", PDQ[0])
    standin.add(GROUP, "HASH_PDQ", "short")
    standin.add_raw(GROUP, {"indicator": PDQ[1], "type": "HASH_PDQ"}, key="no-id")
    standin.add_raw(GROUP, {"id": "77", "indicator": PDQ[2], "descriptors": {"data": []}}, key="no-type")
    batches = list(exchange(standin, page_size=10).fetch(None))
    assert sum(b.malformed for b in batches) == 3 and all(len(b.problems) <= 5 for b in batches)
    assert pairs(batches) == {("pdq", PDQ[0])}


def test_out_of_order_updates_change_nothing(standin):
    standin.scramble = True
    for value in PDQ:
        standin.add(GROUP, "HASH_PDQ", value)
    assert live(apply(exchange(standin).fetch(None))) == {("pdq", v) for v in PDQ}


@pytest.mark.parametrize("how", ["http429", "graph4"])
def test_rate_limits_are_retryable(standin, how):
    standin.add(GROUP, "HASH_PDQ", PDQ[0])
    if how == "http429":
        standin.fail(429, retry_after=30)
    else:
        standin.fail(400, body=graph_error(4, "OAuthException", "Application request limit reached"))
    with pytest.raises(ExchangeError) as err:
        list(exchange(standin).fetch(None))
    assert err.value.code == "exchange.rate_limited" and err.value.retryable
    assert err.value.retry_after == (30 if how == "http429" else None)


def test_server_errors_are_retryable(standin):
    standin.add(GROUP, "HASH_PDQ", PDQ[0])
    standin.fail(502)
    with pytest.raises(ExchangeError) as err:
        list(exchange(standin).fetch(None))
    assert err.value.code == "exchange.unavailable" and err.value.retryable


def test_a_refused_token_is_an_auth_error_without_the_token(standin):
    standin.add(GROUP, "HASH_PDQ", PDQ[0])
    with pytest.raises(ExchangeError) as err:
        list(exchange(standin, token="1234567890|someone-elses-secret").fetch(None))
    assert err.value.code == "exchange.auth" and not err.value.retryable
    with pytest.raises(ExchangeError) as err:
        exchange(standin, token="1234567890|someone-elses-secret").check()
    assert err.value.code == "exchange.auth"
    assert "secret" not in err.value.message and "secret" not in str(err.value.detail)


def test_an_unknown_group_is_a_protocol_error_and_check_finds_it(standin):
    exchange(standin, groups=(GROUP, OTHER)).check()
    ex = exchange(standin, groups=(GROUP, 999))
    for call in (lambda: list(ex.fetch(None)), ex.check):
        with pytest.raises(ExchangeError) as err:
            call()
        assert err.value.code == "exchange.protocol" and not err.value.retryable


def test_resuming_mid_window_gives_the_same_final_set(standin):
    ids = [standin.add(GROUP, "HASH_PDQ", value) for value in PDQ]
    standin.delete(GROUP, ids[3])
    standin.add(OTHER, "HASH_MD5", MD5)
    ex = exchange(standin, groups=(GROUP, OTHER))
    full = live(apply(ex.fetch(None)))
    fetch = ex.fetch(None)
    first = next(fetch)
    fetch.close()
    assert first.checkpoint["groups"][str(GROUP)].get("after")
    standin.add(GROUP, "HASH_PDQ", PDQ[3])  # changed meanwhile: after the stored window, read next round
    resumed = apply(ex.fetch(first.checkpoint), apply([first]))
    assert live(resumed) == full == {("pdq", v) for i, v in enumerate(PDQ) if i != 3} | {("md5", MD5)}
    assert ("pdq", PDQ[3]) in live(apply(ex.fetch({"groups": {str(GROUP): {"since": 0}}})))


def test_max_pages_bounds_a_round(standin):
    for value in PDQ:
        standin.add(GROUP, "HASH_PDQ", value)
    ex = exchange(standin, max_pages=2)
    batches = list(ex.fetch(None))
    assert len(batches) == 2 and not batches[-1].done
    rest = list(ex.fetch(batches[-1].checkpoint))
    assert rest[-1].done and live(apply(batches + rest)) == {("pdq", v) for v in PDQ}


def test_feedback_reacts_on_the_descriptors_other_apps_shared(standin):
    ident = standin.add(GROUP, "HASH_PDQ", PDQ[0])
    standin.add(GROUP, "HASH_PDQ", PDQ[0], owner=1234567890)  # our own app's descriptor of the same hash
    descriptors = standin.groups[GROUP][ident]["descriptors"]["data"]
    ex = exchange(standin)
    ex.send_feedback(Opinion(external_id=ident, signal_type="pdq", value=PDQ[0], verdict="false_positive"))
    ex.send_feedback(Opinion(external_id=ident, signal_type="pdq", value=PDQ[0], verdict="true_positive"))
    partner = descriptors[0]["id"]
    assert standin.reactions == [(partner, "NOT_HELPFUL", "1234567890"), (partner, "HELPFUL", "1234567890")]


def test_feedback_on_an_unknown_or_idless_entry_is_refused(standin):
    ex = exchange(standin)
    with pytest.raises(ExchangeError) as err:
        ex.send_feedback(Opinion(external_id=None, signal_type="pdq", value=PDQ[0], verdict="true_positive"))
    assert err.value.code == "exchange.not_supported"
    own = standin.add(GROUP, "HASH_PDQ", PDQ[1], owner=1234567890)
    with pytest.raises(ExchangeError) as err:
        ex.send_feedback(Opinion(external_id=own, signal_type="pdq", value=PDQ[1], verdict="true_positive"))
    assert err.value.code == "exchange.rejected" and standin.reactions == []


def test_python_threatexchange_client_reactions_land_like_ours(standin):
    api = pytest.importorskip("threatexchange.exchanges.clients.fb_threatexchange.api")
    ident = standin.add(GROUP, "HASH_PDQ", PDQ[0])
    client = api.ThreatExchangeAPI(TOKEN, endpoint_override=standin.url)
    (descriptor,) = client.get_threat_descriptors_from_indicator(int(ident))
    client.react_upvote_threat_descriptor(descriptor["id"])
    exchange(standin).send_feedback(
        Opinion(external_id=ident, signal_type="pdq", value=PDQ[0], verdict="true_positive")
    )
    assert standin.reactions == [(descriptor["id"], "HELPFUL", "1234567890")] * 2


def test_python_threatexchange_graph_client_reads_the_same_updates(standin):
    api = pytest.importorskip("threatexchange.exchanges.clients.fb_threatexchange.api")
    ids = [standin.add(GROUP, "HASH_PDQ", value) for value in PDQ]
    standin.add(GROUP, "HASH_TMK", "tmk-serialised")
    standin.delete(GROUP, ids[0])
    client = api.ThreatExchangeAPI(TOKEN, endpoint_override=standin.url)
    theirs = {}
    for page in client.get_threat_updates(GROUP, page_size=2):
        for update in page:
            theirs[update["id"]] = None if update["should_delete"] else (update["type"], update["indicator"])
    ours = list(exchange(standin).fetch(None))
    state = apply(ours)
    unknown = {(u.external_id, (u.signal_type, u.value)) for b in ours for u in b.unknown}
    assert {k: v for k, v in theirs.items() if v and v[0] == "HASH_PDQ"} == {
        ext: ("HASH_PDQ", value) for ext, pairs_ in state.items() for _, value in pairs_}  # fmt: skip
    assert {(k, v) for k, v in theirs.items() if v and v[0] == "HASH_TMK"} == unknown
    assert theirs[ids[0]] is None and ids[0] not in state
