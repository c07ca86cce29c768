"""``safehold bank add`` keeps a banked file's name, never the operator's path to it (issue "The first hour")."""

from __future__ import annotations

from tests.media import jpeg


def test_bank_add_stores_the_file_name_not_the_operators_path(cli, tmp_path, svc):
    private = tmp_path / "home-of-the-admin" / "evidence"
    private.mkdir(parents=True)
    (private / "known.jpg").write_bytes(jpeg(7))
    cli("bank", "create", "known-images")
    cli("bank", "add", "known-images", private.resolve(), "-j", "1")
    entries = svc.banks.entries("known-images")
    assert entries and all(e["metadata"] == {"filename": "known.jpg"} for e in entries)
    assert all("home-of-the-admin" not in repr(e) for e in entries)
