"""The tamper-evident audit log: append, verify, export, list.

Each record is chained to the previous one: ``hash = SHA-256(canonical JSON of seq, at, actor, action, target,
detail, prev_hash)`` and ``prev_hash`` is the previous record's ``hash`` (64 zeros for the first). Editing a
record breaks its hash; deleting one leaves a gap in ``seq``; re-hashing an edited record breaks the next link.
The recipe is in docs/audit.md, with a short script an auditor can run on an export.

Appenders are serialised (PostgreSQL: ``LOCK TABLE audit_log IN EXCLUSIVE MODE``; SQLite: the database writer
lock, taken before the last record is read), and ``seq`` is last + 1, so the chain is gapless and linear even
with many processes writing. A service that has a transaction open passes its session, so a change and its
record commit together or not at all. Always record *last* in a transaction (after any other table lock) so
lock order is the same everywhere.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import IO

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from safehold.errors import SafeholdError
from safehold.store.db import Database
from safehold.store.models import AuditRecord, as_utc, utcnow

log = logging.getLogger(__name__)

GENESIS = "0" * 64
EXPORT_FORMATS = ("jsonl", "csv")
CSV_FIELDS = ("seq", "at", "actor", "action", "target", "detail", "prev_hash", "hash")
#: At most one ``auth.denied`` record per (actor, permission) per this many seconds; the rest are counted.
DENIED_EVERY = 60.0
#: Keys never written to a record's detail, whatever a caller passes (defence in depth: callers don't either).
SECRET_KEYS = frozenset({"token", "key", "secret", "secret_hash", "password", "authorization"})


def format_at(at: dt.datetime) -> str:
    """The timestamp as hashed and exported: UTC, microseconds, ``Z`` (``2026-11-28T01:02:03.000004Z``)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(value) -> str:
    """Canonical JSON: sorted keys, no spaces, ASCII only (non-ASCII as ``\\uXXXX``), no NaN/Infinity."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def record_hash(seq: int, at: str, actor: str, action: str, target: str | None, detail: dict, prev_hash: str) -> str:
    body = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "target": target,
        "detail": detail,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical(body).encode("ascii")).hexdigest()


def _clean_detail(detail: dict | None) -> dict:
    """A JSON round trip (what the database gives back is what was hashed), secrets dropped."""
    detail = {k: v for k, v in (detail or {}).items() if str(k).lower() not in SECRET_KEYS}
    try:
        return json.loads(canonical(detail))
    except (TypeError, ValueError) as exc:
        raise SafeholdError("audit.invalid_detail", f"Audit detail must be plain JSON: {exc}") from None


def to_dict(r: AuditRecord) -> dict:
    return {
        "seq": r.seq,
        "at": format_at(r.at),
        "actor": r.actor,
        "action": r.action,
        "target": r.target,
        "detail": r.detail if r.detail is not None else {},
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    }


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    #: The last record checked: write it down elsewhere (an anchor) to detect a later truncation of the tail.
    head_seq: int | None = None
    head_hash: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class AuditService:
    def __init__(self, db: Database):
        self.db = db
        self._denied: dict[tuple[str, str], tuple[float, int]] = {}
        self._denied_lock = threading.Lock()

    # ---------------------------------------------------------------- write

    def record(
        self,
        session: Session | None,
        actor: str | None,
        action: str,
        target: str | None = None,
        detail: dict | None = None,
    ) -> dict:
        """Append one record. With ``session`` it joins that transaction (committed with the change it records);
        with ``None`` it commits on its own. Returns the record as exported."""
        if session is None:
            with self.db.session() as s:
                return self.record(s, actor, action, target, detail)
        detail = _clean_detail(detail)
        actor = (actor or "system")[:128]
        target = (target or None) and target[:256]  # an empty target is null (CSV exports write null as empty)
        _lock(session)
        last = session.execute(select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1))
        row = last.first()
        seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
        at = utcnow()  # aware UTC, microseconds: what both backends store exactly
        at_text = format_at(at)
        rec = AuditRecord(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            target=target,
            detail=detail,
            prev_hash=prev,
            hash=record_hash(seq, at_text, actor, action, target, detail, prev),
        )
        session.add(rec)
        session.flush()
        return to_dict(rec)

    def denied(self, actor: str, permission: str, route: str) -> None:
        """Record a refused request (403), throttled: at most one record per actor and permission per
        ``DENIED_EVERY`` seconds; its ``suppressed`` counts the refusals not recorded since the previous one.
        Only authenticated callers get here (401s are not recorded: anyone can send those), so the memory is
        bounded by keys × permissions."""
        now = time.monotonic()
        key = (actor, permission)
        with self._denied_lock:
            last, suppressed = self._denied.get(key, (None, 0))
            if last is not None and now - last < DENIED_EVERY:
                self._denied[key] = (last, suppressed + 1)
                return
            self._denied[key] = (now, 0)
        try:
            detail = {"route": route, "suppressed": suppressed}
            self.record(None, actor, "auth.denied", f"permission:{permission}", detail)
        except Exception:  # the request is refused all the same; never turn a 403 into a 500
            log.exception("could not record auth.denied")

    # ----------------------------------------------------------------- read

    def list(self, limit: int = 100, after_seq: int = 0, action: str | None = None) -> list[dict]:
        """A page of records in seq order (keyset: pass the last seq as ``after_seq``); ``action`` filters
        exactly, or by prefix when it ends with ``.`` or ``*`` (``bank.`` → every bank action)."""
        if not 1 <= limit <= 1000:
            raise SafeholdError("request.invalid_limit", "limit must be between 1 and 1000.")
        q = select(AuditRecord).where(AuditRecord.seq > after_seq)
        if action:
            prefix = action.rstrip("*")
            if prefix.endswith("."):
                q = q.where(AuditRecord.action.startswith(prefix, autoescape=True))
            else:
                q = q.where(AuditRecord.action == action)
        with self.db.session() as s:
            return [to_dict(r) for r in s.scalars(q.order_by(AuditRecord.seq).limit(limit))]

    def _stream(self, since: dt.datetime | None = None, until: dt.datetime | None = None) -> Iterator[dict]:
        """Every record in seq order, in constant memory (keyset batches, one short transaction each)."""
        since, until = as_utc(since), as_utc(until)
        after = 0
        while True:
            q = select(AuditRecord).where(AuditRecord.seq > after)
            if since is not None:
                q = q.where(AuditRecord.at >= since)
            if until is not None:
                q = q.where(AuditRecord.at < until)
            with self.db.session() as s:
                rows = [to_dict(r) for r in s.scalars(q.order_by(AuditRecord.seq).limit(5000))]
            if not rows:
                return
            yield from rows
            after = rows[-1]["seq"]

    def verify(self) -> VerifyResult:
        """Walk the whole chain in seq order; stop at the first record that fails a check.

        ``first_bad_seq`` is the earliest record that cannot be trusted: an edited record (its hash is wrong), a
        missing record (a gap: the seq that is missing), or a record rewritten together with its hash (the next
        record no longer links to it: that record's seq).
        """
        return verify_records(self._stream())

    def export(
        self,
        stream: IO[bytes],
        fmt: str = "jsonl",
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> int:
        """Write records (with their hashes, so the chain can be re-verified offline) as JSON lines or CSV.
        ``since``/``until`` select by time (``since`` ≤ at < ``until``); the first exported record's
        ``prev_hash`` then links to the record before the window. Returns the number of records written."""
        if fmt not in EXPORT_FORMATS:
            raise SafeholdError("audit.invalid_format", f"Export format must be one of {', '.join(EXPORT_FORMATS)}.")
        text_out = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
        n = 0
        try:
            writer = csv.DictWriter(text_out, CSV_FIELDS, lineterminator="\n") if fmt == "csv" else None
            if writer:
                writer.writeheader()
            for rec in self._stream(since, until):
                if writer:
                    writer.writerow({**rec, "target": rec["target"] or "", "detail": canonical(rec["detail"])})
                else:
                    text_out.write(canonical(rec) + "\n")
                n += 1
        finally:
            text_out.flush()
            text_out.detach()
        return n


def verify_records(records, prev_hash: str = GENESIS, first_seq: int = 1) -> VerifyResult:
    """Check a sequence of exported records (dicts as :func:`to_dict` makes them); used by ``verify``."""
    expected, checked = first_seq, 0
    head_seq, head_hash = None, None
    for rec in records:
        seq = rec["seq"]
        if seq != expected:
            why = f"record {expected} is missing (next is {seq})" if seq > expected else f"record {seq} is out of order"
            return VerifyResult(False, checked, expected, why, head_seq, head_hash)
        recomputed = record_hash(
            seq, rec["at"], rec["actor"], rec["action"], rec["target"], rec["detail"], rec["prev_hash"]
        )
        if recomputed != rec["hash"]:
            return VerifyResult(
                False,
                checked,
                seq,
                f"record {seq} was altered: its hash does not match its content",
                head_seq,
                head_hash,
            )
        if rec["prev_hash"] != prev_hash:
            bad = seq - 1 if seq > first_seq else seq
            why = (
                f"record {seq} does not link to record {seq - 1}: record {seq - 1} was rewritten "
                f"(or record {seq}'s link was)"
                if seq > first_seq
                else f"record {seq} does not start the chain (prev_hash is not the expected {prev_hash[:12]}…)"
            )
            return VerifyResult(False, checked, bad, why, head_seq, head_hash)
        prev_hash, expected, checked = rec["hash"], seq + 1, checked + 1
        head_seq, head_hash = seq, rec["hash"]
    return VerifyResult(True, checked, None, None, head_seq, head_hash)


def _lock(s: Session) -> None:
    """Serialise appenders until this transaction ends, before the last record is read."""
    if s.bind.dialect.name == "postgresql":
        s.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
    else:
        # A write statement (even one touching no row) takes SQLite's writer lock for the rest of the
        # transaction, so no other writer can append between our read of the last record and our insert.
        s.execute(text("UPDATE audit_log SET seq = seq WHERE 0 = 1"))
