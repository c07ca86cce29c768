"""Exchanges as a service: each configured source feeds one bank, on a schedule, and resumes where it stopped.

One *round* (:meth:`ExchangeService.fetch_once`) holds a lease on the exchange's row (a second process or call gets
``exchange.busy``), reads the exchange's batches from its stored checkpoint and writes each batch's entries, its
checkpoint, the status counters and the hashes of unknown types in **one transaction** (through
:meth:`BankService.add_records`, so new entries reach the matching indexes through the change log like any other
add). A crash loses at most the batch in flight; the next round starts from the last stored checkpoint, and a
repeated record is a no-op (entries are keyed by value). An error is stored on the row and, when the source may
recover by itself, the next round is put off with a growing back-off.

Credentials are sealed with the instance key (the exchange's name as associated data) and never shown back: the
status says only ``has_credentials``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from safehold.audit import AuditService
from safehold.backoff import retry_delay
from safehold.banks.formats import EntryRecord
from safehold.banks.service import BankService, ImportReport, exchange_publisher, fingerprint, validate_record
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.outbound.settings import check_name, credentials_to_seal, seal, settings_of, unseal
from safehold.outbound.settings import validated as _validated
from safehold.sharing import registry
from safehold.sharing.base import Exchange, FetchBatch, UnknownSignal
from safehold.store.db import Database
from safehold.store.models import Bank, BankEntryPublisher, ExchangeFeedback, ExchangeRow, ExchangeUnknownSignal, utcnow
from safehold.store.sealing import Sealer

log = logging.getLogger(__name__)

#: An exchange's name: it is also the ``source`` of every entry it adds (64 characters at most).
#: Bounds of an exchange's period between rounds (a minute to thirty days).
MIN_EVERY, MAX_EVERY = 60, 30 * 86_400
#: Retry back-off after a failed round a source may recover from: doubles from the base, up to the cap.
RETRY_BASE_SECONDS, RETRY_CAP_SECONDS = 60.0, 6 * 3600.0
#: Sample messages about malformed records kept in the last round's figures.
MAX_PROBLEMS = 5


class ExchangeService:
    def __init__(
        self,
        db: Database,
        audit: AuditService,
        banks: BankService,
        sealer: Sealer,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
    ):
        self.db, self.audit, self.banks, self.sealer, self.settings = db, audit, banks, sealer, settings
        #: Tests and benchmarks hand every exchange an ``httpx`` transport (a stand-in); None: the network.
        self.transport = transport

    # ------------------------------------------------------------------------------------ configuration

    def create(
        self,
        name: str,
        type: str,
        bank: str,
        settings: dict | None = None,
        credentials: dict | None = None,
        *,
        every_seconds: int | None = None,
        enabled: bool = True,
        actor: str | None = None,
    ) -> dict:
        """Configure a new exchange feeding ``bank`` (``exchange.exists``, ``exchange.invalid_*``,
        ``exchange.unknown_type``, ``bank.not_found``)."""
        check_name(name, "exchange.invalid_name", "An exchange name")
        cls = registry.get(type)
        own = _settings(cls, settings or {})
        sealed = self._seal(name, _credentials(cls, credentials))
        every = _every(cls, every_seconds)
        with self.db.session() as s:
            bank_id = _bank_id(s, bank)
            if s.scalar(select(ExchangeRow.id).where(ExchangeRow.name == name)) is not None:
                raise Conflict("exchange.exists", f"An exchange named {name!r} already exists.")
            s.add(
                ExchangeRow(
                    name=name, type=cls.name, bank_id=bank_id, enabled=enabled, settings=own, credentials=sealed,
                    every_seconds=every, next_fetch_at=utcnow() if enabled else None, created_by=actor,
                    fetched_total=0, added_total=0, removed_total=0, malformed_total=0, failures=0,
                    unknown_types={}, last_round={},
                )
            )  # fmt: skip
            detail = {"type": cls.name, "bank": bank, "settings": own, "has_credentials": sealed is not None}
            self.audit.record(s, actor, "exchange.create", f"exchange:{name}", {**detail, "every_seconds": every})
        return self.get(name)

    def list(self) -> list[dict]:
        with self.db.session() as s:
            rows = s.execute(select(ExchangeRow, Bank.name).join(Bank).order_by(ExchangeRow.name)).all()
            return [_status(row, bank) for row, bank in rows]

    def get(self, name: str) -> dict:
        """The exchange's configuration and status (never its credentials)."""
        with self.db.session() as s:
            row = _row(s, name)
            return _status(row, s.get(Bank, row.bank_id).name)

    def update(
        self,
        name: str,
        *,
        settings: dict | None = None,
        credentials: dict | None = None,
        every_seconds: int | None = None,
        enabled: bool | None = None,
        actor: str | None = None,
    ) -> dict:
        """Change what is given: ``settings`` and ``credentials`` are replaced whole (``credentials={}`` removes
        optional ones). Settings that change (another URL, another shared bank...) may point at another source,
        whose position the stored checkpoint does not describe: the checkpoint is then dropped and the next round
        reads from the beginning (what is already in the bank is a no-op)."""
        with self.db.session() as s:
            row = _row(s, name)
            cls = registry.get(row.type)
            changed: list[str] = []
            if settings is not None:
                own = _settings(cls, settings)
                if own != row.settings:
                    row.settings, row.checkpoint = own, None
                changed.append("settings")
            if credentials is not None:
                row.credentials = self._seal(name, _credentials(cls, credentials))
                changed.append("credentials")
            if every_seconds is not None:
                row.every_seconds = _every(cls, every_seconds)
                changed.append("every_seconds")
            if enabled is not None and enabled != row.enabled:
                row.enabled = enabled
                row.next_fetch_at = utcnow() if enabled else None
                changed.append("enabled")
            if changed:
                detail = {"changed": changed, "enabled": row.enabled, "every_seconds": row.every_seconds}
                if "settings" in changed:
                    detail["settings"] = row.settings
                self.audit.record(s, actor, "exchange.update", f"exchange:{name}", detail)
        return self.get(name)

    def enable(self, name: str, actor: str | None = None) -> dict:
        return self.update(name, enabled=True, actor=actor)

    def disable(self, name: str, actor: str | None = None) -> dict:
        """No more scheduled rounds (a round running now finishes); its entries stay in the bank."""
        return self.update(name, enabled=False, actor=actor)

    def delete(self, name: str, actor: str | None = None) -> None:
        """Forget the exchange, its checkpoint and its unknown hashes. The entries it added stay in its bank
        (with the exchange's name as their source): delete or disable them there if they must go. It no longer
        publishes them (a later exchange, even one given the same id, withdraws nothing of them). The feedback
        and contributions sent to it stay too, under its name (their ``exchange_id`` set to null); opinions not
        sent yet can no longer be, so they end ``unsupported``."""
        with self.db.session() as s:
            row = _row(s, name)
            _lease_free_or_busy(row)
            s.execute(delete(BankEntryPublisher).where(BankEntryPublisher.publisher == exchange_publisher(row.id)))
            s.execute(
                update(ExchangeFeedback)
                .where(ExchangeFeedback.exchange_id == row.id, ExchangeFeedback.status == "queued")
                .values(status="unsupported", lease_until=None, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            s.delete(row)
            self.audit.record(s, actor, "exchange.delete", f"exchange:{name}", {"type": row.type})

    def adapter(self, name: str) -> Exchange:
        """The exchange client of ``name``, with its settings and opened credentials (for fetches, feedback and
        contributions)."""
        with self.db.session() as s:
            row = _row(s, name)
            type_name, settings, sealed = row.type, dict(row.settings or {}), row.credentials
            bank_kind = s.get(Bank, row.bank_id).kind
        cls = registry.get(type_name)
        creds = None
        if sealed is not None and cls.credentials_model is not None:
            opened = unseal(self.sealer, name, sealed)
            creds = cls.credentials_model.model_validate(opened)
        st = self.settings
        return cls(
            cls.settings_model.model_validate(settings),
            creds,
            timeout=st.exchange_timeout,
            max_body_bytes=st.exchange_max_body_bytes,
            transport=self.transport,
            files=st.feeds_dir,
            bank_kind=bank_kind,
        )

    def unknown(self, name: str, limit: int = 100) -> list[dict]:
        """The latest hashes of unknown types the exchange fetched (kept for a plug-in that reads them)."""
        with self.db.session() as s:
            row = _row(s, name)
            found = s.scalars(
                select(ExchangeUnknownSignal)
                .where(ExchangeUnknownSignal.exchange_id == row.id)
                .order_by(ExchangeUnknownSignal.id.desc())
                .limit(min(limit, 1000))
            ).all()
            return [
                {"signal_type": u.signal_type, "value": u.value, "external_id": u.external_id, "at": u.at.isoformat()}
                for u in found
            ]

    def _seal(self, name: str, creds: dict | None) -> str | None:
        return seal(self.sealer, name, creds)

    # ------------------------------------------------------------------------------------------ fetching

    def fetch_due(self, limit: int = 4) -> int:
        """One round of each enabled exchange whose next fetch is due (at most ``limit``); answers how many
        rounds ran. A failing or busy exchange does not stop the others (its error is on its row)."""
        now = utcnow()
        with self.db.session() as s:
            names = s.scalars(
                select(ExchangeRow.name)
                .where(
                    ExchangeRow.enabled.is_(True),
                    or_(ExchangeRow.next_fetch_at.is_(None), ExchangeRow.next_fetch_at <= now),
                    or_(ExchangeRow.lease_until.is_(None), ExchangeRow.lease_until < now),
                )
                .order_by(ExchangeRow.next_fetch_at)
                .limit(limit)
            ).all()
        ran = 0
        for name in names:
            try:
                self.fetch_once(name, actor="scheduler")
            except SafeholdError as exc:
                log.warning("exchange %s: %s [%s]", name, exc.message, exc.code)
            except Exception:  # a plug-in's bug: stored on its row by the round; the others still run
                log.exception("exchange %s: the round failed", name)
            ran += 1
        return ran

    def fetch_once(
        self, name: str, *, progress: Callable[[dict], None] | None = None, actor: str | None = None
    ) -> dict:
        """One round: everything new since the stored checkpoint, batch by batch. Answers the round's figures;
        a failed round stores its error on the exchange and raises it (what committed before it stays)."""
        return self._round(name, self._take_lease(name), progress, actor)

    def fetch_in_background(self, name: str, actor: str | None = None) -> dict:
        """Start a round on a thread of this process and answer the exchange's status at once (``fetching``);
        ``exchange.busy`` here, not later, when a round already runs. Its outcome shows in the status."""
        owner = self._take_lease(name)

        def run() -> None:
            with contextlib.suppress(Exception):  # _round stored and logged it on the exchange's row
                self._round(name, owner, None, actor)

        threading.Thread(target=run, name=f"exchange-fetch-{name}", daemon=True).start()
        return self.get(name)

    def _round(self, name: str, owner: str, progress: Callable[[dict], None] | None, actor: str | None) -> dict:
        started = time.monotonic()
        figures: dict[str, Any] = {"fetched": 0, "added": 0, "removed": 0, "malformed": 0, "unknown": 0,
                                   "batches": 0, "problems": []}  # fmt: skip
        seen: _Seen | None = None
        try:
            exchange = self.adapter(name)
            seen = _Seen() if exchange.full_list else None
            with self.db.session() as s:
                checkpoint = _row(s, name).checkpoint
            for batch in exchange.fetch(checkpoint):
                self._apply(name, owner, batch, figures, seen)
                if progress is not None:
                    progress(dict(figures))
        except Exception as exc:
            figures["seconds"] = round(time.monotonic() - started, 3)
            self._failed(name, owner, exc, figures)
            raise
        finally:
            if seen is not None:
                seen.close()
        figures["seconds"] = round(time.monotonic() - started, 3)
        self._succeeded(name, owner, figures, actor)
        return {"exchange": name, **figures}

    def _apply(self, name: str, owner: str, batch: FetchBatch, figures: dict, seen: _Seen | None) -> None:
        """Write one batch: its entries, checkpoint, counters and unknown hashes in one transaction."""
        records, unknown, malformed, problems = _sorted(name, batch)
        if seen is not None:
            seen.add((r.signal_type, fingerprint(r.value)) for r in records if not r.is_tombstone)
        with self.db.session() as s:
            row = _row(s, name)
            bank, publisher = s.get(Bank, row.bank_id).name, exchange_publisher(row.id)

        def keep(s: Session, bank_id: int, report: ImportReport) -> list[dict]:
            row = s.scalars(select(ExchangeRow).where(ExchangeRow.name == name).with_for_update()).first()
            if row is None or row.lease_owner != owner:  # lapsed and taken: this batch is the other round's to write
                raise Conflict("exchange.busy", f"Exchange {name!r} was taken over by another fetch; this one stopped.")
            changes = []
            if batch.snapshot and batch.done and seen is not None:
                changes = BankService.withdraw_unlisted(s, bank_id, publisher, seen.listed, report)
            new_unknown = _keep_unknown(s, row.id, unknown)
            row.checkpoint = batch.checkpoint
            row.fetched_total += len(batch.records) + len(batch.unknown)
            row.added_total += report.added
            row.removed_total += report.withdrawn
            row.malformed_total += malformed
            if new_unknown:
                counts = dict(row.unknown_types or {})
                for t, n in new_unknown.items():
                    counts[t] = counts.get(t, 0) + n
                row.unknown_types = counts
            row.lease_until = utcnow() + dt.timedelta(seconds=self.settings.exchange_lease_seconds)
            figures["unknown"] += sum(new_unknown.values())
            return changes

        report = self.banks.add_records(
            bank, records, added_by=f"exchange:{name}", audit_action=None, before_commit=keep, publisher=publisher
        )
        figures["fetched"] += len(batch.records) + len(batch.unknown)
        figures["added"] += report.added
        figures["removed"] += report.withdrawn
        figures["malformed"] += malformed
        figures["batches"] += 1
        figures["problems"] = (figures["problems"] + problems)[:MAX_PROBLEMS]

    def _take_lease(self, name: str) -> str:
        owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        now = utcnow()
        with self.db.session() as s:
            _row(s, name)  # exchange.not_found first
            taken = s.execute(
                update(ExchangeRow)
                .where(ExchangeRow.name == name, or_(ExchangeRow.lease_until.is_(None), ExchangeRow.lease_until < now))
                .values(
                    lease_owner=owner,
                    lease_until=now + dt.timedelta(seconds=self.settings.exchange_lease_seconds),
                    last_fetch_at=now,
                )
            ).rowcount
        if taken != 1:
            raise Conflict("exchange.busy", f"Exchange {name!r} is being fetched by another round; try again later.")
        return owner

    def _succeeded(self, name: str, owner: str, figures: dict, actor: str | None) -> None:
        now = utcnow()
        with self.db.session() as s:
            row = _row(s, name)
            if row.lease_owner == owner:
                row.lease_owner = row.lease_until = None
            row.last_success_at = now
            row.last_error_code = row.last_error = row.last_error_at = None
            row.failures = 0
            row.last_round = {**figures, "at": now.isoformat()}
            row.next_fetch_at = now + dt.timedelta(seconds=row.every_seconds)
            detail = {k: figures[k] for k in ("fetched", "added", "removed", "malformed", "unknown", "batches")}
            self.audit.record(s, actor, "exchange.fetch", f"exchange:{name}", detail)

    def _failed(self, name: str, owner: str, exc: BaseException, figures: dict) -> None:
        """Store the error; a source that may recover is tried again after a back-off (or when it said)."""
        code = exc.code if isinstance(exc, SafeholdError) else "exchange.failed"
        message = exc.message if isinstance(exc, SafeholdError) else f"{type(exc).__name__}: {exc}"[:2000]
        retryable = getattr(exc, "retryable", not isinstance(exc, SafeholdError))
        now = utcnow()
        with self.db.session() as s:
            row = s.scalars(select(ExchangeRow).where(ExchangeRow.name == name)).first()
            if row is None:
                return
            if row.lease_owner == owner:
                row.lease_owner = row.lease_until = None
            row.failures += 1
            row.last_error_code, row.last_error, row.last_error_at = code, message, now
            row.last_round = {**figures, "at": now.isoformat(), "error": code}
            if retryable:
                wait = retry_delay(row.failures, RETRY_BASE_SECONDS, RETRY_CAP_SECONDS).total_seconds()
                wait = max(wait, getattr(exc, "retry_after", None) or 0)
            else:  # an operator must act; the regular schedule tries again meanwhile
                wait = row.every_seconds
            row.next_fetch_at = now + dt.timedelta(seconds=wait)
        log.warning("exchange %s failed [%s]: %s", name, code, message)


# ----------------------------------------------------------------------------------------------- helpers


class _Seen:
    """The keys a full-list round yielded, in a private temporary SQLite file (bounded memory)."""

    def __init__(self):
        self.db = sqlite3.connect("")
        self.db.execute("CREATE TABLE k (t TEXT, f TEXT, PRIMARY KEY (t, f)) WITHOUT ROWID")

    def add(self, keys) -> None:
        self.db.executemany("INSERT OR IGNORE INTO k VALUES (?, ?)", keys)

    def listed(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return {k for k in keys if self.db.execute("SELECT 1 FROM k WHERE t = ? AND f = ?", k).fetchone()}

    def close(self) -> None:
        self.db.close()


def _sorted(name: str, batch: FetchBatch) -> tuple[list[EntryRecord], list[UnknownSignal], int, list[str]]:
    """The batch's records checked as any bank entry is (source: the exchange), hashes of types no installed
    signal type reads set apart (kept, not dropped), and the malformed ones counted."""
    records, unknown = [], list(batch.unknown)
    malformed, problems = batch.malformed, list(batch.problems[:MAX_PROBLEMS])
    for rec in batch.records:
        rec.source = name
        try:
            records.append(validate_record(rec))
        except SafeholdError as exc:
            if exc.code == "signal.unknown_type":
                unknown.append(UnknownSignal(rec.signal_type, rec.value, rec.external_id))
            else:
                malformed += 1
                problems.append(f"[{exc.code}] {exc.message}"[:300])
    return records, unknown, malformed, problems[:MAX_PROBLEMS]


def _keep_unknown(s: Session, exchange_id: int, unknown: list[UnknownSignal]) -> dict[str, int]:
    """Store the unknown hashes not stored yet; answers how many were new, by type."""
    if not unknown:
        return {}
    rows, keys = [], set()
    for u in unknown:
        key = (u.signal_type[:64], fingerprint(u.value))
        if key not in keys:
            keys.add(key)
            rows.append({"exchange_id": exchange_id, "signal_type": key[0], "value": u.value, "fingerprint": key[1],
                         "external_id": (u.external_id or None) and u.external_id[:128], "at": utcnow()})  # fmt: skip
    dialect_insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
    stmt = (
        dialect_insert(ExchangeUnknownSignal)
        .on_conflict_do_nothing(index_elements=["exchange_id", "signal_type", "fingerprint"])
        .returning(ExchangeUnknownSignal.signal_type)
    )
    new: dict[str, int] = {}
    for (t,) in s.execute(stmt, rows).all():
        new[t] = new.get(t, 0) + 1
    return new


def _settings(cls: type[Exchange], data: dict) -> dict:
    return settings_of(cls.settings_model, data, "exchange.invalid_settings", f"{cls.name} settings")


def _credentials(cls: type[Exchange], data: dict | None) -> dict | None:
    """The credentials to seal, or None. An exchange type without credentials refuses some; one whose
    credentials are all optional takes none."""
    model = cls.credentials_model
    if model is None:
        if data:
            raise SafeholdError("exchange.invalid_credentials", f"A {cls.name} exchange takes no credentials.")
        return None
    if data is None:
        _validated(model, {}, "exchange.invalid_credentials", f"{cls.name} credentials (none were given)")
        return None
    return credentials_to_seal(model, data, "exchange.invalid_credentials", f"{cls.name} credentials")


def _every(cls: type[Exchange], every: int | None) -> int:
    every = cls.default_every if every is None else every
    if isinstance(every, bool) or not isinstance(every, int) or not MIN_EVERY <= every <= MAX_EVERY:
        raise SafeholdError(
            "exchange.invalid_schedule", f"every_seconds must be a whole number from {MIN_EVERY} to {MAX_EVERY}."
        )
    return every


def _bank_id(s: Session, name: str) -> int:
    found = s.scalar(select(Bank.id).where(Bank.name == name))
    if found is None:
        raise NotFound("bank.not_found", f"No bank named {name!r}.")
    return found


def _row(s: Session, name: str) -> ExchangeRow:
    row = s.scalars(select(ExchangeRow).where(ExchangeRow.name == name)).first()
    if row is None:
        raise NotFound("exchange.not_found", f"No exchange named {name!r}.")
    return row


def _lease_free_or_busy(row: ExchangeRow) -> None:
    if row.lease_until is not None and row.lease_until > utcnow():
        raise Conflict("exchange.busy", f"Exchange {row.name!r} is being fetched; try again when the round ends.")


def _iso(at: dt.datetime | None) -> str | None:
    return at.isoformat() if at else None


def _status(row: ExchangeRow, bank: str) -> dict:
    cls = _class_or_none(row.type)
    busy = row.lease_until is not None and row.lease_until > utcnow()
    return {
        "name": row.name,
        "type": row.type,
        "title": cls.title if cls else row.type,
        "bank": bank,
        "enabled": row.enabled,
        "settings": dict(row.settings or {}),
        "has_credentials": row.credentials is not None,
        "every_seconds": row.every_seconds,
        "next_fetch_at": _iso(row.next_fetch_at) if row.enabled else None,
        "fetching": busy,
        "last_fetch_at": _iso(row.last_fetch_at),
        "last_success_at": _iso(row.last_success_at),
        "last_error": (
            {"code": row.last_error_code, "message": row.last_error, "at": _iso(row.last_error_at)}
            if row.last_error_code
            else None
        ),
        "failures": row.failures,
        "has_checkpoint": row.checkpoint is not None,
        "totals": {
            "fetched": row.fetched_total,
            "added": row.added_total,
            "removed": row.removed_total,
            "malformed": row.malformed_total,
        },
        "unknown_types": dict(row.unknown_types or {}),
        "last_round": dict(row.last_round or {}),
        "accepts_feedback": bool(cls and cls.accepts_feedback),
        "accepts_contributions": bool(cls and cls.accepts_contributions),
        "created_by": row.created_by,
        "created_at": _iso(row.created_at),
    }


def _class_or_none(type_name: str) -> type[Exchange] | None:
    """The exchange's class, or None when its plug-in is gone (the status still shows)."""
    try:
        return registry.get(type_name)
    except SafeholdError:
        return None


def types() -> list[dict]:
    """Every exchange type with the JSON Schema of its settings and of its credentials (the console's and the
    API's add forms)."""
    out = []
    for type_name in registry.names():
        cls = _class_or_none(type_name)
        if cls is None:
            continue
        out.append(
            {
                "name": cls.name,
                "title": cls.title,
                "settings": cls.settings_model.model_json_schema(),
                "credentials": cls.credentials_model.model_json_schema() if cls.credentials_model else None,
                "default_every": cls.default_every,
                "full_list": cls.full_list,
                "accepts_feedback": cls.accepts_feedback,
                "accepts_contributions": cls.accepts_contributions,
            }
        )
    return out
