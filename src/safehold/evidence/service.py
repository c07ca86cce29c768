"""Evidence preservation: what reports and legal holds need, kept encrypted, retained on schedule, and every
access on the audit log (the chain of custody).

**Store.** Content is sealed (AES-256-GCM, envelope encryption) under the *evidence* key, in its own
content-addressed store (:mod:`safehold.evidence.store`): two records of the same file share one blob. SHA-256
and MD5 are computed at ingest, checked against what the case recorded, and the blob is read back once; every
later read checks the SHA-256, MD5 and size again (``evidence.corrupt`` otherwise).

**Chain of custody.** One audit record per event: ``evidence.preserve`` (a record created), ``evidence.access``
(decrypted, with the stated purpose), ``evidence.export`` (a package, with its SHA-256), ``evidence.hold`` /
``evidence.release`` (legal holds), ``evidence.purge`` (proof of deletion: the hashes, size and dates of what was
deleted) and ``evidence.sweep`` (blobs no live record claimed, removed). Record keys never hold key material.

**Purging safely.** A purge of one record is two steps, in this order:

1. one transaction marks the row purged (``purged_at``/``purged_by``) *and* writes its ``evidence.purge`` record;
2. after commit, the blob is deleted unless another live record has the same content.

The other order (delete, then mark) would leave, after a crash between the two, a live record whose file is
gone: a register that claims evidence it no longer holds, which breaks exports and filings and is the failure a
preservation duty cannot have. This order can only leave an *orphan*: an encrypted blob no live record claims,
unreadable through the service (reads refuse purged records), which the daily sweep deletes
(:meth:`EvidenceService.sweep`). The proof of deletion is therefore written when the decision is final; the
sweep guarantees the bytes follow. ``blob_deleted`` in the proof says whether the blob goes (false: another live
record still holds the same content, so it stays for that record).

Races are closed with locks taken in one order — sweep (shared), retention, content, then the audit log last:
on PostgreSQL transaction-scoped advisory locks (a per-SHA-256 lock for a blob; one retention lock that placing a
hold and purging share, so a hold placed while a purge runs is either seen by it or placed after it), on SQLite
the database's writer lock. Preserving writes the blob again under the content lock if a purge removed it
meanwhile; deleting a blob re-checks for live records under the same lock; the sweep takes the sweep lock
exclusively, so it never sees a blob whose record is being written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safehold.audit import AuditService
from safehold.audit.service import to_dict as audit_dict
from safehold.cases.service import action_dict, decision_dict, item_dict, signal_dict, summary
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.evidence import retention
from safehold.evidence.export import PackageFile, check_record_name, write_package
from safehold.evidence.reports import ReportPackage, Reports
from safehold.evidence.store import EvidenceStore
from safehold.store.db import Database
from safehold.store.models import (
    AuditRecord,
    Case,
    CaseAction,
    CaseDecision,
    CaseItem,
    CaseSignal,
    EvidenceItem,
    LegalHold,
    as_utc,
    iso,
    utcnow,
)
from safehold.store.vault import MediaVault, StoredMedia

log = logging.getLogger(__name__)

SYSTEM = "system:retention"
KINDS = ("media", "text", "document")
MAX_LIMIT = 1000
#: The scheduled purge runs at most this often; the orphan sweep at most once a day.
PURGE_EVERY = dt.timedelta(hours=1)
SWEEP_EVERY = dt.timedelta(days=1)
#: Records decided per transaction batch when looking for expired items.
BATCH = 500
#: The advisory-lock class of evidence locks (PostgreSQL), and the two fixed keys in it.
LOCK_CLASS = 0x5E1D
RETENTION_KEY = 0
SWEEP_KEY = 1


def evidence_dict(e: EvidenceItem) -> dict:
    """A record of the register: hashes, size, provenance and dates, never content."""
    return {
        "id": e.id,
        "case_id": e.case_id,
        "account_id": e.account_id,
        "source_key": e.source_key,
        "kind": e.kind,
        "sha256": e.sha256,
        "md5": e.md5,
        "size": e.size,
        "filename": e.filename,
        "media_type": e.media_type,
        "jurisdiction": e.jurisdiction,
        "metadata": e.metadata_ or {},
        "preserved_by": e.preserved_by,
        "preserved_at": iso(e.preserved_at),
        "purged": e.purged_at is not None,
        "purged_by": e.purged_by,
        "purged_at": iso(e.purged_at),
    }


def hold_dict(h: LegalHold, now: dt.datetime | None = None) -> dict:
    now = now or utcnow()
    return {
        "id": h.id,
        "case_id": h.case_id,
        "account_id": h.account_id,
        "reason": h.reason,
        "reference": h.reference,
        "placed_by": h.placed_by,
        "placed_at": iso(h.placed_at),
        "expires_at": iso(h.expires_at),
        "released_by": h.released_by,
        "released_at": iso(h.released_at),
        "active": h.released_at is None and (h.expires_at is None or as_utc(h.expires_at) > now),
    }


class EvidenceService:
    def __init__(
        self,
        db: Database,
        audit: AuditService,
        store: EvidenceStore,
        vault: MediaVault,
        settings: Settings,
        reports: Reports,
    ):
        self.db = db
        self.audit = audit
        self.store = store
        self.vault = vault
        self.settings = settings
        #: What reports need and hold: reporting's to say (see :mod:`safehold.evidence.reports`).
        self.reports = reports
        self._purged_at: dt.datetime | None = None
        self._swept_at: dt.datetime | None = None
        self._due_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ preserve

    def preserve_case(self, case_id: int, actor: str) -> list[dict]:
        """Preserve every item of a case that has content: media (from the review vault, re-sealed under the
        evidence key) and text. Idempotent per item (``source_key`` ``case_item:<id>``): an item preserved
        before returns its existing record. The jurisdiction is the case's ``metadata["jurisdiction"]`` or
        ``settings.evidence_jurisdiction``. Returns the case's item records (:func:`evidence_dict`), in item order.
        Raises ``case.not_found``, ``evidence.source_missing`` (409: media no longer in the vault) or
        ``evidence.corrupt`` (the vault's bytes do not match the hashes the case recorded)."""
        with self.db.session() as s:
            case = s.get(Case, case_id)
            if case is None:
                raise NotFound("case.not_found", f"No case with id {case_id}.")
            items = list(s.scalars(select(CaseItem).where(CaseItem.case_id == case_id).order_by(CaseItem.id)))
            have = {e.source_key: e for e in s.scalars(select(EvidenceItem).where(EvidenceItem.case_id == case_id))}
            jurisdiction = str((case.metadata_ or {}).get("jurisdiction") or self.settings.evidence_jurisdiction)
            account_id = case.account_id
        out = []
        for item in items:
            key = f"case_item:{item.id}"
            if key in have:
                out.append(evidence_dict(have[key]))
                continue
            content = self._item_content(item)
            if content is None:
                continue
            kind, data = content
            out.append(
                self._preserve(
                    case_id,
                    key,
                    data,
                    kind=kind,
                    actor=actor,
                    filename=item.filename,
                    media_type=item.media_type,
                    account_id=account_id,
                    jurisdiction=jurisdiction,
                    metadata={
                        "case_item_id": item.id,
                        "content_id": item.content_id,
                        "url": item.url,
                        "uploaded_at": iso(item.uploaded_at),
                    },
                    expect=(item.sha256, item.md5) if kind == "media" else None,
                )
            )
        return out

    def preserve_bytes(
        self,
        case_id: int | None,
        source_key: str,
        data: bytes,
        *,
        kind: str,
        actor: str,
        filename: str | None = None,
        media_type: str | None = None,
        account_id: str | None = None,
        metadata: dict | None = None,
    ) -> dict:
        """Preserve arbitrary bytes (e.g. a filed report's document, ``kind="document"``). Idempotent on
        ``(case_id, source_key)``: if a record exists it is returned unchanged, even if ``data`` differs — compare
        its ``sha256`` and use another key for another version. The jurisdiction is the case's (as in
        :meth:`preserve_case`) or the default. Returns the record (:func:`evidence_dict`)."""
        if kind not in KINDS:
            raise SafeholdError("evidence.invalid_kind", f"kind must be one of {', '.join(KINDS)}.")
        if not source_key or len(source_key) > 128:
            raise SafeholdError("evidence.invalid_source", "source_key must be 1–128 characters.")
        with self.db.session() as s:
            existing = _by_source(s, case_id, source_key)
            if existing is not None:
                return evidence_dict(existing)
            jurisdiction = self.settings.evidence_jurisdiction
            if case_id is not None:
                case = s.get(Case, case_id)
                if case is None:
                    raise NotFound("case.not_found", f"No case with id {case_id}.")
                jurisdiction = str((case.metadata_ or {}).get("jurisdiction") or jurisdiction)
                account_id = account_id or case.account_id
        return self._preserve(
            case_id,
            source_key,
            data,
            kind=kind,
            actor=actor,
            filename=filename,
            media_type=media_type,
            account_id=account_id,
            jurisdiction=jurisdiction,
            metadata=metadata or {},
        )

    def _item_content(self, item: CaseItem) -> tuple[str, bytes] | None:
        if item.media_key is not None:
            try:
                return "media", self.vault.get(item.media_key)
            except NotFound:
                raise Conflict(
                    "evidence.source_missing", f"The media of case item {item.id} is no longer in the vault."
                ) from None
        if item.text:
            return "text", item.text.encode("utf-8")
        return None

    def _preserve(
        self,
        case_id: int | None,
        source_key: str,
        data: bytes,
        *,
        kind: str,
        actor: str,
        jurisdiction: str,
        metadata: dict,
        filename: str | None,
        media_type: str | None,
        account_id: str | None,
        expect: tuple[str | None, str | None] | None = None,
    ) -> dict:
        """Seal ``data`` into the store (outside any lock: the slow part), then, under the content lock, make
        sure the blob is still there (a purge may have deleted an identical blob meanwhile), insert the record and
        its audit record. A crash after the blob is written and before commit leaves an orphan for the sweep."""
        info = self._put(data)
        want_sha, want_md5 = expect or (None, None)
        if (want_sha and want_sha != info.sha256) or (want_md5 and want_md5 != info.md5):
            raise SafeholdError(
                "evidence.corrupt", f"The content for {source_key} does not match the hashes recorded.", status=500
            )
        try:
            with self.db.session() as s:
                _locks(s, sha256=info.sha256)
                existing = _by_source(s, case_id, source_key)
                if existing is not None:  # preserved meanwhile by someone else
                    return evidence_dict(existing)
                if not self.store.exists(info.sha256):
                    self._put(data)
                row = EvidenceItem(
                    case_id=case_id,
                    account_id=account_id,
                    source_key=source_key,
                    kind=kind,
                    sha256=info.sha256,
                    md5=info.md5,
                    size=info.size,
                    filename=(filename or None) and filename[:256],
                    media_type=(media_type or None) and media_type[:32],
                    jurisdiction=jurisdiction[:16],
                    metadata_={k: v for k, v in metadata.items() if v is not None},
                    preserved_by=actor[:128],
                    preserved_at=utcnow(),
                )
                s.add(row)
                s.flush()
                detail = {
                    "case_id": case_id,
                    "source_key": source_key,
                    "kind": kind,
                    "sha256": info.sha256,
                    "md5": info.md5,
                    "size": info.size,
                    "jurisdiction": row.jurisdiction,
                }
                self.audit.record(s, actor, "evidence.preserve", f"evidence:{row.id}", detail)
                return evidence_dict(row)
        except IntegrityError:  # the same (case, source) inserted concurrently: that record stands
            with self.db.session() as s:
                existing = _by_source(s, case_id, source_key)
                if existing is None:
                    raise
                return evidence_dict(existing)

    def _put(self, data: bytes) -> StoredMedia:
        """Seal and store, then read the blob back once: what is recorded is known to be recoverable."""
        info = self.store.put(data)
        self._open(info.sha256, info.md5, info.size, f"new blob {info.sha256[:12]}")
        return info

    # ---------------------------------------------------------------------------------------------- read

    def for_item(self, case_item_id: int) -> dict | None:
        """The record preserving a case item (:func:`evidence_dict`, purged or not), or None if never preserved."""
        with self.db.session() as s:
            case_id = s.scalar(select(CaseItem.case_id).where(CaseItem.id == case_item_id))
            if case_id is None:
                return None
            row = _by_source(s, case_id, f"case_item:{case_item_id}")
            return evidence_dict(row) if row is not None else None

    def list(
        self,
        *,
        case_id: int | None = None,
        account_id: str | None = None,
        include_purged: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict]:
        """The register (:func:`evidence_dict` rows, oldest first); purged records only when asked."""
        if not 1 <= limit <= MAX_LIMIT:
            raise SafeholdError("request.invalid_limit", f"limit must be between 1 and {MAX_LIMIT}.")
        if offset < 0:
            raise SafeholdError("request.invalid_offset", "offset must not be negative.")
        q = select(EvidenceItem)
        if case_id is not None:
            q = q.where(EvidenceItem.case_id == case_id)
        if account_id is not None:
            q = q.where(EvidenceItem.account_id == account_id)
        if not include_purged:
            q = q.where(EvidenceItem.purged_at.is_(None))
        with self.db.session() as s:
            return [evidence_dict(e) for e in s.scalars(q.order_by(EvidenceItem.id).limit(limit).offset(offset))]

    def get(self, evidence_id: int) -> dict:
        """One record (no content) with ``retention``: ``{jurisdiction, days, basis, base, expires_at (None while
        kept by an unfinished report or an open-ended hold), held, needed_by_report, holds, reports}``."""
        now = utcnow()
        with self.db.session() as s:
            row = _row(s, evidence_id)
            keep = retention.assess(s, [row], self.settings, now, self.reports)[row.id]
            return {**evidence_dict(row), "retention": keep.to_dict()}

    def read(self, evidence_id: int, actor: str, purpose: str) -> tuple[dict, bytes]:
        """Decrypt one record's content, verified against its SHA-256, MD5 and size, and record the access
        (``evidence.access``, with ``purpose``) before returning it. ``evidence.not_found`` (404),
        ``evidence.purged`` (410), ``evidence.corrupt`` (500)."""
        purpose = (purpose or "").strip()
        if not purpose:
            raise SafeholdError("evidence.purpose_required", "Say why the evidence is opened (purpose).", status=422)
        with self.db.session() as s:
            row = _row(s, evidence_id)
            _live(row)
            item = evidence_dict(row)
        data = self._open(item["sha256"], item["md5"], item["size"], f"evidence {evidence_id}")
        detail = {"purpose": purpose[:500], "case_id": item["case_id"], "sha256": item["sha256"], "size": item["size"]}
        self.audit.record(None, actor, "evidence.access", f"evidence:{evidence_id}", detail)
        return item, data

    def check_stored(self, *, shown: int = 100) -> dict:
        """Open every live record's content and check it against its SHA-256, MD5 and size, as every read does:
        what a restored backup (or a suspected bad disk) must prove before the register is trusted. Content is
        decrypted in memory only and never returned, so no ``evidence.access`` is recorded. Returns
        ``{"checked": n, "corrupt": k, "corrupt_ids": [the first ``shown`` ids]}``."""
        checked, corrupt, after, bad = 0, 0, 0, []
        while True:
            with self.db.session() as s:
                q = select(EvidenceItem).where(EvidenceItem.id > after, EvidenceItem.purged_at.is_(None))
                rows = [evidence_dict(e) for e in s.scalars(q.order_by(EvidenceItem.id).limit(BATCH))]
            if not rows:
                return {"checked": checked, "corrupt": corrupt, "corrupt_ids": bad}
            for row in rows:
                checked += 1
                try:
                    self._open(row["sha256"], row["md5"], row["size"], f"evidence {row['id']}")
                except SafeholdError:
                    corrupt += 1
                    if len(bad) < shown:
                        bad.append(row["id"])
            after = rows[-1]["id"]

    def _open(self, sha256: str, md5: str, size: int, what: str) -> bytes:
        """The blob's plaintext, or ``evidence.corrupt``: missing, undecryptable (wrong key or tampered) or not
        matching its hashes. The underlying error's message is logged by code only, never key material."""
        try:
            data = self.store.get(sha256)
        except SafeholdError as exc:
            log.error("evidence blob for %s unreadable: %s", what, exc.code)
            raise SafeholdError(
                "evidence.corrupt", f"The stored content of {what} cannot be read.", status=500
            ) from None
        if len(data) != size or hashlib.md5(data, usedforsecurity=False).hexdigest() != md5:
            log.error("evidence blob for %s does not match its MD5/size", what)
            raise SafeholdError(
                "evidence.corrupt", f"The stored content of {what} does not match its hashes.", status=500
            )
        return data

    # -------------------------------------------------------------------------------------------- holds

    def hold(
        self,
        *,
        case_id: int | None = None,
        account_id: str | None = None,
        reason: str,
        actor: str,
        reference: str | None = None,
        days: int | None = None,
    ) -> dict:
        """Place a legal hold on a case's or an account's evidence (exactly one of them): nothing it covers is
        purged until it is released or, with ``days``, lapses. Returns :func:`hold_dict`; audit ``evidence.hold``.
        Holding a case that has no evidence yet is allowed (a preservation request may come first)."""
        reason = (reason or "").strip()
        if (case_id is None) == (not account_id):
            raise SafeholdError("evidence.invalid_hold", "A hold covers either a case or an account: give one.")
        if not reason:
            raise SafeholdError("evidence.invalid_hold", "A hold needs a reason.")
        if days is not None and days < 1:
            raise SafeholdError("evidence.invalid_hold", "days must be at least 1 (or none: until released).")
        now = utcnow()
        with self.db.session() as s:
            if case_id is not None and s.get(Case, case_id) is None:
                raise NotFound("case.not_found", f"No case with id {case_id}.")
            _locks(s, retention=True)
            h = LegalHold(
                case_id=case_id,
                account_id=account_id,
                reason=reason,
                reference=(reference or None) and reference[:128],
                placed_by=actor[:128],
                placed_at=now,
                expires_at=now + dt.timedelta(days=days) if days else None,
            )
            s.add(h)
            s.flush()
            detail = {
                "case_id": case_id,
                "account_id": account_id,
                "reason": reason,
                "reference": h.reference,
                "expires_at": iso(h.expires_at),
            }
            self.audit.record(s, actor, "evidence.hold", f"hold:{h.id}", detail)
            return hold_dict(h, now)

    def release(self, hold_id: int, actor: str, note: str | None = None) -> dict:
        """End a hold; normal retention applies again (the next purge may then delete what it kept).
        ``evidence.hold_not_found`` (404), ``evidence.hold_released`` (409). Audit ``evidence.release``."""
        now = utcnow()
        with self.db.session() as s:
            _locks(s, retention=True)
            h = s.get(LegalHold, hold_id)
            if h is None:
                raise NotFound("evidence.hold_not_found", f"No legal hold with id {hold_id}.")
            if h.released_at is not None:
                raise Conflict("evidence.hold_released", f"Legal hold {hold_id} was already released.")
            h.released_at, h.released_by = now, actor[:128]
            detail = {"case_id": h.case_id, "account_id": h.account_id, "note": note, "reference": h.reference}
            self.audit.record(s, actor, "evidence.release", f"hold:{h.id}", detail)
            return hold_dict(h, now)

    def holds(self, *, active_only: bool = True) -> list[dict]:
        """Legal holds, oldest first (:func:`hold_dict`, with ``active``)."""
        now = utcnow()
        q = select(LegalHold)
        if active_only:
            q = q.where(*retention.active_holds(now))
        with self.db.session() as s:
            return [hold_dict(h, now) for h in s.scalars(q.order_by(LegalHold.id))]

    # ------------------------------------------------------------------------------------- retention

    def expired(self, now: dt.datetime | None = None, *, limit: int | None = None) -> list[dict]:
        """What a purge would delete at ``now``: live records past retention, no hold, no unfinished report.
        Each is :func:`evidence_dict` plus ``expires_at`` and ``retention``."""
        now = as_utc(now) or utcnow()
        out = []
        for row, keep in self._due(now, limit):
            out.append({**evidence_dict(row), "expires_at": iso(keep.expires_at), "retention": keep.to_dict()})
        return out

    def _due(self, now: dt.datetime, limit: int | None = None) -> list[tuple[EvidenceItem, retention.Retention]]:
        conditions = retention.candidates(self.settings, now, self.reports)
        out: list[tuple[EvidenceItem, retention.Retention]] = []
        after = 0
        while limit is None or len(out) < limit:
            with self.db.session() as s:
                q = select(EvidenceItem).where(EvidenceItem.id > after, *conditions).order_by(EvidenceItem.id)
                rows = list(s.scalars(q.limit(BATCH)))
                if not rows:
                    break
                decided = retention.assess(s, rows, self.settings, now, self.reports)
            out += [(r, decided[r.id]) for r in rows if decided[r.id].due(now)]
            after = rows[-1].id
        return out[:limit] if limit is not None else out

    def purge(self, actor: str, *, now: dt.datetime | None = None, dry_run: bool = False) -> dict:
        """Delete what has expired (see :mod:`safehold.evidence.retention`). Returns ``{"purged": n, "bytes": b,
        "dry_run": bool, "items": [proof, ...]}`` where a proof is ``{evidence_id, case_id, source_key, kind,
        sha256, md5, size, jurisdiction, preserved_at, expires_at, deleted_at, blob_deleted}`` — the detail of its
        ``evidence.purge`` audit record. Each record is re-checked under the retention lock before it goes (a hold
        placed meanwhile wins). ``dry_run`` lists without deleting or recording anything."""
        now = as_utc(now) or utcnow()
        due = self._due(now)
        if dry_run:
            items = [_proof(row, keep, None, blob_deleted=None) for row, keep in due]
            return {"purged": len(items), "bytes": sum(i["size"] for i in items), "dry_run": True, "items": items}
        items = []
        for row, _ in due:
            proof = self._purge_one(row.id, actor, now)
            if proof is None:
                continue
            if proof["blob_deleted"]:
                self._drop_blob(proof["sha256"])
            items.append(proof)
        if items:
            log.info("evidence purge: %d record(s), %d bytes", len(items), sum(i["size"] for i in items))
        return {"purged": len(items), "bytes": sum(i["size"] for i in items), "dry_run": False, "items": items}

    def _purge_one(self, evidence_id: int, actor: str, now: dt.datetime) -> dict | None:
        """Step 1 (see the module docstring): mark the record purged and write its proof, in one transaction."""
        with self.db.session() as s:
            sha = s.scalar(select(EvidenceItem.sha256).where(EvidenceItem.id == evidence_id))
            _locks(s, retention=True, sha256=sha)
            row = s.get(EvidenceItem, evidence_id, populate_existing=True, with_for_update=True)
            if row is None or row.purged_at is not None:
                return None  # purged by a concurrent run
            keep = retention.assess(s, [row], self.settings, now, self.reports)[row.id]
            if not keep.due(now):
                return None  # a hold or a report claimed it since it was listed
            others = s.scalar(
                select(func.count())
                .select_from(EvidenceItem)
                .where(EvidenceItem.sha256 == row.sha256, EvidenceItem.id != row.id, EvidenceItem.purged_at.is_(None))
            )
            deleted_at = utcnow()
            row.purged_at, row.purged_by = deleted_at, actor[:128]
            proof = _proof(row, keep, deleted_at, blob_deleted=not others)
            self.audit.record(s, actor, "evidence.purge", f"evidence:{row.id}", proof)
            return proof

    def _drop_blob(self, sha256: str) -> bool:
        """Step 2: delete the blob if no live record holds its content (re-checked under the content lock, so a
        record preserved since step 1 keeps it). A crash before this leaves an orphan for :meth:`sweep`."""
        with self.db.session() as s:
            _locks(s, sha256=sha256)
            live = s.scalar(
                select(func.count())
                .select_from(EvidenceItem)
                .where(EvidenceItem.sha256 == sha256, EvidenceItem.purged_at.is_(None))
            )
            return not live and self.store.delete(sha256)

    def sweep(self, actor: str = SYSTEM, *, older_than: dt.timedelta = dt.timedelta(hours=1)) -> int:
        """Delete files of the store that no live record claims: blobs left by a crash between a purge's two
        steps, or by a preservation that failed before its record was written, and stale temporary files.
        Files changed within ``older_than`` are left alone. Records ``evidence.sweep`` when it deleted anything;
        returns how many files went."""
        cutoff = (utcnow() - older_than).timestamp()
        deleted = 0
        with self.db.session() as s:
            _locks(s, sweep=True)
            live = {
                self.store.blob_name(sha)
                for sha in s.scalars(select(EvidenceItem.sha256).where(EvidenceItem.purged_at.is_(None)).distinct())
            }
            for path in self.store.files():
                if path.name in live or path.stat().st_mtime > cutoff:
                    continue
                path.unlink(missing_ok=True)
                deleted += 1
            if deleted:
                self.audit.record(s, actor, "evidence.sweep", "evidence:store", {"files_deleted": deleted})
        return deleted

    def purge_due(self, now: dt.datetime | None = None) -> int:
        """The scheduled purge (called from the upkeep loop): at most once an hour, as ``system:retention``;
        the orphan sweep at most once a day. Returns how many records were purged."""
        now = as_utc(now) or utcnow()
        with self._due_lock:
            if self._purged_at is not None and now - self._purged_at < PURGE_EVERY:
                return 0
            self._purged_at = now
            n = self.purge(SYSTEM, now=now)["purged"]
            if self._swept_at is None or now - self._swept_at >= SWEEP_EVERY:
                self._swept_at = now
                self.sweep(SYSTEM)
            return n

    # ------------------------------------------------------------------------------------------ export

    def export(
        self,
        *,
        case_id: int | None = None,
        report_id: int | None = None,
        actor: str,
        reason: str,
        dest_dir: Path | None = None,
        records: dict | None = None,
    ) -> dict:
        """Write the law-enforcement package for a case or a report (see :mod:`safehold.evidence.export`) into
        ``dest_dir`` (default ``settings.exports_dir``): the live evidence (a report's: its cases', its files' and
        its filed document), ``case.json`` (``{"cases": [full case record with audit history, ...]}``),
        ``report.json`` and ``report.xml`` (the document as filed, if any) for a report, and each of ``records``
        (name → JSON-able) as ``<name>.json``. Every file is decrypted and verified. Returns ``{"path", "sha256",
        "files", "bytes"}``; audit ``evidence.export`` (target ``case:<id>``/``report:<id>``, with the package's
        SHA-256 and the evidence ids). If that record cannot be written the package is deleted."""
        reason = (reason or "").strip()
        if (case_id is None) == (report_id is None):
            raise SafeholdError("evidence.invalid_export", "Export either a case or a report.", status=422)
        if not reason:
            raise SafeholdError("evidence.invalid_export", "Say why the package is made (reason).", status=422)
        extra = {check_record_name(str(name)): value for name, value in (records or {}).items()}
        with self.db.session() as s:
            if report_id is not None:
                report = self.reports.package(s, report_id)
                case_ids = report.case_ids
                rows = _report_evidence(s, report)
                out_records = {"case": {"cases": [_case_record(s, c) for c in sorted(case_ids)]}}
                out_records["report"] = report.record
                target, subject = f"report:{report_id}", {"report_id": report_id, "case_ids": sorted(case_ids)}
            else:
                if s.get(Case, case_id) is None:
                    raise NotFound("case.not_found", f"No case with id {case_id}.")
                rows = list(s.scalars(select(EvidenceItem).where(EvidenceItem.case_id == case_id)))
                out_records = {"case": {"cases": [_case_record(s, case_id)]}}
                report, target, subject = None, f"case:{case_id}", {"case_id": case_id}
        rows.sort(key=lambda e: e.id)
        live = [e for e in rows if e.purged_at is None]
        documents = {}
        if report is not None:
            doc = _filed_document(report, live)
            if doc is not None:
                documents["report.xml"] = self._open(doc.sha256, doc.md5, doc.size, f"evidence {doc.id}")
        files = [self._package_file(e) for e in live]
        created = utcnow()
        manifest = {
            "created_at": iso(created),
            "created_by": actor,
            "reason": reason,
            "platform": self.settings.platform_name,
            "subject": subject,
            "hash_algorithms": ["SHA-256", "MD5"],
            "purged": [_purged_entry(e) for e in rows if e.purged_at is not None],
        }
        stem = f"evidence-{target.replace(':', '-')}-{created.strftime('%Y%m%dT%H%M%SZ')}"
        package = write_package(
            dest_dir or self.settings.exports_dir,
            stem,
            files=files,
            records={**out_records, **extra},
            documents=documents,
            manifest=manifest,
        )
        detail = {
            "reason": reason,
            "package": Path(package["path"]).name,
            "package_sha256": package["sha256"],
            "files": package["files"],
            "bytes": package["bytes"],
            "evidence_ids": [e.id for e in live],
        }
        try:
            self.audit.record(None, actor, "evidence.export", target, detail)
        except BaseException:
            path = Path(package["path"])
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".sha256").unlink(missing_ok=True)
            raise
        return package

    def _package_file(self, e: EvidenceItem) -> PackageFile:
        return PackageFile(
            sha256=e.sha256,
            md5=e.md5,
            size=e.size,
            kind=e.kind,
            filename=e.filename,
            load=lambda: self._open(e.sha256, e.md5, e.size, f"evidence {e.id}"),
            entry={
                "evidence_ids": [e.id],
                "case_ids": [e.case_id] if e.case_id is not None else [],
                "source_keys": [e.source_key],
                "media_type": e.media_type,
                "preserved_at": iso(e.preserved_at),
                "preserved_by": e.preserved_by,
                "jurisdiction": e.jurisdiction,
            },
        )


