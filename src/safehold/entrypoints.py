"""Plug-ins by entry point, shared by every extension point (signal types, classifiers): list a group's entry
points, pick the ones the operator named, import one and report a failure with a stable code.

What a plug-in must provide is checked by its extension point (:mod:`safehold.signals.plugins`,
:mod:`safehold.classifiers.registry`); this module only finds and imports them, so a broken package is reported
(``plugin.load_failed``) and skipped the same way everywhere, never stopping Safehold from starting.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, Protocol

from safehold.errors import SafeholdError


class EntryPointLike(Protocol):
    name: str
    value: str

    def load(self) -> Any: ...


def installed(group: str) -> list[EntryPointLike]:
    """The installed entry points of ``group``."""
    return list(importlib.metadata.entry_points(group=group))


def selected(eps: list[EntryPointLike], choice: str | None) -> list[EntryPointLike]:
    """The entry points an operator's choice names: empty or ``all`` for every one, ``none`` for none, else a
    comma-separated list of entry-point names."""
    choice = (choice or "").strip()
    if not choice or choice.lower() == "all":
        return eps
    if choice.lower() == "none":
        return []
    wanted = {c.strip() for c in choice.split(",") if c.strip()}
    return [ep for ep in eps if ep.name in wanted]


def plugin_error(code: str, kind: str, ep_name: str, message: str, **detail) -> SafeholdError:
    """A plug-in problem (``plugin.load_failed``, ``plugin.invalid``, ``plugin.name_clash``), its message naming
    the kind of plug-in (``signal``, ``classifier``) and the entry point."""
    return SafeholdError(
        code, f"{kind} plug-in {ep_name!r}: {message}", status=500, detail={"plugin": ep_name, **detail}
    )


def load(ep: EntryPointLike, kind: str) -> Any:
    """Import what ``ep`` names; any failure of third-party code becomes ``plugin.load_failed``."""
    try:
        return ep.load()
    except Exception as e:  # noqa: BLE001 - third-party import errors of any kind
        raise plugin_error(
            "plugin.load_failed",
            kind,
            str(getattr(ep, "name", "?")),
            f"import of {getattr(ep, 'value', '?')!r} failed: {type(e).__name__}: {e}",
        ) from e
