"""The age book: signals kept with source, confidence and time, one band per account by documented rules, a band
that ages with its signals' birthdays, and an in-process cache that sees this process's writes at once."""

from __future__ import annotations

import datetime as dt

import pytest

from safehold.errors import SafeholdError
from safehold.safety.ages import AgeBook, resolve
from safehold.store.models import AccountAge, AccountAgeSignal, utcnow

TODAY = dt.date(2026, 6, 1)
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def sig(source, band="unknown", *, age=None, birth_date=None, confidence=1.0, method=None, at=NOW, id=None):
    return AccountAgeSignal(
        id=id, account_id="a", source=source, band=band, age=age, birth_date=birth_date, confidence=confidence,
        method=method, at=at,
    )  # fmt: skip


def test_no_signal_is_unknown_by_rule_none():
    r = resolve("a", [], TODAY)
    assert (r.band, r.rule, r.signal_id) == ("unknown", "none", None)


def test_a_reviewer_finding_decides_over_everything():
    r = resolve("a", [sig("assurance", "adult", id=1), sig("chat", "13-15", id=2), sig("reviewer", "16-17", id=3)])
    assert (r.band, r.rule, r.signal_id) == ("16-17", "reviewer", 3)


def test_a_minor_in_chat_overrides_a_declared_adult_birth_date():
    r = resolve("a", [sig("declared", birth_date=dt.date(1990, 1, 1), id=1), sig("chat", age=13, confidence=0.6, id=2)])
    assert (r.band, r.rule, r.signal_id) == ("13-15", "protective", 2)


def test_the_youngest_minor_band_decides():
    r = resolve("a", [sig("chat", age=16, confidence=0.6, id=1), sig("platform", "under13", id=2)])
    assert (r.band, r.rule) == ("under13", "protective")


def test_a_low_confidence_minor_signal_does_not_decide():
    r = resolve("a", [sig("chat", age=13, confidence=0.3, id=1), sig("declared", birth_date=dt.date(1990, 1, 1), id=2)])
    assert (r.band, r.rule, r.signal_id) == ("adult", "strongest", 2)


def test_a_verification_outranks_a_later_estimation():
    older = NOW - dt.timedelta(days=3)
    signals = [
        sig("assurance", "13-15", method="verification", at=older, id=1),
        sig("assurance", age=30, method="estimation", id=2),
    ]
    assert (resolve("a", signals, TODAY).rule, resolve("a", signals, TODAY).signal_id) == ("assurance", 1)


def test_an_adult_estimate_below_the_challenge_age_does_not_decide():
    signals = [sig("assurance", age=19, method="estimation", id=1), sig("chat", age=15, confidence=0.6, id=2)]
    r = resolve("a", signals, TODAY, buffer_years=2)
    assert (r.band, r.rule, r.signal_id) == ("13-15", "protective", 2)
    assert resolve("a", signals, TODAY, buffer_years=0).rule == "assurance"
    signals[0] = sig("assurance", age=21, method="estimation", id=1)
    assert (resolve("a", signals, TODAY, buffer_years=2).band, resolve("a", signals, TODAY).rule) == (
        "adult",
        "assurance",
    )


def test_a_birth_date_is_banded_on_the_day_of_resolution_and_says_when_it_changes():
    signals = [sig("declared", birth_date=dt.date(2013, 6, 2), id=1)]
    r = resolve("a", signals, TODAY)
    assert r.band == "under13" and r.changes_at == dt.datetime(2026, 6, 2, tzinfo=dt.UTC)
    assert resolve("a", signals, dt.date(2026, 6, 2)).band == "13-15"


def test_a_stated_age_counts_the_years_since():
    said = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert resolve("a", [sig("chat", age=13, confidence=0.6, at=said, id=1)], TODAY).band == "13-15"
    assert resolve("a", [sig("chat", age=15, confidence=0.6, at=said, id=1)], TODAY).band == "16-17"


@pytest.fixture
def book(svc) -> AgeBook:
    return svc.ages


def test_record_keeps_the_signal_and_resolves(book):
    out = book.add("apikey:p", "kid", "declared", birth_date=utcnow().date().replace(year=utcnow().year - 14))
    assert out["duplicate"] is False and out["age"]["band"] == "13-15" and out["age"]["rule"] == "protective"
    assert out["signal"]["source"] == "declared" and out["signal"]["actor"] == "apikey:p"
    shown = book.show("kid")
    assert shown["band"] == "13-15" and shown["signal"]["id"] == out["signal"]["id"] and len(shown["signals"]) == 1


