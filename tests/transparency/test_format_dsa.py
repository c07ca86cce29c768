"""The DSA transparency report: the Commission's template parts in a ZIP, filled from a figure set."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile

import pytest

from safehold.transparency.figures import CATALOGUE, Figure, FigureSet
from safehold.transparency.formats import FORMATS, ReportContext
from safehold.transparency.formats.dsa import MARKER, DsaFormat, template, validate_dsa_zip
from safehold.transparency.periods import Period

PERIOD = Period("2026-H1", dt.date(2026, 1, 1), dt.date(2026, 7, 1))
AS_OF = dt.datetime(2026, 7, 2, 3, 0, tzinfo=dt.UTC)
CONTEXT = ReportContext("Example Platforms Ltd", "Example Social", dt.datetime(2026, 7, 2, 9, 0, tzinfo=dt.UTC), 10)

#: Synthetic rows for every figure of the catalogue, shaped as the engine fills them.
ROWS = {
    "scans.volume": [("image", "no_match", 120000), ("image", "match", 240), ("video", "no_match", 9000)],
    "detections.daily": [("2026-01-01", "hash_match", 12), ("2026-01-02", "classifier", 3)],
    "detections.by_source": [
        ("hash_match", 240, 200),
        ("classifier", 60, 55),
        ("grooming", 30, 25),
        ("user_report", 45, 40),
    ],
    "detections.by_bank": [("ncmec", "", 150, 120), ("alpha", "peer-exchange", 90, 80)],
    "detections.by_classifier": [("nudity-minor", "csam_likely", 60, 55)],
    "search.interventions": [("query", "deter", "csam", 400)],
    "cases.daily": [("2026-01-01", 20, 18)],
    "cases.by_source": [("hash_match", "media", 200, 190), ("user_report", "report", 40, 35)],
    "cases.backlog": [("open", "P2", 12)],
    "cases.sla": [("P1", 100, 95, 5, 0)],
    "decisions.time_to_decision": [("P1", 3600, 14400, 100)],
    "decisions.by_outcome": [
        ("csam", "A1", 40),
        ("csam", "A2", 60),
        ("csam", "B1", "<10"),
        ("csam", "B2", 25),
        ("cse", "grooming", 22),
        ("cse", "sextortion", 11),
        ("cse", "solicitation", "<10"),
        ("not_violating", "", 70),
    ],
    "decisions.second_review": [("confirmed", 50), ("overturned", "<10")],
    "actions.by_kind": [
        ("remove_content", "automatic", 150),
        ("remove_content", "decision", 40),
        ("block_content", "automatic", 30),
        ("suspend_account", "decision", 35),
        ("restrict_account", "manual", "<10"),
        ("preserve_evidence", "decision", 120),
        ("open_report_draft", "decision", 120),
    ],
    "reports.by_authority": [("ncmec", "finished", 110, 118), ("ncmec", "submitted", 12, 12)],
    "user_reports.by_category": [("grooming", "actioned", 30, 2), ("other", "no_action", 12, 0)],
    "appeals.by_outcome": [("upheld", 4), ("overturned", 1)],
    "errors.false_positives": [
        ("bank", "ncmec", 120, 2, 2 / 120),
        ("classifier", "nudity-minor", 55, 20, 20 / 55),
        ("text", "grooming", "<10", "<10", None),
        ("exchange", "peer-exchange", 40, "<10", 0.1),
    ],
    "reviewers.exposure": [("under 25 %", 40, 300)],
    "exchanges.activity": [("peer-exchange", "received", 5000)],
}


def figure_set(rows: dict[str, list[tuple]]) -> FigureSet:
    figures = {k: Figure(spec, tuple(rows.get(k, ()))) for k, spec in CATALOGUE.items()}
    return FigureSet(PERIOD, AS_OF, figures)


def test_rows_cover_the_catalogue():
    assert set(ROWS) == set(CATALOGUE)
    for key, rows in ROWS.items():
        assert all(len(r) == len(CATALOGUE[key].columns) for r in rows), key


def parts(data: bytes) -> dict[str, list[dict]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {
            n: list(csv.DictReader(io.StringIO(z.read(n).decode("utf-8")))) for n in z.namelist() if n.endswith(".csv")
        }


def row(table: list[dict], column: str, value: str) -> dict:
    return next(r for r in table if r[column] == value)


def test_registered_as_a_zip():
    f = FORMATS["dsa"]
    assert (f.media_type, f.extension) == ("application/zip", "zip")


def test_every_part_of_the_template_with_its_header():
    data = DsaFormat().render(figure_set(ROWS), CONTEXT)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = z.namelist()
        assert names == sorted(names)
        assert "README.txt" in names
        for p in template()["parts"]:
            head = next(csv.reader(io.StringIO(z.read(p["file"]).decode("utf-8"))))
            assert head == p["columns"]
    assert validate_dsa_zip(data) == []


def test_the_template_file_holds_the_commissions_columns():
    # Column names of the own-initiative table and the Protection-of-minors taxonomy as the Commission publishes
    # them (Annex I, CSV part 5 and the category list).
    part5 = next(p for p in template()["parts"] if p["part"] == 5)
    names = [c.strip() for c in part5["columns"]]
    assert names[:7] == [
        "Applicability",
        "Service",
        "Reporting period",
        "Category of illegal content",
        'Description of the sub-category "Other"',
        "Number of measures taken at the provider's own initiative",
        "Number of measures taken after detection with solely automated means",
    ]
    assert "Account restriction Termination" in names and len(names) == 37
    minors = next(c for c in template()["taxonomy"] if c["code"] == "STATEMENT_CATEGORY_PROTECTION_OF_MINORS")
    assert [k["code"] for k in minors["keywords"]] == [
        "KEYWORD_AGE_SPECIFIC_RESTRICTIONS_MINORS",
        "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",
        "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE",
        "KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS",
        "KEYWORD_UNSAFE_CHALLENGES",
        "KEYWORD_OTHER",
    ]


def test_protection_of_minors_is_filled_from_the_figures():
    own = parts(DsaFormat().render(figure_set(ROWS), CONTEXT))["05_own_initiative_illegal.csv"]
    cat = "Category of illegal content"
    measures = "Number of measures taken at the provider's own initiative "
    assert row(own, cat, "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL")[measures] == "126..134"  # 40+60+25 and one <10
    assert row(own, cat, "KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS")[measures] == "22"
    others = {
        r['Description of the sub-category "Other"']: r[measures]
        for r in own[own.index(row(own, cat, "KEYWORD_UNSAFE_CHALLENGES")) + 1 :][:3]
    }
    assert others == {
        "Advertising or soliciting child sexual abuse material": "<10",
        "Other child sexual exploitation": "0",
        "Sextortion of minors": "11",
    }
    minors = row(own, cat, "STATEMENT_CATEGORY_PROTECTION_OF_MINORS")
    assert minors[measures] == "160..176"
    assert minors["Number of measures taken after detection with solely automated means "] == "180"
    assert minors["Visibility restriction Removal"] == "190"
    assert minors["Visibility restriction Disable"] == "30"
    assert minors["Account restriction Suspension"] == "35"
    assert minors["Provision of the service Suspension"] == "<10"
    assert minors["Account restriction Termination"] == MARKER
    assert row(own, cat, "KEYWORD_UNSAFE_CHALLENGES")[measures] == MARKER
    # Categories Safehold does not moderate, and the total over the service, are the operator's.
    assert row(own, cat, "KEYWORD_HATE_SPEECH")[measures] == MARKER
    total = row(own, cat, "TOTAL")
    assert total[measures] == MARKER
    assert "160..176" in total["Contextual Information on Number of measures taken at the provider's own initiative "]


def test_identification_precision_and_vlop_rows():
    p = parts(DsaFormat().render(figure_set(ROWS), CONTEXT))
    summary = {r["Indicator"]: r["Value"] for r in p["01_summary.csv"]}
    assert summary["Name of the service provider"] == "Example Platforms Ltd"
    assert summary["Starting date of reporting period"] == "2026-01-01"
    assert summary["Ending date of reporting period"] == "2026-06-30"
    assert summary["Date of the publication of the report"] == MARKER
    auto = p["08_automated_means.csv"]
    assert {r["Reporting period"] for r in auto} == {"2026-01-01/2026-06-30"}
    precision = [r for r in auto if r["Indicator"] == "Accuracy of the automated means - Precision" and r["Value"]]
    # The text detector and the exchange have suppressed counts: no precision is published for them.
    assert [r["Value"] for r in precision if r["Value"] != MARKER] == ["0.9833", "0.6364"]
    assert all(r["Value"] == "" for r in auto if r["Applicability"] == "Only for VLOPs")
    assert all(r["Value"] == "" for r in p["09_human_resources.csv"] + p["10_AMAR.csv"])
    complaints = p["07_appeals_and_recidivism.csv"]
    assert {r["Value"] for r in complaints} == {MARKER}
    summary_text = p["11_qualitative.csv"][0]["Value"]
    assert "ncmec finished 110" in summary_text


def test_same_figures_same_bytes():
    a = DsaFormat().render(figure_set(ROWS), CONTEXT)
    b = DsaFormat().render(figure_set(json.loads(json.dumps(ROWS))), CONTEXT)
    assert a == b
    with zipfile.ZipFile(io.BytesIO(a)) as z:
        assert {i.date_time for i in z.infolist()} == {(2000, 1, 1, 0, 0, 0)}


def test_suppressed_cells_are_written_as_they_came():
    rows = dict(ROWS)
    rows["decisions.by_outcome"] = [("csam", "A1", "<10"), ("cse", "grooming", "<10")]
    data = DsaFormat().render(figure_set(rows), CONTEXT)
    own = parts(data)["05_own_initiative_illegal.csv"]
    measures = "Number of measures taken at the provider's own initiative "
    cat = "Category of illegal content"
    assert row(own, cat, "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL")[measures] == "<10"
    assert row(own, cat, "STATEMENT_CATEGORY_PROTECTION_OF_MINORS")[measures] == "2..18"
    assert validate_dsa_zip(data) == []
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert '"<10"' in z.read("README.txt").decode()


def test_a_sum_with_a_secondary_cell_is_left_to_the_operator_never_a_false_range():
    """The repro: csam A1 3 and A2 40 (a true 43) suppress to "<10" and "x"; neither the csam row nor the
    Protection-of-minors total may read "2..18" or any range, and the text says "x"."""
    from safehold.transparency.privacy import suppress

    fs = figure_set({"decisions.by_outcome": [("csam", "A1", 3), ("csam", "A2", 40), ("not_violating", "", 400)]})
    data = DsaFormat().render(suppress(fs, 10), CONTEXT)
    own = parts(data)["05_own_initiative_illegal.csv"]
    measures = "Number of measures taken at the provider's own initiative "
    cat = "Category of illegal content"
    assert row(own, cat, "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL")[measures] == MARKER
    assert row(own, cat, "STATEMENT_CATEGORY_PROTECTION_OF_MINORS")[measures] == MARKER
    total = row(own, cat, "TOTAL")
    assert (
        "Protection of minors (Safehold): x cases."
        in total["Contextual Information on Number of measures taken at the provider's own initiative "]
    )
    assert validate_dsa_zip(data) == []
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        text = "".join(z.read(n).decode() for n in z.namelist())
    assert "..18" not in text and "2..1" not in text


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_names_that_start_like_a_formula_are_written_as_text(start):
    """CSV injection: the provider's and service's names (configuration) and names in the figures are quoted with
    a leading apostrophe, so a spreadsheet never runs them."""
    evil = f'{start}HYPERLINK("http://example.invalid")'
    context = ReportContext(evil, evil, CONTEXT.generated_at, 10)
    rows = dict(ROWS, **{"reports.by_authority": [(evil, "finished", 110, 118)]})
    data = DsaFormat().render(figure_set(rows), context)
    p = parts(data)
    summary = {r["Indicator"]: r["Value"] for r in p["01_summary.csv"]}
    assert summary["Name of the service provider"] == "'" + evil
    assert all(r["Service"] == "'" + evil for r in p["05_own_initiative_illegal.csv"])
    cells = [c for rows_ in p.values() for r in rows_ for c in r.values()]
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    assert validate_dsa_zip(data) == []


def test_empty_figures_still_give_a_valid_report():
    data = DsaFormat().render(figure_set({}), CONTEXT)
    assert validate_dsa_zip(data) == []
    own = parts(data)["05_own_initiative_illegal.csv"]
    minors = row(own, "Category of illegal content", "STATEMENT_CATEGORY_PROTECTION_OF_MINORS")
    assert minors["Number of measures taken at the provider's own initiative "] == "0"
    assert minors["Visibility restriction Removal"] == "0"


def rezip(data: bytes, name: str, edit) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for n in src.namelist():
            body = src.read(n)
            dst.writestr(n, edit(body.decode()).encode() if n == name else body)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "edit", "problem"),
    [
        (
            "04_notices.csv",
            lambda t: t.replace("Number of notices received from Trusted flaggers", "Trusted"),
            "header",
        ),
        (
            "05_own_initiative_illegal.csv",
            lambda t: t.replace("KEYWORD_HATE_SPEECH", "KEYWORD_NOT_A_CODE", 1),
            "not allowed",
        ),
        (
            "05_own_initiative_illegal.csv",
            lambda t: t.replace("KEYWORD_HATE_SPEECH", "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL", 1),
            "does not belong",
        ),
        ("07_appeals_and_recidivism.csv", lambda t: t.replace("Decisions upheld", "Upheld", 1), "not in the template"),
        ("07_appeals_and_recidivism.csv", lambda t: t.replace(MARKER, "many", 1), "not a number"),
        ("01_summary.csv", lambda t: "", "empty"),
    ],
)
def test_the_validator_finds_problems(name, edit, problem):
    data = rezip(DsaFormat().render(figure_set(ROWS), CONTEXT), name, edit)
    problems = validate_dsa_zip(data)
    assert problems and all(p.startswith(name) for p in problems)
    assert problem in problems[0]


def test_the_validator_needs_every_part_and_a_zip():
    assert validate_dsa_zip(b"not a zip") == ["not a ZIP file"]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("README.txt", "")
    assert len(validate_dsa_zip(out.getvalue())) == len(template()["parts"])


def test_member_state_and_language_rows_are_allowed():
    def add(name, line):
        return lambda t: t + line

    data = DsaFormat().render(figure_set(ROWS), CONTEXT)
    ok = rezip(
        data,
        "10_AMAR.csv",
        add(
            "",
            "Only for VLOPs and VLOSEs,S,2026-01-01/2026-06-30,AMAR,"
            "Number of average monthly active recipients during the reporting period,AT,\n",
        ),
    )
    assert validate_dsa_zip(ok) == []
    bad = rezip(
        data,
        "10_AMAR.csv",
        add(
            "",
            "Only for VLOPs and VLOSEs,S,2026-01-01/2026-06-30,AMAR,"
            "Number of average monthly active recipients during the reporting period,XX,\n",
        ),
    )
    assert validate_dsa_zip(bad)
