"""False-positive controls for bank entries, whatever their source (exchanges, imports, manual adds).

A hash shared by a list can be wrong: a common meme or a blank frame added by mistake then matches a flood of
harmless uploads, and on an ``auto`` bank every one of them would be acted on at once. Two controls:

**Match statistics.** Every match counts against its entry (:class:`~safehold.banks.matchstats.MatchCounts`,
batched, hourly rows); reviewers' decisions on the cases the matches opened say whether the entry was right
(:data:`~safehold.cases.taxonomy.MATCH_OUTCOMES`, derived from the closed cases, never stored twice). So each entry
and each source (bank × ``BankEntry.source``) has matches per day, first and last match, true and false positives
and a false-positive rate.

**Flood quarantine.** :meth:`QuarantineService.check` (the ``banks.flood_check`` task) quarantines a block-bank
entry whose matches in the last ``SAFEHOLD_FLOOD_WINDOW_HOURS`` reach

    threshold = max(SAFEHOLD_FLOOD_MIN_MATCHES, SAFEHOLD_FLOOD_FACTOR × median of its active peers' counts)

where its peers are the other entries of the same bank and source, and the active ones those that matched in the
window. The median of the active peers is robust (one other flooding entry does not move it) and follows the
bank's traffic: when the whole bank is busy, its ordinary entries are busy together and none stands out. While
quarantined, an entry's matches still open or update cases for review, with the reason on the case's signal, but
never run automatic actions (:mod:`safehold.pipeline.service`). An operator releases it (audited) or disables it;
a released entry is not quarantined again before one window has passed since the release (the cool-down).
Re-matching applies the rule's floor inside its round as well (:meth:`QuarantineService.flood_in_rematch`, see
:mod:`safehold.sharing.rematch`): the periodic check would only see a round's matches after all were handled.
"""

from __future__ import annotations

import datetime as dt
import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from safehold.audit import AuditService
from safehold.banks.matchstats import hour_of
from safehold.banks.service import entry_to_dict
from safehold.cases.taxonomy import MATCH_OUTCOMES
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.store.db import Database
from safehold.store.models import Bank, BankEntry, Case, CaseSignal, EntryMatchCount, iso, utcnow

#: The actor the audit log names for a quarantine the rule decided.
SYSTEM = "safehold"
#: ``check`` without ``now`` runs at most this often (the upkeep loop calls it every half second).
CHECK_SECONDS = 60.0
#: Old hourly rows are pruned at most this often.
PRUNE_SECONDS = 3600.0
#: The most days of statistics one request reads; the most quarantined entries one listing returns.
MAX_DAYS = 366
MAX_LIST = 1000


@dataclass(frozen=True)
class FloodRule:
    """The documented rule, from the settings (``SAFEHOLD_FLOOD_*``)."""

    window_hours: int
    floor: int
    factor: float

    @classmethod
    def of(cls, settings: Settings) -> FloodRule:
        return cls(settings.flood_window_hours, settings.flood_min_matches, settings.flood_factor)

    def threshold(self, peer_counts: list[int]) -> tuple[float, float]:
        """``(threshold, median)`` for an entry whose active peers matched ``peer_counts`` times in the window."""
        median = float(statistics.median(peer_counts)) if peer_counts else 0.0
        return max(float(self.floor), self.factor * median), median


