"""The NCMEC stand-in's own contract: authentication, paging links, cursors, refusals."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from lxml import etree

from safehold.sharing.exchanges.ncmec_standin import NS, NcmecStandIn

T0 = int(time.time()) - 86400
WINDOW = {"from": "2000-01-01T00:00:00.000Z", "to": "2100-01-01T00:00:00Z"}


@pytest.fixture
def standin():
    with NcmecStandIn(page_size=10) as s:
        yield s


def get(standin, path, auth=("esp", "secret"), **params) -> httpx.Response:
    return httpx.get(standin.url + path, params=params or None, auth=auth, timeout=5)


def entry_ids(response) -> list[str]:
    root = etree.fromstring(response.content)
    return [e.findtext(f"{{{NS}}}id") for block in root for e in block if block.tag != f"{{{NS}}}paging"]


def test_basic_auth_is_required(standin):
    for auth in (None, ("esp", "wrong"), ("other", "secret")):
        r = get(standin, "/v2/status", auth=auth)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    assert get(standin, "/v2/status").status_code == 200


def next_link(response) -> str | None:
    return etree.fromstring(response.content).findtext(f"{{{NS}}}paging/{{{NS}}}next")


def rest_of_window(standin, link) -> list[str]:
    ids = []
    while link:
        page = httpx.get(standin.url + link, auth=("esp", "secret"), timeout=5)
        ids += entry_ids(page)
        link = next_link(page)
    return ids


def test_paging_follows_a_fixed_cursor_of_the_window(standin):
    standin.generate(25, start=T0, end=T0 + 100)
    first = get(standin, "/v2/entries", **WINDOW)
    query = parse_qs(urlsplit(next_link(first)).query)
    assert (query["start"], query["size"], query["max"]) == (["11"], ["10"], ["25"])
    standin.put(9, "late", {"md5": "1" * 32}, timestamp=T0 + 50)  # arrives after the cursor was made
    ids = entry_ids(first) + rest_of_window(standin, next_link(first))
    assert sorted(ids) == sorted(f"s{n}" for n in range(25))  # the cursor's entries, each once
    stamps = [standin.entry(int(i[1:])).timestamp for i in ids]
    assert stamps != sorted(stamps)
    again = get(standin, "/v2/entries", **WINDOW)  # a new window's cursor has it
    assert "late" in entry_ids(again) + rest_of_window(standin, next_link(again))


def test_bad_requests_are_refused(standin):
    assert get(standin, "/v2/entries", to=WINDOW["to"]).status_code == 400
    assert get(standin, "/v2/entries", **{"from": "yesterday", "to": WINDOW["to"]}).status_code == 400
    assert get(standin, "/v2/nothing").status_code == 404
    put = httpx.put(standin.url + "/v2/entries/42/none/MD5/feedback", content=b"<x/>", auth=("esp", "secret"))
    assert put.status_code == 404
    standin.put(42, "e", {"md5": "1" * 32}, timestamp=T0)
    for body in (b"not xml", f'<feedbackSubmission xmlns="{NS}"><negative/></feedbackSubmission>'.encode()):
        put = httpx.put(standin.url + "/v2/entries/42/e/MD5/feedback", content=body, auth=("esp", "secret"))
        assert put.status_code == 400
    big = httpx.put(standin.url + "/v2/entries/42/e/MD5/feedback", content=b"x" * 70_000, auth=("esp", "secret"))
    assert big.status_code == 413
    assert standin.feedback == []


def test_faults_are_served_in_order(standin):
    standin.fail(429, retry_after=9)
    standin.fail(200, body=b"<garbage")
    r = get(standin, "/v2/status")
    assert r.status_code == 429 and r.headers["Retry-After"] == "9"
    assert get(standin, "/v2/status").content == b"<garbage"
    assert get(standin, "/v2/status").status_code == 200