# ------------------------------------------------------------------------------------------------ helpers


def _locks(s: Session, *, sweep: bool = False, retention: bool = False, sha256: str | None = None) -> None:
    """Take the evidence locks this transaction needs, always in the same order (see the module docstring).
    ``sweep``: the sweep lock exclusively; otherwise any content lock comes with the sweep lock shared."""
    if s.bind.dialect.name == "sqlite":
        # One writer at a time: a write statement takes SQLite's writer lock for the rest of the transaction.
        s.execute(text("UPDATE evidence_items SET id = id WHERE 0 = 1"))
        return
    lock = "SELECT pg_advisory_xact_lock(:c, :k)"
    if sweep:
        s.execute(text(lock), {"c": LOCK_CLASS, "k": SWEEP_KEY})
        return
    if sha256 is not None:
        s.execute(text("SELECT pg_advisory_xact_lock_shared(:c, :k)"), {"c": LOCK_CLASS, "k": SWEEP_KEY})
    if retention:
        s.execute(text(lock), {"c": LOCK_CLASS, "k": RETENTION_KEY})
    if sha256 is not None:
        # 28 bits of the digest, offset past the fixed keys: distinct contents rarely share a lock (harmless if so).
        s.execute(text(lock), {"c": LOCK_CLASS, "k": 2 + int(sha256[:7], 16)})


