"""The detections family: real records made through the services (a scan matching an exchange's entry and one
matching the platform's own, classifier and grooming signals, reviewers' decisions, scan and search counters),
rolled up into daily facts, summed into figures checked against hand counts, and traced back to exactly the
records counted."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, select, update

from safehold.auth.apikeys import Principal
from safehold.banks.service import BANK_PDQ_MODE, exchange_publisher, file_records
from safehold.cases.service import Detection, DetectionSignal
from safehold.errors import SafeholdError
from safehold.signals import registry as registry_signals
from safehold.store.models import Bank, Case, CaseSignal, ExchangeRow, ScanCount
from safehold.transparency.families import FAMILIES, Fact
from safehold.transparency.families import detections as family
from safehold.transparency.families.detections import FAMILY
from safehold.transparency.figures import CATALOGUE
from safehold.transparency.periods import Period
from tests.media import jpeg
from tests.review.helpers import ALICE

PLATFORM = Principal(name="platform", role="platform", key_prefix="sh_one")
TODAY = dt.datetime.now(dt.UTC).date()
D1, D2 = TODAY - dt.timedelta(days=2), TODAY - dt.timedelta(days=1)
PERIOD = Period("test", D1, TODAY + dt.timedelta(days=1))


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def scanned_case(svc, seed: int, content: str) -> int:
    data = jpeg(seed)
    out = svc.events.scanned(PLATFORM, svc.scans.scan_bytes(data), data, content_id=content)
    [ref] = out["cases"]
    return ref["id"]


def recorded(svc, source: str, content: str, signals: list[DetectionSignal]) -> int:
    return svc.cases.record(Detection(source=source, content_id=content, signals=signals), actor="apikey:t").id


def decide(svc, case_id: int, decision: str, classification: str | None = None) -> None:
    svc.cases.claim(case_id, ALICE.label)
    svc.review.decide(case_id, ALICE, decision, classification)


def move(svc, case_id: int, day: dt.date, *, signal_ids: list[int] | None = None, closed: bool = False) -> None:
    """Date a case's signals (or some of them), or its closing, to ``day`` (records made today, dated as if
    recorded then)."""
    with svc.db.session() as s:
        if closed:
            s.execute(update(Case).where(Case.id == case_id).values(closed_at=at(day, 15)))
            return
        q = update(CaseSignal).where(CaseSignal.case_id == case_id)
        if signal_ids is not None:
            q = q.where(CaseSignal.id.in_(signal_ids))
        s.execute(q.values(at=at(day)))


def signal_ids(svc, case_id: int) -> list[int]:
    with svc.db.session() as s:
        return list(s.scalars(select(CaseSignal.id).where(CaseSignal.case_id == case_id).order_by(CaseSignal.id)))


@pytest.fixture
def world(svc):
    """Case A: a scan matching the ``peer`` exchange's entries (its MD5 and PDQ), on D1, closed not violating on
    D2. Case B: a scan matching the platform's own bank, on D2, closed as CSAM today. Case C: a classifier hit on
    D1 and a second hit of the same classifier and label on D2, closed not violating today. Case D: grooming,
    today, open. Two more scans match nothing; three search checks."""
    peer_bank, own = svc.banks.create("peer-list"), svc.banks.create("own")
    with svc.db.session() as s:
        ex = ExchangeRow(name="peer", type="fakefb", bank_id=peer_bank.id, settings={})
        s.add(ex)
        s.flush()
        publisher = exchange_publisher(ex.id)
    hashed = registry_signals.hash_content(jpeg(1), pdq_mode=BANK_PDQ_MODE)
    svc.banks.add_records("peer-list", file_records(hashed, source="peer", external_id="E-1"), publisher=publisher)
    svc.banks.add_file(own.name, jpeg(2), source="review")
    a, b = scanned_case(svc, 1, "content-a"), scanned_case(svc, 2, "content-b")
    for seed in (3, 4):
        svc.scans.scan_bytes(jpeg(seed))
    hit = {"source": "classifier", "signal_type": "nudity-v1", "category": "nudity", "confidence": 0.9}
    c = recorded(svc, "classifier", "content-c", [DetectionSignal(**hit)])
    first_c = signal_ids(svc, c)
    assert recorded(svc, "classifier", "content-c", [DetectionSignal(**hit)]) == c  # the open case gains it
    d = recorded(svc, "grooming", "conv-d", [DetectionSignal(source="grooming", category="grooming", confidence=0.8)])
    move(svc, a, D1)
    move(svc, b, D2)
    move(svc, c, D1, signal_ids=first_c)
    move(svc, c, D2, signal_ids=[i for i in signal_ids(svc, c) if i not in first_c])
    decide(svc, a, "not_violating")
    decide(svc, b, "csam", "A1")
    decide(svc, c, "not_violating")
    move(svc, a, D2, closed=True)
    for q in ("weather tomorrow", "recipes", "cats"):
        svc.search.check(q)
    svc.scans.flush_counts()
    svc.search.flush_counts()
    return {"a": a, "b": b, "c": c, "d": d}


def rolled(svc, start: dt.date = D1, end: dt.date = PERIOD.end) -> list[Fact]:
    with svc.db.session() as s:
        return list(FAMILY.rollup(s, at(start, 0), at(end, 0)))


class Reader:
    """The engine's fact reader over a list: the facts of some days, and their sums per dimensions (and day)."""

    def __init__(self, facts: list[Fact]):
        self.facts = facts

    def __call__(self, start: dt.date, end: dt.date) -> list[Fact]:
        return [f for f in self.facts if start <= f.day < end]

    def totals(self, start: dt.date, end: dt.date, family: str, *, by_day: bool = False) -> list[Fact]:
        sums: dict[tuple, list] = {}
        for f in self(start, end):
            if f.family == family:
                acc = sums.setdefault((f.day if by_day else start, f.dims), [0, 0.0])
                acc[0] += f.value
                acc[1] += f.total
        return [Fact(day, family, dims, v, t) for (day, dims), (v, t) in sums.items()]


