"""The case, decision and action figures against a world of cases counted by hand (tests/transparency/helpers.py),
their drill-downs, filters, and the SLA of a late decision on an old case."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from safehold.transparency.engine import Facts
from safehold.transparency.families.cases import bucket_high, bucket_low, quantile
from safehold.transparency.periods import parse_period
from tests.review.helpers import ALICE
from tests.transparency.helpers import bands, decide, noon, world


@pytest.fixture
def setup(svc):
    ids = world(svc)
    return svc, ids, Facts(svc.db, refresh_seconds=0)


def _day(days_ago: int) -> str:
    return noon(days_ago).date().isoformat()


def _past(days: int = 1):
    start = noon(10).date()
    return parse_period(f"{start}..{start + dt.timedelta(days=days - 1)}")


def test_a_past_day_counted_by_hand(setup):
    svc, ids, facts = setup
    fs = facts.figures(_past())
    assert fs["cases.daily"].rows == ((_day(10), 5, 3),)
    assert set(fs["cases.by_source"].rows) == {("classifier", "media", 4, 2), ("hash_match", "media", 1, 1)}
    assert set(fs["decisions.by_outcome"].rows) == {("csam", "A1", 1), ("csam", "A2", 1), ("not_violating", "", 1)}
    assert set(fs["decisions.second_review"].rows) == {("confirmed", 1), ("overturned", 1)}
    assert set(fs["actions.by_kind"].rows) == {
        ("block_content", "automatic", 1),
        ("remove_content", "after_decision", 2),
        ("suspend_account", "manual", 1),
    }
    # Not closed at the end of that day: the one never decided and the overturned one, each in its band.
    waiting, overturned = bands(svc, ids["waiting"], ids["overturned"])
    assert Counter({r[1]: r[2] for r in fs["cases.backlog"].rows}) == Counter([waiting, overturned])
    assert {r[0] for r in fs["cases.backlog"].rows} == {"open"}


def test_time_to_decision_from_the_histogram(setup):
    svc, ids, facts = setup
    rows = {r[0]: r[1:] for r in facts.figures(_past())["decisions.time_to_decision"].rows}
    assert sum(r[2] for r in rows.values()) == 4  # known, confirmed, late, overturned: first decisions that day
    for name, secs in (("known", 100), ("confirmed", 1000), ("late", 10000)):
        (band,) = bands(svc, ids[name])
        if rows[band][2] == 1:  # alone in its band: the median is its own time, within a bucket (19 %)
            assert secs / 1.19 <= rows[band][0] <= secs * 1.19, (name, rows[band])


def test_quantiles_interpolate_within_buckets():
    assert quantile({}, 0.5) == 0.0
    assert bucket_low(0) == 0.0 and bucket_high(0) == pytest.approx(2**0.25)
    hist = {40: 10}  # ten decisions all in [1024, 1217.7) seconds
    assert quantile(hist, 0.5) == pytest.approx(1024 + (bucket_high(40) - 1024) * 0.5)
    assert bucket_low(40) <= quantile(hist, 0.9) <= bucket_high(40)
    assert quantile({4: 1, 40: 9}, 0.1) <= bucket_high(4)


def test_sla_met_breached_and_overdue(setup):
    svc, ids, facts = setup
    rows = facts.figures(_past(9))["cases.sla"].rows
    assert [sum(r[i] for r in rows) for i in (1, 2, 3, 4)] == [5, 2, 1, 2]
    late, waiting = bands(svc, ids["late"], ids["waiting"])
    assert {r[0]: r for r in rows}[late][3] >= 1 and {r[0]: r for r in rows}[waiting][4] >= 1


def test_a_late_decision_on_an_old_case_updates_its_sla_day(setup):
    """The undecided case was due days before the refresh window: its day is rolled up again when it is
    decided, and the SLA says it was breached."""
    svc, ids, facts = setup
    facts.refresh()
    before = facts.figures(_past(9))["cases.sla"].rows
    assert sum(r[4] for r in before) == 2
    decide(svc, ids["waiting"], "not_violating", who=ALICE)
    after = facts.figures(_past(9))["cases.sla"].rows
    assert [sum(r[i] for r in after) for i in (1, 2, 3, 4)] == [5, 2, 2, 1]


def test_the_backlog_of_a_current_period_is_live(setup):
    svc, ids, facts = setup
    fs = facts.figures(parse_period("last-30d"))
    got = Counter()
    for status, _band, n in fs["cases.backlog"].rows:
        got[status] += n
    assert got == Counter({"open": 3, "escalated": 1})  # waiting, fresh, report; overturned
    assert fs["cases.daily"].total("opened") == 7 and fs["cases.daily"].total("closed") == 3
    assert all(o or c for _, o, c in fs["cases.daily"].rows)  # only days with something (charts draw the rest)


def test_filters(setup):
    svc, ids, facts = setup
    fs = facts.figures(parse_period("last-30d"), {"source": "hash_match"})
    assert fs["cases.daily"].total("opened") == 1 and fs["cases.daily"].total("closed") == 1
    assert set(fs["actions.by_kind"].rows) == {
        ("block_content", "automatic", 1),
        ("remove_content", "after_decision", 1),
    }
    assert fs["cases.backlog"].rows == ()
    fs = facts.figures(parse_period("last-30d"), {"queue": "report"})
    assert fs["cases.by_source"].rows == (("user_report", "report", 1, 0),)
    assert [r[:2] for r in fs["cases.backlog"].rows] == [("open", bands(svc, ids["report"])[0])]


def _counted(fig, row: tuple) -> int:
    """What the drill-down of a row must list: the cases (or decisions, actions) its first value counts."""
    key = fig.spec.key
    named = dict(zip(fig.spec.columns, row, strict=True))
    if key in ("cases.daily", "cases.by_source"):
        return named["opened"] + named["closed"]
    if key == "decisions.time_to_decision":
        return named["decided"]
    if key == "cases.sla":
        return named["due"]
    return named[fig.spec.values[0]]


@pytest.mark.parametrize("period", ["past", "last-30d"])
def test_each_rows_drill_down_lists_exactly_its_records(setup, period):
    svc, ids, facts = setup
    p = _past(9) if period == "past" else parse_period("last-30d")
    for filters in ({}, {"source": "classifier"}):
        fs = facts.figures(p, filters)
        for key in ("cases.daily", "cases.by_source", "cases.backlog", "cases.sla", "decisions.time_to_decision",
                    "decisions.by_outcome", "decisions.second_review", "actions.by_kind"):  # fmt: skip
            fig = fs[key]
            for row in fig.rows:
                cells = {d: str(v) for d, v in zip(fig.spec.dims, row, strict=False)}
                listed = list(facts.records(key, p, filters, cells))
                assert len(listed) == _counted(fig, row), (key, filters, row, listed)
                assert all("case_id" in r for r in listed)
    actions = list(facts.records("actions.by_kind", p, {}, {"origin": "manual"}))
    assert [(r["case_id"], "action_id" in r) for r in actions] == [(ids["waiting"], True)]


@pytest.mark.parametrize("rows", ["opened", "closed", "first", "due", "second", "actions"])
def test_a_days_roll_up_reads_through_a_timestamp_index(svc, rows):
    """One day of records is an index range, not a scan of every case (SQLite's plan; PostgreSQL chooses by
    statistics, so an empty test database says nothing there)."""
    if not svc.db.is_sqlite:
        pytest.skip("query plans are checked on SQLite")
    from sqlalchemy import text

    from safehold.transparency.families import cases as fam

    start = noon(1).replace(hour=0)
    source = {"opened": fam.OPENED, "closed": fam.CLOSED, "first": fam.FIRST, "due": fam.DUE,
              "second": fam.SECOND, "actions": fam.ACTIONS}[rows]  # fmt: skip
    with svc.db.session() as s:
        q = source.query(s, start, start + dt.timedelta(days=1), start)
        sql = str(q.compile(s.get_bind(), compile_kwargs={"literal_binds": True}))
        plan = " ".join(str(r) for r in s.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    index = {"opened": "ix_cases_opened_at", "closed": "ix_cases_closed_at", "first": "ix_case_decisions_at",
             "due": "ix_cases_due_at", "second": "ix_case_decisions_at",
             "actions": "ix_case_actions_created_at"}  # fmt: skip
    assert index[rows] in plan, plan


def test_an_overturn_after_the_roll_up_moves_the_decision_to_its_new_band(svc):
    """The first decision's day was rolled up with the case's band then; the overturn escalates the case (its band
    rises) after that day left the refresh window: the next refresh rolls the day up again, so the figure's row and
    its drill-down name the same band and the same case."""
    from tests.review.helpers import BOB, media_case
    from tests.transparency.helpers import move

    facts = Facts(svc.db, refresh_seconds=0)
    case_id, _ = media_case(svc, 7)
    decide(svc, case_id, "csam", "A1", who=ALICE)  # awaits a second reviewer
    move(svc, case_id, noon(10))
    facts.refresh(force=True)
    p = parse_period("last-30d")
    (before,) = bands(svc, case_id)
    assert [r[0] for r in facts.figures(p)["decisions.time_to_decision"].rows] == [before]
    svc.review.confirm(case_id, BOB, agree=False)  # overturned: escalated, its band rises
    (after,) = bands(svc, case_id)
    assert after != before
    facts.refresh(force=True)
    rows = facts.figures(p)["decisions.time_to_decision"].rows
    assert [(r[0], r[-1]) for r in rows] == [(after, 1)]
    listed = list(facts.records("decisions.time_to_decision", p, {}, {"band": after}))
    assert [r["case_id"] for r in listed] == [case_id]


def test_the_live_figures_read_an_index_alone(svc):
    """The backlog now and the SLA's undecided cases are counted on every overview read: each is a search of a
    covering index (no case row read), so the overview stays fast with a large backlog (SQLite's plan)."""
    if not svc.db.is_sqlite:
        pytest.skip("query plans are checked on SQLite")
    from sqlalchemy import event

    facts = Facts(svc.db, refresh_seconds=10**9)
    facts.refresh()
    seen: list[tuple] = []

    def spy(conn, cursor, statement, params, context, many):
        if "FROM cases" in statement and "transparency_facts" not in statement:
            seen.append((statement, params))

    engine = svc.db.engine
    event.listen(engine, "before_cursor_execute", spy)
    try:
        facts.figures(parse_period("last-30d"))
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert len(seen) == 2, seen  # the backlog and the SLA's undecided cases
    with engine.connect() as c:
        for statement, params in seen:
            plan = " ".join(str(r) for r in c.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params))
            assert "COVERING INDEX ix_cases_live" in plan, plan
