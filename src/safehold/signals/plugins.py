"""Signal plug-ins: extra signal types and hashers (PhotoDNA and other licensed hashes) from other packages.

Safehold ships no licensed hash. A licensee adds one by installing a package that declares an entry point in
the group ``safehold.signals`` (the same idea as python-threatexchange's extension manifests)::

    # pyproject.toml of the plug-in package
    [project.entry-points."safehold.signals"]
    photodna = "safehold_photodna:PLUGIN"

where ``PLUGIN`` is a :class:`SignalPlugin`::

    from safehold.signals.plugins import SignalPlugin
    PLUGIN = SignalPlugin(
        name="photodna",
        signal_types=(PhotoDnaSignal,),     # SignalType subclasses
        hashers=(PhotoDnaHasher,),          # ContentHasher subclasses, constructible with no arguments
        version="1.0.0",
    )

The entry point may also name a zero-argument callable returning a :class:`SignalPlugin`, a module defining
``SAFEHOLD_PLUGIN``, any object with ``signal_types``/``hashers`` attributes (a threatexchange-style
manifest), or a single ``SignalType``/``ContentHasher`` subclass.

A signal type other than ``exact`` must name its index class (``index_cls()``: a class implementing
:class:`safehold.matching.protocol.SignalIndex`, such as a subclass of
:class:`safehold.matching.vector_index.VectorIndex`), or its entries could never match; docs/signals.md has a
whole example.

Everything a plug-in provides is validated; a plug-in that fails to import, is malformed, or reuses a
signal-type name already taken (built-in or by an earlier plug-in) is **reported and skipped as a
whole** — it never stops Safehold from starting. Problems carry stable codes: ``plugin.load_failed``,
``plugin.invalid``, ``plugin.name_clash``. Set ``SAFEHOLD_SIGNAL_PLUGINS=none`` to load no plug-ins, or a
comma-separated list of entry-point names to load only those.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from safehold import entrypoints
from safehold.entrypoints import EntryPointLike
from safehold.errors import SafeholdError
from safehold.matching.protocol import missing_methods
from safehold.signals.base import ContentHasher, SignalType

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "safehold.signals"
ENV_SELECT = "SAFEHOLD_SIGNAL_PLUGINS"

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MATCHING = ("exact", "hamming", "distance", "custom")
_MEDIA = ("image", "video", "any")
_PERCEPTUAL_MEDIA = ("image", "video")


@dataclass(frozen=True)
class SignalPlugin:
    """What a plug-in package provides."""

    name: str
    signal_types: tuple[type[SignalType], ...] = ()
    hashers: tuple[type[ContentHasher], ...] = ()
    description: str = ""
    version: str | None = None


@dataclass
class LoadedPlugins:
    """The outcome of :func:`load_plugins`."""

    plugins: list[SignalPlugin] = field(default_factory=list)
    signal_types: dict[str, type[SignalType]] = field(default_factory=dict)
    hashers: list[type[ContentHasher]] = field(default_factory=list)
    errors: list[SafeholdError] = field(default_factory=list)
    #: signal-type / hasher class → plug-in name, for messages.
    origin: dict[type, str] = field(default_factory=dict)


def _entry_points() -> list[EntryPointLike]:
    """Installed entry points of the ``safehold.signals`` group (tests monkeypatch this)."""
    return entrypoints.installed(ENTRY_POINT_GROUP)


def _error(code: str, ep_name: str, message: str, **detail) -> SafeholdError:
    return entrypoints.plugin_error(code, "signal", ep_name, message, **detail)


def _coerce(ep_name: str, obj: Any) -> SignalPlugin:
    """Turn whatever an entry point loaded into a :class:`SignalPlugin` (or raise ``plugin.invalid``)."""
    if isinstance(obj, types.ModuleType):
        if not hasattr(obj, "SAFEHOLD_PLUGIN"):
            raise _error("plugin.invalid", ep_name, "module defines no SAFEHOLD_PLUGIN")
        obj = obj.SAFEHOLD_PLUGIN
    if isinstance(obj, SignalPlugin):
        return obj
    if isinstance(obj, type):
        if issubclass(obj, SignalType):
            return SignalPlugin(name=ep_name, signal_types=(obj,))
        if issubclass(obj, ContentHasher):
            return SignalPlugin(name=ep_name, hashers=(obj,))
        raise _error("plugin.invalid", ep_name, f"{obj.__qualname__} is neither a SignalType nor a ContentHasher")
    if hasattr(obj, "signal_types") or hasattr(obj, "hashers"):
        try:
            return SignalPlugin(
                name=str(getattr(obj, "name", ep_name) or ep_name),
                signal_types=tuple(getattr(obj, "signal_types", ()) or ()),
                hashers=tuple(getattr(obj, "hashers", ()) or ()),
                description=str(getattr(obj, "description", "") or ""),
                version=getattr(obj, "version", None),
            )
        except TypeError as e:
            raise _error("plugin.invalid", ep_name, f"signal_types/hashers must be sequences: {e}") from None
    if callable(obj):
        try:
            produced = obj()
        except Exception as e:  # noqa: BLE001 - third-party code
            raise _error("plugin.load_failed", ep_name, f"factory raised {type(e).__name__}: {e}") from e
        if isinstance(produced, SignalPlugin):
            return produced
        raise _error("plugin.invalid", ep_name, f"factory returned {type(produced).__name__}, not SignalPlugin")
    raise _error("plugin.invalid", ep_name, f"entry point gave {type(obj).__name__}, not a SignalPlugin")


def _check_signal_type(ep_name: str, cls: Any) -> type[SignalType]:
    if not (isinstance(cls, type) and issubclass(cls, SignalType)):
        raise _error("plugin.invalid", ep_name, f"{cls!r} is not a SignalType subclass")
    what = cls.__qualname__
    if inspect.isabstract(cls):
        raise _error("plugin.invalid", ep_name, f"{what} is abstract (does it implement normalize()?)")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _error("plugin.invalid", ep_name, f"{what}.name must be lower-case [a-z][a-z0-9_]*, got {name!r}")
    if not isinstance(getattr(cls, "description", None), str):
        raise _error("plugin.invalid", ep_name, f"{what}.description must be a string")
    matching = getattr(cls, "matching", None)
    if matching not in _MATCHING:
        raise _error("plugin.invalid", ep_name, f"{what}.matching must be one of {_MATCHING}, got {matching!r}")
    dt, mt = getattr(cls, "default_threshold", None), getattr(cls, "max_threshold", None)
    if not (isinstance(dt, int) and isinstance(mt, int) and not isinstance(dt, bool) and 0 <= dt <= mt):
        raise _error("plugin.invalid", ep_name, f"{what} thresholds must be integers with 0 <= default <= max")
    perceptual = getattr(cls, "perceptual_for", None)
    if not isinstance(perceptual, tuple) or not set(perceptual) <= set(_PERCEPTUAL_MEDIA):
        raise _error("plugin.invalid", ep_name, f"{what}.perceptual_for must be a tuple of {_PERCEPTUAL_MEDIA}")
    aliases = getattr(cls, "aliases", None)
    if not isinstance(aliases, tuple) or not all(isinstance(a, str) and _NAME_RE.match(a) for a in aliases):
        raise _error("plugin.invalid", ep_name, f"{what}.aliases must be a tuple of lower-case names")
    _check_index(ep_name, cls)
    return cls


def _check_index(ep_name: str, cls: type[SignalType]) -> None:
    """The type's ``index_cls()`` must give a class implementing the index protocol, so its entries can match."""
    what = cls.__qualname__
    try:
        index_cls = cls.index_cls()
    except Exception as e:  # noqa: BLE001 - third-party code
        raise _error("plugin.invalid", ep_name, f"{what}.index_cls() failed: {type(e).__name__}: {e}") from None
    if not isinstance(index_cls, type):
        raise _error("plugin.invalid", ep_name, f"{what}.index_cls() must return a class, got {index_cls!r}")
    missing = missing_methods(index_cls)
    if missing:
        raise _error(
            "plugin.invalid", ep_name,
            f"{what}.index_cls() gives {index_cls.__qualname__}, which lacks the index methods {missing}",
            missing=missing,
        )  # fmt: skip


