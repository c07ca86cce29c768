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


def test_bad_corpus_is_refused_cleanly(cli, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<conversations><conversation id='1'><message>")
    ids = tmp_path / "ids.txt"
    ids.write_text("a\n")
    assert "pan2012.invalid_xml" in cli("text", "eval", bad, ids, code=2).stderr
    assert "grooming.model_not_found" in cli("text", "eval", bad, ids, "--model", tmp_path / "none.json", code=2).stderr
