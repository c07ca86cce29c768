"""The per-process bank index: incremental catch-up from the change log, snapshots, replay safety."""

from __future__ import annotations

import numpy as np

from safehold.banks.index import BankIndex
from safehold.services import Services


def _hex(rng) -> str:
    return rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()


def _flip(hex_value: str, bits: int) -> str:
    b = bytearray(bytes.fromhex(hex_value))
    for i in range(bits):
        b[i // 8] ^= 1 << (i % 8)
    return b.hex()


def test_second_process_sees_new_entries_after_one_upkeep_round(svc, settings):
    """Behaviour only: how soon is measured by the benchmarks (bench/exchange_sync.py: time until matchable), not
    by a timed test on a shared machine."""
    other = Services(settings)  # another worker on the same database
    try:
        svc.banks.create("b")
        rng = np.random.default_rng(1)
        h = _hex(rng)
        svc.banks.add_hash("b", "pdq", h)
        other.maintain_once()
        assert other.scans.scan_hash("pdq", _flip(h, 5)).verdict == "match"

        entry = svc.banks.entries("b")[0]
        svc.banks.set_entry_enabled(entry["id"], False)
        other.maintain_once()
        assert other.scans.scan_hash("pdq", h).verdict == "no_match"
    finally:
        other.close()


def test_snapshot_round_trip_and_catch_up(svc, settings):
    svc.banks.create("b")
    rng = np.random.default_rng(2)
    values = [_hex(rng) for _ in range(50)]
    for v in values[:40]:
        svc.banks.add_hash("b", "pdq", v)
    svc.banks.add_hash("b", "md5", "1" * 32)
    assert svc.index.save_snapshot() is not None

    # Changes after the snapshot are replayed on load.
    for v in values[40:]:
        svc.banks.add_hash("b", "pdq", v)
    first = svc.banks.entries("b", signal_type="pdq")[0]
    svc.banks.delete_entry(first["id"])

    fresh = BankIndex(svc.db, snapshot_dir=settings.index_dir)
    fresh.load()
    assert len(fresh.indexes["pdq"]) == 49 and len(fresh.indexes["md5"]) == 1
    assert fresh.lookup("pdq", first["value"]) == []
    assert [c.entry_id for c in fresh.lookup("md5", "1" * 32)]
    # Each entry's bank, from the snapshot and from the changes after it; a deleted entry's is gone.
    bank_id = svc.banks.get("b").id
    assert {fresh.entries.bank(e["id"]) for e in svc.banks.entries("b")} == {bank_id}
    assert first["id"] not in fresh.entries and fresh.entries.bank(first["id"]) is None


def test_an_entry_added_and_deleted_before_a_sync_is_never_indexed(svc, settings):
    """A second process replaying an entry's add and its deletion at once ends with the entry out of the index
    (and of the record of entries' banks), the entry added beside it in."""
    other = Services(settings)  # built before the entries: it learns of them from the log alone
    try:
        svc.banks.create("b")
        gone = svc.banks.add_hash("b", "md5", "4" * 32)
        kept = svc.banks.add_hash("b", "md5", "5" * 32)
        svc.banks.delete_entry(gone["id"])
        other.maintain_once()
        assert gone["id"] not in other.index.entries and kept["id"] in other.index.entries
        assert other.index.lookup("md5", "4" * 32) == [] and len(other.index.indexes["md5"]) == 1
    finally:
        other.close()


def test_snapshot_from_another_database_is_ignored(svc, settings, tmp_path):
    from safehold.config import Settings

    svc.banks.create("b")
    svc.banks.add_hash("b", "md5", "2" * 32)
    svc.index.save_snapshot()
    # A new, empty database pointed at the same snapshot folder must not inherit its entries.
    other_settings = Settings(home=settings.home, database_url=f"sqlite:///{tmp_path / 'other.db'}")
    other = Services(other_settings)
    try:
        assert other.index.lookup("md5", "2" * 32) == []
    finally:
        other.close()


def test_replaying_changes_twice_is_harmless(svc):
    svc.banks.create("b")
    svc.banks.add_hash("b", "md5", "3" * 32)
    svc.index.last_seq = 0  # as if the log were read again from the start
    svc.index.sync()
    assert len(svc.index.indexes["md5"]) == 1
    assert len(svc.index.lookup("md5", "3" * 32)) == 1


def test_bank_delete_removes_its_entries_from_the_index(svc):
    svc.banks.create("b")
    rng = np.random.default_rng(3)
    h = _hex(rng)
    svc.banks.add_hash("b", "pdq", h)
    svc.banks.delete("b")
    assert svc.index.lookup("pdq", h) == []
    assert len(svc.index.indexes.get("pdq", ())) == 0


def test_vpdq_entries_survive_a_snapshot_and_an_old_snapshot_is_rebuilt(svc, settings):
    import json

    frames = [_hex(np.random.default_rng(10 + i)) for i in range(5)]
    video = json.dumps([f"{f},100,{i}.0" for i, f in enumerate(frames)])
    svc.banks.create("b")
    svc.banks.add_hash("b", "vpdq", video)
    path = svc.index.save_snapshot()

    fresh = BankIndex(svc.db, snapshot_dir=settings.index_dir)
    fresh.load()
    (c,) = fresh.lookup("vpdq", json.dumps([f"{f},100,{i}.0" for i, f in enumerate(frames[:4])]))
    assert c.extra["is_match"] and c.extra["query_match_percent"] == 100.0

    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "version": 1}))  # a snapshot of the old layout
    old = BankIndex(svc.db, snapshot_dir=settings.index_dir)
    assert not old._load_snapshot()
    old.load()  # rebuilt from the database
    assert len(old.indexes["vpdq"]) == 1


