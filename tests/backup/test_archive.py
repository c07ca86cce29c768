"""Reading a backup trusts nothing in it: damaged bytes, unexpected or hostile members (path traversal, links,
members larger than the manifest says), a wrong manifest are each refused with a clear code, and nothing is
ever written outside the target."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from safehold.backup import archive, service
from safehold.backup.archive import open_archive
from safehold.config import Settings
from safehold.errors import SafeholdError

BLOB = "evidence/ab/" + "ab" * 32


def build(path, members: list[tuple[tarfile.TarInfo, bytes]], files: list[dict] | None = None, **manifest) -> None:
    """A tar of ``members`` and a manifest listing ``files`` (by default: each regular member, correctly)."""
    if files is None:
        files = [
            {"path": i.name, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for i, d in members if i.isfile()
        ]
    body = {"format": archive.FORMAT, "format_version": 1, "kind": "store", "files": files, **manifest}
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in [*members, (tarfile.TarInfo("manifest.json"), json.dumps(body).encode())]:
            if info.isfile():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


def member(name: str, kind=tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def refused(path, code="backup.invalid_archive") -> str:
    with pytest.raises(SafeholdError) as exc:
        service.verify(path)
    assert exc.value.code == code
    return exc.value.message


def test_a_well_formed_archive_verifies(tmp_path):
    build(tmp_path / "a", [(member(BLOB), b"sealed")], created_at="2026-01-01T00:00:00+00:00")
    assert service.verify(tmp_path / "a")["files"] == 1


def test_a_flipped_byte_is_caught(tmp_path):
    path = tmp_path / "a"
    build(path, [(member(BLOB), b"sealed bytes")])
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"sealed bytes", b"sealed bytez"))
    assert "does not match its SHA-256" in refused(path, "backup.checksum_mismatch")


@pytest.mark.parametrize(
    "name", ["../escape", "/etc/evil", "vault/../../escape", "evidence/ab/../../../x", "keys/other.key", "notes.txt"]
)
def test_unexpected_names_and_traversal_are_refused(tmp_path, name):
    build(tmp_path / "a", [(member(name), b"x")])
    assert "Unexpected member" in refused(tmp_path / "a")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
def test_links_folders_and_devices_are_refused(tmp_path, kind):
    build(tmp_path / "a", [(member(BLOB, kind, linkname="/etc/passwd"), b"")], files=[])
    assert "not a regular file" in refused(tmp_path / "a")


def test_a_member_larger_than_the_manifest_says_is_refused(tmp_path):
    build(tmp_path / "a", [(member(BLOB), b"x" * 100)], files=[{"path": BLOB, "size": 10, "sha256": "0" * 64}])
    assert "the manifest says 10" in refused(tmp_path / "a")


@pytest.mark.parametrize(
    ("manifest", "code", "says"),
    [
        ({"format": "other"}, "backup.invalid_archive", "not a Safehold backup manifest"),
        ({"format_version": 99}, "backup.unsupported_version", "format version 99"),
        ({"kind": "everything"}, "backup.invalid_archive", "kind"),
        ({"files": [{"path": BLOB, "size": 1, "sha256": "0" * 64}]}, "backup.invalid_archive", "missing from"),
        ({"files": [{"path": "../x", "size": 1, "sha256": "0" * 64}]}, "backup.invalid_archive", "unexpected"),
    ],
)
def test_a_wrong_manifest_is_refused(tmp_path, manifest, code, says):
    build(tmp_path / "a", [], **manifest)
    assert says in refused(tmp_path / "a", code)


def test_members_missing_from_the_manifest_and_repeated_members_are_refused(tmp_path):
    build(tmp_path / "a", [(member(BLOB), b"x")], files=[])
    assert "not in its manifest" in refused(tmp_path / "a")
    build(tmp_path / "b", [(member(BLOB), b"x"), (member(BLOB), b"y")], files=[])
    assert "appears twice" in refused(tmp_path / "b")


def test_not_a_tar_and_no_manifest(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x00garbage" * 200)
    refused(tmp_path / "junk")
    with tarfile.open(tmp_path / "bare", "w"):
        pass
    assert "no manifest.json" in refused(tmp_path / "bare")
    assert refused(tmp_path / "missing", "backup.not_found")


def test_extraction_never_leaves_the_target(tmp_path):
    """Even past the name checks, extraction builds its own paths and creates files new, never via a link."""
    build(tmp_path / "a", [(member(BLOB), b"sealed")])
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "evidence").mkdir()
    (dest / "evidence" / "ab").symlink_to(tmp_path / "outside", target_is_directory=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / ("ab" * 32)).symlink_to(tmp_path / "victim")
    a = open_archive(tmp_path / "a")
    try:
        with pytest.raises(OSError):
            a.extract([BLOB], dest)
    finally:
        a.close()
    assert not (tmp_path / "victim").exists()


def test_a_hostile_archive_is_refused_by_restore_without_writing(tmp_path):
    build(tmp_path / "a", [(member("../../escape"), b"x")], engine="sqlite", schema_revision="0001")
    target = Settings(home=tmp_path / "restored", database_url=None)
    with pytest.raises(SafeholdError) as exc:
        service.restore(tmp_path / "a", target)
    assert exc.value.code == "backup.invalid_archive"
    assert not target.home.exists() and not (tmp_path.parent / "escape").exists()


def test_a_backup_of_a_newer_schema_is_refused(tmp_path):
    build(tmp_path / "a", [], engine="sqlite", schema_revision="9999")
    target = Settings(home=tmp_path / "restored", database_url=None)
    with pytest.raises(SafeholdError) as exc:
        service.restore(tmp_path / "a", target)
    assert exc.value.code == "backup.newer_schema"
    assert not target.home.exists()


def test_a_huge_extended_header_is_refused_before_it_is_read(tmp_path):
    """A pax header claiming gigabytes: refused by its claimed size, never allocated."""
    header = member("x" * 10, tarfile.XHDTYPE)
    header.size = 4 * 1024**3
    block = header.tobuf(tarfile.GNU_FORMAT)
    (tmp_path / "a").write_bytes(block + b"\0" * 2048)
    assert "read at once" in refused(tmp_path / "a")
