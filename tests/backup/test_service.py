"""Backing up a populated store while it is open and restoring it into a new home and database: the data comes
back equal, the audit chain and every evidence item verify, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import stat
import tarfile

import pytest

from safehold.backup import database, service
from safehold.backup.archive import open_archive
from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.keys import rotation
from safehold.services import Services
from safehold.store.keyring import install_new_key
from safehold.store.models import EvidenceItem
from tests.backup.helpers import create_pg_database, drop_pg_database, populate, rows


@pytest.fixture
def target(settings, tmp_path):
    """Settings for an empty home and an empty database of the same engine as ``settings``'."""
    if settings.effective_database_url.startswith("sqlite"):
        yield Settings(home=tmp_path / "restored", database_url=None)
        return
    name, url = create_pg_database()
    try:
        yield Settings(home=tmp_path / "restored", database_url=url)
    finally:
        drop_pg_database(name)


def backup(svc, tmp_path, **kw):
    path = tmp_path / "store.backup"
    kw.setdefault("keys_out", tmp_path / "store.keys")
    return path, service.create(svc, path, **kw)


def test_a_restored_store_equals_the_original_and_verifies(svc, tmp_path, target):
    populate(svc)
    path, manifest = backup(svc, tmp_path)
    assert manifest["counts"]["vault_files"] == 2 and manifest["counts"]["evidence_files"] == 3
    assert manifest["keys"] == "separate" and manifest["schema_revision"]
    with tarfile.open(path) as tar:
        assert not [n for n in tar.getnames() if n.startswith("keys/")]  # keys apart by default
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "store.keys").st_mode) == 0o600
    before = rows(svc.db.url)

    result = service.restore(path, target, keys=tmp_path / "store.keys")

    assert result["ok"] and result["audit"]["ok"] and result["anchor_found"]
    assert result["evidence"] == {"checked": 3, "corrupt": 0, "corrupt_ids": []}
    after = rows(target.effective_database_url)
    assert {t: r for t, r in after.items() if t != "audit_log"} == {t: r for t, r in before.items() if t != "audit_log"}
    n = len(before["audit_log"])
    assert after["audit_log"][:n] == before["audit_log"] and len(after["audit_log"]) == n + 1
    for top in ("vault", "evidence"):
        assert sorted(p.name for p in (target.home / top).rglob("*") if p.is_file()) == sorted(
            p.name for p in (svc.settings.home / top).rglob("*") if p.is_file()
        )
    assert (target.home / "keys" / "evidence.key").read_bytes() == svc.settings.evidence_key_file.read_bytes()
    assert stat.S_IMODE(os.stat(target.home / "keys" / "evidence.key").st_mode) == 0o600
    assert not [p for p in target.home.iterdir() if p.name.startswith(".restore-")]


def test_previous_keys_and_the_derivation_secret_are_backed_up_and_restored(svc, tmp_path, target):
    """Mid-rotation (new keys made, nothing re-wrapped yet) every sealed file still needs a previous key: the
    keys file carries the key rings' files and the restored store opens every evidence item and vault file."""
    populate(svc)
    for ring in (svc.sealer.keys, svc.evidence_store.sealer.keys):
        install_new_key(ring)
    path, _ = backup(svc, tmp_path)
    result = service.restore(path, target, keys=tmp_path / "store.keys")
    assert result["ok"] and result["evidence"] == {"checked": 3, "corrupt": 0, "corrupt_ids": []}
    keys = svc.settings.home / "keys"
    held = sorted(str(p.relative_to(keys)) for p in keys.rglob("*.key")) + ["evidence.derive", "instance.derive"]
    assert len([n for n in held if ".previous/" in n]) == 2
    for name in held:
        restored = target.home / "keys" / name
        assert restored.read_bytes() == (keys / name).read_bytes() and stat.S_IMODE(restored.stat().st_mode) == 0o600
    restored_svc = Services(target, load_index=False, create=False, lazy=True)
    try:
        assert rotation.count_sealed(restored_svc, "instance") == {svc.sealer.keys.previous_ids()[0].hex(): 2}
    finally:
        restored_svc.close()


def test_the_backup_holds_its_own_audit_record_and_the_restore_adds_one(svc, tmp_path, target):
    path, manifest = backup(svc, tmp_path)
    [created] = svc.audit.list(action="backup.create")
    assert manifest["audit_anchor"] == {"seq": created["seq"], "hash": created["hash"]}
    assert created["detail"] == {"file": "store.backup", "keys": "separate"}
    service.restore(path, target, keys=tmp_path / "store.keys")
    from safehold.services import Services

    restored = Services(target, load_index=False, create=False, lazy=True)
    try:
        [done] = restored.audit.list(action="backup.restore")
        assert done["detail"]["ok"] is True and restored.audit.verify().ok
    finally:
        restored.close()


