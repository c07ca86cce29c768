"""The safety prompts (Principle 7): the texts a platform shows for contact friction, blurred and blocked media,
the warning before a child sends an explicit image, and sextortion help, localised and operator-editable.

The bundled catalogue, ``data/prompts.json``, holds every key of :data:`KEYS` in each of its locales (en, es, fr,
de, pt), with help resources whose sources are cited in the file, like the search guard's messages
(:mod:`safehold.text.search`, whose validation of help entries it shares). An operator overrides one key in one
locale — any locale tag, not only the bundled ones — in the ``safety_prompts`` table: title and body, and the help
resources or ``None`` to keep the bundled ones. Every change is validated and audited.

:meth:`Prompts.get` resolves a locale exact → language → the default locale (``pt-BR`` → ``pt`` → ``en``), an
override winning over the bundled text at each step, and keeps help resources tied to regions only for a
locale naming one of them (``en-GB`` gets Report Remove, ``en-US`` the CyberTipline). It reads no database on
the hot path: the overrides are cached per process and re-read at most ``SAFEHOLD_SAFETY_RELOAD_SECONDS`` after
the last read (a change made through this process applies at once; one made through another process within that
time). The table is small (keys × locales), so a re-read is one query of a few rows.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from sqlalchemy import select

from safehold.audit import AuditService
from safehold.errors import SafeholdError
from safehold.store.db import Database
from safehold.store.models import SafetyPrompt, iso
from safehold.text.search import region, require_text, validate_help_entry

#: Every prompt key; other parts of Safehold (the contact and media checks) name them.
KEYS = (
    "contact.friction.stranger",
    "contact.friction.sender",
    "contact.friction.unknown_age",
    "contact.blocked",
    "media.blurred",
    "media.blocked",
    "send.warning",
    "help.sextortion",
)
TITLE_MAX = 120
BODY_MAX = 2000
HELP_MAX = 10
#: Longest value of each help-entry field an operator may give.
HELP_FIELD_MAX = {"name": 120, "url": 2048, "description": 500, "phone": 40}
LOCALE_MAX = 35
#: A BCP 47-like tag: a language of 2-3 letters, then up to three subtags (script, region, variant).
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8}){0,3}$")
_PUBLIC_FIELDS = ("name", "url", "phone", "description")


def _catalogue_error(message: str) -> SafeholdError:
    return SafeholdError("prompt.invalid_catalogue", message, status=500)


def _invalid(message: str) -> SafeholdError:
    return SafeholdError("prompt.invalid", message, status=422)


def normalize_locale(locale: str) -> str:
    """``pt_br`` → ``pt-BR``, ``zh-hant-tw`` → ``zh-Hant-TW``; ``prompt.invalid`` for what is not a locale tag."""
    if not isinstance(locale, str) or len(locale) > LOCALE_MAX or not _LOCALE.match(locale):
        raise _invalid("locale must be a language tag such as 'en', 'pt-BR' or 'zh-Hant-TW'")
    lang, *rest = locale.replace("_", "-").split("-")
    out = [lang.lower()]
    for part in rest:
        out.append(part.upper() if len(part) == 2 else part.title() if len(part) == 4 else part.lower())
    return "-".join(out)


def check_key(key: str) -> str:
    if key not in KEYS:
        raise SafeholdError(
            "prompt.unknown_key", f"No safety prompt {key!r}; the keys are {', '.join(KEYS)}.", status=404
        )
    return key


def _check_help(help_entries, where: str, sources: dict, invalid) -> list[dict]:
    if not isinstance(help_entries, list):
        raise invalid(f"{where} must be a list")
    for i, entry in enumerate(help_entries):
        validate_help_entry(entry, f"{where}[{i}]", sources, invalid)
    return help_entries


def validate_catalogue(data) -> dict:
    """The whole catalogue's shape, checked at load: every key in every locale, help entries well-formed."""
    if not isinstance(data, dict):
        raise _catalogue_error("the prompts catalogue must be a JSON object")
    sources = data.get("sources", {})
    if not isinstance(sources, dict):
        raise _catalogue_error("'sources' must be an object")
    locales = data.get("locales")
    if not isinstance(locales, dict) or not locales:
        raise _catalogue_error("'locales' must be a non-empty object")
    default = data.get("default_locale", "en")
    if default not in locales:
        raise _catalogue_error(f"default_locale {default!r} has no entry in 'locales'")
    for loc, body in locales.items():
        prompts = body.get("prompts") if isinstance(body, dict) else None
        if not isinstance(prompts, dict):
            raise _catalogue_error(f"locales.{loc}.prompts must be an object")
        for key in KEYS:
            prompt = prompts.get(key)
            where = f"locales.{loc}.prompts.{key}"
            if not isinstance(prompt, dict):
                raise _catalogue_error(f"{where} is missing")
            require_text(prompt.get("title"), f"{where}.title", _catalogue_error)
            require_text(prompt.get("body"), f"{where}.body", _catalogue_error)
            _check_help(prompt.get("help", []), f"{where}.help", sources, _catalogue_error)
        unknown = set(prompts) - set(KEYS)
        if unknown:
            raise _catalogue_error(f"locales.{loc}.prompts has unknown keys: {', '.join(sorted(unknown))}")
    return data


