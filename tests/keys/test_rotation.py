"""Key rotation on SQLite and PostgreSQL: a store written before key ids (as main wrote it) stays readable, a
rotation re-wraps every sealed column and file under the new key, resumes after a crash, and a previous key is
retired only once nothing needs it."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from safehold.actions.webhooks import SECRET_AAD
from safehold.errors import SafeholdError
from safehold.evidence.store import AAD as EVIDENCE_AAD
from safehold.evidence.store import NAMES as EVIDENCE_NAMES
from safehold.evidence.store import EvidenceStore
from safehold.keys import rotation
from safehold.outbound.settings import seal, unseal
from safehold.services import Services
from safehold.store.keyring import install_new_key
from safehold.store.models import EvidenceItem, ScreeningServiceRow, User, Webhook
from safehold.store.sealing import LocalKey, Sealer, key_id
from safehold.store.vault import MediaVault
from tests.evidence.helpers import preserved


def legacy_store(settings) -> Services:
    """Services sealing exactly as before key rings: a bare LocalKey, version 2 blobs without a key id."""
    old = Services(settings)
    old.__dict__["sealer"] = Sealer(LocalKey.load(settings.key_file))
    evidence = Sealer(LocalKey.load(settings.evidence_key_file))
    old.__dict__["evidence_store"] = EvidenceStore(
        settings.evidence_dir, evidence, aad=EVIDENCE_AAD, names=EVIDENCE_NAMES
    )
    return old


def populate(svc) -> dict:
    """One of every kind of sealed value; returns what to read back."""
    _, secret = svc.webhooks.create("hook", "https://receiver.example/hook", actor="test")
    svc.users.create("reviewer1", "long enough password", "reviewer", actor="test")
    totp, _ = svc.users.enrol("reviewer1", "test")
    with svc.db.session() as s:
        s.add(ScreeningServiceRow(name="svc-a", type="fake", credentials=seal(svc.sealer, "svc-a", {"token": "t0k"})))
    sha = svc.vault.put(b"benign vault bytes " * 10).sha256
    preserved(svc, 1)
    return {"webhook": secret, "totp": totp, "vault": sha}


def read_all(svc, want: dict) -> None:
    with svc.db.session() as s:
        sealed = s.scalar(select(Webhook.secret_encrypted))
        totp = s.scalar(select(User.totp_secret).where(User.username == "reviewer1"))
        creds = s.scalar(select(ScreeningServiceRow.credentials))
        shas = list(s.scalars(select(EvidenceItem.sha256)))
    assert svc.webhooks.open_secret(sealed) == want["webhook"]
    assert svc.users._open(totp) == want["totp"]
    assert unseal(svc.sealer, "svc-a", creds) == {"token": "t0k"}
    assert svc.vault.get(want["vault"]) == b"benign vault bytes " * 10
    assert shas and all(svc.evidence_store.get(sha) for sha in shas)


@pytest.fixture
def legacy(settings):
    old = legacy_store(settings)
    want = populate(old)
    old.close()
    return want


def current(settings, kind: str = "instance") -> str:
    path = settings.key_file if kind == "instance" else settings.evidence_key_file
    return key_id(base64.b64decode(path.read_text())).hex()


def test_a_store_written_before_key_ids_is_read_rotated_and_retired(settings, legacy):
    settings.key_check_seconds = 0
    svc = Services(settings)
    try:
        read_all(svc, legacy)
        first = current(settings)
        before = rotation.status(svc, "instance")
        assert (before["current"], before["previous"], before["source"]) == (first, [], "file")
        assert before["sealed"] == {first: 5}  # webhook, TOTP, credentials, two vault files (raw and evidence)

        done = rotation.rotate(svc, "instance", batch=2)
        new = current(settings)
        assert new != first and done["key_id"] == new and done["new_key"] and not done["resumed"]
        assert done["rewrapped"] == 5 and done["unchanged"] == 0
        after = rotation.status(svc, "instance")
        assert after["previous"] == [first] and after["sealed"] == {new: 5} and not after["rotation_unfinished"]
        assert (settings.home / "keys" / "instance.previous" / f"{first}.key").stat().st_mode & 0o777 == 0o600
        read_all(svc, legacy)

        again = rotation.rotate(svc, "instance", new_key=False)  # idempotent: nothing left to do
        assert (again["rewrapped"], again["unchanged"], again["key_id"]) == (0, 5, new)

        evidence_first = current(settings, "evidence")
        ev = rotation.rotate(svc, "evidence")
        assert ev["rewrapped"] == 1 and rotation.status(svc, "evidence")["sealed"] == {current(settings, "evidence"): 1}

        for kind, old in (("instance", first), ("evidence", evidence_first)):
            assert rotation.retire(svc, kind, old)["previous"] == []
        actions = [r["action"] for r in svc.audit.list(limit=50)]
        assert {"keys.rotate", "keys.rewrap", "keys.retire"} <= set(actions)
    finally:
        svc.close()
    fresh = Services(settings)  # a new process: only the new keys on disk, file names still derived the same
    try:
        read_all(fresh, legacy)
    finally:
        fresh.close()


def test_retire_is_refused_while_a_key_is_needed(svc):
    svc.settings.key_check_seconds = 0
    sha = svc.vault.put(b"sealed under the first key").sha256
    first = current(svc.settings)
    install_new_key(svc.sealer.keys)  # a new key, nothing re-wrapped yet (as if a late writer used the old one)
    svc.sealer.keys.source.marker_file.unlink()
    for key, code in (
        (first, "keys.in_use"),
        (current(svc.settings), "keys.retire_current"),
        ("0" * 16, "keys.not_found"),
        ("not-a-key-id", "keys.invalid_id"),
    ):
        with pytest.raises(SafeholdError) as err:
            rotation.retire(svc, "instance", key)
        assert err.value.code == code
    assert svc.vault.get(sha) == b"sealed under the first key"
    with pytest.raises(SafeholdError) as err:
        rotation.rotate(svc, "instance", batch=0)
    assert err.value.code == "keys.invalid_batch"
    with pytest.raises(SafeholdError) as err:
        rotation.status(svc, "other")
    assert err.value.code == "keys.invalid_kind"


def test_a_rotation_killed_midway_resumes_without_a_second_new_key(svc, monkeypatch):
    svc.settings.key_check_seconds = 0
    shas = [svc.vault.put(f"benign item {i}".encode()).sha256 for i in range(6)]
    first = current(svc.settings)
    real, calls = rotation.Folder.rewrap, []

    def dies(self, *args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as good as kill -9 for what is on disk: nothing after it runs
        return real(self, *args)

    monkeypatch.setattr(rotation.Folder, "rewrap", dies)
    with pytest.raises(KeyboardInterrupt):
        rotation.rotate(svc, "instance")
    monkeypatch.setattr(rotation.Folder, "rewrap", real)
    new = current(svc.settings)
    mid = rotation.status(svc, "instance")
    assert mid["rotation_unfinished"] and mid["sealed"] == {new: 3, first: 3}
    assert all(svc.vault.get(sha) for sha in shas)  # readable at every moment
    with pytest.raises(SafeholdError) as err:
        rotation.retire(svc, "instance", first)
    assert err.value.code == "keys.rotation_unfinished"

    done = rotation.rotate(svc, "instance")
    assert done["resumed"] and not done["new_key"] and done["rewrapped"] == 3 and current(svc.settings) == new
    assert rotation.status(svc, "instance")["previous"] == [first]
    assert not list((svc.settings.vault_dir).rglob(".tmp-*"))
    assert all(svc.vault.get(sha) for sha in shas)


def test_keys_given_by_environment_rotate_by_rewrapping_only(settings, tmp_path):
    old, new = os.urandom(32), os.urandom(32)
    b64 = lambda k: base64.b64encode(k).decode()  # noqa: E731
    settings.instance_key, settings.key_check_seconds = b64(old), 0
    before = Services(settings)
    sha = before.vault.put(b"sealed under the environment's first key").sha256
    before.close()
    settings.instance_key, settings.instance_key_previous = b64(new), f" {b64(old)} ,"
    svc = Services(settings)
    try:
        assert svc.vault.get(sha) == b"sealed under the environment's first key"
        done = rotation.rotate(svc, "instance")
        assert not done["new_key"] and done["rewrapped"] == 1 and done["key_id"] == key_id(new).hex()
        status = rotation.status(svc, "instance")
        assert status["source"] == "environment" and status["previous_from_environment"] == [key_id(old).hex()]
        with pytest.raises(SafeholdError) as err:
            rotation.retire(svc, "instance", key_id(old).hex())
        assert err.value.code == "keys.env_given"
        assert not settings.key_file.exists()
        assert (settings.home / "keys" / "instance.derive").exists()  # pinned: file names outlive the old key
        assert svc.vault.get(sha) == b"sealed under the environment's first key"
    finally:
        svc.close()
    settings.instance_key_previous = None  # the old key dropped from the environment: still readable
    later = Services(settings)
    try:
        assert later.vault.get(sha) == b"sealed under the environment's first key"
    finally:
        later.close()


def test_vault_names_survive_rotation(svc):
    svc.settings.key_check_seconds = 0
    sha = svc.vault.put(b"named by a derived key").sha256
    name = svc.vault._path(sha)
    rotation.rotate(svc, "instance")
    assert MediaVault(svc.settings.vault_dir, svc.sealer)._path(sha) == name


def test_kill_9_mid_rotation_then_a_rerun_finishes_it(svc):
    """A real ``safehold keys rotate`` process killed with SIGKILL once the new key is installed (while it waits
    for other processes to notice it): everything stays readable and a re-run finishes with the same key."""
    shas = [svc.vault.put(f"benign item {i}".encode()).sha256 for i in range(3)]
    first = current(svc.settings)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "SAFEHOLD_HOME": str(svc.settings.home),
        "SAFEHOLD_DATABASE_URL": svc.settings.effective_database_url,
        "SAFEHOLD_KEY_CHECK_SECONDS": "30",
    }
    cmd = [sys.executable, "-m", "safehold", "keys", "rotate", "--which", "instance"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = svc.settings.home / "keys" / "instance.rotating"
    deadline = time.monotonic() + 60
    while not (marker.exists() and current(svc.settings) != first) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    new = current(svc.settings)
    assert new != first and all(svc.vault.get(sha) for sha in shas)
    assert rotation.status(svc, "instance")["rotation_unfinished"]

    svc.settings.key_check_seconds = 0
    done = rotation.rotate(svc, "instance")
    assert done["resumed"] and done["key_id"] == new and done["rewrapped"] == 3
    assert rotation.status(svc, "instance")["sealed"] == {new: 3}


def test_a_damaged_value_is_counted_and_does_not_stop_the_rotation(svc):
    svc.settings.key_check_seconds = 0
    sha = svc.vault.put(b"a good value").sha256
    damaged = svc.settings.vault_dir / "ab" / ("ab" * 32)
    damaged.parent.mkdir(exist_ok=True)
    damaged.write_bytes(b"SH3" + os.urandom(70))  # names a key no ring holds
    done = rotation.rotate(svc, "instance")
    assert (done["rewrapped"], done["unreadable"]) == (1, 1) and done["by_place"]["vault"]["unreadable"] == 1
    assert rotation.status(svc, "instance")["sealed"] == {done["key_id"]: 1, "unknown": 1}
    assert svc.vault.get(sha) == b"a good value"


def test_a_long_sealed_value_is_read_whole_only_when_rewritten(svc):
    svc.settings.key_check_seconds = 0
    _, secret = svc.webhooks.create("hook", "https://receiver.example/hook", actor="test")
    long = "x" * 10_000  # sealed, base64: longer than the prefix the batches read
    with svc.db.session() as s:
        s.get(Webhook, 1).secret_encrypted = svc.sealer.seal_text(long, SECRET_AAD)
    done = rotation.rotate(svc, "instance")
    assert done["by_place"]["webhooks.secret"]["rewrapped"] == 1
    with svc.db.session() as s:
        assert svc.webhooks.open_secret(s.scalar(select(Webhook.secret_encrypted))) == long
    assert rotation.status(svc, "instance")["sealed"] == {done["key_id"]: 1}
