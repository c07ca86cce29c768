"""Bulk imports: checked whole first, written in batches that leave room for other writers, resumable after a crash
(including a ``kill -9`` of the importing process), on both backends."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from safehold.store.models import BankEntry, ImportJob, IndexChange

REPO = Path(__file__).resolve().parents[2]


def _csv(n: int, start: int = 0, extra: str = "") -> bytes:
    rows = "".join(f"md5,{i:032x},own,id{i}\n" for i in range(start, start + n))
    return ("signal_type,value,source,external_id\n" + rows + extra).encode()


def _count(svc, model, *where) -> int:
    with svc.db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_import_commits_batch_by_batch_with_its_change_log(svc):
    svc.banks.create("b")
    svc.banks.batch_rows = 3
    report = svc.banks.import_stream("b", io.BytesIO(_csv(10)), filename="list.csv", added_by="cli")
    assert report.committed and (report.read, report.added, report.batches) == (10, 10, 4)
    assert _count(svc, BankEntry) == 10 and _count(svc, IndexChange, IndexChange.op == "add") == 10
    (job,) = svc.banks.import_jobs("b")
    assert (job["status"], job["rows_done"], job["rows_total"], job["added"], job["batches"]) == ("done", 10, 10, 10, 4)
    assert job["source_name"] == "list.csv" and job["format"] == "csv" and len(job["sha256"]) == 64
    [rec] = [r for r in svc.audit.list() if r["action"] == "bank.import"]
    assert rec["detail"]["added"] == 10 and rec["detail"]["job"] == job["id"]
    svc.index.sync()
    assert svc.index.lookup("md5", f"{7:032x}")


def test_all_or_nothing_checks_the_whole_file_before_the_first_batch(svc):
    svc.banks.create("b")
    svc.banks.batch_rows = 2
    report = svc.banks.import_stream("b", io.BytesIO(_csv(9, extra="md5,nothex,own,x\n")), added_by="cli")
    assert not report.committed and report.invalid == 1 and report.added == 0
    assert _count(svc, BankEntry) == 0 and _count(svc, ImportJob) == 0
    skipped = svc.banks.import_stream("b", io.BytesIO(_csv(9, extra="md5,nothex,own,x\n")), skip_invalid=True)
    assert skipped.committed and skipped.added == 9 and skipped.invalid == 1 and _count(svc, BankEntry) == 9


def test_dry_run_counts_without_writing(svc):
    svc.banks.create("b")
    svc.banks.add_hash("b", "md5", f"{1:032x}")
    data = _csv(5) + f"md5,{2:032x},own,again\n".encode()  # one already in the bank, one twice in the file
    report = svc.banks.import_stream("b", io.BytesIO(data), dry_run=True)
    assert (report.read, report.added, report.duplicates, report.committed) == (6, 4, 2, False)
    assert _count(svc, BankEntry) == 1 and _count(svc, ImportJob) == 0


def test_tombstones_apply_after_every_entry_whatever_the_batch(svc):
    svc.banks.create("b")
    svc.banks.batch_rows = 2
    tomb = "*,,own,id1,,,false\n"
    data = ("signal_type,value,source,external_id,category,note,enabled\n" + tomb).encode()
    data += b"".join(f"md5,{i:032x},own,id{i},,,\n".encode() for i in range(5))
    report = svc.banks.import_stream("b", io.BytesIO(data))
    assert report.committed and report.added == 5 and report.withdrawn == 1
    assert _count(svc, BankEntry, BankEntry.enabled.is_(False)) == 1
    assert _count(svc, IndexChange, IndexChange.op == "remove") == 1


def test_a_failed_import_resumes_after_its_last_committed_batch(svc, monkeypatch):
    from safehold.banks import service

    svc.banks.create("b")
    svc.banks.batch_rows = 4
    real, calls = service._append_changes, []

    def crash_on_third(s, changes):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("power cut")
        real(s, changes)

    monkeypatch.setattr(service, "_append_changes", crash_on_third)
    with pytest.raises(RuntimeError):
        svc.banks.import_stream("b", io.BytesIO(_csv(18)))
    assert _count(svc, BankEntry) == 8  # two batches committed, the third rolled back
    monkeypatch.setattr(service, "_append_changes", real)
    report = svc.banks.import_stream("b", io.BytesIO(_csv(18)))
    assert report.committed and report.resumed and report.resumed_at == 8
    assert (report.added, report.duplicates) == (18, 0)
    assert _count(svc, BankEntry) == 18 and _count(svc, IndexChange, IndexChange.op == "add") == 18
    (job,) = svc.banks.import_jobs()
    assert job["status"] == "done" and job["resumes"] == 1
    # The same file once more is a new import of duplicates, not a resume.
    again = svc.banks.import_stream("b", io.BytesIO(_csv(18)))
    assert not again.resumed and (again.added, again.duplicates) == (0, 18)


def test_other_writers_get_in_between_batches(svc, database_url):
    """Old code: the whole import was one transaction, so a writer that does not wait fails until it ends (SQLite:
    "database is locked"; PostgreSQL: the change log was locked table-wide)."""
    svc.banks.create("b")
    svc.banks.batch_rows = 50
    engine = create_engine(database_url)
    seen: list[tuple[int, int]] = []
    phases: list[str] = []

    def other_writer(_n):
        if len(seen) > 3 or phases[-1:] != ["importing"]:
            return
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA busy_timeout=0")
            else:
                conn.execute(text("SET LOCAL lock_timeout = '1s'"))
            conn.execute(text("INSERT INTO index_changes (op, at) VALUES ('banks', CURRENT_TIMESTAMP)"))
            entries = conn.execute(text("SELECT count(*) FROM bank_entries")).scalar()
            seen.append((len(seen), entries))

    report = svc.banks.import_stream("b", io.BytesIO(_csv(500)), progress=other_writer, phase=phases.append)
    engine.dispose()
    assert report.committed and report.added == 500
    assert len(seen) == 4 and 0 < seen[-1][1] < 500  # written and committed while the import was still running


def _safehold(env, *args, **kw):
    return subprocess.Popen([sys.executable, "-m", "safehold", *args], env=env, **kw)


def test_killed_import_resumes_without_duplicates(settings, tmp_path):
    """A ``safehold bank import`` killed with SIGKILL mid-import; running it again finishes it and says so."""
    from safehold.services import Services

    n = 20_000
    svc = Services(settings, load_index=False)
    svc.banks.create("big")
    path = tmp_path / "big.csv"
    path.write_bytes(_csv(n))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "SAFEHOLD_HOME": str(settings.home),
        "SAFEHOLD_DATABASE_URL": settings.effective_database_url,
        "SAFEHOLD_IMPORT_BATCH_ROWS": "1000",
    }
    proc = _safehold(env, "bank", "import", "big", str(path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if _count(svc, BankEntry) >= 3000:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the import finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_at_kill = _count(svc, BankEntry)
    assert 0 < done_at_kill < n
    (job,) = svc.banks.import_jobs("big")
    assert job["status"] == "adding" and job["rows_done"] == done_at_kill  # entries and progress commit together
    again = subprocess.run(
        [sys.executable, "-m", "safehold", "bank", "import", "big", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert f"resumed import job {job['id']}: {done_at_kill} of {n} records were already written" in again.stdout
    assert f"{n} read, {n} added, 0 duplicates" in again.stdout
    assert _count(svc, BankEntry) == n
    assert _count(svc, IndexChange, IndexChange.op == "add") == n
    with svc.db.session() as s:
        assert s.scalar(select(func.count(func.distinct(BankEntry.value)))) == n
    (job,) = svc.banks.import_jobs("big")
    assert job["status"] == "done" and job["rows_done"] == n and job["resumes"] == 1
    svc.close()


def test_two_runs_of_one_import_cannot_both_advance_it(svc):
    from sqlalchemy import update

    from safehold.errors import SafeholdError

    svc.banks.create("b")
    svc.banks.batch_rows = 5
    phases: list[str] = []

    def other_run_moves_the_job(_n):
        if phases[-1:] == ["importing"] and _count(svc, BankEntry) == 5:
            with svc.db.session() as s:
                s.execute(update(ImportJob).values(rows_done=ImportJob.rows_done + 5))

    with pytest.raises(SafeholdError) as exc:
        svc.banks.import_stream("b", io.BytesIO(_csv(20)), progress=other_run_moves_the_job, phase=phases.append)
    assert exc.value.code == "import.concurrent" and exc.value.status == 409
    assert _count(svc, BankEntry) == 5  # the refused batch was rolled back
