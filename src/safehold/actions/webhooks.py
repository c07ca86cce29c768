"""Webhook receivers and the delivery outbox.

A webhook is a platform endpoint with a signing secret. :meth:`WebhookService.enqueue` writes one
``webhook_deliveries`` row per subscribed receiver inside the caller's transaction, so an action and its
deliveries commit together or not at all (the transactional outbox); :mod:`safehold.actions.dispatcher` sends
them. Secrets are generated here, shown once, and stored sealed with the instance key.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable

import httpx
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from safehold.audit import AuditService
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.store.db import Database
from safehold.store.models import CaseAction, Webhook, WebhookDelivery, utcnow
from safehold.store.sealing import Sealer

#: What Safehold can ask the platform to do. A receiver subscribes to some of them (or, with none, to all
#: platform-facing ones).
ACTION_KINDS = (
    "remove_content",
    "block_content",
    "restrict_account",
    "suspend_account",
    "interrupt",  # stop a live stream (or cut a viewer): params name the stream (docs/live.md)
    "preserve_evidence",
    "open_report_draft",
    "notify",
)
#: Kinds Safehold carries out itself (evidence preservation, report drafts). They are recorded like any
#: action, but sent only to receivers that list them explicitly: a platform's "do everything" endpoint must
#: not be asked to act on them.
INTERNAL_KINDS = frozenset({"preserve_evidence", "open_report_draft"})
#: Notices that are not actions: a user report's outcome and an appeal's (safehold.intake). A receiver with no
#: subscription gets them; one with a list gets them when it names them.
NOTICE_EVENTS = ("user_report.decided", "appeal.decided")
DELIVERY_STATUSES = ("pending", "delivered", "dead")
SECRET_PREFIX = "whsec_"
SECRET_AAD = b"webhook"
#: A webhook's or a policy's name, as the API's schema publishes it and the services apply it.
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
_WAKE_FLAG = "safehold.webhooks.wake"


def action_event(kind: str) -> str:
    return f"action.{kind}"


def subscribed(events: list, event_name: str) -> bool:
    """Whether a receiver with subscription ``events`` gets ``event_name`` (``action.<kind>``)."""
    kind = event_name.removeprefix("action.")
    return kind in events if events else kind not in INTERNAL_KINDS


def safe_url(url: str) -> str:
    """The URL without query, fragment or credentials: for audit records (tokens often hide there)."""
    u = httpx.URL(url)
    host = f"[{u.host}]" if ":" in u.host else u.host
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{host}{port}{u.path}"


def delivery_to_dict(d: WebhookDelivery, webhook: str, case_id: int | None) -> dict:
    return {
        "id": d.id,
        "webhook": webhook,
        "event": d.event,
        "action_id": d.action_id,
        "case_id": case_id,
        "idempotency_key": d.idempotency_key,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at.isoformat() if d.status == "pending" else None,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "created_at": d.created_at.isoformat(),
        "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
        "payload": d.payload,
    }


class WebhookService:
    def __init__(self, db: Database, audit: AuditService, sealer: Sealer, settings: Settings):
        self.db, self.audit, self.sealer, self.settings = db, audit, sealer, settings
        self._listeners: list[Callable[[], None]] = []

    # ------------------------------------------------------------ receivers

    def create(self, name: str, url: str, *, events: list[str] | None = None, actor: str | None = None):
        """Register a receiver. Returns ``(webhook dict, secret)``; the secret is never shown again."""
        _check_name(name)
        url = _check_url(url)
        events = _check_events(events)
        secret = _new_secret()
        with self.db.session() as s:
            if s.scalar(select(Webhook.id).where(Webhook.name == name)) is not None:
                raise Conflict("webhook.exists", f"A webhook named {name!r} already exists.")
            hook = Webhook(name=name, url=url, events=events, secret_encrypted=self._seal(secret), created_by=actor)
            s.add(hook)
            s.flush()
            out = self._to_dict(s, hook)
            self.audit.record(s, actor, "webhook.create", f"webhook:{name}", {"url": safe_url(url), "events": events})
        return out, secret

    def list(self) -> list[dict]:
        with self.db.session() as s:
            counts = self._counts(s)
            return [self._to_dict(s, h, counts) for h in s.scalars(select(Webhook).order_by(Webhook.name))]

    def get(self, name: str) -> dict:
        with self.db.session() as s:
            return self._to_dict(s, _webhook(s, name))

    def update(
        self,
        name: str,
        *,
        url: str | None = None,
        events: list[str] | None = None,
        enabled: bool | None = None,
        actor: str | None = None,
    ) -> dict:
        """Change the URL, subscriptions or enabled flag. A disabled receiver's pending deliveries wait (they are
        neither sent nor dead-lettered) and go out once it is enabled again."""
        with self.db.session() as s:
            hook = _webhook(s, name)
            changes: dict[str, list] = {}
            if url is not None and url != hook.url:
                url = _check_url(url)
                changes["url"] = [safe_url(hook.url), safe_url(url)]
                hook.url = url
            if events is not None and (events := _check_events(events)) != hook.events:
                changes["events"] = [hook.events, events]
                hook.events = events
            if enabled is not None and enabled != hook.enabled:
                changes["enabled"] = [hook.enabled, enabled]
                hook.enabled = enabled
            s.flush()
            out = self._to_dict(s, hook)
            if changes:
                self.audit.record(s, actor, "webhook.update", f"webhook:{name}", {"changes": changes})
        if enabled:
            self._wake()
        return out

    def delete(self, name: str, actor: str | None = None) -> dict:
        """Delete a receiver with its delivery history (pending and dead deliveries go too: they are counted in
        the audit record)."""
        with self.db.session() as s:
            hook = _webhook(s, name)
            out = self._to_dict(s, hook)
            s.delete(hook)
            s.flush()
            dropped = {"pending": out["pending"], "dead": out["dead"]}
            self.audit.record(s, actor, "webhook.delete", f"webhook:{name}", dropped)
        return out

    def rotate_secret(self, name: str, actor: str | None = None) -> str:
        """A new secret, effective at once: deliveries still pending are signed with it when they are sent."""
        secret = _new_secret()
        with self.db.session() as s:
            _webhook(s, name).secret_encrypted = self._seal(secret)
            s.flush()
            self.audit.record(s, actor, "webhook.rotate_secret", f"webhook:{name}")
        return secret

    def test(self, name: str, actor: str | None = None) -> dict:
        """Queue a signed ``ping`` to this receiver only (whatever its subscriptions); returns the delivery."""
        with self.db.session() as s:
            hook = _webhook(s, name)
            if not hook.enabled:
                raise Conflict("webhook.disabled", f"Webhook {name!r} is disabled; enable it before testing.")
            row = self._add(s, hook, "ping", {"webhook": name})
            out = delivery_to_dict(row, name, None)
            self.audit.record(s, actor, "webhook.test", f"webhook:{name}", {"delivery_id": row.id})
        return out

    def open_secret(self, sealed: str) -> str:
        return self.sealer.open_text(sealed, SECRET_AAD)

    def on_enqueue(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after a transaction that queued deliveries commits (the dispatcher wakes up)."""
        self._listeners.append(callback)

    # ----------------------------------------------------------- the outbox

    def enqueue(self, session: Session, event_name: str, payload: dict, action_id: int | None = None) -> int:
        """Queue ``payload`` for every enabled receiver subscribed to ``event_name``, in ``session``'s
        transaction. Each row gets its own idempotency key, also the payload's ``id``. Returns the row count."""
        enabled = session.scalars(select(Webhook).where(Webhook.enabled.is_(True)))
        hooks = [h for h in enabled if subscribed(h.events, event_name)]
        for hook in hooks:
            self._add(session, hook, event_name, payload, action_id)
        return len(hooks)

    def deliveries(
        self,
        *,
        status: str | None = None,
        webhook: str | None = None,
        case_id: int | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[dict]:
        """A page of deliveries in id order (keyset: pass the last id as ``after_id``); ``status="dead"`` is the
        dead-letter list."""
        if status is not None and status not in DELIVERY_STATUSES:
            raise SafeholdError("delivery.invalid_status", f"status must be one of {', '.join(DELIVERY_STATUSES)}.")
        if not 1 <= limit <= 1000:
            raise SafeholdError("request.invalid_limit", "limit must be between 1 and 1000.")
        q = (
            select(WebhookDelivery, Webhook.name, CaseAction.case_id)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .outerjoin(CaseAction, CaseAction.id == WebhookDelivery.action_id)
            .where(WebhookDelivery.id > after_id)
        )
        if status:
            q = q.where(WebhookDelivery.status == status)
        if webhook:
            q = q.where(Webhook.name == webhook)
        if case_id is not None:
            q = q.where(CaseAction.case_id == case_id)
        with self.db.session() as s:
            rows = s.execute(q.order_by(WebhookDelivery.id).limit(limit)).all()
            return [delivery_to_dict(d, name, cid) for d, name, cid in rows]

    def retry(self, delivery_id: int, actor: str | None = None) -> dict:
        """Send a dead (or waiting) delivery again now, with a fresh attempt budget and the same idempotency key."""
        with self.db.session() as s:
            row = s.get(WebhookDelivery, delivery_id)
            if row is None:
                raise NotFound("delivery.not_found", f"No delivery {delivery_id}.")
            if row.status == "delivered":
                raise Conflict("delivery.delivered", f"Delivery {delivery_id} was already delivered.")
            before = {"status": row.status, "attempts": row.attempts}
            row.status, row.attempts, row.next_attempt_at = "pending", 0, utcnow()
            s.flush()
            hook_name = s.scalar(select(Webhook.name).where(Webhook.id == row.webhook_id))
            case_id = row.action_id and s.scalar(select(CaseAction.case_id).where(CaseAction.id == row.action_id))
            out = delivery_to_dict(row, hook_name, case_id)
            self.audit.record(s, actor, "delivery.retry", f"delivery:{delivery_id}", {"webhook": hook_name, **before})
        self._wake()
        return out

    # -------------------------------------------------------------- helpers

    def _add(
        self, s: Session, hook: Webhook, event_name: str, payload: dict, action_id: int | None = None
    ) -> WebhookDelivery:
        key = uuid.uuid4().hex
        body = {"id": key, "event": event_name, "created_at": utcnow().isoformat(), **payload}
        row = WebhookDelivery(
            webhook_id=hook.id, action_id=action_id, idempotency_key=key, event=event_name, payload=body
        )
        s.add(row)
        s.flush()
        if not s.info.get(_WAKE_FLAG):
            s.info[_WAKE_FLAG] = True
            event.listen(s, "after_commit", self._after_commit, once=True)
        return row

    def _after_commit(self, s: Session) -> None:
        s.info.pop(_WAKE_FLAG, None)
        self._wake()

    def _wake(self) -> None:
        for callback in self._listeners:
            callback()

    def _seal(self, secret: str) -> str:
        return self.sealer.seal_text(secret, SECRET_AAD)

    def _counts(self, s: Session) -> dict[tuple[int, str], int]:
        q = (
            select(WebhookDelivery.webhook_id, WebhookDelivery.status, func.count())
            .where(WebhookDelivery.status != "delivered")
            .group_by(WebhookDelivery.webhook_id, WebhookDelivery.status)
        )
        return {(hook_id, status): n for hook_id, status, n in s.execute(q)}

    def _to_dict(self, s: Session, h: Webhook, counts: dict | None = None) -> dict:
        counts = self._counts(s) if counts is None else counts
        return {
            "id": h.id,
            "name": h.name,
            "url": h.url,
            "events": list(h.events or []),
            "enabled": h.enabled,
            "created_by": h.created_by,
            "created_at": h.created_at.isoformat(),
            "pending": counts.get((h.id, "pending"), 0),
            "dead": counts.get((h.id, "dead"), 0),
        }


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _webhook(s: Session, name: str) -> Webhook:
    hook = s.scalar(select(Webhook).where(Webhook.name == name))
    if hook is None:
        raise NotFound("webhook.not_found", f"No webhook named {name!r}.")
    return hook


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name or ""):
        raise SafeholdError(
            "webhook.invalid_name", "A webhook name is 1-64 letters, digits, '.', '_' or '-', starting alphanumeric."
        )


def _check_url(url: str) -> str:
    """An absolute http(s) URL with a host. No private-address guard: only admins configure receivers, and a
    receiver on the platform's internal network is the normal case."""
    url = (url or "").strip()
    try:
        u = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        u = None
    if u is None or u.scheme not in ("http", "https") or not u.host or len(url) > 2000:
        raise SafeholdError("webhook.invalid_url", "A webhook URL must be an absolute http:// or https:// URL.")
    return url


def _check_events(events: list[str] | None) -> list[str]:
    events = list(dict.fromkeys(events or []))
    unknown = [e for e in events if e not in ACTION_KINDS and e not in NOTICE_EVENTS]
    if unknown:
        raise SafeholdError(
            "webhook.invalid_events",
            f"Unknown event(s) {', '.join(map(repr, unknown))}; known: {', '.join(ACTION_KINDS + NOTICE_EVENTS)}.",
            detail={"unknown": unknown},
        )
    return events
