"""A source's deletion disables its entries once no publisher is left for them; a publisher listing the hash again
enables it again, but an entry a person disabled stays disabled."""

from __future__ import annotations

import hashlib

from safehold.banks.formats import TOMBSTONE_SIGNAL_TYPE, EntryRecord


def md5(i: int) -> str:
    return hashlib.md5(f"withdrawn {i}".encode()).hexdigest()


def record(i: int, source: str | None = "list-a") -> EntryRecord:
    return EntryRecord("md5", md5(i), source=source, external_id=f"x{i}")


def withdrawal(i: int | str, source: str = "list-a") -> EntryRecord:
    return EntryRecord(TOMBSTONE_SIGNAL_TYPE, "", source=source, external_id=i if isinstance(i, str) else f"x{i}")


def state(svc) -> dict[str, bool]:
    return {e["value"]: e["enabled"] for e in svc.banks.entries("b")}


def test_republished_by_its_source_comes_back(svc):
    svc.banks.create("b")
    svc.banks.add_records("b", [record(0), record(1)])
    assert svc.banks.add_records("b", [withdrawal(0)]).withdrawn == 1
    assert state(svc) == {md5(0): False, md5(1): True}
    report = svc.banks.add_records("b", [record(0)])
    assert report.added == 1 and state(svc) == {md5(0): True, md5(1): True}
    svc.index.sync()
    assert [m.bank for m in svc.scans.scan_hash("md5", md5(0)).matches] == ["b"]  # matchable again


def test_a_person_disabling_it_is_not_undone_by_a_publisher(svc):
    svc.banks.create("b")
    svc.banks.add_records("b", [record(1)])
    svc.banks.set_enabled_by_value("b", "md5", md5(1), False)  # a person's decision
    assert svc.banks.add_records("b", [record(1)]).added == 0
    assert svc.banks.add_records("b", [record(1, source="list-b")]).added == 0
    assert state(svc)[md5(1)] is False


def test_a_hash_still_listed_under_another_id_stays(svc):
    svc.banks.create("b")
    same = [EntryRecord("md5", md5(0), source="list-a", external_id=x) for x in ("A", "B")]
    svc.banks.add_records("b", same)
    assert svc.banks.add_records("b", [withdrawal("A")]).withdrawn == 0
    assert state(svc)[md5(0)] is True
    assert svc.banks.add_records("b", [withdrawal("B")]).withdrawn == 1
    assert state(svc)[md5(0)] is False


def test_a_hash_another_source_still_publishes_stays_and_any_publisher_brings_it_back(svc):
    svc.banks.create("b")
    svc.banks.add_records("b", [record(0), record(0, source="list-b")])
    assert svc.banks.add_records("b", [withdrawal(0)]).withdrawn == 0  # list-b still publishes it
    assert svc.banks.add_records("b", [withdrawal(0, source="list-b")]).withdrawn == 1
    assert state(svc)[md5(0)] is False
    assert svc.banks.add_records("b", [record(0, source="list-c")]).added == 1  # published again: back
    assert state(svc)[md5(0)] is True


def test_an_entry_a_person_added_is_not_withdrawn_by_a_source_that_also_lists_it(svc):
    svc.banks.create("b")
    svc.banks.add_hash("b", "md5", md5(0))  # a person's entry, no source
    svc.banks.add_records("b", [record(0)])
    assert svc.banks.add_records("b", [withdrawal(0)]).withdrawn == 0
    assert state(svc)[md5(0)] is True


def test_a_deletion_without_a_source_touches_only_entries_without_one(svc):
    svc.banks.create("b")
    svc.banks.add_records("b", [record(0, source=None), record(1)])
    deletions = [EntryRecord(TOMBSTONE_SIGNAL_TYPE, "", external_id=f"x{i}") for i in (0, 1)]
    assert svc.banks.add_records("b", deletions).withdrawn == 1
    assert state(svc) == {md5(0): False, md5(1): True}
