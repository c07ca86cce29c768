"""The event and scan doors: the platform tells Safehold about content and accounts, or asks about a file, hash
or URL; what the detectors find goes to the pipeline (:mod:`safehold.pipeline.service`), which opens the cases.

An event may carry a file (scanned against every bank), platform signals (a classifier score, a user report,
…), account metadata and IP events. Nothing is lost and nothing is done twice:

- the idempotency key is required and scoped to the caller: the same key with the same body answers the first
  result again (``duplicate: true``); with a different body it is refused (409);
- the idempotency record, the case, its items and signals, and any automatic actions commit in one transaction,
  so a failure leaves nothing half-done and the platform's retry (same key) redoes it all;
- media is kept (encrypted, in the vault) only when it matched a block bank that opens cases, an enabled
  classifier scored it at or above its threshold, or the event carries signals about it; otherwise only the scan
  counters remember it.

An event with neither a signal nor a matching file opens no case, but its metadata (IP events, account details)
is added to its subject's open case when there is one.

Every door answers a retry the same way: the stored first answer, ``duplicate: true`` added, so its ``cases`` say
what happened then (``created: true`` if that first call opened the case) and name the same case ids. A scan
(:meth:`EventService.scanned`) is a lookup unless it names a subject (content id or account id): without one
there is nothing a reviewer or the platform could act on, so it answers its verdict and records nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
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
from sqlalchemy import select

from safehold import jsonlimits
from safehold.auth.apikeys import Principal
from safehold.banks.formats import CATEGORY_PATTERN, normalize_category
from safehold.cases.detection import OWN_SOURCES, SOURCES, CaseRef, Detection, DetectionSignal
from safehold.errors import SafeholdError, validated
from safehold.pipeline.service import Pipeline, Submission
from safehold.scanning.service import ScanResult, ScanService, sees_provenance
from safehold.store.db import Database
from safehold.store.groupcommit import Work
from safehold.store.models import Case, Conversation, as_utc

MAX_KEY = 128
#: An idempotency key (header or body field), as the schema publishes it: 1 to MAX_KEY printable ASCII characters.
#: :func:`scoped_key` checks it, with its own code (``event.invalid_idempotency_key``, …), header and body alike.
IDEMPOTENCY_KEY_PATTERN = f"^[ -~]{{1,{MAX_KEY}}}$"
#: The same, for a header: HTTP trims blanks at either end of a header's value, so the key neither starts nor ends
#: with one (what is sent is then what arrives).
IDEMPOTENCY_HEADER_PATTERN = f"^[!-~](?:[ -~]{{0,{MAX_KEY - 2}}}[!-~])?$"
#: Sources a platform may send; ``hash_match`` and ``rematch`` are Safehold's own (matches on its block banks).
EVENT_SOURCES = tuple(s for s in SOURCES if s not in OWN_SOURCES)


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
    depicted_minor: bool = Field(
        False,
        strict=True,
        description="The person shown in the file is (suspected to be) a minor: an age signal for classifier hits "
        "on labels legal for adults (docs/classifiers.md).",
    )
    grooming_conversation: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="The platform's id of the conversation the file came in; it must have an open grooming alert or "
        "case (classifier.grooming_not_flagged). An age signal for classifier hits.",
    )

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


# ----------------------------------------------------------------------------------------- doors


class EventService:
    """The event door and the scan door: each turns its request into a :class:`Submission` for the pipeline and
    its stored answer back; what is recorded is the pipeline's decision."""

    def __init__(
        self,
        pipeline: Pipeline,
        scans: ScanService,
        *,
        metadata_limits: tuple[int, int] = (MAX_METADATA_BYTES, MAX_METADATA_DEPTH),
    ):
        self.pipeline = pipeline
        self.scans = scans
        self.metadata_limits = metadata_limits

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
        event, key, digest = self._admit(principal, body, file, filename, idempotency_key)
        if file is not None or event.grooming_conversation is not None:  # costly or changing work: a retry skips it
            seen = self.pipeline.replay(key, digest)
            if seen is not None:
                return seen
        return self.pipeline.writes.run(*self._work(principal, event, key, digest, file, filename))

    def work(self, principal: Principal, body: dict, idempotency_key: str | None) -> tuple[str, Work] | None:
        """:meth:`ingest` of an event without a file, as its group-commit key and work (the ASGI hot path waits
        for it without a thread); ``None`` for one that reads the database first (``grooming_conversation``)."""
        event, key, digest = self._admit(principal, body, None, None, idempotency_key)
        if event.grooming_conversation is not None:
            return None
        return self._work(principal, event, key, digest, None, None)

    def _admit(
        self, principal: Principal, body: dict, file: bytes | None, filename: str | None, idempotency_key: str | None
    ) -> tuple[EventIn, str, str]:
        """The event checked, its scoped key and its digest."""
        event = parse(body)
        check_metadata(event, *self.metadata_limits)
        if file is not None and event.type != "content":
            raise SafeholdError("event.file_needs_content", "A file can only come with a content event.")
        return event, scoped_key(principal, idempotency_key, event.idempotency_key), _digest(body, file, filename)

    def _work(
        self, principal: Principal, event: EventIn, key: str, digest: str, file: bytes | None, filename: str | None
    ) -> tuple[str, Work]:
        reasons, context = self.age_reasons(event.depicted_minor, event.grooming_conversation)
        scan = self.scans.scan_bytes(file, filename=filename) if file is not None else None
        signals = [_event_signal(sig, event.occurred_at) for sig in event.signals]
        sub = Submission(
            _detection(event, signals),
            scans=[scan] if scan is not None else [],
            media=file,
            filename=filename,
            opens=True,
            always=True,
            age_reasons=reasons,
            age_context=context,
        )

        def answer(ref: CaseRef | None) -> dict:
            return {
                "accepted": True,
                "duplicate": False,
                "scan": scan.to_dict(provenance=sees_provenance(principal.role)) if scan is not None else None,
                "cases": [ref.to_dict()] if ref is not None else [],
            }

        ruled = self.pipeline.rule(sub)  # never None: an event is always recorded
        return self.pipeline.commit_work(ruled, key=key, digest=digest, actor=principal.label, answer=answer)

    def scanned(
        self,
        principal: Principal,
        result: ScanResult,
        data: bytes | None,
        *,
        filename: str | None = None,
        url: str | None = None,
        content_id: str | None = None,
        account_id: str | None = None,
        depicted_minor: bool = False,
        grooming_conversation: str | None = None,
    ) -> dict:
        """The answer to a scan (the API's and ``safehold scan``'s): the result as ``principal`` may see it, plus
        the cases it opened or updated (``cases``, ``duplicate``) when it named a subject and the pipeline
        recorded something — a match on a block bank whose ``on_match`` is not ``none``, or a classifier hit.

        A scan without a content or account id is a lookup and records nothing. The same scan of the same
        subject by the same caller is recorded once: its key is derived from the subject, the scanned signals
        and what the pipeline found (a bank that gained the hash since makes it a new scan), so a retry answers
        the first call's cases again with ``duplicate: true`` instead of adding a second signal to the case.

        ``depicted_minor`` and ``grooming_conversation`` are the caller's age signals for classifier hits
        (:meth:`age_reasons`).
        """
        out = result.to_dict(provenance=sees_provenance(principal.role))
        if not (content_id or account_id):
            return out
        reasons, context = self.age_reasons(depicted_minor, grooming_conversation)
        sub = Submission(
            Detection(source="event", content_id=content_id, account_id=account_id, url=url),
            scans=[result],
            media=data or None,
            filename=filename,
            age_reasons=reasons,
            age_context=context,
        )
        ruled = self.pipeline.rule(sub)
        if ruled is None:
            return out
        digest = _scan_digest(result, url, content_id, account_id, ruled.ruling)

        def answer(ref: CaseRef | None) -> dict:
            return {"duplicate": False, "cases": [ref.to_dict()] if ref is not None else []}

        key = f"{principal.key_prefix or principal.label}:scan-auto:{digest}"
        return {**out, **self.pipeline.commit(ruled, key=key, digest=digest, actor=principal.label, answer=answer)}

    def age_reasons(self, depicted_minor: bool, grooming_conversation: str | None) -> tuple[list[str], dict]:
        """The age reasons a door's caller gave, for classifier policy: ``depicted_minor``, and
        ``grooming_conversation`` when that conversation has an open grooming alert or case (else
        ``classifier.grooming_not_flagged``, 422: a conversation nobody flagged says nothing about a child)."""
        reasons, context = ["depicted_minor"] if depicted_minor else [], {}
        if grooming_conversation is not None:
            if not grooming_flagged(self.pipeline.db, grooming_conversation):
                raise SafeholdError(
                    "classifier.grooming_not_flagged",
                    f"Conversation {grooming_conversation!r} has no open grooming alert or case.",
                    status=422,
                    detail={"field": "grooming_conversation"},
                )
            reasons.append("grooming_conversation")
            context["grooming_conversation"] = grooming_conversation
        return reasons, context


