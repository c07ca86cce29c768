"""Plug-ins by entry point, shared by every extension point (signal types, classifiers): list a group's entry
points, pick the ones the operator named, import one and report a failure with a stable code; and
:class:`Registry`, the "built-ins plus checked plug-ins" catalogue of the simpler extension points (screening
services, exchanges).

What a plug-in must provide is checked by its extension point (:mod:`safehold.signals.plugins`,
:mod:`safehold.classifiers.registry`); this module only finds and imports them, so a broken package is reported
(``plugin.load_failed``) and skipped the same way everywhere, never stopping Safehold from starting.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import re
from functools import cached_property
from typing import Any, Generic, Protocol, TypeVar

from safehold.errors import NotFound, SafeholdError

log = logging.getLogger(__name__)
T = TypeVar("T")
_TYPE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


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


class Registry(Generic[T]):
    """The types of one extension point: built-ins (imported only when used) plus the installed plug-ins of an
    entry-point group, each checked to be a concrete ``base`` subclass whose ``key`` attribute (its type name)
    is lower-case; a plug-in that fails to import, is malformed or reuses a taken name is logged and skipped.

    ``builtin`` is held, not copied: adding to it (tests do) adds a built-in. With ``optional_builtins`` a
    built-in whose module is absent is left out rather than failing when used (adapters landing one by one).
    """

    def __init__(
        self,
        *,
        group: str,
        kind: str,
        base: type[T],
        key: str,
        builtin: dict[str, tuple[str, str]],
        unknown_code: str,
        optional_builtins: bool = False,
    ) -> None:
        self.group, self.kind, self.base, self.key = group, kind, base, key
        self.builtin = builtin
        self.unknown_code = unknown_code
        self.optional_builtins = optional_builtins

    def check(self, cls: object, ep_name: str = "built-in") -> type[T]:
        """``cls`` if it is a usable ``base`` subclass, else ``plugin.invalid``."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)) or inspect.isabstract(cls):
            raise plugin_error(
                "plugin.invalid", self.kind, ep_name, f"{cls!r} is not a concrete {self.base.__name__} subclass"
            )
        value = getattr(cls, self.key, None)
        if not isinstance(value, str) or not _TYPE_NAME_RE.match(value):
            raise plugin_error("plugin.invalid", self.kind, ep_name, f"{self.key} must be [a-z][a-z0-9_]*")
        return cls

    @cached_property
    def _plugins(self) -> dict[str, type[T]]:
        found: dict[str, type[T]] = {}
        for ep in installed(self.group):
            try:
                cls = self.check(load(ep, self.kind), ep.name)
            except SafeholdError as exc:
                log.error("%s; skipped", exc.message)
                continue
            name = getattr(cls, self.key)
            if name in self.builtin or name in found:
                log.error("%s plug-in %s: the %s %r is taken; skipped", self.kind, ep.name, self.key, name)
                continue
            found[name] = cls
        return found

    def _has_builtin(self, name: str) -> bool:
        if name not in self.builtin:
            return False
        return not self.optional_builtins or importlib.util.find_spec(self.builtin[name][0]) is not None

    def names(self) -> list[str]:
        """Every available type name, built-ins first."""
        return [*(n for n in self.builtin if self._has_builtin(n)), *sorted(self._plugins)]

    def get(self, name: str) -> type[T]:
        """The class of type ``name`` (``unknown_code``, 404, if there is none)."""
        if self._has_builtin(name):
            module, attr = self.builtin[name]
            return self.check(getattr(importlib.import_module(module), attr))
        try:
            return self._plugins[name]
        except KeyError:
            raise NotFound(
                self.unknown_code, f"no {self.kind} type {name!r}; available: {', '.join(self.names()) or 'none'}"
            ) from None
