"""`safehold terms …`: the same operations as `/v1/terms`, with clean errors."""

from __future__ import annotations

import json

LIST = "term,category,severity\nzorblat mix,csam,3\n"


def test_import_list_export_versions_activate(cli, tmp_path):
    path = tmp_path / "partner.csv"
    path.write_text(LIST)
    assert "partner v1: 1 terms (imported, active)" in cli("terms", "import", "partner", path).stdout
    assert "already there" in cli("terms", "import", "partner", path, "--version", "1").stdout
    path.write_text(LIST + "quendle pack,csam,3\n")
    assert "partner v2: 2 terms" in cli("terms", "import", "partner", path).stdout
    listed = {t["name"]: t for t in json.loads(cli("terms", "list", "--json").stdout)}
    assert listed["partner"]["version"] == 2 and listed["starter"]["origin"] == "bundled"
    assert cli("terms", "export", "partner", "--version", "1").stdout == LIST
    out = tmp_path / "out.csv"
    cli("terms", "export", "starter", "--out", out)
    assert out.read_text().startswith("# starter term list")
    assert "v1 is active" in cli("terms", "activate", "partner", "1").stdout
    assert [v["active"] for v in json.loads(cli("terms", "versions", "partner", "--json").stdout)] == [True, False]
    assert "disabled" in cli("terms", "disable", "grooming").stdout
    assert "enabled" in cli("terms", "enable", "grooming").stdout
    assert "2 version(s)" in cli("terms", "delete", "partner").stdout
    assert "partner" not in cli("terms", "list").stdout


def test_errors(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("term,category\nfine,NOT A SLUG\n")
    assert "terms.invalid_csv" in cli("terms", "import", "partner", bad, code=2).stderr
    assert "terms.not_found" in cli("terms", "export", "nope", code=2).stderr
    assert "terms.version_not_found" in cli("terms", "activate", "starter", "42", code=2).stderr


def test_a_missing_source_line_says_which_line_to_add(cli, tmp_path):
    path = tmp_path / "house.csv"
    path.write_text("term,category,severity,language,source\nzorblat pack,csam,3,en,house\n")
    err = cli("terms", "import", "house", path, code=2).stderr
    assert "add the line '# source: house = <where these terms come from>' above the header row" in err
    path.write_text("# source: house = our own reports\n" + path.read_text())
    assert "house v1: 1 terms" in cli("terms", "import", "house", path).stdout
