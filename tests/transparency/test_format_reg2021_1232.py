"""The Regulation (EU) 2021/1232 report: every category of Article 3(1)(g)(vii) with the rows of the standard form of
Implementing Regulation (EU) 2024/2916, filled from the figures where Safehold knows the answer."""

from __future__ import annotations

from safehold.transparency.figures import FigureSet
from safehold.transparency.formats import FORMATS
from tests.transparency.format_helpers import (
    ROWS,
    assert_deterministic,
    check_traceable,
    document,
    figure_set,
    suppressed,
)

FMT = FORMATS["reg2021-1232"]

#: Rows of the standard form per category (Annex of Implementing Regulation (EU) 2024/2916).
FORM_ROWS = {1: 12, 2: 1, 3: 1, 4: 15, 5: 45, 6: 15, 7: 42, 8: 13, 9: 3}


def entries(doc: dict) -> dict[str, dict]:
    return {e["id"]: e for item in doc["items"] for e in item["entries"]}


def test_registered_as_json():
    assert FMT.name == "reg2021-1232" and FMT.media_type == "application/json" and FMT.extension == "json"
    doc = document(FMT, figure_set())
    assert doc["legal_basis"]["article"] == "3(1)(g)(vii)"
    assert doc["provider"] == "Example Ltd" and doc["service"] == "Example Chat"
    assert doc["period"]["name"] == "2026-H1" and doc["figures_digest"] == figure_set().digest()


def test_every_category_and_form_row_is_present():
    doc = document(FMT, figure_set())
    assert [i["number"] for i in doc["items"]] == list(range(1, 10))
    for item in doc["items"]:
        in_form = [e for e in item["entries"] if e["in_form"]]
        assert len(in_form) == FORM_ROWS[item["number"]], item["number"]
        for e in item["entries"]:
            assert e["status"] in ("filled", "operator_to_complete")
            if e["status"] == "operator_to_complete":
                assert e["value"] is None and e["operator"]
    ids = [e["id"] for item in doc["items"] for e in item["entries"]]
    assert len(ids) == len(set(ids))
    assert doc["summary"]["filled"] + doc["summary"]["operator_to_complete"] == len(ids)


def test_legal_grounds_retention_and_complaints_are_left_to_the_operator():
    e = entries(document(FMT, figure_set()))
    for entry_id in ("2.1", "3.1", "8.r1", "8.s1", "5.2", "5.6"):
        assert e[entry_id]["status"] == "operator_to_complete", entry_id
    assert "ncmec" in e["3.1"]["operator"] and "nca" in e["3.1"]["operator"]


def test_filled_values_trace_back_to_their_figure_rows():
    figures = figure_set()
    doc = document(FMT, figures)
    checked = check_traceable(figures, [e for item in doc["items"] for e in item["entries"]])
    assert checked >= 30


def test_cases_separate_csam_from_solicitation():
    e = entries(document(FMT, figure_set()))
    assert e["S4.a"]["value"] == 20 + 30 + 15 + 25
    assert [b["classification"] for b in e["S4.a"]["breakdown"]] == ["A1", "A2", "B1", "B2"]
    assert e["S4.b"]["value"] == 14 + 9  # grooming and solicitation
    assert e["S4.c"]["value"] == 6 + 3  # sextortion and other: not the Regulation's categories
    assert e["S4.d"]["value"] == 80 + 6 + 12


def test_error_rates_per_technology():
    e = entries(document(FMT, figure_set()))
    assert (e["6.1.A"]["value"], e["6.1.B"]["value"], e["6.1.rate"]["value"]) == (113, 3, round(3 / 113 * 100, 2))
    assert (e["6.2.A"]["value"], e["6.2.B"]["value"]) == (57, 12)
    assert (e["6.3.A"]["value"], e["6.3.B"]["value"]) == (32, 7)
    assert e["7.kc.rate"]["value"] == e["6.1.rate"]["value"]
    # a detector kind no technology lists is reported, not dropped
    assert [d["detector"] for d in e["S6.other"]["breakdown"]] == ["frame-sampler"]
    assert e["S7.second_review"]["breakdown"] == [
        {"outcome": "confirmed", "value": 48},
        {"outcome": "overturned", "value": 4},
    ]


def test_organisations_data_was_shared_with():
    e = entries(document(FMT, figure_set()))
    assert e["9.1"]["value"] == "yes"
    # stopncii only sent entries to us: nothing was shared with it
    assert e["9.3"]["value"] == ["nca", "peer-x"]


def test_deterministic_and_reproducible_from_the_stored_record():
    assert_deterministic(FMT)


def test_suppressed_cells_are_carried_not_counted():
    rows = suppressed(
        ROWS,
        {
            ("decisions.by_outcome", 5, 2): "<10",  # solicitation 9
            ("decisions.by_outcome", 7, 2): "<10",  # other 3
            ("errors.false_positives", 0, 3): "<10",  # ncmec-hashes false positives
        },
    )
    e = entries(document(FMT, figure_set(rows)))
    assert e["S4.b"]["value"] == "15..23"  # grooming 14 plus one hidden cell of 1 to 9
    assert {"classification": "solicitation", "value": "<10"} in e["S4.b"]["breakdown"]
    assert e["S4.c"]["value"] == "7..15"
    assert e["6.1.B"]["value"] == "3..11"  # own 0 and stopncii 2 are exact
    assert e["6.1.rate"]["value"] is None and e["6.1.rate"]["note"]
    only = suppressed(ROWS, {("decisions.by_outcome", 7, 2): "<10"})
    only["decisions.by_outcome"] = [r for r in only["decisions.by_outcome"] if r[1] != "sextortion"]
    assert entries(document(FMT, figure_set(only)))["S4.c"]["value"] == "<10"


def test_empty_figures():
    doc = document(FMT, figure_set({}))
    e = entries(doc)
    assert e["S4.a"]["value"] == 0 and e["S4.a"]["breakdown"] == []
    assert e["6.1.rate"]["value"] is None
    assert e["1.3"]["status"] == "operator_to_complete"
    assert (e["9.1"]["value"], e["9.3"]["value"]) == ("no", [])
    assert len([x for x in e.values() if x["in_form"]]) == sum(FORM_ROWS.values())
    # a figure set that lacks a figure altogether (an older stored report) still renders
    bare = FigureSet(figure_set().period, figure_set().as_of, {})
    assert entries(document(FMT, bare))["S4.a"]["value"] == 0
