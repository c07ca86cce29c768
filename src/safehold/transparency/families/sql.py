"""SQL pieces every fact family needs, the same on SQLite and PostgreSQL: the UTC day of a timestamp (what a
roll-up groups by), the seconds between two timestamps, and a fact's dimensions as the canonical text the facts
table keys on.

Timestamps are stored in UTC on both backends (``UTCDateTime``): SQLite keeps ``YYYY-MM-DD HH:MM:SS…`` text, so
its day is the first ten characters; PostgreSQL converts to UTC before taking the date.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Float, cast, func
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement


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


def dims_of(text: str) -> tuple[tuple[str, str], ...]:
    """The dimensions :func:`dims_key` wrote, as the sorted pairs :class:`~safehold.transparency.families.Fact`
    holds."""
    return tuple(sorted((k, str(v)) for k, v in json.loads(text).items()))
