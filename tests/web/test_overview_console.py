"""The console's Overview page: period and filters in the URL, headline numbers, a section per figure group with
a chart drawn on the server (inline SVG, no script) and the numbers behind it, a CSV drill-down per row, the
JSON of the whole overview, and a new store's empty state. The figures are a hand-built set
(tests/transparency/overview_helpers.py): the page is tested against the figure-set contract."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser

import pytest

from safehold.transparency.engine import Facts
from safehold.transparency.figures import CATALOGUE
from safehold.transparency.overview import GROUPS
from tests.transparency.overview_helpers import sample

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def figures(monkeypatch):
    monkeypatch.setattr(Facts, "figures", lambda self, period, filters=None, as_of=None: sample(period, filters))


@pytest.fixture
def records(monkeypatch):
    asked = []

    def fake(self, key, period, filters, row):
        asked.append((key, period.name, dict(filters), dict(row)))
        return iter([{"case_id": 7, "signal_id": 70}, {"case_id": 8, "signal_id": 80}])

    monkeypatch.setattr(Facts, "records", fake)
    return asked


class Outline(HTMLParser):
    """Headings, scripts, svg titles/descs and table captions of a page."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.stack: list[str] = []
        self.text: dict[str, list[str]] = {"h2": [], "h3": [], "caption": [], "title": [], "desc": []}

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.stack.append(tag)

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] in self.text and data.strip():
            self.text[self.stack[-1]].append(data.strip())


def _outline(html: str) -> Outline:
    o = Outline()
    o.feed(html)
    return o


def _main(html: str) -> str:
    return html.split('<main id="main"', 1)[1].split("</main>", 1)[0]


def test_a_new_store_shows_zeros_and_says_what_will_appear(open_console, staff_users):
    r = open_console("otto").get("/console/overview")
    assert r.status_code == 200, r.text
    main = _main(r.text)
    assert "Nothing has been recorded in this period yet" in main
    assert re.search(r'data-headline="detections"><dt>Detections</dt><dd><a [^>]*>0</a>', main)
    assert main.count("Nothing yet in this period.") == len(CATALOGUE)
    assert "<svg" not in main and 'class="error"' not in main


def test_page_renders_every_figure_with_chart_and_numbers(open_console, staff_users, figures):
    r = open_console("otto").get("/console/overview?period=2026-11&source=&queue=media")
    assert r.status_code == 200, r.text
    main = _main(r.text)
    outline = _outline(main)
    # one section per group, one article per catalogue figure
    assert [g.heading for g in GROUPS] == [h for h in outline.text["h2"] if h != "Headlines"]
    for key, spec in CATALOGUE.items():
        assert f'data-figure="{key}"' in main and spec.title in outline.text["h3"]
        assert f"{spec.title}, 2026-11" in outline.text["caption"]
    # headlines and the numbers in the tables
    assert re.search(r'data-headline="detections"><dt>Detections</dt><dd><a [^>]*>303</a>', main)
    assert re.search(r'data-headline="cases_opened"><dt>Cases opened</dt><dd><a [^>]*>9</a>', main)
    assert re.search(r'data-headline="reports_filed"><dt>Reports filed</dt><dd><a [^>]*>92</a>', main)
    assert "P1 30.0 min · P2 4.0 h" in main  # medians per band: no one median across bands
    assert '<th scope="row">hash_match</th><td class="num">140</td>' in main
    assert '<td class="num">25.0 %</td>' in main and '<td class="num">20.0 h</td>' in main  # a rate, a p90
    # charts: inline SVG with a title and a description, drawn without any script
    svgs = main.count("<svg")
    assert svgs == len(CATALOGUE) and "script" not in outline.tags
    assert "Detections by source" in outline.text["title"] and outline.text["desc"]
    assert "<details>" in main and "The numbers behind the chart" in main
    # filters and period are in the form, and the page names them
    assert 'name="period"' in main and 'value="2026-11"' in main and '<option value="media" selected>' in main
    assert "2026-11 (2026-11-01 to 2026-11-30)" in main and "queue <code>media</code>" in main


def test_drill_down_links_and_csv(open_console, staff_users, figures, records, svc):
    otto = open_console("otto")
    main = _main(otto.get("/console/overview?period=2026-11&queue=media").text)
    links = re.findall(r'href="(/console/overview/records/[^"]+)"', main)
    assert (
        "/console/overview/records/detections.by_bank?period=2026-11&amp;queue=media&amp;bank=own&amp;exchange="
        in links
    )
    assert not any("scans.volume" in h or "search.interventions" in h for h in links)  # no records behind them
    r = otto.get(links[0].replace("&amp;", "&"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith("attachment; filename=")
    assert list(csv.DictReader(io.StringIO(r.text))) == [{"case_id": "7", "signal_id": "70"},
                                                          {"case_id": "8", "signal_id": "80"}]  # fmt: skip
    url = "/console/overview/records/detections.by_bank?period=2026-11&queue=media&bank=own&exchange="
    otto.get(url)
    assert records[-1] == ("detections.by_bank", "2026-11", {"queue": "media"}, {"bank": "own", "exchange": ""})
    assert svc.audit.list(action="transparency.records")[-1]["actor"] == "user:otto"
    bad = otto.get("/console/overview/records/scans.volume?media=image&verdict=match")
    assert bad.status_code == 400 and "transparency.no_records" in bad.text


def test_json_of_the_whole_overview(open_console, staff_users, figures):
    otto = open_console("otto")
    page = otto.get("/console/overview?period=2026-Q3&source=classifier").text
    assert 'href="/console/overview.json?period=2026-Q3&amp;source=classifier"' in page
    body = otto.get("/console/overview.json?period=2026-Q3&source=classifier").json()
    assert body["period"]["name"] == "2026-Q3" and body["filters"] == {"source": "classifier"}
    assert set(body["figures"]) == set(CATALOGUE) and body["headlines"]


def test_bad_period_and_filter_are_error_pages(open_console, staff_users):
    otto = open_console("otto")
    r = otto.get("/console/overview?period=2026-13")
    assert r.status_code == 400 and "transparency.bad_period" in r.text
    r = otto.get("/console/overview?source=telepathy")
    assert r.status_code == 400 and "transparency.bad_filter" in r.text


def test_nav_link_only_for_those_who_may(open_console, staff_users):
    assert 'href="/console/overview"' in open_console("otto").get("/console/me").text
    rita = open_console("rita")  # a reviewer: no transparency.read
    assert 'href="/console/overview"' not in rita.get("/console/me").text
    assert rita.get("/console/overview").status_code == 403


def test_signed_out_and_refused_before_the_query_is_read(open_console, staff_users):
    r = open_console().get("/console/overview?period=nonsense")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert open_console("rita").get("/console/overview.json?period=nonsense").status_code == 403


def test_rows_of_zeros_have_no_drill_down_link(open_console, staff_users, monkeypatch):
    from safehold.transparency.figures import Figure

    def zeros(self, period, filters=None, as_of=None):
        fs = sample(period, filters)
        spec = CATALOGUE["cases.daily"]
        rows = (("2026-11-01", 0, 0), ("2026-11-02", 3, 1))
        return type(fs)(period, fs.as_of, {**fs.figures, spec.key: Figure(spec, rows)}, fs.filters)

    monkeypatch.setattr(Facts, "figures", zeros)
    main = _main(open_console("otto").get("/console/overview?period=2026-11").text)
    assert "records/cases.daily?period=2026-11&amp;day=2026-11-02" in main
    assert "day=2026-11-01" not in main
