"""StopNCII: our exchange against the local stand-in (paging, withdrawals, type mapping, faults, resuming,
feedback), and python-threatexchange's own StopNCII client against the same stand-in (it speaks the protocol)."""

from __future__ import annotations

import pytest

from safehold.sharing import registry
from safehold.sharing.base import ExchangeError, Opinion
from safehold.sharing.exchanges.stopncii import StopNCIICredentials, StopNCIIExchange, StopNCIISettings
from safehold.sharing.exchanges.stopncii_standin import StopNCIIStandIn
from tests.sharing.replay import apply, live

PDQ = ["%064x" % (0xA1 + i) for i in range(5)]
MD5 = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def standin():
    server = StopNCIIStandIn()
    server.start()
    yield server
    server.stop()


def exchange(standin, *, page_size=2, keys=None, **settings) -> StopNCIIExchange:
    creds = keys or {"subscription_key": "sub-key", "fetch_function_key": "fetch-key",
                     "feedback_function_key": "feedback-key"}  # fmt: skip
    return StopNCIIExchange(
        StopNCIISettings(base_url=standin.url, page_size=page_size, **settings),
        StopNCIICredentials(**creds),
        timeout=5,
    )


def test_registered_under_its_type_name():
    assert registry.get("stopncii") is StopNCIIExchange


def test_pages_until_the_source_says_done_and_resumes_at_next_set_timestamp(standin):
    for value in PDQ:
        standin.add("ImagePDQ", value)
    ex = exchange(standin)
    batches = list(ex.fetch(None))
    assert [len(b.records) for b in batches] == [2, 2, 1]
    assert [b.done for b in batches] == [False, False, True]
    assert "page_token" in batches[0].checkpoint and "page_token" not in batches[-1].checkpoint
    assert live(apply(batches)) == {("pdq", v) for v in PDQ}
    # The next round sees only what changed since.
    standin.add("VideoMD5", MD5.upper())
    later = list(ex.fetch(batches[-1].checkpoint))
    assert [(r.signal_type, r.value) for b in later for r in b.records] == [("md5", MD5)]


def test_withdrawn_and_deleted_hashes_become_tombstones(standin):
    standin.add("ImagePDQ", PDQ[0])
    standin.add("ImagePDQ", PDQ[1])
    ex = exchange(standin)
    state = apply(first := list(ex.fetch(None)))
    standin.remove("ImagePDQ", PDQ[0])
    standin.remove("ImagePDQ", PDQ[1], status="Deleted")
    second = list(ex.fetch(first[-1].checkpoint))
    assert {r.signal_type for b in second for r in b.records} == {"*"}
    assert live(apply(second, state)) == set()


def test_types_map_to_safehold_and_unknown_types_are_kept(standin):
    standin.add("ImagePDQ", PDQ[0])
    standin.add("VideoMD5", MD5)
    standin.add("VideoTMK", "tmk-features-base64")
    standin.add("Text", "some benign text")
    batches = list(exchange(standin, page_size=10).fetch(None))
    assert {(r.signal_type, r.value) for b in batches for r in b.records} == {("pdq", PDQ[0]), ("md5", MD5)}
    unknown = [u for b in batches for u in b.unknown]
    assert {(u.signal_type, u.value) for u in unknown} == {("VideoTMK", "tmk-features-base64"),
                                                           ("Text", "some benign text")}  # fmt: skip
    assert all(u.external_id for u in unknown)


def test_malformed_records_are_counted_and_the_rest_kept(standin):
    standin.add("ImagePDQ", PDQ[0])
    standin.add("ImagePDQ", "not-a-pdq-hash")
    standin.add_raw({"signalType": "ImagePDQ", "hashStatus": "Active"}, key="no-value")
    standin.add_raw({"unexpected": True}, key="junk")
    batches = list(exchange(standin, page_size=10).fetch(None))
    assert sum(b.malformed for b in batches) == 3
    assert any("PDQ" in p for b in batches for p in b.problems)
    assert live(apply(batches)) == {("pdq", PDQ[0])}


def test_out_of_order_records_in_a_page_change_nothing(standin):
    standin.scramble = True
    for value in PDQ:
        standin.add("ImagePDQ", value)
    assert live(apply(exchange(standin).fetch(None))) == {("pdq", v) for v in PDQ}


def test_a_rate_limit_says_when_to_come_back(standin):
    standin.add("ImagePDQ", PDQ[0])
    standin.fail(429, retry_after=7)
    with pytest.raises(ExchangeError) as err:
        list(exchange(standin).fetch(None))
    assert err.value.code == "exchange.rate_limited" and err.value.retryable and err.value.retry_after == 7


def test_the_stand_in_enforces_a_request_rate_and_the_round_resumes_after_it(standin):
    for value in PDQ:
        standin.add("ImagePDQ", value)
    standin.rate_limit(2, per=30)
    ex = exchange(standin)
    read = []
    with pytest.raises(ExchangeError) as err:
        for batch in ex.fetch(None):
            read.append(batch)
    assert len(read) == 2 and err.value.code == "exchange.rate_limited" and 1 <= err.value.retry_after <= 30
    standin.rate_limit(None)
    assert live(apply(ex.fetch(read[-1].checkpoint), apply(read))) == {("pdq", v) for v in PDQ}