class QuarantineService:
    def __init__(self, db: Database, audit: AuditService, settings: Settings):
        self.db = db
        self.audit = audit
        self.settings = settings
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._pruned_at: float | None = None

    @property
    def rule(self) -> FloodRule:
        return FloodRule.of(self.settings)

    # ---------------------------------------------------------------- the rule

    def check(self, now: dt.datetime | None = None) -> list[dict]:
        """Quarantine every entry the flood rule names; returns them (as :func:`entry_to_dict`). Without ``now``
        it runs at most every :data:`CHECK_SECONDS`, and prunes hourly rows older than ``SAFEHOLD_MATCH_STATS_DAYS``
        at most hourly."""
        if now is None:
            if not self._due("_checked_at", CHECK_SECONDS):
                return []
            if self._due("_pruned_at", PRUNE_SECONDS):
                self.prune()
            now = utcnow()
        rule = self.rule
        since = hour_of(now - dt.timedelta(hours=rule.window_hours - 1))  # the current hour is the window's last
        cooled = now - dt.timedelta(hours=rule.window_hours)
        out = []
        with self.db.session() as s:
            counts = s.execute(
                select(BankEntry.id, Bank.name, BankEntry.source, func.sum(EntryMatchCount.count))
                .join(EntryMatchCount, EntryMatchCount.entry_id == BankEntry.id)
                .join(Bank, Bank.id == BankEntry.bank_id)
                .where(EntryMatchCount.hour >= since, Bank.kind == "block")
                .group_by(BankEntry.id, Bank.name, BankEntry.source)
            ).all()
            groups: dict[tuple, dict[int, int]] = defaultdict(dict)
            for entry_id, bank, source, n in counts:
                groups[(bank, source)][entry_id] = int(n)
            for (bank, source), group in groups.items():
                for entry_id, n in group.items():
                    if n < rule.floor:
                        continue
                    peers = [c for other, c in group.items() if other != entry_id]
                    threshold, median = rule.threshold(peers)
                    if n >= threshold:
                        reason = {**_reason(rule, n, threshold, median, len(peers)), "bank": bank, "source": source}
                        quarantined = self._quarantine(s, entry_id, reason, now, cooled)
                        if quarantined is not None:
                            out.append(quarantined)
        return out

    def flood_in_rematch(self, entry_id: int, matched: int, opened: int) -> dict | None:
        """Quarantine an entry that re-matched ``matched`` earlier uploads in one round, more than the floor
        (:mod:`safehold.sharing.rematch`), with the numbers as its reason; the entry as :func:`entry_to_dict`, or
        ``None`` when it is quarantined already, disabled, or released within the cool-down."""
        now, rule = utcnow(), self.rule
        reason = {
            "rule": "rematch_flood",
            "matches": matched,
            "floor": rule.floor,
            "cases_opened": opened,
            "not_opened": matched - opened,
            "message": (
                f"re-matched {matched} earlier uploads in one round, more than the floor {rule.floor}: cases opened "
                f"for review for the {opened} most recent, {matched - opened} not opened"
            ),
        }
        with self.db.session() as s:
            return self._quarantine(s, entry_id, reason, now, now - dt.timedelta(hours=rule.window_hours))

    def _quarantine(
        self, s: Session, entry_id: int, reason: dict, now: dt.datetime, cooled: dt.datetime
    ) -> dict | None:
        """Quarantine the entry unless it is already, is disabled, or was released within the cool-down; the
        write is conditional, so two checkers at once quarantine (and audit) it once."""
        e = BankEntry
        done = s.execute(
            update(e)
            .where(
                e.id == entry_id,
                e.enabled.is_(True),
                e.quarantined_at.is_(None),
                (e.quarantine_released_at.is_(None)) | (e.quarantine_released_at <= cooled),
            )
            .values(quarantined_at=now, quarantine_reason=reason)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not done:
            return None
        self.audit.record(s, SYSTEM, "entry.quarantine", f"entry:{entry_id}", reason)
        return entry_to_dict(s.get(BankEntry, entry_id, populate_existing=True))

    def _due(self, attr: str, every: float) -> bool:
        with self._lock:
            clock = time.monotonic()
            last = getattr(self, attr)
            if last is not None and clock - last < every:
                return False
            setattr(self, attr, clock)
            return True

    # ---------------------------------------------------------------- operators

    def release(self, entry_id: int, actor: str) -> dict:
        """End the entry's quarantine (audited ``entry.quarantine_release``, with the reason it had); the flood
        rule leaves it alone for one window. ``quarantine.not_quarantined`` (409) if it is not quarantined."""
        now = utcnow()
        with self.db.session() as s:
            entry = s.get(BankEntry, entry_id, with_for_update=True)
            if entry is None:
                raise NotFound("entry.not_found", f"No entry with id {entry_id}.")
            if entry.quarantined_at is None:
                raise Conflict("quarantine.not_quarantined", f"Entry {entry_id} is not quarantined.")
            detail = {
                "bank": entry.bank.name,
                "quarantined_at": iso(entry.quarantined_at),
                "reason": entry.quarantine_reason or {},
            }
            entry.quarantined_at = entry.quarantine_reason = None
            entry.quarantine_released_at = now
            s.flush()
            self.audit.record(s, actor, "entry.quarantine_release", f"entry:{entry_id}", detail)
            return entry_to_dict(entry)

    def quarantined(self, limit: int = MAX_LIST) -> list[dict]:
        """The quarantined entries, most recent first, each with why (``quarantine.reason``)."""
        with self.db.session() as s:
            rows = s.scalars(
                select(BankEntry)
                .where(BankEntry.quarantined_at.is_not(None))
                .order_by(BankEntry.quarantined_at.desc(), BankEntry.id.desc())
                .limit(min(limit, MAX_LIST))
            ).all()
            return [entry_to_dict(e) for e in rows]

    def prune(self) -> int:
        """Forget hourly match counts older than ``SAFEHOLD_MATCH_STATS_DAYS`` (never inside the flood window)."""
        keep = max(dt.timedelta(days=self.settings.match_stats_days), dt.timedelta(hours=self.rule.window_hours))
        with self.db.session() as s:
            return s.execute(delete(EntryMatchCount).where(EntryMatchCount.hour < hour_of(utcnow() - keep))).rowcount

    # ---------------------------------------------------------------- statistics

    def entry_stats(self, entry_id: int, days: int = 30) -> dict:
        """One entry's matches per UTC day over the last ``days``, its first and last match (as far back as the
        counts are kept), its matches in the flood window, its reviewed outcomes and its quarantine."""
        _check_days(days)
        now = utcnow()
        since_day = (now - dt.timedelta(days=days - 1)).date().isoformat()
        m = EntryMatchCount
        with self.db.session() as s:
            entry = s.get(BankEntry, entry_id)
            if entry is None:
                raise NotFound("entry.not_found", f"No entry with id {entry_id}.")
            total, first, last = s.execute(
                select(func.coalesce(func.sum(m.count), 0), func.min(m.first_at), func.max(m.last_at)).where(
                    m.entry_id == entry_id
                )
            ).one()
            per_day: dict[str, int] = defaultdict(int)
            for hour, n in s.execute(select(m.hour, m.count).where(m.entry_id == entry_id, m.hour >= since_day)):
                per_day[hour[:10]] += n
            window = s.scalar(
                select(func.coalesce(func.sum(m.count), 0)).where(m.entry_id == entry_id, m.hour >= self._since(now))
            )
            outcomes = _outcomes(s, BankEntry.id == entry_id, ()).get((), {})
            return {
                "entry": entry_to_dict(entry),
                "matches": int(total),
                "first_match_at": iso(first),
                "last_match_at": iso(last),
                "window_hours": self.rule.window_hours,
                "window_matches": int(window or 0),
                "per_day": [{"day": d, "matches": per_day[d]} for d in sorted(per_day)],
                **_rates(outcomes),
            }

    def source_stats(self, days: int = 30) -> list[dict]:
        """Per bank and source (``BankEntry.source``; ``null`` for entries added without one): entries,
        quarantined entries, matches over the last ``days`` and in the flood window, reviewed outcomes and the
        false-positive rate."""
        _check_days(days)
        now = utcnow()
        since_day = (now - dt.timedelta(days=days - 1)).date().isoformat()
        e, m = BankEntry, EntryMatchCount
        key = (Bank.name, e.source)
        with self.db.session() as s:
            groups: dict[tuple, dict] = {}
            for bank, source, n, quarantined in s.execute(
                select(*key, func.count(), func.count(e.quarantined_at)).join(Bank).group_by(*key)
            ):
                groups[(bank, source)] = {"bank": bank, "source": source, "entries": n, "quarantined": quarantined}
            for column, since in (("matches", since_day), ("window_matches", self._since(now))):
                for bank, source, n in s.execute(
                    select(*key, func.sum(m.count))
                    .join(e, e.id == m.entry_id)
                    .join(Bank, Bank.id == e.bank_id)
                    .where(m.hour >= since)
                    .group_by(*key)
                ):
                    if (bank, source) in groups:
                        groups[(bank, source)][column] = int(n or 0)
            outcomes = _outcomes(s, None, key)
            out = []
            for k in sorted(groups, key=lambda k: (k[0], k[1] or "")):
                g = groups[k]
                out.append(
                    {
                        **g,
                        "days": days,
                        "matches": g.get("matches", 0),
                        "window_matches": g.get("window_matches", 0),
                        **_rates(outcomes.get(k, {})),
                    }
                )
            return out

    def _since(self, now: dt.datetime) -> str:
        return hour_of(now - dt.timedelta(hours=self.rule.window_hours - 1))


def _reason(rule: FloodRule, n: int, threshold: float, median: float, peers: int) -> dict:
    """Why the rule quarantined an entry, with the numbers, for the operator and the case's reviewer."""
    return {
        "rule": "flood",
        "window_hours": rule.window_hours,
        "matches": n,
        "threshold": round(threshold, 2),
        "floor": rule.floor,
        "factor": rule.factor,
        "peer_median": median,
        "active_peers": peers,
        "message": (
            f"{n} matches in the last {rule.window_hours} h, at or above the threshold {threshold:g} = "
            f"max({rule.floor}, {rule.factor:g} × {median:g}, the median of {peers} active peer(s) of the same "
            "bank and source)"
        ),
    }


def _outcomes(s: Session, where, key: tuple) -> dict[tuple, dict[str, int]]:
    """Reviewed outcomes of closed cases holding hash matches on entries (``where``), per ``key`` columns: how
    many distinct cases each decision in :data:`MATCH_OUTCOMES` closed."""
    cond = [
        CaseSignal.source == "hash_match",
        Case.status == "closed",
        Case.decision.in_(list(MATCH_OUTCOMES)),
    ]
    if where is not None:
        cond.append(where)
    q = (
        select(*key, Case.decision, func.count(func.distinct(Case.id)))
        .select_from(CaseSignal)
        .join(Case, Case.id == CaseSignal.case_id)
        .join(BankEntry, BankEntry.id == CaseSignal.entry_id)
        .join(Bank, Bank.id == BankEntry.bank_id)
        .where(*cond)
        .group_by(*key, Case.decision)
    )
    out: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in s.execute(q):
        *k, decision, n = row
        out[tuple(k)][MATCH_OUTCOMES[decision]] += n
    return out


def _rates(outcomes: dict[str, int]) -> dict:
    tp, fp = outcomes.get("true_positive", 0), outcomes.get("false_positive", 0)
    return {
        "true_positives": tp,
        "false_positives": fp,
        "false_positive_rate": round(fp / (tp + fp), 4) if tp + fp else None,
    }


def _check_days(days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise SafeholdError("request.invalid_days", f"days must be between 1 and {MAX_DAYS}.")
