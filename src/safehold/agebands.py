"""Age bands (Principle 7): the one vocabulary every part of Safehold uses for how old an account's holder is.

Five bands, following the thresholds the public guidance for children's services draws (the UK Age Appropriate
Design Code's developmental ranges, COPPA's 13, the DSA guidelines on minors' protection, most platforms' 16 for
direct messages from strangers): ``under13``, ``13-15``, ``16-17``, ``adult`` and ``unknown``. An account's band
is resolved from its age signals by :mod:`safehold.safety.ages`; the pipeline and the contact and media policies
only ever read the band.
"""

from __future__ import annotations

import datetime as dt

BANDS = ("under13", "13-15", "16-17", "adult", "unknown")
#: The bands of a minor, youngest first.
MINOR_BANDS = ("under13", "13-15", "16-17")
#: Youngest first; ``unknown`` sorts last (it says nothing).
ORDER = {band: i for i, band in enumerate(BANDS)}


def is_minor(band: str | None) -> bool:
    return band in MINOR_BANDS


def band_for_age(age: int | float) -> str:
    """The band of someone ``age`` years old (whole years; a fractional estimate is rounded down)."""
    if age < 13:
        return "under13"
    if age < 16:
        return "13-15"
    if age < 18:
        return "16-17"
    return "adult"


def age_on(born: dt.date, on: dt.date) -> int:
    """Whole years between ``born`` and ``on`` (a birthday not yet reached this year does not count)."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def band_for_birth_date(born: dt.date, on: dt.date | None = None) -> str:
    return band_for_age(age_on(born, on or dt.datetime.now(dt.UTC).date()))
