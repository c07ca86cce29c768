"""Reviewer wellness: how media is shown, and how much of it one person sees in a day.

Admins set the defaults; a reviewer may only make them stricter (blur on, a lower daily cap, more frequent
and longer breaks), never looser. The effective settings are computed on every use from the current defaults
and the reviewer's own choices, so an admin tightening a default applies to everyone at once, whatever they
chose before.

Exposure is counted from the audit log itself (``media.reveal`` records), not from a separate counter: the
number a reviewer is capped on is the same number a report or an auditor sees.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from safehold.audit import AuditService
from safehold.errors import SafeholdError
from safehold.store.db import Database
from safehold.store.models import AppSetting, AuditRecord, User, utcnow

SETTING_KEY = "wellness_defaults"
REVEAL = "media.reveal"
BREAK = "review.break"

DEFAULTS: dict = {
    "blur": True,
    "greyscale": True,
    "thumbnails_first": True,
    "video_muted": True,
    "video_autoplay": False,
    "daily_cap": 300,
    "break_every": 50,
    "break_minutes": 10,
}

#: The protective value of each switch: a reviewer may choose it, never its opposite if the default is it.
PROTECTIVE = {"blur": True, "greyscale": True, "thumbnails_first": True, "video_muted": True, "video_autoplay": False}
#: Numbers where less is stricter (a lower cap, a break after fewer reveals) ...
LOWER_IS_STRICTER = ("daily_cap", "break_every")
#: ... and where more is stricter (a longer break).
HIGHER_IS_STRICTER = ("break_minutes",)
#: Bounds of the numbers (a break of up to 8 hours; a cap of up to 100 000 reveals a day).
LIMITS = {"daily_cap": (1, 100_000), "break_every": (1, 100_000), "break_minutes": (1, 480)}


def _check(prefs: object) -> dict:
    """Known keys with values of the right type and range; raises ``wellness.invalid`` (detail ``field``)."""
    if not isinstance(prefs, dict):
        raise SafeholdError("wellness.invalid", "Wellness settings are a map of names to values.")
    out: dict = {}
    for name, value in prefs.items():
        if name in PROTECTIVE:
            if not isinstance(value, bool):
                raise SafeholdError("wellness.invalid", f"{name} is true or false.", detail={"field": name})
        elif name in LIMITS:
            low, high = LIMITS[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise SafeholdError(
                    "wellness.invalid", f"{name} is a whole number from {low} to {high}.", detail={"field": name}
                )
        else:
            known = ", ".join(DEFAULTS)
            raise SafeholdError(
                "wellness.invalid", f"Unknown setting {name!r}; known: {known}.", detail={"field": name}
            )
        out[name] = value
    return out


def tighten(base: dict, prefs: dict) -> dict:
    """``base`` with each of ``prefs`` applied only where it is stricter (idempotent: tightening twice by the
    same prefs changes nothing)."""
    out = dict(base)
    for name, value in prefs.items():
        if name in PROTECTIVE:
            out[name] = PROTECTIVE[name] if PROTECTIVE[name] in (value, out[name]) else value
        elif name in LOWER_IS_STRICTER:
            out[name] = min(out[name], value)
        elif name in HIGHER_IS_STRICTER:
            out[name] = max(out[name], value)
    return out


def looser_field(base: dict, prefs: dict) -> str | None:
    """The first setting of ``prefs`` that is less protective than ``base``, or ``None``."""
    for name, value in prefs.items():
        if tighten(base, {name: value})[name] != value:
            return name
    return None


def stored_defaults(s) -> dict:
    """The admin's defaults over the built-in ones, read in session ``s`` (a stored value that is no longer valid
    is ignored). The transparency figures read the caps through this too, so they use the reviewers' numbers."""
    row = s.get(AppSetting, SETTING_KEY)
    out = dict(DEFAULTS)
    for name, value in ((row.value if row else None) or {}).items():
        try:
            out.update(_check({name: value}))
        except SafeholdError:
            continue
    return out


