"""Hash banks: create, configure and fill them, and keep the matching indexes' change log in step.

Every write that changes what can match also appends to ``index_changes`` in the same transaction, so each
process's in-memory index (see :mod:`safehold.banks.index`) catches up incrementally and nothing is ever lost
between the database and the index.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO

from sqlalchemy import column, delete, exists, func, insert, select, table, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from safehold.audit import AuditService
from safehold.banks.formats import EntryRecord, ImportIssue, normalize_category, read, write
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.signals import registry
from safehold.store.bulk import insert_unnest
from safehold.store.db import Database
from safehold.store.models import Bank, BankEntry, BankEntryPublisher, ImportJob, IndexChange, utcnow

#: A bank's name, as the API's schema publishes it (JSON Schema ``pattern``) and :func:`_check_name` applies it.
BANK_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
BANK_NAME = re.compile(BANK_NAME_PATTERN)
BANK_KINDS = ("block", "allow")
#: What a match on a bank does beyond the scan verdict (see :class:`~safehold.store.models.Bank`).
ON_MATCH = ("none", "case", "auto")
INSERT_BATCH = 2000
#: The most import jobs one listing returns (the API's and the console's).
MAX_IMPORT_JOBS = 500
#: Records of a bulk import written per transaction (``SAFEHOLD_IMPORT_BATCH_ROWS``): each batch commits on its
#: own, so other writers wait for one batch at most, never for the whole file.
IMPORT_BATCH_ROWS = 5_000
#: The PostgreSQL advisory-lock key that serialises change-log writers (see :func:`lock_changes`).
CHANGES_LOCK = (0x5AFE, 1)
#: Bank entries are hashed with the canonical full-resolution pipeline whatever the scanning mode: they are
#: what every later scan is compared with and what gets shared with other platforms (see docs/pdq.md).
BANK_PDQ_MODE = "reference"


def fingerprint(value: str) -> str:
    """A bounded key for ``value``: itself when short, else its SHA-256 (vPDQ values can be long)."""
    return value if len(value) <= 128 else "sha256:" + hashlib.sha256(value.encode()).hexdigest()


@dataclass
class BankInfo:
    id: int
    name: str
    description: str
    kind: str
    on_match: str
    #: The thresholds the bank sets, by signal type (other types use their default).
    thresholds: dict[str, int]
    #: The PDQ threshold in force (set or default), kept for clients of the single-threshold API.
    pdq_threshold: int
    dihedral: bool
    enabled: bool
    created_by: str | None
    created_at: str
    updated_at: str
    entries: int = 0
    enabled_entries: int = 0

    @classmethod
    def of(cls, bank: Bank, entries: int = 0, enabled_entries: int = 0) -> BankInfo:
        return cls(
            id=bank.id,
            name=bank.name,
            description=bank.description,
            kind=bank.kind,
            on_match=bank.on_match,
            thresholds=dict(bank.thresholds or {}),
            pdq_threshold=registry.threshold_for(bank.thresholds or {}, "pdq"),
            dihedral=bank.dihedral,
            enabled=bank.enabled,
            created_by=bank.created_by,
            created_at=bank.created_at.isoformat(),
            updated_at=bank.updated_at.isoformat(),
            entries=entries,
            enabled_entries=enabled_entries,
        )


@dataclass
class ImportReport:
    """What an import did. With ``dry_run`` nothing is written and ``added`` counts what would have been; with
    invalid rows and no ``skip_invalid``, nothing is written either (all or nothing)."""

    bank: str
    read: int = 0
    added: int = 0
    duplicates: int = 0
    withdrawn: int = 0
    invalid: int = 0
    issues: list[ImportIssue] = field(default_factory=list)
    committed: bool = False
    #: The import job that wrote it (see :class:`~safehold.store.models.ImportJob`), and whether this run
    #: continued one a crash had interrupted (``resumed_at``: the records already committed then).
    job: int | None = None
    resumed: bool = False
    resumed_at: int = 0
    batches: int = 0

    def to_dict(self) -> dict:
        return {
            "bank": self.bank,
            "job": self.job,
            "resumed": self.resumed,
            "resumed_at": self.resumed_at,
            "read": self.read,
            "added": self.added,
            "duplicates": self.duplicates,
            "withdrawn": self.withdrawn,
            "invalid": self.invalid,
            "committed": self.committed,
            "issues": [{"line": i.line, "code": i.code, "message": i.message} for i in self.issues[:1000]],
        }


def entry_to_dict(e: BankEntry, bank_name: str | None = None) -> dict:
    return {
        "id": e.id,
        "bank": bank_name if bank_name is not None else e.bank.name,
        "signal_type": e.signal_type,
        "value": e.value,
        "source": e.source,
        "external_id": e.external_id,
        "category": e.category,
        "note": e.note,
        "metadata": e.extra or {},
        "enabled": e.enabled,
        "added_by": e.added_by,
        "added_at": e.added_at.isoformat(),
        "quarantine": quarantine_of(e),
    }


def quarantine_of(e: BankEntry) -> dict | None:
    """The entry's quarantine (when and why), or ``None``: see :mod:`safehold.sharing.quarantine`."""
    if e.quarantined_at is None:
        return None
    return {"at": e.quarantined_at.isoformat(), "reason": e.quarantine_reason or {}}


