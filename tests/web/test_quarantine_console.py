"""The console's false-positive controls: the quarantine page (why, release) and an entry's statistics."""

from __future__ import annotations

from safehold.store.models import utcnow
from tests.sharing.test_quarantine import SOURCE, audit, make_auto_bank, scan


def test_console_lists_explains_releases_and_shows_the_entry(svc, open_console, staff_users):
    svc, ids = make_auto_bank(svc)
    scan(svc, 0, times=20)
    svc.scans.flush_counts()
    svc.quarantine.check(utcnow())
    rita = open_console("rita")  # a reviewer reads, never releases
    page = rita.get("/console/admin/quarantine").text
    assert "20 matches in the last 24 h" in page and SOURCE in page and "/release" not in page
    entry = rita.get(f"/console/admin/entries/{ids[0]}").text
    assert "Quarantined" in entry and "20 matches in the last 24 h" in entry
    assert rita.post(f"/console/admin/quarantine/{ids[0]}/release").status_code == 403
    ada = open_console("ada")
    assert ada.post(f"/console/admin/quarantine/{ids[0]}/release").status_code == 303
    assert "No entry is quarantined." in ada.get("/console/admin/quarantine").text
    assert [r.actor for r in audit(svc, "entry.quarantine_release")] == ["user:ada"]
    assert ada.get("/console/admin/entries/999999").status_code == 404