def _check_hasher(ep_name: str, cls: Any, known_types: Iterable[str]) -> type[ContentHasher]:
    if not (isinstance(cls, type) and issubclass(cls, ContentHasher)):
        raise _error("plugin.invalid", ep_name, f"{cls!r} is not a ContentHasher subclass")
    what = cls.__qualname__
    if inspect.isabstract(cls):
        raise _error("plugin.invalid", ep_name, f"{what} is abstract (does it implement hash_bytes()?)")
    media = getattr(cls, "media", None)
    if media not in _MEDIA:
        raise _error("plugin.invalid", ep_name, f"{what}.media must be one of {_MEDIA}, got {media!r}")
    produced = getattr(cls, "signal_types", None)
    if not isinstance(produced, tuple) or not produced or not all(isinstance(t, str) for t in produced):
        raise _error("plugin.invalid", ep_name, f"{what}.signal_types must be a non-empty tuple of type names")
    unknown = sorted(set(produced) - set(known_types))
    if unknown:
        raise _error("plugin.invalid", ep_name, f"{what} produces unknown signal types {unknown}", unknown=unknown)
    return cls


def load_plugins(
    reserved: Mapping[str, type[SignalType]], *, entry_points: Iterable[EntryPointLike] | None = None
) -> LoadedPlugins:
    """Load, validate and collect every ``safehold.signals`` plug-in. Never raises for a bad plug-in.

    ``reserved`` are the signal types already registered (the built-ins); their names cannot be reused.
    """
    out = LoadedPlugins()
    try:
        choice = os.environ.get(ENV_SELECT)
        eps = list(entry_points) if entry_points is not None else entrypoints.selected(_entry_points(), choice)
    except Exception as e:  # noqa: BLE001 - broken package metadata must not stop startup
        err = SafeholdError("plugin.load_failed", f"cannot list signal plug-ins: {e}", status=500)
        log.warning("%s", err.message)
        out.errors.append(err)
        return out
    eps.sort(key=lambda ep: str(getattr(ep, "name", "")))
    for ep in eps:
        ep_name = str(getattr(ep, "name", "?"))
        try:
            plugin = _coerce(ep_name, entrypoints.load(ep, "signal"))
            new_types: dict[str, type[SignalType]] = {}
            for cls in plugin.signal_types:
                st = _check_signal_type(ep_name, cls)
                taken_by = (
                    "built-in" if st.name in reserved
                    else out.origin.get(out.signal_types[st.name]) if st.name in out.signal_types
                    else ep_name if st.name in new_types
                    else None
                )  # fmt: skip
                if taken_by is not None:
                    raise _error(
                        "plugin.name_clash", ep_name,
                        f"signal type name {st.name!r} is already provided by {taken_by!r}",
                        signal_type=st.name,
                    )  # fmt: skip
                new_types[st.name] = st
            known = set(reserved) | set(out.signal_types) | set(new_types)
            new_hashers = [_check_hasher(ep_name, h, known) for h in plugin.hashers]
            if not new_types and not new_hashers:
                raise _error("plugin.invalid", ep_name, "provides no signal types and no hashers")
        except SafeholdError as e:
            log.warning("skipping %s", e.message)
            out.errors.append(e)
            continue
        except Exception as e:  # noqa: BLE001 - defensive: validation must never crash startup
            err = _error("plugin.invalid", ep_name, f"{type(e).__name__}: {e}")
            log.warning("skipping %s", err.message)
            out.errors.append(err)
            continue
        out.plugins.append(plugin)
        for name, st in new_types.items():
            out.signal_types[name] = st
            out.origin[st] = ep_name
        for h in new_hashers:
            out.hashers.append(h)
            out.origin[h] = ep_name
        log.info("loaded signal plug-in %r: types=%s hashers=%s", ep_name, sorted(new_types),
                 [h.__qualname__ for h in new_hashers])  # fmt: skip
    return out
