"""The engine: every catalogue figure in a figure set, incremental refresh equal to a full rebuild, refreshes from
two places at once counted once, the refresh setting, rebuild's progress, and the drill-down's checks."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy.exc import OperationalError

from safehold.errors import SafeholdError
from safehold.store.db import Database
from safehold.transparency import engine
from safehold.transparency.engine import NOT_COMPUTED, Facts, check_filters
from safehold.transparency.figures import CATALOGUE
from safehold.transparency.periods import parse_period
from tests.review.helpers import media_case
from tests.transparency.helpers import decide, facts_table, move, noon, world


def _code(call, *args) -> tuple[str, int]:
    with pytest.raises(SafeholdError) as e:
        call(*args)
    return e.value.code, e.value.status


def test_every_catalogue_figure_is_in_the_set(svc):
    fs = Facts(svc.db).figures(parse_period("last-7d"))
    assert set(fs.figures) == set(CATALOGUE)
    owned = {k for f in engine.fam.FAMILIES for k in f.keys}
    assert "cases.daily" in owned
    for key, fig in fs.figures.items():
        assert (fig.note == NOT_COMPUTED) == (key not in owned), key


def test_filters_and_rows_are_checked(svc):
    facts, p = Facts(svc.db), parse_period("last-7d")
    assert check_filters({"source": "classifier", "queue": ""}) == {"source": "classifier"}
    assert _code(facts.figures, p, {"colour": "red"}) == ("transparency.bad_filter", 400)
    assert _code(facts.records, "nope", p, {}, {}) == ("transparency.unknown_figure", 404)
    assert _code(facts.records, "scans.volume", p, {}, {}) == ("transparency.no_records", 400)
    assert _code(facts.records, "cases.daily", p, {}, {"band": "P1"}) == ("transparency.bad_row", 400)
    assert _code(facts.records, "cases.daily", p, {}, {"day": "yesterday"}) == ("transparency.bad_row", 400)
    assert _code(facts.records, "cases.sla", p, {}, {"band": "P" * 201}) == ("transparency.bad_row", 400)


def test_incremental_refresh_equals_a_full_rebuild(svc):
    ids = world(svc)
    facts = Facts(svc.db)
    first = facts.refresh()
    assert first["cases"] >= 11  # the first refresh rolls up from the first record (ten days ago) to today
    assert set(facts.refresh().values()) == {0}  # fresh: every family left alone
    # Records change after the refresh: a decision today, a case opened yesterday, one decided late.
    decide(svc, ids["fresh"], "not_violating")
    yesterday = media_case(svc, 8)[0]
    move(svc, yesterday, noon(1))
    decide(svc, ids["waiting"], "not_violating")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    again = facts.refresh(later, force=True)
    assert 2 <= again["cases"] < first["cases"]  # the settle margin and today, plus the old case's due day
    incremental = facts_table(svc)
    facts.rebuild()
    assert facts_table(svc) == incremental
    figures = facts.figures(parse_period("last-30d"))
    assert figures["cases.daily"].total("opened") == 8 and figures["cases.daily"].total("closed") == 5


def test_rebuild_reports_progress_and_status(svc):
    world(svc)
    facts = Facts(svc.db)
    seen = []
    start = noon(40).date()
    days = facts.rebuild(start, progress=lambda done, total: seen.append((done, total)))
    families = len(engine.fam.FAMILIES)
    assert days == 41 * families and seen[-1] == (days, days)
    assert len(seen) == 2 * families  # two chunks of at most 31 days each
    status = {s["family"]: s for s in facts.status()}["cases"]
    assert status["facts"] > 0 and status["refreshed_at"] and "cases.daily" in status["figures"]
    assert status["first_day"] == noon(10).date().isoformat()
    assert status["last_day"] == dt.datetime.now(dt.UTC).date().isoformat()


def test_figures_refresh_when_the_facts_are_older_than_the_setting(svc):
    facts = Facts(svc.db, refresh_seconds=3600)
    p = parse_period("last-7d")
    assert facts.figures(p)["cases.daily"].total("opened") == 0  # the first read refreshes (nothing yet)
    media_case(svc, 1)
    assert facts.figures(p)["cases.daily"].total("opened") == 0  # within the hour: the facts as they were
    assert Facts(svc.db, refresh_seconds=0).figures(p)["cases.daily"].total("opened") == 1
    assert svc.transparency_facts.refresh_seconds == svc.settings.transparency_refresh_seconds == 10


def test_a_store_too_busy_to_refresh_shows_the_stored_facts(svc, monkeypatch, caplog):
    """A long writer holding the store past its lock timeout must not fail the overview once facts exist; before
    the first roll-up there is nothing to show, and the error stands."""
    p = parse_period("last-7d")
    stale = Facts(svc.db, refresh_seconds=0)

    def busy(*_a, **_k):
        raise OperationalError("INSERT INTO transparency_refresh …", {}, Exception("database is locked"))

    monkeypatch.setattr(stale, "refresh", busy)
    with pytest.raises(OperationalError):
        stale.figures(p)  # never rolled up
    Facts(svc.db).refresh()
    media_case(svc, 1)
    assert stale.figures(p)["cases.daily"].total("opened") == 0  # the stored facts, a refresh behind
    assert "transparency facts not refreshed" in caplog.text


def test_two_refreshes_at_once_count_once(svc):
    """Two processes (two connection pools) refreshing the same facts at the same moment: both succeed, one after
    the other, and nothing is counted twice."""
    world(svc)
    url = svc.settings.effective_database_url
    dbs = [Database(url), Database(url)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(db, rebuild: bool):
        try:
            barrier.wait()
            facts = Facts(db)
            facts.rebuild() if rebuild else facts.refresh(force=True)
            facts.refresh(force=True)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    try:
        threads = [threading.Thread(target=run, args=(db, i == 0)) for i, db in enumerate(dbs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        for db in dbs:
            db.dispose()
    assert errors == []
    fs = Facts(svc.db, refresh_seconds=3600).figures(parse_period("last-30d"))
    assert fs["cases.daily"].total("opened") == 7 and fs["cases.daily"].total("closed") == 3
    assert fs["actions.by_kind"].total() == 4


def test_a_refresh_far_behind_rolls_up_in_chunks(svc, monkeypatch):
    """Forty days behind: the refresh replaces them in transactions of at most CHUNK_DAYS days (a request never
    holds the writer lock for the whole gap) and ends with the same facts as a rebuild."""
    from sqlalchemy import update

    from safehold.store.models import TransparencyRefresh

    world(svc)
    facts = Facts(svc.db, families=[f for f in engine.fam.FAMILIES if f.name == "cases"])
    facts.refresh()
    with svc.db.session() as s:
        s.execute(update(TransparencyRefresh).values(refreshed_at=noon(40)))
    replaced = []
    real = Facts._replace

    def spy(s, family, start, end):
        replaced.append((end - start).days)
        real(s, family, start, end)

    monkeypatch.setattr(Facts, "_replace", staticmethod(spy))
    done = facts.refresh()
    assert done["cases"] == sum(replaced) >= 41
    assert len(replaced) >= 2 and max(replaced) <= engine.CHUNK_DAYS
    incremental = facts_table(svc)
    facts.rebuild()
    assert facts_table(svc) == incremental