class BankService:
    def __init__(
        self,
        db: Database,
        on_change: Callable[[], None] | None = None,
        audit: AuditService | None = None,
        *,
        batch_rows: int = IMPORT_BATCH_ROWS,
    ):
        self.db = db
        #: Records per transaction of a bulk import (:meth:`import_stream`).
        self.batch_rows = batch_rows
        #: Every change is recorded in the audit log in its own transaction (see :mod:`safehold.audit`).
        self.audit = audit or AuditService(db)
        #: Called after a commit that changed what can match (the in-process index syncs at once).
        self.on_change = on_change or (lambda: None)

    # ---------------------------------------------------------------- banks

    def create(
        self,
        name: str,
        *,
        kind: str = "block",
        description: str = "",
        pdq_threshold: int | None = None,
        thresholds: Mapping[str, int | None] | None = None,
        dihedral: bool = False,
        on_match: str | None = None,
        enabled: bool = True,
        created_by: str | None = None,
    ) -> BankInfo:
        """``on_match`` defaults to ``case`` for a block bank and ``none`` for an allow bank. ``thresholds`` sets
        the bank's threshold per signal type; ``pdq_threshold`` is the older spelling of ``thresholds["pdq"]``."""
        _check_name(name)
        _check_kind(kind)
        own = merge_thresholds({}, pdq_threshold, thresholds)
        on_match = _check_on_match(kind, on_match)
        with self.db.session() as s:
            if s.scalar(select(Bank.id).where(Bank.name == name)) is not None:
                raise Conflict("bank.exists", f"A bank named {name!r} already exists.")
            bank = Bank(
                name=name,
                kind=kind,
                on_match=on_match,
                description=description or "",
                thresholds=own,
                dihedral=dihedral,
                enabled=enabled,
                created_by=created_by,
            )
            s.add(bank)
            s.flush()
            _log_banks_changed(s)
            info = BankInfo.of(bank)
            settings = {
                "kind": kind,
                "on_match": on_match,
                "thresholds": own,
                "dihedral": dihedral,
                "description": description,
            }
            if not enabled:
                settings["enabled"] = False
            self.audit.record(s, created_by, "bank.create", f"bank:{name}", settings)
        self.on_change()
        return info

    def list(self) -> list[BankInfo]:
        with self.db.session() as s:
            counts = dict(s.execute(select(BankEntry.bank_id, func.count()).group_by(BankEntry.bank_id)).all())
            enabled = dict(
                s.execute(
                    select(BankEntry.bank_id, func.count())
                    .where(BankEntry.enabled.is_(True))
                    .group_by(BankEntry.bank_id)
                ).all()
            )
            banks = s.scalars(select(Bank).order_by(Bank.name)).all()
            return [BankInfo.of(b, counts.get(b.id, 0), enabled.get(b.id, 0)) for b in banks]

    def get(self, name: str) -> BankInfo:
        with self.db.session() as s:
            bank = _bank(s, name)
            total = s.scalar(select(func.count()).where(BankEntry.bank_id == bank.id)) or 0
            on = s.scalar(select(func.count()).where(BankEntry.bank_id == bank.id, BankEntry.enabled.is_(True))) or 0
            return BankInfo.of(bank, total, on)

    def update(
        self,
        name: str,
        *,
        new_name: str | None = None,
        description: str | None = None,
        kind: str | None = None,
        pdq_threshold: int | None = None,
        thresholds: Mapping[str, int | None] | None = None,
        dihedral: bool | None = None,
        enabled: bool | None = None,
        on_match: str | None = None,
        actor: str | None = None,
    ) -> BankInfo:
        """Changing ``kind`` without giving ``on_match`` resets it to the new kind's default. ``thresholds``
        changes only the types it names (``None`` for a type: back to the type's default)."""
        with self.db.session() as s:
            bank = _bank(s, name)
            changes: dict[str, list] = {}
            _check_kind(kind or bank.kind)
            own = merge_thresholds(bank.thresholds or {}, pdq_threshold, thresholds)
            if on_match is None and kind is not None and kind != bank.kind:
                on_match = _check_on_match(kind, None)
            if on_match is not None and kind is None and bank.kind == "allow" and on_match != "none":
                # Not a bad value but one this bank's kind refuses: the same request is fine on a block bank.
                raise Conflict(
                    "bank.allow_on_match", f"Bank {bank.name!r} is an allow bank: it never opens cases (on_match none)."
                )
            if on_match is not None:
                _check_on_match(kind or bank.kind, on_match)
            if new_name is not None and new_name != bank.name:
                _check_name(new_name)
                if s.scalar(select(Bank.id).where(Bank.name == new_name)) is not None:
                    raise Conflict("bank.exists", f"A bank named {new_name!r} already exists.")
                changes["name"] = [bank.name, new_name]
                bank.name = new_name
            for attr, value in (
                ("description", description),
                ("kind", kind),
                ("dihedral", dihedral),
                ("enabled", enabled),
                ("on_match", on_match),
            ):
                if value is not None:
                    if getattr(bank, attr) != value:
                        changes[attr] = [getattr(bank, attr), value]
                    setattr(bank, attr, value)
            # Recorded by the threshold in force, type by type: setting a type's default explicitly changes nothing.
            moved = {
                f"thresholds.{t}": [registry.threshold_for(bank.thresholds or {}, t), registry.threshold_for(own, t)]
                for t in sorted({*own, *(bank.thresholds or {})})
            }
            moved = {k: v for k, v in moved.items() if v[0] != v[1]}
            if moved:
                changes.update(moved)
                bank.thresholds = own
            _log_banks_changed(s)
            s.flush()
            if changes:  # detail: {setting: [old, new]}
                self.audit.record(s, actor, "bank.update", f"bank:{name}", {"changes": changes})
        self.on_change()
        return self.get(new_name or name)

    def delete(self, name: str, actor: str | None = None) -> int:
        """Delete a bank and all its entries; returns how many entries went with it."""
        with self.db.session() as s:
            n = _delete_bank(s, _bank(s, name))
            _log_banks_changed(s)
            self.audit.record(s, actor, "bank.delete", f"bank:{name}", {"entries": n or 0})
        self.on_change()
        return n or 0

    # -------------------------------------------------------------- entries

    def add_records(
        self,
        name: str,
        records: Iterable[EntryRecord],
        *,
        added_by: str | None = None,
        report: ImportReport | None = None,
        progress: Callable[[int], None] | None = None,
        commit_if: Callable[[], bool] = lambda: True,
        audit_action: str | None = "entry.add",
        audit_detail: dict | Callable[[], dict] | None = None,
        before_commit: Callable[[Session, int, ImportReport], list[dict] | None] | None = None,
        publisher: str | None = None,
    ) -> ImportReport:
        """Insert validated records in one transaction; duplicates in the bank are counted, not added.

        ``publisher`` is who publishes the records and their deletions (an exchange's
        :func:`exchange_publisher`); without it, a record's ``source`` is (see :class:`BankEntryPublisher`).
        ``commit_if`` is asked once every record is inserted; if it says no the transaction is rolled back.
        The audit record (``audit_action``, counts plus ``audit_detail``; none when ``audit_action`` is None)
        commits with the entries or not at all. ``before_commit(session, bank_id, report)`` writes what the
        caller keeps with these records (a fetch's checkpoint) in the same transaction and may answer change-log
        rows of its own (a full list's withdrawals); if it raises, nothing is written. The change log is appended
        last, so its writers' lock is held only from there to the commit.
        """
        report = report or ImportReport(bank=name)
        with self.db.session() as s:
            bank = _bank(s, name)
            batch: list[dict] = []
            withdrawn: list[EntryRecord] = []
            changes: list[dict] = []
            for rec in records:
                if rec.is_tombstone:
                    withdrawn.append(rec)
                    continue
                batch.append(_row(bank.id, rec, added_by))
                if len(batch) >= INSERT_BATCH:
                    changes += self._insert_entries(s, batch, report, publisher)
                    if progress:
                        progress(len(batch))
                    batch = []
            if batch:
                changes += self._insert_entries(s, batch, report, publisher)
                if progress:
                    progress(len(batch))
            changes += self._withdraw(s, bank.id, withdrawn, report, publisher)
            if before_commit is not None:
                changes += before_commit(s, bank.id, report) or []
            if not commit_if():
                s.rollback()
                return report
            _append_changes(s, changes)
            if audit_action is not None:
                counts = {"added": report.added, "duplicates": report.duplicates, "withdrawn": report.withdrawn}
                if report.read:
                    counts["read"] = report.read
                extra = audit_detail() if callable(audit_detail) else audit_detail
                self.audit.record(s, added_by, audit_action, f"bank:{name}", {**counts, **(extra or {})})
            report.committed = True
        self.on_change()
        return report

    @staticmethod
    def _insert_entries(s: Session, rows: list[dict], report: ImportReport, publisher: str | None = None) -> list[dict]:
        """Insert entries (an existing identical one is a duplicate) and record who publishes them; returns the
        change-log rows they need."""
        # Duplicates inside one batch would abort the statement on PostgreSQL: keep the first.
        seen: set[tuple[str, str]] = set()
        unique = []
        for r in rows:
            key = (r["signal_type"], r["fingerprint"])
            if key not in seen:
                seen.add(key)
                unique.append(r)
        postgres = s.bind.dialect.name == "postgresql"
        dialect_insert = pg_insert if postgres else sqlite_insert
        # Through the table, not the ORM entity: the ORM's bulk path costs more per row than SQLite's insert itself.
        table = BankEntry.__table__
        conflict = ["bank_id", "signal_type", "fingerprint"]
        returned = ["id", "bank_id", "signal_type", "value", "enabled"]
        if postgres:  # one statement of one array per column (safehold.store.bulk)
            added = insert_unnest(s, table, unique, conflict=conflict, returning=returned)
        else:
            stmt = dialect_insert(table).on_conflict_do_nothing(index_elements=conflict)
            added = s.execute(stmt.returning(*(table.c[c] for c in returned)), unique).all()
        published = [(r, publisher or publisher_of(r["source"])) for r in rows]
        published = [(r, p) for r, p in published if p is not None]
        if published:
            ids = _entry_ids(s, [r for r, _ in published])
            keys = {(ids[(r["signal_type"], r["fingerprint"])], p, r["external_id"] or "") for r, p in published}
            s.execute(
                dialect_insert(BankEntryPublisher.__table__).on_conflict_do_nothing(
                    index_elements=["entry_id", "publisher", "external_id"]
                ),
                [{"entry_id": i, "publisher": p, "external_id": x} for i, p, x in sorted(keys)],
            )
            inserted = {i for i, *_ in added}
            again = {ids[(r["signal_type"], r["fingerprint"])] for r, _ in published if r["enabled"]} - inserted
            added += BankService._restore(s, again)
        report.added += len(added)
        report.duplicates += len(rows) - len(added)
        return [
            {"op": "add", "entry_id": i, "bank_id": b, "signal_type": t, "value": v} for i, b, t, v, on in added if on
        ]

    @staticmethod
    def _restore(s: Session, entry_ids: set[int]) -> list:
        """Enable again the given entries that a source had withdrawn (a publisher lists the hash again); an entry
        a person disabled stays as it is."""
        if not entry_ids:
            return []
        return s.execute(
            update(BankEntry)
            .where(BankEntry.id.in_(sorted(entry_ids)), BankEntry.withdrawn.is_(True))
            .values(enabled=True, withdrawn=False)
            .returning(BankEntry.id, BankEntry.bank_id, BankEntry.signal_type, BankEntry.value, BankEntry.enabled)
        ).all()

    @staticmethod
    def _withdraw(
        s: Session, bank_id: int, tombstones: list[EntryRecord], report: ImportReport, publisher: str | None = None
    ) -> list[dict]:
        """Apply a list's deletions: the publisher (``publisher``, else the tombstone's source) no longer
        publishes what it listed under that external id; an entry no publisher is left for is withdrawn.
        A deletion without a publisher (an import without a source) withdraws the entries without a source that
        have that external id. Returns the change-log rows they need."""
        changes: list[dict] = []
        for rec in tombstones:
            by = publisher or publisher_of(rec.source)
            if by is None:
                released = s.scalars(
                    select(BankEntry.id).where(
                        BankEntry.bank_id == bank_id,
                        BankEntry.external_id == rec.external_id,
                        BankEntry.source.is_(None),
                    )
                ).all()
            else:
                released = s.scalars(
                    delete(BankEntryPublisher)
                    .where(
                        BankEntryPublisher.publisher == by,
                        BankEntryPublisher.external_id == (rec.external_id or ""),
                        # Correlated (a primary-key probe per candidate), never IN (every id of the bank): SQLite
                        # would build the bank's whole id list again for each deletion.
                        exists().where(BankEntry.id == BankEntryPublisher.entry_id, BankEntry.bank_id == bank_id),
                    )
                    .returning(BankEntryPublisher.entry_id)
                ).all()
            changes += _release(s, set(released), report, unsourced=by is None)
        return changes

    @staticmethod
    def withdraw_unlisted(
        s: Session,
        bank_id: int,
        publisher: str,
        listed: Callable[[list[tuple[str, str]]], set[tuple[str, str]]],
        report: ImportReport,
        chunk: int = INSERT_BATCH,
    ) -> list[dict]:
        """``publisher`` no longer publishes the bank's entries its whole list does not have (``listed``
        answers which of the given ``(signal_type, fingerprint)`` keys the list has); an entry no publisher is
        left for is withdrawn. In the caller's transaction; answers the change-log rows for the caller to append.
        For sources that publish a full list instead of deletions (see docs/sharing.md, "Plain feed")."""
        after, changes = 0, []
        theirs = select(BankEntryPublisher.entry_id).where(BankEntryPublisher.publisher == publisher)
        while True:
            rows = s.execute(
                select(BankEntry.id, BankEntry.signal_type, BankEntry.fingerprint)
                .where(
                    BankEntry.bank_id == bank_id,
                    BankEntry.id > after,
                    BankEntry.id.in_(theirs),
                )
                .order_by(BankEntry.id)
                .limit(chunk)
            ).all()
            if not rows:
                return changes
            after = rows[-1][0]
            kept = listed([(t, f) for _, t, f in rows])
            gone = {i for i, t, f in rows if (t, f) not in kept}
            if gone:
                s.execute(
                    delete(BankEntryPublisher).where(
                        BankEntryPublisher.publisher == publisher, BankEntryPublisher.entry_id.in_(sorted(gone))
                    )
                )
                changes += _release(s, gone, report)

    def add_hash(
        self,
        name: str,
        signal_type: str,
        value: str,
        *,
        source: str | None = None,
        external_id: str | None = None,
        category: str | None = None,
        note: str | None = None,
        metadata: dict | None = None,
        added_by: str | None = None,
    ) -> dict:
        """Add one raw hash; answers with the stored entry (an existing identical entry is returned as is)."""
        rec = EntryRecord(
            signal_type=signal_type,
            value=value,
            source=source,
            external_id=external_id,
            category=category,
            note=note,
            metadata=metadata or {},
        )
        rec = validate_record(rec)
        detail = {"signal_type": rec.signal_type, "fingerprint": fingerprint(rec.value)}
        self.add_records(name, [rec], added_by=added_by, audit_detail=detail)
        return self._stored(name, [rec])[0]

    def _stored(self, name: str, records: list[EntryRecord]) -> list[dict]:
        """The stored entries for ``records`` (each is in the bank: just added or already there)."""
        with self.db.session() as s:
            bank = _bank(s, name)
            return [
                entry_to_dict(
                    s.scalars(
                        select(BankEntry).where(
                            BankEntry.bank_id == bank.id,
                            BankEntry.signal_type == r.signal_type,
                            BankEntry.fingerprint == fingerprint(r.value),
                        )
                    ).one(),
                    bank.name,
                )
                for r in records
            ]

    def add_file(
        self,
        name: str,
        data: bytes,
        *,
        filename: str | None = None,
        added_by: str | None = None,
        types: Mapping[str, Collection[str]] | None = None,
        **provenance,
    ) -> dict:
        """Hash an image or video and add its perceptual hash and MD5 (see :func:`file_records`); ``types``
        (media → signal types) keeps only those (a door whose clients expect fewer entries per file: HMA's)."""
        self.get(name)
        hashed = registry.hash_content(data, filename=filename, pdq_mode=BANK_PDQ_MODE)
        records = file_records(hashed, filename=filename, types=types, **provenance)
        detail = {"media": hashed.media, "filename": filename}
        report = self.add_records(name, records, added_by=added_by, audit_detail=detail)
        return {
            "bank": name,
            "media": hashed.media,
            "added": report.added,
            "duplicates": report.duplicates,
            "entries": self._stored(name, records),
        }

    def import_stream(
        self,
        name: str,
        stream: IO[bytes],
        *,
        fmt: str = "auto",
        default_signal_type: str | None = None,
        source: str | None = None,
        skip_invalid: bool = False,
        dry_run: bool = False,
        added_by: str | None = None,
        progress: Callable[[int], None] | None = None,
        phase: Callable[[str], None] | None = None,
        filename: str | None = None,
    ) -> ImportReport:
        """Import a CSV, hash list or NCMEC XML file.

        All or nothing by default: the whole file is checked first (streaming, in bounded memory) and if any row
        is invalid nothing is written and the report lists the problems (with line numbers). ``skip_invalid``
        imports the valid rows and reports the rest; ``dry_run`` only checks and counts.

        Then the records are written ``batch_rows`` at a time, each batch in its own short transaction (other
        writers wait for one batch at most; on PostgreSQL only the rows written and the change-log advisory lock
        are held), recorded in an :class:`~safehold.store.models.ImportJob`. Re-running the same import (same bank,
        same file bytes, format and options) after a crash continues after the last committed batch: nothing is
        written twice, and the report says it resumed (``resumed``, ``resumed_at``). ``phase`` is told
        ``"checking"``, then ``"importing"`` (and ``"withdrawing"`` for a file with tombstones); ``progress``
        counts records in each phase.
        """
        self.get(name)  # fail early on an unknown bank
        spool = None
        if not _seekable(stream):  # stdin: every pass reads the file again
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
            shutil.copyfileobj(stream, spool, 1024 * 1024)
            stream = spool
        try:
            return self._import(
                name,
                stream,
                fmt=fmt,
                default_signal_type=default_signal_type,
                source=source,
                skip_invalid=skip_invalid,
                dry_run=dry_run,
                added_by=added_by,
                progress=progress or (lambda n: None),
                phase=phase or (lambda p: None),
                filename=filename,
            )
        finally:
            if spool is not None:
                spool.close()

    def _import(
        self,
        name,
        stream,
        *,
        fmt,
        default_signal_type,
        source,
        skip_invalid,
        dry_run,
        added_by,
        progress,
        phase,
        filename,
    ) -> ImportReport:
        report = ImportReport(bank=name)
        issues: list[ImportIssue] = []

        def passes():
            """One pass over the file: (position, valid record or None); a fresh reader each time."""
            stream.seek(0)
            result = read(
                fmt, stream, normalize=registry.normalize, default_signal_type=default_signal_type, source=source
            )
            return result, _validated(result)

        # 1. Check the whole file before writing anything (and count, for a dry run).
        phase("checking")
        sha = hashlib.sha256()
        stream.seek(0)
        while chunk := stream.read(1024 * 1024):
            sha.update(chunk)
        counter = _DryRunCounter(self.db, name) if dry_run else None
        tombstones = 0
        result, records = passes()
        for _pos, rec in records:
            report.read += 1
            progress(1)
            if rec is None:
                continue
            if rec.is_tombstone:
                tombstones += 1
            elif counter is not None:
                counter.add(rec)
        issues = list(result.issues)
        report.issues, report.invalid = issues, len(issues)
        real_format = result.format
        if counter is not None:
            counter.finish(report)
            return report
        if issues and not skip_invalid:
            return report  # all or nothing: nothing written

        # 2. Write in batches under an import job (resumed when a crash left one).
        options = json.dumps(
            {"signal_type": default_signal_type, "source": source, "skip_invalid": skip_invalid}, sort_keys=True
        )
        job, resumed = self._job(name, sha.hexdigest(), real_format, options, report.read, filename, added_by)
        report.job = job.id
        report.added, report.duplicates, report.withdrawn = job.added, job.duplicates, job.withdrawn
        report.resumed, report.resumed_at = resumed, job.rows_done
        state = {"status": job.status, "done": job.rows_done, "batches": job.batches}
        bank_id = job.bank_id

        def write(rows: list, upto: int, status: str) -> None:
            with self.db.session() as s:
                if status == "adding":
                    changes = []
                    for i in range(0, len(rows), INSERT_BATCH):  # one statement per INSERT_BATCH rows
                        changes += self._insert_entries(s, rows[i : i + INSERT_BATCH], report)
                else:
                    changes = self._withdraw(s, bank_id, rows, report)
                _advance(s, job.id, state, upto, report, status)
                _append_changes(s, changes)  # last: the change-log lock is held for the least time
            state["done"] = upto
            state["batches"] += 1
            self._checkpoint()

        for status in ("adding", "withdrawing"):
            if status == "withdrawing":
                if not tombstones:
                    break
                if state["status"] == "adding":  # all entries written: now the tombstones, from the top
                    with self.db.session() as s:
                        _advance(s, job.id, state, 0, report, "adding", new_status="withdrawing")
                    state.update(status="withdrawing", done=0)
            elif state["status"] != "adding":
                continue
            phase("importing" if status == "adding" else "withdrawing")
            start = state["done"]
            progress(start)
            batch: list = []
            pos = start
            for pos, rec in passes()[1]:  # noqa: B007 - pos is the batch's end
                if pos < start:
                    continue
                if rec is not None and rec.is_tombstone == (status == "withdrawing"):
                    batch.append(_row(bank_id, rec, added_by) if status == "adding" else rec)
                if pos + 1 - state["done"] >= self.batch_rows:
                    n = pos + 1 - state["done"]
                    write(batch, pos + 1, status)
                    progress(n)
                    batch = []
            if report.read > state["done"] or batch:
                n = report.read - state["done"]
                write(batch, report.read, status)
                progress(n)

        # 3. Done: the job closes with the audit record of the whole import.
        with self.db.session() as s:
            _advance(s, job.id, state, state["done"], report, state["status"], new_status="done")
            detail = {
                "added": report.added,
                "duplicates": report.duplicates,
                "withdrawn": report.withdrawn,
                "read": report.read,
                "format": fmt,
                "source": source,
                "skipped_invalid": len(issues),
                "job": job.id,
                "batches": state["batches"],
            }
            if report.resumed:
                detail["resumed_at"] = report.resumed_at
            self.audit.record(s, added_by, "bank.import", f"bank:{name}", detail)
        report.committed = True
        report.batches = state["batches"]
        self.on_change()
        return report

    def _checkpoint(self) -> None:
        """SQLite: copy the batch just committed from the WAL into the database now, outside any transaction (a
        passive checkpoint blocks no one), so the next writer's commit does not pay for it (SQLite checkpoints in
        whichever commit finds the WAL over 1,000 pages: an import would hand that cost to intake)."""
        if self.db.is_sqlite:
            with self.db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _job(self, name, sha, fmt, options, total, filename, added_by) -> tuple[ImportJob, bool]:
        """The unfinished job importing this file with these options into this bank (and True: it resumes),
        else a new one."""
        with self.db.session() as s:
            bank = _bank(s, name)
            job = s.scalars(
                select(ImportJob)
                .where(
                    ImportJob.bank_id == bank.id,
                    ImportJob.sha256 == sha,
                    ImportJob.format == fmt,
                    ImportJob.options == options,
                    ImportJob.status != "done",
                )
                .order_by(ImportJob.id.desc())
            ).first()
            if job is not None:
                job.resumes += 1
                job.updated_at = utcnow()
                return job, True
            job = ImportJob(
                bank_id=bank.id,
                source_name=(filename or None) and str(filename)[-255:],
                sha256=sha,
                format=fmt,
                options=options,
                status="adding",
                rows_total=total,
                rows_done=0,
                added=0,
                duplicates=0,
                withdrawn=0,
                batches=0,
                resumes=0,
                created_by=added_by,
            )
            s.add(job)
            s.flush()
            return job, False

    def import_jobs(self, name: str | None = None, limit: int = 50) -> list[dict]:
        """The latest import jobs (of one bank), newest first (at most :data:`MAX_IMPORT_JOBS`)."""
        limit = min(limit, MAX_IMPORT_JOBS)
        with self.db.session() as s:
            q = select(ImportJob, Bank.name).join(Bank, Bank.id == ImportJob.bank_id)
            if name is not None:
                q = q.where(Bank.name == name)
            rows = s.execute(q.order_by(ImportJob.id.desc()).limit(limit)).all()
            return [
                {
                    "id": j.id,
                    "bank": bank,
                    "source_name": j.source_name,
                    "sha256": j.sha256,
                    "format": j.format,
                    "options": json.loads(j.options),
                    "status": j.status,
                    "rows_total": j.rows_total,
                    "rows_done": j.rows_done,
                    "added": j.added,
                    "duplicates": j.duplicates,
                    "withdrawn": j.withdrawn,
                    "batches": j.batches,
                    "resumes": j.resumes,
                    "created_by": j.created_by,
                    "created_at": j.created_at.isoformat(),
                    "updated_at": j.updated_at.isoformat(),
                    "finished_at": j.finished_at.isoformat() if j.finished_at else None,
                }
                for j, bank in rows
            ]

    def export(
        self,
        name: str,
        stream: IO[bytes],
        *,
        fmt: str = "csv",
        signal_type: str | None = None,
        actor: str | None = None,
    ) -> int:
        """Write the bank in an importable format; returns the number of entries written."""
        count = 0

        def records() -> Iterator[EntryRecord]:
            nonlocal count
            with self.db.session() as s:
                bank = _bank(s, name)
                q = select(BankEntry).where(BankEntry.bank_id == bank.id).order_by(BankEntry.id)
                if signal_type:
                    q = q.where(BankEntry.signal_type == signal_type)
                for e in s.scalars(q.execution_options(yield_per=5000)):
                    count += 1
                    yield EntryRecord(
                        signal_type=e.signal_type,
                        value=e.value,
                        source=e.source,
                        external_id=e.external_id,
                        category=e.category,
                        note=e.note,
                        metadata=dict(e.extra or {}),
                        enabled=e.enabled,
                    )

        write(fmt, records(), stream)
        detail = {"format": fmt, "signal_type": signal_type, "entries": count}
        self.audit.record(None, actor, "bank.export", f"bank:{name}", detail)
        return count

    def entries(
        self,
        name: str,
        *,
        signal_type: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[dict]:
        """A page of entries in id order (keyset pagination: pass the last id as ``after_id``)."""
        if not 1 <= limit <= 1000:
            raise SafeholdError("request.invalid_limit", "limit must be between 1 and 1000.")
        with self.db.session() as s:
            bank = _bank(s, name)
            q = select(BankEntry).where(BankEntry.bank_id == bank.id, BankEntry.id > after_id)
            if signal_type:
                q = q.where(BankEntry.signal_type == signal_type)
            rows = s.scalars(q.order_by(BankEntry.id).limit(limit)).all()
            return [entry_to_dict(e, bank.name) for e in rows]

    def get_entry(self, entry_id: int) -> dict:
        with self.db.session() as s:
            e = _entry(s, entry_id)
            return entry_to_dict(e)

    def set_entry_enabled(self, entry_id: int, enabled: bool, actor: str | None = None) -> dict:
        """Disable (or re-enable) an entry without deleting it: it stays in the bank but stops matching."""
        with self.db.session() as s:
            e = _entry(s, entry_id, lock=True)
            if e.enabled != enabled:
                e.enabled = enabled
                e.withdrawn = False  # a person's decision: the source no longer turns it back on
                lock_changes(s)  # after the row is written (the lock flushes it): see lock_changes
                s.add(
                    IndexChange(
                        op="add" if enabled else "remove",
                        entry_id=e.id,
                        bank_id=e.bank_id,
                        signal_type=e.signal_type,
                        value=e.value,
                    )
                )
                action = "entry.enable" if enabled else "entry.disable"
                self.audit.record(s, actor, action, f"entry:{e.id}", _entry_detail(e))
            out = entry_to_dict(e)
        self.on_change()
        return out

    def set_enabled_by_value(
        self, name: str, signal_type: str, value: str, enabled: bool, actor: str | None = None
    ) -> dict:
        value = registry.normalize(signal_type, value)
        with self.db.session() as s:
            bank = _bank(s, name)
            entry_id = s.scalar(
                select(BankEntry.id).where(
                    BankEntry.bank_id == bank.id,
                    BankEntry.signal_type == signal_type,
                    BankEntry.fingerprint == fingerprint(value),
                )
            )
        if entry_id is None:
            raise NotFound("entry.not_found", f"Bank {name!r} has no {signal_type} entry {value!r}.")
        return self.set_entry_enabled(entry_id, enabled, actor=actor)

    def update_entry(
        self, entry_id: int, *, note: str | None = None, category: str | None = None, actor: str | None = None
    ) -> dict:
        with self.db.session() as s:
            e = _entry(s, entry_id)
            changed = {}
            if note is not None and note != e.note:
                e.note = changed["note"] = note
            if category is not None and normalize_category(category) != e.category:
                e.category = changed["category"] = normalize_category(category)
            s.flush()
            if changed:
                self.audit.record(s, actor, "entry.update", f"entry:{e.id}", {**_entry_detail(e), "set": changed})
            return entry_to_dict(e)

    def delete_entry(self, entry_id: int, actor: str | None = None) -> None:
        with self.db.session() as s:
            e = _entry(s, entry_id, lock=True)
            change = IndexChange(
                op="remove", entry_id=e.id, bank_id=e.bank_id, signal_type=e.signal_type, value=e.value
            )
            enabled, detail = e.enabled, _entry_detail(e)
            s.delete(e)
            s.flush()  # the row and the rows its deletion cascades to, before the change-log lock
            if enabled:
                lock_changes(s)
                s.add(change)
            self.audit.record(s, actor, "entry.delete", f"entry:{entry_id}", detail)
        self.on_change()


# ------------------------------------------------------------------ helpers

#: What a file added to a bank contributes: its perceptual hash and the MD5 industry lists share.
#: The exact hash a banked file is stored under, beside its perceptual hashes (every type whose
#: ``perceptual_for`` names the file's media: PDQ for images, vPDQ for videos, and plug-ins').
FILE_FINGERPRINT = "md5"


def file_records(
    hashed: registry.HashResult,
    *,
    filename: str | None = None,
    types: Mapping[str, Collection[str]] | None = None,
    **provenance,
) -> list[EntryRecord]:
    """The entries an image or video becomes (only the types ``types`` names for its media, when given).

    Refuses content whose perceptual hash cannot be computed or is too low quality to match safely: a
    near-uniform image would otherwise match many unrelated uploads.
    """
    if hashed.errors:
        raise hashed.errors[0]
    if hashed.media not in ("image", "video"):
        raise SafeholdError(
            "media.unsupported_format", "Only images and videos can be added as files; add other hashes raw."
        )
    records = []
    extra = provenance.pop("metadata", None) or {}
    perceptual = registry.perceptual_types(hashed.media)
    kept = None if types is None else types.get(hashed.media, ())
    for sig in hashed.signals:
        if sig.type != FILE_FINGERPRINT and sig.type not in perceptual or kept is not None and sig.type not in kept:
            continue
        if registry.signal_type(sig.type).unusable(sig):
            raise SafeholdError(
                "media.low_quality",
                f"The {hashed.media}'s {sig.type} hash has quality {sig.quality}: too featureless to match "
                f"safely. Add its {FILE_FINGERPRINT.upper()} as a raw hash instead.",
                status=422,
                detail={"signal_type": sig.type},
            )
        meta = {**extra, "filename": filename} if filename else dict(extra)
        records.append(validate_record(EntryRecord(sig.type, sig.value, metadata=meta, **provenance)))
    return records


def validate_record(rec: EntryRecord) -> EntryRecord:
    """Normalise the value and category; raise ``SafeholdError`` with the field's code.

    A tombstone (a list's "this entry was withdrawn") carries no value and passes as it is.
    """
    if rec.is_tombstone:
        return rec
    st = registry.signal_type(rec.signal_type)
    rec.signal_type = st.name  # a list may name the type by an alias (NCMEC's "photodna")
    rec.value = st.normalize(rec.value)
    rec.category = normalize_category(rec.category)
    for attr, limit in (("source", 64), ("external_id", 128)):
        v = getattr(rec, attr)
        if v is not None and len(v) > limit:
            raise SafeholdError(f"entry.invalid_{attr}", f"{attr} is longer than {limit} characters.")
    return rec


def _row(bank_id: int, rec: EntryRecord, added_by: str | None) -> dict:
    meta = {k: v for k, v in (rec.metadata or {}).items() if not k.startswith("_")}
    return {
        "bank_id": bank_id,
        "signal_type": rec.signal_type,
        "value": rec.value,
        "fingerprint": fingerprint(rec.value),
        "source": rec.source,
        "external_id": rec.external_id,
        "category": rec.category,
        "note": rec.note,
        "metadata": meta,  # the column's name: rows are inserted through the table (Core), not the ORM
        "enabled": rec.enabled,
        "added_by": added_by,
    }


def _seekable(stream) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _validated(result) -> Iterator[tuple[int, EntryRecord | None]]:
    """``(position, record)`` for every record the reader yields, ``None`` for one refused by
    :func:`validate_record` (its issue joins the reader's). Positions are stable for the same file bytes."""
    for pos, rec in enumerate(result.records):
        try:
            yield pos, validate_record(rec)
        except SafeholdError as exc:
            result.issues.append(ImportIssue(getattr(rec, "line", None), exc.code, exc.message))
            yield pos, None


def _advance(
    s: Session, job_id: int, state: dict, upto: int, report: ImportReport, status: str, new_status: str | None = None
) -> None:
    """Move the job from ``state`` to ``upto`` records (with the report's counts) in this transaction; fails
    with ``import.concurrent`` if another process moved it meanwhile (two runs of one import)."""
    now = utcnow()
    values = {
        "rows_done": upto,
        "added": report.added,
        "duplicates": report.duplicates,
        "withdrawn": report.withdrawn,
        "batches": state["batches"] + (new_status is None),
        "updated_at": now,
    }
    if new_status is not None:
        values["status"] = new_status
        if new_status == "done":
            values["finished_at"] = now
    n = s.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id, ImportJob.rows_done == state["done"], ImportJob.status == status)
        .values(**values)
    ).rowcount
    if n != 1:
        raise Conflict(
            "import.concurrent",
            f"Import job {job_id} was moved on by another run of the same import (or its bank was deleted); "
            "this run stopped. Run the import again to continue it.",
        )