def figures(svc, facts: list[Fact], period: Period = PERIOD, **filters) -> dict:
    with svc.db.session() as s:
        out = FAMILY.fill(Reader(facts), s, period, filters, dt.datetime.now(dt.UTC))
    return {k: f.dicts() for k, f in out.items()}


def records(svc, key: str, row: dict, period: Period = PERIOD, **filters) -> list[dict]:
    with svc.db.session() as s:
        return list(FAMILY.records(s, key, period, filters, row))


def pairs(svc, *case_ids: int) -> list[dict]:
    return [{"case_id": c, "signal_id": i} for c in case_ids for i in signal_ids(svc, c)]


def test_registered_and_owns_its_figures():
    assert FAMILY in FAMILIES
    assert set(FAMILY.keys) <= set(CATALOGUE)
    assert FAMILY.name == "detections"


def test_figures_match_hand_counts(svc, world):
    figs = figures(svc, rolled(svc))
    assert figs["detections.daily"] == [
        {"day": D1.isoformat(), "source": "classifier", "signals": 1},
        {"day": D1.isoformat(), "source": "hash_match", "signals": 2},
        {"day": D2.isoformat(), "source": "classifier", "signals": 1},
        {"day": D2.isoformat(), "source": "hash_match", "signals": 2},
        {"day": TODAY.isoformat(), "source": "grooming", "signals": 1},
    ]
    assert figs["detections.by_source"] == [
        {"source": "classifier", "signals": 2, "cases": 1},
        {"source": "grooming", "signals": 1, "cases": 1},
        {"source": "hash_match", "signals": 4, "cases": 2},
    ]
    assert figs["detections.by_bank"] == [
        {"bank": "own", "exchange": "", "matches": 2, "cases": 1},
        {"bank": "peer-list", "exchange": "peer", "matches": 2, "cases": 1},
    ]
    assert figs["detections.by_classifier"] == [{"classifier": "nudity-v1", "label": "nudity", "hits": 2, "cases": 1}]
    assert figs["errors.false_positives"] == [
        {"detector_kind": "bank", "detector": "own", "reviewed": 1, "false_positives": 0, "rate": 0.0},
        {"detector_kind": "bank", "detector": "peer-list", "reviewed": 1, "false_positives": 1, "rate": 1.0},
        {"detector_kind": "classifier", "detector": "nudity-v1", "reviewed": 1, "false_positives": 1, "rate": 1.0},
        {"detector_kind": "exchange", "detector": "peer", "reviewed": 1, "false_positives": 1, "rate": 1.0},
    ]
    assert {(r["media"], r["verdict"]): r["scans"] for r in figs["scans.volume"]} == {
        ("image", "match"): 2,
        ("image", "no_match"): 2,
    }
    assert sum(r["count"] for r in figs["search.interventions"] if r["kind"] == "check") == 3


