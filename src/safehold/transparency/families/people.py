"""The people and the partners: reports to authorities, reviewer exposure against the wellness cap, hash exchanges.

- ``reports.by_authority`` is a state, not a sum of days: the reports created in the period, each with the status
  it had at the end of the period (or at ``as_of`` when that is earlier). A report moves draft → submitted →
  finished, or to failed or retracted, and keeps a timestamp per move, so its status at a time ``T`` is read from
  them (:func:`status_at`). It is grouped in SQL from the reports themselves (tens of thousands at most), not
  from facts.
- ``reviewers.exposure``: one fact per UTC day and share-of-cap band, counting reviewer-days and their media
  reveals (``media.reveal`` records of the audit log, the same records the wellness cap counts). The cap is the
  reviewer's effective daily cap (the admin default tightened by their own choice) when the day is rolled up; the
  wellness settings keep no history, so a day rolled up again after a cap changed uses the new cap. No fact names
  a reviewer.
- ``exchanges.activity``: per exchange and UTC day, hash entries received (the bank entries its fetches added,
  ``added_by`` ``exchange:<name>``, on the day they were added: neither changes later, so a past day's count
  stays what it was even when the exchange is deleted or another source lists the hash too), hashes shared with
  it (contributions sent, their hash count) and feedback sent to it (opinions sent: ``true_positive`` is
  *confirmed*, ``false_positive`` *disputed*).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session

from safehold.review.wellness import REVEAL, stored_defaults, tightened
from safehold.store.models import (
    AuditRecord,
    BankEntry,
    ExchangeContribution,
    ExchangeFeedback,
    Report,
    ReportCase,
    User,
)
from safehold.transparency.families import Fact, FactReader
from safehold.transparency.figures import CATALOGUE, Figure
from safehold.transparency.periods import Period

EXPOSURE = "people.exposure"
EXCHANGES = "people.exchanges"

#: Share-of-cap bands, in order: (label, upper bound of reveals / cap, excluded). A day at or over the cap is the
#: last band (a cap lowered during the day can leave a reviewer over it).
BANDS = (("under 25%", 0.25), ("25-50%", 0.5), ("50-75%", 0.75), ("75-99%", 1.0), ("at the cap", float("inf")))

#: The report statuses in the order the figure lists them.
STATUSES = ("draft", "submitted", "finished", "failed", "retracted")

#: Exchange directions, in order; feedback verdicts map to the last two.
DIRECTIONS = ("received", "shared", "confirmed", "disputed")
VERDICT_DIRECTION = {"true_positive": "confirmed", "false_positive": "disputed"}


def day_of(s: Session, column):
    """The UTC day (``YYYY-MM-DD`` text) of a timestamp column, in SQL: SQLite stores UTC wall-clock text, PostgreSQL
    a ``timestamptz`` converted to UTC first."""
    if s.bind.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)


def band_of(reveals: int, cap: int) -> str:
    share = reveals / cap
    return next(label for label, upper in BANDS if share < upper)


def status_at(at: dt.datetime):
    """A report's status at ``at`` as a SQL expression over its timestamps (the figure groups by it and the
    drill-down filters on it, so both read one rule).

    Retracted from ``retracted_at``, finished from ``finished_at``; a report failed now was failed from its last
    change (``updated_at``: a failure keeps no timestamp of its own); submitted from ``submitted_at``; draft before
    that. A failed report submitted again carries only its latest submission time, so between its first
    submission and the latest it reads as a draft.
    """
    return case(
        (and_(Report.retracted_at.is_not(None), Report.retracted_at <= at), "retracted"),
        (and_(Report.finished_at.is_not(None), Report.finished_at <= at), "finished"),
        (and_(Report.status == "failed", Report.updated_at <= at), "failed"),
        (and_(Report.submitted_at.is_not(None), Report.submitted_at <= at), "submitted"),
        else_="draft",
    )


class People:
    name = "people"
    keys = ("reports.by_authority", "reviewers.exposure", "exchanges.activity")

    # ---------------------------------------------------------------- roll-up

    def rollup(self, s: Session, start: dt.datetime, end: dt.datetime) -> Iterable[Fact]:
        yield from self._exposure_facts(s, start, end)
        yield from self._exchange_facts(s, start, end)

    def _exposure_facts(self, s: Session, start: dt.datetime, end: dt.datetime) -> Iterator[Fact]:
        days: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for (_, day), (n, cap) in _reviewer_days(s, start, end).items():
            cell = days[day, band_of(n, cap)]
            cell[0] += 1
            cell[1] += n
        for (day, band), (reviewer_days, reveals) in sorted(days.items()):
            yield Fact(dt.date.fromisoformat(day), EXPOSURE, (("share_of_cap", band),), reviewer_days, reveals)

    def _exchange_facts(self, s: Session, start: dt.datetime, end: dt.datetime) -> Iterator[Fact]:
        counts: dict[tuple[str, str, str], int] = defaultdict(int)
        for query, direction in _exchange_queries(s, start, end):
            for name, day, key, n in s.execute(query):
                counts[day, name, direction or VERDICT_DIRECTION.get(key, "")] += int(n or 0)
        for (day, name, direction), n in sorted(counts.items()):
            if direction:
                dims = (("direction", direction), ("exchange", name))
                yield Fact(dt.date.fromisoformat(day), EXCHANGES, dims, n)

    # ---------------------------------------------------------------- figures

    def fill(
        self, read: FactReader, s: Session, period: Period, filters: dict[str, str], as_of: dt.datetime
    ) -> dict[str, Figure]:
        facts = read(period.start, period.end)
        exposure: dict[str, list] = {}
        exchanges: dict[tuple[str, str], int] = defaultdict(int)
        for f in facts:
            if f.family == EXPOSURE:
                cell = exposure.setdefault(f.dim("share_of_cap"), [0, 0])
                cell[0] += f.value
                cell[1] += int(f.total)
            elif f.family == EXCHANGES:
                exchanges[f.dim("exchange"), f.dim("direction")] += f.value
        band_order = [label for label, _ in BANDS]
        exposure_rows = tuple((b, *exposure[b]) for b in band_order if b in exposure)
        exchange_rows = tuple(
            (name, d, n) for (name, d), n in sorted(exchanges.items(), key=lambda kv: (kv[0][0], _order(kv[0][1])))
        )
        reports = {(a, st): (n, cases) for a, st, n, cases in _reports(s, period, as_of)}
        report_rows = tuple(
            (a, st, *v) for (a, st), v in sorted(reports.items(), key=lambda kv: (kv[0][0], STATUSES.index(kv[0][1])))
        )
        return {
            "reports.by_authority": Figure(CATALOGUE["reports.by_authority"], report_rows),
            "reviewers.exposure": Figure(CATALOGUE["reviewers.exposure"], exposure_rows),
            "exchanges.activity": Figure(CATALOGUE["exchanges.activity"], exchange_rows),
        }

    # ---------------------------------------------------------------- drill-down

    def records(
        self, s: Session, key: str, period: Period, filters: dict[str, str], row: dict[str, str]
    ) -> Iterator[dict]:
        if key == "reports.by_authority":
            return self._report_records(s, period, row)
        if key == "exchanges.activity":
            return self._exchange_records(s, period, row)
        return iter(())

    def _report_records(self, s: Session, period: Period, row: dict[str, str]) -> Iterator[dict]:
        now = dt.datetime.now(dt.UTC)
        q = (
            select(Report.id)
            .where(*_created_in(period, now), Report.authority == row.get("authority"))
            .where(status_at(_until(period, now)) == row.get("status"))
            .order_by(Report.id)
        )
        ids = list(s.scalars(q))
        for chunk in _chunks(ids):
            linked = defaultdict(list)
            for report_id, case_id in s.execute(
                select(ReportCase.report_id, ReportCase.case_id).where(ReportCase.report_id.in_(chunk))
            ):
                linked[report_id].append(case_id)
            for report_id in chunk:
                for case_id in sorted(linked.get(report_id) or [None]):
                    yield {"case_id": case_id, "report_id": report_id}

    def _exchange_records(self, s: Session, period: Period, row: dict[str, str]) -> Iterator[dict]:
        name, direction = row.get("exchange"), row.get("direction")
        start, end = period.start_at, period.end_at
        if direction == "received":
            q = (
                select(BankEntry.id)
                .where(
                    BankEntry.added_by == f"{RECEIVED_BY}{name}", BankEntry.added_at >= start, BankEntry.added_at < end
                )
                .order_by(BankEntry.id)
            )
            for (entry_id,) in s.execute(q):
                yield {"case_id": None, "entry_id": entry_id}
        elif direction == "shared":
            c = ExchangeContribution
            q = select(c.id, c.case_id).where(c.exchange_name == name, c.status == "sent", c.at >= start, c.at < end)
            for contribution_id, case_id in s.execute(q.order_by(c.id)):
                yield {"case_id": case_id, "contribution_id": contribution_id}
        elif direction in VERDICT_DIRECTION.values():
            f = ExchangeFeedback
            verdict = next(v for v, d in VERDICT_DIRECTION.items() if d == direction)
            q = select(f.id, f.case_id).where(
                f.exchange_name == name, f.status == "sent", f.verdict == verdict, f.sent_at >= start, f.sent_at < end
            )
            for feedback_id, case_id in s.execute(q.order_by(f.id)):
                yield {"case_id": case_id, "feedback_id": feedback_id}


# -------------------------------------------------------------------- the records' predicates (figure = drill-down)


def _reviewer_days(s: Session, start: dt.datetime, end: dt.datetime) -> dict[tuple[str, str], tuple[int, int]]:
    """``{(actor, day): (reveals, effective daily cap)}`` for every reviewer-day with a reveal in ``[start, end)``."""
    day = day_of(s, AuditRecord.at)
    q = (
        select(AuditRecord.actor, day, func.count())
        .where(AuditRecord.action == REVEAL, AuditRecord.at >= start, AuditRecord.at < end)
        .group_by(AuditRecord.actor, day)
    )
    counts = {(actor, d): n for actor, d, n in s.execute(q)}
    defaults = stored_defaults(s)
    caps = {f"user:{name}": tightened(defaults, prefs)["daily_cap"] for name, prefs in s.execute(_users(counts))}
    return {(actor, d): (n, caps.get(actor, defaults["daily_cap"])) for (actor, d), n in counts.items()}


def _users(counts: dict[tuple[str, str], int]):
    """The users behind the console actors (``user:<username>``) among ``counts``; API keys use the default cap."""
    names = sorted({a.removeprefix("user:") for a, _ in counts if a.startswith("user:")})
    return select(User.username, User.wellness).where(User.username.in_(names))


#: ``added_by`` of the bank entries an exchange's fetch added (:meth:`safehold.sharing.service.ExchangeService`).
RECEIVED_BY = "exchange:"


def _exchange_queries(s: Session, start: dt.datetime, end: dt.datetime):
    """(query of ``(exchange name, day, verdict or None, items)``, direction or None when it comes from the
    verdict) for the three kinds of exchange activity in ``[start, end)``."""
    entry_day = day_of(s, BankEntry.added_at)
    exchange = func.substr(BankEntry.added_by, len(RECEIVED_BY) + 1)
    received = (
        select(exchange, entry_day, literal(None), func.count())
        .where(BankEntry.added_by.startswith(RECEIVED_BY), BankEntry.added_at >= start, BankEntry.added_at < end)
        .group_by(exchange, entry_day)
    )
    c = ExchangeContribution
    shared_day = day_of(s, c.at)
    shared = (
        select(c.exchange_name, shared_day, literal(None), func.sum(c.hashes))
        .where(c.status == "sent", c.at >= start, c.at < end)
        .group_by(c.exchange_name, shared_day)
    )
    f = ExchangeFeedback
    sent_day = day_of(s, f.sent_at)
    feedback = (
        select(f.exchange_name, sent_day, f.verdict, func.count())
        .where(f.status == "sent", f.sent_at >= start, f.sent_at < end)
        .group_by(f.exchange_name, sent_day, f.verdict)
    )
    return ((received, "received"), (shared, "shared"), (feedback, None))


def _until(period: Period, as_of: dt.datetime) -> dt.datetime:
    return min(period.end_at, as_of)


def _created_in(period: Period, as_of: dt.datetime) -> tuple:
    return Report.created_at >= period.start_at, Report.created_at < _until(period, as_of)


def _reports(s: Session, period: Period, as_of: dt.datetime) -> list[tuple]:
    """(authority, status at the end, reports, cases they bundle) for the reports created in the period up to
    ``as_of``, grouped in SQL."""
    cases = select(ReportCase.report_id, func.count().label("n")).group_by(ReportCase.report_id).subquery()
    status = status_at(_until(period, as_of)).label("status")
    q = (
        select(Report.authority, status, func.count(), func.coalesce(func.sum(cases.c.n), 0))
        .outerjoin(cases, cases.c.report_id == Report.id)
        .where(*_created_in(period, as_of))
        .group_by(Report.authority, status)
    )
    return [(a, st, n, int(cases)) for a, st, n, cases in s.execute(q)]  # PostgreSQL sums are Decimal


def _order(direction: str) -> int:
    return DIRECTIONS.index(direction) if direction in DIRECTIONS else len(DIRECTIONS)


def _chunks(ids: list[int], size: int = 500) -> Iterator[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]
