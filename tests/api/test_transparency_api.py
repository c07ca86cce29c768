"""``/v1/transparency``: the overview's figures for a period, the catalogue, and the CSV of the records behind a
row. The figures come from the engine; here they are a hand-built figure set
(tests/transparency/overview_helpers.py), so what is tested is the route's contract, whatever the engine computes."""

from __future__ import annotations

import csv
import io

import pytest

from safehold.errors import SafeholdError
from safehold.transparency.engine import Facts
from safehold.transparency.figures import CATALOGUE, VERSION
from tests.transparency.overview_helpers import sample

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def figures(monkeypatch):
    """Facts.figures answers the sample set; the filters each call was given are kept."""
    calls: list[dict] = []

    def fake(self, period, filters=None, as_of=None):
        calls.append(dict(filters or {}))
        return sample(period, filters)

    monkeypatch.setattr(Facts, "figures", fake)
    return calls


@pytest.fixture
def records(monkeypatch):
    """Facts.records lists ``n`` records (set ``records.n``) and keeps what it was asked for."""

    class Listing:
        n = 3
        asked: list[tuple] = []

    def fake(self, key, period, filters, row):
        Listing.asked.append((key, period.name, dict(filters), dict(row)))
        return ({"case_id": i, "signal_id": 1000 + i} for i in range(1, Listing.n + 1))

    monkeypatch.setattr(Facts, "records", fake)
    return Listing