def test_a_vpdq_bank_matches_at_its_own_frame_threshold(svc):
    """Frames 20 bits away match the bank at 31, not the bank at 10, though the index compared once at 31."""
    import json

    frames = [_hex(np.random.default_rng(20 + i)) for i in range(5)]
    svc.banks.create("wide", thresholds={"vpdq": 31})
    svc.banks.create("narrow", thresholds={"vpdq": 10})
    for bank in ("wide", "narrow"):
        svc.banks.add_hash(bank, "vpdq", json.dumps([f"{f},100,{i}.0" for i, f in enumerate(frames)]))
    near = json.dumps([f"{_flip(f, 20)},100,{i}.0" for i, f in enumerate(frames)])
    (match,) = svc.scans.scan_hash("vpdq", near).matches
    assert match.bank == "wide" and match.detail == {
        "query_match_percent": 100.0,
        "target_match_percent": 100.0,
        "is_match": True,
    }
    same = json.dumps([f"{f},100,{i}.0" for i, f in enumerate(frames[:4])] + [f"{_flip(frames[4], 20)},100,4.0"])
    found = {m.bank: m.detail["query_match_percent"] for m in svc.scans.scan_hash("vpdq", same).matches}
    assert found == {"wide": 100.0, "narrow": 80.0}  # each bank's own percentages


def test_two_processes_snapshotting_at_once_keep_one_whole_snapshot(tmp_path, monkeypatch):
    """Servers sharing SAFEHOLD_HOME may snapshot together: the one whose rename loses drops its own folder and
    never the winner's, and retired/temporary names differ even with the same pid on two hosts."""
    from pathlib import Path

    from safehold.banks import index as index_mod
    from safehold.home import unique_suffix

    monkeypatch.setattr("os.getpid", lambda: 1234)
    assert unique_suffix() != unique_suffix()

    final = tmp_path / "snapshot"
    final.mkdir()
    (final / "meta.json").write_text("first")
    ours = tmp_path / "snapshot.tmp-a"
    ours.mkdir()
    (ours / "meta.json").write_text("ours")
    real_rename = Path.rename

    def rename_then_other_lands(self, target):
        out = real_rename(self, target)
        if self == final and not final.exists():  # another server swaps its snapshot in between our renames
            final.mkdir()
            (final / "meta.json").write_text("theirs")
        return out

    monkeypatch.setattr(Path, "rename", rename_then_other_lands)
    index_mod._swap_in(ours, final, tmp_path / "snapshot.old-a")
    assert (final / "meta.json").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot"]

    monkeypatch.setattr(Path, "rename", real_rename)
    ours.mkdir()
    (ours / "meta.json").write_text("ours")
    index_mod._swap_in(ours, final, tmp_path / "snapshot.old-b")
    assert (final / "meta.json").read_text() == "ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot"]


def test_a_log_row_without_its_bank_takes_it_from_the_entry(svc, settings):
    """Adds written before migration 0009 name no bank: replay reads it from the entry's row."""
    from sqlalchemy import update

    from safehold.store.models import IndexChange

    other = Services(settings)  # learns of the entry from the log alone
    try:
        svc.banks.create("b")
        entry = svc.banks.add_hash("b", "md5", "6" * 32)
        with svc.db.session() as s:
            s.execute(update(IndexChange).where(IndexChange.entry_id == entry["id"]).values(bank_id=None))
        other.maintain_once()
        assert other.index.entries.bank(entry["id"]) == svc.banks.get("b").id
    finally:
        other.close()