def grooming_flagged(db: Database, conversation_id: str) -> bool:
    """Whether the platform's conversation ``conversation_id`` has an alert (the scorer raised one) or an open
    grooming case."""
    with db.session() as s:
        row = s.execute(
            select(Conversation.alert, Case.status)
            .outerjoin(Case, Case.id == Conversation.case_id)
            .where(Conversation.external_id == conversation_id)
        ).first()
    return row is not None and bool(row.alert or (row.status is not None and row.status != "closed"))


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


def _detection(event: EventIn, signals: list[DetectionSignal]) -> Detection:
    """The event as a detection; the pipeline gives it its source (that of its strongest signal)."""
    metadata: dict = {}
    if event.account and event.account.metadata:
        metadata["account"] = event.account.metadata
    if event.ip_events:
        metadata["ip_events"] = [e.to_dict() for e in event.ip_events]
    d = Detection(
        source="event",
        account_id=event.account.id if event.account else None,
        signals=signals,
        metadata=metadata,
    )
    if event.content is not None:
        c = event.content
        d.content_id, d.media_type, d.text, d.url = c.id, c.media_type, c.text, c.url
        d.uploaded_at, d.item_metadata = c.uploaded_at, c.metadata
    return d


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


def _scan_digest(
    scan: ScanResult, url: str | None, content_id: str | None, account_id: str | None, ruling: list[list]
) -> str:
    """What "the same scan of the same subject" means: the same ids, the same scanned signals (a file's hashes,
    a raw hash, or a URL and what it served) and the same findings (:attr:`~safehold.pipeline.service.Ruled.ruling`:
    once another bank holds the hash, the scan is new)."""
    signals = sorted((s["type"], s["value"]) for s in scan.signals)
    canonical = json.dumps([content_id, account_id, url, signals, ruling], separators=(",", ":"))
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