class _DryRunCounter:
    """Counts what an import would add without writing to the store: duplicates inside the file through a
    private temporary SQLite file (bounded memory), duplicates of entries already in the bank by lookups."""

    def __init__(self, db: Database, bank: str, batch: int = 5000):
        self.db, self.bank, self.batch = db, bank, batch
        self.seen = sqlite3.connect("")  # a private on-disk temporary database, deleted when closed
        self.seen.execute("CREATE TABLE k (t TEXT, f TEXT, PRIMARY KEY (t, f)) WITHOUT ROWID")
        self.pending: list[tuple[str, str]] = []
        self.new = self.duplicates = 0

    def add(self, rec: EntryRecord) -> None:
        self.pending.append((rec.signal_type, fingerprint(rec.value)))
        if len(self.pending) >= self.batch:
            self._flush()

    def _flush(self) -> None:
        keys, self.pending = self.pending, []
        fresh = []
        for k in keys:
            before = self.seen.total_changes
            self.seen.execute("INSERT OR IGNORE INTO k VALUES (?, ?)", k)
            if self.seen.total_changes > before:
                fresh.append(k)
        self.duplicates += len(keys) - len(fresh)
        existing: set[tuple[str, str]] = set()
        with self.db.session() as s:
            bank_id = _bank(s, self.bank).id
            for t in {t for t, _ in fresh}:
                fps = [f for tt, f in fresh if tt == t]
                existing.update(
                    (t, f)
                    for (f,) in s.execute(
                        select(BankEntry.fingerprint).where(
                            BankEntry.bank_id == bank_id, BankEntry.signal_type == t, BankEntry.fingerprint.in_(fps)
                        )
                    )
                )
        self.duplicates += len(existing)
        self.new += len(fresh) - len(existing)

    def finish(self, report: ImportReport) -> None:
        self._flush()
        self.seen.close()
        report.added, report.duplicates = self.new, self.duplicates


