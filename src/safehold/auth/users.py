"""Staff accounts for the review console: create, manage, and check a password at log-in.

Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher`` and its defaults: memory-hard, so a stolen
table is slow to crack on GPUs); a hash made with older parameters is replaced at the next successful log-in.

Log-in failures give one answer whether the name exists or not, and an unknown name costs the same argon2
verification (against a dummy hash) as a known one, so neither the message nor the time tells names apart.
``login_max_failures`` failures in a row lock the account for ``login_lockout_minutes``. A failure is counted
*before* the slow verification, so a burst of parallel guesses cannot outrun the counter.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import NoReturn

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safehold.audit import AuditService
from safehold.auth.apikeys import Principal
from safehold.auth.roles import STAFF_ROLES, Role
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.store.db import Database
from safehold.store.models import User, UserSession, iso, utcnow

#: Two characters at the least: initials ("jd") and short names ("li", "me") are what staff expect to type.
NAME_RE = re.compile(r"[a-z0-9._-]{2,64}")
MIN_PASSWORD = 12
#: argon2 pre-hashes any length, but a megabyte "password" is a request to refuse, not to store.
MAX_PASSWORD = 1024
#: The actor of a failed log-in: whoever typed it has not proven who they are.
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class UserInfo:
    """A user as every layer sees it; the password hash never leaves this module.

    ``locked_until`` is set only while a lock-out is still running.
    """

    id: int
    username: str
    display_name: str
    role: str
    disabled: bool
    locked_until: dt.datetime | None
    created_at: dt.datetime
    last_login_at: dt.datetime | None
    wellness: dict

    def principal(self) -> Principal:
        return Principal(name=self.username, role=self.role, user_id=self.id)

    def to_dict(self) -> dict:
        """The JSON form the API and console show."""

        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "disabled": self.disabled,
            "locked_until": iso(self.locked_until),
            "created_at": iso(self.created_at),
            "last_login_at": iso(self.last_login_at),
            "wellness": self.wellness,
        }


def user_info(row: User, now: dt.datetime | None = None) -> UserInfo:
    """The public view of a row (for the session service too, which reads users in its own queries)."""
    now = now or utcnow()
    locked = row.locked_until if row.locked_until and row.locked_until > now else None
    return UserInfo(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=row.role,
        disabled=row.disabled,
        locked_until=locked,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        wellness=dict(row.wellness or {}),
    )


def normalise_name(username: str) -> str:
    return (username or "").strip().lower()


def end_sessions(s: Session, user_id: int) -> int:
    """Delete every console session of a user inside the caller's transaction; returns how many ended."""
    return s.execute(delete(UserSession).where(UserSession.user_id == user_id)).rowcount or 0


def _target(username: str) -> str:
    return f"user:{username[:64]}"  # a log-in may name anything: keep what reaches the audit log short


def _check_name(username: str) -> str:
    name = normalise_name(username)
    if not NAME_RE.fullmatch(name):
        raise SafeholdError("user.invalid_name", "A username is 2 to 64 characters: letters, digits, '.', '_' or '-'.")
    return name


def check_password(password: str, username: str) -> None:
    weak = None
    if not MIN_PASSWORD <= len(password or "") <= MAX_PASSWORD:
        weak = f"A password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters."
    elif password.lower() == username.lower():
        weak = "The password must not be the username."
    elif len(set(password)) == 1:
        weak = "The password must not be one character repeated."
    if weak:
        raise SafeholdError("user.weak_password", weak)


def _check_role(role: str) -> str:
    if role not in {r.value for r in STAFF_ROLES}:
        staff = ", ".join(r.value for r in STAFF_ROLES)
        raise SafeholdError("user.invalid_role", f"A console user's role is one of {staff} (not {role!r}).")
    return Role(role).value


