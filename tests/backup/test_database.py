"""The database copy: PostgreSQL's client programs get the password through the environment, never the command
line, and their absence is a clear error."""

from __future__ import annotations

import subprocess

import pytest

from safehold.backup import database
from safehold.errors import SafeholdError

URL = "postgresql+psycopg://safehold:s3cret@db.example:5432/safehold"


def test_without_pg_dump_on_path_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(database.shutil, "which", lambda name: None)
    with pytest.raises(SafeholdError) as exc:
        database.dump(URL, tmp_path / "dump")
    assert exc.value.code == "backup.pg_client_missing" and "postgresql-client" in exc.value.message


def test_the_password_goes_in_the_environment_and_failures_are_masked(monkeypatch, tmp_path):
    seen = {}

    def run(args, env, **kw):
        seen.update(args=args, env=env)
        return subprocess.CompletedProcess(args, 1, "", "pg_dump: error: connection refused")

    monkeypatch.setattr(database.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(database.subprocess, "run", run)
    with pytest.raises(SafeholdError) as exc:
        database.dump(URL, tmp_path / "dump")
    assert exc.value.code == "backup.database_failed" and "connection refused" in exc.value.message
    assert "s3cret" not in " ".join(seen["args"]) and "s3cret" not in exc.value.message
    assert seen["env"]["PGPASSWORD"] == "s3cret"
    assert "--dbname=postgresql://safehold@db.example:5432/safehold" in seen["args"]


def test_other_engines_are_refused():
    with pytest.raises(SafeholdError) as exc:
        database.engine_of("mysql://x@y/z")
    assert exc.value.code == "backup.unsupported_database"
