"""`safehold text …`: the text-safety library from a terminal, with clean errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "data" / "grooming"


def test_check_and_search(cli):
    scored = json.loads(cli("text", "check", "selling my old bike, message me").stdout)
    assert scored["level"] == "low"
    decision = json.loads(cli("text", "search", "weather tomorrow", "--locale", "pt-BR").stdout)
    assert decision["action"] == "allow"
    assert "solicitation.invalid_kind" in cli("text", "check", "hello", "--kind", "tweet", code=2).stderr


def test_train_then_eval_with_the_model(cli, tmp_path):
    xml, ids = CORPUS / "conversations.xml", CORPUS / "predators.txt"
    default = json.loads(cli("text", "eval", xml, ids).stdout)
    assert default["conversations"] > 0 and 0.0 <= default["f0_5"] <= 1.0
    model = tmp_path / "model.json"
    assert "model written" in cli("text", "train", xml, ids, "--out", model).stdout
    trained = json.loads(cli("text", "eval", xml, ids, "--model", model).stdout)
    assert set(trained) == set(default)
    assert {"before_midpoint", "median_alert_position", "false_positives_by_source"} <= set(default)
    rules = json.loads(cli("text", "eval", xml, ids, "--rules-only").stdout)
    assert set(rules) == set(default)
    both = cli("text", "eval", xml, ids, "--rules-only", "--model", model, code=2).stderr
    assert "cli.conflicting_options" in both


def test_bad_corpus_is_refused_cleanly(cli, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<conversations><conversation id='1'><message>")
    ids = tmp_path / "ids.txt"
    ids.write_text("a\n")
    assert "pan2012.invalid_xml" in cli("text", "eval", bad, ids, code=2).stderr
    assert "grooming.model_not_found" in cli("text", "eval", bad, ids, "--model", tmp_path / "none.json", code=2).stderr


def test_check_and_search_use_the_active_lists_and_change_nothing(cli, tmp_path):
    csv = tmp_path / "synthetic.csv"
    csv.write_text("term,category,severity\nzqxcode,csam,3\n")  # a synthetic stand-in for a coded term
    assert json.loads(cli("text", "search", "zqxcode").stdout)["action"] == "allow"
    cli("terms", "import", "synthetic", csv)
    assert json.loads(cli("text", "search", "zqxcode").stdout)["action"] == "block"
    assert json.loads(cli("text", "check", "zqxcode").stdout)["level"] == "high"
    from safehold.cli import common

    svc = common.services(load_index=False)
    assert svc.search.stats() == [] and svc.cases.counts()["by_queue"]["text"] == 0


def test_check_open_case(cli):
    assert "cli.missing_content_id" in cli("text", "check", "hello", "--open-case", code=2).stderr
    args = ("text", "check", "kids for sale, contact me on telegram", "--open-case", "--content-id", "c1")
    out = json.loads(cli(*args, "--account-id", "u1").stdout)
    assert out["case"]["created"] and out["result"]["level"] == "high"
    again = json.loads(cli(*args).stdout)
    assert again["duplicate"] and again["case"]["id"] == out["case"]["id"]


def test_stats_table(cli):
    from safehold.cli import common

    svc = common.services(load_index=False)
    svc.search.check("pthc", "pt-BR", "b1")
    svc.search.filter_suggestions(["pthc"])
    out = cli("text", "stats", "--days", "7").stdout
    assert "check" in out and "block" in out and "csam" in out and "suggestion" in out and "pt" in out
    assert "variants" in out
    assert "pthc" not in out


def test_train_writes_under_the_home_by_default_and_says_how_to_use_it(cli, settings, tmp_path, monkeypatch):
    work = tmp_path / "checkout"
    work.mkdir()
    monkeypatch.chdir(work)
    out = cli("text", "train", CORPUS / "conversations.xml", CORPUS / "predators.txt").stdout
    model = settings.home / "models" / "grooming-model.json"
    assert model.is_file() and list(work.iterdir()) == []  # nothing lands in the working tree
    assert f"model written to {model}" in out and f"SAFEHOLD_GROOMING_MODEL={model}" in out
