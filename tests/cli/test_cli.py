"""The `safehold` command end to end: keys, banks from a folder, scan a folder, import/export."""

from __future__ import annotations

import json

import pytest

from tests.media import jpeg, variant


@pytest.fixture
def folders(tmp_path):
    known, uploads = tmp_path / "known", tmp_path / "uploads"
    (known / "sub").mkdir(parents=True)
    uploads.mkdir()
    originals = {f"k{i}.jpg": jpeg(i) for i in range(3)}
    for i, (name, data) in enumerate(originals.items()):
        (known / ("sub" if i == 2 else "") / name).write_bytes(data)
    (uploads / "copy0.jpg").write_bytes(variant(originals["k0.jpg"], scale=0.5, quality=60))
    (uploads / "copy2.png").write_bytes(variant(originals["k2.jpg"], scale=0.8, fmt="PNG"))
    for i in range(4):
        (uploads / f"other{i}.jpg").write_bytes(jpeg(500 + i))
    (uploads / "notes.txt").write_bytes(b"hello")
    (uploads / "broken.jpg").write_bytes(originals["k1.jpg"][:500])
    return known, uploads


def test_bank_from_folder_then_scan_finds_only_copies(cli, folders):
    known, uploads = folders
    key = cli("apikey", "create", "--role", "admin", "--name", "me", "--json")
    assert json.loads(key.stdout)["key"].startswith("sh_")

    cli("bank", "create", "known-images")
    out = cli("bank", "add", "known-images", known, "--category", "A2", "-j", "1")
    assert "6 entries added" in out.stdout  # 3 images x (pdq + md5)

    res = cli("scan", uploads, "--json", "-j", "2")
    rows = {json.loads(line)["name"].rsplit("/", 1)[-1]: json.loads(line) for line in res.stdout.splitlines()}
    assert rows["copy0.jpg"]["verdict"] == "match"
    assert rows["copy2.png"]["verdict"] == "match"
    assert rows["copy0.jpg"]["matches"][0]["entry"]["category"] == "A2"
    assert all(rows[f"other{i}.jpg"]["verdict"] == "no_match" for i in range(4))
    assert rows["notes.txt"]["verdict"] == "no_match" and rows["notes.txt"]["media"] == "other"
    assert rows["broken.jpg"]["verdict"] == "unhashable" and rows["broken.jpg"]["error"]["code"].startswith("media.")

    summary = cli("scan", uploads, "--fail-on-match", code=3)
    assert "8 file(s): 2 match, 0 allowlisted, 5 no_match, 1 unhashable" in summary.output


def test_hash_command(cli, folders):
    known, _ = folders
    out = cli("hash", known / "k0.jpg", "--json")
    row = json.loads(out.stdout)
    assert {s["type"] for s in row["signals"]} == {"pdq", "md5", "sha1", "sha256"}
    assert cli("hash", known / "missing.jpg", code=2).output.count("cli.path_not_found") == 1


def test_bank_commands_validate_and_round_trip(cli, tmp_path):
    cli("bank", "create", "a", "--threshold", "20", "--dihedral")
    assert "bank.exists" in cli("bank", "create", "a", code=2).output
    assert "bank.invalid_threshold" in cli("bank", "create", "b", "--threshold", "99", code=2).output
    assert "bank.not_found" in cli("bank", "show", "nope", code=2).output

    cli("bank", "add-hash", "a", "md5", "0" * 32, "--category", "B1", "--source", "ncmec")
    assert "signal.invalid_value" in cli("bank", "add-hash", "a", "md5", "zz", code=2).output

    csv_file = tmp_path / "in.csv"
    csv_file.write_text("signal_type,value,category\nsha256," + "a" * 64 + ",A1\nmd5,bad,A1\n")
    out = cli("bank", "import", "a", csv_file, code=2)
    assert "line 3" in out.output and "NOT imported" in out.output
    cli("bank", "import", "a", csv_file, "--skip-invalid")

    export = tmp_path / "out.csv"
    cli("bank", "export", "a", export)
    cli("bank", "create", "b")
    cli("bank", "import", "b", export)
    listing = json.loads(cli("bank", "list", "--json").stdout)
    assert {b["name"]: b["entries"] for b in listing} == {"a": 2, "b": 2}

    entry = json.loads(cli("bank", "entries", "a", "--json").stdout.splitlines()[0])
    cli("bank", "disable", "a", str(entry["id"]))
    assert json.loads(cli("bank", "show", "a", "--json").stdout)["enabled_entries"] == 1
    cli("bank", "enable", "a", "0" * 32, "--signal-type", "md5")
    cli("bank", "rename", "a", "a2")
    cli("bank", "delete", "a2", "--yes")
    assert [b["name"] for b in json.loads(cli("bank", "list", "--json").stdout)] == ["b"]