def publisher_of(source: str | None) -> str | None:
    """The publisher key of a free-form import ``source`` (``None``: no publisher)."""
    return None if source is None else f"source:{source}"


#: The publisher key of an exchange is this and its id, so no import source can be taken for it.
EXCHANGE_PUBLISHER = "exchange:"


def exchange_publisher(exchange_id: int) -> str:
    return f"{EXCHANGE_PUBLISHER}{exchange_id}"


def _entry_ids(s: Session, rows: list[dict]) -> dict[tuple[str, str], int]:
    """The ids of the (stored) entries of ``rows``, by ``(signal_type, fingerprint)``."""
    bank_id = rows[0]["bank_id"]
    ids: dict[tuple[str, str], int] = {}
    for t in {r["signal_type"] for r in rows}:
        fps = sorted({r["fingerprint"] for r in rows if r["signal_type"] == t})
        for i, f in s.execute(
            select(BankEntry.id, BankEntry.fingerprint).where(
                BankEntry.bank_id == bank_id, BankEntry.signal_type == t, BankEntry.fingerprint.in_(fps)
            )
        ):
            ids[(t, f)] = i
    return ids


def _release(s: Session, entry_ids: set[int], report: ImportReport, *, unsourced: bool = False) -> list[dict]:
    """Withdraw those of ``entry_ids`` that are enabled and have no publisher left; their change-log rows.

    An entry first added without a source (by a person, or an import without one) is not a publisher's to
    withdraw, unless ``unsourced`` (a deletion without a source, which targets exactly those)."""
    if not entry_ids:
        return []
    done = s.execute(
        update(BankEntry)
        .where(
            BankEntry.id.in_(sorted(entry_ids)),
            BankEntry.enabled.is_(True),
            BankEntry.source.is_(None) if unsourced else BankEntry.source.is_not(None),
            ~select(BankEntryPublisher.id).where(BankEntryPublisher.entry_id == BankEntry.id).exists(),
        )
        .values(enabled=False, withdrawn=True)
        .returning(BankEntry.id, BankEntry.bank_id, BankEntry.signal_type, BankEntry.value)
    ).all()
    report.withdrawn += len(done)
    return [{"op": "remove", "entry_id": i, "bank_id": b, "signal_type": t, "value": v} for i, b, t, v in done]


