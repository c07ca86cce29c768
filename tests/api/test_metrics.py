"""/metrics: the Prometheus text format, behind metrics.read; requests under their route template, state gauges."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client.parser import text_string_to_metric_families

from safehold import monitoring
from safehold.store.models import ExchangeRow, ImportJob
from safehold.workers.engine import _run_logged
from safehold.workers.tasks import Task

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def scrape(client, keys) -> dict[str, list]:
    """Every sample of a scrape, by metric family name: ``{name: [(sample name, labels, value), ...]}``."""
    r = client.get("/metrics", headers=keys["auditor"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")  # the text exposition format
    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(r.text)
    }


def requests_counted(metrics, **labels) -> float:
    return sum(
        value
        for name, sample_labels, value in metrics["safehold_http_requests"]
        if name.endswith("_total") and all(sample_labels.get(k) == v for k, v in labels.items())
    )


@SQLITE
def test_metrics_need_the_permission(client, keys):
    assert client.get("/metrics").json()["error"]["code"] == "auth.missing_key"
    assert client.get("/metrics", headers=keys["reviewer"]).status_code == 403
    assert client.get("/metrics", headers=keys["platform"]).status_code == 403
    assert client.get("/metrics", headers=keys["admin"]).status_code == 200


@SQLITE
def test_requests_are_counted_under_their_route_template(client, keys):
    before = scrape(client, keys)
    for _ in range(3):
        assert client.get("/v1/banks/no-such-bank-x1", headers=keys["admin"]).status_code == 404
    client.get("/nothing/here/at/all")
    client.request("BREW", "/v1/health")
    after = scrape(client, keys)
    name = {"route": "/v1/banks/{name}", "method": "GET", "status": "4xx"}
    assert requests_counted(after, **name) - requests_counted(before, **name) == 3
    unrouted = {"route": "other", "method": "GET", "status": "4xx"}
    assert requests_counted(after, **unrouted) - requests_counted(before, **unrouted) == 1
    assert requests_counted(after, method="other") - requests_counted(before, method="other") == 1
    labels = [labels for samples in after.values() for _, labels, _ in samples]
    assert not any("no-such-bank-x1" in v or "/nothing" in v for la in labels for v in la.values())
    durations = after["safehold_http_request_duration_seconds"]
    assert any(n.endswith("_count") and la["route"] == "/v1/banks/{name}" for n, la, _ in durations)
    assert after["safehold_http_requests_in_flight"][0][2] >= 1  # the scrape itself


@SQLITE
def test_the_hot_path_is_counted(client, keys):
    before = scrape(client, keys)
    r = client.post("/v1/search/check", json={"query": "weather tomorrow"}, headers=keys["platform"])
    assert r.status_code == 200
    after = scrape(client, keys)
    check = {"route": "/v1/search/check", "method": "POST", "status": "2xx"}
    assert requests_counted(after, **check) - requests_counted(before, **check) == 1


def test_state_gauges(client, keys, svc, monkeypatch):
    monkeypatch.setattr(monitoring, "CACHE_SECONDS", 0.0)
    bank = svc.banks.create("gauges")
    week_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    with svc.db.session() as s:
        s.add(ImportJob(bank_id=bank.id, sha256="0" * 64, format="csv", options="{}", status="adding"))
        s.add(ImportJob(bank_id=bank.id, sha256="1" * 64, format="csv", options="{}", status="done"))
        s.add(ExchangeRow(name="feed", type="local", bank_id=bank.id, last_success_at=week_ago, failures=2))
        s.add(ExchangeRow(name="off", type="local", bank_id=bank.id, enabled=False))
        s.commit()
    m = scrape(client, keys)
    assert ("safehold_import_jobs", {"status": "adding"}, 1.0) in m["safehold_import_jobs"]
    assert ("safehold_import_jobs", {"status": "withdrawing"}, 0.0) in m["safehold_import_jobs"]
    for queue in ("safehold_webhook_deliveries", "safehold_screening_jobs", "safehold_reports_filing"):
        assert m[queue] and all(value == 0 for _, _, value in m[queue])
    [(_, labels, age)] = m["safehold_exchange_last_success_age_seconds"]
    assert labels == {"exchange": "feed"} and 7 * 86400 <= age < 7 * 86400 + 60
    assert m["safehold_exchange_consecutive_failures"] == [
        ("safehold_exchange_consecutive_failures", {"exchange": "feed"}, 2.0)
    ]
    types = {labels["signal_type"] for _, labels, _ in m["safehold_index_entries"]}
    assert "pdq" in types
    assert m["safehold_index_changes_behind"][0][2] >= 0
    assert "safehold_index_synced_age_seconds" in m


@SQLITE
def test_state_gauges_are_cached(client, keys, svc):
    bank = svc.banks.create("cached")
    scrape(client, keys)
    with svc.db.session() as s:
        s.add(ImportJob(bank_id=bank.id, sha256="2" * 64, format="csv", options="{}", status="adding"))
        s.commit()
    # Within CACHE_SECONDS a scrape reuses the gauges read before: the database is not asked again.
    assert ("safehold_import_jobs", {"status": "adding"}, 0.0) in scrape(client, keys)["safehold_import_jobs"]


@SQLITE
def test_task_failures_are_counted(client, keys, svc):
    def broken(_svc):
        raise RuntimeError("the database went away")

    task = Task("test.broken", broken)
    assert _run_logged(task, svc) is False
    assert _run_logged(task, svc) is False
    samples = scrape(client, keys)["safehold_task_failures"]
    assert ("safehold_task_failures_total", {"task": "test.broken"}, 2.0) in samples
