"""Event ingest: the platform tells Safehold about content and accounts; detections become cases.

An event may carry a file (scanned against every bank), platform signals (a classifier score, a user report,
…), account metadata and IP events. Nothing is lost and nothing is done twice:

- the idempotency key is required and scoped to the caller: the same key with the same body answers the first
  result again (``duplicate: true``); with a different body it is refused (409);
- the idempotency record, the case, its items and signals, and any automatic actions commit in one transaction,
  so a failure leaves nothing half-done and the platform's retry (same key) redoes it all;
- media is kept (encrypted, in the vault) only when it matched a block bank that opens cases, or the event
  carries signals about it; otherwise only the scan counters remember it.

An event with neither a signal nor a matching file opens no case, but its metadata (IP events, account details)
is added to its subject's open case when there is one.

Every door answers a retry the same way: the stored first answer, ``duplicate: true`` added, so its ``cases`` say
what happened then (``created: true`` if that first call opened the case) and name the same case ids. A scan
(:meth:`EventService.from_scan`) is a lookup unless it names a subject (content id or account id): without one
there is nothing a reviewer or the platform could act on, so it answers its verdict and records nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from safehold import jsonlimits
from safehold.audit import AuditService
from safehold.auth.apikeys import Principal
from safehold.banks.formats import CATEGORY_PATTERN, normalize_category
from safehold.cases.detection import SOURCES, CaseRef, Detection, DetectionSignal
from safehold.cases.service import CaseService
from safehold.cases.taxonomy import severity
from safehold.errors import Conflict, SafeholdError, validated
from safehold.scanning.service import Match, ScanResult, ScanService, sees_provenance
from safehold.signals import registry
from safehold.signals.base import SignalType
from safehold.store.db import Database
from safehold.store.models import Bank, Case, IngestedEvent, as_utc
from safehold.store.vault import MediaVault

MAX_KEY = 128
#: An idempotency key (header or body field), as the schema publishes it: 1 to MAX_KEY printable ASCII characters.
#: :func:`scoped_key` checks it, with its own code (``event.invalid_idempotency_key``, …), header and body alike.
IDEMPOTENCY_KEY_PATTERN = f"^[ -~]{{1,{MAX_KEY}}}$"
#: The same, for a header: HTTP trims blanks at either end of a header's value, so the key neither starts nor ends
#: with one (what is sent is then what arrives).
IDEMPOTENCY_HEADER_PATTERN = f"^[!-~](?:[ -~]{{0,{MAX_KEY - 2}}}[!-~])?$"
#: Sources a platform may send; ``hash_match`` is Safehold's own (a match on one of its block banks).
EVENT_SOURCES = tuple(s for s in SOURCES if s != "hash_match")
#: The category of a block-bank match whose entry has none: banks hold known abuse material.
DEFAULT_MATCH_CATEGORY = "csam"


# ------------------------------------------------------------------------------------------ schema


UtcDateTime = Annotated[dt.datetime, AfterValidator(as_utc)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContentIn(_Strict):
    id: str = Field(min_length=1, max_length=128, description="The platform's id of the content item.")
    media_type: Literal["image", "video", "text"] | None = None
    url: str | None = Field(None, max_length=8192)
    text: str | None = Field(None, max_length=100_000)
    uploaded_at: UtcDateTime | None = None
    metadata: dict = Field(default_factory=dict)


class AccountIn(_Strict):
    id: str = Field(min_length=1, max_length=128, description="The platform's id of the account.")
    metadata: dict = Field(default_factory=dict)


#: An IP address, published as the formats JSON Schema knows (pydantic's own "ipvanyaddress" is none of them).
IpAddress = Annotated[
    IPvAnyAddress, WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]})
]


class IpEventIn(_Strict):
    ip: IpAddress
    type: str = Field(min_length=1, max_length=32, description="upload, login, registration, …")
    at: UtcDateTime
    port: int | None = Field(None, ge=0, le=65535)

    def to_dict(self) -> dict:
        out = {"ip": str(self.ip), "type": self.type, "at": self.at.isoformat()}
        if self.port is not None:
            out["port"] = self.port
        return out


class SignalIn(_Strict):
    source: Literal[EVENT_SOURCES]  # type: ignore[valid-type]
    category: str | None = Field(
        None,
        max_length=64,
        description="A1, A2, B1, B2, csam, grooming, … or a slug.",
        json_schema_extra={"pattern": CATEGORY_PATTERN},  # checked by _category, with its own message
    )
    confidence: float = Field(ge=0.0, le=1.0)
    label: str | None = Field(None, max_length=128, description="The detector's own label or model name.")
    level: Literal["low", "medium", "high"] | None = Field(
        None, description="The detector's own level; without it, read from the confidence (high >= 0.7)."
    )
    minor_at_risk: bool = Field(
        False, description="A person under 18 is at risk (stated or inferred): with level high, the case is P0."
    )
    detail: dict = Field(default_factory=dict)

    @field_validator("category")
    @classmethod
    def _category(cls, value: str | None) -> str | None:
        try:
            return normalize_category(value)
        except SafeholdError as exc:
            raise ValueError(exc.message) from None


class EventIn(_Strict):
    # _subject's rule, for the published schema: a content event has its content, an account event its account
    # and no content.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"properties": {"type": {"const": "content"}, "content": {"type": "object"}}, "required": ["content"]},
                {
                    "properties": {
                        "type": {"const": "account"},
                        "account": {"type": "object"},
                        "content": {"type": "null"},
                    },
                    "required": ["account"],
                },
            ]
        }
    )
    type: Literal["content", "account"]
    idempotency_key: str | None = Field(
        None, min_length=1, max_length=MAX_KEY, json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN}
    )
    content: ContentIn | None = None
    account: AccountIn | None = None
    ip_events: list[IpEventIn] = Field(default_factory=list, max_length=1000)
    signals: list[SignalIn] = Field(default_factory=list, max_length=100)
    occurred_at: UtcDateTime | None = None

    @model_validator(mode="after")
    def _subject(self) -> EventIn:
        if self.type == "content" and self.content is None:
            raise ValueError("a content event needs 'content'")
        if self.type == "account" and (self.account is None or self.content is not None):
            raise ValueError("an account event needs 'account' and no 'content'")
        return self


def parse(body: object) -> EventIn:
    return validated(EventIn, body, "the event")


#: Defaults of SAFEHOLD_MAX_METADATA_BYTES and SAFEHOLD_MAX_METADATA_DEPTH.
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 8


def check_metadata(event: EventIn, max_bytes: int, max_depth: int) -> None:
    """Refuse (422) an event whose metadata objects (``content.metadata``, ``account.metadata``, a signal's
    ``detail``) are larger than ``max_bytes`` as compact JSON or nested deeper than ``max_depth``: they are stored
    with the case and shown to every reader of it, so they are bounded when they come in."""
    fields = []
    if event.content is not None:
        fields.append(("content.metadata", event.content.metadata))
    if event.account is not None:
        fields.append(("account.metadata", event.account.metadata))
    fields.extend((f"signals.{i}.detail", s.detail) for i, s in enumerate(event.signals))
    for where, value in fields:
        if not value:
            continue
        if jsonlimits.depth(value, stop=max_depth) > max_depth:
            raise SafeholdError(
                "event.metadata_too_deep",
                f"The event's {where} is nested more than {max_depth} levels deep.",
                status=422,
                detail={"loc": where.split("."), "max_depth": max_depth},
            )
        try:
            jsonlimits.check(value, max_depth, f"the event's {where}")
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
        except ValueError:  # NaN / Infinity from a caller that built the event in Python
            raise SafeholdError(
                "request.number_out_of_range", f"The event's {where} holds a number that is not finite.", status=422
            ) from None
        if size > max_bytes:
            raise SafeholdError(
                "event.metadata_too_large",
                f"The event's {where} is {size} bytes as JSON; at most {max_bytes} are kept.",
                status=422,
                detail={"loc": where.split("."), "max_bytes": max_bytes},
            )


# ----------------------------------------------------------------------------------------- service


@dataclass(frozen=True)
class BankSignal:
    """A block-bank match as a hash-match signal; ``auto`` when its bank's ``on_match`` is ``auto`` (the automatic
    policies run for it when the detection is recorded)."""

    signal: DetectionSignal
    auto: bool


class EventService:
    def __init__(
        self,
        db: Database,
        audit: AuditService,
        cases: CaseService,
        scans: ScanService,
        vault: MediaVault,
        actions,
        *,
        metadata_limits: tuple[int, int] = (MAX_METADATA_BYTES, MAX_METADATA_DEPTH),
    ):
        self.metadata_limits = metadata_limits
        self.db = db
        self.audit = audit
        self.cases = cases
        self.scans = scans
        self.vault = vault
        self.actions = actions
        self._pruned_at: dt.datetime | None = None

    def prune(self, keep: dt.timedelta, now: dt.datetime | None = None) -> int:
        """Forget idempotency records older than ``keep`` (a platform retries within minutes or hours, not
        weeks), at most once an hour; returns how many were deleted. The cases they opened are untouched."""
        now = now or dt.datetime.now(dt.UTC)
        if self._pruned_at is not None and now - self._pruned_at < dt.timedelta(hours=1):
            return 0
        with self.db.session() as s:
            n = s.execute(delete(IngestedEvent).where(IngestedEvent.received_at < now - keep)).rowcount
        self._pruned_at = now
        return n

    def ingest(
        self,
        principal: Principal,
        body: dict,
        *,
        file: bytes | None = None,
        filename: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict:
        """Take one event (see the module docs). Returns ``{"accepted", "duplicate", "scan", "cases"}``."""
        event = parse(body)
        check_metadata(event, *self.metadata_limits)
        if file is not None and event.type != "content":
            raise SafeholdError("event.file_needs_content", "A file can only come with a content event.")
        key = scoped_key(principal, idempotency_key, event.idempotency_key)
        digest = _digest(body, file, filename)
        seen = self.replay(key, digest)
        if seen is not None:
            return seen
        scan = self.scans.scan_bytes(file, filename=filename) if file is not None else None
        found = self.bank_signals(scan) if scan is not None else []
        signals = [b.signal for b in found] + [_event_signal(sig, event.occurred_at) for sig in event.signals]
        detection = _detection(event, signals, known_match=bool(found))
        if scan is not None and signals:
            detection.media = self.vault.put(file)
            detection.filename = filename
            detection.media_type = detection.media_type or _media_type(scan)

        def answer(ref: CaseRef | None) -> dict:
            return {
                "accepted": True,
                "duplicate": False,
                "scan": scan.to_dict(provenance=sees_provenance(principal.role)) if scan is not None else None,
                "cases": [ref.to_dict()] if ref is not None else [],
            }

        return self.record_once(key, digest, detection, found, principal.label, answer)

    def record_once(
        self,
        key: str,
        digest: str,
        detection: Detection,
        found: list[BankSignal],
        actor: str,
        answer: Callable[[CaseRef | None], dict],
        *,
        conflict_code: str = "event.idempotency_conflict",
    ) -> dict:
        """Record a prepared detection once under an idempotency ``key`` (already scoped, see :func:`scoped_key`).

        Claims the key, records the detection (case, item, signals and the automatic policies of the ``auto``
        matches in ``found``) and stores ``answer(case ref)`` as the key's result, all in one transaction. If the
        key is already taken (an earlier call, or a concurrent one that committed first) nothing is recorded and
        the stored answer comes back with ``duplicate: true``; a different ``digest`` under it is a 409.
        """
        insert = pg_insert if self.db.engine.dialect.name == "postgresql" else sqlite_insert
        with self.db.session() as s:
            claim = (
                insert(IngestedEvent)
                .values(key=key, body_sha256=digest, result={})
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(IngestedEvent.key)
            )
            first = s.execute(claim).scalar() is not None
            if first:
                ref = self._record(s, detection, [b.signal for b in found if b.auto], actor)
                result = answer(ref)
                s.get(IngestedEvent, key).result = result
        if not first:  # the same key arrived concurrently and committed first
            return self.replay(key, digest, conflict_code=conflict_code)
        return result

    def from_scan(
        self,
        principal: Principal,
        result: ScanResult,
        data: bytes | None,
        *,
        filename: str | None = None,
        url: str | None = None,
        content_id: str | None = None,
        account_id: str | None = None,
    ) -> dict | None:
        """Open (or update) the case of a scanned subject that matched a block bank whose ``on_match`` is not
        ``none``, and store the file (when there is one) in the vault for review.

        Returns ``{"duplicate", "cases"}``, or ``None`` when nothing was recorded: no match, or no subject (a scan
        without a content or account id is a lookup). The same scan of the same subject by the same caller is
        recorded once: its key is derived from the subject and the scanned signals, so a retry answers the first
        call's cases again with ``duplicate: true`` instead of adding a second signal to the case.
        """
        if not (content_id or account_id):
            return None
        found = self.bank_signals(result)
        if not found:
            return None
        digest = _scan_digest(result, url, content_id, account_id)
        key = f"{principal.key_prefix or principal.label}:scan-auto:{digest}"
        seen = self.replay(key, digest)
        if seen is not None:
            return seen
        detection = Detection(
            source="hash_match",
            content_id=content_id,
            account_id=account_id,
            signals=[b.signal for b in found],
            media=self.vault.put(data) if data else None,
            media_type=_media_type(result),
            filename=filename,
            url=url,
            known_match=True,
        )

        def answer(ref: CaseRef | None) -> dict:
            return {"duplicate": False, "cases": [ref.to_dict()] if ref is not None else []}

        return self.record_once(key, digest, detection, found, principal.label, answer)

    def _record(self, s: Session, d: Detection, auto: list[DetectionSignal], actor: str) -> CaseRef | None:
        """Record the detection (or just attach it, without signals) in ``s``; then the automatic policies for
        matches on ``auto`` banks, in the same transaction."""
        if not d.signals:
            return self.cases.attach(d, actor, s) if d.has_item or d.metadata else None
        ref = self.cases.record(d, actor, s)
        if auto:
            self.actions.for_detection(s, s.get(Case, ref.id), auto, actor)
        return ref

    def bank_signals(self, scan: ScanResult) -> list[BankSignal]:
        """The scan's matches on block banks that open cases, as hash-match signals."""
        if scan.verdict != "match":
            return []  # no match, or an allow bank vouched for it
        names = {m.bank for m in scan.matches if m.bank_kind == "block"}
        with self.db.session() as s:
            banks = {
                b.name: b
                for b in s.scalars(select(Bank).where(Bank.name.in_(names), Bank.kind == "block"))
                if b.on_match != "none"
            }
        own = {sig["type"]: sig["value"] for sig in scan.signals}
        out = []
        for m in scan.matches:
            bank = banks.get(m.bank)
            if bank is None:
                continue
            detail = {"variant": m.variant, "external_id": m.entry.get("external_id"), "list": m.entry.get("source")}
            signal = DetectionSignal(
                source="hash_match",
                signal_type=m.signal_type,
                value=own.get(m.signal_type, m.entry.get("value")),
                bank=m.bank,
                entry_id=m.entry.get("id"),
                category=m.entry.get("category") or DEFAULT_MATCH_CATEGORY,
                confidence=match_confidence(m, registry.threshold_for(bank.thresholds or {}, m.signal_type)),
                distance=m.distance,
                detail={k: v for k, v in detail.items() if v is not None},
            )
            out.append(BankSignal(signal, bank.on_match == "auto"))
        return out

    def replay(self, key: str, digest: str, *, conflict_code: str = "event.idempotency_conflict") -> dict | None:
        """The stored answer to an earlier call with this (scoped) key, or ``None`` if there was none; a different
        ``digest`` under the key is refused with ``conflict_code`` (409)."""
        with self.db.session() as s:
            row = s.get(IngestedEvent, key)
            if row is None:
                return None
            if row.body_sha256 != digest:
                raise Conflict(
                    conflict_code,
                    "This idempotency key was used for a different request; use a new key for a new one.",
                )
            return {**row.result, "duplicate": True}


