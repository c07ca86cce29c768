"""Where the store lives, and that only `db upgrade` and `serve` ever create one (issue "The first hour")."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from safehold import home as home_mod
from safehold.errors import SafeholdError
from tests.conftest import PG_ADMIN, PG_OK, REPO, _pg_url


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    return {**env, "SAFEHOLD_HOME": str(tmp_path / "store"), **extra}


def _safehold(env: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "safehold", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


# --- resolution ----------------------------------------------------------------------------------------------


def test_safehold_home_wins(tmp_path):
    found = home_mod.resolve_home({"SAFEHOLD_HOME": str(tmp_path / "x")})
    assert found.path == tmp_path / "x"
    assert "SAFEHOLD_HOME" in found.reason


def test_source_checkout_uses_its_var_whatever_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("SAFEHOLD_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    found = home_mod.resolve_home()
    assert found.path == REPO / "var"
    assert "source checkout" in found.reason

    from safehold.config import Settings

    assert Settings().home == REPO / "var"


def test_installed_package_uses_the_per_user_data_folder(tmp_path, monkeypatch):
    other = tmp_path / "site-packages"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "something-else"\n')
    monkeypatch.setattr(home_mod, "_CHECKOUT", other)
    assert home_mod.checkout_root() is None
    found = home_mod.resolve_home({"XDG_DATA_HOME": str(tmp_path / "data")})
    assert found.path == tmp_path / "data" / "safehold"
    assert "per-user" in found.reason
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert home_mod.resolve_home({}).path == tmp_path / "me" / ".local" / "share" / "safehold"


def test_masked_url_hides_the_password_only():
    assert home_mod.masked_url("postgresql+psycopg://bob:s3:cr@t@db:5432/safehold") == (
        "postgresql+psycopg://bob:***@db:5432/safehold"
    )
    assert home_mod.masked_url("postgresql://bob@db/safehold") == "postgresql://bob@db/safehold"
    assert home_mod.masked_url("sqlite:////var/lib/safehold.db") == "sqlite:////var/lib/safehold.db"


# --- commands ------------------------------------------------------------------------------------------------


def test_reading_commands_never_create_a_store(tmp_path):
    env = _env(tmp_path)
    store = tmp_path / "store"
    corpus = REPO / "tests" / "data" / "grooming"
    train = ["text", "train", corpus / "conversations.xml", corpus / "predators.txt"]  # its model goes in the store
    for args in (["apikey", "list"], ["bank", "list"], ["db", "status"], train):
        done = _safehold(env, *args, cwd=tmp_path)
        assert done.returncode == 2, done
        assert done.stderr.strip() == (
            f"error [store.not_found]: No Safehold store at {store} (set by SAFEHOLD_HOME). Create it with "
            "`safehold db upgrade`, or set SAFEHOLD_HOME to an existing store."
        )
        assert not store.exists()
        assert not (tmp_path / "var").exists()


def test_db_upgrade_creates_an_owner_only_store_that_version_reports(tmp_path):
    env = _env(tmp_path)
    store = tmp_path / "store"
    done = _safehold(env, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    assert stat.S_IMODE((store / "safehold.db").stat().st_mode) == 0o600
    assert _safehold(env, "apikey", "list").returncode == 0
    version = _safehold(env, "--version").stdout
    assert f"home      {store}  (set by SAFEHOLD_HOME)" in version
    assert f"database  sqlite:///{store / 'safehold.db'}" in version


def test_version_masks_the_database_password_and_says_a_missing_home(tmp_path):
    env = _env(tmp_path, SAFEHOLD_DATABASE_URL="postgresql+psycopg://bob:hunter2@127.0.0.1:1/safehold")
    done = _safehold(env, "--version")
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout
    assert "database  postgresql+psycopg://bob:***@127.0.0.1:1/safehold" in done.stdout
    assert "does not exist yet" in done.stdout
    assert not (tmp_path / "store").exists()


@pytest.mark.postgres
def test_postgres_database_without_schema_is_not_a_store(tmp_path):
    if not PG_OK:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")
    import uuid

    import psycopg

    from safehold.config import Settings
    from safehold.services import Services

    name = f"safehold_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        (tmp_path / "home").mkdir()
        settings = Settings(home=tmp_path / "home", database_url=_pg_url(name))
        with pytest.raises(SafeholdError) as info:
            Services(settings, load_index=False, create=False)
        assert info.value.code == "store.not_found"
        assert "has no Safehold tables" in info.value.message
        Services(settings, load_index=False, create=True).close()  # what `db upgrade` / `serve` do
        Services(settings, load_index=False, create=False).close()
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
