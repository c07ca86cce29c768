"""API keys: ``sh_<prefix>_<secret>``. Only a SHA-256 of the secret is stored; the key is shown once.

A SHA-256 (not a slow KDF) is right here: the secret is 190 random bits, so it cannot be guessed, and every API
request must verify it cheaply. Comparison is constant-time.

A key that authenticated is remembered by this process for ``AUTH_CACHE_SECONDS`` (by the SHA-256 of the whole
key, never the key itself), so a busy route such as the search box does not read the key's row on every request.
Revoking a key forgets every remembered key in the revoking process at once; other processes refuse it within
``AUTH_CACHE_SECONDS``. Failures are never remembered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from safehold.audit import AuditService
from safehold.auth.roles import Role, parse_role
from safehold.errors import NotFound, SafeholdError
from safehold.store.db import Database
from safehold.store.models import ApiKey, utcnow

log = logging.getLogger(__name__)

KEY_PREFIX = "sh"
TOUCH_EVERY = dt.timedelta(minutes=1)
AUTH_CACHE_SECONDS = 2.0
AUTH_CACHE_MAX = 10_000
_clock = time.monotonic


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key (its name and role, never its secret) or a console user (``user_id`` set).

    ``label`` is how the caller appears in the audit log and on cases: ``apikey:<name>``, ``user:<username>``.
    ``person`` is the human behind it, for rules that need two different people (a rule's author and its
    approver): a console user is herself; a key is the console user who created it (followed through keys that
    created keys), or the key itself when no user made it (the CLI, a peer).
    """

    name: str
    role: str
    key_prefix: str | None = None
    user_id: int | None = None
    owner: str | None = None  # a key's creator as a person (``user:<username>``), when known

    @property
    def person(self) -> str:
        if self.key_prefix:
            return self.owner or f"apikey:{self.key_prefix}"
        return self.label

    @property
    def label(self) -> str:
        if self.key_prefix:
            return f"apikey:{self.name}"
        if self.user_id is not None:
            return f"user:{self.name}"
        return self.name


@dataclass(frozen=True)
class CreatedKey:
    id: int
    name: str
    role: str
    prefix: str
    token: str  # the full key: shown once, never stored


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


OWNER_HOPS = 8


class ApiKeyService:
    def __init__(self, db: Database, audit: AuditService | None = None):
        self.db = db
        self.audit = audit or AuditService(db)
        self._known: dict[str, tuple[float, Principal]] = {}  # SHA-256 of the key -> (valid until, who)
        self._known_lock = threading.Lock()

    def create(self, name: str, role: str, created_by: str | None = None) -> CreatedKey:
        name = (name or "").strip()
        if not name or len(name) > 128:
            raise SafeholdError("apikey.invalid_name", "A key needs a name of 1 to 128 characters.")
        role_value = parse_role(role).value
        prefix = secrets.token_hex(4)
        secret = secrets.token_urlsafe(24)
        with self.db.session() as s:
            row = ApiKey(name=name, prefix=prefix, secret_hash=_digest(secret), role=role_value, created_by=created_by)
            s.add(row)
            s.flush()
            key_id = row.id
            # Never the token or its hash: the prefix is the key's public name.
            self.audit.record(s, created_by, "apikey.create", f"apikey:{prefix}", {"name": name, "role": role_value})
        return CreatedKey(key_id, name, role_value, prefix, f"{KEY_PREFIX}_{prefix}_{secret}")

    def list(self) -> list[ApiKey]:
        with self.db.session() as s:
            return list(s.scalars(select(ApiKey).order_by(ApiKey.id)))

    def revoke(self, prefix_or_id: str, actor: str | None = None) -> ApiKey:
        with self.db.session() as s:
            row = self._find(s, prefix_or_id)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                detail = {"name": row.name, "role": row.role}
                self.audit.record(s, actor, "apikey.revoke", f"apikey:{row.prefix}", detail)
        with self._known_lock:
            self._known.clear()
        return row

    def _find(self, s, prefix_or_id: str) -> ApiKey:
        query = select(ApiKey).where(ApiKey.prefix == prefix_or_id)
        if prefix_or_id.isdigit():
            query = select(ApiKey).where((ApiKey.prefix == prefix_or_id) | (ApiKey.id == int(prefix_or_id)))
        row = s.scalars(query).first()
        if row is None:
            raise NotFound("apikey.not_found", f"No API key {prefix_or_id!r}.")
        return row

    def authenticate(self, token: str) -> tuple[Principal, bool]:
        """Return the key's principal and whether its ``last_used_at`` is stale (older than a minute: pass it
        to :meth:`touch`), or raise ``auth.invalid_key`` (401); one message for every failure.

        Read-only, so the API can run it on its event loop: one indexed SELECT is cheaper than a thread hop,
        and only the once-a-minute write (:meth:`touch`) could wait on a lock.
        """
        digest = _digest(token or "")
        known = self._known.get(digest)
        if known is not None and known[0] > _clock():
            return known[1], False
        invalid = SafeholdError("auth.invalid_key", "The API key is not valid.", status=401)
        parts = (token or "").split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            raise invalid
        _, prefix, secret = parts
        with self.db.session() as s:
            row = s.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
            if row is None or row.revoked_at is not None:
                raise invalid
            if not hmac.compare_digest(row.secret_hash, _digest(secret)):
                raise invalid
            stale = row.last_used_at is None or utcnow() - row.last_used_at > TOUCH_EVERY
            who = Principal(name=row.name, role=row.role, key_prefix=row.prefix, owner=_owner(s, row))
        with self._known_lock:
            if len(self._known) >= AUTH_CACHE_MAX:
                self._known.clear()
            self._known[digest] = (_clock() + AUTH_CACHE_SECONDS, who)
        return who, stale

    def touch(self, prefix: str) -> None:
        """Record that the key was used (at most once a minute: a write per request would serialise SQLite).

        Best effort: ``last_used_at`` is a hint for the admin, so a write that cannot get the store (a long
        writer holds SQLite's lock, the database is away) is logged and skipped — the next request tries again —
        and never fails or holds up the request that used the key."""
        now = utcnow()
        try:
            with self.db.session() as s:
                s.execute(
                    update(ApiKey)
                    .where(ApiKey.prefix == prefix)
                    .where((ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < now - TOUCH_EVERY))
                    .values(last_used_at=now)
                )
        except SQLAlchemyError as exc:
            log.warning("key %s: last use not recorded (%s)", prefix, type(exc).__name__)


def _owner(s, row: ApiKey) -> str | None:
    """The console user behind a key: its creator, or its creator key's creator (a key's label names it, and
    names are not unique: the newest key of that name created before it), at most :data:`OWNER_HOPS` keys up."""
    for _ in range(OWNER_HOPS):
        by = row.created_by or ""
        if by.startswith("user:"):
            return by
        if not by.startswith("apikey:"):
            return None
        row = s.scalars(
            select(ApiKey)
            .where(ApiKey.name == by.removeprefix("apikey:"), ApiKey.created_at <= row.created_at, ApiKey.id != row.id)
            .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        ).first()
        if row is None:
            return None
    return None


__all__ = ["ApiKeyService", "CreatedKey", "Principal", "Role"]
