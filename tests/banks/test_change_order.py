"""Change-log writers commit in ``seq`` order on PostgreSQL, so a reader following ``seq > last`` misses nothing.

Each test holds one writer open after its append (through the audit detail callback, called between the append
and the commit) and lets a second writer run beside it. Waits are on events and on what ``pg_locks`` shows,
each with a timeout that fails the test; nothing depends on how long anything takes.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text, update

from safehold.banks import service
from safehold.banks.formats import EntryRecord
from safehold.banks.index import BankIndex
from safehold.banks.service import BankService
from safehold.store.models import BankEntry

pytestmark = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)

TIMEOUT = 30
FIRST, SECOND = "1" * 32, "2" * 32


def _record(value: str) -> EntryRecord:
    return EntryRecord(signal_type="md5", value=value)


def _run(target) -> tuple[threading.Thread, list]:
    """``target`` in a thread; the list gets what it raised, if anything."""
    errors: list = []

    def run():
        try:
            target()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def _waiting(db) -> int:
    """Transactions of this database waiting for a lock (the change log's advisory lock, or a row)."""
    with db.session() as s:
        return s.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )


class _HeldWriter:
    """Adds ``value`` to bank ``b`` in a thread and stays open after its change-log append until released."""

    def __init__(self, banks: BankService, value: str):
        self.appended, self.release = threading.Event(), threading.Event()

        def hold() -> dict:
            self.appended.set()
            assert self.release.wait(TIMEOUT)
            return {}

        self.thread, self.errors = _run(lambda: banks.add_records("b", [_record(value)], audit_detail=hold))
        assert self.appended.wait(TIMEOUT)

    def commit(self) -> None:
        self.release.set()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive() and self.errors == []


@pytest.fixture
def banks(svc) -> BankService:
    """A bank service whose writes sync no index: the test's reader syncs when the test says."""
    banks = BankService(svc.db)
    banks.create("b")
    return banks


@pytest.fixture
def reader(svc, banks) -> BankIndex:
    index = BankIndex(svc.db)
    index.load()
    return index


def _matches(index: BankIndex, value: str) -> bool:
    return bool(index.lookup("md5", value))


def test_a_later_writer_waits_so_the_reader_misses_no_change(svc, banks, reader):
    first = _HeldWriter(banks, FIRST)  # drew its seq and holds the change-log lock
    second, errors = _run(lambda: banks.add_records("b", [_record(SECOND)]))
    _until(lambda: _waiting(svc.db) == 1, "the second writer waits for the first")
    reader.sync()  # sees neither: the second cannot commit before the first
    assert not _matches(reader, FIRST) and not _matches(reader, SECOND)

    first.commit()
    second.join(TIMEOUT)
    assert not second.is_alive() and errors == []
    reader.sync()
    assert _matches(reader, FIRST) and _matches(reader, SECOND)


def test_without_the_lock_a_reader_skips_the_change_that_commits_late(svc, banks, reader, monkeypatch):
    """What the lock prevents (seen in a soak before it existed): the second writer's seq commits first and a
    reader that read it moves past the first writer's seq for good."""
    monkeypatch.setattr(service, "lock_changes", lambda s: None)
    first = _HeldWriter(banks, FIRST)
    banks.add_records("b", [_record(SECOND)])
    reader.sync()
    first.commit()
    reader.sync()
    assert _matches(reader, SECOND) and not _matches(reader, FIRST)


@pytest.mark.parametrize("change", ["disable", "delete", "delete_bank"])
def test_a_change_takes_its_rows_before_the_change_log_lock(svc, banks, reader, change):
    """A batch writer (an import) writes rows, then takes the change-log lock; disabling or deleting an entry
    whose row that batch holds, or deleting its bank, waits for the row, not while holding the change-log lock
    (a deadlock)."""
    banks.add_records("b", [_record(FIRST)])
    entry = banks.entries("b")[0]["id"]
    act = {
        "disable": lambda: banks.set_entry_enabled(entry, False),
        "delete": lambda: banks.delete_entry(entry),
        "delete_bank": lambda: banks.delete("b"),
    }
    with svc.db.session() as s:  # the batch: the entry's row first, then the change log
        s.execute(update(BankEntry).where(BankEntry.id == entry).values(note="batch"))
        thread, errors = _run(act[change])
        _until(lambda: _waiting(svc.db) == 1, f"{change} waits for the row")
        service.lock_changes(s)
    thread.join(TIMEOUT)
    assert not thread.is_alive() and errors == []
    reader.sync()
    assert entry not in reader.entries