def test_overview_on_a_new_store_is_every_figure_empty(client, keys):
    r = client.get("/v1/transparency/overview", headers=keys["auditor"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == VERSION and body["period"]["name"] == "last-30d" and body["period"]["days"] == 30
    assert set(body["figures"]) == set(CATALOGUE)
    assert all(f["rows"] == [] for f in body["figures"].values())
    heads = {h["key"]: h for h in body["headlines"]}
    assert heads["detections"]["value"] == 0 and heads["cases_opened"]["text"] == "0"


def test_overview_answers_the_figure_set_with_definitions_and_headlines(client, keys, figures):
    r = client.get("/v1/transparency/overview?period=2026-Q3&source=hash_match&queue=media", headers=keys["legal"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period"] == {"name": "2026-Q3", "start": "2026-07-01", "end": "2026-10-01", "days": 92}
    assert body["filters"] == {"queue": "media", "source": "hash_match"} and figures == [body["filters"]]
    fig = body["figures"]["detections.by_source"]
    spec = CATALOGUE["detections.by_source"]
    assert fig["columns"] == ["source", "signals", "cases"] and fig["rows"][0] == ["hash_match", 140, 130]
    assert fig["title"] == spec.title and fig["counts"] == spec.counts and fig["unit"] == "count"
    assert fig["drill_down"] is True and body["figures"]["scans.volume"]["drill_down"] is False
    heads = {h["key"]: h["value"] for h in body["headlines"]}
    assert heads["detections"] == 303 and heads["cases_opened"] == 9 and heads["backlog"] == 17
    assert heads["sla_breaches"] == 10 + 2  # decided late, and undecided past their due time
    assert heads["reports_filed"] == 92  # the finished ones, not the draft
    assert heads["median_time_to_decision"] is None  # two bands: no one median


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("period=2026-13", "transparency.bad_period"),
        ("period=yesterday", "transparency.bad_period"),
        ("period=2026-11-30..2026-11-01", "transparency.bad_period"),
        ("period=1999", "transparency.bad_period"),
    ],
)
def test_bad_periods_are_400(client, keys, query, code):
    r = client.get(f"/v1/transparency/overview?{query}", headers=keys["admin"])
    assert r.status_code == 400 and r.json()["error"]["code"] == code


def test_filters_are_bounded_by_the_schema(client, keys):
    r = client.get("/v1/transparency/overview?source=telepathy", headers=keys["admin"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"
    assert client.get("/v1/transparency/overview?period=" + "9" * 41, headers=keys["admin"]).status_code == 422
    assert client.get("/v1/transparency/overview?source=&queue=", headers=keys["admin"]).status_code == 200


def test_roles(client, keys):
    for role, status in (("admin", 200), ("senior_reviewer", 200), ("auditor", 200), ("legal", 200),
                         ("reviewer", 403), ("platform", 403)):  # fmt: skip
        assert client.get("/v1/transparency/overview", headers=keys[role]).status_code == status, role
        assert client.get("/v1/transparency/figures", headers=keys[role]).status_code == status, role
    assert client.get("/v1/transparency/overview").status_code == 401


def test_catalogue(client, keys):
    body = client.get("/v1/transparency/figures", headers=keys["auditor"]).json()
    assert body["version"] == VERSION and [f["key"] for f in body["figures"]] == list(CATALOGUE)
    assert body["filters"]["queue"] == ["media", "text", "report", "live", "account"]
    by_key = {f["key"]: f for f in body["figures"]}
    assert by_key["cases.daily"]["records"] == "cases" and by_key["scans.volume"]["records"] is None


def test_drill_down_streams_every_record_as_csv(client, keys, svc, records):
    records.n = 25_000  # beyond any page size: no row cap
    url = "/v1/transparency/figures/detections.by_bank/records?period=2026-11&queue=media&bank=known&exchange="
    with client.stream("GET", url, headers=keys["auditor"]) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/csv")
        assert r.headers["content-disposition"] == 'attachment; filename="detections-by_bank-2026-11.csv"'
        assert "content-length" not in r.headers  # streamed
        chunks = list(r.iter_text())
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert len(rows) == 25_000 and rows[0] == {"case_id": "1", "signal_id": "1001"}
    assert records.asked[-1] == ("detections.by_bank", "2026-11", {"queue": "media"}, {"bank": "known", "exchange": ""})
    audit = svc.audit.list(action="transparency.records")[-1]
    assert audit["target"] == "figure:detections.by_bank" and audit["detail"]["row"] == {
        "bank": "known",
        "exchange": "",
    }


def test_drill_down_with_no_records_is_a_header(client, keys, records):
    records.n = 0
    r = client.get("/v1/transparency/figures/cases.daily/records?period=2026-11&day=2026-11-03", headers=keys["admin"])
    assert r.status_code == 200 and r.text == "case_id\r\n"


def test_a_filter_that_is_a_dimension_names_the_row_and_filters(client, keys, records):
    url = "/v1/transparency/figures/cases.by_source/records?period=2026&source=classifier&queue=text"
    assert client.get(url, headers=keys["admin"]).status_code == 200
    assert records.asked[-1][2:] == (
        {"source": "classifier", "queue": "text"},
        {"source": "classifier", "queue": "text"},
    )


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("scans.volume/records?media=image&verdict=match", 400, "transparency.no_records"),
        ("search.interventions/records?kind=a&action=b&category=c", 400, "transparency.no_records"),
        ("nothing.here/records", 404, "transparency.unknown_figure"),
        ("detections.by_bank/records?bank=known&exchange=&colour=red", 400, "transparency.bad_row"),
        ("detections.by_bank/records?bank=known&bank=other&exchange=", 400, "transparency.bad_row"),
        ("detections.by_bank/records?exchange=&bank=" + "k" * 201, 400, "transparency.bad_row"),
        ("cases.daily/records?day=2026-11-01" + "&x=1" * 9, 400, "transparency.bad_row"),
        ("cases.daily/records?period=2026-02-30&day=2026-02-01", 400, "transparency.bad_period"),
    ],
)
def test_drill_down_refusals(client, keys, records, path, status, code):
    r = client.get(f"/v1/transparency/figures/{path}", headers=keys["admin"])
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text


def test_drill_down_needs_cases_read_too(client, keys, records, monkeypatch):
    from safehold.auth.roles import GRANTS, Permission, Role

    url = "/v1/transparency/figures/cases.daily/records?day=2026-11-01&period=2026-11"
    assert client.get(url, headers=keys["reviewer"]).status_code == 403  # cases.read, no transparency.read
    monkeypatch.setitem(GRANTS, Role.AUDITOR, GRANTS[Role.AUDITOR] - {Permission.CASES_READ})
    r = client.get(url, headers=keys["auditor"])  # transparency.read, no cases.read
    assert r.status_code == 403 and "cases.read" in r.json()["error"]["message"]


def test_a_listing_that_fails_midway_is_an_error_not_a_short_download(client, keys, monkeypatch, svc):
    def failing(self, key, period, filters, row):
        yield {"case_id": 1}
        raise SafeholdError("transparency.unknown_figure", "gone while listing", status=404)

    monkeypatch.setattr(Facts, "records", failing)
    r = client.get("/v1/transparency/figures/cases.daily/records?day=2026-11-01&period=2026-11", headers=keys["admin"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "transparency.unknown_figure"
    assert svc.audit.list(action="transparency.records") == []  # nothing was listed
