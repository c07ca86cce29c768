"""``safehold transparency …``: generate and store a report and write its file, list, show, download, verify, the
figures of a period as tables, and the daily facts' refresh and rebuild."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from safehold.services import Services
from tests.transparency.fakes import SAMPLE, FakeFacts

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class EngineFacts(FakeFacts):
    """A facts engine with its maintenance commands, recording how they were called."""

    def __init__(self, rows):
        super().__init__(rows)
        self.calls: list[tuple] = []

    def refresh(self) -> dict:
        self.calls.append(("refresh",))
        return {"days": 2}

    def rebuild(self, start_day, end_day, progress) -> dict:
        self.calls.append(("rebuild", start_day, end_day))
        for i in range(3):
            progress(i + 1, 3)
        return {"days": 3}

    def status(self) -> dict:
        return {"dirty_days": 0}


@pytest.fixture
def facts(monkeypatch):
    fake = EngineFacts({k: list(v) for k, v in SAMPLE.items()})
    monkeypatch.setattr(Services, "transparency_facts", property(lambda self: fake))
    return fake


def test_report_is_stored_written_listed_shown_downloaded_and_verified(cli, facts, tmp_path, monkeypatch):
    target = tmp_path / "h1.json"
    r = cli("transparency", "report", "--period", "2026-H1", "--format", "json", "--out", target)
    lines = dict(line.split("\t") for line in r.stdout.splitlines())
    assert lines["path"] == str(target) and hashlib.sha256(target.read_bytes()).hexdigest() == lines["sha256"]
    assert json.loads(target.read_bytes())["figures"]["cases.backlog"]["rows"][0] == ["open", "high", "<10"]
    report_id = lines["id"]

    monkeypatch.chdir(tmp_path)  # without --out: the report's own name, here
    r = cli("transparency", "report", "-p", "2026-Q1", "-f", "json")
    second = dict(line.split("\t") for line in r.stdout.splitlines())
    assert (tmp_path / second["path"]).read_bytes() and second["path"].startswith("transparency-2026-Q1-json-")

    listed = json.loads(cli("transparency", "reports", "--json").stdout)
    assert listed["total"] == 2 and [str(x["id"]) for x in listed["reports"]] == [second["id"], report_id]
    assert "2026-H1 (2026-01-01 to 2026-06-30)" in cli("transparency", "reports").stdout
    shown = cli("transparency", "show", report_id).stdout
    assert "format\tjson" in shown and f"content_sha256\t{lines['sha256']}" in shown

    copy = tmp_path / "copy.json"
    cli("transparency", "download", report_id, "--out", copy)
    assert copy.read_bytes() == target.read_bytes()

    r = cli("transparency", "verify", report_id)
    assert "match the records" in r.stdout and "reproduced byte for byte" in r.stdout
    facts.rows["detections.by_source"][0] = ("hash", 121, 100)  # a record changed since
    r = cli("transparency", "verify", report_id, code=1)
    assert "differ from the records now" in r.stdout and "detections.by_source" in r.stdout
    assert json.loads(cli("transparency", "verify", report_id, "--json", code=1).stdout)["figures"]["match"] is False


def test_bad_requests(cli, facts, tmp_path):
    r = cli("transparency", "report", "-p", "2026-H1", "-f", "docx", code=2)
    assert "transparency.unknown_format" in r.stderr and "json" in r.stderr
    assert "transparency.bad_period" in cli("transparency", "report", "-p", "soon", "-f", "json", code=2).stderr
    assert "transparency.report_not_found" in cli("transparency", "show", "99", code=2).stderr
    r = cli("transparency", "download", "99", "--out", tmp_path / "x", code=2)
    assert "transparency.report_not_found" in r.stderr and not (tmp_path / "x").exists()
    r = cli("transparency", "report", "-p", "2026-H1", "-f", "json", "--out", tmp_path / "no" / "dir.json", code=2)
    assert "cli.write_failed" in r.stderr


def test_figures_tables_and_json(cli, facts):
    r = cli("transparency", "figures", "--period", "2026-H1")
    assert "2026-H1 (2026-01-01 to 2026-06-30)" in r.stdout
    assert "Backlog at the end of the period (cases.backlog)" in r.stdout and "40" in r.stdout
    doc = json.loads(cli("transparency", "figures", "-p", "2026-H1", "--json").stdout)
    assert doc["figures"]["cases.backlog"]["rows"][0] == ["open", "high", 3]  # staff see the numbers
    doc = json.loads(cli("transparency", "figures", "-p", "2026-H1", "--json", "--published").stdout)
    assert doc["figures"]["cases.backlog"]["rows"][0] == ["open", "high", "<10"]


def test_refresh_and_rebuild(cli, facts):
    assert cli("transparency", "refresh").stdout == "days\t2\ndirty_days\t0\n"
    r = cli("transparency", "rebuild", "--from", "2026-01-01", "--to", "2026-01-31")
    assert "days\t3" in r.stdout
    assert facts.calls == [("refresh",), ("rebuild", dt.date(2026, 1, 1), dt.date(2026, 1, 31))]
    cli("transparency", "rebuild")
    assert facts.calls[-1] == ("rebuild", None, None)
    assert "cli.usage" in cli("transparency", "rebuild", "--from", "January", code=2).stderr
    assert "cli.usage" in cli("transparency", "rebuild", "--from", "2026-02-01", "--to", "2026-01-01", code=2).stderr
