"""Console sessions: a random token in a cookie, of which only the SHA-256 is stored.

A stolen database therefore holds no usable session. A session ends ``session_hours`` after log-in, after
``session_idle_minutes`` without a request, at log-out, or at once when its user is disabled or given a new
password. Each session carries its own CSRF token for the console's forms.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select

from safehold.audit import AuditService
from safehold.auth.users import UserInfo, UserService, end_sessions, user_info
from safehold.config import Settings
from safehold.store.db import Database
from safehold.store.models import User, UserSession, utcnow

#: Write ``last_seen_at`` at most this often: a write per page view would serialise the SQLite store.
TOUCH_EVERY = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class NewSession:
    token: str  # for the cookie only: never stored, never logged
    csrf_token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class StaffSession:
    session_id: str  # the SHA-256 of the token, as stored
    user: UserInfo
    csrf_token: str
    expires_at: dt.datetime


def session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionService:
    def __init__(self, db: Database, audit: AuditService, settings: Settings, users: UserService):
        self.db, self.audit, self.settings, self.users = db, audit, settings, users

    def start(self, user: UserInfo, ip: str | None = None, user_agent: str | None = None) -> NewSession:
        """Open a session for a user who has just authenticated (``UserService.authenticate`` recorded the
        ``auth.login``). The user's lapsed sessions are swept here, so the table stays small."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + dt.timedelta(hours=self.settings.session_hours)
        with self.db.session() as s:
            idle_since = now - self._idle()
            s.execute(
                delete(UserSession).where(
                    UserSession.user_id == user.id,
                    (UserSession.expires_at <= now) | (UserSession.last_seen_at <= idle_since),
                )
            )
            s.add(
                UserSession(
                    id=session_id(token),
                    user_id=user.id,
                    csrf_token=csrf,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires,
                    ip=(ip or None) and ip[:64],
                    user_agent=(user_agent or None) and user_agent[:256],
                )
            )
        return NewSession(token, csrf, expires)

    def resolve(self, token: str | None) -> StaffSession | None:
        """The live session for a cookie token, or ``None`` (unknown, expired, idle, or the user disabled).
        A lapsed session is deleted on sight."""
        if not token:
            return None
        now = utcnow()
        with self.db.session() as s:
            found = s.execute(
                select(UserSession, User)
                .join(User, User.id == UserSession.user_id)
                .where(UserSession.id == session_id(token))
            ).first()
            if found is None:
                return None
            row, user = found
            if row.expires_at <= now or now - row.last_seen_at > self._idle() or user.disabled:
                s.delete(row)
                return None
            if now - row.last_seen_at >= TOUCH_EVERY:
                row.last_seen_at = now
            return StaffSession(row.id, user_info(user, now), row.csrf_token, row.expires_at)

    def end(self, token: str | None, actor: str | None = None) -> None:
        """Log out: the session is deleted (an unknown token is a no-op, so a double log-out is harmless)."""
        if not token:
            return
        with self.db.session() as s:
            row = s.get(UserSession, session_id(token))
            if row is None:
                return
            username = s.get(User, row.user_id).username
            s.delete(row)
            s.flush()
            self.audit.record(s, actor or f"user:{username}", "auth.logout", f"user:{username}")

    def end_all(self, user_id: int, actor: str | None = None) -> int:
        """End every session of a user ("log out everywhere"); returns how many ended."""
        with self.db.session() as s:
            user = s.get(User, user_id)
            if user is None:
                return 0
            ended = end_sessions(s, user_id)
            if ended:
                target = f"user:{user.username}"
                self.audit.record(s, actor or target, "auth.logout_all", target, {"sessions_ended": ended})
        return ended

    def _idle(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.settings.session_idle_minutes)
