"""The console over HTTP: log-in, sessions, CSRF, lock-out, and the review flow (claim, reveal, decide, confirm)."""

from __future__ import annotations

import io

import pytest

from tests.web.conftest import PASSWORD, csrf_of, open_media_case

pytestmark = pytest.mark.usefixtures("staff_users")
#: For tests of the web layer alone; the review flow runs on both databases.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# ------------------------------------------------------------------------------------------------ log-in


@sqlite_only
def test_start_page_links_to_login(open_console):
    r = open_console().get("/")
    assert r.status_code == 200 and 'href="/login"' in r.text and "Safehold" in r.text


def test_login_sets_a_strict_http_only_cookie_and_logout_ends_the_session(open_console, svc):
    c = open_console()
    r = c.login("rita")
    assert r.status_code == 303 and r.headers["location"] == "/console"
    cookie = r.headers["set-cookie"].lower()
    assert "safehold_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "max-age" not in cookie.split("safehold_session=")[1].split(",")[0]  # ends with the browser
    page = c.get("/console")
    assert page.status_code == 200 and "Rita" in page.text and "text/html" in page.headers["content-type"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"

    assert c.post("/logout").headers["location"] == "/login?done=logged_out"
    r = c.get("/console")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/console"
    actions = [rec["action"] for rec in svc.audit.list(action="auth.")]
    assert "auth.login" in actions and "auth.logout" in actions


@sqlite_only
def test_login_redirects_only_to_console_pages(open_console):
    for asked, landed in [
        ("/console/me", "/console/me"),
        ("https://evil.example/", "/console"),
        ("//evil.example/console", "/console"),
        ("/console/items/1/media", "/console"),  # a link must never reveal media
    ]:
        assert open_console().login("rita", next_path=asked).headers["location"] == landed


def test_wrong_password_then_back_off_never_a_lock_out(open_console, svc):
    svc.users.throttle.clock = lambda: 1000.0  # a stopped clock: a slow machine must not outlast the back-off
    c = open_console()
    r = c.login("rita", "not the password")
    assert r.status_code == 401 and 'role="alert"' in r.text
    unknown = c.login("nobody-here", "not the password")
    assert unknown.status_code == 401 and unknown.text.count("not right") == r.text.count("not right")
    for _ in range(svc.settings.login_free_failures - 2):
        c.login("rita", "still not it")
    r = c.login("rita")  # this address must now wait, whatever it sends
    assert r.status_code == 429 and r.headers["retry-after"] == "1" and 'role="alert"' in r.text
    assert "safehold_session" not in r.headers.get("set-cookie", "")
    # Rita herself, from her own desk, is not locked out (a TestClient's address is "testclient": another
    # address is simulated by clearing this process's back-off for the guessing address).
    svc.users.throttle.clients.items.clear()
    svc.users.throttle.pairs.items.clear()
    assert c.login("rita").status_code == 303


@sqlite_only
def test_login_form_needs_its_csrf_cookie(open_console):
    c = open_console()
    c.client.get("/login")
    c.client.cookies.clear()  # a cross-site form post arrives without the log-in cookie
    r = c.client.post("/login", data={"username": "rita", "password": PASSWORD, "csrf": "forged"})
    assert r.status_code == 403 and "safehold_session" not in r.headers.get("set-cookie", "")


@sqlite_only
def test_every_post_checks_csrf_and_origin(open_console):
    c = open_console("rita")
    missing = c.client.post("/console/me/break", data={}, follow_redirects=False)
    assert missing.status_code == 403 and "auth.csrf" in missing.text
    wrong = c.client.post("/console/me/break", data={"csrf": "x" * 43}, follow_redirects=False)
    assert wrong.status_code == 403 and "auth.csrf" in wrong.text
    foreign = c.post("/console/me/break", headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "auth.csrf" in foreign.text
    assert c.post("/console/me/break", headers={"Origin": "http://testserver"}).status_code == 303
    assert c.post("/console/me/break").status_code == 303


@sqlite_only
def test_errors_are_pages_and_console_is_not_in_openapi(open_console, app):
    r = open_console("rita").get("/console/cases/999999")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"] and "case.not_found" in r.text
    bad = open_console("rita").get("/console?status=bogus")
    assert bad.status_code == 422 and "text/html" in bad.headers["content-type"]
    assert not [p for p in app.openapi()["paths"] if p.startswith(("/console", "/login", "/logout"))]


@sqlite_only
def test_static_files_are_served_without_login(open_console):
    c = open_console()
    assert c.get("/console/static/console.css").headers["content-type"].startswith("text/css")
    assert "keydown" in c.get("/console/static/console.js").text
    assert c.get("/console/static/..%2Fconsole.py").status_code == 404


# ------------------------------------------------------------------------------------------------ review


def test_claim_reveal_decide(open_console, svc):
    case_id, item_id, original = open_media_case(svc)
    rita = open_console("rita")
    queue = rita.get("/console")
    assert f"/console/cases/{case_id}" in queue.text and "P1" in queue.text

    claimed = rita.post(f"/console/cases/{case_id}/claim")
    assert claimed.headers["location"] == f"/console/cases/{case_id}?done=claimed"
    page = rita.get(claimed.headers["location"]).text
    assert "You hold the claim" in page and "Case claimed" in page
    # Before a reveal the page holds only the server-blurred preview, never the media URL.
    assert f"/console/items/{item_id}/preview" in page and f"/console/items/{item_id}/media" not in page
    preview = rita.get(f"/console/items/{item_id}/preview")
    assert preview.status_code == 200 and preview.content != original
    assert preview.headers["cache-control"] == "no-store"
    assert svc.review.reveals(item_id) == []

    revealed = rita.post(f"/console/items/{item_id}/reveal")
    assert revealed.status_code == 200 and f'src="/console/items/{item_id}/media"' in revealed.text
    assert 'class="revealed grey thumb"' in revealed.text  # greyscale and thumbnail first by default
    assert svc.review.reveals(item_id) == []  # the page alone reveals nothing
    # ... but it counts the reveal its clear file is about to record, so it says the truth once it is fetched
    assert "Revealed 1 time (now, by you)" in revealed.text and "user:rita now (this reveal)" in revealed.text
    media = rita.get(f"/console/items/{item_id}/media")
    assert media.status_code == 200 and media.content == original and media.headers["cache-control"] == "no-store"
    assert [r["actor"] for r in svc.review.reveals(item_id)] == ["user:rita"]
    page = rita.get(f"/console/cases/{case_id}").text
    assert "Revealed 1 time<" in page and "now, by you" not in page
    again = rita.post(f"/console/items/{item_id}/reveal").text
    assert "Revealed 2 times (now, by you)" in again
    assert len(svc.review.reveals(item_id)) == 1  # still one: the second is recorded when its file is fetched
    exif = rita.get(f"/console/items/{item_id}/exif")
    assert exif.status_code == 200 and "recorded in the audit log" in exif.text
    assert svc.audit.list(action="media.exif_view")[-1]["actor"] == "user:rita"
    # the case's history holds its items' records (the reveal, the EXIF view) with its own, in log order
    history = svc.cases.get(case_id)["history"]
    actions = [(h["action"], h["target"]) for h in history]
    on_item = f"case_item:{item_id}"
    assert ("media.reveal", on_item) in actions and ("media.exif_view", on_item) in actions
    assert [h["seq"] for h in history] == sorted(h["seq"] for h in history)
    assert actions.index(("media.reveal", on_item)) > actions.index(("case.claim", f"case:{case_id}"))
    assert f"media.reveal · item {item_id}</li>" in rita.get(f"/console/cases/{case_id}").text

    r = rita.post(f"/console/cases/{case_id}/decision", {"outcome": "csam:A1", "note": "known image"})
    assert r.status_code == 303
    case = svc.cases.get(case_id)
    assert (case["status"], case["decision"], case["classification"]) == ("closed", "csam", "A1")
    assert case["decided_by"] == "user:rita"
    page = rita.get(r.headers["location"]).text
    assert "Decision recorded" in page and "remove content" in page  # the seeded policy acted


def test_a_claimed_case_cannot_be_taken_or_decided_by_another(open_console, svc):
    case_id, _, _ = open_media_case(svc)
    rita, sam = open_console("rita"), open_console("sam")
    rita.post(f"/console/cases/{case_id}/claim")
    other = open_console("ada")
    refused = other.post(f"/console/cases/{case_id}/claim")
    assert refused.status_code == 409 and "case.claimed" in refused.text
    decided = other.post(f"/console/cases/{case_id}/decision", {"outcome": "not_violating"})
    assert decided.status_code == 409
    assert "Claimed by <strong>user:rita</strong>" in sam.get(f"/console/cases/{case_id}").text
    assert sam.post(f"/console/cases/{case_id}/claim", {"override": "true"}).status_code == 303
    assert svc.cases.get(case_id)["claimed_by"] == "user:sam"


def test_reviewers_cannot_override_claims(open_console, svc):
    case_id, _, _ = open_media_case(svc)
    open_console("sam").post(f"/console/cases/{case_id}/claim")
    r = open_console("rita").post(f"/console/cases/{case_id}/claim", {"override": "true"})
    assert r.status_code == 403 and "auth.forbidden" in r.text


def test_new_material_needs_a_second_reviewer(open_console, svc):
    case_id, _, _ = open_media_case(svc, seed=2, known=False)
    rita, sam = open_console("rita"), open_console("sam")
    rita.post(f"/console/cases/{case_id}/claim")
    assert rita.post(f"/console/cases/{case_id}/decision", {"outcome": "csam:B1"}).status_code == 303
    assert svc.cases.get(case_id)["status"] == "awaiting_confirmation"
    assert "Another reviewer must confirm" in rita.get(f"/console/cases/{case_id}").text
    assert rita.post(f"/console/cases/{case_id}/confirmation", {"agree": "true"}).status_code == 409
    assert "Do you agree?" in sam.get(f"/console/cases/{case_id}").text
    assert sam.post(f"/console/cases/{case_id}/confirmation", {"agree": "true"}).status_code == 303
    case = svc.cases.get(case_id)
    assert case["status"] == "closed" and case["confirmed_by"] == "user:sam"


def test_cse_and_escalation(open_console, svc):
    case_id, _, _ = open_media_case(svc, seed=3, known=False)
    rita = open_console("rita")
    rita.post(f"/console/cases/{case_id}/claim")
    bogus = rita.post(f"/console/cases/{case_id}/decision", {"outcome": "csam:C9"})
    assert bogus.status_code == 400 and "review.invalid_decision" in bogus.text
    assert rita.post(f"/console/cases/{case_id}/decision", {"outcome": "escalate"}).status_code == 303
    assert svc.cases.get(case_id)["status"] == "escalated"
    assert "data-decision" not in rita.get(f"/console/cases/{case_id}").text
    sam = open_console("sam")
    assert "data-decision" in sam.get(f"/console/cases/{case_id}").text
    assert sam.post(f"/console/cases/{case_id}/decision", {"outcome": "cse:grooming"}).status_code == 303
    case = svc.cases.get(case_id)
    assert (case["decision"], case["classification"]) == ("cse", "grooming")


def test_auditors_see_cases_blurred_only(open_console, svc):
    case_id, item_id, _ = open_media_case(svc)
    otto = open_console("otto")
    page = otto.get(f"/console/cases/{case_id}").text
    assert "/preview" in page and "/reveal" not in page and "/claim" not in page
    assert otto.get(f"/console/items/{item_id}/media").status_code == 403
    assert otto.post(f"/console/items/{item_id}/reveal").status_code == 403
    assert svc.review.reveals(item_id) == []


def test_add_a_confirmed_item_to_a_bank(open_console, svc):
    svc.banks.create("known", created_by="test")
    case_id, item_id, _ = open_media_case(svc, seed=4)
    sam = open_console("sam")
    sam.post(f"/console/cases/{case_id}/claim")
    assert "Add to bank" not in sam.get(f"/console/cases/{case_id}").text  # not before a violating decision
    sam.post(f"/console/cases/{case_id}/decision", {"outcome": "csam:A2"})
    assert "Add to bank" in sam.get(f"/console/cases/{case_id}").text
    r = sam.post(f"/console/cases/{case_id}/bank", {"item_id": str(item_id), "bank": "known"})
    assert r.status_code == 303 and svc.banks.get("known").entries >= 1
    rita = open_console("rita")  # reviewers read banks but do not write them
    assert rita.post(f"/console/cases/{case_id}/bank", {"item_id": str(item_id), "bank": "known"}).status_code == 403


# ------------------------------------------------------------------------------------------------ wellness


def _set_defaults(open_console, **values):
    form = {"blur": "true", "greyscale": "true", "thumbnails_first": "true", "video_muted": "true",
            "daily_cap": "300", "break_every": "50", "break_minutes": "10"}  # fmt: skip
    form.update({k: str(v) for k, v in values.items()})
    assert open_console("ada").post("/console/admin/settings/wellness", form).status_code == 303


def test_daily_cap_and_break_prompt(open_console, svc):
    _set_defaults(open_console, daily_cap=2, break_every=1)
    case_id, item_id, _ = open_media_case(svc)
    rita = open_console("rita")
    assert "Time to step away" not in rita.get("/console").text
    rita.post(f"/console/items/{item_id}/reveal")
    rita.get(f"/console/items/{item_id}/media")
    assert "Time to step away" in rita.get("/console").text
    assert rita.post("/console/me/break").status_code == 303
    assert "Time to step away" not in rita.get("/console").text
    rita.get(f"/console/items/{item_id}/media")
    assert "today&#39;s limit" in rita.get("/console").text or "today's limit" in rita.get("/console").text
    refused = rita.post(f"/console/items/{item_id}/reveal")
    assert refused.status_code == 429 and "review.exposure_cap" in refused.text
    assert rita.get(f"/console/items/{item_id}/media").status_code == 429
    assert len(svc.review.reveals(item_id)) == 2


def test_reviewers_may_tighten_but_not_loosen(open_console, svc):
    rita = open_console("rita")
    loosen = rita.post("/console/me/wellness", {"daily_cap": "1000"})
    assert loosen.status_code == 400 and "wellness.cannot_loosen" in loosen.text
    assert rita.post("/console/me/wellness", {"daily_cap": "20", "break_minutes": "15"}).status_code == 303
    assert svc.users.get("rita").wellness == {"daily_cap": 20, "break_minutes": 15}
    page = rita.get("/console/me").text
    assert "of 20" in page and "(set by your admin)" in page

    _set_defaults(open_console, greyscale="")  # the admin turns greyscale off: a reviewer may turn it back on
    rita.post("/console/me/wellness", {"greyscale": "true"})
    case_id, item_id, _ = open_media_case(svc)
    assert "revealed grey" in rita.post(f"/console/items/{item_id}/reveal").text
    assert "revealed grey" not in open_console("sam").post(f"/console/items/{item_id}/reveal").text


# ------------------------------------------------------------------------------------------------ admin


def test_admin_pages(open_console, svc):
    ada = open_console("ada")
    data = {"username": "nina", "password": "another long password", "role": "reviewer", "display_name": "Nina"}
    assert ada.post("/console/admin/users", data).status_code == 303
    weak = ada.post("/console/admin/users", {**data, "username": "weak", "password": "short"})
    assert weak.status_code == 400 and "user.weak_password" in weak.text
    assert ada.post("/console/admin/users/nina", {"role": "auditor", "display_name": "N"}).status_code == 303
    assert svc.users.get("nina").role == "auditor"

    key = ada.post("/console/admin/apikeys", {"name": "platform", "role": "platform"})
    assert key.status_code == 200 and 'value="sh_' in key.text
    assert 'value="sh_' not in ada.get("/console/admin/apikeys").text  # shown once

    assert ada.post("/console/admin/banks", {"name": "ours", "kind": "block", "on_match": ""}).status_code == 303
    assert svc.banks.get("ours").on_match == "case"  # the block bank default
    change = {"description": "ours", "pdq_threshold": "20", "on_match": "auto", "enabled": "true"}
    assert ada.post("/console/admin/banks/ours", change).status_code == 303
    assert (svc.banks.get("ours").on_match, svc.banks.get("ours").pdq_threshold) == ("auto", 20)
    assert ada.post("/console/admin/banks/ours", {**change, "thresholds": "vpdq=20"}).status_code == 303
    assert svc.banks.get("ours").thresholds == {"pdq": 20, "vpdq": 20}
    assert ada.post("/console/admin/banks/ours", {**change, "thresholds": ""}).status_code == 303
    assert svc.banks.get("ours").thresholds == {"pdq": 20}  # an emptied field: every other type's default
    assert "No imports yet." in ada.get("/console/admin/banks").text
    hashes = io.BytesIO(b"a" * 32 + b"\n")
    svc.banks.import_stream("ours", hashes, fmt="list", default_signal_type="md5", added_by="cli", filename="x.txt")
    imports = open_console("otto").get("/console/admin/banks").text  # banks.read is enough to see them
    assert 'data-status="done"' in imports and "x.txt" in imports and "1 of 1" in imports
    assert ada.post("/console/admin/settings/sla", {"P1": "2", "P2": "12", "P3": "48", "P4": "100"}).status_code == 303
    assert svc.cases.sla_hours()["P1"] == 2

    policies = ada.get("/console/admin/policies").text
    assert "confirmed-csam" in policies and "confirmed-exploitation" in policies
    hook = ada.post("/console/admin/webhooks", {"name": "platform", "url": "http://127.0.0.1:9/hook"})
    assert hook.status_code == 200 and 'value="whsec_' in hook.text
    assert ada.post("/console/admin/webhooks/platform/test").status_code == 303
    assert "ping" in ada.get("/console/admin/deliveries?status=pending").text
    assert ada.get("/console/admin/deliveries").status_code == 200  # the dead-letter list

    verify = ada.get("/console/audit/verify")
    assert verify.status_code == 200 and 'data-verify="ok"' in verify.text
    assert "user.create" in ada.get("/console/audit?action=user.").text


# ------------------------------------------------------------------------------------------------ two-step log-in


def test_admin_logs_in_with_a_code_as_a_second_step(open_console, svc, totp_secrets):
    from tests.web.conftest import totp_code

    c = open_console()
    r = c.client.post(
        "/login",
        data={
            "username": "ada",
            "password": PASSWORD,
            "csrf": csrf_of(c.client.get("/login").text),
            "next": "/console/me",
        },
        follow_redirects=False,
    )
    assert r.status_code == 200 and 'action="/login/totp"' in r.text and 'name="password"' not in r.text
    assert (
        "safehold_session" not in r.headers.get("set-cookie", "") and "safehold_login_step=" in r.headers["set-cookie"]
    )
    assert c.get("/console").status_code == 303  # no session yet
    bad = c.client.post("/login/totp", data={"code": "000000", "csrf": csrf_of(r.text)}, follow_redirects=False)
    assert bad.status_code == 401 and "not right" in bad.text and 'action="/login/totp"' in bad.text
    code = totp_code(svc, "ada", totp_secrets["ada"])
    ok = c.client.post("/login/totp", data={"code": code, "csrf": csrf_of(bad.text), "next": "/console/me"},
                       follow_redirects=False)  # fmt: skip
    assert (
        ok.status_code == 303
        and ok.headers["location"] == "/console/me"
        and "safehold_session=" in ok.headers["set-cookie"]
    )
    # The same code again, in a new log-in, is refused.
    c2 = open_console()
    r = c2.login("ada", code=code)
    assert r.status_code == 401 and "already used" in r.text


@sqlite_only
def test_second_step_needs_the_ticket(open_console):
    c = open_console()
    form = c.client.get("/login")
    r = c.client.post("/login/totp", data={"code": "123456", "csrf": csrf_of(form.text)}, follow_redirects=False)
    assert r.status_code == 401 and "start again" in r.text and 'name="password"' in r.text


def test_an_admin_resets_a_lost_second_factor_on_the_users_page(open_console, svc, totp_secrets):
    ada = open_console("ada")
    page = ada.get("/console/admin/users").text
    assert 'data-totp="on">on' in page and 'action="/console/admin/users/lena/totp/reset"' in page
    assert 'action="/console/admin/users/rita/totp/reset"' not in page  # nothing to reset
    assert ada.client.post("/console/admin/users/lena/totp/reset", follow_redirects=False).status_code == 403  # CSRF
    assert open_console("otto").post("/console/admin/users/lena/totp/reset").status_code == 403  # an auditor
    assert svc.users.get("lena").totp_enrolled
    r = ada.post("/console/admin/users/lena/totp/reset")
    assert r.status_code == 303 and r.headers["location"] == "/console/admin/users?done=totp_reset"
    assert not svc.users.get("lena").totp_enrolled
    assert "Two-step log-in removed" in ada.get("/console/admin/users?done=totp_reset").text
    record = svc.audit.list(action="user.totp_reset")[-1]
    assert record["actor"] == "user:ada" and record["target"] == "user:lena" and record["detail"]["was_enrolled"]
    # legal requires it: lena (her old phone lost) is shown a fresh setup key right after her password
    totp_secrets.pop("lena")
    r = open_console().login("lena")
    assert r.status_code == 200 and "data-totp-secret" in r.text


@sqlite_only
def test_required_role_without_totp_enrols_at_first_login(open_console, svc):
    from safehold.auth import totp

    svc.users.create("newadmin", PASSWORD, "admin")
    c = open_console()
    r = c.login("newadmin")
    assert r.status_code == 200 and "data-totp-secret" in r.text and "otpauth://totp/Safehold:newadmin" in r.text
    secret = r.text.split("data-totp-secret>")[1].split("<")[0].replace(" ", "")
    assert svc.users.enrolment_secret(svc.users.get("newadmin").id)[0] == secret
    ok = c.client.post("/login/totp", data={"code": totp.code_at(secret), "csrf": csrf_of(r.text)},
                       follow_redirects=False)  # fmt: skip
    assert ok.status_code == 303 and svc.users.get("newadmin").totp_enrolled


@sqlite_only
def test_reviewer_sets_up_totp_on_the_account_page(open_console, svc):
    from safehold.auth import totp

    c = open_console("rita")
    page = c.get("/console/me")
    assert 'data-totp-state="off"' in page.text
    assert c.post("/console/me/totp/start").headers["location"].startswith("/console/me?totp=setup")
    page = c.get("/console/me?totp=setup")
    secret = page.text.split("data-totp-secret>")[1].split("<")[0].replace(" ", "")
    assert c.post("/console/me/totp/confirm", {"code": "000000"}).headers["location"].endswith("done=totp_bad")
    assert c.post("/console/me/totp/confirm", {"code": totp.code_at(secret)}).headers["location"] == (
        "/console/me?done=totp_on"
    )
    assert 'data-totp-state="on"' in c.get("/console/me").text
    # From now on her log-in asks for a code.
    r = open_console().login("rita")
    assert r.status_code == 200 and 'action="/login/totp"' in r.text
