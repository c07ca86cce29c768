"""Log-in abuse without credentials (issue [6] item 4): back-off instead of lock-out, one answer and one cost for
unknown names, a cap on concurrent argon2 checks, bounded failure records that never hold a typed secret, and the
TOTP second factor."""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, update

from safehold.auth import totp
from safehold.auth.users import SecondFactorNeeded
from safehold.errors import SafeholdError
from safehold.store.models import User

PW = "correct horse battery"


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(svc) -> Clock:
    c = Clock()
    svc.users.throttle.clock = c
    return c


@pytest.fixture
def verifications(svc, monkeypatch) -> list:
    """Every argon2 verification, as (hash) — the costly step the throttle must keep from running."""
    calls = []
    real = svc.users._verify

    def counted(stored, password):
        calls.append(stored)
        return real(stored, password)

    monkeypatch.setattr(svc.users, "_verify", counted)
    return calls


def _error(fn, *args, **kw) -> SafeholdError:
    with pytest.raises(SafeholdError) as exc:
        fn(*args, **kw)
    return exc.value


def _code(svc, *args, **kw) -> str:
    try:
        svc.users.authenticate(*args, **kw)
    except SafeholdError as exc:
        return exc.code
    return "ok"


def _audit(svc, prefix: str = "auth.") -> list[dict]:
    return [r for r in svc.audit.list(limit=1000) if r["action"].startswith(prefix)]


# ------------------------------------------------------------------------------------ throttling, no lock-out


def test_a_stranger_cannot_lock_a_user_out(svc, clock):
    svc.users.create("alice", PW, "reviewer")
    for i in range(30):
        clock.t += 3600  # however slowly or quickly they guess
        assert _code(svc, "alice", f"guess {i}", ip="203.0.113.9") == "auth.invalid_credentials"
    assert svc.users.authenticate("alice", PW, ip="10.0.0.5").username == "alice"
    assert svc.users.get("alice").locked_until is None
    assert not _audit(svc, "auth.locked")


def test_an_address_backs_off_exponentially_without_running_argon2(svc, clock, verifications):
    s = svc.settings
    svc.users.create("alice", PW, "reviewer")
    for i in range(s.login_free_failures):
        assert _code(svc, "alice", f"guess {i}", ip="203.0.113.9") == "auth.invalid_credentials"
    checked = len(verifications)
    waits = []
    for _ in range(4):
        err = _error(svc.users.authenticate, "alice", "another guess", ip="203.0.113.9")
        assert (err.code, err.status) == ("auth.throttled", 429)
        assert len(verifications) == checked  # refused before any hashing
        waits.append(err.detail["retry_after"])
        clock.t += err.detail["retry_after"]
        assert _code(svc, "alice", "another guess", ip="203.0.113.9") == "auth.invalid_credentials"
        checked = len(verifications)
    assert waits == [1, 2, 4, 8]  # login_backoff_seconds, doubling
    # Even the right password waits its turn from that address ...
    assert _code(svc, "alice", PW, ip="203.0.113.9") == "auth.throttled"
    # ... while another address is not slowed at all.
    assert svc.users.authenticate("alice", PW, ip="10.0.0.5").username == "alice"
    # The counters are forgotten after the window.
    clock.t += s.login_failure_window_minutes * 60 + 1
    assert svc.users.authenticate("alice", PW, ip="203.0.113.9").username == "alice"


def test_back_off_is_capped(svc, clock):
    svc.settings.login_free_failures = 1
    svc.settings.login_backoff_max_seconds = 5
    from safehold.auth.throttle import LoginThrottle

    svc.users.throttle = LoginThrottle(svc.settings, clock)
    for _ in range(12):
        clock.t += 10
        assert _code(svc, "nobody", "x", ip="198.51.100.1") == "auth.invalid_credentials"
    assert _error(svc.users.authenticate, "nobody", "x", ip="198.51.100.1").detail["retry_after"] == 5


def test_unknown_and_known_names_are_throttled_and_answered_alike(svc, clock, verifications):
    svc.users.create("alice", PW, "reviewer")
    seen = {}
    for name, ip in (("alice", "198.51.100.1"), ("nobody", "198.51.100.2")):
        codes = [_code(svc, name, "wrong password", ip=ip) for _ in range(svc.settings.login_free_failures + 2)]
        seen[name] = codes
    assert seen["alice"] == seen["nobody"]
    assert seen["alice"][-1] == "auth.throttled"
    # Each answered attempt ran exactly one verification, known name or not (the same cost, so the same time).
    assert len(verifications) == 2 * svc.settings.login_free_failures


