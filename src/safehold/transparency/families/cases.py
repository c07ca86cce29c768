"""The case, decision and action figures: cases opened and closed, the backlog, the SLA, time to decision,
decisions by outcome, second reviews and actions taken (docs/transparency.md, "The figures").

Each kind of counted record is one :class:`_Rows`: a query listing the records of a range of days with their ids,
their UTC day and their dimensions. The roll-up groups it by day and dimensions (one ``GROUP BY``); the drill-down
filters the same query by a figure row's dimensions, so a figure and the records behind it agree as of the last
refresh.

Dimensions are read when the day is rolled up, and a case's band can rise later (an overturn escalates it). So each
refresh rolls up again the decision days of every case changed since the last one (:meth:`CaseFamily.stale_days`;
the SLA family does the same for due days): time to decision and the SLA follow the band the drill-down filters on.
One exception: the backlog of a past period (``cases.open``, a fact for every day a case was open) keeps the band a
case had when those days were rolled up, while its drill-down lists by the band it has now; rolling up every open
day again for each change would make a refresh cost the age of the oldest changed case. The count of a past
backlog is right; a case whose band rose after its open days were rolled up is listed under its new band until
``safehold transparency rebuild`` redoes those days. ``source`` and ``queue`` of the case are on every fact, for
the two filters.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import Select, and_, case, func, literal, select, union_all
from sqlalchemy.orm import Session, aliased

from safehold.cases.priority import BAND_NAMES, effective_sla
from safehold.cases.service import SLA_KEY
from safehold.cases.taxonomy import STATUSES
from safehold.store.models import AppSetting, Case, CaseAction, CaseDecision, utcnow
from safehold.transparency.families import Fact
from safehold.transparency.families.sql import StoredFacts, as_day, day_of, seconds_between
from safehold.transparency.figures import CATALOGUE, Figure
from safehold.transparency.periods import Period

NAME = "cases"
#: Statuses of a case not closed (the live backlog).
ACTIVE = tuple(s for s in STATUSES if s != "closed")
#: Statuses in which a case's decision stands (for the SLA): a finding awaiting its second reviewer is decided;
#: an escalated case (even one whose finding was overturned) waits for a senior reviewer's decision.
DECIDED = ("awaiting_confirmation", "closed")
UNDECIDED = tuple(s for s in STATUSES if s not in DECIDED)
#: Time-to-decision histogram: bucket ``k`` holds seconds in ``[2**(k/4), 2**((k+1)/4))`` (about 19 % wide);
#: bucket 0 also holds anything under a second, the last one anything over ``2**(MAX_BUCKET/4)`` s (about 4 years).
MAX_BUCKET = 108
_EDGES = [2 ** (k / 4) for k in range(MAX_BUCKET + 1)]


def bucket_low(k: int) -> float:
    return 0.0 if k == 0 else _EDGES[k]


def bucket_high(k: int) -> float:
    return 2 ** ((k + 1) / 4)


def quantile(hist: dict[int, int], q: float) -> float:
    """The ``q`` quantile of a histogram of buckets, interpolated linearly within the bucket it falls in."""
    n = sum(hist.values())
    if not n:
        return 0.0
    target, seen = q * n, 0
    for k in sorted(hist):
        c = hist[k]
        if c and seen + c >= target:
            lo, hi = bucket_low(k), bucket_high(k)
            return lo + (hi - lo) * (target - seen) / c
        seen += c
    return bucket_high(max(hist))


def _bucket(secs, lo: int = 0, hi: int = MAX_BUCKET):
    """SQL for the histogram bucket of ``secs``: a binary search over the edges (seven comparisons a row, the same
    on SQLite, which may lack ``log``, and PostgreSQL)."""
    if lo == hi:
        return literal(lo)
    mid = (lo + hi + 1) // 2
    return case((secs >= _EDGES[mid], _bucket(secs, mid, hi)), else_=_bucket(secs, lo, mid - 1))


# ----------------------------------------------------------------------------------------- the counted records


@dataclass(frozen=True)
class _Rows:
    """One kind of counted record: ``query(s, start, end, now)`` lists those of ``[start, end)`` with columns
    ``ids``, ``day``, ``dims`` (and ``secs`` when ``total``)."""

    fact: str
    ids: tuple[str, ...]
    dims: tuple[str, ...]
    query: Callable[[Session, dt.datetime, dt.datetime, dt.datetime], Select]
    total: bool = False

    def grouped(self, s: Session, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> Iterator[Fact]:
        sub = self.query(s, start, end, now).subquery()
        cols = [sub.c[d] for d in self.dims]
        total = func.sum(sub.c.secs) if self.total else literal(0.0)
        q = select(sub.c.day, *cols, func.count(), total).group_by(sub.c.day, *cols)
        for day, *rest in s.execute(q):
            *values, n, secs = rest
            dims = tuple(sorted(zip(self.dims, (str(v) for v in values), strict=True)))
            yield Fact(as_day(day), self.fact, dims, n, float(secs or 0.0))

    def listed(self, s: Session, start: dt.datetime, end: dt.datetime, cells: dict[str, str]) -> Iterator[dict]:
        sub = self.query(s, start, end, utcnow()).subquery()
        q = select(*(sub.c[i] for i in self.ids)).where(*(sub.c[k] == v for k, v in cells.items()))
        for r in s.execute(q.order_by(*(sub.c[i] for i in self.ids)).execution_options(yield_per=1000)):
            yield dict(r._mapping)


def _case_dims(*extra) -> list:
    return [func.coalesce(Case.source, "").label("source"), func.coalesce(Case.queue, "").label("queue"), *extra]


def _dated(s: Session, ids: list, at, extra: list, start, end) -> Select:
    """Records dated by the timestamp ``at`` in ``[start, end)``: their ids, their UTC ``day``, the case's source
    and queue and the ``extra`` dimensions (the caller joins the case when ``at`` is not the case's own)."""
    return select(*ids, day_of(s, at).label("day"), *_case_dims(*extra)).where(at >= start, at < end)


def _opened(s: Session, start, end, now) -> Select:
    return _dated(s, [Case.id.label("case_id")], Case.opened_at, [], start, end)


def _closed(s: Session, start, end, now) -> Select:
    outcome = [
        func.coalesce(Case.decision, "").label("decision"),
        func.coalesce(Case.classification, "").label("classification"),
    ]
    return _dated(s, [Case.id.label("case_id")], Case.closed_at, outcome, start, end)


def _first_decisions(s: Session, start, end, now) -> Select:
    """A case's first decision (not an escalation) made in the range, with the seconds since the case opened."""
    d, e = aliased(CaseDecision), aliased(CaseDecision)
    earlier = (
        select(e.id).where(e.case_id == d.case_id, e.kind == "decide", e.decision != "escalate", e.id < d.id).exists()
    )
    ids = [d.id.label("decision_id"), d.case_id.label("case_id")]
    extra = [Case.band.label("band"), seconds_between(s, Case.opened_at, d.at).label("secs")]
    inner = (
        _dated(s, ids, d.at, extra, start, end)
        .join(Case, Case.id == d.case_id)
        .where(d.kind == "decide", d.decision != "escalate", ~earlier)
        .subquery()
    )
    return select(inner, _bucket(inner.c.secs).label("bucket"))


def _due(s: Session, start, end, now) -> Select:
    """Cases due in the range and how their due time went (as of ``now`` for those not decided)."""
    decided = case((Case.status.in_(DECIDED), func.coalesce(Case.decided_at, Case.closed_at)), else_=None)
    outcome = case(
        (and_(decided.is_not(None), decided <= Case.due_at), "met"),
        (decided.is_not(None), "breached"),
        (Case.due_at < now, "open_overdue"),
        else_="pending",
    )
    return _dated(s, [Case.id.label("case_id")], Case.due_at, [Case.band.label("band"), outcome.label("outcome")],
                  start, end)  # fmt: skip


def _due_decided(s: Session, start, end, now) -> Select:
    """The decided cases of :func:`_due`: their outcome no longer changes with time (the undecided are counted
    live, see :class:`SlaFamily`)."""
    due = _due(s, start, end, now).subquery()  # by outcome, not status: the due-time index, not the status one
    return select(due).where(due.c.outcome.in_(("met", "breached")))


def _second_reviews(s: Session, start, end, now) -> Select:
    outcome = case((CaseDecision.kind == "confirm", "confirmed"), else_="overturned")
    ids = [CaseDecision.id.label("decision_id"), CaseDecision.case_id.label("case_id")]
    return (
        _dated(s, ids, CaseDecision.at, [outcome.label("outcome")], start, end)
        .join(Case, Case.id == CaseDecision.case_id)
        .where(CaseDecision.kind.in_(("confirm", "overturn")))
    )


def _actions(s: Session, start, end, now) -> Select:
    """Actions by origin: ``manual`` (no policy: a person took it), ``after_decision`` (a policy that fired on a
    decision: its actor is the reviewer who decided or confirmed the case) or ``automatic`` (a policy on a
    detection alone, acting as the caller that reported it)."""
    d = aliased(CaseDecision)
    by_decider = (
        select(d.id)
        .where(d.case_id == CaseAction.case_id, d.actor == CaseAction.actor, d.kind.in_(("decide", "confirm")))
        .exists()
    )
    origin = case((CaseAction.policy.is_(None), "manual"), (by_decider, "after_decision"), else_="automatic")
    ids = [CaseAction.id.label("action_id"), CaseAction.case_id.label("case_id")]
    extra = [CaseAction.kind.label("kind"), origin.label("origin")]
    return _dated(s, ids, CaseAction.created_at, extra, start, end).outerjoin(Case, Case.id == CaseAction.case_id)


def _open_at(s: Session, end: dt.datetime):
    """Cases opened before ``end`` and not closed by then: two index ranges on ``closed_at`` (not closed, closed
    later), so at the end of today it reads the backlog only."""
    cols = (Case.id.label("case_id"), *_case_dims(Case.band.label("band")))
    still = select(*cols).where(Case.closed_at.is_(None), Case.opened_at < end)
    later = select(*cols).where(Case.closed_at >= end, Case.opened_at < end)
    return union_all(still, later)


OPENED = _Rows(f"{NAME}.opened", ("case_id",), ("source", "queue"), _opened)
CLOSED = _Rows(f"{NAME}.closed", ("case_id",), ("source", "queue", "decision", "classification"), _closed)
FIRST = _Rows(f"{NAME}.first_decision", ("case_id", "decision_id"), ("source", "queue", "band", "bucket"),
              _first_decisions, total=True)  # fmt: skip
SLA = _Rows("sla.decided", ("case_id",), ("source", "queue", "band", "outcome"), _due_decided)
DUE = _Rows("sla.due", ("case_id",), ("source", "queue", "band", "outcome"), _due)
SECOND = _Rows(f"{NAME}.second_review", ("case_id", "decision_id"), ("source", "queue", "outcome"), _second_reviews)
ACTIONS = _Rows(f"{NAME}.actions", ("case_id", "action_id"), ("source", "queue", "kind", "origin"), _actions)
#: Cases not closed at the end of each day, by band (the backlog of a past period).
OPEN = f"{NAME}.open"

#: The records behind each figure (the backlog has its own).
SOURCES: dict[str, tuple[_Rows, ...]] = {
    "cases.daily": (OPENED, CLOSED),
    "cases.by_source": (OPENED, CLOSED),
    "cases.sla": (DUE,),
    "decisions.time_to_decision": (FIRST,),
    "decisions.by_outcome": (CLOSED,),
    "decisions.second_review": (SECOND,),
    "actions.by_kind": (ACTIONS,),
}


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _band_order(band: str) -> int:
    return BAND_NAMES.index(band) if band in BAND_NAMES else len(BAND_NAMES)


def _first_case_day(s: Session) -> dt.date | None:
    """The day the first case opened (through its index): nothing this module counts is older."""
    first = s.scalar(select(func.min(Case.opened_at)))
    return first.date() if first else None


# ----------------------------------------------------------------------------------------------- the family


class CaseFamily:
    name = NAME
    keys = (*(k for k in SOURCES if k != "cases.sla"), "cases.backlog")
    first_day = staticmethod(_first_case_day)

    @staticmethod
    def stale_days(s: Session, read: StoredFacts, start: dt.date) -> set[dt.date]:
        """The days of the first decision of each case changed since ``start`` (through ``ix_cases_updated_at``):
        its band may have risen since (an overturn escalates it), and the time-to-decision fact of that day holds
        the band the drill-down filters on, so the day is rolled up again with the band the case has now."""
        changed = select(Case.id).where(Case.updated_at >= _at(start))
        q = select(day_of(s, CaseDecision.at)).where(
            CaseDecision.case_id.in_(changed), CaseDecision.kind == "decide", CaseDecision.decision != "escalate"
        )
        return {as_day(d) for d in s.scalars(q.distinct())}

    def rollup(self, s: Session, start: dt.datetime, end: dt.datetime) -> Iterable[Fact]:
        now = utcnow()
        for rows in (OPENED, CLOSED, FIRST, SECOND, ACTIONS):
            yield from rows.grouped(s, start, end, now)
        yield from self._open_by_day(s, start, end)

    @staticmethod
    def _open_by_day(s: Session, start: dt.datetime, end: dt.datetime) -> Iterator[Fact]:
        """Cases not closed at the end of each day of ``[start, end)``: counted once at ``end``, then walked back
        a day at a time (open at the end of the day before = open at the end of this day − opened on it + closed
        on it), so a year of days costs one count and two grouped reads, not a count per day."""
        dims = ("band", "queue", "source")
        sub = _open_at(s, end).subquery()
        cols = [sub.c[d] for d in dims]
        still_open = Counter({tuple(r[:-1]): r[-1] for r in s.execute(select(*cols, func.count()).group_by(*cols))})
        flows = {}
        for name, column in (("opened", Case.opened_at), ("closed", Case.closed_at)):
            flow = _dated(s, [], column, [Case.band.label("band")], start, end).subquery()
            keys = [flow.c.day, *(flow.c[d] for d in dims)]
            per_day: dict[dt.date, Counter] = defaultdict(Counter)
            for d, *key, n in s.execute(select(*keys, func.count()).group_by(*keys)):
                per_day[as_day(d)][tuple(key)] += n
            flows[name] = per_day
        day = end.date() - dt.timedelta(days=1)
        while day >= start.date():
            for key, n in still_open.items():
                if n > 0:
                    yield Fact(day, OPEN, tuple(sorted(zip(dims, key, strict=True))), n)
            still_open.subtract(flows["opened"].get(day, Counter()))
            still_open.update(flows["closed"].get(day, Counter()))
            day -= dt.timedelta(days=1)

    def fill(
        self, read: StoredFacts, s: Session, period: Period, filters: dict[str, str], as_of: dt.datetime
    ) -> dict[str, Figure]:
        def summed(rows: _Rows, *, by_day: bool = False) -> list[Fact]:
            return [f for f in read.totals(period.start, period.end, rows.fact, by_day=by_day) if _kept(f, filters)]

        out = {
            "cases.daily": _daily(summed(OPENED, by_day=True), summed(CLOSED, by_day=True), period, as_of),
            "cases.by_source": _by_source(summed(OPENED), summed(CLOSED)),
            "decisions.time_to_decision": _time_to_decision(summed(FIRST)),
            "decisions.by_outcome": _summed(summed(CLOSED), ("decision", "classification")),
            "decisions.second_review": _summed(summed(SECOND), ("outcome",)),
            "actions.by_kind": _summed(summed(ACTIONS), ("kind", "origin")),
            "cases.backlog": self._backlog(read, s, period, filters, as_of),
        }
        return {k: Figure(CATALOGUE[k], tuple(rows)) for k, rows in out.items()}

    @staticmethod
    def _backlog(read: StoredFacts, s: Session, period: Period, filters: dict, as_of: dt.datetime) -> list[tuple]:
        """For a period not over at ``as_of``: the cases not closed now, by status and band (live, through the
        ``ix_cases_queue`` index). For a past one: those open at the end of its last day, by band, from the facts
        (status ``open``: which of them waited for a confirmation or a senior reviewer is not kept per day)."""
        if period.end_at > as_of:
            q = (
                select(Case.status, Case.band, func.count())
                .where(Case.status.in_(ACTIVE), *_case_filters(filters))
                .group_by(Case.status, Case.band)
            )
            rows = [(st, band, n) for st, band, n in s.execute(q)]
        else:
            last = period.end - dt.timedelta(days=1)
            total = Counter()
            for f in read.totals(last, period.end, OPEN):
                if _kept(f, filters):
                    total[f.dim("band")] += f.value
            rows = [("open", band, n) for band, n in total.items() if n]
        return sorted(rows, key=lambda r: (ACTIVE.index(r[0]) if r[0] in ACTIVE else 9, _band_order(r[1])))

    def records(
        self, s: Session, key: str, period: Period, filters: dict[str, str], row: dict[str, str]
    ) -> Iterator[dict]:
        start, end = period.start_at, period.end_at
        if "day" in row:
            day = dt.date.fromisoformat(row["day"])
            start, end = max(start, _at(day)), min(end, _at(day + dt.timedelta(days=1)))
        cells = {k: v for k, v in row.items() if k != "day"} | filters
        if key == "cases.backlog":
            yield from _backlog_records(s, period, filters, row)
            return
        if start >= end:
            return
        for rows in SOURCES[key]:
            label = rows.fact.removeprefix(f"{NAME}.")
            for r in rows.listed(s, start, end, {k: v for k, v in cells.items() if k in rows.dims}):
                yield r | {"counted_as": label} if len(SOURCES[key]) > 1 else r


def _backlog_records(s: Session, period: Period, filters: dict, row: dict) -> Iterator[dict]:
    """The cases of a backlog row, by the rule the figure used (live now, or open at the end of a past period)."""
    if period.end_at > utcnow():
        q = select(Case.id.label("case_id")).where(Case.status.in_(ACTIVE), *_case_filters(filters))
        if "status" in row:
            q = q.where(Case.status == row["status"])
        if "band" in row:
            q = q.where(Case.band == row["band"])
    else:
        if row.get("status", "open") != "open":
            return
        sub = _open_at(s, period.end_at).subquery()
        q = select(sub.c.case_id).where(*(sub.c[k] == v for k, v in filters.items()))
        if "band" in row:
            q = q.where(sub.c.band == row["band"])
    for r in s.execute(q.order_by("case_id").execution_options(yield_per=1000)):
        yield {"case_id": r.case_id}


def _case_filters(filters: dict) -> list:
    return [getattr(Case, k) == v for k, v in filters.items()]


def _kept(f: Fact, filters: dict) -> bool:
    return all(f.dim(k) == v for k, v in filters.items())


def _summed(facts: list[Fact], by: tuple[str, ...]) -> list[tuple]:
    total: Counter = Counter()
    for f in facts:
        total[tuple(f.dim(d) for d in by)] += f.value
    return [(*k, n) for k, n in sorted(total.items()) if n]


def _daily(opened: list[Fact], closed: list[Fact], period: Period, as_of: dt.datetime) -> list[tuple]:
    """The days of the period up to ``as_of`` on which a case opened or closed, like every daily figure (the
    charts draw the quiet days between as zeros)."""
    per_day = {"opened": Counter(), "closed": Counter()}
    for name, facts in (("opened", opened), ("closed", closed)):
        for f in facts:
            per_day[name][f.day] += f.value
    days = sorted(d for d in set(per_day["opened"]) | set(per_day["closed"]) if period.start <= d <= as_of.date())
    return [(d.isoformat(), per_day["opened"][d], per_day["closed"][d]) for d in days if d < period.end]


def _by_source(opened: list[Fact], closed: list[Fact]) -> list[tuple]:
    o = {(s, q): n for s, q, n in _summed(opened, ("source", "queue"))}
    c = {(s, q): n for s, q, n in _summed(closed, ("source", "queue"))}
    return [(*k, o.get(k, 0), c.get(k, 0)) for k in sorted(o.keys() | c.keys())]


def _time_to_decision(facts: list[Fact]) -> list[tuple]:
    """Per band: the median and 90th percentile of the seconds to a first decision, from the histogram (whole
    seconds), and how many cases were first decided."""
    hist: dict[str, Counter] = defaultdict(Counter)
    for f in facts:
        hist[f.dim("band")][int(f.dim("bucket"))] += f.value
    return [
        (band, round(quantile(h, 0.5)), round(quantile(h, 0.9)), sum(h.values()))
        for band, h in sorted(hist.items(), key=lambda i: _band_order(i[0]))
    ]


class SlaFamily:
    """``cases.sla``, a family of its own because its facts are dated by due day, and a decision on a case due
    long ago changes such a day: :meth:`stale_days` names those days and the refresh rolls up just the SLA facts
    of them again (one indexed read), not every case fact.

    The facts hold the decided cases only (met or breached: final); those not decided are counted live at fill
    time (``open``/``escalated`` cases through ``ix_cases_queue``): overdue when their due time is before
    ``as_of``."""

    name = "sla"
    keys = ("cases.sla",)
    first_day = staticmethod(_first_case_day)

    def rollup(self, s: Session, start: dt.datetime, end: dt.datetime) -> Iterable[Fact]:
        return SLA.grouped(s, start, end, utcnow())

    def stale_days(self, s: Session, read: StoredFacts, start: dt.date) -> set[dt.date]:
        """The days a case decided (or confirmed, or overturned) since ``start`` may have been due on: from its
        opening to the longest SLA after it (an escalation moves a due time earlier, so the old one is not on the
        case any more)."""
        row = s.get(AppSetting, SLA_KEY)
        longest = dt.timedelta(hours=max(effective_sla(row.value if row else None).values()))
        q = select(day_of(s, Case.opened_at)).join(CaseDecision, CaseDecision.case_id == Case.id)
        opened = {as_day(d) for d in s.scalars(q.where(CaseDecision.at >= _at(start)).distinct())}
        span = longest.days + 1
        return {d + dt.timedelta(days=i) for d in opened for i in range(span + 1)}

    def fill(
        self, read: StoredFacts, s: Session, period: Period, filters: dict[str, str], as_of: dt.datetime
    ) -> dict[str, Figure]:
        """Per band: due in the period, met, breached, still undecided past due (undecided and not yet due count
        in ``due`` only)."""
        by: dict[str, Counter] = defaultdict(Counter)
        for f in read.totals(period.start, period.end, SLA.fact):
            if _kept(f, filters):
                by[f.dim("band")][f.dim("outcome")] += f.value
        overdue = func.sum(case((Case.due_at < as_of, 1), else_=0))
        live = (
            select(Case.band, func.count(), overdue)
            .where(Case.status.in_(UNDECIDED), Case.due_at >= period.start_at, Case.due_at < period.end_at)
            .where(*_case_filters(filters))
            .group_by(Case.band)
        )
        for band, n, late in s.execute(live):
            by[band]["pending"] += n - (late or 0)
            by[band]["open_overdue"] += late or 0
        rows = [
            (band, sum(c.values()), c["met"], c["breached"], c["open_overdue"])
            for band, c in sorted(by.items(), key=lambda i: _band_order(i[0]))
        ]
        return {"cases.sla": Figure(CATALOGUE["cases.sla"], tuple(rows))}

    def records(
        self, s: Session, key: str, period: Period, filters: dict[str, str], row: dict[str, str]
    ) -> Iterator[dict]:
        yield from DUE.listed(s, period.start_at, period.end_at, row | filters)