def test_days_add_up_and_a_case_counts_on_the_day_of_its_first_signal(svc, world):
    """Facts rolled up a day at a time are the facts of the whole range; a case's distinct count sits on the day
    of its first signal of the row's kind, so a period holding only a later signal counts the signal, not the
    case again."""
    whole = rolled(svc)
    daily = [f for d in PERIOD.each_day() for f in rolled(svc, d, d + dt.timedelta(days=1))]
    assert sorted(whole, key=repr) == sorted(daily, key=repr)
    d2 = Period("d2", D2, TODAY)
    figs = figures(svc, whole, d2)
    assert figs["detections.by_classifier"] == [{"classifier": "nudity-v1", "label": "nudity", "hits": 1, "cases": 0}]
    assert figs["detections.by_bank"] == [{"bank": "own", "exchange": "", "matches": 2, "cases": 1}]
    # A rolled up on its own still knows C's first hit was on D1.
    assert figures(svc, rolled(svc, D2, TODAY), d2)["detections.by_classifier"][0]["cases"] == 0
    # Reviewed cases count on their closing day: A closed on D2, B and C today.
    assert [(r["detector"], r["reviewed"]) for r in figs["errors.false_positives"]] == [
        ("peer-list", 1),
        ("peer", 1),
    ]


def test_filters_by_the_cases_source_and_queue(svc, world):
    facts = rolled(svc)
    text = figures(svc, facts, queue="text")
    assert text["detections.by_source"] == [{"source": "grooming", "signals": 1, "cases": 1}]
    assert text["detections.by_bank"] == [] and text["errors.false_positives"] == []
    opened_by_classifier = figures(svc, facts, source="classifier")
    assert opened_by_classifier["detections.by_source"] == [{"source": "classifier", "signals": 2, "cases": 1}]
    # by_bank and by_classifier honour the queue alone: a source filter leaves them whole.
    assert len(opened_by_classifier["detections.by_bank"]) == 2
    # Counters have no case behind them: no filter applies.
    assert opened_by_classifier["scans.volume"] == figures(svc, facts)["scans.volume"]


def test_drill_down_lists_exactly_the_counted_records(svc, world):
    a, b, c, d = world["a"], world["b"], world["c"], world["d"]
    figs = figures(svc, rolled(svc))
    hashes = records(svc, "detections.by_source", {"source": "hash_match"})
    assert hashes == pairs(svc, a, b)
    assert len(hashes) == next(r["signals"] for r in figs["detections.by_source"] if r["source"] == "hash_match")
    assert records(svc, "detections.by_bank", {"bank": "peer-list", "exchange": "peer"}) == pairs(svc, a)
    assert records(svc, "detections.by_bank", {"bank": "own", "exchange": ""}) == pairs(svc, b)
    assert records(svc, "detections.by_classifier", {"classifier": "nudity-v1", "label": "nudity"}) == pairs(svc, c)
    day2 = records(svc, "detections.daily", {"day": D2.isoformat(), "source": "classifier"})
    assert day2 == [{"case_id": c, "signal_id": signal_ids(svc, c)[1]}]
    assert records(svc, "detections.by_source", {"source": "grooming"}, queue="text") == pairs(svc, d)
    assert records(svc, "detections.by_source", {"source": "grooming"}, queue="media") == []
    # One record per reviewed case, with the detector's first signal on it.
    fp = records(svc, "errors.false_positives", {"detector_kind": "exchange", "detector": "peer"})
    assert fp == [{"case_id": a, "signal_id": signal_ids(svc, a)[0]}]
    banks = records(svc, "errors.false_positives", {"detector_kind": "bank"})
    assert [r["case_id"] for r in banks] == [a, b]