#: Where :func:`_delete_bank` keeps a deleted bank's entries until the change log is appended (PostgreSQL).
_GONE = table("gone_entries", *(column(c) for c in ("id", "bank_id", "signal_type", "value", "enabled")))


def _delete_bank(s: Session, bank: Bank) -> int:
    """Delete ``bank`` and its entries, appending the removal of the enabled ones to the change log; returns how
    many entries went.

    On PostgreSQL every row goes first (the deletion cascades to rows other writers may hold: an import's job, an
    exchange, publishers) and the change-log lock is taken only then (see :func:`lock_changes`); what the log
    needs waits in a temporary table dropped at commit, not in this process (a bank may hold millions of entries).
    SQLite serialises writers: there the log is appended from the entries before they go.
    """

    def removes(entries, *where) -> None:
        s.execute(
            insert(IndexChange).from_select(
                ["op", "entry_id", "bank_id", "signal_type", "value"],
                select(text("'remove'"), entries.c.id, entries.c.bank_id, entries.c.signal_type, entries.c.value)
                .where(entries.c.enabled.is_(True), *where)
                .order_by(entries.c.id),
            )
        )

    if s.bind.dialect.name != "postgresql":
        removes(BankEntry.__table__, BankEntry.bank_id == bank.id)
        n = s.execute(delete(BankEntry).where(BankEntry.bank_id == bank.id)).rowcount
        s.delete(bank)
        return n
    s.execute(
        text(
            "CREATE TEMPORARY TABLE gone_entries (id BIGINT, bank_id INTEGER, signal_type TEXT, value TEXT, "
            "enabled BOOLEAN) ON COMMIT DROP"
        )
    )
    n = s.execute(
        text(
            "WITH gone AS (DELETE FROM bank_entries WHERE bank_id = :b "
            "RETURNING id, bank_id, signal_type, value, enabled) INSERT INTO gone_entries SELECT * FROM gone"
        ),
        {"b": bank.id},
    ).rowcount
    s.delete(bank)
    s.flush()
    lock_changes(s)
    removes(_GONE)
    return n


