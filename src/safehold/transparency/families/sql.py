"""SQL pieces every fact family needs, the same on SQLite and PostgreSQL: the UTC day of a timestamp (what a
roll-up groups by), the seconds between two timestamps, a fact's dimensions as the canonical text the facts
table keys on, and the reader of a family's stored facts (:class:`StoredFacts`).

Timestamps are stored in UTC on both backends (``UTCDateTime``): SQLite keeps ``YYYY-MM-DD HH:MM:SS…`` text, so
its day is the first ten characters; PostgreSQL converts to UTC before taking the date.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache

from sqlalchemy import Float, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from safehold.store.models import TransparencyFact
from safehold.transparency.families import Fact


def dialect(s: Session) -> str:
    return s.get_bind().dialect.name


def day_of(s: Session, column) -> ColumnElement:
    """The UTC day of a timestamp column, as SQL (text on SQLite, a date on PostgreSQL: see :func:`as_day`)."""
    if dialect(s) == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.substr(column, 1, 10)


def as_day(value) -> dt.date:
    """A day as :func:`day_of` returned it."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def seconds_between(s: Session, start, end) -> ColumnElement:
    """Seconds from ``start`` to ``end`` (both timestamp columns), as a float."""
    if dialect(s) == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def dims_key(dims: tuple[tuple[str, str], ...] | dict[str, str]) -> str:
    """The canonical text of a fact's dimensions (sorted names, compact JSON): equal dimensions, equal text."""
    return json.dumps(dict(sorted(dict(dims).items())), separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=65536)
def dims_of(text: str) -> tuple[tuple[str, str], ...]:
    """The dimensions :func:`dims_key` wrote, as the sorted pairs :class:`~safehold.transparency.families.Fact`
    holds."""
    return tuple(sorted((k, str(v)) for k, v in json.loads(text).items()))


class StoredFacts:
    """Reads one family's stored facts: called with ``(start, end)`` it is the family's
    :data:`~safehold.transparency.families.FactReader` (every daily fact of those days); :meth:`totals` sums one
    kind of fact over the days in SQL, so a figure for a year reads a row per combination of dimensions, not one
    per day."""

    def __init__(self, s: Session, name: str):
        self.s, self.name = s, name

    def __call__(self, start: dt.date, end: dt.date) -> list[Fact]:
        q = select(
            TransparencyFact.day,
            TransparencyFact.family,
            TransparencyFact.dims,
            TransparencyFact.value,
            TransparencyFact.total,
        ).where(TransparencyFact.day >= start, TransparencyFact.day < end, owned(self.name))
        return [Fact(as_day(r.day), r.family, dims_of(r.dims), r.value, r.total) for r in self.s.execute(q)]

    def totals(self, start: dt.date, end: dt.date, family: str, *, by_day: bool = False) -> list[Fact]:
        """The facts named ``family`` of days ``[start, end)`` summed per dimensions (and per day if ``by_day``;
        otherwise each sum is dated ``start``)."""
        F = TransparencyFact
        keys = [F.dims, F.day] if by_day else [F.dims]
        q = (
            select(*keys, func.sum(F.value), func.sum(F.total))
            .where(F.day >= start, F.day < end, F.family == family)
            .group_by(*keys)
        )
        out = []
        for dims, *rest in self.s.execute(q):
            day = as_day(rest.pop(0)) if by_day else start
            value, total = rest
            out.append(Fact(day, family, dims_of(dims), int(value or 0), float(total or 0.0)))
        return out


def owned(name: str):
    """The facts of family ``name``: those named ``name.<anything>``."""
    return func.substr(TransparencyFact.family, 1, len(name) + 1) == f"{name}."