def test_drill_down_streams_without_a_cap(svc, world, monkeypatch):
    monkeypatch.setattr(family, "STREAM_BATCH", 1)
    everything = records(svc, "detections.by_source", {})
    assert everything == pairs(svc, *sorted(world.values()))


def test_a_drill_down_row_is_checked(svc, world):
    for key, row in (
        ("detections.daily", {"day": "yesterday"}),
        ("detections.daily", {"day": (TODAY + dt.timedelta(days=3)).isoformat()}),
        ("errors.false_positives", {"detector_kind": "oracle"}),
    ):
        with pytest.raises(SafeholdError) as e:
            records(svc, key, row)
        assert e.value.code == "transparency.bad_row"
    with pytest.raises(SafeholdError) as e:
        records(svc, "scans.volume", {"media": "image"})
    assert e.value.code == "transparency.no_records"


def test_an_entry_no_exchange_publishes_any_more_counts_as_the_platforms(svc, world):
    """The exchange of a match is read from the entry's publishers when the facts are rolled up."""
    with svc.db.session() as s:
        ex = s.scalars(select(ExchangeRow).where(ExchangeRow.name == "peer")).one()
        s.delete(ex)
        assert s.get(Bank, ex.bank_id) is not None
    assert figures(svc, rolled(svc))["detections.by_bank"][1] == {
        "bank": "peer-list",
        "exchange": "",
        "matches": 2,
        "cases": 1,
    }


def test_an_entry_two_exchanges_publish_counts_under_the_first_configured(svc, world):
    """One row per match: the second exchange feeding the same bank and listing the same hashes changes nothing."""
    with svc.db.session() as s:
        bank_id = s.scalars(select(Bank.id).where(Bank.name == "peer-list")).one()
        second = ExchangeRow(name="a-second", type="fakefb", bank_id=bank_id, settings={})
        s.add(second)
        s.flush()
        publisher = exchange_publisher(second.id)
    hashed = registry_signals.hash_content(jpeg(1), pdq_mode=BANK_PDQ_MODE)
    svc.banks.add_records("peer-list", file_records(hashed, source="a-second", external_id="X-1"), publisher=publisher)
    figs = figures(svc, rolled(svc))
    assert [(r["bank"], r["exchange"], r["matches"]) for r in figs["detections.by_bank"]] == [
        ("own", "", 2),
        ("peer-list", "peer", 2),
    ]
    assert ("exchange", "a-second") not in {(r["detector_kind"], r["detector"]) for r in figs["errors.false_positives"]}


def test_rollup_is_a_fixed_number_of_grouped_queries(svc, world):
    """The work is GROUP BY in the database: as many statements for a busy store as for an empty day."""
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(svc.db.engine, "before_cursor_execute", count)
    try:
        rolled(svc)
        busy = len(statements)
        statements.clear()
        rolled(svc, TODAY + dt.timedelta(days=5), TODAY + dt.timedelta(days=6))
    finally:
        event.remove(svc.db.engine, "before_cursor_execute", count)
    assert busy == len(statements) == 9
    assert all("GROUP BY" in q for q in statements)


def test_the_first_day_is_that_of_the_first_signal_or_counter(svc, world):
    with svc.db.session() as s:
        assert FAMILY.first_day(s) == D1
        s.execute(update(CaseSignal).values(at=at(TODAY)))
        assert FAMILY.first_day(s) == TODAY
        s.execute(update(ScanCount).values(day=D2.isoformat()))
        assert FAMILY.first_day(s) == D2


def test_an_empty_store_has_empty_figures(svc):
    with svc.db.session() as s:
        assert FAMILY.first_day(s) is None
    figs = figures(svc, rolled(svc))
    assert set(figs) == set(FAMILY.keys)
    assert all(rows == [] for rows in figs.values())
