"""``safehold classifier list | policy | precision``: the same capability as the API's."""

from __future__ import annotations

import json

import pytest

from safehold.config import Settings
from tests.classifiers.plugins import BRIGHT, install


@pytest.fixture
def settings(tmp_path, database_url, monkeypatch):
    install(monkeypatch)
    monkeypatch.setenv("SAFEHOLD_CLASSIFIERS", "test_explicit,test_dark")  # the CLI's process reads its settings
    return Settings(home=tmp_path / "home", database_url=database_url, classifiers=["test_explicit", "test_dark"])


def test_list_policy_and_precision(cli, svc):
    out = cli("classifier", "list").stdout
    assert "test_explicit" in out and "needs an age signal (alone: ignore; with one: csam)" in out
    assert "test_dark" in out and "opens a case alone" in out
    listed = json.loads(cli("classifier", "list", "--json").stdout)
    assert [c["name"] for c in listed] == ["test_explicit", "test_dark"]

    shown = json.loads(cli("classifier", "policy", "test_explicit", "--json").stdout)
    assert shown["policy"]["threshold"] == 0.9 and shown["set"] == {}
    out = cli("classifier", "policy", "test_explicit", "--threshold", "0.8", "--no-needs-age-signal",
              "--auto-action").stdout  # fmt: skip
    assert "threshold 0.8, opens a case alone, automatic actions ON" in out
    [rec] = svc.audit.list(limit=10, action="classifier.policy")
    assert rec["actor"] == "cli" and rec["detail"]["changed"] == {
        "threshold": 0.8, "needs_age_signal": False, "auto_action": True
    }  # fmt: skip
    back = json.loads(cli("classifier", "policy", "test_explicit", "--reset", "threshold", "--json").stdout)
    assert back["policy"]["threshold"] == 0.9 and "threshold" not in back["set"]

    err = cli("classifier", "policy", "test_explicit", "--alone", "sometimes", code=2).output
    assert "classifier.invalid_policy" in err
    assert "classifier.not_found" in cli("classifier", "policy", "nudity", code=2).output

    out = cli("classifier", "precision", "test_explicit").stdout
    assert "No reviewed hits of test_explicit yet." in out and "never reviewed" in out
    result = json.loads(cli("classifier", "precision", "test_explicit", "--json").stdout)
    assert result["classifier"] == "test_explicit" and result["current_threshold"] == 0.9


def test_scan_record_takes_the_age_signals(cli, svc, tmp_path):
    path = tmp_path / "p.jpg"
    path.write_bytes(BRIGHT)
    alone = json.loads(cli("scan", "--record", "--content-id", "c1", "--json", path).stdout)
    assert "cases" not in alone  # an explicit hit alone records nothing
    out = json.loads(cli("scan", "--record", "--content-id", "c2", "--depicted-minor", "--json", path).stdout)
    [case] = out["cases"]
    assert svc.cases.get(case["id"])["signals"][0]["detail"]["age"]["reasons"] == ["depicted_minor"]
    err = cli("scan", "--record", "--content-id", "c3", "--grooming-conversation", "conv-1", path, code=2).output
    assert "classifier.grooming_not_flagged" in err
    assert "--record" in cli("scan", "--depicted-minor", path, code=2).output
