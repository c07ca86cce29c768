"""The safety prompts (docs/safety.md): every key in a locale, one key's text in one locale, and the operator's
overrides (``PUT``/``DELETE``), through :class:`safehold.safety.prompts.Prompts`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from safehold.api.contract import ContractRoute
from safehold.api.deps import require, require_any, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.safety.prompts import BODY_MAX, HELP_FIELD_MAX, HELP_MAX, KEYS, LOCALE_MAX, TITLE_MAX
from safehold.services import Services

router = APIRouter(prefix="/v1/safety/prompts", tags=["safety"], route_class=ContractRoute)
READ = Depends(require_any(Permission.STATS_READ, Permission.SAFETY_CHECK))
MANAGE = Depends(require(Permission.SETTINGS_MANAGE))
LOCALE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$"
Key = Annotated[Literal[KEYS], Path(description="The prompt's key.")]  # type: ignore[valid-type]
Locale = Annotated[str, Path(max_length=LOCALE_MAX, pattern=LOCALE_PATTERN, description="A locale (BCP 47).")]
#: Some character Python does not strip (JSON Schema's \s is ECMAScript's, which lacks \x1c-\x1f and \x85).
_TEXT = r"[^\s\u001c-\u001f\u0085]"


class HelpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=HELP_FIELD_MAX["name"], pattern=_TEXT)
    url: str = Field(max_length=HELP_FIELD_MAX["url"], pattern=r"^(https?://|tel:)\S")
    description: str = Field(max_length=HELP_FIELD_MAX["description"], pattern=_TEXT)
    phone: str | None = Field(None, max_length=HELP_FIELD_MAX["phone"], pattern=_TEXT)
    regions: list[Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")]] | None = Field(
        None, min_length=1, max_length=50, description="Shown only to locales naming one of these regions."
    )


class PromptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(max_length=TITLE_MAX, pattern=_TEXT)
    body: str = Field(max_length=BODY_MAX, pattern=_TEXT)
    help: list[HelpIn] | None = Field(
        None, max_length=HELP_MAX, description="Help resources; null keeps the bundled ones."
    )


@router.get("", summary="Every safety prompt as shown in a locale (with fallbacks and overrides)")
def list_prompts(
    locale: Annotated[str, Query(max_length=LOCALE_MAX, pattern=LOCALE_PATTERN)] = "en",
    svc: Services = Depends(services),
    _=READ,
) -> dict:
    return {"locale": locale, "prompts": svc.prompts.all(locale), "locales": svc.prompts.locales()}


@router.get("/{key}/{locale}", summary="One prompt in a locale: what is shown, the bundled text, the override")
def get_prompt(key: Key, locale: Locale, svc: Services = Depends(services), _=READ) -> dict:
    return {
        "shown": svc.prompts.get(key, locale),
        "bundled": svc.prompts.bundled(key, locale),
        "override": svc.prompts.override(key, locale),
    }


@router.put("/{key}/{locale}", summary="Write the operator's text of a prompt in a locale")
def put_prompt(
    key: Key, locale: Locale, prompt: PromptIn, svc: Services = Depends(services), who: Principal = MANAGE
) -> dict:
    help_entries = None if prompt.help is None else [h.model_dump(exclude_none=True) for h in prompt.help]
    return svc.prompts.set(key, locale, title=prompt.title, body=prompt.body, help=help_entries, actor=who.label)


@router.delete("/{key}/{locale}", summary="Remove the operator's text: the bundled text applies again")
def delete_prompt(key: Key, locale: Locale, svc: Services = Depends(services), who: Principal = MANAGE) -> dict:
    svc.prompts.reset(key, locale, actor=who.label)
    return {"reset": True, "shown": svc.prompts.get(key, locale)}
