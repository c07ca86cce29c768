"""Everything Safehold creates under its home is its owner's alone (folders 0700, files 0600), whatever the umask
it was started with: keys, database, vault, evidence, index snapshots, exports, models."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.media import jpeg

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)  # what most shells give
    yield
    os.umask(old)


def _loose(home: Path) -> list[str]:
    bad = []
    for root, dirs, files in os.walk(home):
        for name in [*dirs, *files]:
            p = Path(root) / name
            if stat.S_IMODE(p.lstat().st_mode) & 0o077:
                bad.append(f"{p.relative_to(home)} {oct(stat.S_IMODE(p.lstat().st_mode))}")
    return bad


def test_files_under_the_home_are_owner_only_even_with_a_loose_umask(settings, loose_umask):
    from safehold.services import Services

    svc = Services(settings)
    try:
        svc.banks.create("b")
        svc.banks.add_hash("b", "md5", "a" * 32)
        svc.banks.add_file("b", jpeg(seed=3), filename="x.jpg")
        svc.vault.put(b"kept media")
        svc.evidence_store.put(b"preserved evidence")
        svc.index.sync()
        assert svc.index.save_snapshot() is not None
        from safehold.http.downloads import send_package

        def make(dest: Path) -> dict:
            os.close(os.open(dest / "pkg.zip", os.O_CREAT | os.O_WRONLY, 0o600))  # as evidence/export.py does
            return {"path": str(dest / "pkg.zip"), "sha256": "0" * 64}

        send_package(svc, make)
        from array import array

        from safehold.text.grooming.model import GroomingModel

        GroomingModel({}, array("f", [0.0]), 0.0).save(settings.home / "model.json")
    finally:
        svc.close()
    assert stat.S_IMODE(settings.home.stat().st_mode) == 0o700
    for sub in ("keys", "vault", "evidence", "index", "exports"):
        assert (settings.home / sub).is_dir(), sub
    assert _loose(settings.home) == []


def test_the_cli_sets_an_owner_only_umask(cli, tmp_path, loose_umask):
    cli("bank", "create", "b")
    cli("bank", "add-hash", "b", "md5", "b" * 32)
    out = tmp_path / "out.csv"
    cli("bank", "export", "b", out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert os.umask(0o022) == 0o077  # the command left the process owner-only
