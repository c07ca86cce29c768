"""The lookup hot path (HMA's ``GET /m/lookup`` of a hash, ``POST /v1/scan`` of a raw hash) answers exactly as the
FastAPI routes do — hits, misses, bad input, auth failures — and hands everything but the ordinary request to
them. Each request is sent to the app with the hot path and to the same app without it; the answers must be the
same bytes."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from safehold.api.hma_hotpath import LookupHotPath

BANK, OTHER = "HOT_BANK", "OTHER_BANK"
HIT = "f" * 60 + "0000"
NEAR = "f" * 60 + "0007"  # 3 bits from HIT
MISS = "0123456789abcdef" * 4


@pytest.fixture
def twin(svc):
    """A client of the same app without the hot path: what the routes alone answer."""
    from safehold.app import create_app

    app = create_app(svc, background=False)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not LookupHotPath]
    with TestClient(app) as c:
        yield c


@pytest.fixture
def banked(svc):
    svc.banks.create(BANK)
    svc.banks.create(OTHER)
    entry = svc.banks.add_hash(BANK, "pdq", HIT, added_by="test")
    svc.banks.add_hash(OTHER, "pdq", HIT, added_by="test")
    return entry["id"]


def _same(client, twin, method: str, url: str, **kwargs):
    hot, slow = client.request(method, url, **kwargs), twin.request(method, url, **kwargs)
    assert (hot.status_code, hot.content) == (slow.status_code, slow.content), (hot.text, slow.text)
    assert hot.headers["content-type"] == slow.headers["content-type"]
    assert int(hot.headers["content-length"]) == len(hot.content)
    return hot


def _volatile(answer: dict) -> dict:
    """A scan's answer less what differs between two scans of the same hash (none is recorded: no subject)."""
    return {k: v for k, v in answer.items() if k not in ("id", "scan_id", "scanned_at", "request_id")}


@pytest.mark.parametrize(
    "query",
    [
        f"signal={HIT}&signal_type=pdq",
        f"signal_type=pdq&signal={NEAR}",
        f"signal={NEAR}&signal_type=pdq&banks={OTHER}",
        f"signal={NEAR}&signal_type=pdq&banks={BANK},{OTHER}&seed=abc",
        f"signal={MISS}&signal_type=pdq",
    ],
)
def test_ordinary_lookups_answer_as_the_route(client, twin, keys, banked, query):
    r = _same(client, twin, "GET", f"/m/lookup?{query}", headers=keys["platform"])
    assert r.status_code == 200
    if MISS not in query:
        assert r.json()[OTHER][0]["distance"] in ("0", "3")
        if "banks" not in query:
            assert r.json()[BANK] == [{"bank_content_id": banked, "distance": "0" if HIT in query else "3"}]
    else:
        assert r.json() == {}


@pytest.mark.parametrize(
    "query",
    [
        "",
        "signal_type=pdq",
        f"signal={HIT}",
        f"signal={HIT}&signal_type=",
        "signal=&signal_type=pdq",
        f"signal={HIT}&signal_type=nope",
        "signal=zz&signal_type=pdq",
        f"signal={HIT}&signal_type={'p' * 65}",
        f"signal={HIT}&signal_type=pdq&signal_type=md5",
        f"signal={HIT}&signal_type=pdq&seed={'s' * 257}",
        f"signal={HIT}&signal_type=pdq&bypass_coinflip=maybe",
        f"signal={HIT}&signal_type=pdq&bypass_coinflip=true",
        f"signal={HIT}&signal_type=pdq&unknown=1",
        "url=http://127.0.0.1/x.jpg",
        "signal=%ZZ&signal_type=pdq",
    ],
)
def test_bad_or_unusual_lookups_answer_as_the_route(client, twin, keys, banked, query):
    _same(client, twin, "GET", f"/m/lookup?{query}", headers=keys["platform"])