def test_timing_of_unknown_and_known_names_is_alike(svc):
    """A coarse check of what the verification count above guarantees: an unknown name is not answered
    measurably faster than a wrong password (both verify one argon2 hash with the same parameters)."""
    svc.users.create("alice", PW, "reviewer")
    _code(svc, "nobody", "warm up", ip="192.0.2.99")

    def timed(name: str, ip: str) -> float:
        # The work this thread does (the hash is verified in it), not the wall clock: what other processes on the
        # machine do must not decide the test.
        t = time.thread_time()
        _code(svc, name, "wrong password", ip=ip)
        return time.thread_time() - t

    known = min(timed("alice", f"192.0.2.{i}") for i in range(5))
    unknown = min(timed("nobody", f"192.0.2.{10 + i}") for i in range(5))
    assert 0.5 < unknown / known < 2.0, (known, unknown)


def test_many_addresses_slow_one_account_but_a_clean_address_still_gets_in(svc, clock, verifications):
    s = svc.settings
    svc.users.create("alice", PW, "reviewer")
    for i in range(s.login_account_free_failures):
        assert _code(svc, "alice", f"botnet guess {i}", ip=f"203.0.113.{i}") == "auth.invalid_credentials"
    # An address that has failed before now meets the account's delay, before any hashing ...
    checked = len(verifications)
    err = _error(svc.users.authenticate, "alice", "one more", ip="203.0.113.1")
    assert err.code == "auth.throttled" and err.detail["retry_after"] <= s.login_account_backoff_max_seconds
    assert len(verifications) == checked
    # ... but the real user, from an address with no failures, logs in at once.
    assert svc.users.authenticate("alice", PW, ip="10.0.0.5").username == "alice"


def test_parallel_guesses_from_one_address_cannot_outrun_the_count(svc, verifications):
    """Attempts are counted before the slow verification: of many parallel guesses from one address at most
    ``login_free_failures`` are verified; the rest are throttled without hashing."""
    svc.settings.login_free_failures = 3
    from safehold.auth.throttle import LoginThrottle

    svc.users.throttle = LoginThrottle(svc.settings)
    svc.users.create("alice", PW, "reviewer")
    checked = len(verifications)
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: _code(svc, "alice", f"guess {i}", ip="203.0.113.9"), range(8)))
    assert codes.count("auth.invalid_credentials") <= 3 and codes.count("auth.throttled") >= 5, codes
    assert len(verifications) - checked <= 3


def test_concurrent_verifications_are_capped(svc, verifications):
    svc.settings.login_max_verifications = 1
    svc.settings.login_verify_wait_seconds = 0.05
    from safehold.auth.throttle import VerifyGate

    svc.users.gate = VerifyGate(svc.settings)
    svc.users.create("alice", PW, "reviewer")
    held = threading.Event()
    with svc.users.gate:  # a verification in progress takes the only slot
        held.set()
        err = _error(svc.users.authenticate, "alice", PW, ip="10.0.0.1")
    assert (err.code, err.status, err.detail["retry_after"]) == ("auth.busy", 503, 1)
    assert verifications == []
    assert svc.users.authenticate("alice", PW, ip="10.0.0.1").username == "alice"


def test_unlock_clears_the_back_off(svc, clock):
    svc.users.create("alice", PW, "reviewer")
    for i in range(svc.settings.login_free_failures):
        _code(svc, "alice", f"guess {i}", ip="10.0.0.1")
    assert _code(svc, "alice", PW, ip="10.0.0.1") == "auth.throttled"
    svc.users.unlock("alice", actor="cli")
    # The name's delay is gone; the address's own count (it did fail) still applies to other names.
    assert _code(svc, "alice", PW, ip="10.0.0.2") == "ok"


# ------------------------------------------------------------------------------------ audit records


