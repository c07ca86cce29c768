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