def test_a_repeated_reference_is_a_retry(book):
    first = book.add("p", "kid", "assurance", age=30, method="verification", provider="acme", reference="r1")
    again = book.add("p", "kid", "assurance", age=30, method="verification", provider="acme", reference="r1")
    assert again["duplicate"] is True and again["signal"]["id"] == first["signal"]["id"]
    assert len(book.signals("kid")) == 1


@pytest.mark.parametrize(
    "signal",
    [
        {},
        {"band": "teen"},
        {"age": 131},
        {"age": -1},
        {"band": "adult", "age": 12},
        {"birth_date": dt.date(2999, 1, 1)},
        {"birth_date": dt.date(1800, 1, 1)},
        {"band": "adult", "confidence": 1.5},
        {"band": "adult", "reference": "x" * 201},
    ],
)
def test_a_signal_that_says_nothing_or_contradicts_itself_is_refused(book, signal):
    with pytest.raises(SafeholdError) as e:
        book.add("p", "kid", "declared", **signal)
    assert e.value.code == "age.invalid" and e.value.status == 422


def test_a_bad_source_or_account_is_refused(book):
    for account, source in (("kid", "rumour"), ("", "declared"), ("x" * 129, "declared"), ("a\nb", "declared")):
        with pytest.raises(SafeholdError) as e:
            book.add("p", account, source, band="adult")
        assert e.value.code == "age.invalid"


def test_the_cache_sees_this_process_at_once_and_other_writers_after_the_ttl(book):
    assert book.band("kid") == "unknown"
    book.record("p", "kid", "platform", band="adult")
    assert book.band("kid") == "adult"  # this process's write replaced the entry
    with book.db.session() as s:  # another process's write: this one's cache still answers the old band
        s.get(AccountAge, "kid").band = "13-15"
    assert book.band("kid") == "adult"
    book.cache.clear()  # what the TTL does
    assert book.band("kid") == "13-15"


def test_a_rolled_back_signal_never_reaches_the_cache(book):
    book.record("p", "kid", "platform", band="adult")
    with pytest.raises(RuntimeError), book.db.session() as s:
        book.add("p", "kid", "platform", band="under13", session=s)
        raise RuntimeError
    assert book.band("kid") == "adult"
    book.cache.clear()
    assert book.band("kid") == "adult"


def test_bands_answers_many_accounts_and_unknown_for_the_rest(book):
    book.record("p", "a", "platform", band="adult")
    book.record("p", "b", "platform", band="13-15")
    book.cache.clear()
    assert book.bands(["a", "b", "c"]) == {"a": "adult", "b": "13-15", "c": "unknown"}
    assert book.band(None) == "unknown" and len(book.cache) == 3


def test_a_birthday_changes_the_stored_band_on_the_next_read(book):
    book.record("p", "kid", "platform", band="adult")  # a row to age, then a birthday in the past
    with book.db.session() as s:
        row = s.get(AccountAge, "kid")
        row.band, row.changes_at = "under13", utcnow() - dt.timedelta(seconds=1)
    book.cache.clear()
    assert book.resolved("kid").band == "adult"  # resolved again from the signals
    with book.db.session() as s:
        assert s.get(AccountAge, "kid").changes_at is None


def test_record_if_new_skips_an_unchanged_age(book):
    with book.db.session() as s:
        assert book.record_if_new(s, "system", "kid", "chat", 13, confidence=0.6, method="statement")
        assert not book.record_if_new(s, "system", "kid", "chat", 13, confidence=0.6, method="statement")
        assert book.record_if_new(s, "system", "kid", "chat", 14, confidence=0.6, method="statement")
    assert [x["age"] for x in book.signals("kid")] == [14, 13]


def test_list_filters_by_band_and_pages(book):
    for i in range(5):
        book.record("p", f"kid{i}", "platform", band="13-15")
    book.record("p", "grown", "platform", band="adult")
    page = book.list(band="13-15", limit=2, offset=0)
    assert page["total"] == 5 and len(page["accounts"]) == 2
    rest = book.list(band="13-15", limit=10, offset=2)
    ids = {a["account_id"] for a in page["accounts"] + rest["accounts"]}
    assert ids == {f"kid{i}" for i in range(5)}
    with pytest.raises(SafeholdError):
        book.list(band="teen")


