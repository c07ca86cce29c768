"""The console's safety-prompts page: every prompt key × locale, which ones an operator has overridden, and an
edit form with a preview, through the same service calls as ``PUT``/``DELETE /v1/safety/prompts/{key}/{locale}``
and ``safehold prompts set/reset``. Anyone who may read statistics sees the page; only ``settings.manage`` edits.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from safehold.auth.roles import Permission
from safehold.errors import SafeholdError
from safehold.safety.prompts import BODY_MAX, KEYS, LOCALE_MAX, TITLE_MAX, check_override
from safehold.services import Services
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
PAGE = "/console/safety/prompts"


def _render(request: Request, who: Staff, svc: Services, key: str | None, locale: str | None, draft=None):
    prompts = svc.prompts
    context: dict = {
        "table": prompts.table(),
        "locales": prompts.locales(),
        "keys": KEYS,
        "key": key,
        "locale": locale,
        "can_edit": who.can(Permission.SETTINGS_MANAGE),
        "title_max": TITLE_MAX,
        "body_max": BODY_MAX,
    }
    if key and locale:
        override = prompts.override(key, locale)
        shown = prompts.get(key, locale)
        context.update(shown=shown, override=override)
        if draft is not None:
            context["preview"] = draft
            context["form"] = draft
        else:
            source = override or shown
            context["form"] = {
                "title": source["title"],
                "body": source["body"],
                "help": json.dumps(override["help"], indent=1, ensure_ascii=False)
                if override and override["help"] is not None
                else "",
            }
    return page(request, "safety_prompts.html", **context)


@router.get(PAGE)
def prompts_page(
    request: Request,
    key: str | None = Query(None, max_length=64),
    locale: str | None = Query(None, max_length=LOCALE_MAX),
    who: Staff = Depends(staff(Permission.STATS_READ)),
    svc: Services = Depends(services),
) -> Response:
    return _render(request, who, svc, key, locale)


@router.post(PAGE + "/{key}/{locale}")
def save_prompt(
    request: Request,
    key: str,
    locale: str,
    title: str = Form(..., max_length=4 * TITLE_MAX),
    body: str = Form(..., max_length=4 * BODY_MAX),
    help: str = Form("", max_length=64_000),
    action: str = Form("save"),
    who: Staff = Depends(staff(Permission.SETTINGS_MANAGE)),
    svc: Services = Depends(services),
) -> Response:
    """``action=preview`` shows the draft without saving it; ``save`` writes it (help empty: the bundled help)."""
    try:
        help_entries = json.loads(help) if help.strip() else None
    except json.JSONDecodeError as exc:
        raise SafeholdError("prompt.invalid", f"Help must be a JSON list of resources: {exc}", status=422) from None
    if action == "preview":  # checked as a save would be, so the preview shows only what could be saved
        checked_title, checked_body, checked_help = check_override(title, body, help_entries)
        draft = {"title": checked_title, "body": checked_body, "help": help, "help_entries": checked_help}
        return _render(request, who, svc, key, locale, draft=draft)
    svc.prompts.set(key, locale, title=title, body=body, help=help_entries, actor=who.label)
    return back(f"{PAGE}?key={key}&locale={locale}", "prompt_saved")


@router.post(PAGE + "/{key}/{locale}/reset")
def reset_prompt(
    key: str, locale: str, who: Staff = Depends(staff(Permission.SETTINGS_MANAGE)), svc: Services = Depends(services)
) -> Response:
    svc.prompts.reset(key, locale, actor=who.label)
    return back(f"{PAGE}?key={key}&locale={locale}", "prompt_reset")