def _append_changes(s: Session, changes: list[dict]) -> None:
    """Append to the index change log, taking its writers' lock only now (it is held until the commit)."""
    if changes:
        lock_changes(s)
        if s.bind.dialect.name == "postgresql" and len(changes) > 1:
            insert_unnest(s, IndexChange.__table__, changes)
        else:
            s.execute(insert(IndexChange.__table__), changes)


def lock_changes(s: Session) -> None:
    """Serialise change-log writers on PostgreSQL so sequence numbers commit in order.

    Readers follow the log by ``seq > last seen``; without this, a transaction that drew seq N could commit after
    one that drew N + 1, and a reader that saw N + 1 in between would skip N for good. A transaction-scoped
    advisory lock, not a table lock: readers and every other table are untouched. Callers take it after their
    last row write (it flushes pending ORM writes first) and just before appending, so it is held from the append
    to the commit and a holder waits for no row lock: the lock cannot close a deadlock cycle (only the audit
    log's lock, always last, comes after it). SQLite already serialises writers.
    """
    if s.bind.dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:c, :k)"), {"c": CHANGES_LOCK[0], "k": CHANGES_LOCK[1]})


def _log_banks_changed(s: Session) -> None:
    lock_changes(s)
    s.add(IndexChange(op="banks"))


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not BANK_NAME.fullmatch(name):
        raise SafeholdError(
            "bank.invalid_name",
            "A bank name is 1 to 64 characters: letters, digits, '.', '-' or '_', starting with a letter or digit.",
        )


