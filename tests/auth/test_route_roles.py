"""Every route refuses callers without a key, with a bad key, and with every role that lacks its permission."""

from __future__ import annotations

import pytest

from safehold.app import create_app
from safehold.auth.roles import GRANTS, Permission, Role

#: A route authenticated by a provider's signature instead of an API key (an age-assurance callback): without a
#: valid signature it is 401 ``age_assurance.bad_signature`` whatever key, or none, comes with it.
SIGNED = "signed"

# Every API route and the permission it needs (a tuple: any one of them; a frozenset: all of them). A new route must be
# added here, or the test fails.
EXPECTED = {
    ("GET", "/v1/health"): None,
    ("GET", "/livez"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): Permission.METRICS_READ,
    ("GET", "/v1/signal-types"): Permission.BANKS_READ,
    ("GET", "/v1/stats/scans"): Permission.STATS_READ,
    ("GET", "/v1/apikeys"): Permission.APIKEYS_MANAGE,
    ("POST", "/v1/apikeys"): Permission.APIKEYS_MANAGE,
    ("DELETE", "/v1/apikeys/{prefix}"): Permission.APIKEYS_MANAGE,
    ("GET", "/v1/banks"): Permission.BANKS_READ,
    ("POST", "/v1/banks"): Permission.BANKS_WRITE,
    ("GET", "/v1/banks/{name}"): Permission.BANKS_READ,
    ("PATCH", "/v1/banks/{name}"): Permission.BANKS_WRITE,
    ("DELETE", "/v1/banks/{name}"): Permission.BANKS_WRITE,
    ("GET", "/v1/banks/{name}/entries"): Permission.BANKS_READ,
    ("POST", "/v1/banks/{name}/entries"): Permission.BANKS_WRITE,
    ("POST", "/v1/banks/{name}/files"): Permission.BANKS_WRITE,
    ("POST", "/v1/banks/{name}/import"): Permission.BANKS_WRITE,
    ("GET", "/v1/banks/{name}/export"): Permission.BANKS_READ,
    ("GET", "/v1/entries/{entry_id}"): Permission.BANKS_READ,
    ("PATCH", "/v1/entries/{entry_id}"): Permission.BANKS_WRITE,
    ("DELETE", "/v1/entries/{entry_id}"): Permission.BANKS_WRITE,
    ("GET", "/v1/entries/{entry_id}/stats"): Permission.BANKS_READ,
    ("GET", "/v1/sharing/stats"): Permission.BANKS_READ,
    ("GET", "/v1/quarantine"): Permission.BANKS_READ,
    ("POST", "/v1/quarantine/{entry_id}/release"): Permission.BANKS_WRITE,
    ("POST", "/v1/scan"): Permission.SCAN,
    ("POST", "/v1/scan/batch"): Permission.SCAN,
    ("POST", "/v1/search/check"): Permission.SCAN,
    ("POST", "/v1/search/suggestions/filter"): Permission.SCAN,
    ("POST", "/v1/search/help-clicks"): Permission.SCAN,
    ("GET", "/v1/stats/search"): Permission.STATS_READ,
    ("GET", "/v1/seen"): Permission.STATS_READ,
    ("POST", "/v1/text/check"): Permission.EVENTS_WRITE,
    ("GET", "/v1/terms"): Permission.BANKS_READ,
    ("GET", "/v1/terms/{name}/versions"): Permission.BANKS_READ,
    ("GET", "/v1/terms/{name}/export"): Permission.BANKS_READ,
    ("PUT", "/v1/terms/{name}"): Permission.BANKS_WRITE,
    ("POST", "/v1/terms/{name}/activate"): Permission.BANKS_WRITE,
    ("PATCH", "/v1/terms/{name}"): Permission.BANKS_WRITE,
    ("DELETE", "/v1/terms/{name}"): Permission.BANKS_WRITE,
    ("GET", "/v1/rules"): Permission.RULES_MANAGE,
    ("POST", "/v1/rules"): Permission.RULES_MANAGE,
    ("GET", "/v1/rules/lists"): Permission.RULES_MANAGE,
    ("PUT", "/v1/rules/lists/{name}"): Permission.RULES_MANAGE,
    ("POST", "/v1/rules/lists/{name}/approve"): Permission.RULES_MANAGE,
    ("GET", "/v1/rules/{name}"): Permission.RULES_MANAGE,
    ("PATCH", "/v1/rules/{name}"): Permission.RULES_MANAGE,
    ("DELETE", "/v1/rules/{name}"): Permission.RULES_MANAGE,
    ("GET", "/v1/rules/{name}/diff"): Permission.RULES_MANAGE,
    ("POST", "/v1/rules/{name}/approve"): Permission.RULES_MANAGE,
    ("POST", "/v1/rules/{name}/status"): Permission.RULES_MANAGE,
    ("GET", "/v1/rules/{name}/shadow"): Permission.RULES_MANAGE,
    ("POST", "/v1/rules/{name}/backtest"): Permission.RULES_MANAGE,
    ("POST", "/v1/hash"): Permission.SCAN,
    ("GET", "/v1/audit"): Permission.AUDIT_READ,
    ("GET", "/v1/audit/verify"): Permission.AUDIT_READ,
    ("GET", "/v1/audit/export"): Permission.AUDIT_READ,
    ("GET", "/v1/users"): Permission.USERS_MANAGE,
    ("POST", "/v1/users"): Permission.USERS_MANAGE,
    ("GET", "/v1/users/{username}"): Permission.USERS_MANAGE,
    ("PATCH", "/v1/users/{username}"): Permission.USERS_MANAGE,
    ("PUT", "/v1/users/{username}/password"): Permission.USERS_MANAGE,
    ("POST", "/v1/users/{username}/unlock"): Permission.USERS_MANAGE,
    ("DELETE", "/v1/users/{username}/totp"): Permission.USERS_MANAGE,
    ("GET", "/v1/banks/{name}/imports"): Permission.BANKS_READ,
    ("GET", "/v1/exchanges/types"): Permission.BANKS_READ,
    ("GET", "/v1/exchanges"): Permission.BANKS_READ,
    ("POST", "/v1/exchanges"): Permission.BANKS_WRITE,
    ("GET", "/v1/exchanges/{name}"): Permission.BANKS_READ,
    ("PATCH", "/v1/exchanges/{name}"): Permission.BANKS_WRITE,
    ("DELETE", "/v1/exchanges/{name}"): Permission.BANKS_WRITE,
    ("POST", "/v1/exchanges/{name}/fetch"): Permission.BANKS_WRITE,
    ("POST", "/v1/cases/{case_id}/decision"): Permission.CASES_REVIEW,
    ("POST", "/v1/cases/{case_id}/confirmation"): Permission.CASES_REVIEW,
    ("POST", "/v1/cases/{case_id}/bank"): Permission.BANKS_WRITE,
    ("GET", "/v1/items/{item_id}/preview"): Permission.CASES_READ,
    ("GET", "/v1/items/{item_id}/media"): Permission.CASES_REVIEW,
    ("GET", "/v1/items/{item_id}/exif"): Permission.CASES_REVIEW,
    ("GET", "/v1/items/{item_id}/reveals"): Permission.CASES_READ,
    ("GET", "/v1/wellness"): Permission.CASES_READ,
    ("PUT", "/v1/wellness/defaults"): Permission.SETTINGS_MANAGE,
    ("POST", "/v1/events"): Permission.EVENTS_WRITE,
    ("POST", "/v1/conversations/{conversation_id}/messages"): Permission.EVENTS_WRITE,
    ("GET", "/v1/conversations"): Permission.CASES_READ,
    ("GET", "/v1/conversations/{conversation_id}"): Permission.CASES_READ,
    ("DELETE", "/v1/conversations/{conversation_id}"): Permission.EVENTS_WRITE,
    ("POST", "/v1/live/streams"): Permission.EVENTS_WRITE,
    ("GET", "/v1/live/streams"): (Permission.EVENTS_WRITE, Permission.CASES_READ),
    ("GET", "/v1/live/streams/{stream_id}"): (Permission.EVENTS_WRITE, Permission.CASES_READ),
    ("DELETE", "/v1/live/streams/{stream_id}"): Permission.EVENTS_WRITE,
    ("POST", "/v1/live/streams/{stream_id}/frames"): Permission.EVENTS_WRITE,
    ("POST", "/v1/live/streams/{stream_id}/signals"): Permission.EVENTS_WRITE,
    ("POST", "/v1/live/streams/{stream_id}/interrupt"): Permission.CASES_SENIOR,
    ("GET", "/v1/cases"): Permission.CASES_READ,
    ("GET", "/v1/cases/counts"): Permission.CASES_READ,
    ("GET", "/v1/cases/{case_id}"): Permission.CASES_READ,
    ("POST", "/v1/cases/{case_id}/claim"): Permission.CASES_REVIEW,
    ("POST", "/v1/cases/{case_id}/release"): Permission.CASES_REVIEW,
    ("GET", "/v1/settings/sla"): Permission.CASES_READ,
    ("PUT", "/v1/settings/sla"): Permission.SETTINGS_MANAGE,
    ("GET", "/v1/policies"): Permission.ACTIONS_MANAGE,
    ("POST", "/v1/policies"): Permission.ACTIONS_MANAGE,
    ("GET", "/v1/policies/{name}"): Permission.ACTIONS_MANAGE,
    ("PATCH", "/v1/policies/{name}"): Permission.ACTIONS_MANAGE,
    ("DELETE", "/v1/policies/{name}"): Permission.ACTIONS_MANAGE,
    ("GET", "/v1/webhooks"): Permission.ACTIONS_MANAGE,
    ("POST", "/v1/webhooks"): Permission.ACTIONS_MANAGE,
    ("GET", "/v1/webhooks/{name}"): Permission.ACTIONS_MANAGE,
    ("PATCH", "/v1/webhooks/{name}"): Permission.ACTIONS_MANAGE,
    ("DELETE", "/v1/webhooks/{name}"): Permission.ACTIONS_MANAGE,
    ("POST", "/v1/webhooks/{name}/rotate-secret"): Permission.ACTIONS_MANAGE,
    ("POST", "/v1/webhooks/{name}/test"): Permission.ACTIONS_MANAGE,
    ("GET", "/v1/deliveries"): Permission.ACTIONS_MANAGE,
    ("POST", "/v1/deliveries/{delivery_id}/retry"): Permission.ACTIONS_MANAGE,
    ("POST", "/v1/cases/{case_id}/actions"): Permission.CASES_SENIOR,
    ("GET", "/v1/reports"): Permission.REPORTS_READ,
    ("POST", "/v1/reports"): Permission.REPORTS_WRITE,
    ("GET", "/v1/reports/{report_id}"): Permission.REPORTS_READ,
    ("PATCH", "/v1/reports/{report_id}"): Permission.REPORTS_WRITE,
    ("GET", "/v1/reports/{report_id}/document"): Permission.REPORTS_READ,
    ("POST", "/v1/reports/{report_id}/submit"): Permission.REPORTS_SUBMIT,
    ("GET", "/v1/reports/{report_id}/status"): Permission.REPORTS_READ,
    ("POST", "/v1/reports/{report_id}/retract"): Permission.REPORTS_SUBMIT,
    ("POST", "/v1/reports/{report_id}/filed"): Permission.REPORTS_SUBMIT,
    ("POST", "/v1/reports/{report_id}/export"): Permission.EVIDENCE_ACCESS,
    ("GET", "/v1/cybertipline/status"): Permission.REPORTS_SUBMIT,
    ("GET", "/v1/evidence"): Permission.EVIDENCE_READ,
    ("GET", "/v1/evidence/holds"): Permission.EVIDENCE_READ,
    ("POST", "/v1/evidence/holds"): Permission.EVIDENCE_MANAGE,
    ("POST", "/v1/evidence/holds/{hold_id}/release"): Permission.EVIDENCE_MANAGE,
    ("POST", "/v1/evidence/export"): Permission.EVIDENCE_ACCESS,
    ("POST", "/v1/evidence/purge"): Permission.EVIDENCE_MANAGE,
    ("GET", "/v1/evidence/{evidence_id}"): Permission.EVIDENCE_READ,
    ("GET", "/v1/evidence/{evidence_id}/content"): Permission.EVIDENCE_ACCESS,
    ("GET", "/v1/feedback"): Permission.BANKS_READ,
    ("POST", "/v1/feedback/{feedback_id}/retry"): Permission.BANKS_WRITE,
    ("POST", "/v1/cases/{case_id}/contribute"): Permission.BANKS_WRITE,
    ("GET", "/v1/cases/{case_id}/hashes"): Permission.CASES_READ,
    # HMA's API (safehold.api.routes.hma): lookups and hashing are scans, /c/ is bank curation
    ("GET", "/m/raw_lookup"): Permission.SCAN,
    ("GET", "/m/lookup"): Permission.SCAN,
    ("POST", "/m/lookup"): Permission.SCAN,
    ("GET", "/h/hash"): Permission.SCAN,
    ("POST", "/h/hash"): Permission.SCAN,
    ("GET", "/c/banks"): Permission.BANKS_READ,
    ("POST", "/c/banks"): Permission.BANKS_WRITE,
    ("GET", "/c/bank/{name}"): Permission.BANKS_READ,
    ("PUT", "/c/bank/{name}"): Permission.BANKS_WRITE,
    ("DELETE", "/c/bank/{name}"): Permission.BANKS_WRITE,
    ("POST", "/c/bank/{name}/content"): Permission.BANKS_WRITE,
    ("POST", "/c/bank/{name}/signal"): Permission.BANKS_WRITE,
    ("GET", "/c/bank/{name}/content/{content_id}"): Permission.BANKS_READ,
    ("PUT", "/c/bank/{name}/content/{content_id}"): Permission.BANKS_WRITE,
    ("DELETE", "/c/bank/{name}/content/{content_id}"): Permission.BANKS_WRITE,
    ("GET", "/v1/peer/key"): Permission.SHARING_PEER,
    ("GET", "/v1/peer/banks"): Permission.SHARING_PEER,
    ("GET", "/v1/peer/feed"): Permission.SHARING_PEER,
    ("POST", "/v1/peer/feedback"): Permission.SHARING_PEER,
    ("GET", "/v1/peer/feedback"): Permission.BANKS_READ,
    ("POST", "/v1/peer/contributions"): Permission.SHARING_PEER,
    ("POST", "/v1/accounts/{account_id}/age-signals"): Permission.AGES_WRITE,
    ("GET", "/v1/accounts/{account_id}/age"): Permission.AGES_READ,
    ("GET", "/v1/accounts/ages"): Permission.AGES_READ,
    ("POST", "/v1/classify"): Permission.SCAN,
    ("GET", "/v1/classifiers"): Permission.STATS_READ,
    ("PUT", "/v1/classifiers/{name}/policy"): Permission.SETTINGS_MANAGE,
    ("GET", "/v1/classifiers/{name}/precision"): Permission.STATS_READ,
    ("GET", "/v1/screening/types"): Permission.STATS_READ,
    ("GET", "/v1/screening/queue"): Permission.STATS_READ,
    ("GET", "/v1/screening/services"): Permission.STATS_READ,
    ("POST", "/v1/screening/services"): Permission.SETTINGS_MANAGE,
    ("GET", "/v1/screening/services/{name}"): Permission.STATS_READ,
    ("PATCH", "/v1/screening/services/{name}"): Permission.SETTINGS_MANAGE,
    ("DELETE", "/v1/screening/services/{name}"): Permission.SETTINGS_MANAGE,
    ("POST", "/v1/screening/services/{name}/enable"): Permission.SETTINGS_MANAGE,
    ("POST", "/v1/screening/services/{name}/disable"): Permission.SETTINGS_MANAGE,
    ("POST", "/v1/screening/services/{name}/test"): Permission.SETTINGS_MANAGE,
    ("POST", "/v1/interactions/check"): Permission.SAFETY_CHECK,
    ("GET", "/v1/safety/contact-policy"): Permission.STATS_READ,
    ("PUT", "/v1/safety/contact-policy"): Permission.SETTINGS_MANAGE,
    ("POST", "/v1/safety/contact-policy/validate"): Permission.STATS_READ,
    ("POST", "/v1/safety/contact-policy/reset"): Permission.SETTINGS_MANAGE,
    ("POST", "/v1/media/check"): Permission.SAFETY_CHECK,
    ("GET", "/v1/safety/media-policy"): (Permission.STATS_READ, Permission.SAFETY_CHECK),
    ("PUT", "/v1/safety/media-policy"): Permission.SETTINGS_MANAGE,
    ("GET", "/v1/safety/prompts"): (Permission.STATS_READ, Permission.SAFETY_CHECK),
    ("GET", "/v1/safety/prompts/{key}/{locale}"): (Permission.STATS_READ, Permission.SAFETY_CHECK),
    ("PUT", "/v1/safety/prompts/{key}/{locale}"): Permission.SETTINGS_MANAGE,
    ("DELETE", "/v1/safety/prompts/{key}/{locale}"): Permission.SETTINGS_MANAGE,
    ("POST", "/v1/age-assurance/{provider}/callback"): SIGNED,
    ("GET", "/v1/transparency/overview"): Permission.TRANSPARENCY_READ,
    ("GET", "/v1/transparency/figures"): Permission.TRANSPARENCY_READ,
    # The records behind a figure's row are case ids: case records.
    ("GET", "/v1/transparency/figures/{key}/records"): frozenset({Permission.TRANSPARENCY_READ, Permission.CASES_READ}),
    ("GET", "/v1/transparency/reports"): Permission.TRANSPARENCY_READ,
    ("POST", "/v1/transparency/reports"): Permission.TRANSPARENCY_WRITE,
    ("GET", "/v1/transparency/reports/{report_id}"): Permission.TRANSPARENCY_READ,
    ("GET", "/v1/transparency/reports/{report_id}/content"): Permission.TRANSPARENCY_READ,
    ("POST", "/v1/transparency/reports/{report_id}/verify"): Permission.TRANSPARENCY_WRITE,
    ("POST", "/v1/user-reports"): Permission.EVENTS_WRITE,
    ("GET", "/v1/user-reports"): Permission.CASES_READ,
    ("GET", "/v1/user-reports/{report_id}"): Permission.EVENTS_WRITE,
    ("POST", "/v1/user-reports/form-tokens"): Permission.EVENTS_WRITE,
    ("DELETE", "/v1/user-reports/form-tokens/{token_id}"): Permission.EVENTS_WRITE,
    ("POST", "/v1/appeals"): Permission.EVENTS_WRITE,
    ("GET", "/v1/appeals"): Permission.CASES_READ,
    ("GET", "/v1/appeals/{appeal_id}"): Permission.EVENTS_WRITE,
    ("POST", "/v1/appeals/{appeal_id}/review"): Permission.CASES_REVIEW,
}