def test_a_damaged_evidence_file_fails_the_check_not_the_restore(svc, tmp_path, target):
    populate(svc)
    path, _ = backup(svc, tmp_path)
    service.restore(path, target, keys=tmp_path / "store.keys")
    # Simulate a disk fault after restore: the check itself must catch it.
    blob = next(p for p in (target.home / "evidence").rglob("*") if p.is_file())
    data = blob.read_bytes()
    blob.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # a flipped bit: always a change
    from safehold.services import Services

    restored = Services(target, load_index=False, create=False, lazy=True)
    try:
        checked = restored.evidence.check_stored()
        with restored.db.session() as s:
            live = s.query(EvidenceItem).filter(EvidenceItem.purged_at.is_(None)).count()
    finally:
        restored.close()
    assert checked["checked"] == live and checked["corrupt"] >= 1 and checked["corrupt_ids"]


def test_keys_can_travel_inside_the_backup_when_asked(svc, tmp_path, target):
    populate(svc)
    path, manifest = backup(svc, tmp_path, keys_out=None, include_keys=True)
    assert manifest["keys"] == "included" and manifest["counts"]["key_files"] == 2
    assert service.restore(path, target)["ok"]


def test_a_restore_without_keys_is_refused_before_anything_is_written(svc, tmp_path, target):
    path, _ = backup(svc, tmp_path, keys_out=None)
    with pytest.raises(SafeholdError) as exc:
        service.restore(path, target)
    assert exc.value.code == "backup.keys_missing"
    assert not target.home.exists()


def test_a_non_empty_home_is_refused(svc, tmp_path, target):
    path, _ = backup(svc, tmp_path)
    target.home.mkdir()
    (target.home / "something").write_text("kept")
    with pytest.raises(SafeholdError) as exc:
        service.restore(path, target, keys=tmp_path / "store.keys")
    assert exc.value.code == "backup.target_not_empty"
    assert [p.name for p in target.home.iterdir()] == ["something"]


def test_a_non_empty_database_is_refused(svc, tmp_path, settings):
    path, _ = backup(svc, tmp_path)
    into_itself = Settings(home=tmp_path / "new-home", database_url=settings.effective_database_url)
    with pytest.raises(SafeholdError) as exc:
        service.restore(path, into_itself, keys=tmp_path / "store.keys")
    assert exc.value.code == "backup.target_not_empty"
    assert not into_itself.home.exists()


def test_create_refuses_to_overwrite_and_to_mix_key_options(svc, tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(SafeholdError) as exc:
        service.create(svc, tmp_path / "taken")
    assert exc.value.code == "backup.exists"
    with pytest.raises(SafeholdError) as exc:
        service.create(svc, tmp_path / "b", keys_out=tmp_path / "k", include_keys=True)
    assert exc.value.code == "backup.invalid_options"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["taken", "home", *_db_files(tmp_path)])


def _db_files(tmp_path) -> list[str]:
    return [p.name for p in tmp_path.iterdir() if p.name.startswith("safehold.db")]


def test_a_failed_create_leaves_no_file(svc, tmp_path, monkeypatch):
    from safehold.backup import archive

    populate(svc)
    calls = {"n": 0}
    real = archive.Writer.add

    def failing(self, name, source, on_bytes=lambda n: None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(5, "Input/output error")
        return real(self, name, source, on_bytes)

    monkeypatch.setattr(archive.Writer, "add", failing)
    with pytest.raises(SafeholdError) as exc:
        service.create(svc, tmp_path / "store.backup", keys_out=tmp_path / "store.keys")
    assert exc.value.code == "backup.write_failed"
    assert not [p for p in tmp_path.iterdir() if "backup" in p.name or "keys" in p.name]


def test_a_damaged_backup_is_refused_by_restore_and_cleaned_up(svc, tmp_path, target):
    populate(svc)
    path, _ = backup(svc, tmp_path, keys_out=None, include_keys=True)
    raw = bytearray(path.read_bytes())
    a = open_archive(path)
    info = a.members[a.names("evidence/")[0]]
    a.close()
    raw[info.offset_data + 5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(SafeholdError) as exc:
        service.restore(path, target)
    assert exc.value.code == "backup.checksum_mismatch"
    assert not target.home.exists()
    database.require_empty(target.effective_database_url)  # nothing was put in the database either


def test_a_backup_taken_while_the_store_is_written_is_consistent(svc, tmp_path, target):
    """Writers keep appending (audit records, bank entries) through the whole backup: the copy is one consistent
    state, so its chain verifies and holds the backup's own record."""
    import threading

    populate(svc)
    stop, written = threading.Event(), []

    def write() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            svc.banks.add_hash("known", "md5", f"{i:032x}", added_by="apikey:ops")
            written.append(i)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 5:  # the writer is going before the backup starts
            threading.Event().wait(0.01)
        path, _ = backup(svc, tmp_path)
    finally:
        stop.set()
        writer.join()
    result = service.restore(path, target, keys=tmp_path / "store.keys")
    assert result["ok"] and result["audit"]["ok"] and result["anchor_found"]
    assert result["evidence"]["corrupt"] == 0
