"""Search-guard metrics (Principle 6): what is counted per action, category, variant and locale, suggestions
removed, help clicks, flushing that survives a failure, and nothing query-like in the table."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from safehold.errors import SafeholdError
from safehold.rules.search import CATEGORIES, variant_summary
from safehold.store.models import SearchCount

# Synthetic list: "zqxcode" stands in for a coded CSAM term so no real one appears in the tests.
SYNTHETIC = "term,category,severity\nzqxcode,csam,3\nteen,minor_ambiguous,1\nnude,sexual,1\n"


@pytest.fixture
def search(svc):
    svc.terms.put("synthetic", SYNTHETIC, "test")
    return svc.search


def rows(svc) -> list[tuple]:
    with svc.db.session() as s:
        return sorted(
            (r.day, r.kind, r.action, r.category, r.variant, r.locale, r.count) for r in s.scalars(select(SearchCount))
        )


def test_checks_are_counted_per_action_category_variant_and_locale(svc, search):
    today = dt.datetime.now(dt.UTC).date().isoformat()
    for _ in range(3):
        assert search.check("weather in lisbon", "en")["action"] == "allow"
    blocked = search.check("zqxcode videos", "pt-BR", "bucket-1")
    assert blocked["action"] == "block" and blocked["locale"] == "pt"
    search.check("ZQXCODE", "pt_BR", "bucket-1")
    warned = search.check("teen nude", "xx-YY", "bucket-2")  # unknown locale: the default messages
    assert warned["action"] == "warn" and warned["locale"] == "en"
    assert rows(svc) == [], "counted in memory until the upkeep loop flushes"
    search.flush_counts()
    assert rows(svc) == sorted(
        [
            (today, "check", "allow", "", "", "en", 3),
            (today, "check", "block", "csam", blocked["variant"], "pt", 2),
            (today, "check", "warn", "minor_ambiguous_sexual", warned["variant"], "en", 1),
        ]
    )
    search.check("weather in lisbon", "en-GB")
    search.flush_counts()
    assert (today, "check", "allow", "", "", "en", 4) in rows(svc), "flushes add up"


def test_suggestions_and_help_clicks(svc, search):
    kept, removed = search.filter_suggestions(["pizza near me", "zqxcode", "teen nude", "zqxcode 2"], "de")
    assert kept == ["pizza near me"] and removed == {"csam": 2, "minor_ambiguous_sexual": 1}
    variant = svc.terms.current().guard.variants[0]
    assert search.help_click("csam", variant, "de-AT") == {
        "counted": True,
        "category": "csam",
        "variant": variant,
        "locale": "de",
    }
    search.help_click("sextortion", variant, "en")
    stats = search.stats(7)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert {(r["kind"], r["action"], r["category"], r["variant"], r["locale"], r["count"]) for r in stats} == {
        ("suggestion", "remove", "csam", None, None, 2),
        ("suggestion", "remove", "minor_ambiguous_sexual", None, None, 1),
        ("help_click", None, "csam", variant, "de", 1),
        ("help_click", None, "sextortion", variant, "en", 1),
    }
    assert all(r["day"] == today for r in stats)


def test_help_click_validation(search):
    assert "csam" in CATEGORIES and "sextortion" in CATEGORIES
    with pytest.raises(SafeholdError) as e:
        search.help_click("weather", "help", "en")
    assert e.value.code == "search.unknown_category" and e.value.status == 422
    with pytest.raises(SafeholdError) as e:
        search.help_click("csam", "shouty", "en")
    assert e.value.code == "search.unknown_variant" and e.value.status == 422
    assert search.stats() == []


def test_flush_survives_a_failure(svc, search, monkeypatch):
    search.check("zqxcode", "en", "b")
    search.filter_suggestions(["zqxcode"])

    class Broken:
        def session(self):
            raise RuntimeError("database down")

    monkeypatch.setattr(search._counts, "db", Broken())
    with pytest.raises(RuntimeError):
        search.flush_counts()
    search.check("zqxcode", "en", "b")  # counted meanwhile
    monkeypatch.undo()
    search.flush_counts()
    counts = {(r[1], r[3]): r[6] for r in rows(svc)}
    assert counts == {("check", "csam"): 2, ("suggestion", "csam"): 1}


def test_upkeep_and_close_flush(svc, search):
    search.check("zqxcode", "en")
    svc.maintain_once()
    assert sum(r[6] for r in rows(svc)) == 1
    search.check("zqxcode", "en")
    svc.close()  # a stopping process keeps what it counted
    assert sum(r[6] for r in rows(svc)) == 2


def test_nothing_query_like_is_stored(svc, search):
    secret_query, secret_bucket = "zqxcode from examplecity", "session-hash-1234"
    search.check(secret_query, "en", secret_bucket)
    search.check("a perfectly ordinary query", "en", secret_bucket)
    search.filter_suggestions([secret_query + " more"])
    search.flush_counts()
    stored = " ".join(str(v) for r in rows(svc) for v in r)
    for fragment in ("zqxcode", "examplecity", "ordinary", "session-hash", "1234"):
        assert fragment not in stored
    columns = set(SearchCount.__table__.columns.keys())
    assert columns == {"id", "day", "kind", "action", "category", "variant", "locale", "count"}


def test_variant_summary():
    counts = [
        {"kind": "check", "action": "block", "category": "csam", "variant": "help", "count": 10},
        {"kind": "check", "action": "allow", "category": None, "variant": None, "count": 99},
        {"kind": "help_click", "action": None, "category": "csam", "variant": "help", "count": 2},
        {"kind": "check", "action": "warn", "category": "sextortion", "variant": "deterrence", "count": 4},
        {"kind": "suggestion", "action": "remove", "category": "csam", "variant": None, "count": 5},
    ]
    assert variant_summary(counts) == {
        "deterrence": {"shown": 4, "help_clicks": 0, "click_rate": 0.0},
        "help": {"shown": 10, "help_clicks": 2, "click_rate": 0.2},
    }
