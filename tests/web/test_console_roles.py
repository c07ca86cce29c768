"""Every console route refuses every role that must not use it, and sends anyone not signed in to log in.

The table below lists every console route with the permission it needs (a frozenset: all of them); a new route
without an entry fails ``test_every_console_route_is_declared``.
"""

from __future__ import annotations

import pytest
from fastapi.routing import iter_route_contexts

from safehold.auth.roles import GRANTS, Permission, Role
from tests.web.conftest import ROLES

P = Permission
PUBLIC = "public"  # no session needed
ANY = "any staff"  # any signed-in staff member

EXPECTED = {
    ("GET", "/"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/login/totp"): PUBLIC,
    ("GET", "/console/static/{name}"): PUBLIC,
    ("GET", "/report"): PUBLIC,
    ("POST", "/report"): PUBLIC,
    ("GET", "/console/appeals"): P.CASES_READ,
    ("POST", "/console/appeals/{appeal_id}/review"): P.CASES_REVIEW,
    ("GET", "/console"): P.CASES_READ,
    ("GET", "/console/me"): ANY,
    ("POST", "/console/me/wellness"): ANY,
    ("POST", "/console/me/break"): P.CASES_REVIEW,
    ("POST", "/console/me/totp/start"): ANY,
    ("POST", "/console/me/totp/confirm"): ANY,
    ("POST", "/console/me/totp/remove"): ANY,
    ("GET", "/console/cases/{case_id}"): P.CASES_READ,
    ("POST", "/console/cases/{case_id}/claim"): P.CASES_REVIEW,
    ("POST", "/console/cases/{case_id}/release"): P.CASES_REVIEW,
    ("POST", "/console/cases/{case_id}/decision"): P.CASES_REVIEW,
    ("POST", "/console/cases/{case_id}/confirmation"): P.CASES_REVIEW,
    ("POST", "/console/cases/{case_id}/bank"): P.BANKS_WRITE,
    ("POST", "/console/items/{item_id}/reveal"): P.CASES_REVIEW,
    ("GET", "/console/items/{item_id}/media"): P.CASES_REVIEW,
    ("GET", "/console/items/{item_id}/preview"): P.CASES_READ,
    ("GET", "/console/items/{item_id}/exif"): P.CASES_REVIEW,
    ("POST", "/console/items/{item_id}/frames/{number}/reveal"): P.CASES_REVIEW,
    ("GET", "/console/items/{item_id}/frames/{number}/media"): P.CASES_REVIEW,
    ("GET", "/console/items/{item_id}/frames/{number}/preview"): P.CASES_READ,
    ("GET", "/console/text"): P.CASES_READ,
    ("GET", "/console/accounts"): P.AGES_READ,
    ("POST", "/console/accounts/finding"): P.AGES_WRITE,
    ("POST", "/console/text/terms"): P.BANKS_WRITE,
    ("POST", "/console/text/terms/{name}"): P.BANKS_WRITE,
    ("GET", "/console/safety/contact-policy"): P.STATS_READ,
    ("POST", "/console/safety/contact-policy"): P.SETTINGS_MANAGE,
    ("POST", "/console/safety/contact-policy/reset"): P.SETTINGS_MANAGE,
    ("GET", "/console/admin/users"): P.USERS_MANAGE,
    ("POST", "/console/admin/users"): P.USERS_MANAGE,
    ("POST", "/console/admin/users/{username}"): P.USERS_MANAGE,
    ("POST", "/console/admin/users/{username}/password"): P.USERS_MANAGE,
    ("POST", "/console/admin/users/{username}/unlock"): P.USERS_MANAGE,
    ("POST", "/console/admin/users/{username}/totp/reset"): P.USERS_MANAGE,
    ("GET", "/console/rules"): P.RULES_MANAGE,
    ("POST", "/console/rules"): P.RULES_MANAGE,
    ("GET", "/console/rules/{name}"): P.RULES_MANAGE,
    ("POST", "/console/rules/{name}"): P.RULES_MANAGE,
    ("POST", "/console/rules/{name}/approve"): P.RULES_MANAGE,
    ("POST", "/console/rules/{name}/status"): P.RULES_MANAGE,
    ("POST", "/console/rules/{name}/backtest"): P.RULES_MANAGE,
    ("GET", "/console/rules/{name}/shadow"): P.RULES_MANAGE,
    ("GET", "/console/named-lists"): P.RULES_MANAGE,
    ("POST", "/console/named-lists"): P.RULES_MANAGE,
    ("POST", "/console/named-lists/{name}/approve"): P.RULES_MANAGE,
    ("GET", "/console/admin/apikeys"): P.APIKEYS_MANAGE,
    ("POST", "/console/admin/apikeys"): P.APIKEYS_MANAGE,
    ("POST", "/console/admin/apikeys/{prefix}/revoke"): P.APIKEYS_MANAGE,
    ("GET", "/console/admin/banks"): P.BANKS_READ,
    ("POST", "/console/admin/banks"): P.BANKS_WRITE,
    ("POST", "/console/admin/banks/{name}"): P.BANKS_WRITE,
    ("GET", "/console/admin/quarantine"): P.BANKS_READ,
    ("POST", "/console/admin/quarantine/{entry_id}/release"): P.BANKS_WRITE,
    ("GET", "/console/admin/entries/{entry_id}"): P.BANKS_READ,
    ("GET", "/console/admin/exchanges"): P.BANKS_READ,
    ("POST", "/console/admin/exchanges"): P.BANKS_WRITE,
    ("POST", "/console/admin/exchanges/{name}"): P.BANKS_WRITE,
    ("POST", "/console/admin/exchanges/{name}/fetch"): P.BANKS_WRITE,
    ("POST", "/console/admin/exchanges/{name}/delete"): P.BANKS_WRITE,
    ("GET", "/console/admin/screening"): P.STATS_READ,
    ("POST", "/console/admin/screening"): P.SETTINGS_MANAGE,
    ("POST", "/console/admin/screening/{name}"): P.SETTINGS_MANAGE,
    ("GET", "/console/admin/settings"): P.SETTINGS_MANAGE,
    ("POST", "/console/admin/settings/wellness"): P.SETTINGS_MANAGE,
    ("POST", "/console/admin/settings/sla"): P.SETTINGS_MANAGE,
    ("GET", "/console/admin/policies"): P.ACTIONS_MANAGE,
    ("POST", "/console/admin/policies"): P.ACTIONS_MANAGE,
    ("POST", "/console/admin/policies/{name}"): P.ACTIONS_MANAGE,
    ("POST", "/console/admin/policies/{name}/delete"): P.ACTIONS_MANAGE,
    ("GET", "/console/admin/webhooks"): P.ACTIONS_MANAGE,
    ("POST", "/console/admin/webhooks"): P.ACTIONS_MANAGE,
    ("POST", "/console/admin/webhooks/{name}"): P.ACTIONS_MANAGE,
    ("POST", "/console/admin/webhooks/{name}/rotate"): P.ACTIONS_MANAGE,
    ("POST", "/console/admin/webhooks/{name}/test"): P.ACTIONS_MANAGE,
    ("POST", "/console/admin/webhooks/{name}/delete"): P.ACTIONS_MANAGE,
    ("GET", "/console/admin/deliveries"): P.ACTIONS_MANAGE,
    ("POST", "/console/admin/deliveries/{delivery_id}/retry"): P.ACTIONS_MANAGE,
    ("GET", "/console/reports"): P.REPORTS_READ,
    ("GET", "/console/reports/{report_id}"): P.REPORTS_READ,
    ("POST", "/console/reports/{report_id}"): P.REPORTS_WRITE,
    ("POST", "/console/reports/{report_id}/files/{file_id}"): P.REPORTS_WRITE,
    ("POST", "/console/reports/{report_id}/submit"): P.REPORTS_SUBMIT,
    ("POST", "/console/reports/{report_id}/retract"): P.REPORTS_SUBMIT,
    ("POST", "/console/reports/{report_id}/filed"): P.REPORTS_SUBMIT,
    ("POST", "/console/reports/{report_id}/export"): P.EVIDENCE_ACCESS,
    ("POST", "/console/cases/{case_id}/report"): P.REPORTS_WRITE,
    ("GET", "/console/evidence"): P.EVIDENCE_READ,
    ("POST", "/console/evidence/holds"): P.EVIDENCE_MANAGE,
    ("POST", "/console/evidence/holds/{hold_id}/release"): P.EVIDENCE_MANAGE,
    ("GET", "/console/live"): P.CASES_READ,
    ("GET", "/console/live/{stream_id}/frames/{n}/preview"): P.CASES_READ,
    ("POST", "/console/live/{stream_id}/interrupt"): P.CASES_SENIOR,
    ("GET", "/console/feedback"): P.BANKS_READ,
    ("POST", "/console/feedback/{feedback_id}/retry"): P.BANKS_WRITE,
    ("GET", "/console/audit"): P.AUDIT_READ,
    ("GET", "/console/audit/verify"): P.AUDIT_READ,
    ("GET", "/console/safety/prompts"): P.STATS_READ,
    ("POST", "/console/safety/prompts/{key}/{locale}"): P.SETTINGS_MANAGE,
    ("POST", "/console/safety/prompts/{key}/{locale}/reset"): P.SETTINGS_MANAGE,
    ("GET", "/console/classifiers"): P.STATS_READ,
    ("POST", "/console/classifiers/{name}/policy"): P.SETTINGS_MANAGE,
    ("GET", "/console/overview"): P.TRANSPARENCY_READ,
    ("GET", "/console/overview.json"): P.TRANSPARENCY_READ,
    ("GET", "/console/overview/records/{key}"): frozenset({P.TRANSPARENCY_READ, P.CASES_READ}),  # lists case ids
    ("GET", "/console/transparency"): P.TRANSPARENCY_READ,
    ("POST", "/console/transparency/reports"): P.TRANSPARENCY_WRITE,
    ("GET", "/console/transparency/reports/{report_id}/content"): P.TRANSPARENCY_READ,
    ("POST", "/logout"): ANY,  # last: it ends the session
}

PARAMS = {
    "{case_id}": "999999",
    "{item_id}": "999999",
    "{delivery_id}": "999999",
    "{feedback_id}": "999999",
    "{username}": "nobody",
    "{prefix}": "nokey",
    "{name}": "nothing",
    "{report_id}": "999999",
    "{appeal_id}": "999999",
    "{file_id}": "999999",
    "{hold_id}": "999999",
    "{entry_id}": "999999",
    "{key}": "media.blurred",
    "{locale}": "en",
    "{stream_id}": "nostream",
    "{n}": "0",
    "{number}": "0",
}


def _url(path: str) -> str:
    for param, value in PARAMS.items():
        path = path.replace(param, value)
    return path


def _console_routes(app):
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if path.startswith(("/console", "/login")) or path in ("/", "/logout", "/report"):
            for method in route.methods or ():
                if method != "HEAD":
                    yield method, path


def test_every_console_route_is_declared(app):
    assert set(_console_routes(app)) == set(EXPECTED)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_signed_out_visitors_are_sent_to_log_in(open_console):
    visitor = open_console()
    for (method, path), need in EXPECTED.items():
        r = visitor.client.request(method, _url(path), follow_redirects=False)
        if need == PUBLIC:
            assert r.status_code != 303 or r.headers["location"] != "/login", (method, path)
            continue
        assert r.status_code == 303, (method, path, r.status_code)
        assert r.headers["location"].startswith("/login"), (method, path)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("role", [r.value for r in Role if r.value in ROLES])
def test_every_route_refuses_roles_without_its_permission(open_console, staff_users, role):
    console = open_console(staff_users[role])
    for (method, path), need in EXPECTED.items():
        if need == PUBLIC:
            continue
        r = console.post(_url(path)) if method == "POST" else console.get(_url(path))
        refused = r.status_code == 403 and "auth.forbidden" in r.text
        grants = GRANTS[Role(role)]
        allowed = need == ANY or (need <= grants if isinstance(need, frozenset) else need in grants)
        assert refused != allowed, (role, method, path, r.status_code)
        signed_out = r.headers.get("location", "").startswith("/login")
        assert not signed_out or path == "/logout", (role, method, path)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refusals_are_audited(open_console, staff_users, svc):
    open_console("otto").get("/console/admin/users")
    denied = svc.audit.list(action="auth.denied")
    assert denied[-1]["actor"] == "user:otto" and denied[-1]["target"] == "permission:users.manage"