@pytest.mark.parametrize("fault", ["503", "500", "drop"])
def test_server_failures_are_retryable_unavailability(standin, fault):
    standin.add("ImagePDQ", PDQ[0])
    standin.drop() if fault == "drop" else standin.fail(int(fault))
    with pytest.raises(ExchangeError) as err:
        list(exchange(standin).fetch(None))
    assert err.value.code == "exchange.unavailable" and err.value.retryable


@pytest.mark.parametrize("wrong", ["subscription_key", "fetch_function_key"])
def test_refused_keys_are_an_auth_error_an_operator_must_fix(standin, wrong):
    keys = {"subscription_key": "sub-key", "fetch_function_key": "fetch-key", wrong: "wrong"}
    ex = exchange(standin, keys=keys)
    for call in (lambda: list(ex.fetch(None)), ex.check):
        with pytest.raises(ExchangeError) as err:
            call()
        assert err.value.code == "exchange.auth" and not err.value.retryable
        assert "wrong" not in str(err.value.message)


def test_an_oversized_answer_is_a_protocol_error(standin):
    for value in PDQ:
        standin.add("ImagePDQ", value)
    ex = StopNCIIExchange(
        StopNCIISettings(base_url=standin.url, page_size=5),
        StopNCIICredentials(subscription_key="sub-key", fetch_function_key="fetch-key"),
        max_body_bytes=200,
    )
    with pytest.raises(ExchangeError) as err:
        list(ex.fetch(None))
    assert err.value.code == "exchange.protocol" and not err.value.retryable


@pytest.mark.parametrize("expire", [False, True])
def test_resuming_from_a_mid_round_checkpoint_gives_the_same_final_set(standin, expire):
    for value in PDQ:
        standin.add("ImagePDQ", value)
    standin.remove("ImagePDQ", PDQ[2])
    ex = exchange(standin)
    full = live(apply(ex.fetch(None)))
    # A crash after the first batch was stored: the next round starts from its checkpoint.
    fetch = ex.fetch(None)
    first = next(fetch)
    fetch.close()
    if expire:  # and meanwhile the page token expired: the round starts over from its start
        standin.expire_tokens()
    resumed = apply(ex.fetch(first.checkpoint), apply([first]))
    assert live(resumed) == full == {("pdq", v) for v in PDQ} - {("pdq", PDQ[2])}


def test_max_pages_bounds_a_round_and_the_next_round_goes_on(standin):
    for value in PDQ:
        standin.add("ImagePDQ", value)
    ex = exchange(standin, max_pages=1)
    (first,) = list(ex.fetch(None))
    assert not first.done
    (second,) = list(ex.fetch(first.checkpoint))
    (third,) = list(ex.fetch(second.checkpoint))
    assert third.done and live(apply([first, second, third])) == {("pdq", v) for v in PDQ}


def test_feedback_reaches_stopncii(standin):
    standin.add("ImagePDQ", PDQ[0])
    ex = exchange(standin)
    ex.send_feedback(Opinion(external_id=f"ImagePDQ:{PDQ[0]}", signal_type="pdq", value=PDQ[0],
                             verdict="false_positive", reason="not_ncii"))  # fmt: skip
    ex.send_feedback(Opinion(external_id=None, signal_type="pdq", value=PDQ[0], verdict="true_positive"))
    assert standin.feedback == [
        {"hashValue": PDQ[0], "feedbackValue": "NotBlocked", "tags": ["not_ncii"]},
        {"hashValue": PDQ[0], "feedbackValue": "Blocked", "tags": []},
    ]
    with pytest.raises(ExchangeError) as err:  # a hash StopNCII does not know
        ex.send_feedback(Opinion(external_id=None, signal_type="pdq", value=PDQ[1], verdict="true_positive"))
    assert err.value.code == "exchange.rejected"


def test_feedback_needs_its_own_function_key(standin):
    ex = exchange(standin, keys={"subscription_key": "sub-key", "fetch_function_key": "fetch-key"})
    with pytest.raises(ExchangeError) as err:
        ex.send_feedback(Opinion(external_id=None, signal_type="pdq", value=PDQ[0], verdict="true_positive"))
    assert err.value.code == "exchange.not_supported"
    assert standin.feedback == []


def test_python_threatexchange_client_reads_the_same_entries_and_feedback_lands(standin):
    api = pytest.importorskip("threatexchange.exchanges.clients.stopncii.api")
    for value in PDQ:
        standin.add("ImagePDQ", value)
    standin.add("VideoMD5", MD5)
    standin.remove("ImagePDQ", PDQ[4])
    client = api.StopNCIIAPI(
        "sub-key", "fetch-key",
        additional_function_keys={api.StopNCIIEndpoint.SubmitFeedback: "feedback-key"},
        base_url_override=standin.url,
    )  # fmt: skip
    theirs = {}
    for page in client.fetch_hashes_iter():
        for record in page.hashRecords:
            theirs[(record.signalType.value, record.hashValue)] = record.hashStatus.value
    ours = apply(exchange(standin).fetch(None))
    their_live = {key for key, status in theirs.items() if status not in ("Withdrawn", "Deleted")}
    assert {ext.split(":", 1)[0] for ext in ours} == {"ImagePDQ", "VideoMD5"}
    assert set(ours) == {f"{kind}:{value}" for kind, value in their_live}
    client.submit_feedback(api.StopNCIISignalType.ImagePDQ, PDQ[0], api.StopNCIICSPFeedbackValue.Blocked)
    assert standin.feedback[-1]["feedbackValue"] == "Blocked" and standin.feedback[-1]["hashValue"] == PDQ[0]