def test_concurrent_signals_for_one_account_are_all_weighed(book):
    import threading

    barrier = threading.Barrier(4)

    def record(source, **signal):
        barrier.wait()
        book.record("p", "kid", source, **signal)

    threads = [
        threading.Thread(target=record, args=("platform",), kwargs={"band": "adult"}),
        threading.Thread(target=record, args=("declared",), kwargs={"band": "adult"}),
        threading.Thread(target=record, args=("chat",), kwargs={"age": 13, "confidence": 0.6}),
        threading.Thread(target=record, args=("platform",), kwargs={"band": "adult", "reference": "x"}),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    book.cache.clear()
    assert len(book.signals("kid")) == 4
    assert (book.resolved("kid").band, book.resolved("kid").rule) == ("13-15", "protective")


def test_a_reviewer_who_could_not_tell_leaves_it_to_the_other_rules():
    r = resolve("a", [sig("chat", age=13, confidence=0.6, id=1), sig("reviewer", "unknown", id=2)], TODAY)
    assert (r.band, r.rule, r.signal_id) == ("13-15", "protective", 1)


def test_an_adult_signal_against_a_younger_claim_makes_an_adult_sender_with_an_age_conflict():
    chat14 = sig("chat", age=14, confidence=0.6, id=2)
    r = resolve("a", [sig("platform", "adult", id=1), chat14], TODAY)
    assert (r.band, r.rule, r.sender_band, r.age_conflict) == ("13-15", "protective", "adult", True)
    r = resolve("a", [sig("declared", birth_date=dt.date(1980, 1, 1), id=1), sig("declared", age=14, id=2)], TODAY)
    assert (r.band, r.sender_band, r.age_conflict) == ("13-15", "adult", True)
    # A chat claim of adulthood does not make a child an adult sender; a child's own signals agree: no conflict.
    r = resolve("a", [sig("platform", "13-15", id=1), sig("chat", age=25, confidence=0.6, id=2)], TODAY)
    assert (r.band, r.sender_band, r.age_conflict) == ("13-15", "13-15", False)
    # An older minor band from the platform makes the sender that band (not a conflict: no adult signal).
    r = resolve("a", [sig("platform", "16-17", id=1), chat14], TODAY)
    assert (r.band, r.sender_band, r.age_conflict) == ("13-15", "16-17", False)
    # A reviewer's finding stands for both.
    r = resolve("a", [sig("platform", "adult", id=1), chat14, sig("reviewer", "13-15", id=3)], TODAY)
    assert (r.band, r.sender_band, r.age_conflict) == ("13-15", "13-15", False)
    assert (
        resolve("a", [], TODAY).to_dict() | {"sender_band": "unknown", "age_conflict": False}
        == resolve("a", [], TODAY).to_dict()
    )


def test_an_assurance_result_says_adult_over_a_child_only_when_it_is_sure():
    child = sig("declared", age=12, id=1)
    bare = sig("assurance", "adult", confidence=0.8, method="estimation", id=2)
    assert resolve("a", [child, bare], TODAY).band == "under13"  # a band without an age, not sure enough
    sure = sig("assurance", "adult", confidence=0.95, method="estimation", id=2)
    assert (resolve("a", [child, sure], TODAY).band, resolve("a", [child, sure], TODAY).rule) == ("adult", "assurance")
    verified = sig("assurance", "adult", confidence=0.6, method="verification", id=2)
    assert resolve("a", [child, verified], TODAY).rule == "assurance"
    young_estimate = sig("assurance", age=19, confidence=0.99, method="estimation", id=2)
    assert resolve("a", [child, young_estimate], TODAY, buffer_years=2).band == "under13"  # inside the buffer
    # As a sender, the adult estimate still counts: an age conflict.
    assert resolve("a", [child, bare], TODAY).age_conflict


def test_the_sender_band_is_stored_and_read_back_and_cached_reads_nothing(book):
    book.record("p", "g", "platform", band="adult")
    book.record("p", "g", "chat", age=14, confidence=0.6, method="stated")
    assert book.cached(["g", "nobody"]) is None  # one miss: nothing read, None
    book.cache.clear()
    r = book.bands_resolved(["g"])["g"]  # from the stored row
    assert (r.band, r.sender_band, r.age_conflict) == ("13-15", "adult", True)
    assert book.cached(["g"]) == {"g": r}
    assert book.show("g")["sender_band"] == "adult" and book.show("g")["age_conflict"] is True