def _check_kind(kind: str) -> None:
    if kind not in BANK_KINDS:
        raise SafeholdError("bank.invalid_kind", f"Bank kind must be one of {', '.join(BANK_KINDS)}.")


def merge_thresholds(
    current: Mapping[str, int], pdq_threshold: int | None, thresholds: Mapping[str, int | None] | None
) -> dict[str, int]:
    """A bank's thresholds after a change: ``current`` with ``pdq_threshold`` (the older single-threshold
    setting) and then ``thresholds`` applied; ``None`` drops a type's own threshold.

    Each type must be installed (``signal.unknown_type``; an alias is stored under the type's name) and each
    threshold an integer from 0 to the type's ``max_threshold`` (``bank.invalid_threshold``).
    """
    changes: dict[str, int | None] = {} if pdq_threshold is None else {"pdq": pdq_threshold}
    if thresholds is not None:
        if not isinstance(thresholds, Mapping):
            raise SafeholdError("bank.invalid_threshold", "thresholds must map signal types to integers.")
        changes.update(thresholds)
    out = dict(current)
    for type_name, value in changes.items():
        st = registry.signal_type(type_name)
        if value is None:
            out.pop(st.name, None)
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= st.max_threshold:
            raise SafeholdError(
                "bank.invalid_threshold",
                f"The {st.name} threshold must be an integer from 0 to {st.max_threshold}.",
                detail={"signal_type": st.name, "max": st.max_threshold},
            )
        out[st.name] = value
    return out


