"""Which external classification service types exist: the built-in ones plus plug-ins of the entry-point group
``safehold.screening`` (:mod:`safehold.screening.base`).

Built-ins are imported only when used (an installation that configures no service imports no client). A plug-in
that fails to import, is not a :class:`ScreeningService` subclass or reuses a taken type is reported with the
shared plug-in codes (``plugin.load_failed``, ``plugin.invalid``) and skipped, never stopping Safehold.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import re
from functools import lru_cache

from safehold import entrypoints
from safehold.errors import NotFound, SafeholdError
from safehold.screening.base import ScreeningService

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "safehold.screening"
#: Built-in service types: type → (module, class).
BUILTIN: dict[str, tuple[str, str]] = {
    "google_csai": ("safehold.screening.services.google", "GoogleContentSafety"),
    "safer_predict": ("safehold.screening.services.safer", "SaferPredict"),
    "arachnid_shield": ("safehold.screening.services.arachnid", "ArachnidShield"),
}
_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def check(cls: object, ep_name: str = "built-in") -> type[ScreeningService]:
    """``cls`` if it is a usable :class:`ScreeningService` subclass, else ``plugin.invalid``."""
    if not (isinstance(cls, type) and issubclass(cls, ScreeningService)) or inspect.isabstract(cls):
        raise entrypoints.plugin_error(
            "plugin.invalid", "screening service", ep_name, f"{cls!r} is not a concrete ScreeningService subclass"
        )
    if not isinstance(getattr(cls, "type", None), str) or not _TYPE_RE.match(cls.type):
        raise entrypoints.plugin_error("plugin.invalid", "screening service", ep_name, "type must be [a-z][a-z0-9_]*")
    return cls


@lru_cache(maxsize=1)
def _plugins() -> dict[str, type[ScreeningService]]:
    found: dict[str, type[ScreeningService]] = {}
    for ep in entrypoints.installed(ENTRY_POINT_GROUP):
        try:
            cls = check(entrypoints.load(ep, "screening service"), ep.name)
        except SafeholdError as exc:
            log.error("%s; skipped", exc.message)
            continue
        if cls.type in BUILTIN or cls.type in found:
            log.error("screening plug-in %s: the type %r is taken; skipped", ep.name, cls.type)
            continue
        found[cls.type] = cls
    return found


def _importable(name: str) -> bool:
    """Whether a built-in's module is present (the adapters land one by one)."""
    return importlib.util.find_spec(BUILTIN[name][0]) is not None


def names() -> list[str]:
    """Every available service type, built-ins first."""
    return [*(n for n in BUILTIN if _importable(n)), *sorted(_plugins())]


def get(name: str) -> type[ScreeningService]:
    """The service class of type ``name`` (``screening.unknown_type`` if there is none)."""
    if name in BUILTIN and _importable(name):
        module, attr = BUILTIN[name]
        return check(getattr(importlib.import_module(module), attr))
    try:
        return _plugins()[name]
    except KeyError:
        raise NotFound(
            "screening.unknown_type", f"no screening service type {name!r}; available: {', '.join(names()) or 'none'}"
        ) from None
