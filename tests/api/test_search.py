"""`/v1/search`: the query guard and the suggestion filter over HTTP, for platform keys only."""

from __future__ import annotations


def test_check_allows_ordinary_queries_and_blocks_known_terms(client, keys):
    ok = client.post("/v1/search/check", json={"query": "weather in lisbon"}, headers=keys["platform"])
    assert ok.status_code == 200 and ok.json()["action"] == "allow" and ok.json()["message"] is None
    hit = client.post("/v1/search/check", json={"query": "PTHC videos", "locale": "pt-BR", "bucket": "s1"},
                      headers=keys["platform"]).json()  # fmt: skip
    assert hit["action"] == "block" and hit["category"] == "csam" and hit["locale"] == "pt"
    assert hit["message"]["help"], "a block offers confidential help"
    again = client.post("/v1/search/check", json={"query": "pthc", "locale": "pt-BR", "bucket": "s1"},
                        headers=keys["platform"]).json()  # fmt: skip
    assert again["variant"] == hit["variant"], "one bucket, one variant"


def test_suggestion_filter_keeps_order(client, keys):
    body = {"suggestions": ["pizza near me", "pthc", "pizza recipe"], "locale": "en"}
    out = client.post("/v1/search/suggestions/filter", json=body, headers=keys["platform"]).json()
    assert out["suggestions"] == ["pizza near me", "pizza recipe"]
    assert sum(out["removed"].values()) == 1


def test_bad_input_and_roles(client, keys):
    def code(r, status):
        assert r.status_code == status, r.text
        return r.json()["error"]["code"]

    post = client.post
    assert (
        code(post("/v1/search/check", json={"query": "x" * 1001}, headers=keys["platform"]), 422) == "request.invalid"
    )
    assert code(post("/v1/search/check", json={"query": "x", "locale": "<b>"}, headers=keys["platform"]), 422)
    too_many = {"suggestions": ["a"] * 101}
    assert code(post("/v1/search/suggestions/filter", json=too_many, headers=keys["platform"]), 422)
    assert code(post("/v1/search/check", json={"query": "x"}), 401) == "auth.missing_key"
    assert code(post("/v1/search/check", json={"query": "x"}, headers=keys["auditor"]), 403) == "auth.forbidden"


def test_help_clicks_and_stats(client, keys):
    platform = keys["platform"]
    hit = client.post("/v1/search/check", json={"query": "pthc", "locale": "de-AT", "bucket": "s2"}, headers=platform)
    client.post("/v1/search/check", json={"query": "weather in lisbon"}, headers=platform)
    client.post("/v1/search/suggestions/filter", json={"suggestions": ["pthc", "pizza"]}, headers=platform)
    decision = hit.json()
    click = {"category": decision["category"], "variant": decision["variant"], "locale": "de-AT"}
    r = client.post("/v1/search/help-clicks", json=click, headers=platform)
    assert r.status_code == 200 and r.json()["counted"] and r.json()["locale"] == "de"
    stats = client.get("/v1/stats/search?days=7", headers=keys["admin"])
    assert stats.status_code == 200, stats.text
    out = stats.json()
    got = {(c["kind"], c["action"], c["category"], c["variant"], c["locale"], c["count"]) for c in out["counts"]}
    assert got == {
        ("check", "block", "csam", decision["variant"], "de", 1),
        ("check", "allow", None, None, "en", 1),
        ("suggestion", "remove", "csam", None, None, 1),
        ("help_click", None, "csam", decision["variant"], "de", 1),
    }
    assert out["days"] == 7
    assert out["variants"] == {decision["variant"]: {"shown": 1, "help_clicks": 1, "click_rate": 1.0}}
    assert "pthc" not in stats.text and "s2" not in stats.text


def test_help_click_bad_input_and_roles(client, keys):
    def code(r, status):
        assert r.status_code == status, r.text
        return r.json()["error"]["code"]

    post, platform = client.post, keys["platform"]
    good = {"category": "csam", "variant": "help", "locale": "en"}
    assert code(post("/v1/search/help-clicks", json={**good, "category": "pizza"}, headers=platform),
                422) == "request.invalid"  # fmt: skip
    assert code(post("/v1/search/help-clicks", json={**good, "variant": "loud"}, headers=platform),
                422) == "search.unknown_variant"  # fmt: skip
    assert code(post("/v1/search/help-clicks", json={**good, "user": "u1"}, headers=platform), 422) == "request.invalid"
    assert code(post("/v1/search/help-clicks", json=good, headers=keys["auditor"]), 403) == "auth.forbidden"
    assert code(client.get("/v1/stats/search?days=0", headers=keys["admin"]), 422) == "request.invalid"
    assert code(client.get("/v1/stats/search", headers=platform), 403) == "auth.forbidden"


def test_a_person_at_risk_gets_support_and_it_is_counted(client, keys):
    body = {"query": "someone is blackmailing me with my nudes", "locale": "en-CA"}
    out = client.post("/v1/search/check", json=body, headers=keys["platform"]).json()
    assert out["action"] == "support" and out["variant"] is None
    assert "https://kidshelpphone.ca" in {h["url"] for h in out["message"]["help"]}
    click = client.post("/v1/search/help-clicks", json={"category": "support", "locale": "en-CA"},
                        headers=keys["platform"])  # fmt: skip
    assert click.status_code == 200 and click.json()["variant"] is None
    counts = client.get("/v1/stats/search", headers=keys["admin"]).json()["counts"]
    assert {(c["kind"], c["action"], c["category"]) for c in counts} >= {("check", "support", "support"),
                                                                         ("help_click", None, "support")}  # fmt: skip
    schema = client.get("/openapi.json").json()["components"]["schemas"]["DecisionOut"]
    assert "support" in schema["properties"]["action"]["enum"]
