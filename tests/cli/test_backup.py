"""``safehold backup create / verify / restore`` end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import stat

from tests.backup.helpers import empty_database_args, populate


def test_create_verify_restore(cli, svc, settings, tmp_path):
    populate(svc)
    backup, keys = tmp_path / "store.backup", tmp_path / "store.keys"
    made = cli("backup", "create", backup, "--keys-out", keys)
    assert "3 evidence files" in made.stdout and "keep it apart" in made.stdout
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600

    checked = json.loads(cli("backup", "verify", backup, "--json").stdout)
    assert checked["kind"] == "store" and checked["keys"] == "separate" and checked["counts"]["vault_files"] == 2
    assert "keys backup" in cli("backup", "verify", keys).stdout

    with empty_database_args(settings.effective_database_url) as db:
        restored = cli("backup", "restore", backup, "--home", tmp_path / "restored", "--keys", keys, *db)
    assert "audit log intact" in restored.stdout and "evidence intact: 3 items" in restored.stdout


def test_include_keys_warns_and_a_tampered_backup_fails_verify(cli, tmp_path):
    backup = tmp_path / "store.backup"
    made = cli("backup", "create", backup, "--include-keys")
    assert "WARNING" in made.stderr
    raw = bytearray(backup.read_bytes())
    raw[1024] ^= 0xFF  # inside the database copy, the first member's data
    backup.write_bytes(bytes(raw))
    failed = cli("backup", "verify", backup, code=2)
    assert "error [backup.checksum_mismatch]" in failed.stderr


def test_restore_refuses_a_non_empty_home(cli, tmp_path):
    backup = tmp_path / "store.backup"
    cli("backup", "create", backup, "--include-keys")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    refused = cli("backup", "restore", backup, "--home", tmp_path / "busy", code=2)
    assert "error [backup.target_not_empty]" in refused.stderr


def test_a_restore_whose_checks_fail_exits_2_and_says_which(cli, svc, tmp_path):
    """Evidence damaged on disk before the backup: the archive is faithful to it, so only the checks can tell."""
    populate(svc)
    blob = next(svc.evidence_store.files())
    data = blob.read_bytes()
    blob.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # a flipped bit: always a change
    backup = tmp_path / "store.backup"
    cli("backup", "create", backup, "--include-keys")
    with empty_database_args(svc.settings.effective_database_url) as db:
        failed = cli("backup", "restore", backup, "--home", tmp_path / "restored", *db, code=2)
    assert "evidence CORRUPT: 1 of 3 items" in failed.stderr and "audit log intact" in failed.stdout
