"""The relational model. Alembic migrations in ``store/migrations`` create exactly these tables.

Only hashes and their provenance are stored: media that did not match is never kept, scans leave counters only.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(at: dt.datetime | None) -> dt.datetime | None:
    """Aware UTC: naive means UTC, aware is converted (SQLite compares stored UTC wall-clock text)."""
    if at is None:
        return None
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def iso(at: dt.datetime | None) -> str | None:
    """ISO 8601 text for the API, or None."""
    return at.isoformat() if at is not None else None


class UTCDateTime(TypeDecorator):
    """Timezone-aware on every backend: SQLite stores naive values, so UTC is re-attached on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    pass


class Bank(Base):
    __tablename__ = "banks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16), default="block")  # block | allow
    #: What a match on this bank does beyond the scan verdict: ``none``, ``case`` (open a case for human
    #: review) or ``auto`` (open a case and run the automatic-match policies at once). Allow banks: ``none``.
    on_match: Mapped[str] = mapped_column(String(16), default="case")
    #: Match threshold by signal type (``{"pdq": 31}``); a type not listed uses its default threshold.
    thresholds: Mapped[dict] = mapped_column(JSON, default=dict)
    dihedral: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    entries: Mapped[list[BankEntry]] = relationship(back_populates="bank", passive_deletes=True)


