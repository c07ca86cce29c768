"""Rendering console pages: one Jinja2 environment, the headers every page carries, and fixed notices.

Pages are HTML from the server (no CDN, no build step). Every response carries a strict Content-Security-Policy
(scripts, styles and media from this origin only, no inline code, no framing) and ``Cache-Control: no-store``:
case pages and media must not linger in shared or browser caches.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from safehold import __version__
from safehold.auth.roles import Permission, allows

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

#: What a page may say after a redirect (``?done=claimed``). A fixed table, so a crafted link cannot put words
#: of its own on a console page.
NOTICES = {
    "claimed": "Case claimed. Nobody else can decide it while your claim lasts.",
    "released": "Claim released.",
    "decided": "Decision recorded.",
    "confirmed": "Second review recorded.",
    "appeal_reviewed": "Appeal reviewed: the outcome is recorded and sent to the platform.",
    "banked": "Added to the bank.",
    "break": "Break recorded. The counter starts again.",
    "wellness": "Your wellness settings are saved.",
    "user_created": "User created.",
    "user_updated": "User updated.",
    "password_set": "Password changed; that user's sessions have ended.",
    "unlocked": "User unlocked.",
    "totp_reset": "Two-step log-in removed; the user sets it up again when they next sign in (if their role needs it).",
    "key_revoked": "API key revoked.",
    "bank_created": "Bank created.",
    "bank_updated": "Bank updated.",
    "classifier_policy_saved": "Classifier policy saved: in force here now, in every process within seconds.",
    "entry_released": "Entry released: its matches act automatically again; not quarantined again for one window.",
    "exchange_created": "Exchange added; its first fetch is due now.",
    "exchange_updated": "Exchange updated.",
    "exchange_fetching": "Fetching now; reload the page to see the outcome.",
    "exchange_deleted": "Exchange removed; the entries it added stay in the bank.",
    "screening_created": "Screening service added; images no bank matches are queued for it from now on.",
    "screening_updated": "Screening service updated.",
    "terms_imported": "Term list imported; it is in force now.",
    "terms_updated": "Term list switched.",
    "age_recorded": "Finding recorded; the account's band is resolved again.",
    "policy_saved": "Policy saved.",
    "policy_deleted": "Policy deleted.",
    "webhook_saved": "Webhook saved.",
    "webhook_deleted": "Webhook deleted.",
    "webhook_tested": "Test delivery queued.",
    "retried": "Delivery queued again.",
    "feedback_retried": "Feedback queued again.",
    "stream_interrupted": "Interrupt sent: the platform is asked to stop the stream.",
    "settings_saved": "Settings saved.",
    "prompt_saved": "Prompt saved; it is shown from now on.",
    "prompt_reset": "Prompt reset: the bundled text is shown again.",
    "logged_out": "You are logged out.",
    "totp_on": "Two-step log-in is on: from now on you log in with a code from your app.",
    "totp_off": "Two-step log-in is off.",
    "totp_bad": "That code is not right; check the app's clock and try the current code.",
    "report_drafted": "The case is in this report draft; its evidence is preserved.",
    "report_saved": "Report saved.",
    "report_submitted": "Report submitted; it is being filed.",
    "report_retracted": "Report retracted.",
    "report_filed": "Report recorded as filed.",
    "transparency_report_generated": "Transparency report generated and stored: it is first in the list.",
    "hold_placed": "Legal hold placed.",
    "hold_released": "Legal hold released.",
    "rule_created": "Rule written: version 1, a draft. It runs nowhere until you run it in shadow or live.",
    "rule_saved": "New version saved; the version that runs (if any) keeps running until this one is switched on.",
    "rule_approved": "Version approved.",
    "rule_shadow": "Running in shadow: it records what it would have done, does nothing; a live version still acts.",
    "rule_live": "Live: it acts on the next detection, here now and in every process within seconds.",
    "rule_disabled": "Rule disabled.",
    "list_saved": "Named list saved; in force now.",
    "list_pending": "A live rule reads this list: the change waits for a second admin's approval.",
    "list_approved": "List change approved; in force now.",
}


def _aware(value) -> dt.datetime | None:
    """Datetimes and ISO strings (services give either) as aware UTC datetimes."""
    if not value:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def when(value) -> str:
    """A timestamp as ``2026-11-28 14:05 UTC``."""
    at = _aware(value)
    if at is None:
        return str(value) if value else "—"
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def future(value) -> bool:
    """Whether a timestamp (a claim's expiry) is still ahead."""
    at = _aware(value)
    return at is not None and at > dt.datetime.now(dt.UTC)


def pretty(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def label(value) -> str:
    """``not_violating`` → ``not violating``: enum values as words."""
    return str(value).replace("_", " ") if value is not None else "—"


env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(when=when, pretty=pretty, label=label)
env.tests.update(future=future)
env.globals.update(version=__version__, Permission=Permission)


def secure(response: Response) -> Response:
    """The console's security headers, where the page did not set its own. A page whose policy lets it be framed
    (the public report form) gets no ``X-Frame-Options: DENY``: it would contradict its ``frame-ancestors``."""
    framable = "frame-ancestors 'none'" not in response.headers.get("content-security-policy", "frame-ancestors 'none'")
    for name, value in SECURITY_HEADERS.items():
        if not (framable and name == "X-Frame-Options"):
            response.headers.setdefault(name, value)
    return response


def page(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    """Render ``template`` with the signed-in staff member (if any) and the page's notice."""
    who = getattr(request.state, "staff", None)
    context.setdefault("staff", who)
    context.setdefault("notice", NOTICES.get(request.query_params.get("done", "")))
    context.setdefault("wellness_banner", getattr(request.state, "wellness_banner", None))
    context["can"] = lambda p: who is not None and allows(who.role, p)
    context["csrf"] = who.csrf if who is not None else context.get("csrf", "")
    context["path"] = request.url.path
    html = env.get_template(template).render(**context)
    return secure(HTMLResponse(html, status_code=status))