#: A value for each path parameter: any will do, the test checks refusals before lookups.
PATH_VALUES = {
    "{name}": "nobank",
    "{entry_id}": "1",
    "{prefix}": "nokey",
    "{username}": "nobody",
    "{case_id}": "1",
    "{item_id}": "1",
    "{delivery_id}": "1",
    "{feedback_id}": "1",
    "{report_id}": "999999",
    "{evidence_id}": "999999",
    "{hold_id}": "999999",
    "{conversation_id}": "noconversation",
    "{key}": "media.blurred",
    "{locale}": "en",
    "{content_id}": "1",
    "{account_id}": "someone",
    "{provider}": "standin",
}


def _api_routes():
    for path, operations in create_app(background=False).openapi()["paths"].items():
        for method in operations:
            yield method.upper(), path


def test_every_route_is_declared():
    assert set(_api_routes()) == set(EXPECTED)


def _url(path: str) -> str:
    for param, value in PATH_VALUES.items():
        path = path.replace(param, value)
    return path


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_unauthenticated_and_forbidden(client, keys, svc):
    svc.settings.age_assurance = {"standin": {"type": "signed_webhook", "secret": "s" * 32}}
    for (method, path), permission in EXPECTED.items():
        if permission is None:
            assert client.request(method, _url(path)).status_code == 200
            continue
        if permission == SIGNED:
            for headers in ({}, {"Authorization": "Bearer sh_dead_beef"}, *keys.values()):
                r = client.request(method, _url(path), json={}, headers=headers)
                assert r.status_code == 401, (method, path, r.text)
                assert r.json()["error"]["code"] == "age_assurance.bad_signature", (method, path)
            continue
        r = client.request(method, _url(path))
        assert r.status_code == 401 and r.json()["error"]["code"] == "auth.missing_key", (method, path)
        r = client.request(method, _url(path), headers={"Authorization": "Bearer sh_dead_beef"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "auth.invalid_key", (method, path)
        for role in Role:
            r = client.request(method, _url(path), headers=keys[role.value])
            if isinstance(permission, frozenset):
                allowed = permission <= GRANTS[role]
            else:
                needs = permission if isinstance(permission, tuple) else (permission,)
                allowed = any(p in GRANTS[role] for p in needs)
            if allowed:
                assert r.status_code != 403, (role, method, path)
            else:
                assert r.status_code == 403, (role, method, path, r.text)
                assert r.json()["error"]["code"] == "auth.forbidden"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_revoked_key_is_refused(client, keys, svc):
    token = svc.apikeys.create("temp", "admin").token
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/banks", headers=headers).status_code == 200
    prefix = token.split("_")[1]
    assert client.delete(f"/v1/apikeys/{prefix}", headers=keys["admin"]).json()["revoked"] is True
    assert client.get("/v1/banks", headers=headers).status_code == 401


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_openapi_and_docs_served(client):
    spec = client.get("/openapi.json").json()
    assert "/v1/scan" in spec["paths"] and "/v1/banks/{name}/import" in spec["paths"]
    assert client.get("/docs").status_code == 200
    assert "Safehold" in client.get("/").text
