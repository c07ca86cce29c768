"""`/v1/terms`: import, export, roll back and switch lists over HTTP; the search guard follows at once."""

from __future__ import annotations

LIST = "term,category,severity\nzorblat mix,csam,3\n"


def _check(client, keys, query: str) -> str:
    return client.post("/v1/search/check", json={"query": query}, headers=keys["platform"]).json()["action"]


def test_import_export_activate_disable_delete(client, keys):
    admin = keys["admin"]
    assert _check(client, keys, "zorblat mix") == "allow"
    r = client.put("/v1/terms/partner", files={"file": ("p.csv", LIST, "text/csv")}, headers=keys["senior_reviewer"])
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1 and r.json()["terms"] == 1
    assert _check(client, keys, "zorblat mix") == "block"

    listed = client.get("/v1/terms", headers=keys["reviewer"]).json()
    assert {"partner", "starter", "grooming"} <= {t["name"] for t in listed["lists"]}
    assert "partner" in {t["name"] for t in listed["active"]}
    exported = client.get("/v1/terms/partner/export", headers=keys["auditor"])
    assert exported.status_code == 200 and exported.text == LIST
    assert exported.headers["content-type"].startswith("text/csv")

    v2 = client.put("/v1/terms/partner", files={"file": ("p.csv", LIST + "quendle pack,csam,3\n")},
                    data={"version": "7"}, headers=admin)  # fmt: skip
    assert v2.json()["version"] == 7 and _check(client, keys, "quendle pack") == "block"
    versions = client.get("/v1/terms/partner/versions", headers=admin).json()
    assert [(v["version"], v["active"]) for v in versions] == [(1, False), (7, True)]
    assert client.post("/v1/terms/partner/activate", json={"version": 1}, headers=admin).status_code == 200
    assert _check(client, keys, "quendle pack") == "allow"

    assert client.patch("/v1/terms/partner", json={"enabled": False}, headers=admin).json()["enabled"] is False
    assert _check(client, keys, "zorblat mix") == "allow"
    deleted = client.delete("/v1/terms/partner", headers=admin).json()
    assert deleted["deleted"] is True and deleted["versions"] == 2


def test_bad_input_and_roles(client, keys):
    def code(r, status):
        assert r.status_code == status, r.text
        return r.json()["error"]["code"]

    admin = keys["admin"]
    bad = client.put("/v1/terms/partner", files={"file": ("p.csv", "term,category\nx,Bad Category\n")}, headers=admin)
    assert code(bad, 400) == "terms.invalid_csv"
    bad = client.put("/v1/terms/Bad-Name", files={"file": ("p.csv", LIST)}, headers=admin)
    assert code(bad, 422) == "request.invalid" and "a term list name is" in bad.json()["error"]["message"]
    assert code(client.put("/v1/terms/partner", files={"file": ("p.csv", b"")}, headers=admin), 400) == "media.empty"
    assert code(client.get("/v1/terms/nope/export", headers=admin), 404) == "terms.not_found"
    assert code(client.post("/v1/terms/starter/activate", json={"version": 0}, headers=admin), 422)
    assert code(client.patch("/v1/terms/starter", json={"enabled": "maybe"}, headers=admin), 422)
    assert code(client.put("/v1/terms/partner", files={"file": ("p.csv", LIST)}, headers=keys["reviewer"]), 403) == (
        "auth.forbidden"
    )
    assert code(client.get("/v1/terms", headers=keys["platform"]), 403) == "auth.forbidden"
    assert code(client.get("/v1/terms"), 401) == "auth.missing_key"