def match_confidence(m: Match, threshold: int) -> float:
    """How sure a match is, by its signal type's rule (:meth:`~safehold.signals.base.SignalType.confidence`):
    1.0 for exact matches, ``1 - distance / (2 × bank threshold)`` for PDQ, the matched share of the uploaded
    video's frames for vPDQ; never below 0.5 (within the bank's threshold it is a match). A type no longer
    installed gets the generic distance rule."""
    try:
        st = registry.signal_type(m.signal_type)
    except SafeholdError:
        st = SignalType
    return st.confidence(m.distance, threshold, m.detail)


def _event_signal(sig: SignalIn, occurred_at: dt.datetime | None) -> DetectionSignal:
    detail = dict(sig.detail)
    if sig.label:
        detail["label"] = sig.label
    if sig.level:
        detail["level"] = sig.level
    if sig.minor_at_risk:
        detail["minor_at_risk"] = True
    if occurred_at:
        detail["occurred_at"] = occurred_at.isoformat()
    return DetectionSignal(source=sig.source, category=sig.category, confidence=sig.confidence, detail=detail)


def _detection(event: EventIn, signals: list[DetectionSignal], *, known_match: bool) -> Detection:
    """The event as a detection; its source is that of its strongest signal (``event`` without signals)."""
    metadata: dict = {}
    if event.account and event.account.metadata:
        metadata["account"] = event.account.metadata
    if event.ip_events:
        metadata["ip_events"] = [e.to_dict() for e in event.ip_events]
    strongest = max(signals, key=_strength, default=None)
    d = Detection(
        source=strongest.source if strongest else "event",
        account_id=event.account.id if event.account else None,
        signals=signals,
        metadata=metadata,
        known_match=known_match,
    )
    if event.content is not None:
        c = event.content
        d.content_id, d.media_type, d.text, d.url = c.id, c.media_type, c.text, c.url
        d.uploaded_at, d.item_metadata = c.uploaded_at, c.metadata
    return d


