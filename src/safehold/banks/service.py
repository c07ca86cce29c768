"""Hash banks: create, configure and fill them, and keep the matching indexes' change log in step.

Every write that changes what can match also appends to ``index_changes`` in the same transaction, so each
process's in-memory index (see :mod:`safehold.banks.index`) catches up incrementally and nothing is ever lost
between the database and the index.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from safehold.audit import AuditService
from safehold.banks.formats import EntryRecord, ImportIssue, normalize_category, read, write
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.signals import registry
from safehold.store.db import Database
from safehold.store.models import Bank, BankEntry, IndexChange

BANK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
BANK_KINDS = ("block", "allow")
#: What a match on a bank does beyond the scan verdict (see :class:`~safehold.store.models.Bank`).
ON_MATCH = ("none", "case", "auto")
MAX_PDQ_THRESHOLD = 63
INSERT_BATCH = 2000
MIN_PDQ_QUALITY = 50
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
            pdq_threshold=bank.pdq_threshold,
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

    def to_dict(self) -> dict:
        return {
            "bank": self.bank,
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
    }


class BankService:
    def __init__(self, db: Database, on_change: Callable[[], None] | None = None, audit: AuditService | None = None):
        self.db = db
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
        pdq_threshold: int = 31,
        dihedral: bool = False,
        on_match: str | None = None,
        created_by: str | None = None,
    ) -> BankInfo:
        """``on_match`` defaults to ``case`` for a block bank and ``none`` for an allow bank."""
        _check_name(name)
        _check_settings(kind, pdq_threshold)
        on_match = _check_on_match(kind, on_match)
        with self.db.session() as s:
            if s.scalar(select(Bank.id).where(Bank.name == name)) is not None:
                raise Conflict("bank.exists", f"A bank named {name!r} already exists.")
            bank = Bank(
                name=name,
                kind=kind,
                on_match=on_match,
                description=description or "",
                pdq_threshold=pdq_threshold,
                dihedral=dihedral,
                created_by=created_by,
            )
            s.add(bank)
            s.flush()
            _log_banks_changed(s)
            info = BankInfo.of(bank)
            settings = {
                "kind": kind,
                "on_match": on_match,
                "pdq_threshold": pdq_threshold,
                "dihedral": dihedral,
                "description": description,
            }
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
        dihedral: bool | None = None,
        enabled: bool | None = None,
        on_match: str | None = None,
        actor: str | None = None,
    ) -> BankInfo:
        """Changing ``kind`` without giving ``on_match`` resets it to the new kind's default."""
        with self.db.session() as s:
            bank = _bank(s, name)
            changes: dict[str, list] = {}
            _check_settings(kind or bank.kind, bank.pdq_threshold if pdq_threshold is None else pdq_threshold)
            if on_match is None and kind is not None and kind != bank.kind:
                on_match = _check_on_match(kind, None)
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
                ("pdq_threshold", pdq_threshold),
                ("dihedral", dihedral),
                ("enabled", enabled),
                ("on_match", on_match),
            ):
                if value is not None:
                    if getattr(bank, attr) != value:
                        changes[attr] = [getattr(bank, attr), value]
                    setattr(bank, attr, value)
            _log_banks_changed(s)
            s.flush()
            if changes:  # detail: {setting: [old, new]}
                self.audit.record(s, actor, "bank.update", f"bank:{name}", {"changes": changes})
        self.on_change()
        return self.get(new_name or name)

    def delete(self, name: str, actor: str | None = None) -> int:
        """Delete a bank and all its entries; returns how many entries went with it."""
        with self.db.session() as s:
            bank = _bank(s, name)
            lock_changes(s)
            s.execute(
                insert(IndexChange).from_select(
                    ["op", "entry_id", "signal_type", "value"],
                    select(text("'remove'"), BankEntry.id, BankEntry.signal_type, BankEntry.value).where(
                        BankEntry.bank_id == bank.id, BankEntry.enabled.is_(True)
                    ),
                )
            )
            n = s.execute(delete(BankEntry).where(BankEntry.bank_id == bank.id)).rowcount
            s.delete(bank)
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
        audit_action: str = "entry.add",
        audit_detail: dict | Callable[[], dict] | None = None,
    ) -> ImportReport:
        """Insert validated records in one transaction; duplicates in the bank are counted, not added.

        ``commit_if`` is asked once every record is inserted; if it says no the transaction is rolled back.
        The audit record (``audit_action``, counts plus ``audit_detail``) commits with the entries or not at all.
        """
        report = report or ImportReport(bank=name)
        with self.db.session() as s:
            bank = _bank(s, name)
            lock_changes(s)
            batch: list[dict] = []
            withdrawn: list[EntryRecord] = []
            for rec in records:
                if rec.is_tombstone:
                    withdrawn.append(rec)
                    continue
                batch.append(_row(bank.id, rec, added_by))
                if len(batch) >= INSERT_BATCH:
                    self._insert(s, batch, report)
                    if progress:
                        progress(len(batch))
                    batch = []
            if batch:
                self._insert(s, batch, report)
                if progress:
                    progress(len(batch))
            self._withdraw(s, bank.id, withdrawn, report)
            if not commit_if():
                s.rollback()
                return report
            counts = {"added": report.added, "duplicates": report.duplicates, "withdrawn": report.withdrawn}
            if report.read:
                counts["read"] = report.read
            extra = audit_detail() if callable(audit_detail) else audit_detail
            self.audit.record(s, added_by, audit_action, f"bank:{name}", {**counts, **(extra or {})})
            report.committed = True
        self.on_change()
        return report

    def _insert(self, s: Session, rows: list[dict], report: ImportReport) -> None:
        # Duplicates inside one batch would abort the statement on PostgreSQL: keep the first.
        seen: set[tuple[str, str]] = set()
        unique = []
        for r in rows:
            key = (r["signal_type"], r["fingerprint"])
            if key not in seen:
                seen.add(key)
                unique.append(r)
        dialect_insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
        stmt = (
            dialect_insert(BankEntry)
            .on_conflict_do_nothing(index_elements=["bank_id", "signal_type", "fingerprint"])
            .returning(BankEntry.id, BankEntry.signal_type, BankEntry.value, BankEntry.enabled)
        )
        added = s.execute(stmt, unique).all()
        report.added += len(added)
        report.duplicates += len(rows) - len(added)
        changes = [{"op": "add", "entry_id": i, "signal_type": t, "value": v} for i, t, v, on in added if on]
        if changes:
            s.execute(insert(IndexChange), changes)

    @staticmethod
    def _withdraw(s: Session, bank_id: int, tombstones: list[EntryRecord], report: ImportReport) -> None:
        """Apply a list's deletions: disable every entry from that source with that external id."""
        for rec in tombstones:
            rows = s.execute(
                update(BankEntry)
                .where(
                    BankEntry.bank_id == bank_id,
                    BankEntry.external_id == rec.external_id,
                    BankEntry.source == rec.source if rec.source is not None else BankEntry.source.is_(None),
                    BankEntry.enabled.is_(True),
                )
                .values(enabled=False)
                .returning(BankEntry.id, BankEntry.signal_type, BankEntry.value)
            ).all()
            report.withdrawn += len(rows)
            if rows:
                s.execute(
                    insert(IndexChange),
                    [{"op": "remove", "entry_id": i, "signal_type": t, "value": v} for i, t, v in rows],
                )

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
        **provenance,
    ) -> dict:
        """Hash an image or video and add its perceptual hash and MD5 (see :func:`file_records`)."""
        self.get(name)
        hashed = registry.hash_content(data, filename=filename, pdq_mode=BANK_PDQ_MODE)
        records = file_records(hashed, filename=filename, **provenance)
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
    ) -> ImportReport:
        """Import a CSV, hash list or NCMEC XML file.

        All or nothing by default: if any row is invalid nothing is written and the report lists the problems
        (with line numbers). ``skip_invalid`` imports the valid rows and reports the rest.
        """
        self.get(name)  # fail early on an unknown bank
        result = read(fmt, stream, normalize=registry.normalize, default_signal_type=default_signal_type, source=source)
        report = ImportReport(bank=name)

        def valid_records() -> Iterator[EntryRecord]:
            for rec in result.records:
                report.read += 1
                if progress:
                    progress(1)
                try:
                    yield validate_record(rec)
                except SafeholdError as exc:
                    result.issues.append(ImportIssue(getattr(rec, "line", None), exc.code, exc.message))

        try:
            # Streams into one transaction; rolled back at the end if anything was invalid and not skipped.
            self.add_records(
                name,
                valid_records(),
                added_by=added_by,
                report=report,
                commit_if=lambda: not (dry_run or (result.issues and not skip_invalid)),
                audit_action="bank.import",
                audit_detail=lambda: {"format": fmt, "source": source, "skipped_invalid": len(result.issues)},
            )
        finally:
            report.issues = list(result.issues)
            report.invalid = len(report.issues)
        if not report.committed and not dry_run:
            report.added = 0  # rolled back; a dry run keeps the count of what it would have added
        return report

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
            lock_changes(s)
            e = _entry(s, entry_id)
            if e.enabled != enabled:
                e.enabled = enabled
                s.add(
                    IndexChange(
                        op="add" if enabled else "remove",
                        entry_id=e.id,
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
            lock_changes(s)
            e = _entry(s, entry_id)
            if e.enabled:
                s.add(IndexChange(op="remove", entry_id=e.id, signal_type=e.signal_type, value=e.value))
            detail = _entry_detail(e)
            s.delete(e)
            s.flush()
            self.audit.record(s, actor, "entry.delete", f"entry:{entry_id}", detail)
        self.on_change()


# ------------------------------------------------------------------ helpers

#: What a file added to a bank contributes: its perceptual hash and the MD5 industry lists share.
FILE_SIGNALS = ("pdq", "vpdq", "md5")


def file_records(hashed: registry.HashResult, *, filename: str | None = None, **provenance) -> list[EntryRecord]:
    """The entries an image or video becomes.

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
    for sig in hashed.signals:
        if sig.type not in FILE_SIGNALS:
            continue
        if sig.type == "pdq" and sig.quality is not None and sig.quality < MIN_PDQ_QUALITY:
            raise SafeholdError(
                "media.low_quality",
                f"The image's PDQ quality is {sig.quality} (< {MIN_PDQ_QUALITY}): too featureless to match "
                "safely. Add its MD5 as a raw hash instead.",
                status=422,
            )
        meta = {"filename": filename} if filename else {}
        records.append(validate_record(EntryRecord(sig.type, sig.value, metadata=meta, **provenance)))
    return records


def validate_record(rec: EntryRecord) -> EntryRecord:
    """Normalise the value and category; raise ``SafeholdError`` with the field's code.

    A tombstone (a list's "this entry was withdrawn") carries no value and passes as it is.
    """
    if rec.is_tombstone:
        return rec
    rec.value = registry.normalize(rec.signal_type, rec.value)
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
        "extra": meta,
        "enabled": rec.enabled,
        "added_by": added_by,
    }


def lock_changes(s: Session) -> None:
    """Serialise change-log writers on PostgreSQL so sequence numbers commit in order.

    A reader that has seen seq N then never misses a later commit with a smaller seq. SQLite already
    serialises writers.
    """
    if s.bind.dialect.name == "postgresql":
        s.execute(text("LOCK TABLE index_changes IN SHARE ROW EXCLUSIVE MODE"))


def _log_banks_changed(s: Session) -> None:
    lock_changes(s)
    s.add(IndexChange(op="banks"))


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not BANK_NAME.match(name):
        raise SafeholdError(
            "bank.invalid_name",
            "A bank name is 1 to 64 characters: letters, digits, '.', '-' or '_', starting with a letter or digit.",
        )


def _check_settings(kind: str, pdq_threshold: int) -> None:
    if kind not in BANK_KINDS:
        raise SafeholdError("bank.invalid_kind", f"Bank kind must be one of {', '.join(BANK_KINDS)}.")
    if not isinstance(pdq_threshold, int) or not 0 <= pdq_threshold <= MAX_PDQ_THRESHOLD:
        raise SafeholdError(
            "bank.invalid_threshold", f"The PDQ threshold must be an integer from 0 to {MAX_PDQ_THRESHOLD}."
        )


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


def _entry(s: Session, entry_id: int) -> BankEntry:
    e = s.get(BankEntry, entry_id)
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
    "validate_record",
]
