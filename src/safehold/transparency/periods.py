"""Reporting periods: a half-open range of UTC days, ``[start, end)``, named the way reports name them.

Accepted names: a year (``2026``), a half (``2026-H1``), a quarter (``2026-Q3``), a month (``2026-11``), a day
(``2026-11-03``), an explicit range of days (``2026-11-01..2026-11-30``, both ends included) and, for the overview,
a rolling window ending today (``last-7d``, ``last-30d``, ``last-90d``, ``last-365d``). A period is bounded (at most
:data:`MAX_DAYS` days, from :data:`EARLIEST`) before any figure is computed for it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from safehold.errors import SafeholdError

#: The longest period a figure or report is computed for (ten years of days).
MAX_DAYS = 3660
#: No record predates this; a period starting earlier is a typo.
EARLIEST = dt.date(2000, 1, 1)
#: Rolling windows the overview offers (days, today included).
ROLLING = {"last-7d": 7, "last-30d": 30, "last-90d": 90, "last-365d": 365}
#: The overview's period when the URL names none.
DEFAULT_OVERVIEW = "last-30d"

_YEAR = re.compile(r"^(\d{4})$")
_HALF = re.compile(r"^(\d{4})-H([12])$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class Period:
    """Days ``start`` (included) to ``end`` (excluded), UTC. ``name`` is how it was asked for."""

    name: str
    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def start_at(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), tzinfo=dt.UTC)

    @property
    def end_at(self) -> dt.datetime:
        return dt.datetime.combine(self.end, dt.time(), tzinfo=dt.UTC)

    def each_day(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range(self.days)]

    def label(self) -> str:
        """``2026-H1 (2026-01-01 to 2026-06-30)``: the name and the days it covers, last day included."""
        last = self.end - dt.timedelta(days=1)
        return f"{self.name} ({self.start.isoformat()} to {last.isoformat()})"

    def record(self) -> dict:
        return {"name": self.name, "start": self.start.isoformat(), "end": self.end.isoformat(), "days": self.days}


def parse_period(text: str | None, *, today: dt.date | None = None) -> Period:
    """The period ``text`` names (see the module docstring); an empty text is :data:`DEFAULT_OVERVIEW`.

    Raises ``transparency.bad_period`` (400) for anything else, for a range that ends before it starts, for one
    longer than :data:`MAX_DAYS` or starting before :data:`EARLIEST`.
    """
    name = (text or DEFAULT_OVERVIEW).strip()
    today = today or dt.datetime.now(dt.UTC).date()
    try:
        start, end = _bounds(name, today)
    except ValueError:  # a month 13, a 30 February
        start = end = None
    if start is None or end is None:
        raise SafeholdError(
            "transparency.bad_period",
            f"Unknown period {name[:40]!r}: use a year (2026), a half (2026-H1), a quarter (2026-Q3), a month "
            f"(2026-11), a day (2026-11-03), a range (2026-11-01..2026-11-30) or {', '.join(ROLLING)}.",
            status=400,
        )
    if end <= start:
        raise SafeholdError("transparency.bad_period", f"The period {name!r} ends before it starts.", status=400)
    if start < EARLIEST or (end - start).days > MAX_DAYS:
        raise SafeholdError(
            "transparency.bad_period",
            f"The period {name!r} is out of range: it must start in {EARLIEST.year} or later and cover at most "
            f"{MAX_DAYS} days.",
            status=400,
        )
    return Period(name, start, end)


def _bounds(name: str, today: dt.date) -> tuple[dt.date | None, dt.date | None]:
    if name in ROLLING:
        end = today + dt.timedelta(days=1)
        return end - dt.timedelta(days=ROLLING[name]), end
    if m := _YEAR.match(name):
        y = int(m[1])
        return dt.date(y, 1, 1), dt.date(y + 1, 1, 1)
    if m := _HALF.match(name):
        y, h = int(m[1]), int(m[2])
        return dt.date(y, 1 + 6 * (h - 1), 1), (dt.date(y, 7, 1) if h == 1 else dt.date(y + 1, 1, 1))
    if m := _QUARTER.match(name):
        y, q = int(m[1]), int(m[2])
        return dt.date(y, 3 * q - 2, 1), (dt.date(y, 3 * q + 1, 1) if q < 4 else dt.date(y + 1, 1, 1))
    if m := _MONTH.match(name):
        y, mo = int(m[1]), int(m[2])
        return dt.date(y, mo, 1), (dt.date(y, mo + 1, 1) if mo < 12 else dt.date(y + 1, 1, 1))
    if m := _DAY.match(name):
        d = dt.date.fromisoformat(m[1])
        return d, d + dt.timedelta(days=1)
    if m := _RANGE.match(name):
        return dt.date.fromisoformat(m[1]), dt.date.fromisoformat(m[2]) + dt.timedelta(days=1)
    return None, None
