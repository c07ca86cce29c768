"""Bank management over HTTP: create, configure, fill, import, export, disable."""

from __future__ import annotations

import io

from tests.media import jpeg

PDQ_A = "f8f8f0cce0f4e84d0e370a22028f67f0b36e2ed596623e1d33e6339c4e9c9b22"
MD5_A = "d41d8cd98f00b204e9800998ecf8427e"


def test_bank_lifecycle(client, keys):
    admin = keys["admin"]
    r = client.post("/v1/banks", json={"name": "ncmec", "description": "NCMEC list"}, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "block" and r.json()["pdq_threshold"] == 31

    r = client.post("/v1/banks", json={"name": "ncmec"}, headers=admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "bank.exists"

    r = client.patch(
        "/v1/banks/ncmec", json={"name": "ncmec-2025", "pdq_threshold": 20, "dihedral": True}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "ncmec-2025" and r.json()["pdq_threshold"] == 20 and r.json()["dihedral"]

    assert [b["name"] for b in client.get("/v1/banks", headers=admin).json()] == ["ncmec-2025"]
    assert client.get("/v1/banks/ncmec", headers=admin).json()["error"]["code"] == "bank.not_found"

    r = client.delete("/v1/banks/ncmec-2025", headers=admin)
    assert r.status_code == 200
    assert client.get("/v1/banks", headers=admin).json() == []


def test_bank_validation(client, keys):
    admin = keys["admin"]
    for body, code in [
        ({"name": "bad name!"}, "request.invalid"),
        ({"name": "ok\n"}, "request.invalid"),
        ({"name": "x", "kind": "maybe"}, "request.invalid"),
        ({"name": "x", "pdq_threshold": 64}, "request.invalid"),
        ({"name": "x", "pdq_threshold": -1}, "request.invalid"),
        ({"name": "x", "thresholds": {"pdq": 64}}, "bank.invalid_threshold"),
        ({"name": "x", "thresholds": {"vpdq": True}}, "request.invalid"),
        ({"name": "x", "thresholds": {"md5": 1}}, "bank.invalid_threshold"),  # an exact type's maximum is 0
        ({"name": "x", "thresholds": {"nosuch": 1}}, "signal.unknown_type"),
    ]:
        r = client.post("/v1/banks", json=body, headers=admin)
        assert r.status_code in (400, 422), (body, r.text)
        assert r.json()["error"]["code"] == code, body


def test_thresholds_by_signal_type(client, keys):
    admin = keys["admin"]
    r = client.post("/v1/banks", json={"name": "t", "thresholds": {"vpdq": 25}}, headers=admin)
    assert (r.json()["thresholds"], r.json()["pdq_threshold"]) == ({"vpdq": 25}, 31)  # PDQ: its default
    r = client.patch("/v1/banks/t", json={"pdq_threshold": 20}, headers=admin)
    assert r.json()["thresholds"] == {"vpdq": 25, "pdq": 20} and r.json()["pdq_threshold"] == 20
    r = client.patch("/v1/banks/t", json={"thresholds": {"pdq": None, "vpdq": 30}}, headers=admin)
    assert (r.json()["thresholds"], r.json()["pdq_threshold"]) == ({"vpdq": 30}, 31)


def test_add_raw_hash_with_provenance(client, keys):
    admin = keys["admin"]
    client.post("/v1/banks", json={"name": "own"}, headers=admin)
    r = client.post(
        "/v1/banks/own/entries",
        headers=admin,
        json={
            "signal_type": "pdq",
            "value": PDQ_A.upper(),
            "source": "own",
            "external_id": "case-17",
            "category": "a1",
            "note": "confirmed by two reviewers",
            "metadata": {"ticket": 9},
        },
    )
    assert r.status_code == 201, r.text
    e = r.json()
    assert e["value"] == PDQ_A and e["category"] == "A1" and e["external_id"] == "case-17"
    assert e["added_by"] == "apikey:test-admin" and e["added_at"] and e["metadata"] == {"ticket": 9}

    # Same hash again: no duplicate.
    client.post("/v1/banks/own/entries", headers=admin, json={"signal_type": "pdq", "value": PDQ_A})
    assert len(client.get("/v1/banks/own/entries", headers=admin).json()["entries"]) == 1

    bad = client.post("/v1/banks/own/entries", headers=admin, json={"signal_type": "pdq", "value": "abc"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "signal.invalid_value"
    bad = client.post("/v1/banks/own/entries", headers=admin, json={"signal_type": "nope", "value": "abc"})
    assert bad.json()["error"]["code"] == "signal.unknown_type"
    bad = client.post(
        "/v1/banks/own/entries",
        headers=admin,
        json={"signal_type": "md5", "value": MD5_A, "category": "Not A Slug!"},
    )
    assert bad.json()["error"]["code"] == "bank.invalid_category"


def test_disable_entry_stops_matching_without_deleting(client, keys):
    admin = keys["admin"]
    client.post("/v1/banks", json={"name": "own"}, headers=admin)
    e = client.post("/v1/banks/own/entries", headers=admin, json={"signal_type": "md5", "value": MD5_A}).json()
    scan = {"signal_type": "md5", "value": MD5_A}
    assert client.post("/v1/scan", json=scan, headers=admin).json()["verdict"] == "match"

    r = client.patch(f"/v1/entries/{e['id']}", json={"enabled": False}, headers=admin)
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert client.post("/v1/scan", json=scan, headers=admin).json()["verdict"] == "no_match"
    assert client.get(f"/v1/entries/{e['id']}", headers=admin).json()["enabled"] is False

    client.patch(f"/v1/entries/{e['id']}", json={"enabled": True}, headers=admin)
    assert client.post("/v1/scan", json=scan, headers=admin).json()["verdict"] == "match"
    assert client.get("/v1/entries/999999", headers=admin).json()["error"]["code"] == "entry.not_found"


def test_upload_file_adds_pdq_and_md5(client, keys):
    admin = keys["admin"]
    client.post("/v1/banks", json={"name": "own"}, headers=admin)
    r = client.post(
        "/v1/banks/own/files",
        headers=admin,
        files={"file": ("a.jpg", jpeg(1), "image/jpeg")},
        data={"category": "B2", "source": "own", "note": "n"},
    )
    assert r.status_code == 201, r.text
    assert sorted(e["signal_type"] for e in r.json()["entries"]) == ["md5", "pdq"]
    assert {e["category"] for e in r.json()["entries"]} == {"B2"}

    bad = client.post("/v1/banks/own/files", headers=admin, files={"file": ("x.jpg", b"not an image", "image/jpeg")})
    assert bad.status_code in (400, 422) and bad.json()["error"]["code"].startswith("media.")
    flat = client.post("/v1/banks/own/files", headers=admin, files={"file": ("f.png", _flat_png(), "image/png")})
    assert flat.status_code == 422 and flat.json()["error"]["code"] == "media.low_quality"


def _flat_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (200, 200), (120, 120, 120)).save(buf, "PNG")
    return buf.getvalue()


def test_import_is_all_or_nothing_and_export_round_trips(client, keys):
    admin = keys["admin"]
    client.post("/v1/banks", json={"name": "list"}, headers=admin)
    good = f"signal_type,value,category,source\npdq,{PDQ_A},A1,ncmec\nmd5,{MD5_A},B1,ncmec\n"
    bad = good + "md5,not-a-hash,A1,ncmec\n"
    r = client.post("/v1/banks/list/import", headers=admin, files={"file": ("l.csv", bad.encode())})
    assert r.status_code == 422 and r.json()["error"]["code"] == "import.invalid_rows"
    issues = r.json()["error"]["detail"]["issues"]
    assert issues and issues[0]["line"] == 4
    assert client.get("/v1/banks/list", headers=admin).json()["entries"] == 0

    r = client.post(
        "/v1/banks/list/import",
        headers=admin,
        files={"file": ("l.csv", bad.encode())},
        data={"skip_invalid": "true"},
    )
    assert r.status_code == 200 and r.json()["added"] == 2 and r.json()["invalid"] == 1

    r = client.post("/v1/banks/list/import", headers=admin, files={"file": ("l.csv", good.encode())})
    assert r.json()["added"] == 0 and r.json()["duplicates"] == 2

    # the two imports that wrote (the refused one wrote nothing and left no job), newest first
    jobs = client.get("/v1/banks/list/imports", headers=keys["auditor"]).json()["imports"]
    assert [(j["status"], j["added"], j["duplicates"], j["source_name"]) for j in jobs] == [
        ("done", 0, 2, "l.csv"),
        ("done", 2, 0, "l.csv"),
    ]
    assert jobs[0]["rows_done"] == jobs[0]["rows_total"] == 2 and jobs[0]["created_by"] == "apikey:test-admin"
    assert len(client.get("/v1/banks/list/imports?limit=1", headers=admin).json()["imports"]) == 1
    assert client.get("/v1/banks/nope/imports", headers=admin).json()["error"]["code"] == "bank.not_found"
    assert client.get("/v1/banks/list/imports", headers=keys["platform"]).status_code == 403

    exported = client.get("/v1/banks/list/export?format=csv", headers=admin)
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    client.post("/v1/banks", json={"name": "copy"}, headers=admin)
    r = client.post("/v1/banks/copy/import", headers=admin, files={"file": ("e.csv", exported.content)})
    assert r.status_code == 200 and r.json()["added"] == 2
    a = client.get("/v1/banks/list/entries", headers=admin).json()["entries"]
    b = client.get("/v1/banks/copy/entries", headers=admin).json()["entries"]
    strip = lambda rows: sorted((e["signal_type"], e["value"], e["category"], e["source"]) for e in rows)  # noqa: E731
    assert strip(a) == strip(b)

    for fmt in ("ncmec-xml", "list"):
        q = f"?format={fmt}" + ("&signal_type=md5" if fmt == "list" else "")
        assert client.get(f"/v1/banks/list/export{q}", headers=admin).status_code == 200
    r = client.get("/v1/banks/list/export?format=list", headers=admin)
    assert r.json()["error"]["code"] == "export.signal_type_required"


def test_entries_pagination(client, keys):
    admin = keys["admin"]
    client.post("/v1/banks", json={"name": "p"}, headers=admin)
    body = "\n".join(f"{i:032x}" for i in range(1, 26)).encode()
    r = client.post(
        "/v1/banks/p/import",
        headers=admin,
        files={"file": ("l.txt", body)},
        data={"format": "list", "signal_type": "md5"},
    )
    assert r.json()["added"] == 25, r.text
    seen, after = [], 0
    while after is not None:
        page = client.get(f"/v1/banks/p/entries?limit=10&after_id={after}", headers=admin).json()
        seen += page["entries"]
        after = page["next_after_id"]
    assert len(seen) == 25 and len({e["id"] for e in seen}) == 25


def test_url_bank_takes_urls_and_scans_match_them(client, keys):
    """A URL (canonicalised and hashed as the scanner does) or its 64-hex SHA-256, by entry and by CSV import."""
    from safehold.signals.url import url_hash

    admin = keys["admin"]
    client.post("/v1/banks", json={"name": "bad-urls"}, headers=admin)
    r = client.post(
        "/v1/banks/bad-urls/entries", headers=admin, json={"signal_type": "url", "value": "bad.example.net/"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["value"] == url_hash("bad.example.net/")
    csv = f"signal_type,value\nurl,HTTP://Other.Example.ORG/folder/\nurl,{url_hash('third.example.com/').upper()}\n"
    files = {"file": ("urls.csv", csv.encode(), "text/csv")}
    done = client.post("/v1/banks/bad-urls/import", headers=admin, files=files).json()
    assert done["added"] == 2 and done["committed"], done
    values = {e["value"] for e in client.get("/v1/banks/bad-urls/entries", headers=admin).json()["entries"]}
    assert values == {url_hash(u) for u in ("bad.example.net/", "other.example.org/folder/", "third.example.com/")}
    for url, verdict in [
        ("https://www.bad.example.net/any/page", "match"),
        ("http://other.example.org/folder/x.html", "match"),
        ("http://other.example.org/elsewhere", "no_match"),
    ]:
        scan = client.post("/v1/scan", headers=admin, json={"url": url, "fetch": False}).json()
        assert scan["verdict"] == verdict, (url, scan)
    bad = client.post("/v1/banks/bad-urls/entries", headers=admin, json={"signal_type": "url", "value": "abc"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "signal.invalid_value"