def parse_thresholds(options: Iterable[str] | None) -> tuple[int | None, dict[str, int | None] | None]:
    """Threshold settings as the CLI and the console take them (``TYPE=N``, ``TYPE=default`` to drop the bank's
    own, or a bare ``N`` for PDQ) → ``(pdq_threshold, thresholds)`` for :meth:`BankService.create`/``update``."""
    pdq, by_type = None, {}
    for opt in options or ():
        type_name, eq, value = opt.rpartition("=")
        try:
            n = None if eq and value.strip() == "default" else int(value)
        except ValueError:
            raise SafeholdError(
                "bank.invalid_threshold", f"Threshold {opt!r}: give TYPE=N (an integer), TYPE=default or N."
            ) from None
        if eq:
            by_type[type_name.strip().lower()] = n
        else:
            pdq = n
    return pdq, by_type or None


def _check_on_match(kind: str, on_match: str | None) -> str:
    """The bank's ``on_match`` (its kind's default when not given). An allow bank lists known false
    positives: a match on it never opens a case."""
    if on_match is None:
        return "case" if kind == "block" else "none"
    if on_match not in ON_MATCH:
        raise SafeholdError("bank.invalid_on_match", f"on_match must be one of {', '.join(ON_MATCH)}.")
    if kind == "allow" and on_match != "none":
        raise SafeholdError("bank.invalid_on_match", "An allow bank never opens cases: its on_match is 'none'.")
    return on_match


def _bank(s: Session, name: str) -> Bank:
    bank = s.scalars(select(Bank).where(Bank.name == name)).first()
    if bank is None:
        names = s.scalars(select(Bank.name).order_by(Bank.name)).all()
        close = difflib.get_close_matches(name, names, n=1)
        if close:
            hint = f" Did you mean {close[0]!r}?"
        elif names:
            hint = f" Banks: {', '.join(names[:10])}{', …' if len(names) > 10 else ''}."
        else:
            hint = " There are no banks yet."
        raise NotFound("bank.not_found", f"No bank named {name!r}.{hint}")
    return bank


def _entry_detail(e: BankEntry) -> dict:
    """What identifies an entry in the audit log (its value's bounded fingerprint, never a long vPDQ)."""
    return {"bank": e.bank.name, "signal_type": e.signal_type, "fingerprint": e.fingerprint}


def _entry(s: Session, entry_id: int, *, lock: bool = False) -> BankEntry:
    """The entry; ``lock`` takes its row lock (PostgreSQL) before the caller decides on what it read."""
    e = s.get(BankEntry, entry_id, with_for_update=lock)
    if e is None:
        raise NotFound("entry.not_found", f"No entry with id {entry_id}.")
    return e


__all__ = [
    "ON_MATCH",
    "BankInfo",
    "BankService",
    "ImportReport",
    "entry_to_dict",
    "file_records",
    "fingerprint",
    "merge_thresholds",
    "parse_thresholds",
    "validate_record",
]