def test_auth_failures_answer_as_the_route(client, twin, keys, banked, svc):
    url = f"/m/lookup?signal={HIT}&signal_type=pdq"
    for headers in ({}, {"Authorization": "Bearer sh_bad_key"}, {"Authorization": "Token x"}, keys["auditor"]):
        r = _same(client, twin, "GET", url, headers=headers)
        assert r.status_code in (401, 403)
    assert any(rec["action"] == "auth.denied" for rec in svc.audit.list(action="auth."))
    body = {"signal_type": "pdq", "value": HIT}
    for headers in ({}, {"Authorization": "Bearer sh_bad_key"}, keys["auditor"]):
        r = _same(client, twin, "POST", "/v1/scan", json=body, headers=headers)
        assert r.status_code in (401, 403)


@pytest.mark.parametrize("value", [HIT, NEAR, MISS])
def test_ordinary_hash_scans_answer_as_the_route(client, twin, keys, banked, value):
    body = {"signal_type": "pdq", "value": value}
    hot = client.post("/v1/scan", json=body, headers=keys["platform"])
    slow = twin.post("/v1/scan", json=body, headers=keys["platform"])
    assert hot.status_code == slow.status_code == 200
    assert _volatile(hot.json()) == _volatile(slow.json())
    assert hot.json()["verdict"] == ("no_match" if value == MISS else "match")
    assert json.dumps(hot.json(), ensure_ascii=False, separators=(",", ":")).encode() == hot.content


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"signal_type": "pdq"}',
        b'{"signal_type": "nope", "value": "ff"}',
        b'{"signal_type": "pdq", "value": "zz"}',
        b'{"signal_type": "pdq", "value": "ff", "extra": 1}',
        b'{"url": "http://127.0.0.1/x", "fetch": false}',
        b"[]",
    ],
)
def test_bad_or_other_scans_answer_as_the_route(client, twin, keys, banked, body):
    headers = {**keys["platform"], "Content-Type": "application/json"}
    hot = client.post("/v1/scan", content=body, headers=headers)
    slow = twin.post("/v1/scan", content=body, headers=headers)
    assert hot.status_code == slow.status_code
    assert _volatile(hot.json()) == _volatile(slow.json())


def test_the_hot_path_is_counted_under_its_route(client, keys, banked):
    client.get(f"/m/lookup?signal={HIT}&signal_type=pdq", headers=keys["platform"])
    metrics = client.get("/metrics", headers=keys["admin"]).text
    assert 'route="/m/lookup"' in metrics


def test_ordinary_requests_are_answered_by_the_hot_path_itself(client, keys, banked, monkeypatch):
    from safehold.api import hma_hotpath

    answered = []
    encode = hma_hotpath._encode
    monkeypatch.setattr(hma_hotpath, "_encode", lambda result: answered.append(result) or encode(result))
    client.get(f"/m/lookup?signal={HIT}&signal_type=pdq", headers=keys["platform"])
    client.post("/v1/scan", json={"signal_type": "pdq", "value": MISS}, headers=keys["platform"])
    client.get(f"/m/lookup?signal={HIT}&signal_type=nope", headers=keys["platform"])  # the route's 400
    assert len(answered) == 2 and BANK in answered[0] and answered[1]["verdict"] == "no_match"


def test_lookups_are_answered_on_the_event_loop_and_scans_in_a_thread(client, keys, banked, monkeypatch):
    """An HMA lookup, hit or miss, needs no database (the index knows each entry's bank): no hop to a thread. A
    scan's hit carries its entries' fields, read in the thread pool."""
    from safehold.api import hma_hotpath

    threaded = []
    hop = hma_hotpath.run_in_threadpool

    async def counted(func, *args, **kwargs):
        threaded.append(func.__name__)
        return await hop(func, *args, **kwargs)

    monkeypatch.setattr(hma_hotpath, "run_in_threadpool", counted)
    miss = client.get(f"/m/lookup?signal={MISS}&signal_type=pdq", headers=keys["platform"])
    assert (miss.status_code, miss.json(), threaded) == (200, {}, [])
    hit = client.get(f"/m/lookup?signal={NEAR}&signal_type=pdq", headers=keys["platform"])
    assert hit.status_code == 200 and hit.json()[BANK][0]["bank_content_id"] == banked
    assert threaded == []
    scan = client.post("/v1/scan", json={"signal_type": "pdq", "value": NEAR}, headers=keys["platform"])
    assert scan.json()["verdict"] == "match" and threaded == ["_scan_item"]