def test_a_password_typed_as_the_name_never_reaches_the_audit_log(svc):
    secret = "My Secret Passphrase 42"
    _code(svc, secret, "", ip="10.0.0.1")
    _code(svc, secret.lower(), secret, ip="10.0.0.2")
    dump = str(svc.audit.list(limit=1000))
    assert secret.lower() not in dump and secret not in dump and "passphrase" not in dump.lower()
    [rec] = [r for r in _audit(svc) if r["detail"].get("ip") == "10.0.0.1"]
    assert rec["target"] == "user:?" and rec["actor"] == "anonymous"


def test_failure_records_are_bounded_per_address_and_window(svc):
    svc.settings.login_free_failures = svc.settings.login_account_free_failures = 10_000  # records only
    from safehold.auth.throttle import FailureLog, LoginThrottle

    wall = Clock(1_700_000_000.0)
    svc.users.throttle = LoginThrottle(svc.settings)
    svc.users.failures = FailureLog(svc.settings, wall)
    svc.users.create("alice", PW, "reviewer")
    for i in range(10):
        _code(svc, "alice", f"guess {i}", ip="203.0.113.9")
        _code(svc, f"someone{i}", "guess", ip="203.0.113.9")
    failed = _audit(svc, "auth.login_failed")
    assert [(r["target"], r["detail"]["ip"]) for r in failed] == [("user:alice", "203.0.113.9"),
                                                                   ("user:?", "203.0.113.9")]  # fmt: skip
    # The next window starts with the count of what was not written.
    wall.t += svc.settings.login_audit_window_seconds
    _code(svc, "alice", "later guess", ip="203.0.113.9")
    [summary] = _audit(svc, "auth.login_failures_suppressed")
    assert summary["detail"]["suppressed"] == 18 and summary["actor"] == "system"
    assert len(_audit(svc, "auth.login_failed")) == 3


def test_failure_records_have_a_global_cap_per_window(svc):
    svc.settings.login_audit_max_records = 5
    from safehold.auth.throttle import FailureLog

    svc.users.failures = FailureLog(svc.settings, clock=lambda: 1_000_000.0)  # one window, however slow the machine
    for i in range(20):  # a flood from many addresses
        _code(svc, "nobody", "guess", ip=f"198.51.100.{i}")
    assert len(_audit(svc, "auth.login_failed")) == 5


# ------------------------------------------------------------------------------------ TOTP


