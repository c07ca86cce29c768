"""The console answers its own pages for integers beyond the database's range: an id in a path is a 404 (no such
page), a number in a query or form is a 422 page; never a 500."""

from __future__ import annotations

import pytest

HUGE = "99999999999999999999"  # beyond a signed 64-bit integer

pytestmark = pytest.mark.usefixtures("staff_users")


@pytest.mark.parametrize(
    "path",
    [
        f"/console/cases/{HUGE}",
        f"/console/reports/{HUGE}",
        f"/console/items/{HUGE}/preview",
        "/console/cases/-1",
        "/console/cases/abc",
    ],
)
def test_an_id_out_of_range_in_a_console_path_is_its_404_page(open_console, path):
    r = open_console("ada").get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert r.headers["content-type"].startswith("text/html") and "request.not_found" in r.text


@pytest.mark.parametrize(
    "path",
    [
        f"/console?offset={HUGE}",
        f"/console/audit?after_seq={HUGE}",
        f"/console/evidence?case_id={HUGE}",
        "/console/evidence?case_id=%C2%B2",
    ],
)
def test_a_number_out_of_range_in_a_console_query_is_its_422_page(open_console, path):
    r = open_console("ada").get(path)
    assert r.status_code == 422, (path, r.status_code)
    assert r.headers["content-type"].startswith("text/html") and "request.invalid" in r.text


def test_a_number_out_of_range_in_a_console_form_is_its_422_page(open_console):
    console = open_console("ada")
    for path, data in (
        ("/console/cases/1/bank", {"item_id": HUGE, "bank": "known"}),
        ("/console/evidence/holds", {"reason": "preservation", "case_id": HUGE}),
    ):
        r = console.post(path, data)
        assert r.status_code == 422 and "request.invalid" in r.text, (path, r.status_code)
