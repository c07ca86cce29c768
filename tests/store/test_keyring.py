"""Key rings: every key of the ring opens what it sealed, a process notices a rotation made by another within
SAFEHOLD_KEY_CHECK_SECONDS (tested with two real processes sharing a home), derived secrets never change."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safehold.errors import SafeholdError
from safehold.store.keyring import Keyring, KeySource, install_new_key
from safehold.store.sealing import LocalKey, Sealer, parse_head, write_private
from safehold.store.vault import MediaVault

CHILD = """
import sys
from pathlib import Path
from safehold.config import Settings
from safehold.store.keyring import ring_for
from safehold.store.sealing import Sealer, parse_head
from safehold.store.vault import MediaVault

settings = Settings(home=Path(sys.argv[1]), key_check_seconds=float(sys.argv[2]))
vault = MediaVault(settings.vault_dir, Sealer(ring_for(settings, "instance")))
for line in sys.stdin:
    cmd, arg = line.split()
    if cmd == "put":
        sha = vault.put(arg.encode()).sha256
        print(sha, parse_head(vault._path(sha).read_bytes())[0].hex(), flush=True)
    else:
        print(vault.get(arg).decode(), flush=True)
"""


def ring(tmp_path: Path, check: float = 5.0) -> Keyring:
    return Keyring(KeySource("instance", tmp_path / "keys" / "instance.key", check_seconds=check))


def test_a_rotation_in_one_ring_is_seen_by_another_within_the_check_interval(tmp_path):
    a, b = ring(tmp_path), ring(tmp_path, check=0.2)
    old = a.current_id
    before = Sealer(a).seal(b"before", b"t")
    new = install_new_key(a)
    assert a.current_id == new != old
    after = Sealer(a).seal(b"after", b"t")
    assert Sealer(b).open(after, b"t") == b"after"  # a key id it does not hold: it looks again at once
    time.sleep(0.25)
    assert parse_head(Sealer(b).seal(b"x", b"t"))[0] == new
    assert Sealer(b).open(before, b"t") == b"before"
    assert "hidden" in repr(a) and (tmp_path / "keys" / "instance.previous" / f"{old.hex()}.key").exists()


def test_a_rotation_past_the_previous_key_limit_is_refused_before_it_installs(tmp_path, monkeypatch):
    """A ring over the limit would not load in any process: the rotation that would cross it is refused and the
    ring stays as it was."""
    monkeypatch.setattr("safehold.store.keyring.MAX_PREVIOUS", 2)
    r = ring(tmp_path, check=0)
    install_new_key(r)
    install_new_key(r)
    current = r.current_id
    with pytest.raises(SafeholdError) as exc:
        install_new_key(r)
    assert exc.value.code == "keys.too_many"
    assert ring(tmp_path).current_id == current and len(ring(tmp_path).previous_ids()) == 2


def test_derived_secrets_stay_and_a_ring_without_its_derivation_secret_is_refused(tmp_path):
    r = ring(tmp_path, check=0)
    label = r.derive(b"names")
    install_new_key(r)
    install_new_key(r)
    assert r.derive(b"names") == label and ring(tmp_path).derive(b"names") == label
    (tmp_path / "keys" / "instance.derive").unlink()  # two previous keys and no record of which came first
    with pytest.raises(SafeholdError) as err:
        ring(tmp_path)
    assert err.value.code == "keys.derive_missing"


def test_a_previous_key_file_must_be_named_by_its_key_id(tmp_path):
    r = ring(tmp_path)
    folder = r.source.previous_dir
    folder.mkdir()
    write_private(folder / ("ab" * 8 + ".key"), os.urandom(32))
    with pytest.raises(SafeholdError) as err:
        ring(tmp_path)
    assert err.value.code == "keys.invalid"


def test_a_blob_naming_a_key_nobody_holds_is_refused_with_a_stable_code(tmp_path):
    blob = Sealer(ring(tmp_path / "elsewhere")).seal(b"x")
    for sealer in (Sealer(ring(tmp_path)), Sealer(LocalKey(os.urandom(32)))):
        with pytest.raises(SafeholdError) as err:
            sealer.open(blob)
        assert err.value.code == "keys.unknown_key"


def test_two_processes_sharing_a_home_read_old_and_new_and_write_with_the_new_key(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), "0.3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )

    def ask(line: str) -> list[str]:
        child.stdin.write(line + "\n")
        child.stdin.flush()
        return child.stdout.readline().split()

    try:
        first_sha, first_id = ask("put written-by-the-child-before")
        here = Keyring(KeySource("instance", home / "keys" / "instance.key", check_seconds=0))
        vault = MediaVault(home / "vault", Sealer(here))
        assert here.current_id.hex() == first_id
        new = install_new_key(here).hex()
        sha = vault.put(b"written-here-after").sha256
        assert ask(f"get {sha}") == ["written-here-after"]  # at once: a key id it lacks makes it look again
        assert ask(f"get {first_sha}") == ["written-by-the-child-before"]
        time.sleep(0.4)
        assert ask("put written-by-the-child-after")[1] == new
        assert vault.get(first_sha) == b"written-by-the-child-before"
    finally:
        child.stdin.close()
        child.wait(timeout=30)


#: A blob and a derived secret made by the code before key rings (version 2, no key id), with the key bytes 0..31.
MAIN_KEY = bytes(range(32))
MAIN_BLOB = (
    "U0gyADxGjTpJw11KIbaYZ67BuMPgICFVaEg1ppZ3ehh5fdjG171Vhu7kxoH+SHPevOOxXryqsyHqABIAA5uLWmuyNS0AxOKnfKLIFZWqLZ1avwQ1"
    "5ZyQppvntdnJIeRu1qIzk1HeEnSXoAO8EnfR2dCw/d3e5Q=="
)
MAIN_NAMES = "b13812a0b1692d120cad887acd244b8c53aff7472f7f8237853694763d0bac0a"


def test_what_the_code_before_key_rings_wrote_opens_and_derives_the_same_after_a_rotation(tmp_path):
    r = ring(tmp_path, check=0)
    write_private(r.source.key_file, MAIN_KEY)
    r.reload(force=True)
    blob = base64.b64decode(MAIN_BLOB)
    assert Sealer(r).open(blob, b"safehold.media.v1") == b"sealed by the main branch"
    assert r.derive(b"safehold.vault.names").hex() == MAIN_NAMES
    install_new_key(r)
    assert Sealer(r).open(blob, b"safehold.media.v1") == b"sealed by the main branch"
    assert r.derive(b"safehold.vault.names").hex() == MAIN_NAMES
    head, old_len = Sealer(r).rewrap(blob, b"safehold.media.v1")
    assert parse_head(head)[0] == r.current_id
    assert Sealer(r).open(head + blob[old_len:], b"safehold.media.v1") == b"sealed by the main branch"
