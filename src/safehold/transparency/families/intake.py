"""User reports and appeals (Principle 8): what users reported and what the reported side appealed.

Both figures are states, not sums of days, like ``reports.by_authority`` (:mod:`.people`): the records received in
the period, each with the outcome it had at the end of the period (or at ``as_of`` when that is earlier). A user
report keeps when it was decided (``decided_at``) and an appeal when it was reviewed (``reviewed_at``), so the
outcome at a time ``T`` is read from them; both are grouped in SQL from the records themselves, so there are no
daily facts to roll up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from safehold.store.models import Appeal, UserReport
from safehold.transparency.families import Fact, FactReader
from safehold.transparency.figures import CATALOGUE, Figure
from safehold.transparency.periods import Period

#: Outcomes in the order the figures list them.
REPORT_OUTCOMES = ("received", "actioned", "no_action")
APPEAL_OUTCOMES = ("received", "upheld", "overturned")


def report_outcome_at(at: dt.datetime):
    """A user report's outcome at ``at`` as SQL (the figure groups by it and the drill-down filters on it)."""
    return case((and_(UserReport.decided_at.is_not(None), UserReport.decided_at <= at), UserReport.status),
                else_="received")  # fmt: skip


def appeal_outcome_at(at: dt.datetime):
    return case((and_(Appeal.reviewed_at.is_not(None), Appeal.reviewed_at <= at), Appeal.status), else_="received")


class Intake:
    name = "intake"
    keys = ("user_reports.by_category", "appeals.by_outcome")

    def rollup(self, s: Session, start: dt.datetime, end: dt.datetime) -> Iterable[Fact]:
        return ()

    def first_day(self, s: Session) -> None:
        """No daily facts to roll up (the figures are read from the records): nothing before today."""
        return None

    def fill(
        self, read: FactReader, s: Session, period: Period, filters: dict[str, str], as_of: dt.datetime
    ) -> dict[str, Figure]:
        until = min(period.end_at, as_of)
        outcome = report_outcome_at(until).label("outcome")
        reports = s.execute(
            select(UserReport.category, outcome, func.count(), func.sum(case((UserReport.urgent, 1), else_=0)))
            .where(UserReport.created_at >= period.start_at, UserReport.created_at < until)
            .group_by(UserReport.category, outcome)
        ).all()
        report_rows = tuple(
            (c, o, n, int(u or 0))
            for c, o, n, u in sorted(reports, key=lambda r: (r[0], _order(REPORT_OUTCOMES, r[1])))
        )
        appeal = appeal_outcome_at(until).label("outcome")
        appeals = s.execute(
            select(appeal, func.count())
            .where(Appeal.created_at >= period.start_at, Appeal.created_at < until)
            .group_by(appeal)
        ).all()
        appeal_rows = tuple(sorted(((o, n) for o, n in appeals), key=lambda r: _order(APPEAL_OUTCOMES, r[0])))
        return {
            "user_reports.by_category": Figure(CATALOGUE["user_reports.by_category"], report_rows),
            "appeals.by_outcome": Figure(CATALOGUE["appeals.by_outcome"], appeal_rows),
        }

    def records(
        self, s: Session, key: str, period: Period, filters: dict[str, str], row: dict[str, str]
    ) -> Iterator[dict]:
        until = min(period.end_at, dt.datetime.now(dt.UTC))
        if key == "user_reports.by_category":
            q = select(UserReport.id, UserReport.case_id).where(
                UserReport.created_at >= period.start_at, UserReport.created_at < until,
                UserReport.category == row.get("category"), report_outcome_at(until) == row.get("outcome"),
            )  # fmt: skip
            for report_id, case_id in s.execute(q.order_by(UserReport.id)):
                yield {"case_id": case_id, "user_report_id": report_id}
        elif key == "appeals.by_outcome":
            q = select(Appeal.id, Appeal.case_id).where(
                Appeal.created_at >= period.start_at, Appeal.created_at < until,
                appeal_outcome_at(until) == row.get("outcome"),
            )  # fmt: skip
            for appeal_id, case_id in s.execute(q.order_by(Appeal.id)):
                yield {"case_id": case_id, "appeal_id": appeal_id}


def _order(order: tuple[str, ...], value: str) -> int:
    return order.index(value) if value in order else len(order)
