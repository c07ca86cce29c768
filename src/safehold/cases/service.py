"""Cases: every detection about a subject becomes (or joins) a case, ranked by priority and claimed for review.

One open case per subject (``open_key`` is unique while the case is open), even when two detections about the
same subject arrive at once: the insert is ``ON CONFLICT DO NOTHING`` on ``open_key``, and the loser updates the
winner's case. A case's priority and band only ever go up while it is open (see :mod:`safehold.cases.priority`);
:meth:`CaseService.refresh_priorities` re-ranks open cases as they age. A claim gives one reviewer a case for
``settings.claim_minutes``; review decisions need a live claim (:meth:`CaseService.locked_for`).
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from safehold import jsonlimits
from safehold.audit import AuditService
from safehold.audit.service import to_dict as audit_dict
from safehold.cases import priority as prio
from safehold.cases.detection import CaseRef, Detection, DetectionSignal, check, queue_for, subject_key
from safehold.cases.taxonomy import QUEUES, STATUSES
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.store.db import Database
from safehold.store.models import (
    AppSetting,
    AuditRecord,
    Case,
    CaseAction,
    CaseDecision,
    CaseItem,
    CaseSignal,
    iso,
    utcnow,
)

SLA_KEY = "sla_hours"
#: ``refresh_priorities`` runs at most this often when called without ``now`` (the upkeep loop calls it often).
REFRESH_SECONDS = 60.0
#: A priority rise smaller than this is not written back (ranking is unaffected; saves writes as cases age).
PRIORITY_STEP = 0.005
#: Lists in merged metadata (IP events, …) keep at most this many entries, the newest.
MAX_LIST = 1000
MAX_LIMIT = 500
#: A case's history is read for at most this many audit targets per query (the case and each of its items).
HISTORY_BATCH = 500
ACTIVE = "active"


class CaseService:
    def __init__(self, db: Database, audit: AuditService, settings: Settings):
        self.db = db
        self.audit = audit
        self.settings = settings
        self._refreshed_at: float | None = None
        self._refresh_lock = threading.Lock()

    # ---------------------------------------------------------------- record

    def record(self, detection: Detection, actor: str, session: Session | None = None) -> CaseRef:
        """Open a case for the detection's subject, or add the detection to the subject's open case.

        With ``session`` it joins the caller's transaction (so, for example, an ingested event and its case
        commit together); without, it commits on its own.
        """
        check(detection)
        if not detection.signals:
            raise SafeholdError("case.no_signals", "A detection needs at least one signal to open a case.")
        return self._apply(detection, actor, session, open_new=True)

    def attach(self, detection: Detection, actor: str, session: Session | None = None) -> CaseRef | None:
        """Add what a detection brings (metadata, an item, signals) to its subject's open case, if there is one;
        never opens a case. Used for platform events that carry no signal of their own."""
        check(detection)
        return self._apply(detection, actor, session, open_new=False)

    def _apply(self, d: Detection, actor: str, session: Session | None, *, open_new: bool) -> CaseRef | None:
        if session is None:
            with self.db.session() as s:
                return self._apply(d, actor, s, open_new=open_new)
        s = session
        key = subject_key(d)
        lock_writes(s)
        now = utcnow()
        case, created = self._case_for(s, key, d, now, open_new=open_new)
        if case is None:
            return None
        if not created:
            case.metadata_ = merge(case.metadata_ or {}, d.metadata)
            case.content_id = case.content_id or d.content_id
            case.account_id = case.account_id or d.account_id
        item = self._item(s, case, d) if d.has_item else None
        for sig in d.signals:
            s.add(_signal_row(case.id, item.id if item else None, sig))
        s.flush()
        case.known_match = bool(case.known_match or d.known_match)
        if d.signals:
            self._rank(s, case, now, self._sla(s), d.signals)
        case.updated_at = now
        s.flush()
        detail = {
            "subject": key,
            "source": d.source,
            "signals": len(d.signals),
            "band": case.band,
            "priority": round(case.priority, 4),
            "known_match": case.known_match,
        }
        if created:
            detail["queue"] = case.queue
        if item is not None:
            detail["item_id"] = item.id
        rule_band = prio.urgent_band(d.signals)
        if rule_band is not None:
            detail["reasons"] = prio.reasons(d.signals, prio.score((g.category, g.confidence) for g in d.signals))
        self.audit.record(s, actor, "case.open" if created else "case.update", f"case:{case.id}", detail)
        return CaseRef(case.id, created, case.status, case.band, case.priority)

    def _case_for(
        self, s: Session, key: str, d: Detection, now: dt.datetime, *, open_new: bool
    ) -> tuple[Case | None, bool]:
        """The subject's open case (row-locked on PostgreSQL), or a new one. A concurrent insert of the same
        subject makes ours do nothing; the next round then finds (and updates) the winner's case."""
        insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
        for _ in range(5):
            case = s.scalars(select(Case).where(Case.open_key == key).with_for_update()).first()
            if case is not None and case.status == "closed":  # closed without giving its key back
                case.open_key = None
                s.flush()
                case = None
            if case is not None:
                return case, False
            if not open_new:
                return None, False
            stmt = (
                insert(Case)
                .values(
                    subject_key=key,
                    open_key=key,
                    content_id=d.content_id,
                    account_id=d.account_id,
                    source=d.source,
                    queue=queue_for(d),
                    status="open",
                    severity=0.0,
                    confidence=0.0,
                    priority=0.0,
                    band=prio.BAND_NAMES[-1],
                    known_match=False,
                    metadata_=merge({}, d.metadata),
                    opened_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["open_key"])
                .returning(Case.id)
            )
            new_id = s.execute(stmt).scalar()
            if new_id is not None:
                return s.get(Case, new_id), True
        raise Conflict("case.busy", "The subject's case is changing too fast; retry.")

    @staticmethod
    def _item(s: Session, case: Case, d: Detection) -> CaseItem:
        """The case's item for this content (filled in with what it lacked), or a new one."""
        q = select(CaseItem).where(CaseItem.case_id == case.id)
        if d.content_id:
            q = q.where(CaseItem.content_id == d.content_id)
        elif d.media is not None:
            q = q.where(CaseItem.sha256 == d.media.sha256)
        else:
            q = None
        item = s.scalars(q.order_by(CaseItem.id.desc())).first() if q is not None else None
        if item is not None and d.media is not None and item.sha256 not in (None, d.media.sha256):
            item = None  # the platform sent other media under the same content id: keep both
        if item is None:
            item = CaseItem(case_id=case.id, content_id=d.content_id, metadata_={})
            s.add(item)
        if d.media is not None and item.media_key is None:
            item.media_key = item.sha256 = d.media.sha256
            item.md5, item.size = d.media.md5, d.media.size
        for attr in ("media_type", "filename", "text", "url", "uploaded_at"):
            if getattr(item, attr) is None and getattr(d, attr) is not None:
                setattr(item, attr, getattr(d, attr))
        item.metadata_ = merge(item.metadata_ or {}, d.item_metadata)
        s.flush()
        return item

    @staticmethod
    def _rank(s: Session, case: Case, now: dt.datetime, sla: dict[str, float], new: list[DetectionSignal]) -> None:
        """Score the case from all its signals, then apply the urgency rules to the ``new`` ones (a band they gave
        stays: priority and band only go up while the case is open, so earlier signals need no second look)."""
        pairs = s.execute(select(CaseSignal.category, CaseSignal.confidence).where(CaseSignal.case_id == case.id))
        score = prio.score(pairs.all())
        case.category, case.severity, case.confidence = score.category, score.severity, score.confidence
        case.priority = max(case.priority or 0.0, prio.priority(score, case.opened_at, now))
        rule_band = prio.urgent_band(new)
        if rule_band is not None:
            case.priority = max(case.priority, prio.floor(rule_band))
        case.band = prio.more_urgent(case.band, prio.band_of(case.priority))
        case.due_at = prio.due_at(case.opened_at, case.band, sla)

    # ------------------------------------------------------------------ read

    def get(self, case_id: int) -> dict:
        """The full record: the case, its items, signals, decisions, actions, history and related cases."""
        with self.db.session() as s:
            case = _case(s, case_id)
            out = summary(case)
            for key, model, as_dict in (
                ("items", CaseItem, item_dict),
                ("signals", CaseSignal, signal_dict),
                ("decisions", CaseDecision, decision_dict),
                ("actions", CaseAction, action_dict),
            ):
                rows = s.scalars(select(model).where(model.case_id == case_id).order_by(model.id)).all()
                out[key] = [as_dict(r) for r in rows]
                if model is CaseSignal:
                    score = prio.Score(case.category, case.severity, case.confidence)
                    out["reasons"] = prio.reasons(rows, score)
            # The case's own records and its items' (reveals, EXIF views: ``case_item:{id}``), in log order;
            # the targets go in batches so a case with many items stays under the databases' parameter limits.
            targets = [f"case:{case_id}", *(f"case_item:{i['id']}" for i in out["items"])]
            history: list[AuditRecord] = []
            for start in range(0, len(targets), HISTORY_BATCH):
                batch = targets[start : start + HISTORY_BATCH]
                history.extend(s.scalars(select(AuditRecord).where(AuditRecord.target.in_(batch))))
            out["history"] = [audit_dict(r) for r in sorted(history, key=lambda r: r.seq)]
            out["related"] = []
            if case.account_id:
                related = (
                    select(Case)
                    .where(Case.account_id == case.account_id, Case.id != case_id)
                    .order_by(Case.opened_at.desc(), Case.id.desc())
                    .limit(100)
                )
                out["related"] = [
                    {
                        "id": r.id,
                        "status": r.status,
                        "band": r.band,
                        "decision": r.decision,
                        "opened_at": iso(r.opened_at),
                    }
                    for r in s.scalars(related)
                ]
            return out

    def summary(self, case_row: Case) -> dict:
        return summary(case_row)

    def item(self, item_id: int) -> dict:
        with self.db.session() as s:
            item = s.get(CaseItem, item_id)
            if item is None:
                raise NotFound("case.item_not_found", f"No case item with id {item_id}.")
            return item_dict(item)

    def list(
        self,
        *,
        status: str = ACTIVE,
        queue: str | None = None,
        band: str | None = None,
        overdue: bool = False,
        claimed_by: str | None = None,
        account_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict:
        """A page of cases, most urgent first (priority, then the longest waiting)."""
        _check_filter("status", status, (ACTIVE, "all", *STATUSES))
        _check_filter("queue", queue, QUEUES)
        _check_filter("band", band, prio.BAND_NAMES)
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            raise SafeholdError("request.invalid_limit", f"limit must be between 1 and {MAX_LIMIT}, offset >= 0.")
        now = utcnow()
        conds = []
        if status == ACTIVE:
            conds.append(Case.status != "closed")
        elif status != "all":
            conds.append(Case.status == status)
        if queue:
            conds.append(Case.queue == queue)
        if band:
            conds.append(Case.band == band)
        if overdue:
            conds += [Case.status != "closed", Case.due_at < now]
        if claimed_by:
            conds += [Case.claimed_by == claimed_by, Case.claim_expires_at > now]
        if account_id:
            conds.append(Case.account_id == account_id)
        with self.db.session() as s:
            total = s.scalar(select(func.count()).select_from(Case).where(*conds)) or 0
            q = (
                select(Case)
                .where(*conds)
                .order_by(Case.priority.desc(), Case.opened_at, Case.id)
                .limit(limit)
                .offset(offset)
            )
            return {"cases": [summary(c, now) for c in s.scalars(q)], "total": total}

    def counts(self) -> dict:
        """What the console's tabs show: active (not closed) cases per queue and band, and how many are overdue,
        waiting for a second reviewer or escalated."""
        now = utcnow()
        active = Case.status != "closed"
        with self.db.session() as s:
            by_queue = dict(s.execute(select(Case.queue, func.count()).where(active).group_by(Case.queue)).all())
            by_band = dict(s.execute(select(Case.band, func.count()).where(active).group_by(Case.band)).all())
            by_status = dict(s.execute(select(Case.status, func.count()).where(active).group_by(Case.status)).all())
            overdue = s.scalar(select(func.count()).select_from(Case).where(active, Case.due_at < now)) or 0
        return {
            "by_queue": {q: by_queue.get(q, 0) for q in QUEUES},
            "by_band": {b: by_band.get(b, 0) for b in prio.BAND_NAMES},
            "overdue": overdue,
            "awaiting_confirmation": by_status.get("awaiting_confirmation", 0),
            "escalated": by_status.get("escalated", 0),
        }

    # ---------------------------------------------------------------- claims

    def claim(self, case_id: int, actor: str, *, override: bool = False) -> dict:
        """Take (or renew) the case for ``settings.claim_minutes``. Another reviewer's live claim refuses it
        (``case.claimed``) unless ``override`` (a senior reviewer taking over)."""
        now = utcnow()
        until = now + dt.timedelta(minutes=self.settings.claim_minutes)
        with self.db.session() as s:
            lock_writes(s)
            holder = s.execute(
                select(Case.claimed_by, Case.claim_expires_at).where(Case.id == case_id).with_for_update()
            ).first()
            if holder is None:
                raise NotFound("case.not_found", f"No case with id {case_id}.")
            conds = [Case.id == case_id, Case.status != "closed"]
            if not override:
                conds.append(or_(Case.claimed_by.is_(None), Case.claimed_by == actor, Case.claim_expires_at <= now))
            done = s.execute(
                update(Case).where(*conds).values(claimed_by=actor, claim_expires_at=until, updated_at=now)
            ).rowcount
            case = _case(s, case_id)
            if not done:
                raise _refusal(case)
            taken_from = _live_holder(holder.claimed_by, holder.claim_expires_at, now)
            overridden = taken_from not in (None, actor)
            detail = {"until": iso(until)}
            if overridden:
                detail["claimed_by"] = taken_from
            action = "case.claim_override" if overridden else "case.claim"
            self.audit.record(s, actor, action, f"case:{case_id}", detail)
            return summary(case, now)

    def release(self, case_id: int, actor: str, *, override: bool = False) -> dict:
        """Give the case back. Releasing another reviewer's live claim needs ``override``."""
        now = utcnow()
        with self.db.session() as s:
            lock_writes(s)
            case = _case(s, case_id, lock=True)
            holder = _live_holder(case.claimed_by, case.claim_expires_at, now)
            if holder not in (None, actor) and not override:
                raise _refusal(case)
            if case.claimed_by is None:
                return summary(case, now)
            detail = {"claimed_by": case.claimed_by, "override": holder not in (None, actor)}
            case.claimed_by = case.claim_expires_at = None
            case.updated_at = now
            s.flush()
            self.audit.record(s, actor, "case.release", f"case:{case_id}", detail)
            return summary(case, now)

    def locked_for(self, session: Session, case_id: int, actor: str, *, override: bool = False) -> Case:
        """The case row, locked in the caller's transaction, if ``actor`` holds a live claim on it (or
        ``override``). Review uses it so that a decision and the claim it relies on cannot race."""
        now = utcnow()
        lock_writes(session)
        case = _case(session, case_id, lock=True)
        if case.status == "closed":
            raise Conflict("case.closed", f"Case {case_id} is closed.")
        if override:
            return case
        holder = _live_holder(case.claimed_by, case.claim_expires_at, now)
        if holder == actor:
            return case
        if holder is None:
            raise Conflict("case.not_claimed", f"Claim case {case_id} first.")
        raise _refusal(case)

    # -------------------------------------------------------------- priority

    def refresh_priorities(self, now: dt.datetime | None = None) -> int:
        """Re-rank open cases as they age (and re-derive their due time from their band's SLA); returns how many
        changed. Without ``now`` it runs at most every ``REFRESH_SECONDS`` (the upkeep loop calls it often).

        Each write is conditional on the priority and band read, so a concurrent update (a new signal, a review
        escalation) is never overwritten: the next round picks it up.
        """
        if now is None:
            with self._refresh_lock:
                clock = time.monotonic()
                if self._refreshed_at is not None and clock - self._refreshed_at < REFRESH_SECONDS:
                    return 0
                self._refreshed_at = clock
            now = utcnow()
        changed = 0
        with self.db.session() as s:
            sla = self._sla(s)
            rows = s.execute(
                select(
                    Case.id, Case.opened_at, Case.severity, Case.confidence, Case.priority, Case.band, Case.due_at
                ).where(Case.status != "closed")
            ).all()
            for r in rows:
                score = prio.Score(None, r.severity, r.confidence)
                p = max(r.priority, prio.priority(score, r.opened_at, now))
                band = prio.more_urgent(r.band, prio.band_of(p))
                due = prio.due_at(r.opened_at, band, sla)
                if p - r.priority < PRIORITY_STEP and band == r.band and due == r.due_at:
                    continue
                changed += s.execute(
                    update(Case)
                    .where(Case.id == r.id, Case.priority == r.priority, Case.band == r.band, Case.status != "closed")
                    .values(priority=max(p, r.priority), band=band, due_at=due)
                ).rowcount
        return changed

    def sla_hours(self) -> dict:
        with self.db.session() as s:
            return self._sla(s)

    def set_sla_hours(self, hours: dict, actor: str) -> dict:
        """Change the SLA (hours from opening to decision) of some bands; open cases get new due times."""
        new = prio.check_sla_hours(hours)
        with self.db.session() as s:
            old = self._sla(s)
            value = {**old, **new}
            row = s.get(AppSetting, SLA_KEY, with_for_update=True)
            if row is None:
                s.add(AppSetting(key=SLA_KEY, value=value, updated_by=actor))
            else:
                row.value, row.updated_by = value, actor
            s.flush()
            self.audit.record(s, actor, "settings.update", f"setting:{SLA_KEY}", {"old": old, "new": value})
        self.refresh_priorities(utcnow())
        return value

    def raise_band(self, s: Session, case: Case, band: str) -> None:
        """Make the case at least as urgent as ``band`` (an operator rule's priority), in the caller's
        transaction; like every rise, it stays while the case is open."""
        if prio.more_urgent(case.band, band) != case.band:
            case.band = band
            case.priority = max(case.priority or 0.0, prio.floor(band))
            case.due_at = prio.due_at(case.opened_at, band, self._sla(s))

    def sla_in(self, s: Session) -> dict[str, float]:
        """The SLA hours in force, read in the caller's transaction."""
        return self._sla(s)

    @staticmethod
    def _sla(s: Session) -> dict[str, float]:
        row = s.get(AppSetting, SLA_KEY)
        return prio.effective_sla(row.value if row else None)


# ------------------------------------------------------------------ helpers


def lock_writes(s: Session) -> None:
    """On SQLite, take the database's writer lock now, before reading what will be changed.

    pysqlite runs reads before a transaction's first write outside any transaction, so two writers could both
    read a case and then overwrite each other's change. PostgreSQL needs nothing: rows are locked with
    ``SELECT … FOR UPDATE``.
    """
    if s.bind.dialect.name == "sqlite":
        s.execute(text("UPDATE cases SET id = id WHERE 0 = 1"))


def merge(old: dict, new: dict | None) -> dict:
    """``new`` merged into ``old``: nested maps merge, lists gain the entries they lacked (newest
    ``MAX_LIST`` kept), other values are replaced. Returns a new dict (JSON columns need a new value to save)."""
    out = dict(old)
    for key, value in (new or {}).items():
        before = out.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            out[key] = merge(before, value)
        elif isinstance(value, list) and isinstance(before, list):
            out[key] = (before + [v for v in value if v not in before])[-MAX_LIST:]
        else:
            out[key] = value
    return out


def close(case: Case, at: dt.datetime | None = None) -> None:
    """Mark a case closed: its subject's next detection opens a new case, and its claim ends.

    Review calls this (not ``status = 'closed'`` alone): ``open_key`` must be cleared for the subject to be free.
    """
    case.status = "closed"
    case.closed_at = at or utcnow()
    case.open_key = None
    case.claimed_by = case.claim_expires_at = None


def _signal_row(case_id: int, item_id: int | None, sig: DetectionSignal) -> CaseSignal:
    return CaseSignal(
        case_id=case_id,
        item_id=item_id,
        source=sig.source,
        signal_type=sig.signal_type,
        value=sig.value,
        bank=sig.bank,
        entry_id=sig.entry_id,
        category=sig.category,
        confidence=float(sig.confidence),
        distance=sig.distance,
        detail=dict(sig.detail or {}),
    )


def _case(s: Session, case_id: int, *, lock: bool = False) -> Case:
    q = select(Case).where(Case.id == case_id).execution_options(populate_existing=True)
    case = s.scalars(q.with_for_update() if lock else q).first()
    if case is None:
        raise NotFound("case.not_found", f"No case with id {case_id}.")
    return case


def _live_holder(claimed_by: str | None, expires: dt.datetime | None, now: dt.datetime) -> str | None:
    return claimed_by if claimed_by and expires and expires > now else None


def _refusal(case: Case) -> Conflict:
    """Why ``case`` cannot be claimed or changed: closed, or another reviewer's live claim."""
    if case.status == "closed":
        return Conflict("case.closed", f"Case {case.id} is closed.")
    return Conflict(
        "case.claimed",
        f"Case {case.id} is claimed by {case.claimed_by}.",
        detail={"claimed_by": case.claimed_by, "claim_expires_at": iso(case.claim_expires_at)},
    )


def _check_filter(name: str, value: str | None, allowed: tuple) -> None:
    if value is not None and value not in allowed:
        raise SafeholdError("case.invalid_filter", f"{name} must be one of {', '.join(allowed)}.")


def summary(c: Case, now: dt.datetime | None = None) -> dict:
    """The case's own fields (what lists show). A lapsed claim shows as no claim."""
    now = now or utcnow()
    holder = _live_holder(c.claimed_by, c.claim_expires_at, now)
    return {
        "id": c.id,
        "status": c.status,
        "queue": c.queue,
        "source": c.source,
        "category": c.category,
        "severity": c.severity,
        "confidence": c.confidence,
        "priority": round(c.priority, 4),
        "band": c.band,
        "due_at": iso(c.due_at),
        "overdue": c.status != "closed" and c.due_at is not None and c.due_at < now,
        "known_match": c.known_match,
        "content_id": c.content_id,
        "account_id": c.account_id,
        "metadata": jsonlimits.clip(c.metadata_ or {}),
        "claimed_by": holder,
        "claim_expires_at": iso(c.claim_expires_at) if holder else None,
        "decision": c.decision,
        "classification": c.classification,
        "decided_by": c.decided_by,
        "decided_at": iso(c.decided_at),
        "confirmed_by": c.confirmed_by,
        "confirmed_at": iso(c.confirmed_at),
        "opened_at": iso(c.opened_at),
        "updated_at": iso(c.updated_at),
        "closed_at": iso(c.closed_at),
    }


def item_dict(i: CaseItem) -> dict:
    return {
        "id": i.id,
        "case_id": i.case_id,
        "content_id": i.content_id,
        "media_type": i.media_type,
        "filename": i.filename,
        "size": i.size,
        "sha256": i.sha256,
        "md5": i.md5,
        "text": i.text,
        "url": i.url,
        "uploaded_at": iso(i.uploaded_at),
        "metadata": jsonlimits.clip(i.metadata_ or {}),
        "has_media": i.media_key is not None,
        "added_at": iso(i.added_at),
    }


def signal_dict(g: CaseSignal) -> dict:
    return {
        "id": g.id,
        "item_id": g.item_id,
        "source": g.source,
        "signal_type": g.signal_type,
        "value": g.value,
        "bank": g.bank,
        "entry_id": g.entry_id,
        "category": g.category,
        "confidence": g.confidence,
        "distance": g.distance,
        "detail": jsonlimits.clip(g.detail or {}),
        "at": iso(g.at),
    }


def decision_dict(x: CaseDecision) -> dict:
    return {
        "id": x.id,
        "kind": x.kind,
        "decision": x.decision,
        "classification": x.classification,
        "note": x.note,
        "actor": x.actor,
        "at": iso(x.at),
    }


def action_dict(a: CaseAction) -> dict:
    return {
        "id": a.id,
        "kind": a.kind,
        "params": a.params or {},
        "policy": a.policy,
        "actor": a.actor,
        "created_at": iso(a.created_at),
    }


__all__ = ["CaseRef", "CaseService", "Detection", "DetectionSignal", "close", "merge", "summary"]