def tightened(defaults: dict, user_prefs: dict | None) -> dict:
    """``defaults`` tightened by a reviewer's stored choices; choices that are not valid (any more) are ignored
    rather than refused: a broken preference never loosens anything."""
    out = dict(defaults)
    for name, value in (user_prefs or {}).items():
        try:
            out = tighten(out, _check({name: value}))
        except SafeholdError:
            continue
    return out


def utc_midnight(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class WellnessService:
    def __init__(self, db: Database, audit: AuditService):
        self.db = db
        self.audit = audit

    # --------------------------------------------------------------- settings

    def defaults(self) -> dict:
        """The admin's defaults over the built-in ones (a stored value that is no longer valid is ignored)."""
        with self.db.session() as s:
            return stored_defaults(s)

    def set_defaults(self, prefs: dict, actor: str) -> dict:
        """Change some defaults (the others keep their value); applies to every reviewer at once."""
        new = _check(prefs)
        if not new:
            raise SafeholdError("wellness.invalid", "Give at least one setting to change.")
        old = self.defaults()
        value = {**old, **new}
        with self.db.session() as s:
            row = s.get(AppSetting, SETTING_KEY, with_for_update=True)
            if row is None:
                s.add(AppSetting(key=SETTING_KEY, value=value, updated_by=actor))
            else:
                row.value, row.updated_by = value, actor
            s.flush()
            self.audit.record(s, actor, "settings.update", f"setting:{SETTING_KEY}", {"old": old, "new": value})
        return value

    def effective(self, user_prefs: dict | None) -> dict:
        """The admin defaults, tightened by the reviewer's own choices. Stored choices that are not valid (any
        more) are ignored rather than refused: a broken preference never loosens anything."""
        return tightened(self.defaults(), user_prefs)

    def validate_user_prefs(self, prefs: dict) -> dict:
        """A reviewer's choices, checked before they are stored: known settings only, none looser than the
        current defaults (``wellness.cannot_loosen``, detail ``field``)."""
        prefs = _check(prefs)
        loose = looser_field(self.defaults(), prefs)
        if loose is not None:
            raise SafeholdError(
                "wellness.cannot_loosen",
                f"{loose} would be less protective than the default set by your administrator.",
                detail={"field": loose},
            )
        return prefs

    def user_prefs(self, user_id: int | None) -> dict:
        """A console user's own choices (API keys have none)."""
        if user_id is None:
            return {}
        with self.db.session() as s:
            return dict(s.scalar(select(User.wellness).where(User.id == user_id)) or {})

    # --------------------------------------------------------------- exposure

    def exposure(self, actor_label: str, prefs: dict | None = None, *, now: dt.datetime | None = None) -> dict:
        """How much ``actor_label`` has revealed today (UTC) and whether a break is due. ``prefs`` may be the
        reviewer's own choices or the effective settings (tightening is idempotent)."""
        eff = self.effective(prefs)
        now = now or utcnow()
        with self.db.session() as s:
            today, since_break = count_reveals(s, actor_label, now)
        cap = eff["daily_cap"]
        return {
            "today": today,
            "cap": cap,
            "remaining": max(cap - today, 0),
            "since_break": since_break,
            "break_due": since_break >= eff["break_every"],
        }

    def take_break(self, actor_label: str) -> None:
        """Record that the reviewer stepped away: the reveals-since-break count starts again."""
        self.audit.record(None, actor_label, BREAK, f"reviewer:{actor_label}", {})


def count_reveals(s, actor_label: str, now: dt.datetime) -> tuple[int, int]:
    """(reveals since UTC midnight, reveals since the last break today) by ``actor_label``, in session ``s``."""
    midnight = utc_midnight(now)
    mine = (AuditRecord.actor == actor_label, AuditRecord.at >= midnight)
    last_break = s.scalar(select(func.max(AuditRecord.at)).where(*mine, AuditRecord.action == BREAK))
    counted = func.count()
    today = s.scalar(select(counted).where(*mine, AuditRecord.action == REVEAL)) or 0
    if last_break is None:
        return today, today
    since = s.scalar(select(counted).where(*mine, AuditRecord.action == REVEAL, AuditRecord.at > last_break)) or 0
    return today, since