def test_rfc_6238_vectors():
    secret = base64.b32encode(b"12345678901234567890").decode()
    for when, code in [(59, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")]:
        assert totp.code_at(secret, when) == code
    assert totp.matching_step(secret, "287082", when=59 + 30) == 1  # one step of drift
    assert totp.matching_step(secret, "287082", when=59 + 60) is None
    assert totp.matching_step(secret, "287082", when=59, after=1) is None  # that step was used already
    assert totp.matching_step(secret, "28708", when=59) is None and totp.matching_step(secret, "abcdef") is None
    uri = totp.provisioning_uri(secret, "ada", "Safehold")
    assert uri.startswith("otpauth://totp/Safehold:ada?secret=") and "period=30" in uri and "digits=6" in uri


def test_admin_needs_a_code_and_a_code_works_once(svc):
    svc.users.create("ada", PW, "admin")
    # Required but not enrolled: the password alone is not a log-in; the next step is an enrolment.
    need = _error(svc.users.authenticate, "ada", PW, ip="10.0.0.1")
    assert isinstance(need, SecondFactorNeeded) and need.step == "enrol" and need.status == 401
    assert not [r for r in _audit(svc) if r["action"] == "auth.login"]

    secret, uri = svc.users.enrol("ada", actor="cli")
    assert secret in uri and svc.users.get("ada").totp_enrolled
    with svc.db.session() as s:
        stored = s.scalars(select(User.totp_secret)).one()
    assert secret not in stored and stored  # sealed, not the secret
    assert _error(svc.users.enrol, "ada", actor="cli").code == "user.totp_enrolled"

    need = _error(svc.users.authenticate, "ada", PW, ip="10.0.0.1")
    assert need.step == "totp"
    user_id = need.user.id
    assert _error(svc.users.verify_totp, user_id, "000000", ip="10.0.0.1").code == "auth.totp_invalid"
    code = totp.code_at(secret)
    assert svc.users.verify_totp(user_id, code, ip="10.0.0.1").username == "ada"
    replay = _error(svc.users.verify_totp, user_id, code, ip="10.0.0.1")
    assert replay.code == "auth.totp_invalid"  # the same code is refused the second time
    assert _error(svc.users.verify_totp, user_id, totp.code_at(secret, time.time() - 30)).code == "auth.totp_invalid"
    login = [r for r in _audit(svc) if r["action"] == "auth.login"][-1]
    assert login["detail"]["second_factor"] == "totp"
    assert secret not in str(svc.audit.list(limit=1000)) and code not in str(_audit(svc, "auth.login_failed"))

    svc.users.reset_totp("ada", actor="cli")
    assert not svc.users.get("ada").totp_enrolled
    assert _error(svc.users.authenticate, "ada", PW).step == "enrol"


def test_which_roles_require_totp_is_a_setting(svc):
    svc.users.create("ada", PW, "admin")
    svc.users.create("lena", PW, "legal")
    svc.users.create("rita", PW, "reviewer")
    assert svc.settings.totp_required_roles == ["admin", "legal"]
    assert _error(svc.users.authenticate, "lena", PW).step == "enrol"
    assert svc.users.authenticate("rita", PW).username == "rita"
    svc.settings.totp_required_roles = []
    assert svc.users.authenticate("ada", PW).username == "ada"
    # A user who enrolled of their own accord is asked for the code whatever their role.
    svc.users.enrol("rita", actor="cli")
    assert _error(svc.users.authenticate, "rita", PW).step == "totp"


def test_self_enrolment_confirms_with_a_code(svc):
    u = svc.users.create("rita", PW, "reviewer")
    secret, _ = svc.users.enrolment_secret(u.id)
    assert svc.users.enrolment_secret(u.id)[0] == secret  # shown again, the same
    assert not svc.users.get("rita").totp_enrolled
    assert _error(svc.users.confirm_enrolment, u.id, "123456", actor="user:rita").code == "auth.totp_invalid"
    code = totp.code_at(secret)
    svc.users.confirm_enrolment(u.id, code, actor="user:rita")
    assert svc.users.get("rita").totp_enrolled
    assert [r["action"] for r in _audit(svc, "user.totp")] == ["user.totp_enrol"]
    # The code that confirmed the enrolment cannot be used again to log in (the same code, even if the clock has
    # moved on to the next 30-second step meanwhile).
    need = _error(svc.users.authenticate, "rita", PW)
    assert _error(svc.users.verify_totp, need.user.id, code).code == "auth.totp_invalid"
    # Not required for a reviewer: she may turn it off, with a code.
    with svc.db.session() as s:
        s.execute(update(User).values(totp_last_step=None))
    svc.users.remove_own_totp(u.id, totp.code_at(secret), actor="user:rita")
    assert not svc.users.get("rita").totp_enrolled


def test_admin_cannot_turn_off_required_totp(svc):
    u = svc.users.create("ada", PW, "admin")
    secret, _ = svc.users.enrol("ada", actor="cli")
    assert _error(svc.users.remove_own_totp, u.id, totp.code_at(secret), actor="user:ada").code == "user.totp_required"


def test_totp_guesses_are_throttled(svc, clock):
    u = svc.users.create("ada", PW, "admin")
    svc.users.enrol("ada", actor="cli")
    codes = []
    for i in range(svc.settings.login_free_failures + 1):
        try:
            svc.users.verify_totp(u.id, f"{i:06d}", ip="203.0.113.9")
        except SafeholdError as exc:
            codes.append(exc.code)
    assert codes[-1] == "auth.throttled"


def test_login_tickets_are_signed_and_expire(svc, monkeypatch):
    u = svc.users.create("ada", PW, "admin")
    ticket = svc.users.login_ticket(u)
    assert svc.users.redeem_ticket(ticket) == u.id
    uid, exp, mac = ticket.split(".")
    for bad in (None, "", "x.y.z", f"{int(uid) + 1}.{exp}.{mac}", f"{uid}.{int(exp) + 999}.{mac}", ticket + "0"):
        assert svc.users.redeem_ticket(bad) is None, bad
    later = time.time() + svc.settings.login_step_minutes * 60 + 5
    monkeypatch.setattr(time, "time", lambda: later)
    assert svc.users.redeem_ticket(ticket) is None
