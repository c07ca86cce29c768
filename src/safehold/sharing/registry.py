"""Which exchange types exist: the built-in ones plus plug-ins of the entry-point group ``safehold.exchanges``.

Built-ins are imported only when used (a server that follows no exchange imports none of their clients). A plug-in
that fails to import, is not an :class:`Exchange` subclass or reuses a taken name is reported with the shared
plug-in codes (``plugin.load_failed``, ``plugin.invalid``, ``plugin.name_clash``) and skipped.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from functools import lru_cache

from safehold import entrypoints
from safehold.errors import NotFound, SafeholdError
from safehold.sharing.base import Exchange

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "safehold.exchanges"
#: Built-in exchange types: name → (module, class). Each module is under ``safehold.sharing.exchanges``.
BUILTIN: dict[str, tuple[str, str]] = {
    "stopncii": ("safehold.sharing.exchanges.stopncii", "StopNCIIExchange"),
    "threatexchange": ("safehold.sharing.exchanges.threatexchange", "ThreatExchangeExchange"),
    "tat": ("safehold.sharing.exchanges.tat", "TATExchange"),
    "feed": ("safehold.sharing.exchanges.feed", "FeedExchange"),
    "peer": ("safehold.sharing.exchanges.peer", "PeerExchange"),
    "ncmec": ("safehold.sharing.exchanges.ncmec", "NcmecExchange"),
}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def check(cls: object, ep_name: str = "built-in") -> type[Exchange]:
    """``cls`` if it is a usable :class:`Exchange` subclass, else ``plugin.invalid``."""
    if not (isinstance(cls, type) and issubclass(cls, Exchange)) or inspect.isabstract(cls):
        raise entrypoints.plugin_error(
            "plugin.invalid", "exchange", ep_name, f"{cls!r} is not a concrete Exchange subclass"
        )
    if not isinstance(getattr(cls, "name", None), str) or not _NAME_RE.match(cls.name):
        raise entrypoints.plugin_error("plugin.invalid", "exchange", ep_name, "name must be [a-z][a-z0-9_]*")
    return cls


@lru_cache(maxsize=1)
def _plugins() -> dict[str, type[Exchange]]:
    found: dict[str, type[Exchange]] = {}
    for ep in entrypoints.installed(ENTRY_POINT_GROUP):
        try:
            cls = check(entrypoints.load(ep, "exchange"), ep.name)
        except SafeholdError as exc:
            log.error("%s; skipped", exc.message)
            continue
        if cls.name in BUILTIN or cls.name in found:
            log.error("exchange plug-in %s: the name %r is taken; skipped", ep.name, cls.name)
            continue
        found[cls.name] = cls
    return found


def names() -> list[str]:
    """Every available exchange type name, built-ins first."""
    return [*BUILTIN, *sorted(_plugins())]


def get(name: str) -> type[Exchange]:
    """The exchange class of type ``name`` (``exchange.unknown_type`` if there is none)."""
    if name in BUILTIN:
        module, attr = BUILTIN[name]
        return check(getattr(importlib.import_module(module), attr))
    try:
        return _plugins()[name]
    except KeyError:
        raise NotFound(
            "exchange.unknown_type", f"no exchange type {name!r}; available: {', '.join(names()) or 'none'}"
        ) from None
