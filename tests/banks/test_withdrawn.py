"""A source's deletion disables its entries; the same source publishing the hash again enables it again, but an
entry a person disabled stays disabled."""

from __future__ import annotations

import hashlib

from safehold.banks.formats import TOMBSTONE_SIGNAL_TYPE, EntryRecord


def md5(i: int) -> str:
    return hashlib.md5(f"withdrawn {i}".encode()).hexdigest()


def record(i: int, source: str | None = "list-a") -> EntryRecord:
    return EntryRecord("md5", md5(i), source=source, external_id=f"x{i}")


def withdrawal(i: int) -> EntryRecord:
    return EntryRecord(TOMBSTONE_SIGNAL_TYPE, "", source="list-a", external_id=f"x{i}")


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


def test_another_source_or_a_person_does_not_bring_it_back(svc):
    svc.banks.create("b")
    svc.banks.add_records("b", [record(0), record(1)])
    svc.banks.add_records("b", [withdrawal(0)])
    assert svc.banks.add_records("b", [record(0, source="list-b")]).added == 0
    assert state(svc)[md5(0)] is False
    svc.banks.set_enabled_by_value("b", "md5", md5(1), False)  # a person's decision
    assert svc.banks.add_records("b", [record(1)]).added == 0
    assert state(svc)[md5(1)] is False
