"""Feedback to sources: a reviewer's verdict on a match, sent back to the exchange the matched entry came from.

Queueing keeps review unaware of sharing. Every decision that closes a case writes its audit record (``case.decide``
or ``case.confirm``) last in its transaction, and audit records commit in ``seq`` order with no gaps (the audit log
is appended under one lock: see :mod:`safehold.audit.service`). So :meth:`FeedbackService.collect` reads those
records after a durable cursor (an ``app_settings`` row, moved in the same transaction as the opinions it queued)
and misses none, queues none twice. For each closed case it looks at the case's hash-match signals; each exchange
that publishes the matched entry (:class:`~safehold.store.models.BankEntryPublisher`; an import source of the same
name is not the exchange), of a type that takes feedback, gets an opinion about it, under its own external id:

* ``true_positive`` for a finding of abuse (:data:`~safehold.cases.taxonomy.VIOLATING`), with the case's
  classification as ``category``; ``false_positive`` for ``not_violating``. ``reason`` is the decision. A case
  waiting for its second reviewer, or escalated, gives nothing yet: only a closed case's decision is final (a
  closed case is never decided again), and an overturn only escalates.
* One row per (exchange, entry, verdict): another case decided the same way adds nothing. A case decided the other
  way is a **correction**: the opposite verdict is queued, and a not-yet-sent earlier opinion is ``superseded`` (a
  stale opinion is never sent after a newer one). If the source last heard the other verdict, the first one is
  queued again, so the source always ends up with the latest verdict. The two verdicts on one entry are never on
  the wire together (a row is not leased while its opposite holds a live lease); one superseded while its request
  was in flight stays ``superseded`` (with its ``sent_at``) and, if the newer verdict had been sent already, that
  one is queued again.

Delivery is the ``feedback.deliver`` task (:meth:`FeedbackService.run_once`): rows are leased (``UPDATE …
RETURNING`` over ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the writer lock on SQLite), sent one by one through the
exchange's :meth:`~safehold.sharing.base.Exchange.send_feedback`, and the result is written only while the row still
carries this round's lease. A retryable :class:`~safehold.sharing.base.ExchangeError` is retried with exponential
back-off (or the source's Retry-After, if longer; the exchange's other rows wait for it too) up to
``SAFEHOLD_FEEDBACK_MAX_ATTEMPTS``, then ``failed``; a refusal for good is ``failed`` at once with its reason;
``exchange.not_supported`` is ``unsupported``. An operator retries a failed row (``safehold feedback retry``).
At least once: a sender that dies mid-request lets its lease lapse and the row is sent again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Integer, String, bindparam, cast, func, literal, or_, select, update
from sqlalchemy.orm import Session, aliased

from safehold.audit import AuditService
from safehold.backoff import retry_delay
from safehold.banks.service import EXCHANGE_PUBLISHER
from safehold.cases.service import lock_writes
from safehold.cases.taxonomy import DECISIONS, VIOLATING
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.sharing import registry
from safehold.sharing.base import Exchange, ExchangeError, Opinion
from safehold.store.db import Database
from safehold.store.models import (
    AppSetting,
    AuditRecord,
    BankEntry,
    BankEntryPublisher,
    Case,
    CaseSignal,
    ExchangeFeedback,
    ExchangeRow,
    iso,
    utcnow,
)

log = logging.getLogger(__name__)

#: The verdict each final decision gives the entries a case matched: a finding of abuse confirms the match;
#: a decision that is neither a finding nor a deferral (``escalate``) says the match was wrong.
VERDICTS: dict[str, str] = {
    d: ("true_positive" if d in VIOLATING else "false_positive") for d in DECISIONS if d != "escalate"
}
OPPOSITE = {"true_positive": "false_positive", "false_positive": "true_positive"}
STATUSES = ("queued", "sent", "failed", "superseded", "unsupported")
#: The audit actions of a decision that may close a case (review writes them; see the module docstring).
CLOSING = ("case.decide", "case.confirm")
#: Where the collect cursor (the last audit ``seq`` read) is kept.
CURSOR_KEY = "sharing.feedback_cursor"
#: Audit records read per collect round; opinions sent per delivery round.
COLLECT_BATCH = 500
DELIVER_BATCH = 8
#: Seconds a sender holds a row: longer than an exchange's request timeout and the write of its result.
LEASE_SECONDS = 120.0
MAX_ERROR = 300
MAX_LIST = 500

_F = ExchangeFeedback
_OTHER = aliased(ExchangeFeedback)
TABLE = _F.__table__
_PICK = (
    select(_F.id)
    .join(ExchangeRow, ExchangeRow.id == _F.exchange_id)
    .where(
        _F.status == "queued",
        _F.next_at <= bindparam("at"),
        or_(_F.lease_until.is_(None), _F.lease_until < bindparam("at")),
        ExchangeRow.enabled.is_(True),
        ~select(_OTHER.id)
        .where(
            _OTHER.exchange_id == _F.exchange_id,
            _OTHER.entry_id == _F.entry_id,
            _OTHER.id != _F.id,
            _OTHER.lease_until >= bindparam("at"),
        )
        .exists(),  # never both verdicts on the wire at once: the one sent last must be the latest
    )
    .order_by(_F.next_at)
    .limit(bindparam("n", type_=Integer(), literal_execute=True))
    .with_for_update(skip_locked=True, of=_F)
    .cte("pick")
    .prefix_with("MATERIALIZED", dialect="postgresql")
)
LEASE = (
    update(TABLE)
    .where(TABLE.c.id.in_(select(_PICK.c.id)))
    .values(lease_until=bindparam("new_lease"))
    .returning(TABLE.c.id)
)
_MINE = (TABLE.c.id == bindparam("b_id"), TABLE.c.lease_until == bindparam("b_lease"))


@dataclass(frozen=True)
class _Job:
    id: int
    exchange: str
    opinion: Opinion
    attempts: int
    lease_until: dt.datetime


class FeedbackService:
    """Queues opinions from closed cases and sends them to their exchanges (see the module docstring).

    ``adapter_for(name)`` gives the configured exchange ``name`` as a ready client (credentials opened);
    ``exchange_type(type)`` its class, to know whether it takes feedback before building one.
    """

    def __init__(
        self,
        db: Database,
        audit: AuditService,
        settings: Settings,
        adapter_for: Callable[[str], Exchange],
        exchange_type: Callable[[str], type[Exchange]] = registry.get,
    ):
        self.db, self.audit, self.settings = db, audit, settings
        self.adapter_for, self.exchange_type = adapter_for, exchange_type
        self._on_queue: Callable[[], None] | None = None

    def on_queue(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after an operator queued an opinion again (the wiring kicks ``feedback.deliver``; the
        opinions a round queues are sent by the same round)."""
        self._on_queue = callback

    def run_once(self, now: dt.datetime | None = None, limit: int = DELIVER_BATCH) -> int:
        """One round of the ``feedback.deliver`` task: queue what closed since the last round, send up to ``limit``
        due opinions. Returns how many were sent or attempted (a full batch: the engine runs the next at once)."""
        self.collect(now)
        return self.deliver(now, limit)

    # ------------------------------------------------------------------ queueing

    def collect(self, now: dt.datetime | None = None, limit: int = COLLECT_BATCH) -> int:
        """Queue the opinions of cases closed since the cursor; returns how many were queued. The audit records
        read are those of one consistent prefix of the log (up to its head when the round started)."""
        at = now or utcnow()
        queued: list[tuple[int, list[dict]]] = []
        with self.db.session() as s:  # a read first: an idle round takes no lock and writes nothing
            row = s.get(AppSetting, CURSOR_KEY)
            if row is not None and row.value["seq"] >= (s.scalar(select(func.max(AuditRecord.seq))) or 0):
                return 0
        with self.db.session() as s:
            cursor = self._cursor(s)
            head = s.scalar(select(func.max(AuditRecord.seq))) or 0
            q = (
                select(AuditRecord.seq, AuditRecord.target)
                .where(AuditRecord.seq > cursor.value["seq"], AuditRecord.seq <= head)
                .where(AuditRecord.action.in_(CLOSING))
                .order_by(AuditRecord.seq)
                .limit(limit)
            )
            rows = s.execute(q).all()
            seen: set[int] = set()
            for _, target in rows:
                case_id = _case_id(target)
                if case_id is None or case_id in seen:
                    continue
                seen.add(case_id)
                opinions = self._queue_case(s, case_id, at)
                if opinions:
                    queued.append((case_id, opinions))
            cursor.value = {"seq": rows[-1].seq if len(rows) == limit else head}
            for case_id, opinions in queued:  # last in the transaction, like every audit record
                self.audit.record(s, "system", "feedback.queue", f"case:{case_id}", {"opinions": opinions})
        return sum(len(o) for _, o in queued)

    @staticmethod
    def _cursor(s: Session) -> AppSetting:
        """The cursor row, locked for this transaction (one collect round at a time, in any process)."""
        lock_writes(s)
        row = s.get(AppSetting, CURSOR_KEY, with_for_update=True)
        if row is None:  # migration 0009 sets it to the audit log's head: decisions older than sharing send nothing
            row = AppSetting(key=CURSOR_KEY, value={"seq": 0})
            s.add(row)
            s.flush()
        return row

    def _queue_case(self, s: Session, case_id: int, at: dt.datetime) -> list[dict]:
        case = s.get(Case, case_id)
        if case is None or case.status != "closed" or case.decision not in VERDICTS:
            return []
        verdict = VERDICTS[case.decision]
        publisher = literal(EXCHANGE_PUBLISHER, String) + cast(ExchangeRow.id, String)
        q = (
            select(BankEntry, ExchangeRow, BankEntryPublisher.external_id)
            .join(CaseSignal, CaseSignal.entry_id == BankEntry.id)
            .join(BankEntryPublisher, BankEntryPublisher.entry_id == BankEntry.id)
            .join(ExchangeRow, (BankEntryPublisher.publisher == publisher) & (ExchangeRow.bank_id == BankEntry.bank_id))
            .where(CaseSignal.case_id == case_id, CaseSignal.source == "hash_match")
            .order_by(BankEntry.id, ExchangeRow.id, BankEntryPublisher.id)
        )
        out: list[dict] = []
        done: set[tuple[int, int]] = set()
        for entry, ex, external_id in s.execute(q):
            if (entry.id, ex.id) in done or not self._takes_feedback(ex.type):
                continue
            done.add((entry.id, ex.id))
            row = _queue_opinion(s, ex, entry, external_id or None, verdict, case, at)
            if row is not None:
                out.append({"exchange": ex.name, "entry_id": entry.id, "verdict": verdict})
        return out

    def _takes_feedback(self, type_name: str) -> bool:
        try:
            return self.exchange_type(type_name).accepts_feedback
        except SafeholdError:  # a plug-in type no longer installed
            return False

    # ------------------------------------------------------------------ delivery

    def deliver(self, now: dt.datetime | None = None, limit: int = DELIVER_BATCH) -> int:
        """Send up to ``limit`` due opinions; returns how many were attempted."""
        jobs = self._lease(now or utcnow(), limit)
        adapters: dict[str, Exchange | Exception] = {}
        paused: dict[str, tuple[dt.datetime, str, str]] = {}  # exchange → (until, code, message) after a 429
        for job in jobs:
            at = now or utcnow()
            if job.exchange in paused:
                until, code, message = paused[job.exchange]
                self._postpone(job, until, code, message)
                continue
            error = self._send(job, adapters)
            self._record(job, error, at)
            if isinstance(error, ExchangeError) and error.retry_after:
                until = at + dt.timedelta(seconds=error.retry_after)
                paused[job.exchange] = (until, error.code, error.message[:MAX_ERROR])
        return len(jobs)

    def _lease(self, at: dt.datetime, n: int) -> list[_Job]:
        lease_until = at + dt.timedelta(seconds=LEASE_SECONDS)
        with self.db.session() as s:
            ids = list(s.scalars(LEASE, {"at": at, "n": n, "new_lease": lease_until}))
            if not ids:
                return []
            q = select(_F).where(_F.id.in_(ids)).order_by(_F.next_at, _F.id)
            return [_Job(f.id, f.exchange_name, _opinion(f), f.attempts, lease_until) for f in s.scalars(q)]

    def _send(self, job: _Job, adapters: dict[str, Exchange | Exception]) -> Exception | None:
        """Send one opinion; the error, if any (an exchange that cannot be built fails each of its rows)."""
        if job.exchange not in adapters:
            try:
                adapters[job.exchange] = self.adapter_for(job.exchange)
            except Exception as exc:  # gone, credentials unreadable, ...: recorded on the row, never a stuck lease
                adapters[job.exchange] = exc
        adapter = adapters[job.exchange]
        if isinstance(adapter, Exception):
            return adapter
        try:
            adapter.send_feedback(job.opinion)
        except Exception as exc:  # any failure is a failed attempt, never a stuck lease
            return exc
        return None

    def _record(self, job: _Job, error: Exception | None, at: dt.datetime) -> None:
        attempts = job.attempts + 1
        values: dict = {"attempts": attempts, "lease_until": None, "updated_at": at}
        if error is None:
            values.update(status="sent", sent_at=at, last_error_code=None, last_error=None)
            action = "feedback.send"
        else:
            code = error.code if isinstance(error, SafeholdError) else "exchange.unavailable"
            message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
            values.update(last_error_code=code, last_error=message[:MAX_ERROR])
            retryable = not isinstance(error, SafeholdError) or getattr(error, "retryable", False)
            if code == "exchange.not_supported":
                values["status"], action = "unsupported", "feedback.unsupported"
            elif not retryable or attempts >= self.settings.feedback_max_attempts:
                values["status"], action = "failed", "feedback.fail"
            else:
                delay = retry_delay(
                    attempts, self.settings.feedback_backoff_seconds, self.settings.feedback_backoff_max_seconds
                )
                wait = max(delay.total_seconds(), float(getattr(error, "retry_after", None) or 0.0))
                values["next_at"], action = at + dt.timedelta(seconds=wait), None
            log.warning("feedback %s to %s failed (%s: %s)", job.id, job.exchange, code, message[:MAX_ERROR])
        with self.db.session() as s:
            mine = {"b_id": job.id, "b_lease": job.lease_until}
            stmt = update(TABLE).where(*_MINE, TABLE.c.status == "queued").values(**values)
            changed = s.execute(stmt, mine).rowcount
            if not changed and error is None:
                changed = self._sent_superseded(s, job, at, attempts)
                detail = {"exchange": job.exchange, "verdict": job.opinion.verdict, "superseded": True}
                if changed:
                    self.audit.record(s, "system", action, f"feedback:{job.id}", detail)
                return
            if not changed:  # superseded meanwhile and not delivered: only its lease goes, freeing the newer one
                _free_superseded(s, job)
                return
            if changed and action is not None:
                detail = {"exchange": job.exchange, "verdict": job.opinion.verdict, "attempts": attempts}
                if error is not None:
                    detail.update(code=values["last_error_code"], error=values["last_error"])
                self.audit.record(s, "system", action, f"feedback:{job.id}", detail)

    def _sent_superseded(self, s: Session, job: _Job, at: dt.datetime, attempts: int) -> bool:
        """An opinion superseded while it was on the wire reached the source anyway: it stays ``superseded`` (it
        is not our latest verdict) with its ``sent_at``, and the newer verdict is queued again if the source had
        already heard it, so the source's last word is our latest one. ``False`` when the lease was lost."""
        done = s.execute(
            update(TABLE)
            .where(*_MINE, TABLE.c.status == "superseded")
            .values(attempts=attempts, lease_until=None, sent_at=at, updated_at=at)
            .returning(TABLE.c.exchange_id, TABLE.c.entry_id),
            {"b_id": job.id, "b_lease": job.lease_until},
        ).first()
        if done is None:
            return False
        s.execute(
            update(TABLE)
            .where(
                TABLE.c.exchange_id == done.exchange_id,
                TABLE.c.entry_id == done.entry_id,
                TABLE.c.verdict == OPPOSITE[job.opinion.verdict],
                TABLE.c.status == "sent",
            )
            .values(status="queued", attempts=0, next_at=at, lease_until=None, updated_at=at)
        )
        return True

    def _postpone(self, job: _Job, until: dt.datetime, code: str, message: str) -> None:
        """Give a leased row back until the exchange's Retry-After, without counting an attempt."""
        with self.db.session() as s:
            s.execute(
                update(TABLE)
                .where(*_MINE, TABLE.c.status == "queued")
                .values(lease_until=None, next_at=until, last_error_code=code, last_error=message),
                {"b_id": job.id, "b_lease": job.lease_until},
            )
            _free_superseded(s, job)

    # ------------------------------------------------------------------ reading and operating

    def list(
        self,
        *,
        entry_id: int | None = None,
        case_id: int | None = None,
        exchange: str | None = None,
        status: str | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[dict]:
        """Opinions, oldest first (keyset pagination on ``after_id``), filtered."""
        if status is not None and status not in STATUSES:
            raise SafeholdError("feedback.invalid_filter", f"status must be one of {', '.join(STATUSES)}.")
        q = select(_F).order_by(_F.id)
        for column, value in ((_F.entry_id, entry_id), (_F.case_id, case_id), (_F.exchange_name, exchange),
                              (_F.status, status)):  # fmt: skip
            if value is not None:
                q = q.where(column == value)
        if after_id is not None:
            q = q.where(_F.id > after_id)
        with self.db.session() as s:
            return [to_dict(f) for f in s.scalars(q.limit(max(1, min(limit, MAX_LIST))))]

    def get(self, feedback_id: int) -> dict:
        with self.db.session() as s:
            row = s.get(_F, feedback_id)
            if row is None:
                raise NotFound("feedback.not_found", f"No feedback with id {feedback_id}.")
            return to_dict(row)

    def retry(self, feedback_id: int, actor: str) -> dict:
        """Queue a failed opinion again, with its attempts counted from zero (an operator fixed the cause)."""
        with self.db.session() as s:
            lock_writes(s)
            row = s.get(_F, feedback_id, with_for_update=True)
            if row is None:
                raise NotFound("feedback.not_found", f"No feedback with id {feedback_id}.")
            if row.status != "failed":
                raise Conflict(
                    "feedback.not_failed", f"Feedback {feedback_id} is {row.status}; only a failed one is retried."
                )
            row.status, row.attempts, row.next_at, row.lease_until = "queued", 0, utcnow(), None
            detail = {"last_error": row.last_error_code}
            self.audit.record(s, actor, "feedback.retry", f"feedback:{feedback_id}", detail)
        if self._on_queue is not None:
            self._on_queue()
        return self.get(feedback_id)


def _free_superseded(s: Session, job: _Job) -> None:
    """Drop the lease of ``job``'s row if it was superseded while leased (nothing else changes): a live lease on
    one verdict keeps the other from being sent (see ``_PICK``)."""
    s.execute(
        update(TABLE).where(*_MINE, TABLE.c.status == "superseded").values(lease_until=None),
        {"b_id": job.id, "b_lease": job.lease_until},
    )


def _queue_opinion(
    s: Session, ex: ExchangeRow, entry: BankEntry, external_id: str | None, verdict: str, case: Case, at: dt.datetime
) -> ExchangeFeedback | None:
    """Queue ``verdict`` on ``entry`` (published by ``ex`` as ``external_id``) for ``ex`` (see the module
    docstring); the row queued, or ``None`` when the source already has (or will get) this verdict as our latest."""
    rows = {
        r.verdict: r
        for r in s.scalars(select(_F).where(_F.exchange_id == ex.id, _F.entry_id == entry.id).with_for_update())
    }
    mine, other = rows.get(verdict), rows.get(OPPOSITE[verdict])
    if other is not None and other.status in ("queued", "failed"):
        other.status, other.updated_at = "superseded", at
    latest_elsewhere = other is not None and other.sent_at is not None
    if mine is not None:
        if mine.status == "queued" or (
            mine.status == "sent" and not (latest_elsewhere and other.sent_at > mine.sent_at)
        ):
            return None
    else:
        mine = _F(exchange_id=ex.id, exchange_name=ex.name, entry_id=entry.id, verdict=verdict, created_at=at)
        s.add(mine)
    mine.external_id, mine.signal_type, mine.value = external_id, entry.signal_type, entry.value
    mine.reason, mine.category, mine.case_id = case.decision, case.classification, case.id
    mine.status, mine.attempts, mine.next_at, mine.lease_until = "queued", 0, at, None
    mine.last_error_code = mine.last_error = None
    mine.updated_at = at
    s.flush()
    return mine


def _case_id(target: str | None) -> int | None:
    kind, _, value = (target or "").partition(":")
    return int(value) if kind == "case" and value.isdigit() else None


def _opinion(f: ExchangeFeedback) -> Opinion:
    return Opinion(
        external_id=f.external_id,
        signal_type=f.signal_type,
        value=f.value,
        verdict=f.verdict,  # type: ignore[arg-type]
        reason=f.reason,
        category=f.category,
    )


def to_dict(f: ExchangeFeedback) -> dict:
    """The opinion as listings show it; ``exchange`` is the name it had, ``exchange_deleted`` whether it is gone
    since."""
    return {
        "id": f.id,
        "exchange": f.exchange_name,
        "exchange_deleted": f.exchange_id is None,
        "entry_id": f.entry_id,
        "external_id": f.external_id,
        "signal_type": f.signal_type,
        "value": f.value,
        "verdict": f.verdict,
        "reason": f.reason,
        "category": f.category,
        "case_id": f.case_id,
        "status": f.status,
        "attempts": f.attempts,
        "next_at": iso(f.next_at) if f.status == "queued" else None,
        "last_error_code": f.last_error_code,
        "last_error": f.last_error,
        "created_at": iso(f.created_at),
        "updated_at": iso(f.updated_at),
        "sent_at": iso(f.sent_at),
    }