def _by_source(s: Session, case_id: int | None, source_key: str) -> EvidenceItem | None:
    q = select(EvidenceItem).where(EvidenceItem.source_key == source_key)
    q = q.where(EvidenceItem.case_id.is_(None) if case_id is None else EvidenceItem.case_id == case_id)
    return s.scalars(q.order_by(EvidenceItem.id).limit(1)).first()


def _row(s: Session, evidence_id: int) -> EvidenceItem:
    row = s.get(EvidenceItem, evidence_id)
    if row is None:
        raise NotFound("evidence.not_found", f"No evidence with id {evidence_id}.")
    return row


def _live(row: EvidenceItem) -> None:
    if row.purged_at is not None:
        raise SafeholdError(
            "evidence.purged", f"Evidence {row.id} was purged on {iso(row.purged_at)} ({row.purged_by}).", status=410
        )


def _proof(
    row: EvidenceItem, keep: retention.Retention, deleted_at: dt.datetime | None, *, blob_deleted: bool | None
) -> dict:
    return {
        "evidence_id": row.id,
        "case_id": row.case_id,
        "source_key": row.source_key,
        "kind": row.kind,
        "sha256": row.sha256,
        "md5": row.md5,
        "size": row.size,
        "jurisdiction": row.jurisdiction,
        "preserved_at": iso(row.preserved_at),
        "expires_at": iso(keep.expires_at),
        "deleted_at": iso(deleted_at),
        "blob_deleted": blob_deleted,
    }


