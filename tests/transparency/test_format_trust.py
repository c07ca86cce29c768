"""The Tech Coalition TRUST report: its three sections, outcomes and systems from the figures, policies for the
operator."""

from __future__ import annotations

from safehold.transparency.formats import FORMATS
from tests.transparency import format_helpers as h

FMT = FORMATS["trust"]


def entries(doc: dict) -> dict[str, dict]:
    return {e["id"]: e for s in doc["sections"] for e in s["entries"]}


def test_three_sections_with_every_entry():
    doc = h.document(FMT, h.figure_set())
    assert [s["key"] for s in doc["sections"]] == ["policies_and_practices", "processes_and_systems", "outcomes"]
    e = entries(doc)
    expected = {f"P{i}" for i in range(1, 7)} | {f"S{i}" for i in range(1, 13)} | {f"O{i}" for i in range(1, 14)}
    expected |= {"O14.hash_matching", "O14.classifier", "O14.text", "O14.other", "O15"}
    assert set(e) == expected
    assert doc["summary"] == {
        "filled": sum(x["status"] == "filled" for x in e.values()),
        "operator_to_complete": sum(x["status"] == "operator_to_complete" for x in e.values()),
    }
    assert doc["framework"]["source"].startswith("https://www.technologycoalition.org/")


def test_policy_text_is_left_to_the_operator():
    e = entries(h.document(FMT, h.figure_set()))
    for entry_id in ("P1", "P4", "P5", "P6", "S11", "S12", "O15"):
        assert e[entry_id]["status"] == "operator_to_complete" and e[entry_id]["value"] is None
    # what the figures do know about enforcement and reporting comes with a prompt for the policy around it
    assert e["P2"]["value"] == sorted({r[0] for r in h.ROWS["actions.by_kind"]}) and e["P2"]["operator"]
    assert e["P3"]["value"] == ["nca", "ncmec"]


def test_filled_values_trace_back_to_their_figure_rows():
    figures = h.figure_set()
    doc = h.document(FMT, figures)
    assert h.check_traceable(figures, [e for s in doc["sections"] for e in s["entries"]]) >= 25


def test_processes_name_the_detection_in_use():
    e = entries(h.document(FMT, h.figure_set()))
    assert e["S1"]["value"] == ["ncmec-hashes", "own", "stopncii-bank"]
    assert e["S2"]["value"] == ["ncmec", "peer-x", "stopncii"]
    assert e["S3"]["value"] == ["nsfw-onnx", "vendor-api"]
    assert e["S4"]["value"] == 25 + 15
    assert e["S6"]["value"] == 300 + 120 + 80 + 15
    assert e["S9"]["value"] == 52
    assert e["S10"]["value"] == 63 and e["S10"]["reveals"] == 650
    assert e["S8"]["breakdown"][0] == {"band": "P1", "p50_seconds": 1800, "p90_seconds": 7200, "decided": 100}


def test_outcomes():
    e = entries(h.document(FMT, h.figure_set()))
    signals = sum(r[1] for r in h.ROWS["detections.by_source"])
    assert e["O2"]["value"] == signals
    assert e["O3"]["value"] == round((signals - 40) / signals, 4)
    assert e["O6"]["value"] == 90 and e["O7"]["value"] == 32 and e["O8"]["value"] == 95
    assert e["O9"]["value"] == 180
    assert e["O9"]["breakdown"] == [{"origin": "automatic", "value": 100}, {"origin": "decision", "value": 80}]
    assert e["O12"]["value"] == 86
    assert e["O14.hash_matching"]["value"] == round(3 / 113, 4)
    assert e["O14.hash_matching"]["reviewed"] == 113 and e["O14.hash_matching"]["false_positives"] == 3


def test_deterministic_and_reproducible_from_the_stored_record():
    h.assert_deterministic(FMT)


def test_suppressed_cells_are_carried_not_counted():
    rows = h.suppressed(h.ROWS, {("reports.by_authority", 1, 2): "<10", ("detections.by_source", 5, 1): "<10"})
    e = entries(h.document(FMT, h.figure_set(rows)))
    assert e["O12"]["value"] == "81..89"
    assert {"status": "draft", "value": "<10"} in e["O12"]["breakdown"]
    assert e["S7"]["value"] == "<10"  # user reports alone
    assert e["O3"]["value"] is None and e["O3"]["note"]


def test_empty_figures():
    e = entries(h.document(FMT, h.figure_set({})))
    assert e["O2"]["value"] == 0 and e["O3"]["value"] is None
    assert e["S1"]["value"] == [] and e["O14.hash_matching"]["value"] is None
    assert "O14.other" not in e