def test_apikey_commands(cli):
    cli("apikey", "create", "--role", "platform", "--name", "uploader")
    assert "auth.unknown_role" in cli("apikey", "create", "--role", "god", code=2).output
    listing = cli("apikey", "list").stdout
    assert "uploader" in listing and "sh_" not in listing.replace("prefix", "")


def test_missing_files_are_clean_errors(cli, tmp_path):
    """Every command that reads a file names a missing one with `cli.path_not_found`, never a traceback."""
    cli("bank", "create", "a")
    missing = tmp_path / "missing.csv"
    for args in [
        ("bank", "import", "a", missing),
        ("bank", "add", "a", missing),
        ("terms", "import", "house", missing),
        ("text", "train", missing, missing),
        ("text", "eval", missing, missing),
        ("scan", missing),
        ("hash", missing),
    ]:
        result = cli(*args, code=2)
        assert str(missing) in result.stderr and "Traceback" not in result.output, args
        assert "path_not_found" in result.stderr or "not_found" in result.stderr, args


def test_dry_run_fails_when_anything_would_be_refused(cli, tmp_path):
    cli("bank", "create", "a")
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("signal_type,value\nmd5," + "1" * 32 + "\n")
    bad.write_text("signal_type,value\nmd5," + "1" * 32 + "\nmd5,nothex\n")
    assert "1 would be added" in cli("bank", "import", "a", good, "--dry-run").stdout
    out = cli("bank", "import", "a", bad, "--dry-run", code=2)
    assert "line 3" in out.stderr and "import.invalid_value" in out.stderr and "nothing written" in out.stdout
    cli("bank", "import", "a", bad, "--dry-run", "--skip-invalid", code=2)
    assert json.loads(cli("bank", "show", "a", "--json").stdout)["entries"] == 0


def test_url_bank_from_the_command_line(cli):
    """`bank add-hash … url` takes the URL itself (hashed as a scan of it is) or its 64-hex SHA-256."""
    from safehold.signals.url import url_hash

    cli("bank", "create", "bad-urls")
    assert url_hash("bad.example.net/") in cli("bank", "add-hash", "bad-urls", "url", "bad.example.net/").stdout
    cli("bank", "add-hash", "bad-urls", "url", url_hash("other.example.org/"))
    assert "signal.invalid_value" in cli("bank", "add-hash", "bad-urls", "url", "not a url", code=2).stderr
    assert json.loads(cli("bank", "show", "bad-urls", "--json").stdout)["entries"] == 2


def test_exports_to_a_missing_folder_fail_cleanly(cli, tmp_path):
    """Every command that writes a file the user named: a clean error, and no half-written file left behind."""
    cli("bank", "create", "a")
    cli("bank", "add-hash", "a", "md5", "0" * 32)
    missing = tmp_path / "no-such-folder" / "out"
    for args in (
        ("bank", "export", "a", missing),
        ("audit", "export", missing),
        ("terms", "export", "starter", "--out", missing),
    ):
        out = cli(*args, code=2).output
        assert "cli.write_failed" in out and str(missing) in out, (args, out)
    assert not missing.parent.exists()


def test_export_writes_the_whole_file(cli, tmp_path):
    cli("bank", "create", "a")
    cli("bank", "add-hash", "a", "md5", "0" * 32)
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "a.csv"
    cli("bank", "export", "a", target)
    assert "0" * 32 in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["a.csv"]  # the .partial file was moved into place


def test_a_mistyped_bank_name_suggests_the_right_one(cli):
    assert "There are no banks yet" in cli("bank", "show", "known-images", code=2).output
    cli("bank", "create", "known-images")
    assert "Did you mean 'known-images'?" in cli("bank", "show", "known-imgaes", code=2).output
    assert "Banks: known-images." in cli("bank", "show", "zzz", code=2).output