def load_catalogue(path: str | Path | None = None) -> dict:
    """The bundled catalogue (or a file of the same shape), validated."""
    try:
        if path is None:
            raw = (resources.files("safehold.safety") / "data" / "prompts.json").read_bytes()
        else:
            raw = Path(path).read_bytes()
        data = json.loads(raw)
    except OSError as exc:
        raise _catalogue_error(f"cannot read the prompts catalogue: {exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _catalogue_error(f"the prompts catalogue is not valid JSON: {exc}") from exc
    return validate_catalogue(data)


def check_override(title, body, help_entries) -> tuple[str, str, list[dict] | None]:
    """An operator's fields, bounded: ``prompt.invalid`` (422) naming the first field at fault."""
    for name, value, limit in (("title", title, TITLE_MAX), ("body", body, BODY_MAX)):
        require_text(value, name, _invalid)
        if len(value) > limit:
            raise _invalid(f"{name} must be at most {limit} characters")
    if help_entries is None:
        return title.strip(), body.strip(), None
    if not isinstance(help_entries, list) or len(help_entries) > HELP_MAX:
        raise _invalid(f"help must be a list of at most {HELP_MAX} resources (or null to keep the bundled ones)")
    out = []
    for i, entry in enumerate(help_entries):
        validate_help_entry(entry, f"help[{i}]", {}, _invalid)
        unknown = set(entry) - set(_PUBLIC_FIELDS) - {"regions"}
        if unknown:
            raise _invalid(f"help[{i}] has unknown fields: {', '.join(sorted(unknown))}")
        for field, limit in HELP_FIELD_MAX.items():
            if field in entry and len(entry[field]) > limit:
                raise _invalid(f"help[{i}].{field} must be at most {limit} characters")
        if not entry["url"].startswith(("https://", "http://", "tel:")):
            raise _invalid(f"help[{i}].url must be an https://, http:// or tel: link")
        regions = entry.get("regions")
        if regions is not None and not all(len(r) == 2 and r.isalpha() for r in regions):
            raise _invalid(f"help[{i}].regions must be two-letter region codes such as 'GB'")
        out.append({k: entry[k] for k in (*_PUBLIC_FIELDS, "regions") if k in entry})
    return title.strip(), body.strip(), out


class Prompts:
    """The prompts of one process: the bundled catalogue plus the operator's overrides (cached, thread-safe)."""

    def __init__(
        self,
        db: Database,
        audit: AuditService,
        *,
        reload_seconds: float = 5.0,
        catalogue: dict | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.db = db
        self.audit = audit
        self.reload_seconds = reload_seconds
        data = load_catalogue() if catalogue is None else validate_catalogue(catalogue)
        self._bundled: dict[str, dict] = {loc: body["prompts"] for loc, body in data["locales"].items()}
        self.default_locale: str = data.get("default_locale", "en")
        self._clock = clock
        self._lock = threading.Lock()
        self._overrides: dict[tuple[str, str], SafetyPrompt] = {}
        self._loaded_at: float | None = None

    # ------------------------------------------------------------------ reading

    @property
    def bundled_locales(self) -> tuple[str, ...]:
        return tuple(self._bundled)

    def _current(self) -> dict[tuple[str, str], SafetyPrompt]:
        """The overrides, re-read when older than ``reload_seconds`` (one reader re-reads, the others wait)."""
        loaded = self._loaded_at
        if loaded is not None and self._clock() - loaded < self.reload_seconds:
            return self._overrides
        with self._lock:
            if self._loaded_at is None or self._clock() - self._loaded_at >= self.reload_seconds:
                with self.db.session() as s:
                    rows = s.scalars(select(SafetyPrompt)).all()
                    s.expunge_all()
                self._overrides = {(r.key, r.locale): r for r in rows}
                self._loaded_at = self._clock()
            return self._overrides

    def invalidate(self) -> None:
        """Re-read the overrides on next use (after a change made here)."""
        self._loaded_at = None

    def chain(self, locale: str | None) -> list[str]:
        """The locales tried for ``locale``, most specific first, ending with the default locale."""
        out: list[str] = []
        if locale:
            try:
                tag = normalize_locale(locale)
            except SafeholdError:
                tag = None  # an unusable tag from a client falls back to the default, never fails a check
            if tag:
                out.append(tag)
                lang = tag.split("-", 1)[0]
                if lang not in out:
                    out.append(lang)
        if self.default_locale not in out:
            out.append(self.default_locale)
        return out

    def get(self, key: str, locale: str | None = None) -> dict:
        """``{"key", "locale", "title", "body", "help": [...], "overridden"}`` for ``key`` in the best locale for
        ``locale``; help resources tied to regions only when the locale names one of them."""
        check_key(key)
        overrides = self._current()
        chain = self.chain(locale)
        for loc in chain:
            row = overrides.get((key, loc))
            if row is not None:
                help_entries = row.help if row.help is not None else self._bundled_help(key, chain[chain.index(loc) :])
                return self._answer(key, loc, row.title, row.body, help_entries, locale, overridden=True)
            bundled = self._bundled.get(loc, {}).get(key)
            if bundled is not None:
                return self._answer(key, loc, bundled["title"], bundled["body"], bundled["help"], locale)
        raise AssertionError("the default locale has every key")  # validate_catalogue guarantees it

    def _bundled_help(self, key: str, chain: list[str]) -> list[dict]:
        for loc in chain:
            if loc in self._bundled:
                return self._bundled[loc][key]["help"]
        return self._bundled[self.default_locale][key]["help"]

    @staticmethod
    def _answer(key, loc, title, body, help_entries, requested, *, overridden: bool = False) -> dict:
        where = region(requested)
        return {
            "key": key,
            "locale": loc,
            "title": title,
            "body": body,
            "help": [
                {k: e[k] for k in _PUBLIC_FIELDS if k in e}
                for e in help_entries
                if where is None or "regions" not in e or where in e["regions"]
            ],
            "overridden": overridden,
        }

    def all(self, locale: str | None = None) -> list[dict]:
        """Every key as :meth:`get` answers it for ``locale``."""
        return [self.get(key, locale) for key in KEYS]

    def locales(self) -> list[str]:
        """The bundled locales, then the other locales operators wrote prompts for."""
        extra = sorted({loc for _, loc in self._current()} - set(self._bundled))
        return [*self._bundled, *extra]

    def table(self) -> list[dict]:
        """For the console: per key, per locale (bundled or overridden), whether an operator's text is in use."""
        overrides = self._current()
        locales = self.locales()
        return [{"key": key, "locales": {loc: (key, loc) in overrides for loc in locales}} for key in KEYS]

    def override(self, key: str, locale: str) -> dict | None:
        """The operator's text for exactly ``key`` in ``locale`` (no fallback), or ``None``."""
        check_key(key)
        row = self._current().get((key, normalize_locale(locale)))
        return _override_dict(row) if row is not None else None

    def bundled(self, key: str, locale: str) -> dict | None:
        """The bundled text for exactly ``key`` in ``locale``, or ``None``."""
        check_key(key)
        prompt = self._bundled.get(normalize_locale(locale), {}).get(key)
        return None if prompt is None else {"title": prompt["title"], "body": prompt["body"], "help": prompt["help"]}

    # ------------------------------------------------------------------ writing

    def set(self, key: str, locale: str, *, title: str, body: str, help: list[dict] | None = None, actor: str) -> dict:
        """Write the operator's text for ``key`` in ``locale`` (replacing an earlier one); audited."""
        check_key(key)
        loc = normalize_locale(locale)
        title, body, help_entries = check_override(title, body, help)
        with self.db.session() as s:
            row = s.get(SafetyPrompt, (key, loc), with_for_update=True)
            old = _override_dict(row) if row is not None else None
            if row is None:
                row = SafetyPrompt(key=key, locale=loc)
                s.add(row)
            row.title, row.body, row.help, row.updated_by = title, body, help_entries, actor
            s.flush()
            new = _override_dict(row)
            self.audit.record(s, actor, "prompt.update", f"prompt:{key}/{loc}", {"old": old, "new": new})
        self.invalidate()
        return new

    def reset(self, key: str, locale: str, *, actor: str) -> None:
        """Remove the operator's text for ``key`` in ``locale``: the bundled one (or the fallback) applies again.
        ``prompt.not_found`` (404) when there is none."""
        check_key(key)
        loc = normalize_locale(locale)
        with self.db.session() as s:
            row = s.get(SafetyPrompt, (key, loc), with_for_update=True)
            if row is None:
                raise SafeholdError(
                    "prompt.not_found", f"No operator text for {key} in {loc}; the bundled text is in use.", status=404
                )
            old = _override_dict(row)
            s.delete(row)
            self.audit.record(s, actor, "prompt.reset", f"prompt:{key}/{loc}", {"old": old})
        self.invalidate()


def _override_dict(row: SafetyPrompt) -> dict:
    return {
        "key": row.key,
        "locale": row.locale,
        "title": row.title,
        "body": row.body,
        "help": row.help,
        "updated_by": row.updated_by,
        "updated_at": iso(row.updated_at),
    }