class UserService:
    def __init__(self, db: Database, audit: AuditService, settings: Settings):
        self.db, self.audit, self.settings = db, audit, settings
        self.hasher = PasswordHasher()
        self._dummy_hash: str | None = None

    # ------------------------------------------------------------------ manage

    def check_new(self, username: str, role: str) -> tuple[str, str]:
        """Everything about a new user but the password: the name, the role, and that the name is free.

        A command line calls this before it asks for a password (twice), so a bad or taken name is refused
        before anyone types one; :meth:`create` checks again, and the unique index settles a race."""
        name, role = _check_name(username), _check_role(role)
        with self.db.session() as s:
            if s.scalars(select(User.id).where(User.username == name)).first() is not None:
                raise Conflict("user.exists", f"There is already a user {name!r}.")
        return name, role

    def create(self, username: str, password: str, role: str, display_name: str = "", actor=None) -> UserInfo:
        name = _check_name(username)
        role = _check_role(role)
        check_password(password, name)
        display_name = (display_name or "").strip()[:128]
        hashed = self.hasher.hash(password)  # outside the transaction: it takes tens of milliseconds
        with self.db.session() as s:
            row = User(
                username=name,
                display_name=display_name,
                role=role,
                password_hash=hashed,
                failed_logins=0,
                disabled=False,
                wellness={},
                created_by=actor,
            )
            s.add(row)
            try:
                s.flush()
            except IntegrityError:  # the unique username: also right when two creates race
                raise Conflict("user.exists", f"There is already a user {name!r}.") from None
            info = user_info(row)
            self.audit.record(s, actor, "user.create", _target(name), {"role": role, "display_name": display_name})
        return info

    def get(self, username: str) -> UserInfo:
        with self.db.session() as s:
            return user_info(self._row(s, username))

    def get_by_id(self, user_id: int) -> UserInfo:
        with self.db.session() as s:
            row = s.get(User, user_id)
            if row is None:
                raise NotFound("user.not_found", f"No user with id {user_id}.")
            return user_info(row)

    def list(self) -> list[UserInfo]:
        now = utcnow()
        with self.db.session() as s:
            return [user_info(r, now) for r in s.scalars(select(User).order_by(User.username))]

    def update(
        self,
        username: str,
        *,
        role: str | None = None,
        display_name: str | None = None,
        disabled: bool | None = None,
        actor,
    ) -> UserInfo:
        """Change role, display name or the disabled flag. Disabling ends the user's sessions at once; a role
        change needs no new log-in (a session reads the user afresh on every request)."""
        wanted = {
            "role": None if role is None else _check_role(role),
            "display_name": None if display_name is None else display_name.strip()[:128],
            "disabled": disabled,
        }
        with self.db.session() as s:
            row = self._row(s, username)
            changes = {k: [getattr(row, k), v] for k, v in wanted.items() if v is not None and getattr(row, k) != v}
            if not changes:
                return user_info(row)
            if row.role == Role.ADMIN and not row.disabled and {"role", "disabled"} & changes.keys():
                self._keep_an_admin(s, row)
            for key, (_, new) in changes.items():
                setattr(row, key, new)
            detail: dict = {"changes": changes}
            if "disabled" in changes and row.disabled:
                detail["sessions_ended"] = end_sessions(s, row.id)
            s.flush()
            info = user_info(row)
            self.audit.record(s, actor, "user.update", _target(row.username), detail)
        return info

    def set_password(self, username: str, password: str, actor) -> None:
        """Replace the password, end the user's sessions and clear any lock-out (the old guesses are moot)."""
        name = normalise_name(username)
        check_password(password, name)
        hashed = self.hasher.hash(password)
        with self.db.session() as s:
            row = self._row(s, name)
            row.password_hash = hashed
            row.password_changed_at = utcnow()
            row.failed_logins = 0
            row.locked_until = None
            ended = end_sessions(s, row.id)
            self.audit.record(s, actor, "user.password", _target(row.username), {"sessions_ended": ended})

    def unlock(self, username: str, actor) -> UserInfo:
        with self.db.session() as s:
            row = self._row(s, username)
            was_locked = user_info(row).locked_until is not None
            row.failed_logins = 0
            row.locked_until = None
            s.flush()
            self.audit.record(s, actor, "user.unlock", _target(row.username), {"was_locked": was_locked})
            return user_info(row)

    def set_wellness(self, user_id: int, prefs: dict, actor) -> None:
        """Store the user's own wellness choices as given (WellnessService validates them first)."""
        with self.db.session() as s:
            row = s.get(User, user_id)
            if row is None:
                raise NotFound("user.not_found", f"No user with id {user_id}.")
            row.wellness = dict(prefs)
            self.audit.record(s, actor, "user.wellness", _target(row.username), {"prefs": row.wellness})

    # ------------------------------------------------------------------ log-in

    def authenticate(self, username: str, password: str, ip: str | None = None) -> UserInfo:
        """Check a password; return the user, or raise ``auth.invalid_credentials`` (401), ``auth.locked`` (423,
        detail ``locked_until``) or ``auth.disabled`` (403, only once the password was right: a guesser learns
        nothing from it)."""
        name = normalise_name(username)
        password = password or ""
        now = utcnow()
        with self.db.session() as s:
            user_id = s.scalars(select(User.id).where(User.username == name)).first()
            attempt = self._count_attempt(s, user_id, now) if user_id is not None else None
        if user_id is None:
            self._verify(self._dummy(), password)
            self._fail(None, name, ip, failures=None)
        if attempt is None:
            self._refuse_locked(name, ip)
        failures, stored_hash = attempt
        if failures > self.settings.login_max_failures:
            # More guesses in flight than allowed: lock without verifying this one.
            self._fail(user_id, name, ip, failures)
        if not self._verify(stored_hash, password):
            self._fail(user_id, name, ip, failures)
        rehash = self.hasher.hash(password) if self.hasher.check_needs_rehash(stored_hash) else None
        with self.db.session() as s:
            row = s.get(User, user_id)
            row.failed_logins = 0
            if rehash:
                row.password_hash = rehash
            if not row.disabled:
                row.last_login_at = now
            s.flush()
            info = user_info(row, now)
            action, detail = ("auth.login_failed", {"reason": "disabled"}) if info.disabled else ("auth.login", {})
            self.audit.record(s, _target(name), action, _target(name), {"ip": ip, "rehashed": bool(rehash), **detail})
        if info.disabled:
            raise SafeholdError("auth.disabled", "This account is disabled; ask an administrator.", status=403)
        return info

    def _count_attempt(self, s: Session, user_id: int, now: dt.datetime) -> tuple[int, str] | None:
        """Count this attempt as a failure up front (a success resets it); ``None`` while the user is locked."""
        not_locked = (User.locked_until.is_(None)) | (User.locked_until <= now)
        stmt = (
            update(User)
            .where(User.id == user_id, not_locked)
            .values(failed_logins=User.failed_logins + 1)
            .returning(User.failed_logins, User.password_hash)
        )
        row = s.execute(stmt).first()
        return (row[0], row[1]) if row else None

    def _fail(self, user_id: int | None, name: str, ip: str | None, failures: int | None) -> NoReturn:
        """Record a failed attempt (and the lock-out it may trigger), then raise the answer for it."""
        max_failures = self.settings.login_max_failures
        locked_until = None
        with self.db.session() as s:
            detail = {"ip": ip, "failures": failures}
            if user_id is None:
                detail["unknown_user"] = True
            elif failures >= max_failures:
                locked_until = utcnow() + dt.timedelta(minutes=self.settings.login_lockout_minutes)
                s.execute(update(User).where(User.id == user_id).values(failed_logins=0, locked_until=locked_until))
            self.audit.record(s, ANONYMOUS, "auth.login_failed", _target(name), detail)
            if locked_until:
                lock_detail = {"ip": ip, "failures": failures, "locked_until": locked_until.isoformat()}
                self.audit.record(s, "system", "auth.locked", _target(name), lock_detail)
        if locked_until:
            raise self._locked_error(locked_until)
        raise SafeholdError("auth.invalid_credentials", "The username or password is not right.", status=401)

    def _refuse_locked(self, name: str, ip: str | None) -> NoReturn:
        with self.db.session() as s:
            locked_until = s.scalars(select(User.locked_until).where(User.username == name)).first()
            self.audit.record(s, ANONYMOUS, "auth.login_failed", _target(name), {"ip": ip, "reason": "locked"})
        raise self._locked_error(locked_until)

    @staticmethod
    def _locked_error(locked_until: dt.datetime | None) -> SafeholdError:
        until = locked_until.isoformat() if locked_until else None
        return SafeholdError(
            "auth.locked",
            "Too many failed log-ins: this account is locked for a while; an administrator can unlock it.",
            status=423,
            detail={"locked_until": until},
        )

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _dummy(self) -> str:
        """A hash with the current parameters, made once per process, so an unknown name costs a verification."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    # ----------------------------------------------------------------- helpers

    @staticmethod
    def _row(s: Session, username: str) -> User:
        name = normalise_name(username)
        row = s.scalars(select(User).where(User.username == name)).first()
        if row is None:
            raise NotFound("user.not_found", f"No user {name!r}.")
        return row

    @staticmethod
    def _keep_an_admin(s: Session, row: User) -> None:
        """Refuse to demote or disable the last enabled admin: the console would have no one to manage it."""
        others = select(func.count()).where(User.role == Role.ADMIN.value, User.disabled.is_(False), User.id != row.id)
        if not s.scalar(others):
            raise Conflict("user.last_admin", "This is the last enabled admin; make another admin first.")
