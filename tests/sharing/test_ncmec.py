"""The NCMEC exchange against its local stand-in: paging, order, updates, deletions, types, faults, resume, feedback."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from safehold.sharing.base import ExchangeError, Opinion
from safehold.sharing.exchanges.ncmec import Environment, NcmecCredentials, NcmecExchange, NcmecSettings
from safehold.sharing.exchanges.ncmec_page import MAX_PAGE_ENTRIES
from safehold.sharing.exchanges.ncmec_standin import REASONS, NcmecStandIn, synthetic_fingerprints
from safehold.sharing.registry import get

T0 = int(time.time()) - 30 * 86400  # entries live in the past; the exchange's clock is moved by the tests
PDQ = "f" * 64


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def standin():
    s = NcmecStandIn(page_size=100)
    s.start()
    yield s
    s.stop()


def exchange(standin, clock=None, password="secret", sleep=None, **settings) -> NcmecExchange:
    settings.setdefault("lag_seconds", 0)
    settings.setdefault("retries", 0)
    return NcmecExchange(
        NcmecSettings(base_url=standin.url, **settings),
        NcmecCredentials(username="esp", password=password),
        clock=clock or Clock(T0 + 20 * 86400),
        sleep=sleep or (lambda s: None),
        timeout=5,
    )


def replay(batches, state: dict | None = None) -> dict:
    """Apply batches like a bank would: ``{external_id: {signal_type: value}}``, tombstones remove an entry."""
    state = {} if state is None else state
    for b in batches:
        for r in b.records:
            if r.is_tombstone:
                state.pop(r.external_id, None)
            else:
                state.setdefault(r.external_id, {})[r.signal_type] = r.value
    return state


def expected(standin) -> dict:
    return {k: {t: v for t, v in fps.items() if t in ("md5", "sha1", "pdq")} for k, fps in standin.live().items()}


def test_registered_and_settings_validated():
    assert get("ncmec") is NcmecExchange
    assert NcmecSettings(environment="ngo_generative_ai").url() == Environment.ngo_generative_ai.value
    assert NcmecSettings(base_url="http://127.0.0.1:1/x/").url() == "http://127.0.0.1:1/x"
    with pytest.raises(ValidationError, match="unknown NCMEC environment"):
        NcmecSettings(environment="nowhere")
    with pytest.raises(ValidationError):
        NcmecSettings(page_size=5000)


def test_pages_through_a_window_and_reads_everything(standin):
    standin.generate(1050, start=T0, end=T0 + 10 * 86400)
    batches = list(exchange(standin).fetch(None))
    assert len(batches) == 11  # 100 per page
    assert [b.done for b in batches] == [False] * 10 + [True]
    assert all(b.checkpoint["next"].startswith("/v2/entries?") for b in batches[:-1])
    assert batches[-1].checkpoint == {"since": T0 + 20 * 86400}
    assert replay(batches) == expected(standin)
    assert sum(len(b.records) for b in batches) == sum(len(v) for v in expected(standin).values())


def test_entries_come_out_of_time_order_and_none_is_missed(standin):
    standin.generate(500, start=T0, end=T0 + 86400)
    batches = list(exchange(standin).fetch(None))
    stamps = [r.metadata["timestamp"] for b in batches for r in b.records if r.signal_type == "md5"]
    assert stamps != sorted(stamps)  # NCMEC's order is not time order …
    assert len(stamps) == 500  # … and every entry is read once per window
    assert replay(batches) == expected(standin)


def test_categories_and_metadata(standin):
    standin.put(42, "a", {"md5": "A" * 32}, classification="b2", timestamp=T0)
    standin.put(42, "b", {"md5": "b" * 32}, classification="E", media="video", timestamp=T0)
    recs = {r.external_id: r for b in exchange(standin).fetch(None) for r in b.records}
    assert recs["42-a"].category == "B2" and recs["42-a"].value == "a" * 32  # normalised by the md5 type
    assert recs["42-a"].metadata["member_name"] == "Example Member"
    assert recs["42-b"].category is None
    assert recs["42-b"].metadata == {
        "media": "video", "member_id": "42", "ncmec_id": "b", "member_name": "Example Member",
        "timestamp": recs["42-b"].metadata["timestamp"], "ncmec_classification": "E",
    }  # fmt: skip


def test_every_fingerprint_type_is_mapped_or_reported_unknown(standin):
    fps = {
        "md5": "1" * 32, "sha1": "2" * 40, "pdq": PDQ, "pdna": "3,4,5", "netclean": "nc", "videntifier": "vid",
        "ssvh-pdna": "sp", "ssvh-safer-hash": "ss",
    }  # fmt: skip
    standin.put(42, "all", fps, timestamp=T0)
    standin.put_raw(
        '<video><member id="42">M</member><id>big</id><fingerprints><md5>' + "4" * 32 + "</md5>"
        '<tmk-pdqf rel="self" href="/v2/entries/1/fingerprints/TMK_PDQF"/></fingerprints></video>',
        media="video", timestamp=T0,
    )  # fmt: skip
    batches = list(exchange(standin).fetch(None))
    records = {(r.external_id, r.signal_type, r.value) for b in batches for r in b.records}
    unknown = {(u.external_id, u.signal_type, u.value) for b in batches for u in b.unknown}
    assert records == {
        ("42-all", "md5", "1" * 32), ("42-all", "sha1", "2" * 40), ("42-all", "pdq", PDQ),
        ("42-big", "md5", "4" * 32),
    }  # fmt: skip
    assert unknown == {
        ("42-all", "photodna", "3,4,5"), ("42-all", "netclean", "nc"), ("42-all", "videntifier", "vid"),
        ("42-all", "ssvh_pdna", "sp"), ("42-all", "ssvh_safer_hash", "ss"),
        ("42-big", "tmk_pdqf", "link:/v2/entries/1/fingerprints/TMK_PDQF"),
    }  # fmt: skip
    assert sum(b.malformed for b in batches) == 0


def test_malformed_records_are_counted_not_fatal(standin):
    standin.generate(150, start=T0, end=T0 + 86400)
    standin.put_raw("<image><timestamp>2020-01-01T00:00:00Z</timestamp></image>", timestamp=T0)  # no id, member
    standin.put_raw('<image><member id="x">M</member><id>i</id></image>', timestamp=T0)  # member id not numeric
    standin.put(42, "badpdq", {"pdq": "not-a-pdq", "md5": "5" * 32}, timestamp=T0)
    standin.put(42, "nofp", {}, timestamp=T0)
    batches = list(exchange(standin).fetch(None))
    assert sum(b.malformed for b in batches) == 4
    problems = [p for b in batches for p in b.problems]
    assert any("numeric member id" in p for p in problems) and any("badpdq" in p for p in problems)
    state = replay(batches)
    assert state["42-badpdq"] == {"md5": "5" * 32}  # the good fingerprint of the entry is kept
    assert len(state) == 151


def test_deletions_become_tombstones(standin):
    standin.put(42, "gone", {"md5": "6" * 32}, timestamp=T0)
    standin.put(43, "stays", {"md5": "7" * 32}, timestamp=T0)
    clock = Clock(T0 + 100)
    ex = exchange(standin, clock)
    first = list(ex.fetch(None))
    state = replay(first)
    assert set(state) == {"42-gone", "43-stays"}
    standin.delete(42, "gone", timestamp=T0 + 200)
    clock.now = T0 + 300
    second = list(ex.fetch(first[-1].checkpoint))
    tomb = [r for b in second for r in b.records]
    assert len(tomb) == 1 and tomb[0].is_tombstone and tomb[0].external_id == "42-gone"
    assert set(replay(second, state)) == {"43-stays"}


def test_updates_are_read_by_the_next_window_even_while_paging(standin):
    standin.generate(300, start=T0, end=T0 + 1000)
    clock = Clock(T0 + 2000)
    ex = exchange(standin, clock)
    it = ex.fetch(None)
    batches = [next(it)]
    # While we page: an entry already read and one not yet read are updated, a new one arrives.
    read = batches[0].records[0].external_id
    unread = next(k for k in standin.live() if k not in {r.external_id for r in batches[0].records})
    for key, md5 in ((read, "8" * 32), (unread, "9" * 32)):
        member, _, entry_id = key.partition("-")
        standin.put(int(member), entry_id, {"md5": md5}, classification="A2", timestamp=T0 + 2100)
    standin.put(43, "new", {"md5": "a" * 32}, timestamp=T0 + 2100)
    batches += list(it)
    clock.now = T0 + 3000
    batches += list(ex.fetch(batches[-1].checkpoint))
    state = replay(batches)
    assert state[read] == {"md5": "8" * 32, **{t: v for t, v in state[read].items() if t != "md5"}}
    assert state[unread]["md5"] == "9" * 32 and state["43-new"] == {"md5": "a" * 32}
    assert set(state) == set(standin.live())


@pytest.mark.parametrize("stale", [False, True])
def test_resume_from_a_checkpoint_mid_window_misses_nothing(standin, stale):
    standin.generate(730, start=T0, end=T0 + 5000)
    clock = Clock(T0 + 10_000)
    full = replay(exchange(standin, Clock(T0 + 10_000)).fetch(None))
    it = exchange(standin, clock).fetch(None)
    before = [next(it) for _ in range(3)]  # then the process "crashes"
    checkpoint = before[-1].checkpoint
    assert checkpoint["window_to"] == T0 + 10_000 and checkpoint["since"] == 0
    if stale:  # the paging link is too old to follow: the whole window is read again
        clock.now += 13 * 3600
    after = list(exchange(standin, clock).fetch(checkpoint))
    assert after[-1].done
    if not stale:
        assert len(after) == 8 - 3 + 1 - 1  # only the pages not read yet
    assert replay(before + after) == full == expected(standin)


def test_changes_between_a_crash_and_the_resume_are_not_lost(standin):
    standin.generate(450, start=T0, end=T0 + 5000)
    clock = Clock(T0 + 10_000)
    it = exchange(standin, clock).fetch(None)
    before = [next(it) for _ in range(2)]
    read = before[0].records[0].external_id
    unread = next(k for k in standin.live() if k not in {r.external_id for b in before for r in b.records})
    gone = next(k for k in standin.live() if k not in (read, unread))
    clock.now = T0 + 11_000
    for key in (read, unread):
        member, _, entry_id = key.partition("-")
        standin.put(int(member), entry_id, {"sha1": "b" * 40}, timestamp=T0 + 10_500)
    member, _, entry_id = gone.partition("-")
    standin.delete(int(member), entry_id, timestamp=T0 + 10_600)
    after = list(exchange(standin, clock).fetch(before[-1].checkpoint))
    state = replay(before + after)
    assert state[read]["sha1"] == state[unread]["sha1"] == "b" * 40
    assert gone not in state and set(state) == set(standin.live())


def test_a_window_whose_result_set_moves_while_paged_is_read_again():
    """If NCMEC paged by position over the live set, an entry leaving the window (updated) would shift the next
    page past one still in it: the changed ``max`` makes the exchange read the window again."""
    with NcmecStandIn(page_size=100, live_cursor=True) as live:
        live.generate(450, start=T0, end=T0 + 5000)
        clock = Clock(T0 + 10_000)
        it = exchange(live, clock).fetch(None)
        first = next(it)
        moved = first.records[0].external_id
        member, _, entry_id = moved.partition("-")
        live.put(int(member), entry_id, {"md5": "c" * 32}, timestamp=T0 + 10_500)  # leaves the window
        rest = list(it)
        assert len(rest) == 4 + 5  # the window's last four pages, then all five again
        skipped = set(live.live()) - set(replay([first, *rest[:4]])) - {moved}
        assert len(skipped) == 1  # what the first pass missed (the shift), found by the second
        assert rest[3].checkpoint["next"] is None and not rest[3].done  # a crash here re-reads the window
        clock.now = T0 + 11_000
        more = list(exchange(live, clock).fetch(rest[-1].checkpoint))
        state = replay([first, *rest, *more])
        assert set(state) == set(live.live()) and state[moved]["md5"] == "c" * 32


def test_windows_are_bounded_and_only_the_last_batch_is_done(standin):
    standin.generate(200, start=T0, end=T0 + 4 * 3600)
    clock = Clock(T0 + 4 * 3600)
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0))
    batches = list(exchange(standin, clock, window_seconds=3600, start=start).fetch(None))
    assert [b.done for b in batches].count(True) == 1 and batches[-1].done
    sinces = [b.checkpoint["since"] for b in batches if "window_to" not in b.checkpoint]
    assert sinces == [T0 + 3600 * k for k in (1, 2, 3, 4)]
    assert replay(batches) == expected(standin)
    again = list(exchange(standin, clock).fetch(batches[-1].checkpoint))  # nothing new: one empty, done batch
    assert len(again) == 1 and again[0].done and not again[0].records
    assert again[0].checkpoint == batches[-1].checkpoint


def test_empty_years_are_crossed_in_doubling_windows(standin):
    standin.generate(50, start=T0, end=T0 + 3600)
    batches = list(exchange(standin, Clock(T0 + 7200), window_seconds=3600).fetch(None))  # from 1970
    assert len(batches) < 40
    assert replay(batches) == expected(standin)


def test_only_member_ids(standin):
    standin.put(42, "a", {"md5": "1" * 32}, timestamp=T0)
    standin.put(43, "b", {"md5": "2" * 32}, timestamp=T0)
    state = replay(exchange(standin, only_member_ids=[43]).fetch(None))
    assert set(state) == {"43-b"}


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        b'<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">&b;</queryResult>',
        b'<?xml version="1.0"?><!DOCTYPE q SYSTEM "http://127.0.0.1:9/evil.dtd"><queryResult/>',
        b"<queryResult>" + b"<a>" * 40 + b"</a>" * 40 + b"</queryResult>",
        b'<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2"><images><image><id>1</id>'
        + b"<a>" * 20
        + b"</a>" * 20
        + b"</image></images></queryResult>",
        b"<queryResult><images><image>",
        b"not xml at all",
        b'<status xmlns="https://hashsharing.ncmec.org/hashsharing/v2"/>',
        b'<status><images><image><member id="1"/><id>x</id></image></images></status>',
        b'<queryResult><images><image><member id="1"/><id>&x;</id></image></images></queryResult>',
    ],
    ids=[
        "entities",
        "external-dtd",
        "deep",
        "deep-entry",
        "truncated",
        "garbage",
        "wrong-root",
        "wrong-root-entries",
        "undeclared-entity",
    ],
)
def test_hostile_or_broken_xml_is_refused(standin, body):
    standin.fail(200, body=body)
    with pytest.raises(ExchangeError) as e:
        list(exchange(standin).fetch(None))
    assert e.value.code == "exchange.protocol" and not e.value.retryable


def test_oversized_answer_is_refused(standin):
    standin.generate(100, start=T0, end=T0 + 100)
    ex = exchange(standin)
    ex.max_body_bytes = 2000
    with pytest.raises(ExchangeError, match="larger than 2000 bytes") as e:
        list(ex.fetch(None))
    assert e.value.code == "exchange.protocol"


def test_a_page_of_too_many_entries_is_refused():
    with NcmecStandIn(page_size=MAX_PAGE_ENTRIES + 1) as big:
        big.generate(MAX_PAGE_ENTRIES + 1, start=T0, end=T0 + 100)
        with pytest.raises(ExchangeError, match="more than 10000 entries") as e:
            list(exchange(big).fetch(None))
    assert e.value.code == "exchange.protocol"


def test_rate_limit_gives_retry_after_or_is_waited_out(standin):
    standin.put(42, "a", {"md5": "1" * 32}, timestamp=T0)
    standin.fail(429, retry_after=7)
    with pytest.raises(ExchangeError) as e:
        list(exchange(standin).fetch(None))
    assert (e.value.code, e.value.retryable, e.value.retry_after) == ("exchange.rate_limited", True, 7)
    waits: list[float] = []
    standin.fail(429, retry_after=3)
    assert replay(exchange(standin, retries=1, sleep=waits.append).fetch(None)) == {"42-a": {"md5": "1" * 32}}
    assert waits == [3]
    standin.fail(429, retry_after=3600)  # longer than max_retry_wait: the round ends, the scheduler retries
    with pytest.raises(ExchangeError, match="rate limit"):
        list(exchange(standin, retries=3).fetch(None))


def test_server_errors_and_unreachable(standin):
    standin.put(42, "a", {"md5": "1" * 32}, timestamp=T0)
    standin.fail(503, times=3)
    with pytest.raises(ExchangeError) as e:
        list(exchange(standin, retries=2).fetch(None))
    assert e.value.code == "exchange.unavailable" and e.value.retryable
    standin.fail(500, times=2)
    assert replay(exchange(standin, retries=2).fetch(None)) == {"42-a": {"md5": "1" * 32}}
    standin.fail(503, delay=1.0)  # slower than the client's timeout
    ex = exchange(standin)
    ex.timeout = 0.2
    with pytest.raises(ExchangeError, match="timed out") as e:
        list(ex.fetch(None))
    assert e.value.code == "exchange.unavailable" and e.value.retryable
    ex = exchange(standin)
    standin.stop()
    with pytest.raises(ExchangeError) as e:
        list(ex.fetch(None))
    assert e.value.code == "exchange.unavailable"


def test_bad_credentials(standin):
    ex = exchange(standin, password="wrong")
    for call in (ex.check, lambda: list(ex.fetch(None))):
        with pytest.raises(ExchangeError) as e:
            call()
        assert e.value.code == "exchange.auth" and not e.value.retryable
    exchange(standin).check()  # the right ones pass


def test_feedback_reaches_ncmec(standin):
    standin.put(42, "img/1", {"md5": "1" * 32, "pdna": "1,2"}, timestamp=T0)
    ex = exchange(standin, feedback_reasons={"wrong_category": "Wrong classification"})
    ex.send_feedback(Opinion("42-img/1", "md5", "1" * 32, "true_positive"))
    ex.send_feedback(Opinion("42-img/1", "photodna", "1,2", "false_positive", reason="not_csam"))
    ex.send_feedback(Opinion("42-img/1", "md5", "1" * 32, "false_positive", reason="wrong_category"))
    guid = {n: g for g, n in REASONS.items()}
    assert standin.feedback == [
        {"member_id": 42, "entry_id": "img/1", "type": "MD5", "vote": "affirmative"},
        {"member_id": 42, "entry_id": "img/1", "type": "PDNA", "vote": "negative", "reasons": [guid["Not CSAM"]]},
        {"member_id": 42, "entry_id": "img/1", "type": "MD5", "vote": "negative",
         "reasons": [guid["Wrong classification"]]},
    ]  # fmt: skip
    for opinion, message in (
        (Opinion("42-img/1", "md5", "x", "false_positive", reason="meme"), "no NCMEC MD5 feedback reason"),
        (Opinion("img1", "md5", "x", "true_positive"), "not an NCMEC entry id"),
        (Opinion("42-missing", "md5", "x", "true_positive"), "HTTP 404"),
    ):
        with pytest.raises(ExchangeError, match=message) as e:
            ex.send_feedback(opinion)
        assert e.value.code == "exchange.rejected"
    assert len(standin.feedback) == 3


def test_synthetic_entries_are_reproducible():
    assert synthetic_fingerprints(7) == synthetic_fingerprints(7) != synthetic_fingerprints(8)
    assert set(synthetic_fingerprints(10)) == {"md5", "sha1"}  # a video