def _purged_entry(e: EvidenceItem) -> dict:
    return {
        "evidence_id": e.id,
        "sha256": e.sha256,
        "md5": e.md5,
        "size": e.size,
        "purged_at": iso(e.purged_at),
        "purged_by": e.purged_by,
    }


def _case_record(s: Session, case_id: int) -> dict:
    """The case as law enforcement needs it: its fields, items, signals, decisions, actions and audit history."""
    case = s.get(Case, case_id)
    out = summary(case)
    for key, model, as_dict in (
        ("items", CaseItem, item_dict),
        ("signals", CaseSignal, signal_dict),
        ("decisions", CaseDecision, decision_dict),
        ("actions", CaseAction, action_dict),
    ):
        out[key] = [as_dict(r) for r in s.scalars(select(model).where(model.case_id == case_id).order_by(model.id))]
    history = select(AuditRecord).where(AuditRecord.target == f"case:{case_id}").order_by(AuditRecord.seq)
    out["history"] = [audit_dict(r) for r in s.scalars(history)]
    return out


def _report_evidence(s: Session, report: ReportPackage) -> list[EvidenceItem]:
    """A report's evidence: its cases' (except other reports' documents), its files' and its own documents."""
    own_document = f"report:{report.report_id}:document"
    rows = {e.id: e for e in s.scalars(select(EvidenceItem).where(EvidenceItem.id.in_(report.evidence_ids)))}
    docs = select(EvidenceItem).where(EvidenceItem.kind == "document", EvidenceItem.source_key.startswith(own_document))
    rows.update((e.id, e) for e in s.scalars(docs))
    if report.case_ids:
        for e in s.scalars(select(EvidenceItem).where(EvidenceItem.case_id.in_(report.case_ids))):
            if e.kind != "document" or e.source_key.startswith(own_document):
                rows[e.id] = e
    return list(rows.values())


def _filed_document(report: ReportPackage, live: list[EvidenceItem]) -> EvidenceItem | None:
    """The document as filed: the one whose SHA-256 the report recorded, else the latest preserved."""
    docs = [e for e in live if e.kind == "document" and e.source_key.startswith(f"report:{report.report_id}:document")]
    match = [e for e in docs if e.sha256 == report.document_sha256]
    return (match or docs or [None])[-1]