def _strength(sig: DetectionSignal) -> float:
    return severity(sig.category) * sig.confidence


def _media_type(scan: ScanResult) -> str | None:
    return scan.media if scan.media in ("image", "video") else None


def scoped_key(
    principal: Principal,
    header: str | None,
    body: str | None,
    *,
    required: bool = True,
    prefix: str = "event",
    namespace: str = "",
) -> str | None:
    """The idempotency key, scoped to the caller (two platforms' keys never collide) and to ``namespace`` (so
    one key used for an event and for something else are two keys). Error codes start with ``prefix``; without
    any key: ``None`` unless ``required``."""
    if header and body and header != body:
        raise SafeholdError(
            f"{prefix}.idempotency_key_mismatch", "The Idempotency-Key header and the body's idempotency_key differ."
        )
    key = header or body
    if not key:
        if not required:
            return None
        raise SafeholdError(
            f"{prefix}.missing_idempotency_key",
            "Every event needs an idempotency key (Idempotency-Key header or idempotency_key), so a retry is safe.",
        )
    if len(key) > MAX_KEY or not key.isprintable() or not key.isascii():
        raise SafeholdError(
            f"{prefix}.invalid_idempotency_key", f"An idempotency key is 1 to {MAX_KEY} printable ASCII characters."
        )
    return f"{principal.key_prefix or principal.label}:{namespace}{key}"


def _scan_digest(scan: ScanResult, url: str | None, content_id: str | None, account_id: str | None) -> str:
    """What "the same scan of the same subject" means: the same ids and the same scanned signals (a file's hashes,
    a raw hash, or a URL and what it served)."""
    signals = sorted((s["type"], s["value"]) for s in scan.signals)
    canonical = json.dumps([content_id, account_id, url, signals], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _digest(body: dict, file: bytes | None, filename: str | None) -> str:
    """What "the same event" means: the same JSON (key order and spacing aside), file and file name."""
    canonical = json.dumps(
        {k: v for k, v in body.items() if k != "idempotency_key"}, sort_keys=True, separators=(",", ":")
    )
    h = hashlib.sha256(canonical.encode())
    h.update(b"\0" + (hashlib.sha256(file).hexdigest().encode() if file is not None else b"-"))
    h.update(b"\0" + (filename or "").encode())
    return h.hexdigest()
