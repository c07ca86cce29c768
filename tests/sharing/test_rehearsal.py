"""``safehold exchange stand-in TYPE``: a local source of each exchange type to rehearse against."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys

import pytest

from safehold.errors import SafeholdError
from safehold.sharing import rehearsal
from tests.media import jpeg

MINE = ("md5", hashlib.md5(jpeg(3)).hexdigest())


def entries(cli, bank: str) -> set[tuple[str, str]]:
    lines = cli("bank", "entries", bank, "--json").output.splitlines()
    return {(e["signal_type"], e["value"]) for e in map(json.loads, filter(None, lines))}


def add_and_fetch(cli, type_name: str, settings_file, credentials_file) -> set[tuple[str, str]]:
    cli("bank", "create", "rehearsal")
    cli(
        "exchange", "add", "rehearsal", "--type", type_name, "--bank", "rehearsal",
        "--settings-file", settings_file, "--credentials-file", credentials_file,
    )  # fmt: skip
    cli("exchange", "fetch", "rehearsal")
    return entries(cli, "rehearsal")


@pytest.mark.parametrize("type_name", sorted(rehearsal.STAND_INS))
def test_each_stand_in_fills_a_bank_through_its_exchange(cli, tmp_path, type_name):
    stand = rehearsal.start(type_name, entries=2, given=[MINE])
    try:
        for part in ("settings", "credentials"):
            (tmp_path / part).write_text(json.dumps(getattr(stand, part)))
        got = add_and_fetch(cli, type_name, tmp_path / "settings", tmp_path / "credentials")
        assert got == {MINE, *rehearsal.synthetic(2)}
    finally:
        stand.stop()


def test_bad_hashes_and_types_are_refused():
    assert rehearsal.parse_hash(f"MD5={MINE[1].upper()}") == MINE
    for text in ("sha1=abc", "md5", "md5=not-hex", "pdq=12"):
        with pytest.raises(SafeholdError):
            rehearsal.parse_hash(text)
    with pytest.raises(SafeholdError, match="No stand-in"):
        rehearsal.start("peer")


def test_the_command_serves_writes_the_exchange_files_and_stops_on_sigterm(cli, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "safehold", "exchange", "stand-in", "ncmec", "--hash", f"md5={MINE[1]}",
         "--entries", "1", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ,
    )  # fmt: skip
    try:
        lines = []
        while not any("exchange add" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)  # it exited before serving
            lines.append(line)
        settings, creds = tmp_path / "ncmec-settings.json", tmp_path / "ncmec-credentials.json"
        assert f"--credentials-file {creds}" in lines[-1]
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        assert add_and_fetch(cli, "ncmec", settings, creds) == {MINE, *rehearsal.synthetic(1)}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
