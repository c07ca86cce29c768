"""A consistent copy of the database while the server runs, and putting one back into an empty target.

- **SQLite**: the online backup API (``sqlite3.Connection.backup``), in one step, so the copy is a single
  consistent state however busy the server is (a copy in several steps restarts whenever another connection
  writes). The copy is switched out of WAL mode so it is one self-contained file.
- **PostgreSQL**: ``pg_dump -Fc`` (one transaction snapshot) and ``pg_restore --single-transaction`` (all or
  nothing). The client programs must be on ``PATH`` at the server's major version or newer (Debian:
  ``apt install postgresql-client``). The password goes to them through ``PGPASSWORD``, never on the command
  line, where any user could read it in the process list.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from safehold.errors import SafeholdError
from safehold.home import masked_url, sqlite_file

#: The member each engine's copy is stored as.
MEMBERS = {"sqlite": "database/safehold.db", "postgresql": "database/safehold.pgdump"}
#: How much of a failed pg_dump / pg_restore's own message is shown.
STDERR_CHARS = 2000


def engine_of(url: str) -> str:
    """``sqlite`` or ``postgresql`` (the engines Safehold runs on); another is ``backup.unsupported_database``."""
    name = make_url(url).get_backend_name()
    if name not in MEMBERS:
        raise SafeholdError("backup.unsupported_database", f"Cannot back up or restore a {name} database.")
    return name


def dump(url: str, dest: Path) -> None:
    """Write a consistent copy of the database at ``url`` to ``dest`` (a new file)."""
    if engine_of(url) == "sqlite":
        _sqlite_copy(_sqlite_path(url), dest)
    else:
        _run("pg_dump", ["--format=custom", "--no-owner", "--no-privileges", f"--file={dest}"], url)


def restore(source: Path, url: str) -> None:
    """Put the copy at ``source`` into the database at ``url``, which :func:`require_empty` has checked."""
    if engine_of(url) == "sqlite":
        target = _sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.unlink(missing_ok=True)  # an empty (0-byte) file, which require_empty allows
        shutil.move(source, target)
        os.chmod(target, 0o600)
    else:
        args = ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", str(source)]
        _run("pg_restore", args, url)


def require_empty(url: str) -> None:
    """Refuse (``backup.target_not_empty``) a target that holds anything: a SQLite file with content, or a
    PostgreSQL database with any table, view or sequence outside the system schemas. A missing PostgreSQL
    database is ``backup.database_unreachable``: create it first (``createdb``)."""
    if engine_of(url) == "sqlite":
        path = _sqlite_path(url)
        if path.exists() and path.stat().st_size > 0:
            raise SafeholdError("backup.target_not_empty", f"{path} already holds a database: restore into a new one.")
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            held = conn.execute(
                text(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname !~ '^(pg_|information_schema$)' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
                )
            ).scalar()
    except Exception as exc:
        raise SafeholdError(
            "backup.database_unreachable",
            f"Cannot connect to {masked_url(url)} ({type(exc).__name__}): create the database first.",
        ) from None
    finally:
        engine.dispose()
    if held:
        raise SafeholdError(
            "backup.target_not_empty",
            f"{masked_url(url)} already holds {held} relations: restore into an empty database.",
        )


def _sqlite_path(url: str) -> Path:
    path = sqlite_file(url)
    if path is None:
        raise SafeholdError("backup.unsupported_database", "An in-memory SQLite database cannot be backed up.")
    return path


def _sqlite_copy(source: Path, dest: Path) -> None:
    if not source.is_file():
        raise SafeholdError("backup.database_unreachable", f"No database file at {source}.")
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)  # every page in one step: one consistent state
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise SafeholdError("backup.database_failed", f"Copying {source} failed: {exc}.") from None
    finally:
        src.close()


def _run(program: str, args: list[str], url: str) -> None:
    """Run a PostgreSQL client program on ``url``'s database; its failure is ``backup.database_failed`` with the
    program's own message."""
    exe = shutil.which(program)
    if exe is None:
        raise SafeholdError(
            "backup.pg_client_missing",
            f"{program} is not on PATH: install the PostgreSQL client programs of the server's major version or "
            "newer (Debian: apt install postgresql-client).",
        )
    u = make_url(url)
    env = {**os.environ}
    if u.password is not None:
        env["PGPASSWORD"] = str(u.password)
    # Built anew: ``URL.set(password=None)`` leaves the password in place.
    bare = URL.create("postgresql", username=u.username, host=u.host, port=u.port, database=u.database, query=u.query)
    dsn = bare.render_as_string(hide_password=False)
    done = subprocess.run([exe, f"--dbname={dsn}", *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = done.stderr.strip()[-STDERR_CHARS:] or f"exit status {done.returncode}"
        raise SafeholdError("backup.database_failed", f"{program} failed on {masked_url(url)}: {message}")