class BankEntry(Base):
    __tablename__ = "bank_entries"
    __table_args__ = (
        UniqueConstraint("bank_id", "signal_type", "fingerprint", name="uq_entry_value"),
        Index("ix_entries_lookup", "signal_type", "fingerprint"),
        # A source's deletion (a tombstone) withdraws by external id: one index probe, not a table scan.
        Index("ix_entries_external", "bank_id", "external_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), index=True)
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(Text)
    #: ``value`` itself when short, else its SHA-256: a bounded key for uniqueness and exact lookups.
    fingerprint: Mapped[str] = mapped_column(String(128))
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    extra: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Disabled because its source withdrew it (a list's deletion), not by a person: the same source publishing
    #: the hash again enables it again; an entry a person disabled stays disabled.
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    added_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    #: Set while the entry is quarantined for matching far more than its peers (:mod:`safehold.sharing.quarantine`):
    #: its matches still open cases for review but run no automatic action. ``quarantine_reason`` holds the rule's
    #: numbers; ``quarantine_released_at`` the last release by an operator (the cool-down starts there).
    quarantined_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    quarantine_reason: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    quarantine_released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    bank: Mapped[Bank] = relationship(back_populates="entries")


class BankEntryPublisher(Base):
    """Who publishes a bank entry, under which id: one row per (entry, publisher, external id).

    ``publisher`` is ``exchange:<exchange id>`` for an exchange (never confused with a free-form import source,
    even one spelled like the exchange's name) or ``source:<source>`` for an import or add with a ``source``.
    A publisher's deletion removes its rows; the entry is withdrawn only when no publisher is left, so a hash
    still listed under another id or by another source stays on. ``external_id`` is ``""`` when there is none
    (so the unique key holds).
    """

    __tablename__ = "bank_entry_publishers"
    __table_args__ = (
        UniqueConstraint("entry_id", "publisher", "external_id", name="uq_entry_publisher"),
        Index("ix_entry_publishers_lookup", "publisher", "external_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("bank_entries.id", ondelete="CASCADE"))
    publisher: Mapped[str] = mapped_column(String(80))
    external_id: Mapped[str] = mapped_column(String(128), default="")


class EntryMatchCount(Base):
    """Matches of one bank entry in one UTC hour, added by the counters flush (never a write per scan). No foreign
    key: a count flushed after its entry was deleted is kept (and pruned with the rest), never a failed flush."""

    __tablename__ = "entry_match_counts"
    __table_args__ = (UniqueConstraint("hour", "entry_id", name="uq_entry_match_count"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hour: Mapped[str] = mapped_column(String(13))  # ISO date and hour, UTC: 2026-12-03T14
    entry_id: Mapped[int] = mapped_column(BigInteger, index=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    first_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class IndexChange(Base):
    """Append-only change log the in-memory matching indexes replay, so no change needs a full rebuild.

    Self-contained (carries the value and, since migration 0009, the bank) so replay needs no join, even after
    the entry is gone.
    """

    __tablename__ = "index_changes"
    #: A peer's feed reads one bank's changes in order (see :mod:`safehold.sharing.peers`).
    __table_args__ = (Index("ix_index_changes_bank_seq", "bank_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    op: Mapped[str] = mapped_column(String(8))  # add | remove | banks
    entry_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: The entry's bank (no foreign key: the log outlives a deleted bank), so a peer's feed reads the changes of
    #: the banks shared with it alone (``None`` for ``banks`` rows and for rows written before migration 0009).
    bank_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    signal_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    value: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ImportJob(Base):
    """A bulk import into a bank, written in batches: what it imports and how far it got.

    Every batch commits its entries with ``rows_done`` (the records of the file read so far), so re-running the
    same import (same bank, same file bytes, same format and options) after a crash continues after the last
    committed batch. ``status``: ``adding`` (entries), then ``withdrawing`` (the file's tombstones, a second pass
    with ``rows_done`` counted again from 0) when it has any, then ``done``.
    """

    __tablename__ = "import_jobs"
    __table_args__ = (Index("ix_import_jobs_file", "bank_id", "sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"))
    source_name: Mapped[str | None] = mapped_column(String(255), nullable=True)  # the file's name, if any
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(16))
    #: Canonical JSON of the options that change what is written (signal type of a list, source, skip_invalid).
    options: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="adding")  # adding | withdrawing | done
    rows_total: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    added: Mapped[int] = mapped_column(BigInteger, default=0)
    duplicates: Mapped[int] = mapped_column(BigInteger, default=0)
    withdrawn: Mapped[int] = mapped_column(BigInteger, default=0)
    batches: Mapped[int] = mapped_column(Integer, default=0)
    resumes: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    #: Public, non-secret part shown in listings (``sh_XXXXXXXX``); the secret itself is never stored.
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ScanCount(Base):
    """Aggregate scan counters: the only trace a scan of non-matching media leaves."""

    __tablename__ = "scan_counts"
    __table_args__ = (UniqueConstraint("day", "channel", "media", "verdict", name="uq_scan_count"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[str] = mapped_column(String(10))  # ISO date, UTC
    channel: Mapped[str] = mapped_column(String(16))  # api | cli
    media: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditRecord(Base):
    """One line of the tamper-evident audit log (see :mod:`safehold.audit` and docs/audit.md).

    ``seq`` is assigned by the writer (last + 1, under a lock), not by a database sequence: a sequence leaves
    gaps when a transaction rolls back, and a gap is how a deleted record is detected.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_action_seq", "action", "seq"),
        Index("ix_audit_target_seq", "target", "seq"),  # a case's history, an item's reveals
        Index("ix_audit_actor_action_at", "actor", "action", "at"),  # a reviewer's exposure today
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(256), nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


# ------------------------------------------------------------------ staff, sessions, console settings


class User(Base):
    """A member of staff who logs in to the console (reviewers, admins, auditors). Platforms use API keys."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    role: Mapped[str] = mapped_column(String(32))
    #: argon2id encoded hash (parameters and salt included); never the password.
    password_hash: Mapped[str] = mapped_column(String(256))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The reviewer's own wellness choices; they may only tighten the admin defaults (see review.wellness).
    wellness: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    password_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: The TOTP secret, sealed with the instance key (store/sealing.py); ``None`` until enrolled.
    totp_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: A secret shown for enrolment but not yet confirmed with a code (sealed too).
    totp_pending: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The last 30-second step whose code was accepted: that code, and every older one, is refused.
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    totp_enrolled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class UserSession(Base):
    """A console log-in. The cookie carries a random token; only its SHA-256 is stored (``id``)."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)


class AppSetting(Base):
    """Operator settings changed at run time from the console or API (wellness defaults, SLA hours, ...)."""

    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


# ------------------------------------------------------------------------------------------- cases


class Case(Base):
    """One subject under review: a content item (and the account behind it), or an account alone.

    Open detections about the same subject update the open case instead of opening another. ``subject_key``
    is ``content:<platform content id>`` or ``account:<platform account id>``; ``open_key`` equals it while the
    case is not closed and is null afterwards, so the unique constraint allows one open case per subject.
    """

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_queue", "status", "priority"),
        Index("ix_cases_account", "account_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subject_key: Mapped[str] = mapped_column(String(200))
    open_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    content_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    account_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: What opened it: hash_match, classifier, grooming, solicitation, user_report, livestream, event.
    source: Mapped[str] = mapped_column(String(32))
    #: Queue type: the source family the console queues by (media, text, report, live, account).
    queue: Mapped[str] = mapped_column(String(32), default="media")
    #: open → (claimed while open) → awaiting_confirmation | escalated → closed.
    status: Mapped[str] = mapped_column(String(32), default="open")
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    severity: Mapped[float] = mapped_column(default=0.0)
    confidence: Mapped[float] = mapped_column(default=0.0)
    #: severity × confidence × age factor, refreshed as the case ages; the queue's sort key.
    priority: Mapped[float] = mapped_column(default=0.0)
    band: Mapped[str] = mapped_column(String(4), default="P4")  # P0 (a child at risk, by rule) .. P4
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    known_match: Mapped[bool] = mapped_column(Boolean, default=False)  # a block-bank hash matched
    metadata_: Mapped[dict] = mapped_column("metadata", JSON, default=dict)  # platform metadata, IP events
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claim_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(32), nullable=True)
    classification: Mapped[str | None] = mapped_column(String(32), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    confirmed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CaseItem(Base):
    """A content item in a case. Media bytes live encrypted in the media vault under ``media_key``."""

    __tablename__ = "case_items"
    __table_args__ = (Index("ix_case_items_content", "content_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    content_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    media_type: Mapped[str | None] = mapped_column(String(16), nullable=True)  # image | video | text | None
    media_key: Mapped[str | None] = mapped_column(String(64), nullable=True)  # SHA-256 of the plaintext
    filename: Mapped[str | None] = mapped_column(String(256), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    uploaded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    metadata_: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CaseSignal(Base):
    """One piece of evidence for a case: a hash match, a classifier score, a user report, an alert."""

    __tablename__ = "case_signals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("case_items.id", ondelete="CASCADE"), nullable=True)
    source: Mapped[str] = mapped_column(String(32))
    signal_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    value: Mapped[str | None] = mapped_column(Text, nullable=True)
    bank: Mapped[str | None] = mapped_column(String(64), nullable=True)
    entry_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    confidence: Mapped[float] = mapped_column(default=0.0)
    distance: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CaseDecision(Base):
    """Every decision and second-review confirmation on a case, in order (the case row holds the latest)."""

    __tablename__ = "case_decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # decide | confirm | overturn
    decision: Mapped[str] = mapped_column(String(32))
    classification: Mapped[str | None] = mapped_column(String(32), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IngestedEvent(Base):
    """Idempotency record of ``POST /v1/events``: the same key with the same body answers the same result."""

    __tablename__ = "ingested_events"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # "<api key prefix>:<idempotency key>"
    body_sha256: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


# ----------------------------------------------------------------------------------------- actions


class Policy(Base):
    """Maps a trigger to platform actions. ``trigger`` is ``decision`` (``match`` holds the decision label,
    e.g. ``csam``) or ``auto`` (a detection on its own: ``match`` holds conditions such as source, bank,
    min_confidence)."""

    __tablename__ = "policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    trigger: Mapped[str] = mapped_column(String(16))
    match: Mapped[dict] = mapped_column(JSON, default=dict)
    actions: Mapped[list] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class CaseAction(Base):
    """An action taken on a case's subject (remove content, suspend account, ...), by a policy or a person."""

    __tablename__ = "case_actions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    policy: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    #: Unique per (case, policy, kind): the same decision never fires the same action twice.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Internal kinds (``preserve_evidence``, ``open_report_draft``) are carried out by a follow-up worker that
    #: reads them like an outbox; it sets this when done, so each is carried out at least once.
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(Text)
    #: The signing secret, encrypted with the instance key (see evidence.keys); never shown after creation.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    #: Action kinds sent to this receiver; empty means every kind.
    events: Mapped[list] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """The outbox: one row per (action, webhook). Delivered at least once: a worker leases a row, posts it,
    and marks it delivered; a lease that expires (the worker died) makes the row due again."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("case_actions.id", ondelete="SET NULL"), nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# ---------------------------------------------------------------------------------------- evidence


class EvidenceItem(Base):
    """One preserved piece of evidence: a file, a text, or a record (a filed report's document). The bytes live
    encrypted in the evidence store under ``sha256`` (content-addressed: two records of one file share a blob).

    ``source_key`` says what was preserved (``case_item:<id>``, ``report:<id>:document``); with ``case_id`` it
    is unique, so preserving the same thing twice records it once. A purged record keeps its row (hashes,
    dates, who purged it): the proof that the material existed and was deleted on schedule.
    """

    __tablename__ = "evidence_items"
    __table_args__ = (
        UniqueConstraint("case_id", "source_key", name="uq_evidence_source"),
        Index("ix_evidence_sha256", "sha256"),
        Index("ix_evidence_live", "purged_at", "preserved_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), nullable=True, index=True)
    account_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    source_key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # media | text | document
    sha256: Mapped[str] = mapped_column(String(64))
    md5: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(256), nullable=True)
    media_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Whose retention rules apply (``US``, ``EU``, ...): see evidence.retention.
    jurisdiction: Mapped[str] = mapped_column(String(16))
    metadata_: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    preserved_by: Mapped[str] = mapped_column(String(128))
    preserved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    purged_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LegalHold(Base):
    """Keeps a case's (or an account's) evidence past its retention, e.g. for a law-enforcement preservation
    request. Exactly one of ``case_id`` and ``account_id`` is set. Released holds stay, for the record."""

    __tablename__ = "legal_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), nullable=True, index=True)
    account_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    reason: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(128), nullable=True)  # the request's number
    placed_by: Mapped[str] = mapped_column(String(128))
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# --------------------------------------------------------------------------------------- reporting


class Report(Base):
    """A report to an authority (NCMEC's CyberTipline first): one per incident, bundling the cases of one
    account (or one content item when there is no account).

    ``status``: draft → submitted (filing in progress) → finished; or failed (a terminal error: fix and submit
    again) or retracted. ``open_key`` (``<authority>:<incident_key>``) is set while the report is a draft, so
    an incident has at most one draft. ``step`` and the lease fields make filing resumable: each step's
    outcome is written before the next begins, and only the lease holder files.
    """

    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_status", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    authority: Mapped[str] = mapped_column(String(32), default="ncmec")
    incident_key: Mapped[str] = mapped_column(String(200))
    open_key: Mapped[str | None] = mapped_column(String(240), unique=True, nullable=True)
    account_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    #: The editable content: incident type, annotations, people, free text (see reporting.drafts).
    fields: Mapped[dict] = mapped_column(JSON, default=dict)
    external_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # NCMEC's report id
    environment: Mapped[str | None] = mapped_column(String(16), nullable=True)  # test | production
    step: Mapped[str] = mapped_column(String(16), default="")
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    document_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the XML as filed
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    submitted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    retracted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    retracted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def record(self) -> dict:
        """What the report is and who moved it where, as JSON values: the part of its record shared by the
        API and the law-enforcement export (filing progress is added by the reporting service)."""
        return {
            "id": self.id,
            "authority": self.authority,
            "incident_key": self.incident_key,
            "account_id": self.account_id,
            "status": self.status,
            "fields": self.fields or {},
            "external_id": self.external_id,
            "environment": self.environment,
            "document_sha256": self.document_sha256,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "submitted_by": self.submitted_by,
            "submitted_at": iso(self.submitted_at),
            "finished_at": iso(self.finished_at),
            "retracted_by": self.retracted_by,
            "retracted_at": iso(self.retracted_at),
        }


class ReportCase(Base):
    """The cases a report bundles."""

    __tablename__ = "report_cases"

    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True, index=True)


class ReportFile(Base):
    """A file a report carries, and how far its upload got (NCMEC ``fileId``, details sent)."""

    __tablename__ = "report_files"
    __table_args__ = (UniqueConstraint("report_id", "case_item_id", name="uq_report_file"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    case_item_id: Mapped[int | None] = mapped_column(ForeignKey("case_items.id", ondelete="SET NULL"), nullable=True)
    evidence_id: Mapped[int | None] = mapped_column(ForeignKey("evidence_items.id", ondelete="SET NULL"), nullable=True)
    sha256: Mapped[str] = mapped_column(String(64))
    md5: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str | None] = mapped_column(String(256), nullable=True)
    #: Reviewer's choices: fileAnnotations (list), relevance, publiclyAvailable.
    fields: Mapped[dict] = mapped_column(JSON, default=dict)
    #: From the audit log at filing time (never a default): whether, by whom and when staff saw it.
    viewed_by_esp: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    exif_viewed_by_esp: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    viewed: Mapped[dict] = mapped_column(JSON, default=dict)
    file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # NCMEC's
    upload_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    uploaded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    described_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def record(self) -> dict:
        """The file's identity and upload progress as JSON values (shared by the API and the export)."""
        return {
            "id": self.id,
            "case_item_id": self.case_item_id,
            "evidence_id": self.evidence_id,
            "sha256": self.sha256,
            "md5": self.md5,
            "filename": self.filename,
            "fields": self.fields or {},
            "file_id": self.file_id,
            "uploaded_at": iso(self.uploaded_at),
            "described_at": iso(self.described_at),
        }


# ------------------------------------------------------------------------------------------- text safety


class TermListRow(Base):
    """An operator's term list (see :mod:`safehold.rules.terms`): which version is active, and whether it is on.

    A stored list named like a bundled one (``starter``, ``grooming``) replaces it; ``enabled = False`` on such a
    row switches the bundled list off. Every version ever imported stays in ``term_list_versions``.
    """

    __tablename__ = "term_lists"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class TermListVersion(Base):
    """One imported version of a term list, kept as the CSV it was read from (so it can be exported and rolled
    back to exactly)."""

    __tablename__ = "term_list_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_term_list_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    csv: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    terms: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Conversation(Base):
    """A conversation scored as its messages arrive (Principle 3). Only the scorer's bounded state is kept —
    stage strengths, age signals and a few evidence excerpts — never the transcript."""

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_score", "score"), Index("ix_conversations_updated", "updated_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)  # the platform's conversation id
    state: Mapped[dict] = mapped_column(JSON, default=dict)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[float] = mapped_column(default=0.0)
    level: Mapped[str] = mapped_column(String(8), default="none")
    alert: Mapped[bool] = mapped_column(Boolean, default=False)
    risk_author: Mapped[str | None] = mapped_column(String(128), nullable=True)
    at_risk_author: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: The case an alert opened, and the score it last carried there (a case is updated only as risk rises).
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), nullable=True)
    case_score: Mapped[float | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ConversationMessage(Base):
    """The ids of messages already scored, so a platform's retry never counts a message twice. Ids only."""

    __tablename__ = "conversation_messages"

    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SearchCount(Base):
    """Aggregate search-guard counters (Principle 6): never a query, never a user. ``kind`` is ``check``,
    ``suggestion`` (removed from autocomplete) or ``help_click``; empty strings stand for "none"."""

    __tablename__ = "search_counts"
    __table_args__ = (
        UniqueConstraint("day", "kind", "action", "category", "variant", "locale", name="uq_search_count"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[str] = mapped_column(String(10))  # ISO date, UTC
    kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(32))
    locale: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class ExchangeRow(Base):
    """A configured hash exchange (Principle 10): which source feeds which bank, how often, and how far it got.

    ``credentials`` is the exchange's secrets as sealed JSON (``Sealer.seal_text``), never shown back. ``checkpoint``
    is the exchange's own resume point, stored in the same transaction as the entries it fetched. ``lease_*`` keep
    two processes from fetching the same exchange at once.
    """

    __tablename__ = "exchanges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    credentials: Mapped[str | None] = mapped_column(Text, nullable=True)
    every_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    checkpoint: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    next_fetch_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_fetch_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Rounds failed in a row (the retry back-off grows with it; a success resets it).
    failures: Mapped[int] = mapped_column(Integer, default=0)
    #: Running totals over every fetch: records read, entries added, entries withdrawn, records malformed.
    fetched_total: Mapped[int] = mapped_column(BigInteger, default=0)
    added_total: Mapped[int] = mapped_column(BigInteger, default=0)
    removed_total: Mapped[int] = mapped_column(BigInteger, default=0)
    malformed_total: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Hashes of types no signal type reads, by the source's type name: ``{"PHOTODNA": 1200}``.
    unknown_types: Mapped[dict] = mapped_column(JSON, default=dict)
    #: The last round's figures (``{"fetched": .., "added": .., "removed": .., "seconds": ..}``).
    last_round: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ExchangeUnknownSignal(Base):
    """A fetched hash of a type no installed signal type reads: kept (not dropped) so a plug-in added later can
    take it, and counted in the exchange's status."""

    __tablename__ = "exchange_unknown_signals"
    __table_args__ = (UniqueConstraint("exchange_id", "signal_type", "fingerprint", name="uq_unknown_signal"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exchange_id: Mapped[int] = mapped_column(ForeignKey("exchanges.id", ondelete="CASCADE"), index=True)
    signal_type: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(128))
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ExchangeFeedback(Base):
    """An opinion for an exchange on one of its entries, derived from a closed case that matched the entry: queued,
    then sent by the ``feedback.deliver`` task (leased, retried with back-off) — the outbox of feedback.

    One row per (exchange, entry, verdict): deciding another case the same way changes nothing, deciding one the
    other way queues the other verdict (a correction). ``status``: queued → sent, or failed (after the last
    attempt, or at once when the source refused for good; an operator may retry it), or superseded (an opposite
    verdict was queued before this one was sent: a stale opinion is never sent), or unsupported (the exchange
    takes no feedback, or is gone).
    """

    __tablename__ = "exchange_feedback"
    __table_args__ = (
        UniqueConstraint("exchange_id", "entry_id", "verdict", name="uq_feedback_opinion"),
        Index("ix_feedback_due", "status", "next_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: ``None`` once the exchange is deleted: the history of what we told a source outlives its configuration.
    exchange_id: Mapped[int | None] = mapped_column(
        ForeignKey("exchanges.id", ondelete="SET NULL"), index=True, nullable=True
    )
    #: The exchange's name when the opinion was queued, for listings after the exchange is deleted.
    exchange_name: Mapped[str] = mapped_column(String(64))
    #: The bank entry it is about (kept if the entry is withdrawn later: the opinion still stands).
    entry_id: Mapped[int] = mapped_column(BigInteger, index=True)
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(Text)
    verdict: Mapped[str] = mapped_column(String(16))  # true_positive | false_positive
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The (latest) case whose decision gave this verdict.
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ExchangeContribution(Base):
    """A confirmed case's hashes sent to an exchange (never media): one row per (case, exchange), so a repeated
    request sends nothing twice. ``status``: sent, or failed (a retryable failure may be sent again)."""

    __tablename__ = "exchange_contributions"
    __table_args__ = (UniqueConstraint("case_id", "exchange_id", name="uq_contribution"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    #: ``None`` once the exchange is deleted: what a case shared, and with whom, outlives the configuration.
    exchange_id: Mapped[int | None] = mapped_column(
        ForeignKey("exchanges.id", ondelete="SET NULL"), index=True, nullable=True
    )
    #: The exchange's name when the hashes were sent, for listings after the exchange is deleted.
    exchange_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    hashes: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    last_error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Peer(Base):
    """Another Safehold instance this one shares banks with (see :mod:`safehold.sharing.peers`).

    It calls with an API key of role ``peer`` (``key_prefix``; the key's secret is never stored here).
    ``public_key`` is the peer's own Ed25519 key (base64) its contributions must be signed with; contributions land
    in ``contributions_bank_id``, disabled until an operator enables them, and are refused while it is unset.
    """

    __tablename__ = "peers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(32), unique=True)
    public_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    contributions_bank_id: Mapped[int | None] = mapped_column(
        ForeignKey("banks.id", ondelete="SET NULL"), nullable=True
    )
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PeerShare(Base):
    """A bank shared with one peer, or with every peer (``peer_id`` NULL)."""

    __tablename__ = "peer_shares"
    __table_args__ = (UniqueConstraint("bank_id", "peer_id", name="uq_peer_share"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), index=True)
    peer_id: Mapped[int | None] = mapped_column(ForeignKey("peers.id", ondelete="CASCADE"), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PeerFeedback(Base):
    """A peer's opinion on one of our entries: its latest one per entry replaces the earlier."""

    __tablename__ = "peer_feedback"
    __table_args__ = (UniqueConstraint("peer_id", "entry_id", name="uq_peer_feedback"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id", ondelete="CASCADE"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("bank_entries.id", ondelete="CASCADE"), index=True)
    verdict: Mapped[str] = mapped_column(String(16))  # true_positive | false_positive
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SeenHash(Base):
    """A hash of content Safehold scanned, kept (opt-in, ``SAFEHOLD_SEEN_HASHES``) for its retention so that an
    entry arriving in a bank later is matched against recent uploads (docs/sharing.md, "Re-matching past
    uploads"). Never the media: the hash as raw bytes (PDQ: 32), its signal type and the subject's ids.

    No index but the key and ``seen_at``: re-matching reads the table in key order, the purge by age.
    """

    __tablename__ = "seen_hashes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    content_id: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


# ---------------------------------------------------------------------------------------------------------------
# Issue [10]: classifiers for new material (P2) and safety by design for children (P7). Tables in migration 0010.
# ---------------------------------------------------------------------------------------------------------------


class AccountAgeSignal(Base):
    """One thing known about how old an account's holder is: a self-declared birth date, an age-assurance
    provider's result, an age stated in chat, a reviewer's finding or the platform's own band. Kept, never
    overwritten: the resolved band (:class:`AccountAge`) says which signal and rule won (safehold.safety.ages)."""

    __tablename__ = "account_age_signals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(128), index=True)
    #: declared | assurance | chat | reviewer | platform
    source: Mapped[str] = mapped_column(String(16))
    #: The band this signal alone says (agebands.BANDS).
    band: Mapped[str] = mapped_column(String(8))
    age: Mapped[float | None] = mapped_column(Float, nullable=True)
    birth_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    confidence: Mapped[float] = mapped_column(Float)
    #: How the provider knew (estimation, verification, document, …) or the chat pattern; free text.
    method: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: The assurance provider, the conversation or the case the signal comes from.
    provider: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AccountAge(Base):
    """An account's resolved age band and the rule that resolved it, rewritten with each new signal; what the
    contact, media and classifier policies read (one row per account that has any signal)."""

    __tablename__ = "account_ages"

    account_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    band: Mapped[str] = mapped_column(String(8), index=True)
    rule: Mapped[str] = mapped_column(String(64))
    signal_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    resolved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    #: When a signal's band changes by the passing of time (a birthday crossing 13, 16 or 18): the band is
    #: resolved again on the first read after it. None: no signal ages (bands only).
    changes_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    #: The band used for the account as the *sender* of contact (the oldest credible band; see
    #: ``safehold.safety.ages``), and whether a younger claim contradicts an adult signal (a grooming red flag).
    sender_band: Mapped[str] = mapped_column(String(8), default="unknown", server_default="unknown")
    age_conflict: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


# --- [10] classifier thresholds and labelled outcomes (precision per classifier and threshold) ------------------


class ClassifierPolicy(Base):
    """The operator's policy for one classifier's hits, changed at run time (safehold.pipeline.classifier_policy).
    A column left ``NULL`` takes the classifier's default; a classifier without a row runs on its defaults."""

    __tablename__ = "classifier_policies"

    classifier: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Overrides the classifier's own threshold: a score at or above it is a hit.
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: A hit opens a case only with an age signal (a minor uploads, is depicted, receives, is being groomed).
    needs_age_signal: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    #: What a hit that needs an age signal and has none becomes: ``ignore`` (a score noted, no case) or ``case``.
    alone: Mapped[str | None] = mapped_column(String(8), nullable=True)
    #: The automatic (``auto``) action policies run for a hit only when this is set, explicitly.
    auto_action: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The category a hit combined with an age signal gets (``csam``: apparent CSAM not yet classified).
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ClassifierOutcome(Base):
    """A reviewer's verdict on one classifier hit: written when a decision closes the case that holds it (in the
    decision's transaction), rewritten if a later decision closes it again. Precision per threshold is counted
    from these rows (safehold.review.outcomes)."""

    __tablename__ = "classifier_outcomes"
    __table_args__ = (Index("ix_classifier_outcomes_score", "classifier", "label", "score"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    signal_id: Mapped[int] = mapped_column(ForeignKey("case_signals.id", ondelete="CASCADE"), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    classifier: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    #: The threshold in force when the hit was made.
    threshold: Mapped[float] = mapped_column(Float)
    #: true_positive | false_positive (cases.taxonomy.MATCH_OUTCOMES of the decision)
    outcome: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- [10] external classification services and their job queue ---------------------------------------------------


class ScreeningServiceRow(Base):
    """An external classification service an admin configured (safehold.screening.service): its type, own
    settings, credentials sealed with the instance key (the name as associated data, never shown), an optional
    threshold override, its counters and last error, and when it may next be called (its rate limit, or the
    ``Retry-After`` it asked for)."""

    __tablename__ = "screening_services"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    credentials: Mapped[str | None] = mapped_column(Text, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    next_call_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sent_total: Mapped[int] = mapped_column(BigInteger, default=0)
    hits_total: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_total: Mapped[int] = mapped_column(BigInteger, default=0)
    skipped_total: Mapped[int] = mapped_column(BigInteger, default=0)
    last_ok_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ScreeningJob(Base):
    """One image waiting to be sent to one screening service: the media sealed (never in clear, cleared once the
    job is done or failed), the subject it came with, attempts and back-off, a lease (at-least-once: a crashed
    worker's job is taken again when its lease lapses). ``status``: queued → done | failed."""

    __tablename__ = "screening_jobs"
    __table_args__ = (Index("ix_screening_jobs_due", "status", "next_at"), Index("ix_screening_jobs_md5", "md5"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("screening_services.id", ondelete="CASCADE"), index=True)
    content_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    account_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    content_type: Mapped[str] = mapped_column(String(64))
    pdq: Mapped[str | None] = mapped_column(String(64), nullable=True)
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: The submission's age signal, for the pipeline's rule when the result comes back: ``{"reasons": [...],
    #: "context": {...}}`` (Submission.age_reasons and age_context); null: none.
    age: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    media: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    media_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(36), nullable=True)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), nullable=True)
    last_error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# --- [10] contact policy -----------------------------------------------------------------------------------------


class ContactPolicy(Base):
    """One saved version of the operator's contact policy (safehold.safety.contact): the JSON as validated, who
    saved it and when. The newest row marked ``active`` is the policy every process uses; older rows are the
    history (a reset saves the built-in default as a new version)."""

    __tablename__ = "contact_policies"

    #: The policy version, increasing.
    version: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    policy: Mapped[dict] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


# --- [10] safety prompts -----------------------------------------------------------------------------------------


class SafetyPrompt(Base):
    """An operator's version of one safety prompt in one locale, over the bundled text (safehold.safety.prompts);
    ``help`` ``None`` keeps the bundled help resources."""

    __tablename__ = "safety_prompts"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    locale: Mapped[str] = mapped_column(String(35), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    help: Mapped[list | None] = mapped_column(JSON, nullable=True)
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


# ---------------------------------------------------------------------------------------------------------------
# [11] Transparency (Principle 11): daily facts and stored reports (migration 0011)
# ---------------------------------------------------------------------------------------------------------------

# --- [11] daily facts and their refresh state (safehold.transparency.engine) -------------------------------------


class TransparencyFact(Base):
    """One daily fact of the transparency figures: ``value`` items of ``family`` on ``day`` with these dimensions
    (``dims``: canonical JSON of the sorted name/value pairs, so it can sit in the unique key), and ``total`` when
    the fact carries a sum (seconds). Rolled up from the records, never written by hand: re-rolling a day replaces
    its rows (safehold.transparency.engine)."""

    __tablename__ = "transparency_facts"
    __table_args__ = (
        UniqueConstraint("day", "family", "dims", name="uq_transparency_fact"),  # a refresh replaces days
        # A figure sums one kind of fact over days: covering, so the sum reads the index alone.
        Index("ix_transparency_facts_family_day", "family", "day", "dims", "value", "total"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[dt.date] = mapped_column(Date)
    family: Mapped[str] = mapped_column(String(64))
    dims: Mapped[str] = mapped_column(String(1024))
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[float] = mapped_column(Float, default=0.0)


class TransparencyRefresh(Base):
    """When each fact family was last rolled up (its row is also the lock two refreshers take in turn)."""

    __tablename__ = "transparency_refresh"

    family: Mapped[str] = mapped_column(String(64), primary_key=True)
    refreshed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# The timestamps the facts of one day are read through: a day's roll-up is an index range, not a table scan.
Index("ix_cases_opened_at", Case.opened_at)
# Covering: the cases open at the end of a day (closed later or not at all) by band, source and queue, read from
# the index alone (the backlog every refresh counts).
Index("ix_cases_closed_at", Case.closed_at, Case.opened_at, Case.band, Case.source, Case.queue)
Index("ix_cases_due_at", Case.due_at)
Index("ix_case_decisions_at", CaseDecision.at)
Index("ix_case_signals_at", CaseSignal.at)
Index("ix_case_actions_created_at", CaseAction.created_at)
Index("ix_reports_created_at", Report.created_at)
# The live figures of the overview read the open cases from an index alone (the backlog by status and band, the
# undecided cases due in a period), and a refresh finds the cases changed since the last one (their band may have
# risen after their days were rolled up).
Index("ix_cases_live", Case.status, Case.due_at, Case.band, Case.source, Case.queue)
Index("ix_cases_updated_at", Case.updated_at)

# --- [11] stored transparency reports (safehold.transparency.service) ---------------------------------------------


class TransparencyReport(Base):
    """One generated transparency report, kept as published (safehold.transparency.service): the rendered bytes
    and their SHA-256, and beside them what reproduces them — the figure set before small-cell suppression (kept
    internal, never served), its digest, the definitions version, ``as_of``, the threshold and the names printed
    on it. ``partial``: the period had not ended when it was generated."""

    __tablename__ = "transparency_reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    period_name: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    format: Mapped[str] = mapped_column(String(32))
    figures: Mapped[dict] = mapped_column(JSON)
    figures_digest: Mapped[str] = mapped_column(String(64))
    definitions_version: Mapped[str] = mapped_column(String(16))
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    partial: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    min_cell: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    content_bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    extension: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


# ------------------------------------------------------------------------------------------- operator rules


class RuleRow(Base):
    """An operator's CEL rule (see :mod:`safehold.rules.book`): its status and which version runs.

    ``version`` is the newest version written; ``active_version`` the one that runs in shadow or live (a live
    rule's edit is a new draft version until it is approved and enabled, while the old one keeps running).
    ``shadow_version``: on a live rule, a version running in shadow beside the live one (None: none does).
    """

    __tablename__ = "rules"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    version: Mapped[int] = mapped_column(Integer)
    active_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    shadow_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    owner: Mapped[str] = mapped_column(String(128))
    updated_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class RuleVersion(Base):
    """One version of a rule as written: expression, effect, the diff to the version before, and its approval."""

    __tablename__ = "rule_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_rule_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    expression: Mapped[str] = mapped_column(Text)
    effect: Mapped[dict] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    diff: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    approved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The people behind ``created_by`` and ``approved_by`` (Principal.person: a key's creating user), which must
    #: differ; None on versions written before it was recorded (``created_by`` stands in).
    author: Mapped[str | None] = mapped_column(String(128), nullable=True)
    approver: Mapped[str | None] = mapped_column(String(128), nullable=True)


class RuleList(Base):
    """A named list rules read with ``in`` (terms, hashes or accounts); ``version`` moves on every change, for the
    hot reload's fingerprint."""

    __tablename__ = "rule_lists"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    items: Mapped[list] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    #: A change to a list a live rule reads, waiting for a second admin's approval (rules_require_approval).
    pending_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    pending_items: Mapped[list | None] = mapped_column(JSON, nullable=True)
    pending_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    pending_author: Mapped[str | None] = mapped_column(String(128), nullable=True)
    pending_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RuleShadowHit(Base):
    """What a shadow rule would have done to one detection (it did nothing): for the comparison with the live set."""

    __tablename__ = "rule_shadow_hits"
    __table_args__ = (Index("ix_rule_shadow_hits_rule_at", "rule", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    effect: Mapped[dict] = mapped_column(JSON)
    content_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    account_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    door: Mapped[str] = mapped_column(String(32))
    live: Mapped[list] = mapped_column(JSON)  # the live rules that matched the same detection
    case_id: Mapped[int | None] = mapped_column(BigId, nullable=True)  # the case the detection opened or updated
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


# ----------------------------------------------------------------------------------------- user reports (intake)


class UserReport(Base):
    """One report from a platform's user or trusted flagger (Principle 8) and what became of it: the case it joined,
    the weight it was given (reporter reliability) and the outcome the reporter is told."""

    __tablename__ = "user_reports"
    __table_args__ = (
        Index("ix_user_reports_reporter", "platform", "reporter_id", "created_at"),
        Index("ix_user_reports_account", "platform", "account_id", "created_at"),
        Index("ix_user_reports_case", "case_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(128))  # the caller's label (an API key, or a form token's owner)
    via: Mapped[str] = mapped_column(String(16))  # api | form
    category: Mapped[str] = mapped_column(String(32))
    content_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    account_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reporter_id: Mapped[str] = mapped_column(String(128))
    trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    reporter_band: Mapped[str] = mapped_column(String(16), default="unknown")
    reference: Mapped[str | None] = mapped_column(String(128), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    context: Mapped[dict] = mapped_column(JSON, default=dict)  # messages, screenshots' digests
    weight: Mapped[float] = mapped_column(Float)
    reliability: Mapped[dict] = mapped_column(JSON, default=dict)  # why the weight is what it is
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    case_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="received")  # received | actioned | no_action
    decision: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Appeal(Base):
    """The reported side's appeal against a decided case, and its second review by another reviewer."""

    __tablename__ = "appeals"
    __table_args__ = (Index("ix_appeals_case", "case_id"), Index("ix_appeals_status", "status", "created_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(128))
    case_id: Mapped[int] = mapped_column(BigId)
    account_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    decision: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the decision appealed against
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)  # who took it (may not review)
    status: Mapped[str] = mapped_column(String(16), default="received")  # received | upheld | overturned
    reviewer: Mapped[str | None] = mapped_column(String(128), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReportFormToken(Base):
    """A platform's public token for the embeddable report form: it allows creating user reports, nothing else.
    Only its SHA-256 is kept."""

    __tablename__ = "report_form_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    platform: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LiveStreamClaim(Base):
    """Which API process watches a live stream: its frames, risk and ring buffer live in that process's memory
    only, so another process answers its requests ``live.elsewhere`` rather than ``live.stream_not_found``."""

    __tablename__ = "live_streams"

    stream_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    #: ``host:pid`` of the process holding the stream.
    process: Mapped[str] = mapped_column(String(128))
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
