"""Staff accounts for the review console: create, manage, and check a password at log-in.

Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher`` and its defaults: memory-hard, so a stolen
table is slow to crack on GPUs); a hash made with older parameters is replaced at the next successful log-in.

Log-in failures give one answer whether the name exists or not, and an unknown name costs the same argon2
verification (against a dummy hash) as a known one, so neither the message nor the time tells names apart.
No one can lock an account: failures slow down the address that made them (see ``auth.throttle``), counted
*before* the slow verification so a burst of parallel guesses cannot outrun the count, and at most
``login_max_verifications`` argon2 checks run at once. A name that is not a user's never reaches the audit log
(it may be a password typed in the wrong field), and failure records are bounded per address and window.

Staff may add a TOTP second factor (``auth.totp``; required for ``totp_required_roles``). Its secret is sealed
with the instance key; a code is accepted once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safehold.audit import AuditService
from safehold.auth import totp
from safehold.auth.apikeys import Principal
from safehold.auth.roles import STAFF_ROLES, Role
from safehold.auth.throttle import FailureLog, LoginThrottle, VerifyGate
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.store.db import Database
from safehold.store.models import User, UserSession, iso, utcnow

if TYPE_CHECKING:
    from safehold.store.sealing import Sealer

#: Two characters at the least: initials ("jd") and short names ("li", "me") are what staff expect to type.
NAME_RE = re.compile(r"[a-z0-9._-]{2,64}")
MIN_PASSWORD = 12
#: argon2 pre-hashes any length, but a megabyte "password" is a request to refuse, not to store.
MAX_PASSWORD = 1024
#: The actor of a failed log-in: whoever typed it has not proven who they are.
ANONYMOUS = "anonymous"
#: What of a typed name is looked at (a name is at most 64 characters; longer is simply wrong).
MAX_NAME_TYPED = 256
TOTP_AAD = b"totp"


class SecondFactorNeeded(SafeholdError):
    """The password was right; a TOTP code must follow (``step`` ``totp``), or, for a role that requires TOTP
    and a user who has none yet, an enrolment (``step`` ``enrol``). Never means "logged in"."""

    def __init__(self, user: UserInfo, step: str):
        super().__init__("auth.totp_required", "Enter the 6-digit code from your authenticator app.", status=401,
                         detail={"step": step})  # fmt: skip
        self.user, self.step = user, step


def _invalid() -> SafeholdError:
    return SafeholdError("auth.invalid_credentials", "The username or password is not right.", status=401)


def _bad_code() -> SafeholdError:
    return SafeholdError("auth.totp_invalid", "That code is not right (or was already used); try the next one.",
                         status=401)  # fmt: skip


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
    totp_enrolled: bool = False

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
            "totp_enrolled": self.totp_enrolled,
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
        totp_enrolled=row.totp_secret is not None,
    )


def _local_sealer(settings: Settings) -> Sealer:
    from safehold.store.keyring import ring_for
    from safehold.store.sealing import Sealer

    return Sealer(ring_for(settings, "instance"))


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
    def __init__(
        self, db: Database, audit: AuditService, settings: Settings, sealer: Callable[[], Sealer] | None = None
    ):
        self.db, self.audit, self.settings = db, audit, settings
        self.hasher = PasswordHasher()
        self._dummy_hash: str | None = None
        self.throttle = LoginThrottle(settings)
        self.gate = VerifyGate(settings)
        self.failures = FailureLog(settings)
        # The instance key is loaded on first use only (TOTP secrets, log-in tickets): most commands need none.
        self._sealer = sealer or (lambda: _local_sealer(settings))

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
            self.throttle.forget_account(row.username)
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
        """Check a password (the first factor). Returns the user when that is all the log-in needs; raises
        :class:`SecondFactorNeeded` (after the password was right) when a TOTP code or an enrolment must follow,
        ``auth.invalid_credentials`` (401) for an unknown name or a wrong password alike, ``auth.throttled``
        (429) or ``auth.busy`` (503) before any hashing, and ``auth.disabled`` (403) only once the password
        was right (a guesser learns nothing from it)."""
        name = normalise_name(username)[:MAX_NAME_TYPED]
        password = password or ""
        try:
            self.throttle.attempt(name, ip)
        except SafeholdError:
            self._record_failure(None, ip, throttled=True)
            raise
        with self.db.session() as s:
            found = s.execute(select(User.id, User.password_hash).where(User.username == name)).first()
        with self.gate:  # an unknown name costs the same verification, against a dummy hash
            ok = self._verify(found.password_hash if found else self._dummy(), password)
        if found is None or not ok:
            self._record_failure(found and name, ip, reason="password")
            raise _invalid()
        self.throttle.succeeded(name, ip)
        rehash = self.hasher.hash(password) if self.hasher.check_needs_rehash(found.password_hash) else None
        with self.db.session() as s:
            row = s.get(User, found.id)
            if rehash:
                row.password_hash = rehash
            info = user_info(row)
            if row.disabled:
                detail = {"ip": ip, "reason": "disabled", "rehashed": bool(rehash)}
                self.audit.record(s, _target(name), "auth.login_failed", _target(name), detail)
            step = None if row.disabled else self._second_factor(row)
        if info.disabled:
            raise SafeholdError("auth.disabled", "This account is disabled; ask an administrator.", status=403)
        if step:
            raise SecondFactorNeeded(info, step)
        return self._finish_login(found.id, ip, {"rehashed": bool(rehash)})

    def verify_totp(self, user_id: int, code: str, ip: str | None = None) -> UserInfo:
        """The second step for an enrolled user: a code of the current 30 s step or one either side, later than
        the last code accepted (so a code works once). Throttled like passwords; ``auth.totp_invalid`` (401)."""
        with self.db.session() as s:
            row = s.get(User, user_id)
            name, sealed, last = (row.username, row.totp_secret, row.totp_last_step) if row else ("", None, None)
        self.throttle.attempt(name, ip)
        step = totp.matching_step(self._open(sealed), code, after=last) if sealed else None
        if step is not None:
            with self.db.session() as s:
                fresh = (User.totp_last_step.is_(None)) | (User.totp_last_step < step)
                taken = s.execute(update(User).where(User.id == user_id, fresh).values(totp_last_step=step))
                if not taken.rowcount:  # the same code, just used by a parallel request
                    step = None
        if step is None:
            self._record_failure(name or None, ip, reason="totp")
            raise _bad_code()
        self.throttle.succeeded(name, ip)
        return self._finish_login(user_id, ip, {"second_factor": "totp"})

    def enrol_at_login(self, user_id: int, code: str, ip: str | None = None) -> UserInfo:
        """The second step for a user whose role needs TOTP but who has none yet: the code from the secret
        shown by :meth:`enrolment_secret` confirms the enrolment and completes the log-in."""
        with self.db.session() as s:
            row = s.get(User, user_id)
            name = row.username if row else ""
        self.throttle.attempt(name, ip)
        try:
            self.confirm_enrolment(user_id, code, actor=_target(name))
        except SafeholdError:
            self._record_failure(name or None, ip, reason="totp")
            raise
        self.throttle.succeeded(name, ip)
        return self._finish_login(user_id, ip, {"second_factor": "totp", "enrolled": True})

    def _second_factor(self, row: User) -> str | None:
        if row.totp_secret:
            return "totp"
        if row.role in self.settings.totp_required_roles:
            return "enrol"
        return None

    def _finish_login(self, user_id: int, ip: str | None, detail: dict) -> UserInfo:
        now = utcnow()
        with self.db.session() as s:
            row = s.get(User, user_id)
            if row.disabled:  # disabled between the password and the code
                raise SafeholdError("auth.disabled", "This account is disabled; ask an administrator.", status=403)
            row.failed_logins = 0
            row.last_login_at = now
            s.flush()
            info = user_info(row, now)
            target = _target(row.username)
            self.audit.record(s, target, "auth.login", target, {"ip": ip, **detail})
        return info

    def _record_failure(self, name: str | None, ip: str | None, *, reason: str = "", throttled: bool = False) -> None:
        """An audit record for a failed attempt, bounded (see :class:`FailureLog`). ``name`` is given only for
        an existing user; an unknown name is never written anywhere (it may be a password typed in the wrong
        field): the record says ``unknown user`` and the address, nothing more."""
        target = _target(name) if name else "user:?"
        write, summary = self.failures.admit(ip, target, throttled=throttled)
        if not (write or summary):
            return
        with self.db.session() as s:
            if summary:
                self.audit.record(s, "system", "auth.login_failures_suppressed", "login", summary)
            if write:
                detail = {"ip": ip, "reason": reason} if name else {"ip": ip, "unknown_user": True}
                self.audit.record(s, ANONYMOUS, "auth.login_failed", target, detail)

    # ------------------------------------------------------------------ second factor (TOTP)

    def login_ticket(self, user: UserInfo) -> str:
        """A signed, short-lived proof that ``user`` gave the right password, for the second step's cookie.
        Stateless (any server process can check it); bound to the user and an expiry."""
        expires = int(time.time() + self.settings.login_step_minutes * 60)
        body = f"{user.id}.{expires}"
        return f"{body}.{self._ticket_mac(body)}"

    def redeem_ticket(self, ticket: str | None) -> int | None:
        """The user id of a valid, unexpired ticket, else ``None``."""
        parts = (ticket or "").split(".")
        if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            return None
        body = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._ticket_mac(body), parts[2]) or int(parts[1]) < time.time():
            return None
        return int(parts[0])

    def _ticket_mac(self, body: str) -> str:
        key = self._sealer().keys.derive(b"safehold.login-ticket")
        return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()

    def totp_required(self, role: str) -> bool:
        return role in self.settings.totp_required_roles

    def enrol(self, username: str, actor) -> tuple[str, str]:
        """Enrol a user at once (the command line): returns (secret, otpauth URI), to show once. Refused for
        a user who has TOTP already (``user.totp_enrolled``: reset first, so no one replaces it by mistake)."""
        secret = totp.new_secret()
        with self.db.session() as s:
            row = self._row(s, username)
            if row.totp_secret:
                raise Conflict("user.totp_enrolled", f"{row.username} has TOTP already; reset it first.")
            row.totp_secret, row.totp_pending = self._seal(secret), None
            row.totp_last_step, row.totp_enrolled_at = None, utcnow()
            self.audit.record(s, actor, "user.totp_enrol", _target(row.username), {})
            name = row.username
        return secret, totp.provisioning_uri(secret, name, self.settings.totp_issuer)

    def enrolment_secret(self, user_id: int) -> tuple[str, str]:
        """The secret to show for a self-enrolment (kept sealed as pending until a code confirms it; the same
        one again if the page is shown again). Refused when the user has TOTP already."""
        with self.db.session() as s:
            row = s.get(User, user_id)
            if row is None:
                raise NotFound("user.not_found", f"No user with id {user_id}.")
            if row.totp_secret:
                raise Conflict("user.totp_enrolled", "Two-step log-in is already set up for this account.")
            if row.totp_pending:
                secret = self._open(row.totp_pending)
            else:
                secret = totp.new_secret()
                row.totp_pending = self._seal(secret)
            return secret, totp.provisioning_uri(secret, row.username, self.settings.totp_issuer)

    def confirm_enrolment(self, user_id: int, code: str, actor) -> None:
        """Turn the pending secret into the user's TOTP secret, given a current code from it."""
        with self.db.session() as s:
            row = s.get(User, user_id)
            pending = row.totp_pending if row is not None and not row.totp_secret else None
            step = totp.matching_step(self._open(pending), code) if pending else None
            if step is None:
                raise _bad_code()
            row.totp_secret, row.totp_pending = pending, None
            row.totp_last_step, row.totp_enrolled_at = step, utcnow()
            self.audit.record(s, actor, "user.totp_enrol", _target(row.username), {})

    def reset_totp(self, username: str, actor) -> UserInfo:
        """Remove a user's TOTP (a lost phone). If their role needs it they enrol again at their next log-in."""
        with self.db.session() as s:
            row = self._row(s, username)
            was = row.totp_secret is not None
            row.totp_secret = row.totp_pending = row.totp_last_step = row.totp_enrolled_at = None
            s.flush()
            self.audit.record(s, actor, "user.totp_reset", _target(row.username), {"was_enrolled": was})
            return user_info(row)

    def remove_own_totp(self, user_id: int, code: str, actor) -> None:
        """A user turns their own TOTP off, with a current code, if their role does not require it."""
        with self.db.session() as s:
            row = s.get(User, user_id)
            if row is None or not row.totp_secret:
                raise SafeholdError("user.totp_not_enrolled", "Two-step log-in is not set up for this account.")
            if self.totp_required(row.role):
                msg = "Your role requires two-step log-in; it stays on."
                raise SafeholdError("user.totp_required", msg, status=403)
            if totp.matching_step(self._open(row.totp_secret), code, after=row.totp_last_step) is None:
                raise _bad_code()
            row.totp_secret = row.totp_pending = row.totp_last_step = row.totp_enrolled_at = None
            self.audit.record(s, actor, "user.totp_reset", _target(row.username), {"was_enrolled": True})

    def _seal(self, secret: str) -> str:
        return self._sealer().seal_text(secret, TOTP_AAD)

    def _open(self, sealed: str) -> str:
        return self._sealer().open_text(sealed, TOTP_AAD)

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
