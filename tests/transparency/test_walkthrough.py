"""Issue [11]'s "Done when", as the steps a new user takes (docs/transparency.md, "Walkthrough"): after the
quickstart, on a fresh store, their first match, case, decision and report show in the overview (API and console
page, figures and charts), the bank row's drill-down lists the case, and every report format is generated for the
period, the DSA ZIP valid and every report reproducing; and the documentation's commands, pasted into a shell
against a real ``safehold serve``.

The image is benign (generated); "csam" is the reviewer's decision in a rehearsal, as in the other walkthroughs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from safehold.store.models import utcnow
from safehold.transparency.formats.dsa import validate_dsa_zip
from tests.media import jpeg
from tests.walkthrough import run_walkthrough
from tests.web.conftest import PASSWORD, Console

REPO = Path(__file__).resolve().parents[2]
IMAGE = jpeg(11)  # benign, generated
FORMATS = ("dsa", "reg2021-1232", "trust", "html", "pdf", "json")


def rows_of(overview: dict, key: str) -> list[dict]:
    """A figure's rows as {column: value}."""
    figure = overview["figures"][key]
    return [dict(zip(figure["columns"], row, strict=True)) for row in figure["rows"]]


def test_a_new_user_sees_their_first_case_in_the_overview_and_reports(svc, cli, client, keys, tmp_path):
    admin, platform, reviewer = keys["admin"], keys["platform"], keys["reviewer"]
    period = utcnow().strftime("%Y-%m")

    # 1. A bank with one hash (the image's MD5); an upload that matches it opens a case.
    assert client.post("/v1/banks", json={"name": "walk-known"}, headers=admin).status_code == 201
    entry = {"signal_type": "md5", "value": hashlib.md5(IMAGE).hexdigest(), "category": "A2"}
    assert client.post("/v1/banks/walk-known/entries", json=entry, headers=admin).status_code == 201
    svc.tasks.run_now("index.sync")
    scan = client.post("/v1/scan", files={"file": ("up.jpg", IMAGE, "image/jpeg")},
                       data={"account_id": "walk-user", "content_id": "walk-1"}, headers=platform).json()  # fmt: skip
    assert scan["verdict"] == "match", scan
    [ref] = scan["cases"]
    case_id = ref["id"]

    # 2. A reviewer decides: csam, A2. Known material needs no second reviewer: the case closes.
    assert client.post(f"/v1/cases/{case_id}/claim", headers=reviewer).status_code == 200
    decision = {"decision": "csam", "classification": "A2"}
    decided = client.post(f"/v1/cases/{case_id}/decision", json=decision, headers=reviewer)
    assert decided.status_code == 200 and decided.json()["status"] == "closed", decided.json()

    # 3. A report to NCMEC drafted from it (the starting policy may have drafted it already: the same report).
    drafted = client.post("/v1/reports", json={"case_id": case_id}, headers=admin)
    assert drafted.status_code in (200, 201), drafted.json()
    report = drafted.json()
    assert report["authority"] == "ncmec" and report["status"] == "draft", report

    # 4. The overview for this month: the match, the case, the decision and the report.
    overview = client.get("/v1/transparency/overview", params={"period": period}, headers=admin).json()
    [match] = rows_of(overview, "detections.by_source")
    assert (match["source"], match["cases"]) == ("hash_match", 1), match
    [bank_row] = rows_of(overview, "detections.by_bank")
    assert (bank_row["bank"], bank_row["cases"]) == ("walk-known", 1), bank_row
    [opened] = rows_of(overview, "cases.by_source")
    assert (opened["source"], opened["opened"], opened["closed"]) == ("hash_match", 1, 1), opened
    assert rows_of(overview, "decisions.by_outcome") == [{"decision": "csam", "classification": "A2", "cases": 1}]
    assert rows_of(overview, "reports.by_authority") == [{"authority": "ncmec", "status": "draft", "reports": 1,
                                                          "cases": 1}]  # fmt: skip
    headlines = {h["key"]: h["value"] for h in overview["headlines"]}
    assert (headlines["detections"], headlines["cases_opened"], headlines["cases_closed"]) == (1, 1, 1), headlines

    # 5. The console's Overview page (a senior reviewer: transparency.read and cases.read, no second factor):
    #    the same numbers in its charts (each bar titled) and tables, and a CSV link on the bank's row.
    svc.users.create("sara", PASSWORD, "senior_reviewer", display_name="Sara")
    console = Console(client)
    assert console.login("sara").status_code == 303
    page = console.get("/console/overview", params={"period": period})
    assert page.status_code == 200, page.text
    for title in ("hash_match, signals: 1", "walk-known, matches: 1", "hash_match / media, opened: 1",
                  "csam / A2, cases: 1", "ncmec / draft, reports: 1"):  # fmt: skip
        assert f"<title>{title}</title>" in page.text, title
    assert re.search(r'data-headline="cases_opened"><dt>Cases opened</dt><dd><a [^>]*>1</a>', page.text)
    assert '<th scope="row">csam</th><th scope="row">A2</th><td class="num">1</td>' in page.text
    link = f"/console/overview/records/detections.by_bank?period={period}&amp;bank=walk-known&amp;exchange="
    assert link in page.text

    # 6. The bank row's drill-down (API and console): the records behind it, that case among them.
    row = {"period": period, "bank": "walk-known", "exchange": ""}
    listed = client.get("/v1/transparency/figures/detections.by_bank/records", params=row, headers=admin)
    assert listed.status_code == 200, listed.text
    assert [r["case_id"] for r in csv.DictReader(io.StringIO(listed.text))] == [str(case_id)]
    in_console = console.get(link.replace("&amp;", "&"))
    assert in_console.status_code == 200 and in_console.text == listed.text

    # 7. Every format for the month: through the CLI (dsa, html, pdf) and the API (the others); each reproduces.
    made = {}
    for fmt in ("dsa", "html", "pdf"):
        out = tmp_path / f"report.{fmt}"
        shown = cli("transparency", "report", "--period", period, "--format", fmt, "--out", out).output
        made[fmt] = int(re.search(r"^id\t(\d+)$", shown, flags=re.MULTILINE)[1])
        assert out.stat().st_size > 0
    for fmt in ("reg2021-1232", "trust", "json"):
        answer = client.post("/v1/transparency/reports", json={"period": period, "format": fmt}, headers=admin)
        assert answer.status_code == 201, answer.json()
        made[fmt] = answer.json()["id"]
    assert sorted(made) == sorted(FORMATS)
    dsa = client.get(f"/v1/transparency/reports/{made['dsa']}/content", headers=admin)
    assert dsa.status_code == 200 and dsa.content == (tmp_path / "report.dsa").read_bytes()
    assert zipfile.is_zipfile(io.BytesIO(dsa.content)) and validate_dsa_zip(dsa.content) == []
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    published = client.get(f"/v1/transparency/reports/{made['json']}/content", headers=admin).text
    assert '"<10"' in published and '"walk-known"' in published  # the first month's ones, suppressed in reports
    for fmt, report_id in made.items():
        verified = client.post(f"/v1/transparency/reports/{report_id}/verify", headers=admin).json()
        assert verified["figures"]["match"] and verified["rendering"]["reproduced"], (fmt, verified)
        assert verified["rendering"]["content_intact"], (fmt, verified)
    assert "reproduced byte for byte" in cli("transparency", "verify", made["dsa"]).output


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walkthrough's commands use curl")
def test_the_documented_walkthrough_runs_against_a_real_server(tmp_path):
    """docs/transparency.md's commands, copied and pasted into a shell, against ``safehold serve`` on an empty
    store (SQLite, a fresh home). The reports go to the test's folder; Python is the test's (a user's is the
    checkout's ``.venv``)."""
    edits = {"OUT=transparency-$P;": f"OUT={tmp_path / 'out'};", ".venv/bin/python -c": '"$SAFEHOLD_PY" -c'}
    run = run_walkthrough("transparency.md", tmp_path / "var", edits)
    out = run.stdout
    assert run.returncode == 0, (out, run.stderr)
    assert '"verdict":"match"' in out and '"cases":[{"id":1,"created":true' in out, out  # 1.
    assert '"decision":"csam"' in out  # 2.
    assert '"authority":"ncmec"' in out and '"status":"draft"' in out  # 3.
    for line in ("detections.by_source [['hash_match', 1, 1]]", "detections.by_bank [['walk-known', '', 1, 1]]",
                 "cases.by_source [['hash_match', 'media', 1, 1]]", "decisions.by_outcome [['csam', 'A2', 1]]",
                 "reports.by_authority [['ncmec', 'draft', 1, 1]]"):  # fmt: skip
        assert line in out, (line, out)  # 4.
    assert "case_id,signal_id\r\n1,1\r\n" in out or "case_id,signal_id\n1,1\n" in out, out  # 5.
    verified = [json.loads(line) for line in out.splitlines() if line.startswith('{"id":') and '"rendering"' in line]
    assert len(verified) == len(FORMATS), out  # 6.
    assert all(v["figures"]["match"] and v["rendering"]["reproduced"] for v in verified), verified
    assert "the DSA report is valid" in out
    assert (tmp_path / "out" / "report.html").read_bytes().lower().startswith(b"<!doctype html>")
