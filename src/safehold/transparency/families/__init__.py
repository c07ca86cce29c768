"""Fact families: each reads one kind of record (cases, signals, decisions, …), rolls it up into daily facts, and
fills the catalogue's figures it owns from those facts; it also lists the records behind one row of its figures
from the same predicates (the drill-down), so a figure and its drill-down agree as of the last refresh (for a
dimension that changes after its day was rolled up, see ``stale_days`` below and :mod:`.cases`).

The engine (:mod:`safehold.transparency.engine`) stores the facts, decides which days to roll up again, and asks
each family in :data:`FAMILIES` for its figures. A family never writes the store.

The reader ``fill`` gets is a :class:`~safehold.transparency.families.sql.StoredFacts`: besides the daily facts it
sums one kind of fact over the period in SQL (``read.totals(start, end, family)``), which is what keeps a
year's figure fast. Two optional methods: ``first_day(s)`` (the first day with a record, for the first roll-up;
else the first case or audit record) and ``stale_days(s, read, start)`` (days before the refresh window whose
facts can still change, rolled up again on each refresh: see the SLA family in :mod:`.cases`).
:mod:`.sql` has the UTC day of a timestamp on both backends (``day_of``) and the canonical dimensions text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from safehold.transparency.figures import Figure
from safehold.transparency.periods import Period


@dataclass(frozen=True)
class Fact:
    """One daily fact: ``value`` items of ``family`` on ``day`` with these dimensions (sorted ``(name, value)``
    pairs; an absent value is ``""``); ``total`` carries a sum when the fact needs one (seconds, reveals)."""

    day: dt.date
    family: str
    dims: tuple[tuple[str, str], ...]
    value: int
    total: float = 0.0

    def dim(self, name: str) -> str:
        return dict(self.dims).get(name, "")


#: Reads this family's stored facts for the days ``[start, end)``.
FactReader = Callable[[dt.date, dt.date], list[Fact]]


class Family(Protocol):
    #: The ``family`` value of its facts (a family may store several, all starting with its name and a dot).
    name: str
    #: The catalogue keys it fills.
    keys: tuple[str, ...]

    def rollup(self, s: Session, start: dt.datetime, end: dt.datetime) -> Iterable[Fact]:
        """Every fact for the UTC days in ``[start, end)`` (whole days), read from the records."""
        ...

    def fill(
        self, read: FactReader, s: Session, period: Period, filters: dict[str, str], as_of: dt.datetime
    ) -> dict[str, Figure]:
        """Its figures for ``period`` (filters already checked), from the facts ``read`` gives; ``s`` is for the
        few figures that are a state rather than a sum of days (the backlog now)."""
        ...

    def records(
        self, s: Session, key: str, period: Period, filters: dict[str, str], row: dict[str, str]
    ) -> Iterator[dict]:
        """The records behind the row of figure ``key`` whose dimensions are ``row``: one dict of ids per record
        (``case_id`` always, plus the record's own id, e.g. ``signal_id``)."""
        ...


def _families() -> list[Family]:
    """The installed families (each helper module adds its line)."""
    from safehold.transparency.families.cases import CaseFamily, SlaFamily
    from safehold.transparency.families.detections import FAMILY as detections
    from safehold.transparency.families.intake import Intake
    from safehold.transparency.families.people import People

    return [CaseFamily(), SlaFamily(), detections, People(), Intake()]


FAMILIES: list[Family] = _families()
